"""Regressions found in review: Client.close() against calls and connects in flight."""

from __future__ import annotations

import threading
import time

import pytest

from ib_nice_funcs import Client
from ib_nice_funcs.errors import ConnectionFailedError


def _until(condition, timeout: float = 10.0) -> bool:
    """Poll ``condition`` (bounded); True once it holds."""
    end = time.monotonic() + timeout
    tick = threading.Event()
    while time.monotonic() < end:
        if condition():
            return True
        tick.wait(0.005)
    return condition()


def _call_in_thread(fn):
    out: dict = {}

    def run() -> None:
        started = time.monotonic()
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc
        out["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_close_fails_a_pending_request_at_once(fresh_sim, new_client_id):
    client = Client(port=fresh_sim.port, client_id=new_client_id(), sources="ib", timeout=15)
    try:
        client.server_time()
        fresh_sim.set_latency(10)  # the next answer comes long after close()
        thread, out = _call_in_thread(client.server_time)
        wrapper = client.gateway._ib.wrapper  # the request is in flight once ib_async waits on it
        assert _until(lambda: any(not f.done() for f in list(wrapper._futures.values())))
    finally:
        client.close()
    thread.join(5)
    assert not thread.is_alive(), "the pending call outlived close() (it waited for its timeout)"
    assert isinstance(out.get("error"), ConnectionFailedError), out
    assert "closed" in str(out["error"])
    assert out["elapsed"] < 5


def test_close_during_connect_leaves_no_session_behind(fresh_sim, new_client_id):
    client_id = new_client_id()
    client = Client(port=fresh_sim.port, client_id=client_id, sources="ib", timeout=10)
    gateway = client.gateway
    fresh_sim.set_latency(0.3)  # the handshake takes several round trips
    thread, out = _call_in_thread(client.server_time)
    assert _until(lambda: fresh_sim.request_counts().get("startApi", 0) >= 1)
    client.close()
    thread.join(10)
    assert not thread.is_alive()
    assert isinstance(out.get("error"), ConnectionFailedError), out
    assert not gateway.connected, "a closed Client kept a live session"
    fresh_sim.set_latency(0)
    # The client id is free again, e.g. for the Client configure() builds next.
    with Client(port=fresh_sim.port, client_id=client_id, sources="ib", timeout=10) as again:
        assert again.server_time() is not None


def test_a_closed_client_does_not_reconnect(sim, new_client_id):
    client = Client(port=sim.port, client_id=new_client_id(), sources="ib", timeout=10)
    client.server_time()
    client.close()
    with pytest.raises(ConnectionFailedError, match="closed"):
        client.server_time()
    with pytest.raises(ConnectionFailedError, match="closed"):
        client.trading.get_account_value()
    assert client._gateway is None
    client.close()  # still safe twice
