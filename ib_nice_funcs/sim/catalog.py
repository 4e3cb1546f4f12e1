"""The paper market's instrument catalog: stable contract data, no I/O.

Contract fields follow what IB's contract details carry (conId, min tick,
size rules, time zone, valid exchanges), so the TWS simulator can send them
as they are and a Client Portal simulator can reuse them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Instrument", "CATALOG", "STOCK", "FX", "CRYPTO"]

STOCK = "STK"
FX = "CASH"
CRYPTO = "CRYPTO"

# Order types the paper matching engine understands; IB lists many more for a
# real contract, and clients only display the list.
_STK_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,BENCHPX,CASHQTY,COND,"
    "CONDORDER,DAY,DEACT,DEACTDIS,DEACTEOD,GAT,GTC,GTD,GTT,HID,IOC,LIT,LMT,LOC,"
    "MIDPX,MIT,MKT,MOC,MTL,NGCOMB,NONALGO,OCA,OPG,PEGBENCH,PEGMID,POSTATS,"
    "POSTONLY,PREOPGRTH,REL,RPI,RTH,SCALE,SCALERST,SNAPMID,SNAPMKT,SNAPREL,STP,"
    "STPLMT,TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,WHATIF"
)
_FX_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,CASHQTY,COND,CONDORDER,"
    "DAY,DEACT,DEACTDIS,DEACTEOD,GAT,GTC,GTD,GTT,IOC,LIT,LMT,MIT,MKT,NONALGO,OCA,"
    "REL,RELPCTOFS,SCALE,SCALERST,STP,STPLMT,TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,WHATIF"
)
_CRYPTO_ORDER_TYPES = (
    "ADJUST,ALERT,ALLOC,AVGCOST,BASKET,CASHQTY,COND,CONDORDER,DAY,DEACT,DEACTDIS,GAT,GTC,GTD,"
    "IOC,LIT,LMT,MIT,MKT,NONALGO,STP,STPLMT,TRAIL,WHATIF"
)
_SMART_EXCHANGES = (
    "SMART,AMEX,NYSE,CBOE,PHLX,ISE,CHX,ARCA,NASDAQ,DRCTEDGE,BEX,BATS,EDGEA,BYX,"
    "IEX,EDGX,FOXRIVER,PEARL,NYSENAT,LTSE,MEMX,IBEOS,OVERNIGHT,TPLUS0,PSX"
)


@dataclass(frozen=True)
class Instrument:
    """One tradable contract of the paper market.

    Attributes:
        symbol: IB symbol (``"AAPL"``, ``"BRK B"``, ``"EUR"``, ``"BTC"``).
        sec_type: ``STK``, ``CASH`` or ``CRYPTO``.
        exchange: the default routing exchange (``SMART``, ``IDEALPRO``, ``PAXOS``).
        primary_exchange: listing exchange for stocks, else the exchange.
        currency: quote currency.
        local_symbol, trading_class, market_name: as IB reports them.
        con_id: stable contract id.
        min_tick: price increment.
        size_increment, min_size, suggested_size_increment: size rules.
        time_zone: IB time zone id of the contract (``US/Eastern``).
        long_name, industry, category, subcategory, stock_type: descriptive.
        base_price: centre of the synthetic price path.
        annual_vol: volatility of the synthetic path (fraction per year).
        spread_frac: half spread as a fraction of the price (at least one tick).
        minute_volume: typical traded quantity per minute in regular hours.
        sec_ids: ``(tag, value)`` pairs, e.g. the ISIN.
    """

    symbol: str
    sec_type: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str
    market_name: str
    con_id: int
    min_tick: float
    size_increment: float
    min_size: float
    suggested_size_increment: float
    time_zone: str
    long_name: str
    base_price: float
    annual_vol: float
    spread_frac: float
    minute_volume: float
    industry: str = ""
    category: str = ""
    subcategory: str = ""
    stock_type: str = ""
    sec_ids: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """Market key: ``AAPL``, ``BRK B``, ``EUR.USD`` or ``BTC``."""
        return self.local_symbol if self.sec_type == FX else self.symbol

    @property
    def valid_exchanges(self) -> str:
        """Comma list of exchanges the contract may be routed to."""
        if self.sec_type == STOCK:
            return _SMART_EXCHANGES
        return self.exchange

    @property
    def order_types(self) -> str:
        """Comma list of order types, as contract details report them."""
        return {STOCK: _STK_ORDER_TYPES, FX: _FX_ORDER_TYPES}.get(self.sec_type,
                                                                  _CRYPTO_ORDER_TYPES)

    @property
    def price_decimals(self) -> int:
        """Decimals needed to print a price on the tick grid exactly."""
        text = f"{self.min_tick:.10f}".rstrip("0")
        return len(text.split(".")[1]) if "." in text else 0

    @property
    def size_decimals(self) -> int:
        """Decimals needed to print a quantity on the size grid exactly."""
        text = f"{self.size_increment:.10f}".rstrip("0")
        return len(text.split(".")[1]) if "." in text else 0


def _stock(symbol: str, con_id: int, primary: str, name: str, price: float, vol: float,
           minute_volume: float, isin: str, industry: str, category: str,
           stock_type: str = "COMMON") -> Instrument:
    trading_class = {"NASDAQ": "NMS", "ARCA": symbol}.get(primary, symbol.replace(" ", "."))
    if primary == "NYSE":
        trading_class = symbol.replace(" ", "")
    return Instrument(
        symbol=symbol, sec_type=STOCK, exchange="SMART", primary_exchange=primary,
        currency="USD", local_symbol=symbol, trading_class=trading_class,
        market_name=trading_class, con_id=con_id, min_tick=0.01, size_increment=1.0,
        min_size=1.0, suggested_size_increment=100.0, time_zone="US/Eastern",
        long_name=name, base_price=price, annual_vol=vol, spread_frac=0.00005,
        minute_volume=minute_volume, industry=industry, category=category,
        subcategory=category, stock_type=stock_type, sec_ids=(("ISIN", isin),),
    )


def _fx(base: str, quote: str, con_id: int, name: str, price: float, tick: float) -> Instrument:
    pair = f"{base}.{quote}"
    return Instrument(
        symbol=base, sec_type=FX, exchange="IDEALPRO", primary_exchange="IDEALPRO",
        currency=quote, local_symbol=pair, trading_class=pair, market_name=pair,
        con_id=con_id, min_tick=tick, size_increment=1.0, min_size=1.0,
        suggested_size_increment=25000.0, time_zone="US/Eastern", long_name=name,
        base_price=price, annual_vol=0.08, spread_frac=0.00002, minute_volume=0.0,
        industry="", category="", subcategory="",
    )


def _crypto(symbol: str, con_id: int, name: str, price: float, tick: float,
            size_inc: float, minute_volume: float) -> Instrument:
    return Instrument(
        symbol=symbol, sec_type=CRYPTO, exchange="PAXOS", primary_exchange="PAXOS",
        currency="USD", local_symbol=f"{symbol}.USD", trading_class=symbol,
        market_name=symbol, con_id=con_id, min_tick=tick, size_increment=size_inc,
        min_size=size_inc, suggested_size_increment=size_inc, time_zone="US/Central",
        long_name=name, base_price=price, annual_vol=0.6, spread_frac=0.0002,
        minute_volume=minute_volume,
    )


CATALOG: tuple[Instrument, ...] = (
    _stock("AAPL", 265598, "NASDAQ", "APPLE INC", 190.0, 0.25, 120_000, "US0378331005",
           "Technology", "Computers"),
    _stock("MSFT", 272093, "NASDAQ", "MICROSOFT CORP", 410.0, 0.22, 60_000, "US5949181045",
           "Technology", "Software"),
    _stock("GOOGL", 208813719, "NASDAQ", "ALPHABET INC-CL A", 140.0, 0.28, 70_000,
           "US02079K3059", "Communications", "Internet"),
    _stock("AMZN", 3691937, "NASDAQ", "AMAZON.COM INC", 175.0, 0.30, 90_000, "US0231351067",
           "Communications", "Internet"),
    _stock("NVDA", 4815747, "NASDAQ", "NVIDIA CORP", 120.0, 0.45, 250_000, "US67066G1040",
           "Technology", "Semiconductors"),
    _stock("TSLA", 76792991, "NASDAQ", "TESLA INC", 240.0, 0.55, 200_000, "US88160R1014",
           "Consumer, Cyclical", "Auto Manufacturers"),
    _stock("META", 107113386, "NASDAQ", "META PLATFORMS INC-CLASS A", 480.0, 0.35, 40_000,
           "US30303M1027", "Communications", "Internet"),
    _stock("SPY", 756733, "ARCA", "SPDR S&P 500 ETF TRUST", 520.0, 0.15, 150_000,
           "US78462F1030", "Funds", "Equity Fund", "ETF"),
    _stock("QQQ", 320227571, "NASDAQ", "INVESCO QQQ TRUST SERIES 1", 440.0, 0.20, 100_000,
           "US46090E1038", "Funds", "Equity Fund", "ETF"),
    _stock("IBM", 8314, "NYSE", "INTL BUSINESS MACHINES CORP", 185.0, 0.20, 10_000,
           "US4592001014", "Technology", "Computers"),
    _stock("JPM", 1520593, "NYSE", "JPMORGAN CHASE & CO", 195.0, 0.22, 25_000,
           "US46625H1005", "Financial", "Banks"),
    _stock("BRK B", 72063691, "NYSE", "BERKSHIRE HATHAWAY INC-CL B", 410.0, 0.17, 10_000,
           "US0846707026", "Financial", "Insurance"),
    # More liquid US stocks, so a fleet of agents can follow 50 symbols.
    _stock("AMD", 4391, "NASDAQ", "ADVANCED MICRO DEVICES", 160.0, 0.45, 150_000, "US0079031078",
           "Technology", "Semiconductors"),
    _stock("INTC", 270639, "NASDAQ", "INTEL CORP", 30.0, 0.40, 100_000, "US4581401001",
           "Technology", "Semiconductors"),
    _stock("NFLX", 15124833, "NASDAQ", "NETFLIX INC", 620.0, 0.35, 10_000, "US64110L1061",
           "Communications", "Internet"),
    _stock("ORCL", 272800, "NYSE", "ORACLE CORP", 125.0, 0.28, 20_000, "US68389X1054",
           "Technology", "Software"),
    _stock("CSCO", 268084, "NASDAQ", "CISCO SYSTEMS INC", 50.0, 0.20, 45_000, "US17275R1023",
           "Communications", "Telecommunications"),
    _stock("ADBE", 265768, "NASDAQ", "ADOBE INC", 520.0, 0.30, 8_000, "US00724F1012",
           "Technology", "Software"),
    _stock("CRM", 79220219, "NYSE", "SALESFORCE INC", 270.0, 0.30, 15_000, "US79466L3024",
           "Technology", "Software"),
    _stock("AVGO", 349283225, "NASDAQ", "BROADCOM INC", 170.0, 0.40, 60_000, "US11135F1012",
           "Technology", "Semiconductors"),
    _stock("QCOM", 273544, "NASDAQ", "QUALCOMM INC", 170.0, 0.32, 20_000, "US7475251036",
           "Technology", "Semiconductors"),
    _stock("V", 49462172, "NYSE", "VISA INC-CLASS A SHARES", 275.0, 0.18, 15_000, "US92826C8394",
           "Financial", "Diversified Finan Serv"),
    _stock("MA", 54049, "NYSE", "MASTERCARD INC - A", 460.0, 0.20, 8_000, "US57636Q1040",
           "Financial", "Diversified Finan Serv"),
    _stock("BAC", 10098, "NYSE", "BANK OF AMERICA CORP", 38.0, 0.25, 100_000, "US0605051046",
           "Financial", "Banks"),
    _stock("WFC", 10375, "NYSE", "WELLS FARGO & CO", 58.0, 0.25, 45_000, "US9497461015",
           "Financial", "Banks"),
    _stock("GS", 4627828, "NYSE", "GOLDMAN SACHS GROUP INC", 450.0, 0.25, 6_000, "US38141G1040",
           "Financial", "Banks"),
    _stock("XOM", 13977, "NYSE", "EXXON MOBIL CORP", 115.0, 0.22, 40_000, "US30231G1022",
           "Energy", "Oil&Gas"),
    _stock("CVX", 5437, "NYSE", "CHEVRON CORP", 155.0, 0.22, 20_000, "US1667641005",
           "Energy", "Oil&Gas"),
    _stock("JNJ", 8719, "NYSE", "JOHNSON & JOHNSON", 155.0, 0.15, 18_000, "US4781601046",
           "Consumer, Non-cyclical", "Pharmaceuticals"),
    _stock("PFE", 11808, "NYSE", "PFIZER INC", 28.0, 0.22, 90_000, "US7170811035",
           "Consumer, Non-cyclical", "Pharmaceuticals"),
    _stock("MRK", 11497, "NYSE", "MERCK & CO. INC.", 125.0, 0.20, 20_000, "US58933Y1055",
           "Consumer, Non-cyclical", "Pharmaceuticals"),
    _stock("UNH", 12280, "NYSE", "UNITEDHEALTH GROUP INC", 500.0, 0.22, 10_000, "US91324P1021",
           "Consumer, Non-cyclical", "Healthcare-Services"),
    _stock("KO", 8894, "NYSE", "COCA-COLA CO/THE", 62.0, 0.14, 33_000, "US1912161007",
           "Consumer, Non-cyclical", "Beverages"),
    _stock("WMT", 13824, "NYSE", "WALMART INC", 68.0, 0.16, 45_000, "US9311421039",
           "Consumer, Non-cyclical", "Retail"),
    _stock("HD", 8173, "NYSE", "HOME DEPOT INC", 350.0, 0.22, 9_000, "US4370761029",
           "Consumer, Cyclical", "Retail"),
    _stock("DIS", 6459, "NYSE", "WALT DISNEY CO/THE", 100.0, 0.28, 23_000, "US2546871060",
           "Communications", "Media"),
    _stock("BA", 4762, "NYSE", "BOEING CO/THE", 180.0, 0.35, 18_000, "US0970231058",
           "Industrial", "Aerospace/Defense"),
    _stock("NKE", 10291, "NYSE", "NIKE INC -CL B", 90.0, 0.28, 25_000, "US6541061031",
           "Consumer, Cyclical", "Apparel"),
    _stock("MCD", 9408, "NYSE", "MCDONALD'S CORP", 270.0, 0.16, 8_000, "US5801351017",
           "Consumer, Cyclical", "Retail"),
    _stock("COST", 272997, "NASDAQ", "COSTCO WHOLESALE CORP", 800.0, 0.20, 5_000, "US22160K1056",
           "Consumer, Non-cyclical", "Retail"),
    _fx("EUR", "USD", 12087792, "European Monetary Union Euro", 1.09, 0.00005),
    _fx("GBP", "USD", 12087797, "British pound", 1.27, 0.00005),
    _fx("USD", "JPY", 15016059, "US dollar", 150.0, 0.005),
    _fx("AUD", "USD", 14433401, "Australian dollar", 0.66, 0.00005),
    _fx("USD", "CAD", 15016062, "US dollar", 1.36, 0.00005),
    _fx("USD", "CHF", 12087820, "US dollar", 0.88, 0.00005),
    _crypto("BTC", 479624278, "Bitcoin", 65000.0, 0.25, 0.0001, 3.0),
    _crypto("ETH", 495759171, "Ethereum", 3200.0, 0.05, 0.0001, 40.0),
    _crypto("LTC", 498989715, "Litecoin", 80.0, 0.01, 0.0001, 300.0),
    _crypto("BCH", 498989721, "Bitcoin Cash", 450.0, 0.01, 0.0001, 50.0),
)
