"""ISO 4217 currencies accepted by the sample, with their minor-unit exponents.

Precision follows ISO 4217: EUR and USD have 2 decimals, JPY and KRW none, KWD and BHD 3.
Funds codes, precious metals and testing codes (XAU, XTS, XXX…) are not money a payments API
takes, so they are left out.
"""

from __future__ import annotations

from decimal import Decimal

MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN "
        "BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL "
        "GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK "
        "LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO "
        "NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE "
        "SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST "
        "XCD YER ZAR ZMW ZWG".split(),
        2,
    ),
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
}

MAX_MINOR_UNITS = max(MINOR_UNITS.values())


def minor_units(currency: str) -> int | None:
    """Decimal places of ``currency``, or None when it is not an accepted ISO 4217 code."""
    return MINOR_UNITS.get(currency)


def quantum(currency: str) -> Decimal:
    """The smallest amount of ``currency`` (``Decimal('0.01')`` for EUR)."""
    return Decimal(1).scaleb(-MINOR_UNITS[currency])
