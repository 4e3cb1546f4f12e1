"""PaperMarket: a deterministic, I/O-free synthetic market.

Prices are a pure function of ``(seed, symbol, time)``: the log price at each
whole minute is a sum of hashed "value noise" octaves (periods from one minute
to about two years), so any time range is computed on its own, without
walking from an origin.  One-minute bars are built on that lattice (open is
the price at the minute, close the price at the next minute, high/low widen
them by a hashed amount); every larger bar is an exact aggregation of
one-minute bars, and second bars/live quotes come from a per-second path
inside each minute that starts at the open, ends at the close and touches the
high and the low, so bars of every size agree with each other.

Sessions (no holidays): crypto 24/7; FX Sunday 17:00 to Friday 17:00
America/New_York; stocks Monday to Friday, 09:30-16:00 ET regular hours and
04:00-20:00 ET with extended hours.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from zoneinfo import ZoneInfo

import numpy as np

from .catalog import CATALOG, CRYPTO, FX, STOCK, Instrument

__all__ = ["PaperMarket", "Quote", "Bars", "Session", "BAR_KINDS"]

_MINUTES_PER_YEAR = 525_600.0
# Octave periods in minutes: 1, 3, 9, ... 3**12 (about a year): fine minute
# noise up to slow trends.
_PERIODS = tuple(3**j for j in range(13))
_G = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))
_TO_UNIT = 2.0 / 9007199254740992.0  # 2 / 2**53

#: Bar aggregation kinds understood by :meth:`PaperMarket.bars`.
BAR_KINDS = ("seconds", "day", "week", "month")


def _key(*parts: object) -> int:
    """A stable 64-bit key from text parts (Python's ``hash`` is salted per run)."""
    raw = "|".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little")


def _hash_bits(key: int, idx: np.ndarray) -> np.ndarray:
    """64 well-mixed bits per integer index (splitmix64 of index and key)."""
    with np.errstate(over="ignore"):
        z = idx.astype(np.int64).view(np.uint64) * _G + np.uint64(key)
        z ^= z >> _S30
        z *= _M1
        z ^= z >> _S27
        z *= _M2
        z ^= z >> _S31
    return z


def _hash_unit(key: int, idx: np.ndarray) -> np.ndarray:
    """Uniform values in [-1, 1) from a key and integer indices."""
    return (_hash_bits(key, idx) >> _S11).astype(np.float64) * _TO_UNIT - 1.0


def _bits_unit(bits: np.ndarray, shift: int) -> np.ndarray:
    """Uniform values in [0, 1) from 21 bits of ``bits`` starting at ``shift``."""
    return ((bits >> np.uint64(shift)) & np.uint64(0x1FFFFF)).astype(np.float64) / 2097152.0


@dataclass(frozen=True)
class Session:
    """One trading session in UTC epoch seconds.

    Attributes:
        start: first second of the session.
        end: first second after the session.
        trade_date: the session's trade date.
        midnight: UTC epoch of local midnight of ``trade_date`` (bar alignment).
    """

    start: int
    end: int
    trade_date: dt.date
    midnight: int


@dataclass
class Quote:
    """A top-of-book snapshot. Sizes are in shares / units / coins."""

    symbol: str
    time: float
    bid: float
    ask: float
    last: float
    bid_size: float
    ask_size: float
    last_size: float
    volume: float
    open: float
    high: float
    low: float
    prior_close: float
    is_open: bool

    @property
    def mid(self) -> float:
        """Midpoint of bid and ask."""
        return (self.bid + self.ask) / 2.0


@dataclass
class Bars:
    """Bars as numpy arrays (one element per bar).

    ``time`` is the UTC epoch second of each bar's first trade (the bar label);
    ``dates`` holds the trade date of each bar for daily and larger bars, else
    it is None.  ``volume``, ``wap`` and ``count`` are -1 for quote-based bars.
    """

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    wap: np.ndarray
    count: np.ndarray
    dates: list[dt.date] | None = None

    def __len__(self) -> int:
        return int(self.time.size)


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local_epoch(day: dt.date, hour: int, minute: int, tz: ZoneInfo) -> int:
    return int(dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz).timestamp())


def sessions_between(inst: Instrument, t0: float, t1: float, use_rth: bool) -> list[Session]:
    """Sessions of ``inst`` that overlap ``[t0, t1)``, oldest first.

    Raises:
        ValueError: if ``inst`` has an unknown security type.
    """
    tz = _zone(inst.time_zone if inst.sec_type != FX else "US/Eastern")
    first = dt.datetime.fromtimestamp(t0, tz).date() - dt.timedelta(days=2)
    last = dt.datetime.fromtimestamp(t1, tz).date() + dt.timedelta(days=2)
    out: list[Session] = []
    day = first
    one = dt.timedelta(days=1)
    while day <= last:
        midnight = _local_epoch(day, 0, 0, tz)
        if inst.sec_type == CRYPTO:
            start, end = midnight, _local_epoch(day + one, 0, 0, tz)
        elif day.weekday() >= 5:
            day += one
            continue
        elif inst.sec_type == FX:
            start, end = _local_epoch(day - one, 17, 0, tz), _local_epoch(day, 17, 0, tz)
        elif inst.sec_type == STOCK:
            if use_rth:
                start, end = _local_epoch(day, 9, 30, tz), _local_epoch(day, 16, 0, tz)
            else:
                start, end = _local_epoch(day, 4, 0, tz), _local_epoch(day, 20, 0, tz)
        else:
            raise ValueError(f"unknown security type {inst.sec_type!r}")
        if end > t0 and start < t1:
            out.append(Session(start, end, day, midnight))
        day += one
    return out


class PaperMarket:
    """A deterministic synthetic market shared by the gateway simulators.

    Thread-safe for reading; price overrides may be set from any thread.

    Args:
        seed: selects the price paths; equal seeds give equal markets.
        clock: returns the current UTC epoch seconds (inject a fixed or
            stepping clock in tests).
    """

    def __init__(self, seed: int = 0, clock: Callable[[], float] = time.time) -> None:
        self.seed = int(seed)
        self.clock = clock
        self._by_key: dict[str, Instrument] = {}
        self._by_con: dict[int, Instrument] = {}
        for inst in CATALOG:
            self._by_con[inst.con_id] = inst
            for alias in {inst.key, inst.key.replace(".", ""), inst.key.replace(" ", "."),
                          inst.local_symbol}:
                self._by_key.setdefault(alias.upper(), inst)
        self._overrides: dict[str, float] = {}
        self._lock = threading.Lock()
        self._octave_keys: dict[str, tuple[int, ...]] = {}

    # ------------------------------------------------------------------ catalog
    def instruments(self) -> list[Instrument]:
        """All instruments of the catalog."""
        return list(CATALOG)

    def get(self, symbol: str) -> Instrument:
        """Look up an instrument by market key or alias (``EURUSD``, ``BRK B``).

        Raises:
            KeyError: for an unknown symbol.
        """
        inst = self._by_key.get(symbol.strip().upper())
        if inst is None:
            raise KeyError(f"unknown symbol {symbol!r}; known: {', '.join(i.key for i in CATALOG)}")
        return inst

    def by_con_id(self, con_id: int) -> Instrument | None:
        """The instrument with ``con_id``, or None."""
        return self._by_con.get(int(con_id))

    def now(self) -> float:
        """Current time of the market clock (UTC epoch seconds)."""
        return float(self.clock())

    # ---------------------------------------------------------------- overrides
    def set_price(self, symbol: str, price: float | None) -> None:
        """Pin the live price of ``symbol`` (None removes the pin).

        Only live quotes follow the pin; historical bars stay on the
        synthetic path. Tests use it to make resting orders and stops trigger.

        Raises:
            KeyError: for an unknown symbol.
            ValueError: for a non-positive price.
        """
        inst = self.get(symbol)
        if price is not None and price <= 0:
            raise ValueError(f"price must be positive, got {price}")
        with self._lock:
            if price is None:
                self._overrides.pop(inst.key, None)
            else:
                self._overrides[inst.key] = float(price)

    def clear_price(self, symbol: str) -> None:
        """Remove a pin set with :meth:`set_price`."""
        self.set_price(symbol, None)

    # ----------------------------------------------------------------- sessions
    def sessions(self, symbol: str, t0: float, t1: float, use_rth: bool = True) -> list[Session]:
        """Sessions overlapping ``[t0, t1)``; see :func:`sessions_between`."""
        return sessions_between(self.get(symbol), t0, t1, use_rth)

    def is_open(self, symbol: str, t: float | None = None, use_rth: bool = True) -> bool:
        """Whether ``symbol`` trades at ``t`` (default: now)."""
        t = self.now() if t is None else t
        return any(s.start <= t < s.end for s in self.sessions(symbol, t, t + 1, use_rth))

    def last_sessions(self, symbol: str, end: float, count: int,
                      use_rth: bool = True) -> list[Session]:
        """The last ``count`` sessions that started before ``end``, oldest first."""
        inst = self.get(symbol)
        span = 4.0 * 86400 + count * 86400 * 1.6
        found: list[Session] = []
        while len(found) < count and span < 86400 * 366 * 40:
            found = [s for s in sessions_between(inst, end - span, end, use_rth) if s.start < end]
            span *= 2
        return found[-count:]

    # -------------------------------------------------------------- price paths
    def _keys(self, inst: Instrument) -> tuple[int, ...]:
        keys = self._octave_keys.get(inst.key)
        if keys is None:
            keys = tuple(_key(self.seed, inst.key, n) for n in range(len(_PERIODS) + 8))
            self._octave_keys[inst.key] = keys
        return keys

    def _lattice(self, inst: Instrument, k: np.ndarray) -> np.ndarray:
        """Price at whole minutes ``k`` (minutes since the epoch), unrounded.

        Octaves of 27 minutes and longer are summed exactly on a 27-minute
        grid and interpolated linearly between grid points; the short octaves
        are added per minute. This is the definition of the path (not an
        approximation of another one), and keeps long ranges cheap.
        """
        keys = self._keys(inst)
        if k.size == 0:
            return np.zeros(0)
        grid = _PERIODS[3]
        amps = [0.75 * inst.annual_vol * np.sqrt(p / _MINUTES_PER_YEAR) for p in _PERIODS]
        g = k // grid
        g0 = int(g[0]) if k.size else 0
        gk = np.arange(g0, int(g[-1]) + 2, dtype=np.int64) * grid
        coarse = np.zeros(gk.size)
        for j in range(3, len(_PERIODS)):
            coarse += amps[j] * self._octave(keys[j], _PERIODS[j], gk)
        frac = (k - g * grid).astype(np.float64) / grid
        c0 = coarse[g - g0]
        logp = c0 + (coarse[g - g0 + 1] - c0) * frac
        logp += amps[0] * _hash_unit(keys[0], k)
        for j in (1, 2):
            logp += amps[j] * self._octave(keys[j], _PERIODS[j], k)
        return inst.base_price * np.exp(logp)

    @staticmethod
    def _octave(key: int, period: int, k: np.ndarray) -> np.ndarray:
        """Smooth value noise of one period at sorted minutes ``k``."""
        q = k // period
        q0 = int(q[0])
        vals = _hash_unit(key, np.arange(q0, int(q[-1]) + 2, dtype=np.int64))
        r = (k - q * period).astype(np.float64) / period
        s = r * r * (3.0 - 2.0 * r)
        v0 = vals[q - q0]
        return v0 + (vals[q - q0 + 1] - v0) * s

    def _round(self, inst: Instrument, x: np.ndarray) -> np.ndarray:
        return np.round(np.round(x / inst.min_tick) * inst.min_tick, inst.price_decimals)

    def _minute_ohlcv(self, inst: Instrument, k: np.ndarray, sod: np.ndarray | None = None):
        """One-minute bars for sorted minutes ``k``: open, high, low, close, volume."""
        keys = self._keys(inst)
        pts = self._lattice(inst, np.concatenate([k, k[-1:] + 1]))
        o, c = pts[:-1], pts[1:]
        bits = _hash_bits(keys[-1], k)
        wig = 0.75 * inst.annual_vol * np.sqrt(1.0 / _MINUTES_PER_YEAR)
        hi = np.maximum(o, c) * np.exp(wig * _bits_unit(bits, 0))
        lo = np.minimum(o, c) * np.exp(-wig * _bits_unit(bits, 21))
        o, hi, lo, c = (self._round(inst, a) for a in (o, hi, lo, c))
        vol = self._minute_volume(inst, _bits_unit(bits, 42), sod)
        return o, hi, lo, c, vol

    def _minute_volume(self, inst: Instrument, u: np.ndarray, sod: np.ndarray | None) -> np.ndarray:
        if inst.minute_volume <= 0:
            return np.zeros(u.shape)
        base = inst.minute_volume * np.exp(1.2 * u - 0.6)
        if inst.sec_type == STOCK and sod is not None:
            rth = (sod >= 9.5 * 3600) & (sod < 16 * 3600)
            x = np.clip((sod - 9.5 * 3600) / 23400.0, 0.0, 1.0)
            base = base * np.where(rth, 0.6 + 2.4 * (2 * x - 1) ** 2, 0.05)
        step = inst.size_increment if inst.sec_type == CRYPTO else 1.0
        return np.maximum(np.round(base / step) * step, step)

    def _second_path(self, inst: Instrument, k: np.ndarray, o, hi, lo, c) -> np.ndarray:
        """Per-second prices of minutes ``k`` as an ``(n, 60)`` array."""
        keys = self._keys(inst)
        n = k.size
        s = np.arange(60, dtype=np.float64)
        base = o[:, None] + (c - o)[:, None] * (s / 59.0)[None, :]
        sec_idx = (k[:, None] * 60 + np.arange(60)[None, :]).ravel()
        noise = _hash_unit(keys[-4], sec_idx).reshape(n, 60)
        path = base + noise * ((hi - lo)[:, None] * 0.5) * np.sin(np.pi * s / 59.0)[None, :]
        path = np.clip(path, lo[:, None], hi[:, None])
        picks = ((_hash_unit(keys[-5], k) + 1.0) * 0.5 * 57).astype(np.int64) + 1
        other = ((picks + 1 + ((_hash_unit(keys[-6], k) + 1.0) * 27).astype(np.int64)) % 58) + 1
        other = np.where(other == picks, picks % 58 + 1, other)
        rows = np.arange(n)
        path[rows, picks] = hi
        path[rows, other] = lo
        path[:, 0] = o
        path[:, 59] = c
        return self._round(inst, path)

    def _minutes(self, inst: Instrument, t0: float, t1: float, use_rth: bool):
        """Whole minutes of the sessions overlapping [t0, t1): k, session index, sod."""
        sess = sessions_between(inst, t0, t1, use_rth)
        ks, idx, sods = [], [], []
        for i, s in enumerate(sess):
            a = max(s.start, int(t0) - int(t0) % 60)
            b = min(s.end, int(np.ceil(t1 / 60.0)) * 60)
            if b <= a:
                continue
            k = np.arange(a // 60, (b + 59) // 60, dtype=np.int64)
            ks.append(k)
            idx.append(np.full(k.size, i, dtype=np.int64))
            sods.append(k * 60 - s.midnight)
        if not ks:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty, sess
        return np.concatenate(ks), np.concatenate(idx), np.concatenate(sods), sess

    # --------------------------------------------------------------------- bars
    def bars(self, symbol: str, start: float, end: float, bar_seconds: int = 60,
             kind: str = "seconds", what: str = "TRADES", use_rth: bool = True) -> Bars:
        """Bars overlapping ``[start, end)``.

        Intraday bars (``kind="seconds"``) are aligned to multiples of
        ``bar_seconds`` from local midnight and never span two sessions;
        a bucket that overlaps ``start`` is returned whole. ``kind`` may also be
        ``day``, ``week`` or ``month`` (trade-date buckets). ``what`` is
        ``TRADES``/``AGGTRADES``/``ADJUSTED_LAST`` (volume, wap, count filled),
        ``MIDPOINT``, ``BID``, ``ASK`` or ``BID_ASK`` (volume, wap, count are -1).
        No validation of IB's request rules happens here; see ``_history``.

        Raises:
            KeyError: unknown symbol.
            ValueError: unknown ``kind`` or ``what``, or a bad bar size.
        """
        inst = self.get(symbol)
        if kind not in BAR_KINDS:
            raise ValueError(f"kind must be one of {BAR_KINDS}, got {kind!r}")
        if what == "ADJUSTED_LAST":  # no dividends or splits in the paper market
            what = "TRADES"
        if what not in ("TRADES", "AGGTRADES", "MIDPOINT", "BID", "ASK", "BID_ASK"):
            raise ValueError(f"unsupported whatToShow {what!r}")
        if kind == "seconds" and (bar_seconds <= 0 or (bar_seconds < 60 and 60 % bar_seconds)
                                  or (bar_seconds >= 60 and bar_seconds % 60)):
            raise ValueError(f"bad bar size {bar_seconds} s")
        pad = {"seconds": bar_seconds, "day": 86400, "week": 8 * 86400, "month": 32 * 86400}[kind]
        k, sidx, sod, sess = self._minutes(inst, start - pad, end, use_rth)
        if k.size == 0:
            return _empty_bars(kind != "seconds")
        o, h, lo, c, v = self._minute_ohlcv(inst, k, sod)
        t = k * 60
        # A tick at second s happens at time s; bars hold the ticks before `end`,
        # so the minute holding `end` is cut there from the per-second path.
        n = int(np.ceil(end - t[-1]))
        if n < 60:
            secs = self._second_path(inst, k[-1:], o[-1:], h[-1:], lo[-1:], c[-1:])[0]
            part = secs[:n]
            o[-1], h[-1], lo[-1], c[-1] = part[0], part.max(), part.min(), part[-1]
            step = inst.size_increment if inst.sec_type == CRYPTO else 1.0
            v[-1] = max(step, np.round(v[-1] * n / 60.0 / step) * step) if v[-1] > 0 else 0.0
        if kind == "seconds" and bar_seconds < 60:
            return self._second_bars(inst, k, sidx, sod, sess, o, h, lo, c, v, bar_seconds,
                                     start, end, what)
        if kind == "seconds":
            keys = sidx * 10_000_000 + (sod // bar_seconds)
        else:
            dates = [sess[i].trade_date for i in range(len(sess))]
            ords = np.array([d.toordinal() for d in dates], dtype=np.int64)
            if kind == "day":
                bucket_of_sess = ords
            elif kind == "week":
                bucket_of_sess = ords - np.array([d.weekday() for d in dates], dtype=np.int64)
            else:
                bucket_of_sess = np.array([d.year * 12 + d.month for d in dates], dtype=np.int64)
            keys = bucket_of_sess[sidx]
        bars = _aggregate(keys, t, o, h, lo, c, v, inst)
        keep = bars.pop("last_t") >= start
        first_sidx = sidx[bars.pop("first")]
        out = _kept_bars(bars, keep)
        if kind != "seconds":
            out.dates = [sess[i].trade_date for i in first_sidx[keep]]
        return self._quote_side(inst, out, what)

    def _second_bars(self, inst, k, sidx, sod, sess, o, h, lo, c, v, bar_seconds, start, end, what):
        path = self._second_path(inst, k, o, h, lo, c).ravel()
        t = (k[:, None] * 60 + np.arange(60)[None, :]).ravel()
        per_sec = np.repeat(v / 60.0, 60)
        sel = (t < end) & (t >= start - bar_seconds)
        t, path, per_sec = t[sel], path[sel], per_sec[sel]
        ssod = np.repeat(sod, 60)[sel] + (t % 60)
        keys = np.repeat(sidx, 60)[sel] * 10_000_000 + ssod // bar_seconds
        bars = _aggregate(keys, t, path, path, path, path, per_sec, inst)
        keep = bars.pop("last_t") >= start
        bars.pop("first")
        out = _kept_bars(bars, keep)
        return self._quote_side(inst, out, what)

    def _quote_side(self, inst: Instrument, bars: Bars, what: str) -> Bars:
        if what in ("TRADES", "AGGTRADES"):
            return bars
        neg = np.full(len(bars), -1.0)
        bars.volume, bars.wap, bars.count = neg, neg.copy(), neg.astype(np.int64)
        if what == "MIDPOINT":
            return bars
        half = self._half_spread(inst, bars.open)
        if what == "BID_ASK":  # IB: time-average bid, max ask, min bid, time-average ask
            mean = (bars.open + bars.close) / 2.0
            o, h, lo, c = mean - half, bars.high + half, bars.low - half, mean + half
            bars.open, bars.high, bars.low, bars.close = (self._round(inst, x)
                                                          for x in (o, h, lo, c))
            return bars
        sign = -1.0 if what == "BID" else 1.0
        for name in ("open", "high", "low", "close"):
            setattr(bars, name, self._round(inst, getattr(bars, name) + sign * half))
        return bars

    def _half_spread(self, inst: Instrument, price: np.ndarray | float):
        ticks = np.maximum(1.0, np.round(np.asarray(price) * inst.spread_frac / inst.min_tick))
        return ticks * inst.min_tick

    # ------------------------------------------------------------------- quotes
    def price(self, symbol: str, t: float | None = None) -> float:
        """Last trade price (FX: the midpoint) of ``symbol`` at ``t`` (default now)."""
        return self.quote(symbol, t).last

    def quote(self, symbol: str, t: float | None = None) -> Quote:
        """Top of book and day statistics of ``symbol`` at ``t`` (default now).

        Outside trading hours the last price is the close of the latest
        session. A pin set by :meth:`set_price` replaces the last price.

        Raises:
            KeyError: unknown symbol.
        """
        inst = self.get(symbol)
        t = self.now() if t is None else float(t)
        # Stocks trade 04:00-20:00 ET; the prior close is the previous regular close.
        sess = self.last_sessions(inst.key, t + 1e-9, 2, use_rth=False)
        cur = sess[-1]
        open_now = cur.start <= t < cur.end
        upto = t if open_now else cur.end - 1
        # The tick at exactly t is known at t.
        day = self.bars(inst.key, cur.start, upto + 1e-6, 86400, "day", "TRADES", use_rth=False)
        prev_day = self.last_sessions(inst.key, cur.start, 1, use_rth=True)
        prev = self.bars(inst.key, prev_day[0].start, prev_day[0].end, 86400, "day", "TRADES",
                         use_rth=True) if prev_day else None
        prior_close = (float(prev.close[-1]) if prev is not None and len(prev)
                       else float(day.open[0]))
        last = float(day.close[-1])
        with self._lock:
            pinned = self._overrides.get(inst.key)
        if pinned is not None:
            last = float(self._round(inst, np.array([pinned]))[0])
        half = float(self._half_spread(inst, last))
        bid = float(self._round(inst, np.array([last - half]))[0])
        ask = float(self._round(inst, np.array([last + half]))[0])
        # Sizes move with each second while the market trades, and stand
        # still while it is closed (a closed market sends no ticks).
        sec = int(t) if open_now else int(cur.end)
        r = _hash_unit(self._keys(inst)[-7], np.array([sec, sec + 1, sec + 2], dtype=np.int64))
        unit = {STOCK: 100.0, FX: 100_000.0}.get(inst.sec_type, 0.1)
        sizes = np.round((r + 1.5) * 4.0) * unit
        return Quote(
            symbol=inst.key, time=t, bid=bid, ask=ask, last=last,
            bid_size=float(sizes[0]), ask_size=float(sizes[1]), last_size=float(sizes[2]),
            volume=float(day.volume[-1]) if inst.minute_volume > 0 else 0.0,
            open=float(day.open[-1]), high=max(float(day.high[-1]), last),
            low=min(float(day.low[-1]), last), prior_close=prior_close, is_open=open_now,
        )

    def quotes(self, symbols: Iterable[str], t: float | None = None) -> dict[str, Quote]:
        """Quotes of several symbols at one instant."""
        t = self.now() if t is None else t
        return {s: self.quote(s, t) for s in symbols}


def _aggregate(keys, t, o, h, lo, c, v, inst: Instrument) -> dict[str, np.ndarray]:
    """Group consecutive equal keys into bars."""
    cut = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate([[0], cut]).astype(np.int64)
    ends = np.concatenate([cut, [keys.size]]).astype(np.int64)
    vol = np.add.reduceat(v, starts)
    typical = (h + lo + c) / 3.0
    wsum = np.add.reduceat(typical * v, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        wap = np.where(vol > 0, wsum / np.where(vol > 0, vol, 1.0), c[ends - 1])
    lot = inst.minute_volume / 60.0 if inst.minute_volume > 0 else 1.0
    count_v = np.maximum(1, np.round(v / max(lot, 1e-9) * 3)).astype(np.int64)
    if inst.sec_type == CRYPTO:
        vol = np.round(vol, inst.size_decimals)
    else:
        vol = np.round(vol)
    return {
        "time": t[starts],
        "open": o[starts],
        "high": np.maximum.reduceat(h, starts),
        "low": np.minimum.reduceat(lo, starts),
        "close": c[ends - 1],
        "volume": vol,
        "wap": np.round(wap, inst.price_decimals + 2),
        "count": np.add.reduceat(count_v, starts),
        "last_t": t[ends - 1],
        "first": starts,
    }


def _kept_bars(cols: dict[str, np.ndarray], keep: np.ndarray) -> Bars:
    """The rows of ``_aggregate``'s bar columns where ``keep`` is true."""
    return Bars(time=cols["time"][keep], open=cols["open"][keep], high=cols["high"][keep],
                low=cols["low"][keep], close=cols["close"][keep], volume=cols["volume"][keep],
                wap=cols["wap"][keep], count=cols["count"][keep])


def _empty_bars(daily: bool) -> Bars:
    z = np.zeros(0)
    return Bars(np.zeros(0, dtype=np.int64), z, z, z, z, z, z, np.zeros(0, dtype=np.int64),
                [] if daily else None)
