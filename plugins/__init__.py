"""Niaga's first-party plugins: tax, payments, carriers, loyalty, risk and localisation.

They are registered through the ``niaga`` entry-point group exactly like
third-party plugins, and import only the kernel's public names.
"""
