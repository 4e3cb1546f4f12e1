"""LocalStore: the fleet state of one host, in files (no Redis needed).

Per account, under the user's runtime directory (``$XDG_RUNTIME_DIR/
ib_nice_funcs``, else ``<tmp>/ib_nice_funcs-<uid>``; ``fleet_dir`` to
choose):

- ``<account>.risk.lock``: the account-wide risk lock, an OS file lock
  (``flock``): the OS releases it when its holder exits or dies, which is
  the lease;
- ``<account>.json``: the halt, client order id claims and day-start
  values, rewritten atomically under ``<account>.state.lock``.

File operations take well under a millisecond, so they run inline on the
loop thread; waiting for the risk lock polls without blocking the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from ..errors import FleetUnavailableError
from .state import Claim, Halt, Reservation, account_slug, decode, encode
from .store import HALT_UNREADABLE, RiskLockBusyError

try:  # POSIX; elsewhere the lock only orders the Clients of this process
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LocalStore", "default_dir"]

log = logging.getLogger("ib_nice_funcs")

#: Claims and day starts older than this are dropped when the file is rewritten.
_KEEP_S = 3 * 86400.0
_POLL_FIRST_S = 0.001
_POLL_MAX_S = 0.02


def default_dir() -> Path:
    """The per-user runtime directory the fleet files go to by default."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "ib_nice_funcs"
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"ib_nice_funcs-{uid}"


class LocalStore:
    """The files of one directory; see the module docstring."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.dir = Path(directory) if directory else default_dir()
        self.where = f"files in {self.dir}"
        self._warned = False

    # -- files -----------------------------------------------------------------

    def _path(self, account: str, suffix: str) -> Path:
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise FleetUnavailableError(
                f"cannot create the fleet state directory {self.dir}: {exc}. Set "
                "IB_NICE_FUNCS_FLEET_DIR (or configure(fleet_dir=...)) to a writable directory"
            ) from exc
        return self.dir / f"{account_slug(account)}{suffix}"

    @contextlib.contextmanager
    def _state(self, account: str, write: bool) -> Iterator[dict[str, Any]]:
        """The account's JSON state under its state lock; written back when ``write``."""
        path = self._path(account, ".json")
        try:
            with open(self._path(account, ".state.lock"), "a+") as lock:
                if fcntl is not None:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
                state = self._load(path)
                yield state
                if write:
                    self._prune(state)
                    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(state))
                    os.replace(tmp, path)
        except OSError as exc:
            raise FleetUnavailableError(f"the fleet state file {path} failed: {exc}") from exc

    def _load(self, path: Path) -> dict[str, Any]:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return {"halt": None, "claims": {}, "day_start": {}, "working": {}}
        try:
            state = json.loads(text)
            if not (isinstance(state, dict) and isinstance(state.get("claims"), dict)
                    and isinstance(state.get("day_start"), dict)):
                raise ValueError("not a fleet state")
        except ValueError:
            if not self._warned:
                self._warned = True
                log.warning("the fleet state file %s is unreadable (another version?); it is "
                            "ignored, and trading counts as halted until resume_trading()", path)
            return {"halt": "unreadable", "claims": {}, "day_start": {}, "working": {}}
        state.setdefault("working", {})
        return state

    @staticmethod
    def _prune(state: dict[str, Any]) -> None:
        oldest = time.time() - _KEEP_S
        claims = state["claims"]
        for coid, text in list(claims.items()):
            claim = decode("claim", text)
            if not isinstance(claim, Claim) or claim.at < oldest:
                del claims[coid]
        working = state["working"]
        for coid, text in list(working.items()):
            held = decode("reservation", text)
            if not isinstance(held, Reservation) or held.at < time.time() - 86400.0:
                del working[coid]
        days = sorted(state["day_start"])
        for day in days[:-3]:
            del state["day_start"][day]

    # -- FleetStore --------------------------------------------------------------

    async def read_halt(self, account: str) -> Halt | None:
        with self._state(account, write=False) as state:
            text = state.get("halt")
        if text is None:
            return None
        halt = decode("halt", text)
        return halt if isinstance(halt, Halt) else HALT_UNREADABLE

    async def write_halt(self, account: str, halt: Halt) -> None:
        with self._state(account, write=True) as state:
            if not isinstance(decode("halt", state.get("halt")), Halt):
                state["halt"] = encode(halt)

    async def clear_halt(self, account: str) -> Halt | None:
        with self._state(account, write=True) as state:
            text, state["halt"] = state.get("halt"), None
        lifted = decode("halt", text)
        return lifted if isinstance(lifted, Halt) else None

    @contextlib.asynccontextmanager
    async def risk_lock(self, account: str, lease_s: float, wait_s: float) -> AsyncIterator[None]:
        path = self._path(account, ".risk.lock")
        try:
            handle = open(path, "a+")
        except OSError as exc:
            raise FleetUnavailableError(f"cannot open the risk lock {path}: {exc}") from exc
        try:
            if fcntl is not None:
                await self._acquire(handle, path, wait_s)
            yield
        finally:
            handle.close()  # closing releases the flock

    @staticmethod
    async def _acquire(handle: Any, path: Path, wait_s: float) -> None:
        give_up = time.monotonic() + wait_s
        pause = _POLL_FIRST_S
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            if time.monotonic() >= give_up:
                raise RiskLockBusyError(
                    f"the account-wide risk lock {path} stayed held by another process for "
                    f"{wait_s:g} s; the opening order was not sent. Call again")
            await asyncio.sleep(pause)
            pause = min(_POLL_MAX_S, pause * 2)

    async def claim(self, account: str, client_order_id: str, claim: Claim,
                    replace: bool = False) -> Claim | None:
        with self._state(account, write=True) as state:
            held = decode("claim", state["claims"].get(client_order_id))
            if isinstance(held, Claim) and held.owner != claim.owner and not replace:
                return held
            state["claims"][client_order_id] = encode(claim)
        return None

    async def reserve(self, account: str, client_order_id: str, reservation: Reservation
                      ) -> None:
        with self._state(account, write=True) as state:
            state["working"][client_order_id] = encode(reservation)

    async def release(self, account: str, client_order_id: str) -> None:
        with self._state(account, write=True) as state:
            state["working"].pop(client_order_id, None)

    async def reservations(self, account: str) -> list[Reservation]:
        with self._state(account, write=False) as state:
            texts = list(state["working"].values())
        found = [decode("reservation", text) for text in texts]
        return [r for r in found if isinstance(r, Reservation)]

    async def day_start(self, account: str, day: str, net_liquidation: float) -> float:
        with self._state(account, write=True) as state:
            stored = decode("day_start", state["day_start"].get(day))
            if isinstance(stored, float):
                return stored
            state["day_start"][day] = encode(float(net_liquidation))
        return float(net_liquidation)

    async def read_day_start(self, account: str, day: str) -> float | None:
        with self._state(account, write=False) as state:
            stored = decode("day_start", state["day_start"].get(day))
        return stored if isinstance(stored, float) else None

    async def close(self) -> None:
        return None
