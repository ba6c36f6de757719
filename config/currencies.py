"""ISO 4217 currencies Stripe charges in, with their minor-unit exponent.

Stripe treats these as zero-decimal: amounts are in whole units (see Stripe's
"zero-decimal currencies" list). Every other listed currency has two decimals.
"""

ZERO_DECIMAL = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)
TWO_DECIMAL = frozenset(
    {
        "usd",
        "eur",
        "gbp",
        "cad",
        "aud",
        "nzd",
        "chf",
        "sek",
        "nok",
        "dkk",
        "pln",
        "czk",
        "huf",
        "ron",
        "bgn",
        "sgd",
        "hkd",
        "mxn",
        "brl",
        "inr",
        "zar",
        "ils",
        "aed",
        "thb",
        "myr",
        "php",
        "idr",
        "try",
        "twd",
    }
)
KNOWN = ZERO_DECIMAL | TWO_DECIMAL


def exponent(currency: str) -> int:
    return 0 if currency in ZERO_DECIMAL else 2


def format_minor(amount: int, currency: str) -> str:
    """Integer minor units as a display string: 999 usd -> '9.99', 500 jpy -> '500'."""
    places = exponent(currency)
    if places == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**places)
    return f"{sign}{whole}.{fraction:0{places}d}"
