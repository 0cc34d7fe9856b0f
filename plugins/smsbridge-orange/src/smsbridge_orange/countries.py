"""Orange's table of ``country_sender_number`` values (from the Orange SMS API guide).

With it, ``country: SEN`` alone is enough to configure a phone: the sender address
``2210000`` follows. Keys are ISO 3166-1 alpha-3 codes, values the sender number as
digits (country code, no ``+`` or ``00``), the form the ``sender_address`` option takes.
"""

from __future__ import annotations

__all__ = ["COUNTRY_NAMES", "SENDER_NUMBERS", "country_for_sender"]

SENDER_NUMBERS: dict[str, str] = {
    "BWA": "2670000",  # Botswana
    "BFA": "2260000",  # Burkina Faso
    "CMR": "2370000",  # Cameroon
    "CIV": "2250000",  # Côte d'Ivoire
    "GIN": "2240000",  # Guinea Conakry
    "GNB": "2450000",  # Guinea Bissau
    "COD": "2430000",  # DR Congo
    "JOR": "9620000",  # Jordan
    "LBR": "2310000",  # Liberia
    "MLI": "2230000",  # Mali
    "MDG": "2610000",  # Madagascar
    "SEN": "2210000",  # Senegal
    "TUN": "2160000",  # Tunisia
}

COUNTRY_NAMES: dict[str, str] = {
    "BWA": "Botswana",
    "BFA": "Burkina Faso",
    "CMR": "Cameroon",
    "CIV": "Côte d'Ivoire",
    "GIN": "Guinea Conakry",
    "GNB": "Guinea Bissau",
    "COD": "DR Congo",
    "JOR": "Jordan",
    "LBR": "Liberia",
    "MLI": "Mali",
    "MDG": "Madagascar",
    "SEN": "Senegal",
    "TUN": "Tunisia",
}

# Country calling code -> alpha-3, for inferring the country from a sender address.
_BY_CALLING_CODE: dict[str, str] = {number[:3]: alpha3 for alpha3, number in SENDER_NUMBERS.items()}


def country_for_sender(sender_address: str) -> str | None:
    """The alpha-3 country of an Orange sender address (``2250000`` → ``CIV``), or None."""
    return _BY_CALLING_CODE.get(sender_address[:3])
