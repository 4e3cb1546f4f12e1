"""Settings: ``configure()`` plus the environment, defaults in one place.

Every setting has an environment variable; the environment is read when the
first :class:`Settings` is built (at first use, never at import). Values
passed to :func:`configure` win over the environment.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError

__all__ = [
    "Settings", "configure", "get_settings", "reset_settings", "DEFAULT_CLIENT_ID", "USDC_MINT",
    "DEFAULT_CLIENT_IDS",
]

#: Fixed so that a restarted agent reconnects as the same API client and can
#: find the orders it placed before (idempotent client order ids).
DEFAULT_CLIENT_ID = 23
#: Client ids a process may take when its configured one is in use (IB error
#: 326): the second, third... agent on one gateway connects without a setting.
DEFAULT_CLIENT_IDS = (23, 54)

#: The Solana USDC mint the Moon Dev agents pass for their cash balance.
USDC_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}


@dataclass(frozen=True)
class _Spec:
    """How one setting is spelled in the environment and what values it takes."""

    name: str
    env: str
    kind: str  # "str", "optional str", "bool", "int", "number"
    expected: str  # the expected form, for the error message
    low: float | None = None  # inclusive bounds of int / number settings
    high: float | None = None
    finite: bool = True
    above_low: bool = False  # low itself excluded

    def check(self, value: Any, label: str | None = None) -> Any:
        """``value`` as the setting stores it (env text converted).

        Raises:
            ConfigurationError: naming the setting (and its variable when
                ``label`` is one), the value and the expected form.
        """
        where = f"{label}={value!r} ({self.name})" if label else f"{self.name}={value!r}"
        fail = ConfigurationError(f"{where} must be {self.expected}; set {self.env} or "
                                  f"configure({self.name}=...)")
        if self.kind == "optional str":
            if value is None or (isinstance(value, str) and value.strip()):
                return value.strip() if isinstance(value, str) else None
            raise fail
        if self.kind == "str":
            if isinstance(value, str) and value.strip():
                return value.strip()
            raise fail
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            lowered = value.strip().lower() if isinstance(value, str) else None
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise fail
        number = _to_number(value, whole=self.kind == "int")
        if number is None or (self.finite and not math.isfinite(number)) or math.isnan(number):
            raise fail
        if self.low is not None and (number < self.low or (self.above_low and number == self.low)):
            raise fail
        if self.high is not None and number > self.high:
            raise fail
        return number


def _to_number(value: Any, whole: bool) -> float | int | None:
    """An int / float from a number or its text; None when it is neither (or a bool)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            return None
    if whole:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return None
    return float(value) if isinstance(value, (int, float)) else None


_SECONDS = "a positive number of seconds"
_USD = "a positive number of US dollars"
_SPECS: tuple[_Spec, ...] = (
    _Spec("host", "IB_HOST", "str", "a non-empty host name or address"),
    _Spec("port", "IB_PORT", "int", "a whole number (TCP port 1..65535)", 1, 65535),
    _Spec("client_id", "IB_CLIENT_ID", "int", "a whole number >= 0 (the API client id)", 0),
    _Spec("account", "IB_ACCOUNT", "optional str", "an account id such as 'DU1234567', or None"),
    _Spec("allow_live", "IB_NICE_FUNCS_ALLOW_LIVE", "bool", "a boolean (1/0, true/false, yes/no)"),
    _Spec("max_position_usd", "IB_MAX_POSITION_USD", "number", _USD, 0, finite=False,
          above_low=True),
    _Spec("max_daily_loss_usd", "IB_MAX_DAILY_LOSS_USD", "number", _USD, 0, finite=False,
          above_low=True),
    _Spec("max_exposure_usd", "IB_MAX_EXPOSURE_USD", "number", _USD, 0, finite=False,
          above_low=True),
    _Spec("max_order_usd", "IB_MAX_ORDER_USD", "number", _USD, 0, finite=False, above_low=True),
    _Spec("chunked_order_budget_s", "IB_NICE_FUNCS_CHUNKED_BUDGET_S", "number", _SECONDS, 0,
          above_low=True),
    _Spec("pdt_guard", "IB_NICE_FUNCS_PDT_GUARD", "bool", "a boolean (1/0, true/false, yes/no)"),
    _Spec("portal_url", "IB_PORTAL_URL", "optional str",
          "the Client Portal gateway's URL such as 'https://localhost:5000', or None"),
    _Spec("portal_ca", "IB_PORTAL_CA", "optional str", "a path to a CA certificate file, or None"),
    _Spec("portal_verify", "IB_PORTAL_VERIFY", "bool", "a boolean (1/0, true/false, yes/no)"),
    _Spec("portal_penalty_s", "IB_PORTAL_PENALTY_S", "number", _SECONDS, 0, above_low=True),
    _Spec("portal_rate_per_s", "IB_PORTAL_RATE_PER_S", "number",
          "a positive number of requests per second", 0, above_low=True),
    _Spec("portal_snapshot_wait_s", "IB_PORTAL_SNAPSHOT_WAIT_S", "number", _SECONDS, 0,
          above_low=True),
    _Spec("portal_tickle_s", "IB_PORTAL_TICKLE_S", "number", _SECONDS, 0, above_low=True),
    _Spec("portal_max_confirmations", "IB_PORTAL_MAX_CONFIRMATIONS", "int",
          "a whole number >= 1", 1),
    _Spec("order_failover", "IB_NICE_FUNCS_ORDER_FAILOVER", "bool",
          "a boolean (1/0, true/false, yes/no)"),
    _Spec("timeout", "IB_NICE_FUNCS_TIMEOUT", "number", _SECONDS, 0, above_low=True),
    _Spec("connect_timeout", "IB_NICE_FUNCS_CONNECT_TIMEOUT", "number", _SECONDS, 0,
          above_low=True),
    _Spec("heartbeat_interval", "IB_NICE_FUNCS_HEARTBEAT", "number", _SECONDS, 0, above_low=True),
    _Spec("market_data_type", "IB_NICE_FUNCS_MARKET_DATA_TYPE", "int",
          "1 live, 2 frozen, 3 delayed or 4 delayed-frozen", 1, 4),
    _Spec("price_ttl", "IB_NICE_FUNCS_PRICE_TTL", "number", "a number of seconds >= 0", 0),
    _Spec("max_market_data_lines", "IB_NICE_FUNCS_MAX_LINES", "int",
          "a whole number >= 1 (IB's default allowance is 100 lines)", 1),
    _Spec("journal", "IB_NICE_FUNCS_JOURNAL", "optional str",
          "a path to the journal's SQLite file, 'off', or None for the default file"),
    _Spec("agent", "IB_NICE_FUNCS_AGENT", "optional str",
          "the agent's name for journal rows, or None for the script's name"),
    _Spec("redis_url", "IB_NICE_FUNCS_REDIS_URL", "optional str",
          "redis://HOST:PORT/DB, rediss://HOST:PORT/DB or unix:///path/to/redis.sock, or None"),
    _Spec("fleet_dir", "IB_NICE_FUNCS_FLEET_DIR", "optional str",
          "a writable directory for the state this host's agent processes share, or None"),
)


@dataclass(frozen=True)
class Settings:
    """Every knob of the package, validated.

    Build with :meth:`from_env` (environment) and :meth:`replace` (overrides);
    instances are immutable so a call in flight never sees a half-applied
    ``configure()``.
    """

    host: str = "127.0.0.1"
    port: int = 4002
    client_id: int = DEFAULT_CLIENT_ID
    #: Inclusive range of client ids tried, after ``client_id``, when it is in use.
    client_ids: tuple[int, int] = DEFAULT_CLIENT_IDS
    account: str | None = None
    sources: tuple[str, ...] = ("ib", "yfinance")
    allow_live: bool = False
    max_position_usd: float = 10_000.0
    max_daily_loss_usd: float = 5_000.0
    max_exposure_usd: float = 50_000.0
    pdt_guard: bool = True
    portal_url: str | None = None
    portal_ca: str | None = None
    portal_verify: bool = True
    portal_penalty_s: float = 600.0
    #: Client-side request rate towards the Client Portal gateway (its limit is ~10/s).
    portal_rate_per_s: float = 10.0
    #: How long a snapshot pre-flight may poll for fields to arrive.
    portal_snapshot_wait_s: float = 5.0
    #: Keep-alive (``/tickle``) interval while the portal is in use.
    portal_tickle_s: float = 60.0
    #: Order questions confirmed at most, before giving up on an order.
    portal_max_confirmations: int = 5
    order_failover: bool = False
    #: Largest single order ``ai_entry`` sends (USD): a bigger entry goes in chunks.
    max_order_usd: float = 10_000.0
    #: Longest a chunked call (``ai_entry``, ``chunk_kill``) may run in total, in
    #: seconds; each child order still has its own ``timeout``.
    chunked_order_budget_s: float = 300.0
    #: Symbols the agents' faces read as the account's USD cash rather than a
    #: position (``get_token_balance_usd(USDC_ADDRESS)``): compared case-insensitively.
    cash_symbols: tuple[str, ...] = ("USD", "USDC", USDC_MINT)
    timeout: float = 10.0
    connect_timeout: float = 4.0
    #: Seconds of silence after which the gateway is probed (reqCurrentTime);
    #: a probe unanswered for as long again replaces the connection, so a
    #: hung (half-open) link is noticed within 2.5 intervals.
    heartbeat_interval: float = 10.0
    #: IB market data type: 1 live, 2 frozen, 3 delayed, 4 delayed-frozen.
    market_data_type: int = 1
    #: Seconds a quote stays fresh in the price cache.
    price_ttl: float = 1.0
    #: Streaming market-data lines this client may hold (live tickers kept for
    #: hot symbols and subscribe()/stream_prices()); least recently used first out.
    max_market_data_lines: int = 100
    #: Wall clock (UTC epoch seconds) the library dates things by: the trading
    #: day of the daily-loss baseline and the day-trade count, and the "now"
    #: that ``days_back`` windows of bars end at. Not an environment setting;
    #: tests give the simulator and the client one clock.
    clock: Callable[[], float] = field(default=time.time, compare=False)
    #: Trade journal: None the default file under the user's data directory,
    #: "off" none, else a SQLite file path (``IB_NICE_FUNCS_JOURNAL``).
    journal: str | None = None
    #: The agent name journal rows carry (``IB_NICE_FUNCS_AGENT``); None the script's name.
    agent: str | None = None
    #: Redis shared by the agent processes of one account (``redis://host:6379/0``);
    #: None: the processes of one host share the safety state through files.
    redis_url: str | None = None
    #: Directory of the per-host shared state (lock and halt files); None: the
    #: user's runtime directory.
    fleet_dir: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spec in _SPECS:
            object.__setattr__(self, spec.name, spec.check(getattr(self, spec.name)))
        if not self.cash_symbols or not all(isinstance(c, str) and c.strip()
                                            for c in self.cash_symbols):
            raise ConfigurationError(
                f"cash_symbols={self.cash_symbols!r} must name at least one symbol, "
                "e.g. 'USD,USDC'; "
                "set IB_NICE_FUNCS_CASH_SYMBOLS or configure(cash_symbols=...)"
            )
        if not self.sources:
            raise ConfigurationError("sources is empty; name at least one, e.g. 'ib,yfinance'")
        _check_client_ids(self.client_ids)
        if self.redis_url is not None:
            _check_redis_url(self.redis_url)
        if not callable(self.clock):
            raise ConfigurationError(
                f"clock={self.clock!r} must be a callable returning UTC epoch seconds"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (missing ones keep defaults).

        Raises:
            ConfigurationError: a variable holds a value of the wrong kind.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in _SPECS:
            raw = env.get(spec.env)
            if raw is None or (spec.kind != "bool" and not raw.strip()):
                continue
            values[spec.name] = spec.check(raw, label=spec.env)
        if env.get("IB_NICE_FUNCS_CLIENT_IDS", "").strip():
            values["client_ids"] = env["IB_NICE_FUNCS_CLIENT_IDS"]
        if env.get("IB_NICE_FUNCS_CASH_SYMBOLS", "").strip():
            values["cash_symbols"] = env["IB_NICE_FUNCS_CASH_SYMBOLS"]
        if env.get("IB_NICE_FUNCS_SOURCES", "").strip():
            values["sources"] = env["IB_NICE_FUNCS_SOURCES"]
        elif values.get("portal_url"):
            values["sources"] = ("ib", "portal", "yfinance")
        return cls().replace(**values)

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied and validated.

        Raises:
            ValueError: an unknown setting name (lists the valid ones).
            ConfigurationError: a value is invalid.
        """
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
            )
        if "sources" in changes:
            changes["sources"] = _parse_sources(changes["sources"])
        if "cash_symbols" in changes:
            changes["cash_symbols"] = _parse_names(changes["cash_symbols"])
        if "client_ids" in changes:
            changes["client_ids"] = _parse_client_ids(changes["client_ids"])
        if "portal_url" in changes and changes["portal_url"] and "sources" not in changes:
            if self.sources == Settings.sources:
                changes["sources"] = ("ib", "portal", "yfinance")
        return dataclasses.replace(self, **changes)


def _parse_sources(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        parts = [p.strip().lower() for p in value.split(",")]
    else:
        parts = [str(p).strip().lower() for p in value]
    parts = [p for p in parts if p]
    if not parts:
        raise ConfigurationError("sources is empty; name at least one, e.g. 'ib,yfinance'")
    return tuple(dict.fromkeys(parts))


def _parse_names(value: Any) -> tuple[str, ...]:
    parts = value.split(",") if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(str(p).strip() for p in parts if str(p).strip()))


def _parse_client_ids(value: Any) -> tuple[int, int]:
    """``"23-54"``, ``"23..54"``, ``(23, 54)`` or ``range(23, 55)`` -> ``(23, 54)``."""
    form = "two client ids as 'FIRST-LAST', e.g. IB_NICE_FUNCS_CLIENT_IDS=23-54"
    if isinstance(value, range):
        if not value or value.step != 1:
            raise ConfigurationError(f"client_ids={value!r}: use {form}")
        return (value.start, value.stop - 1)
    if isinstance(value, str):
        parts = value.replace("..", "-").split("-")
    elif isinstance(value, (tuple, list)):
        parts = list(value)
    else:
        raise ConfigurationError(f"client_ids={value!r}: use {form}")
    try:
        first, last = (int(str(p).strip()) for p in parts)
    except ValueError:
        raise ConfigurationError(f"client_ids={value!r}: use {form}") from None
    return (first, last)


def _check_client_ids(ids: Any) -> None:
    if not (isinstance(ids, tuple) and len(ids) == 2 and 0 <= ids[0] <= ids[1]):
        raise ConfigurationError(
            f"client_ids={ids!r} must be FIRST-LAST with 0 <= FIRST <= LAST "
            "(IB_NICE_FUNCS_CLIENT_IDS=23-54)"
        )


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _check_redis_url(url: Any) -> None:
    """Form only (nothing is connected): scheme, and a host for TCP URLs."""
    from urllib.parse import urlsplit

    form = ("redis_url (IB_NICE_FUNCS_REDIS_URL) must look like redis://HOST:PORT/DB, "
            "rediss://HOST:PORT/DB or unix:///path/to/redis.sock")
    if not isinstance(url, str) or not url.startswith(_REDIS_SCHEMES):
        raise ConfigurationError(f"redis_url={url!r}: {form}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"redis_url={url!r}: {form}") from None
    if parts.scheme == "unix":
        if not parts.path:
            raise ConfigurationError(f"redis_url={url!r}: {form}")
        return
    if not parts.hostname or (port is not None and not 0 < port < 65536):
        raise ConfigurationError(f"redis_url={url!r}: {form}")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ConfigurationError(f"redis_url={url!r}: the database {db!r} is not a number; {form}")


_lock = threading.Lock()
_overrides: dict[str, Any] = {}
_settings: Settings | None = None


def configure(**settings: Any) -> Settings:
    """Change settings for the module-level functions (and new `Client` objects).

    Any setting in :class:`Settings` may be given; the environment supplies
    the rest. Connection settings (host, port, client_id) take effect on the
    next connection: the default client is closed and reopened lazily.

    Returns:
        The settings now in force.

    Raises:
        ValueError: an unknown setting name.
        ConfigurationError: an invalid value.
    """
    global _settings
    with _lock:
        base = _settings or Settings.from_env()
        new = base.replace(**settings)
        _overrides.update(settings)
        _settings = new
    return new


def get_settings() -> Settings:
    """The settings in force: environment (read once) plus ``configure()`` overrides."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = Settings.from_env().replace(**_overrides)
        return _settings


def reset_settings() -> None:
    """Forget ``configure()`` overrides and re-read the environment at next use."""
    global _settings
    with _lock:
        _settings = None
        _overrides.clear()
