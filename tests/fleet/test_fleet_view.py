"""read_fleet: a watcher's read of the account's halt, baseline and processes.

Against the real stores: this test's fleet directory, a real redis-server,
and records written by another process. The dashboard's pure merges
(:func:`shared_daily_pnl`, :func:`account_halt`) are tested directly.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ib_nice_funcs.config import Settings
from ib_nice_funcs.fleet.local import LocalStore
from ib_nice_funcs.fleet.redis_store import KEY_PREFIX, RedisStore
from ib_nice_funcs.fleet.state import Halt, owner_id
from ib_nice_funcs.fleet.view import RESUME_HINT, owner_alive, read_fleet

from .conftest import REPO

ACCOUNT = "DU1234567"
DAY = "2026-11-18"

#: Another process latches the halt and stores the day's baseline, then exits.
_OTHER_PROCESS = """
import asyncio, os, sys, time
from ib_nice_funcs.fleet.local import LocalStore
from ib_nice_funcs.fleet.state import Halt, owner_id

async def main():
    store = LocalStore(sys.argv[1])
    await store.day_start(sys.argv[2], sys.argv[3], 100_000.0)
    await store.write_halt(sys.argv[2], Halt(owner_id(), time.time(), "emergency_stop()"))
    print(os.getpid())

asyncio.run(main())
"""


def _run(coro):
    return asyncio.run(coro)


def test_an_empty_fleet_reads_as_not_halted_without_a_baseline(fleet_dir):
    view = read_fleet(Settings(fleet_dir=str(fleet_dir)), ACCOUNT, DAY, 3)
    assert view["error"] is None and view["halt"] is None and view["day_start"] is None
    assert view["processes"] == [] and view["where"] == f"files in {fleet_dir}"
    # Reading stored nothing: the first process to look still sets the baseline.
    assert _run(LocalStore(fleet_dir).day_start(ACCOUNT, DAY, 5.0)) == 5.0


def test_a_halt_and_baseline_from_another_process_that_has_exited(fleet_dir):
    done = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, str(fleet_dir), ACCOUNT, DAY],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout)
    view = read_fleet(Settings(fleet_dir=str(fleet_dir)), ACCOUNT, DAY, 3)
    halt = view["halt"]
    assert halt is not None and halt["pid"] == pid and halt["by"].split(":")[1] == str(pid)
    assert halt["alive"] is False and halt["this_process"] is False
    assert halt["reason"] == "emergency_stop()" and halt["resume"] == RESUME_HINT
    assert ACCOUNT in halt["message"] and "resume_trading()" in halt["message"]
    assert view["day_start"] == 100_000.0
    # Another day's baseline is not this one's.
    assert read_fleet(Settings(fleet_dir=str(fleet_dir)), ACCOUNT, "2026-11-19", 3
                      )["day_start"] is None


def test_working_orders_name_their_processes(fleet_dir):
    from ib_nice_funcs.fleet.state import Reservation

    store = LocalStore(fleet_dir)
    mine = owner_id()
    gone = f"{mine.split(':')[0]}:999999999:dead00"
    elsewhere = "another-host:42:abcdef"
    for coid, owner in (("a", mine), ("b", mine), ("c", gone), ("d", elsewhere)):
        _run(store.reserve(ACCOUNT, coid, Reservation(owner, time.time(), "AAPL", "BUY", 100.0)))
    found = {p["owner"]: p for p in read_fleet(Settings(fleet_dir=str(fleet_dir)), ACCOUNT,
                                                 DAY, 3)["processes"]}
    assert found[mine]["working_orders"] == 2 and found[mine]["alive"] is True
    assert found[mine]["this_process"] is True and found[mine]["pid"] == os.getpid()
    assert found[gone]["alive"] is False and found[gone]["working_orders"] == 1
    assert found[elsewhere]["alive"] is None and found[elsewhere]["host"] == "another-host"


def test_an_unreadable_halt_record_reads_as_a_halt(fleet_dir):
    fleet_dir.mkdir(parents=True, exist_ok=True)
    (fleet_dir / f"{ACCOUNT}.json").write_text("not json")
    view = read_fleet(Settings(fleet_dir=str(fleet_dir)), ACCOUNT, DAY, 3)
    assert view["error"] is None and view["halt"] is not None
    assert "unreadable" in view["halt"]["reason"]


def test_an_unwritable_fleet_dir_is_an_error_not_a_raise(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    view = read_fleet(Settings(fleet_dir=str(blocker / "fleet")), ACCOUNT, DAY, 3)
    assert view["error"] is not None and "unreachable" in view["error"]
    assert view["halt"] is None and view["day_start"] is None


def test_an_empty_account_is_refused_before_anything_is_read(fleet_dir):
    with pytest.raises(ValueError, match="account is empty"):
        read_fleet(Settings(fleet_dir=str(fleet_dir)), "", DAY, 3)


def test_redis_halt_and_baseline_and_redis_going_away(redis_server):
    settings = Settings(redis_url=redis_server.url)
    store = RedisStore(redis_server.url)

    async def latch() -> None:
        await store.day_start(ACCOUNT, DAY, 250_000.0)
        await store.write_halt(ACCOUNT, Halt("other-host:77:feed00", 1.7e9, "emergency_stop()"))
        await store.close()

    _run(latch())
    view = read_fleet(settings, ACCOUNT, DAY, 3)
    assert view["error"] is None and view["where"].startswith("Redis at ")
    assert view["day_start"] == 250_000.0
    assert view["halt"] is not None and view["halt"]["by"] == "other-host:77:feed00"
    assert view["halt"]["alive"] is None and view["halt"]["pid"] == 77
    # Garbage under the day's key is no baseline (and is left as it is).
    redis_server.client().set(f"{KEY_PREFIX}:{ACCOUNT}:day:{DAY}", "garbage")
    assert read_fleet(settings, ACCOUNT, DAY, 3)["day_start"] is None
    redis_server.stop()
    gone = read_fleet(settings, ACCOUNT, DAY, 5)
    assert gone["error"] is not None and "unreachable" in gone["error"]
    assert gone["halt"] is None


def test_owner_alive_of_this_process_and_of_other_hosts():
    assert owner_alive(owner_id()) is True
    assert owner_alive("elsewhere:1:abc") is None
    assert owner_alive("garbage") is None


# -- the dashboard's merges (pure) --------------------------------------------------------

pytest.importorskip("starlette", reason="the dashboard extra is not installed")


money = st.floats(min_value=1.0, max_value=1e9, allow_nan=False)


@given(net=money, start=money, trader=st.floats(min_value=-1e9, max_value=1e9))
def test_daily_pnl_counts_from_the_fleet_start_unless_the_risk_check_sees_more_loss(
        net, start, trader):
    from ib_nice_funcs.dashboard.state import shared_daily_pnl

    daily, basis = shared_daily_pnl(net, trader, start)
    assert daily == min(net - start, trader)
    assert basis == ("the fleet's day start" if net - start <= trader
                     else "the risk check's larger loss")
    alone, why = shared_daily_pnl(net, trader, None)
    assert alone == trader and "no day start" in why


def test_the_page_halt_is_the_fleet_latch_when_the_fleet_answers():
    from ib_nice_funcs.dashboard.state import HaltState, account_halt

    own = HaltState()
    halt = {"by": "h:9:abc", "host": "h", "pid": 9, "alive": True, "this_process": False,
            "at": 1.7e9, "reason": "emergency_stop()", "message": "halted ...",
            "resume": RESUME_HINT}
    shown = account_halt(own.view(), {"error": None, "halt": halt})
    assert shown["halted"] and shown["known"] and shown["scope"] == "account"
    assert shown["by_pid"] == 9 and shown["by_this_process"] is False
    assert shown["since"] == 1.7e9 and shown["resume"] == RESUME_HINT
    # The dashboard's own stop, lifted elsewhere (ib-nice-funcs resume): the fleet wins.
    own.halt("emergency stop from the dashboard", {"success": True, "cancelled_orders": 0})
    lifted = account_halt(own.view(), {"error": None, "halt": None})
    assert lifted["halted"] is False and lifted["known"] is True
    assert lifted["last_stop"]["success"] is True
    # The fleet cannot be read: the dashboard's own record, marked as not known.
    blind = account_halt(own.view(), {"error": "files in /x: unreachable"})
    assert blind["halted"] and blind["known"] is False and blind["scope"] == "this dashboard"
    assert blind["by_this_process"] is True and blind["fleet_error"].endswith("unreachable")
    assert account_halt(HaltState().view(), {"error": "down"})["halted"] is False
