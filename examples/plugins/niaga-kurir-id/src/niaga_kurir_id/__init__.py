"""niaga-kurir-id: an Indonesian courier for Niaga (entry point ``kurir-id``).

Rates come from the merchant's tariff card in the markets file: destination zones by
postal-code prefix or province, services (REG, YES...) with a rate per chargeable
kilogram and a delivery time. Shipments are booked offline (a derived tracking number).
"""

from niaga_kurir_id.plugin import KurirId, tracking_number
from niaga_kurir_id.tariff import KurirConfig, Tariff, chargeable_kg

__all__ = ["KurirConfig", "KurirId", "Tariff", "chargeable_kg", "tracking_number"]
