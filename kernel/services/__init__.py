"""Use cases: each reads through the storage port, decides with the domain, writes once."""
