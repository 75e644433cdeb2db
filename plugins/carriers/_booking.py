"""Shipment booking for carriers without an API of their own (flat rate, weight table,
store pickup, local courier): a tracking number derived from the order and fulfilment, so
the same fulfilment always gets the same number, and a fixed tracking status."""

from __future__ import annotations

import hashlib

from kernel import hookimpl
from kernel.delivery import Shipment, TrackingStatus


class OfflineBooking:
    """Mix into a carrier plugin; set ``tracking_prefix``, ``tracking_digits`` and
    ``tracking_status``."""

    name: str
    tracking_prefix: str
    tracking_digits: int = 10
    tracking_status: str = "label_created"

    @hookimpl
    def niaga_create_shipment(self, carrier: str, order, fulfillment) -> Shipment | None:
        if carrier != self.name:
            return None
        seed = f"{order.id}:{fulfillment.id}".encode()
        digest = hashlib.sha256(seed).hexdigest()[: self.tracking_digits].upper()
        return Shipment(carrier=self.name, tracking_number=self.tracking_prefix + digest)

    @hookimpl
    def niaga_track_shipment(self, carrier: str, tracking_number: str) -> TrackingStatus | None:
        if carrier != self.name:
            return None
        return TrackingStatus(carrier=self.name, tracking_number=tracking_number,
                              status=self.tracking_status)
