"""kurir-id through Niaga's carrier conformance suite (kernel.testing.CarrierConformance)."""

from kernel.testing import CarrierConformance

from niaga_kurir_id import KurirId

SETTINGS = {
    "origin": "jabodetabek",
    "zones": {
        "jabodetabek": {"postal": ["1"], "provinces": ["DKI Jakarta"]},
        "jawa": {"postal": ["4", "5", "6"]},
    },
    "services": {
        "REG": {"eta_days": [2, 3], "per_kg": {"jabodetabek": "9000", "jawa": "12000"}},
        "YES": {"eta_days": [1], "cod": False,
                "per_kg": {"jabodetabek": "18000", "jawa": "25000"}},
    },
}


class TestKurirIdConformance(CarrierConformance):
    plugin = KurirId
    settings = SETTINGS
    market = {"code": "ID", "currency": "IDR", "countries": ["ID"]}
    address = {"city": "Jakarta", "region": "DKI Jakarta", "postal_code": "10310",
               "line1": "Jl. M.H. Thamrin 1"}
    lines = [("BATIK-SHIRT-M", 2, "289000", 250), ("COFFEE-GAYO-250", 1, "95000", 280)]
