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
    "Settings", "configure", "get_settings", "reset_settings", "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_IDS",
]

#: Fixed so that a restarted agent reconnects as the same API client and can
#: find the orders it placed before (idempotent client order ids).
DEFAULT_CLIENT_ID = 23
#: Client ids a process may take when its configured one is in use (IB error
#: 326): the second, third... agent on one gateway connects without a setting.
DEFAULT_CLIENT_IDS = (23, 54)

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f"{name}={text!r} is not a boolean; use 1/0, true/false, yes/no")


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
    timeout: float = 10.0
    connect_timeout: float = 4.0
    #: IB market data type: 1 live, 2 frozen, 3 delayed, 4 delayed-frozen.
    market_data_type: int = 1
    #: Seconds a quote stays fresh in the price cache.
    price_ttl: float = 1.0
    #: Streaming market-data lines this client may hold (live tickers kept for
    #: hot symbols and subscribe()/stream_prices()); least recently used first out.
    max_market_data_lines: int = 100
    #: Wall clock (UTC epoch seconds) the trading layer dates things by: the
    #: trading day of the daily-loss baseline and the day-trade count. Not an
    #: environment setting; tests give the simulator and the client one clock.
    clock: Callable[[], float] = field(default=time.time, compare=False)
    #: Redis shared by the agent processes of one account (``redis://host:6379/0``);
    #: None: the processes of one host share the safety state through files.
    redis_url: str | None = None
    #: Directory of the per-host shared state (lock and halt files); None: the
    #: user's runtime directory.
    fleet_dir: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigurationError("host is empty; set IB_HOST or configure(host=...)")
        if not 0 < int(self.port) < 65536:
            raise ConfigurationError(f"port={self.port} is not a TCP port (1..65535)")
        if int(self.client_id) < 0:
            raise ConfigurationError(f"client_id={self.client_id} must be >= 0")
        for name in ("max_position_usd", "max_daily_loss_usd", "max_exposure_usd"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and not math.isnan(value)):
                raise ConfigurationError(f"{name}={value!r} must be a positive number")
        for name in (
            "timeout", "connect_timeout", "portal_penalty_s", "portal_rate_per_s",
            "portal_snapshot_wait_s", "portal_tickle_s",
        ):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ConfigurationError(f"{name}={value!r} must be a positive number of seconds")
        lines = self.max_market_data_lines
        if isinstance(lines, bool) or not isinstance(lines, int) or lines < 1:
            raise ConfigurationError(
                f"max_market_data_lines={lines!r} must be a whole number >= 1 "
                "(IB_NICE_FUNCS_MAX_LINES; IB's default allowance is 100 lines)"
            )
        if self.market_data_type not in (1, 2, 3, 4):
            raise ConfigurationError(
                f"market_data_type={self.market_data_type!r}: use 1 live, 2 frozen, "
                "3 delayed or 4 delayed-frozen"
            )
        if not (isinstance(self.portal_max_confirmations, int) and self.portal_max_confirmations >= 1):
            raise ConfigurationError(
                f"portal_max_confirmations={self.portal_max_confirmations!r} must be a whole number >= 1"
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

        def number(var: str, key: str, kind: type = float) -> None:
            if env.get(var, "").strip():
                try:
                    values[key] = kind(env[var].strip())
                except ValueError:
                    raise ConfigurationError(
                        f"{var}={env[var]!r} is not a {kind.__name__}"
                    ) from None

        def text(var: str, key: str) -> None:
            if env.get(var, "").strip():
                values[key] = env[var].strip()

        def flag(var: str, key: str) -> None:
            if var in env:
                values[key] = _parse_bool(var, env[var])

        text("IB_HOST", "host")
        number("IB_PORT", "port", int)
        number("IB_CLIENT_ID", "client_id", int)
        text("IB_ACCOUNT", "account")
        flag("IB_NICE_FUNCS_ALLOW_LIVE", "allow_live")
        number("IB_MAX_POSITION_USD", "max_position_usd")
        number("IB_MAX_DAILY_LOSS_USD", "max_daily_loss_usd")
        number("IB_MAX_EXPOSURE_USD", "max_exposure_usd")
        flag("IB_NICE_FUNCS_PDT_GUARD", "pdt_guard")
        text("IB_PORTAL_URL", "portal_url")
        text("IB_PORTAL_CA", "portal_ca")
        flag("IB_PORTAL_VERIFY", "portal_verify")
        number("IB_PORTAL_PENALTY_S", "portal_penalty_s")
        number("IB_PORTAL_RATE_PER_S", "portal_rate_per_s")
        number("IB_PORTAL_SNAPSHOT_WAIT_S", "portal_snapshot_wait_s")
        number("IB_PORTAL_TICKLE_S", "portal_tickle_s")
        number("IB_PORTAL_MAX_CONFIRMATIONS", "portal_max_confirmations", int)
        flag("IB_NICE_FUNCS_ORDER_FAILOVER", "order_failover")
        number("IB_NICE_FUNCS_TIMEOUT", "timeout")
        number("IB_NICE_FUNCS_CONNECT_TIMEOUT", "connect_timeout")
        number("IB_NICE_FUNCS_MARKET_DATA_TYPE", "market_data_type", int)
        number("IB_NICE_FUNCS_MAX_LINES", "max_market_data_lines", int)
        text("IB_NICE_FUNCS_CLIENT_IDS", "client_ids")
        text("IB_NICE_FUNCS_REDIS_URL", "redis_url")
        text("IB_NICE_FUNCS_FLEET_DIR", "fleet_dir")
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
