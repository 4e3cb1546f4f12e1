"""SharedBars: bars one process fetched, served to the others from Redis.

Two kinds, per gateway, under ``ib_nice_funcs:fleet:1:gw:<host>:<port>:``:

- kept-up-to-date series (``series:<symbol+timeframe>`` and its lease
  ``series-line:...``): the process holding the lease keeps the one
  ``keepUpToDate`` subscription of the fleet and writes the series after
  each update; the others read it instead of opening their own. The holder
  renews its 10 s lease every few seconds, updates or not (a quiet market
  sends none); a holder that stops (exit, crash) stops renewing it, and the
  next process asking takes the series over;
- finished ranges (``chunk:<request>``): the answer to a plain historical
  request whose range has ended is kept an hour, so the same request from
  another process is not sent to IB again.

Bars are stored as compact JSON columns (epoch seconds and floats) with a
format tag; anything else under the prefix is ignored with one WARNING.
Redis is reached with redis-py's blocking client from the loop thread (one
loopback round trip per call); when it is unreachable every process fetches
its own bars (see :mod:`.health`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

from .link import RedisLink
from .redis_store import KEY_PREFIX
from .state import FORMAT, digest

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["SharedBars", "SharedSeries", "encode_frame", "decode_frame"]

log = logging.getLogger("ib_nice_funcs")

#: A series holder that stops renewing loses it after this long.
SERIES_LEASE_MS = 10_000
#: Finished ranges are kept this long.
_CHUNK_TTL_S = 3600
#: A series nobody renews disappears after this long.
_SERIES_TTL_S = 3600
_COLUMNS = ("open", "high", "low", "close", "volume")


def encode_frame(frame: pd.DataFrame, covers_from: float | None = None) -> str:
    """An OHLCV frame as stored (``covers_from``: epoch seconds the series reaches back to)."""
    stamps = (frame["timestamp"].astype("int64") // 1_000_000_000).tolist() if len(frame) else []
    body: dict[str, Any] = {"format": FORMAT, "kind": "bars", "t": stamps,
                            "covers_from": covers_from, "written": time.time()}
    for col in _COLUMNS:
        body[col] = [None if not math.isfinite(x) else x for x in frame[col].tolist()]
    return json.dumps(body, separators=(",", ":"))


def decode_frame(text: str | bytes | None) -> tuple[pd.DataFrame, float | None] | None:
    """``(frame, covers_from)`` from :func:`encode_frame`; None for nothing or garbage."""
    if text is None:
        return None
    import numpy as np
    import pandas as pd

    try:
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("format") != FORMAT or body.get("kind") != "bars":
            return None
        stamps = body["t"]
        data: dict[str, Any] = {"timestamp": pd.to_datetime(
            np.asarray(stamps, dtype="int64"), unit="s", utc=True)}
        for col in _COLUMNS:
            values = body[col]
            if len(values) != len(stamps):
                return None
            data[col] = np.asarray([np.nan if v is None else v for v in values], dtype="float64")
        covers = body.get("covers_from")
        return pd.DataFrame(data), (float(covers) if covers is not None else None)
    except (ValueError, TypeError, KeyError):
        return None


class SharedSeries:
    """What a follower reads of a kept-up-to-date series."""

    __slots__ = ("frame", "covers_from", "held")

    def __init__(self, frame: pd.DataFrame | None, covers_from: float | None, held: bool) -> None:
        self.frame = frame
        self.covers_from = covers_from
        self.held = held


class SharedBars:
    """The shared bar series and finished ranges of one gateway; thread-safe."""

    def __init__(self, url: str, host: str, port: int, owner: str) -> None:
        self.owner = owner
        self.link = RedisLink(url)
        self._prefix = f"{KEY_PREFIX}:gw:{host}:{port}"
        self._warned_garbage = False

    def _key(self, kind: str, key: Hashable) -> str:
        return f"{self._prefix}:{kind}:{digest(key)}"

    def _decode(self, text: Any) -> tuple[pd.DataFrame, float | None] | None:
        got = decode_frame(text)
        if got is None and text is not None and not self._warned_garbage:
            self._warned_garbage = True
            log.warning("shared bars in Redis are not this version's record; they are ignored")
        return got

    # -- kept-up-to-date series -------------------------------------------------------

    def read_series(self, key: Hashable) -> SharedSeries:
        """The series another process keeps (frame None when none was written)."""

        def run(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.get(self._key("series", key))
            pipe.exists(self._key("series-line", key))
            return pipe.execute()

        got = self.link.run(run, None)
        if got is None:
            return SharedSeries(None, None, False)
        decoded = self._decode(got[0])
        if decoded is None:
            return SharedSeries(None, None, bool(got[1]))
        return SharedSeries(decoded[0], decoded[1], bool(got[1]))

    def acquire(self, key: Hashable) -> bool:
        """Take (or renew) the series lease; True when this process is to keep it."""
        return self.link.acquire(self._key("series-line", key), self.owner, SERIES_LEASE_MS)

    def publish(self, key: Hashable, frame: pd.DataFrame, covers_from: float) -> bool:
        """Write the series and renew its lease; False when another process holds it now."""
        if not self.acquire(key):
            return False
        text = encode_frame(frame, covers_from)
        self.link.run(lambda c: c.set(self._key("series", key), text, ex=_SERIES_TTL_S), None)
        return True

    def renew(self, keys: Sequence[Hashable]) -> set[Hashable]:
        """Renew the leases of the series this process keeps; returns those another took."""
        held = self.link.renew([self._key("series-line", k) for k in keys], self.owner,
                               SERIES_LEASE_MS)
        return {key for key, ok in zip(keys, held, strict=True) if not ok}

    def release(self, key: Hashable) -> None:
        self.link.release(self._key("series-line", key), self.owner)

    # -- finished ranges -------------------------------------------------------------------

    def get_chunk(self, key: Hashable) -> pd.DataFrame | None:
        """The bars another process got for this exact finished request, or None."""
        decoded = self._decode(self.link.run(lambda c: c.get(self._key("chunk", key)), None))
        return decoded[0] if decoded is not None else None

    def put_chunk(self, key: Hashable, frame: pd.DataFrame) -> None:
        text = encode_frame(frame)
        self.link.run(lambda c: c.set(self._key("chunk", key), text, ex=_CHUNK_TTL_S), None)

    def close(self) -> None:
        self.link.close()
