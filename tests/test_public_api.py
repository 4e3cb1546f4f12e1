"""The public surface: __all__ is the contract, and importing has no side effects."""

from __future__ import annotations

import json
import subprocess
import sys

import ib_nice_funcs

EXPECTED_DATA = {"token_price", "get_current_price", "token_prices", "get_ohlcv_data", "get_data"}
EXPECTED_TRADING = {
    "market_buy", "market_sell", "limit_buy", "limit_sell", "place_order", "cancel_order",
    "cancel_all", "get_open_orders", "get_position", "get_all_positions",
    "get_token_balance_usd", "get_account_value", "get_balance", "kill_switch", "chunk_kill",
    "emergency_stop",
}
EXPECTED_PLUMBING = {"configure", "Client", "register_source", "install", "IBNiceFuncsError"}


def test_all_names_the_design_api():
    names = set(ib_nice_funcs.__all__)
    assert EXPECTED_DATA <= names
    assert EXPECTED_TRADING <= names
    assert EXPECTED_PLUMBING <= names


def test_every_public_name_resolves():
    for name in ib_nice_funcs.__all__:
        assert getattr(ib_nice_funcs, name) is not None, name


def test_unknown_attribute_is_an_attribute_error():
    assert not hasattr(ib_nice_funcs, "open_short")  # agents probe capabilities this way


def test_get_current_price_is_token_price():
    assert ib_nice_funcs.get_current_price is ib_nice_funcs.token_price


_PROBE = r"""
import io, json, socket, sys, contextlib
opened = []
real = socket.socket.connect
def spy(self, *a, **k):
    opened.append(a)
    return real(self, *a, **k)
socket.socket.connect = spy
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    import ib_nice_funcs
    import ib_nice_funcs as n
    n.__all__
heavy = [m for m in ("yfinance", "requests", "ib_async", "pandas") if m in sys.modules]
import threading
print(json.dumps({"opened": opened, "out": out.getvalue(), "err": err.getvalue(),
                  "heavy": heavy, "threads": threading.active_count()}))
"""


def test_import_has_no_side_effects():
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["opened"] == []
    assert report["out"] == "" and report["err"] == ""
    assert report["heavy"] == []
    assert report["threads"] == 1


_EXIT_SCRIPT = r"""
import ib_nice_funcs as n
from ib_nice_funcs.sim import run_simulator
running = run_simulator(seed=3)  # kept referenced: never exited
sim = running.__enter__()
n.configure(port=sim.port, client_id=77, sources="ib")
assert n.token_price("AAPL") > 0
# no close(), no sim exit: the interpreter must still shut down cleanly
"""


def test_interpreter_exit_is_clean_without_close():
    done = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Task was destroyed" not in done.stderr, done.stderr
