"""Commission and market-data cost maths for IBKR Pro (fixed pricing).

Plain arithmetic for the ``costs`` CLI command and for agents that want to
know what a trade or a data subscription costs before acting. Figures are
IBKR's published fixed-rate schedule for US accounts (interactivebrokers.com,
"Commissions" and "Market Data Pricing" pages, as summarised in the project's
``ib_facts.md``; checked on :data:`SCHEDULE_DATE`); exchange, regulatory and
clearing pass-through fees are not included. IB changes these schedules:
treat the numbers as estimates.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "SCHEDULE_DATE",
    "COMMISSION_SCHEDULE",
    "LISTING_NETWORKS",
    "MARKET_DATA_FEES",
    "MONTHLY_MINIMUM_USD",
    "CommissionPlan",
    "DataLine",
    "DataPlan",
    "MarketDataFee",
    "commission_usd",
    "format_cost_report",
    "monthly_data_cost",
    "plan_commissions",
    "plan_market_data",
]

#: When the figures here were last checked against IB's published schedules
#: (interactivebrokers.com "Commissions: Stocks, ETFs and Warrants" for the US
#: fixed rate, minimum and 1% cap; "Required Minimums" for the monthly fee).
SCHEDULE_DATE = "2026-12-04"

#: Monthly commissions (USD) at which IB waives non-professional data fees.
DATA_FEE_WAIVER_COMMISSIONS_USD = 30.0

# secType -> (what the rate applies to, rate, minimum per order, maximum as a
# fraction of trade value or None). "share"/"contract" rates are per unit;
# "value" rates are a fraction of the trade value.
COMMISSION_SCHEDULE: dict[str, tuple[str, float, float, float | None]] = {
    # Stocks/ETFs: USD 0.005 per share, min USD 1.00, max 1% of trade value.
    "STK": ("share", 0.005, 1.00, 0.01),
    # Options: USD 0.65 per contract, min USD 1.00 per order.
    "OPT": ("contract", 0.65, 1.00, None),
    # Spot FX (IDEALPRO): 0.20 basis points of trade value, min USD 2.00.
    "CASH": ("value", 0.20e-4, 2.00, None),
    # Crypto (Paxos): 0.18% of trade value (the highest tier), min USD 1.75,
    # max 1% of trade value.
    "CRYPTO": ("value", 0.0018, 1.75, 0.01),
}

_SEC_TYPE_ALIASES = {
    "STOCK": "STK",
    "ETF": "STK",
    "OPTION": "OPT",
    "FX": "CASH",
    "FOREX": "CASH",
}


def _number(name: str, value: object, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    x = float(value)
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return x


def commission_usd(sec_type: str, quantity: float, price: float) -> float:
    """IBKR Pro fixed commission for one order, in USD.

    Stocks: USD 0.005/share, at least USD 1.00, at most 1% of the trade value
    (when 1% is below the minimum, the 1% cap is what IB charges). Options:
    USD 0.65/contract, at least USD 1.00. FX: 0.2 bps of the trade value, at
    least USD 2.00. Crypto: 0.18% of the trade value, at least USD 1.75, at most
    1% of the trade value.

    Args:
        sec_type: ``STK``, ``OPT``, ``CASH`` or ``CRYPTO`` (also ``stock``,
            ``option``, ``fx``, ``crypto``; any case).
        quantity: Shares, contracts or units; the sign (buy/sell) is ignored.
        price: Price per unit in USD (per option *contract*: premium x 100).

    Returns:
        The commission in USD; 0.0 for a zero quantity (nothing trades).

    Raises:
        ValueError: unknown ``sec_type``; NaN/inf or negative price.
        TypeError: non-numeric quantity or price.
    """
    if not isinstance(sec_type, str):
        raise TypeError(f"sec_type must be a str such as 'STK', got {sec_type!r}")
    key = sec_type.strip().upper()
    key = _SEC_TYPE_ALIASES.get(key, key)
    if key not in COMMISSION_SCHEDULE:
        raise ValueError(
            f"sec_type {sec_type!r} has no commission schedule here; use one of "
            f"{', '.join(COMMISSION_SCHEDULE)}"
        )
    if isinstance(quantity, bool) or not isinstance(quantity, numbers.Real):
        raise TypeError(f"quantity must be a number, got {type(quantity).__name__} {quantity!r}")
    qty = abs(float(quantity))
    if not math.isfinite(qty):
        raise ValueError(f"quantity must be finite, got {quantity!r}")
    px = _number("price", price, allow_zero=True)
    if qty == 0:
        return 0.0
    basis, rate, minimum, max_fraction = COMMISSION_SCHEDULE[key]
    value = qty * px
    fee = value * rate if basis == "value" else qty * rate
    fee = max(fee, minimum)
    if max_fraction is not None:
        fee = min(fee, value * max_fraction)
    return round(fee, 4)


@dataclass(frozen=True)
class MarketDataFee:
    """Monthly fee of one market-data subscription.

    Attributes:
        non_professional: USD/month for non-professional subscribers.
        professional: USD/month for professional subscribers, or None when
            this table has no professional price for it.
        description: What the subscription covers.
    """

    non_professional: float
    professional: float | None
    description: str


#: Monthly market-data fees by subscription name. Non-professional fees are
#: waived in a month with at least USD 30 of commissions; professional fees
#: never are.
MARKET_DATA_FEES: dict[str, MarketDataFee] = {
    "us_equity_bundle": MarketDataFee(
        4.50, None, "US Equity and Options Add-On Streaming Bundle (NYSE, NASDAQ, AMEX, OPRA)"
    ),
    "nyse": MarketDataFee(1.50, 50.00, "NYSE (Network A/CTA), top of book"),
    "nasdaq": MarketDataFee(1.50, 24.00, "NASDAQ (Network C/UTP), top of book"),
    "amex": MarketDataFee(1.50, None, "NYSE American, BATS, ARCA (Network B), top of book"),
}


def monthly_data_cost(
    subscriptions: Iterable[str], monthly_commissions: float, professional: bool = False
) -> float:
    """Market-data cost for a month, in USD.

    Args:
        subscriptions: Names from :data:`MARKET_DATA_FEES` (any case; repeats
            count once).
        monthly_commissions: Commissions paid in the month, USD.
        professional: Professional subscriber (higher fees, no waiver).

    Returns:
        The total; 0.0 for a non-professional with at least USD 30 of
        commissions.

    Raises:
        ValueError: an unknown subscription, one without a professional price
            when ``professional`` is set, or negative/NaN commissions.
    """
    if isinstance(subscriptions, str):
        subscriptions = [subscriptions]
    commissions = _number("monthly_commissions", monthly_commissions, allow_zero=True)
    names = {str(s).strip().lower() for s in subscriptions}
    total = 0.0
    for name in sorted(names):
        fee = MARKET_DATA_FEES.get(name)
        if fee is None:
            raise ValueError(
                f"unknown market-data subscription {name!r}; known: {', '.join(MARKET_DATA_FEES)}"
            )
        if professional:
            if fee.professional is None:
                raise ValueError(
                    f"no professional price for {name!r} in this table; professional prices "
                    f"are known for: "
                    + ", ".join(k for k, v in MARKET_DATA_FEES.items() if v.professional)
                )
            total += fee.professional
        else:
            total += fee.non_professional
    if not professional and commissions >= DATA_FEE_WAIVER_COMMISSIONS_USD:
        return 0.0
    return round(total, 2)


# --- planning: a month of orders and the data they need ----------------------

#: IBKR Pro: the minimum monthly commission. IB dropped its USD 10 monthly
#: activity fee in 2021 (its "Required Minimums" page lists inactivity fees of
#: USD 0.00; checked on :data:`SCHEDULE_DATE`); kept as a figure so a plan with
#: a minimum can still top the month up.
MONTHLY_MINIMUM_USD = 0.0

#: Listing network of common US tickers (Network A = NYSE, B = NYSE American /
#: Arca / BATS, C = NASDAQ), keyed to :data:`MARKET_DATA_FEES`. A stock not
#: listed here is counted as needing all three networks (pass its exchange to
#: be exact).
LISTING_NETWORKS: dict[str, str] = {
    **dict.fromkeys(
        ("AAPL", "MSFT", "GOOGL", "GOOG", "AMZN", "NVDA", "TSLA", "META", "NFLX", "AMD",
         "INTC", "CSCO", "ADBE", "PEP", "COST", "AVGO", "QCOM", "TXN", "PYPL", "SBUX",
         "QQQ", "TLT", "MRNA", "PDD", "ABNB", "COIN", "MSTR"), "nasdaq"),
    **dict.fromkeys(
        ("IBM", "JPM", "BAC", "WMT", "KO", "DIS", "XOM", "CVX", "PFE", "JNJ", "V", "MA",
         "BRK.B", "GS", "MS", "T", "VZ", "HD", "NKE", "MCD", "BA", "CAT", "GE", "F", "GM",
         "UNH", "ORCL", "CRM", "PG", "C", "WFC", "UBER", "SNOW", "PLTR"), "nyse"),
    **dict.fromkeys(
        ("SPY", "IWM", "DIA", "GLD", "SLV", "XLF", "XLE", "XLK", "EEM", "EFA", "VTI", "VOO",
         "HYG", "LQD", "ARKK", "USO", "GDX"), "amex"),
}

_EXCHANGE_NETWORK = {
    "NYSE": "nyse", "NETWORK A": "nyse", "CTA": "nyse",
    "NASDAQ": "nasdaq", "NETWORK C": "nasdaq", "UTP": "nasdaq",
    "AMEX": "amex", "NYSE AMERICAN": "amex", "NYSEAMERICAN": "amex", "ARCA": "amex",
    "NYSEARCA": "amex", "BATS": "amex", "NETWORK B": "amex",
}
_US_NETWORKS = ("nyse", "nasdaq", "amex")
_BUNDLE = "us_equity_bundle"


@dataclass(frozen=True)
class CommissionPlan:
    """A month of planned orders under IBKR Pro fixed pricing (all USD).

    Attributes:
        stock_orders, shares_per_order, price: the stock orders planned
            (``price`` None: the 1% cap is not applied).
        stock_per_order: commission of one stock order.
        option_orders, contracts_per_order, option_per_order: the same for options.
        commissions: the orders' commissions together.
        monthly_minimum: :data:`MONTHLY_MINIMUM_USD`.
        top_up: charged on top when ``commissions`` is below the minimum.
        total: what the month costs in commissions (``commissions + top_up``).
    """

    stock_orders: int
    shares_per_order: float
    price: float | None
    stock_per_order: float
    option_orders: int
    contracts_per_order: int
    option_per_order: float
    commissions: float
    monthly_minimum: float
    top_up: float
    total: float


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return int(value)


def plan_commissions(
    stock_orders: int = 0,
    shares: float = 0,
    price: float | None = None,
    option_orders: int = 0,
    contracts: int = 1,
) -> CommissionPlan:
    """Commissions of a month of orders (fixed pricing), with the monthly minimum.

    Stocks: USD 0.005/share, at least USD 1.00 per order, at most 1% of the
    trade value (only applied when ``price`` is given). Options: USD 0.65 per
    contract, at least USD 1.00 per order. A month under USD 10 is topped up
    to USD 10.

    Args:
        stock_orders: Stock orders in the month.
        shares: Shares per stock order.
        price: Share price in USD, for the 1% cap; None leaves the cap out.
        option_orders: Option orders in the month.
        contracts: Contracts per option order.

    Raises:
        ValueError: negative or fractional counts, negative shares or price.
        TypeError: non-numeric values.
    """
    n_stock = _count("stock_orders", stock_orders)
    n_opt = _count("option_orders", option_orders)
    n_contracts = _count("contracts", contracts)
    qty = _number("shares", shares, allow_zero=True)
    if price is None:
        rate, minimum, _ = COMMISSION_SCHEDULE["STK"][1:]
        per_stock = round(max(qty * rate, minimum), 4) if qty else 0.0
        px = None
    else:
        px = _number("price", price, allow_zero=False)
        per_stock = commission_usd("STK", qty, px)
    per_option = commission_usd("OPT", n_contracts, 0.0)
    commissions = round(n_stock * per_stock + n_opt * per_option, 2)
    top_up = round(max(0.0, MONTHLY_MINIMUM_USD - commissions), 2)
    return CommissionPlan(
        n_stock, qty, px, per_stock, n_opt, n_contracts, per_option, commissions,
        MONTHLY_MINIMUM_USD, top_up, round(commissions + top_up, 2),
    )


@dataclass(frozen=True)
class DataLine:
    """One market-data subscription of a plan: its key, what it covers, its monthly fee."""

    key: str
    description: str
    symbols: tuple[str, ...]
    monthly: float | None


@dataclass(frozen=True)
class DataPlan:
    """The cheapest market-data subscriptions for some symbols and exchanges (USD/month).

    Attributes:
        professional: professional subscriber prices.
        lines: the subscriptions chosen, with the symbols each one covers.
        free: symbols whose quotes cost nothing here (FX on IDEALPRO, crypto on PAXOS).
        assumed: stocks of unknown listing, counted as needing every US network.
        singles_cost: the single-exchange subscriptions together (prices known).
        bundle_cost: the US equity bundle (non-professional only), else None.
        choice: ``"bundle"``, ``"single exchanges"`` or ``"none"``.
        gross: the fee of the choice before any waiver.
        unpriced: chosen subscriptions with no price in this table (not in ``gross``).
        monthly_commissions: commissions counted for the waiver.
        waived: non-professional fees waived (commissions >= USD 30).
        total: what the month costs in market data.
    """

    professional: bool
    lines: tuple[DataLine, ...]
    free: tuple[str, ...]
    assumed: tuple[str, ...]
    singles_cost: float
    bundle_cost: float | None
    choice: str
    gross: float
    unpriced: tuple[str, ...]
    monthly_commissions: float
    waived: bool
    total: float


def _network_of_exchange(exchange: str) -> str:
    key = str(exchange).strip().upper().replace("_", " ")
    found = _EXCHANGE_NETWORK.get(key)
    if found is None:
        raise ValueError(
            f"unknown exchange {exchange!r}; use one of {', '.join(sorted(_EXCHANGE_NETWORK))}"
        )
    return found


def plan_market_data(
    symbols: Iterable[str] = (),
    exchanges: Iterable[str] = (),
    professional: bool = False,
    monthly_commissions: float = 0.0,
    listings: Mapping[str, str] | None = None,
) -> DataPlan:
    """The market-data subscriptions ``symbols`` and ``exchanges`` need, cheapest first.

    Each US stock needs its listing network (:data:`LISTING_NETWORKS`; an
    unknown one counts as all three); FX and crypto quotes are free. A
    non-professional takes the US equity bundle when it costs no more than the
    single exchanges; professionals pay per exchange. Non-professional fees
    are waived in a month with at least USD 30 of commissions.

    Args:
        symbols: Symbols as agents write them (``AAPL``, ``EURUSD``, ``BTC-USD``).
        exchanges: Extra exchanges to subscribe (``NYSE``, ``NASDAQ``, ``ARCA``...).
        professional: Professional subscriber.
        monthly_commissions: Commissions in the month, USD (for the waiver).
        listings: Listing exchange of symbols (``{"ZZZZ": "NYSE"}``), over
            :data:`LISTING_NETWORKS`.

    Raises:
        ValueError: a malformed symbol, an unknown exchange, negative commissions.
    """
    from .symbols import parse_symbol

    if isinstance(symbols, str):
        symbols = [symbols]
    if isinstance(exchanges, str):
        exchanges = [exchanges]
    commissions = _number("monthly_commissions", monthly_commissions, allow_zero=True)
    known = dict(LISTING_NETWORKS)
    for sym, exchange in (listings or {}).items():
        known[parse_symbol(sym).symbol] = _network_of_exchange(exchange)
    needed: dict[str, list[str]] = {}
    free: list[str] = []
    assumed: list[str] = []
    stocks: list[str] = []
    for text in symbols:
        instrument = parse_symbol(text)
        if instrument.asset_class in ("fx", "crypto"):
            free.append(instrument.symbol)
            continue
        stocks.append(instrument.symbol)
        network = known.get(instrument.symbol)
        if network is None:
            assumed.append(instrument.symbol)
            for net in _US_NETWORKS:
                needed.setdefault(net, []).append(instrument.symbol)
        else:
            needed.setdefault(network, []).append(instrument.symbol)
    for exchange in exchanges:
        needed.setdefault(_network_of_exchange(exchange), [])
    singles: list[DataLine] = []
    unpriced: list[str] = []
    for key in _US_NETWORKS:
        if key not in needed:
            continue
        fee = MARKET_DATA_FEES[key]
        monthly = fee.professional if professional else fee.non_professional
        if monthly is None:
            unpriced.append(key)
        singles.append(DataLine(key, fee.description, tuple(dict.fromkeys(needed[key])), monthly))
    singles_cost = round(sum(line.monthly or 0.0 for line in singles), 2)
    bundle_fee = MARKET_DATA_FEES[_BUNDLE]
    bundle_cost = None if professional else bundle_fee.non_professional
    if not singles:
        lines: tuple[DataLine, ...] = ()
        choice, gross = "none", 0.0
    elif bundle_cost is not None and bundle_cost <= singles_cost:
        covered = tuple(dict.fromkeys(stocks))
        lines = (DataLine(_BUNDLE, bundle_fee.description, covered, bundle_cost),)
        choice, gross, unpriced = "bundle", bundle_cost, []
    else:
        lines, choice, gross = tuple(singles), "single exchanges", singles_cost
    waived = not professional and gross > 0 and commissions >= DATA_FEE_WAIVER_COMMISSIONS_USD
    return DataPlan(
        professional, lines, tuple(dict.fromkeys(free)), tuple(dict.fromkeys(assumed)),
        singles_cost, bundle_cost, choice, round(gross, 2), tuple(unpriced), commissions,
        waived, 0.0 if waived else round(gross, 2),
    )


_SHORT_NAMES = {
    _BUNDLE: "US equity + options bundle",
    "nyse": "NYSE (Network A)",
    "nasdaq": "NASDAQ (Network C)",
    "amex": "NYSE American/Arca/BATS (Network B)",
}


def format_cost_report(commissions: CommissionPlan, data: DataPlan) -> str:
    """A readable monthly breakdown of :func:`plan_commissions` and :func:`plan_market_data`."""
    rows: list[tuple[str, str]] = []

    def money(x: float) -> str:
        return f"${x:,.2f}"

    out = ["Commissions (IBKR Pro fixed pricing, per month)"]
    c = commissions
    if c.stock_orders:
        rows.append((f"  {c.stock_orders} stock orders x {c.shares_per_order:g} shares at "
                     f"{money(c.stock_per_order)} each", money(c.stock_orders * c.stock_per_order)))
        cap = (f"1% of the trade value at {money(c.price)}/share" if c.price is not None
               else "no 1% cap: give --price")
        rows.append((f"    ($0.005/share, $1.00 minimum, {cap})", ""))
    if c.option_orders:
        rows.append((f"  {c.option_orders} option orders x {c.contracts_per_order} contract(s) at "
                     f"{money(c.option_per_order)} each",
                     money(c.option_orders * c.option_per_order)))
        rows.append(("    ($0.65/contract, $1.00 minimum per order)", ""))
    if not (c.stock_orders or c.option_orders):
        rows.append(("  no orders planned (use --trades/--shares)", money(0.0)))
    if not c.monthly_minimum:
        rows.append(("  no monthly minimum (IBKR Pro has no activity fee)", money(0.0)))
    elif c.top_up:
        rows.append((f"  monthly minimum {money(c.monthly_minimum)}: top-up", money(c.top_up)))
    else:
        rows.append((f"  monthly minimum {money(c.monthly_minimum)}: met", money(0.0)))
    rows.append(("  commissions", money(c.total)))
    out += _aligned(rows)

    kind = "professional" if data.professional else "non-professional"
    out += ["", f"Market data ({kind}, per month)"]
    rows = []
    for line in data.lines:
        who = ", ".join(line.symbols) or "(exchange asked for)"
        fee = money(line.monthly) if line.monthly is not None else "price not in table"
        rows.append((f"  {_SHORT_NAMES.get(line.key, line.key)}: {who}", fee))
    if data.free:
        rows.append((f"  free quotes (FX on IDEALPRO, crypto on PAXOS): {', '.join(data.free)}",
                     money(0.0)))
    if data.choice == "bundle":
        rows.append((f"  the bundle is the cheapest "
                     f"(single exchanges: {money(data.singles_cost)})", ""))
    elif data.choice == "single exchanges" and data.bundle_cost is not None:
        rows.append((f"  single exchanges are the cheapest "
                     f"(bundle: {money(data.bundle_cost)})", ""))
    if data.waived:
        rows.append((f"  waived: commissions {money(data.monthly_commissions)} >= "
                     f"{money(DATA_FEE_WAIVER_COMMISSIONS_USD)}", "-" + money(data.gross)))
    elif data.gross and not data.professional:
        short = DATA_FEE_WAIVER_COMMISSIONS_USD - data.monthly_commissions
        rows.append((f"  not waived: {money(short)} more commissions would waive it", ""))
    rows.append(("  market data", money(data.total)))
    out += _aligned(rows)
    notes = []
    if data.assumed:
        notes.append(f"listing exchange unknown for {', '.join(data.assumed)}: counted as all "
                     "three US networks (pass --exchange SYMBOL=NYSE, say, to be exact)")
    if data.unpriced:
        notes.append(f"no professional price known here for {', '.join(data.unpriced)}: "
                     "not in the total")
    out += ["", f"Total per month: {money(c.total + data.total)}"]
    out += [f"note: {n}" for n in notes]
    out.append(f"Estimates from IBKR's published schedules as checked on {SCHEDULE_DATE}; "
               "exchange, regulatory and clearing fees are not included.")
    return "\n".join(out)


def _aligned(rows: list[tuple[str, str]]) -> list[str]:
    width = max(len(label) for label, value in rows if value) + 2
    return [f"{label.ljust(width)}{value:>12}".rstrip() if value else label
            for label, value in rows]
