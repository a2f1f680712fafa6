"""Money and currency rules of the add-orders format: ISO 4217 codes, minor units, rounding."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# Active ISO 4217 codes (list of 2024). Codes with a minor unit other than 2 are in MINOR_UNITS.
ISO_4217 = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN
BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV
MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG
SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN
UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XCD XCG XDR XOF XPF XSU XUA YER ZAR ZMW ZWG ZWL
""".split())

MINOR_UNITS = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}


def minor_unit(currency: str) -> int:
    """Digits after the decimal point for a currency (2 unless ISO 4217 says otherwise)."""
    return MINOR_UNITS.get(currency, 2)


def to_decimal(value) -> Decimal:
    """A number or numeric string as Decimal. Raises ValueError naming what was wrong.

    Shops send money as strings ("19.99") and sometimes as numbers; booleans, blanks,
    NaN and infinities are refused rather than guessed at.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError("not a number")
    if isinstance(value, float):
        value = repr(value)
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {str(value)[:40]!r}") from None
    if not d.is_finite():
        raise ValueError("not a finite number")
    return d


_QUANTUM: dict[str, Decimal] = {}


def quantum(currency: str) -> Decimal:
    """The currency's minor unit as a Decimal exponent (0.01 for EUR), for Decimal.quantize."""
    q = _QUANTUM.get(currency)
    if q is None:
        q = _QUANTUM[currency] = Decimal(1).scaleb(-minor_unit(currency))
    return q


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit, half up (as shops and tax authorities do)."""
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


def to_json_number(d: Decimal) -> int | float:
    """A Decimal as the JSON number the wire carries: an int when whole, else a float."""
    if d == d.to_integral_value():
        return int(d)
    return float(d)
