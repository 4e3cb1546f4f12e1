"""ib-nice-funcs doctor against the simulator, refused / blackholed / wrong-service ports."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from ib_nice_funcs.cli import main
from ib_nice_funcs.config import get_settings
from ib_nice_funcs.doctor import run_checks


def _statuses(checks):
    return {c.name: c.status for c in checks}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_all_checks_pass_against_the_simulator(sim, new_client_id, capsys):
    code = main(["doctor", "--port", str(sim.port), "--client-id", str(new_client_id()),
                 "--timeout", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    for line in ("ok    port", "ok    handshake", "ok    client id", "ok    account",
                 "ok    market data", "skip  client portal"):
        assert line in out, out
    assert "paper account DU" in out and "all checks passed" in out


def test_a_refused_port(capsys):
    code = main(["doctor", "--port", str(_free_port()), "--timeout", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  port" in out and "refused" in out and "4002" in out  # the fix names the ports
    assert "skip  handshake" in out


def test_a_blackholed_port(fresh_sim, new_client_id):
    fresh_sim.set_blackhole(True)
    settings = get_settings().replace(port=fresh_sim.port, client_id=new_client_id())
    checks = run_checks(settings, probe_timeout=0.5)
    assert _statuses(checks)["port"] == "ok"
    handshake = next(c for c in checks if c.name == "handshake")
    assert handshake.status == "fail" and "never answered" in handshake.detail
    assert "Enable ActiveX and Socket Clients" in handshake.fix
    assert _statuses(checks)["market data"] == "skip"


def test_an_http_server_on_the_port():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = get_settings().replace(port=server.server_address[1])
        checks = run_checks(settings, probe_timeout=0.5)
    finally:
        server.shutdown()
        server.server_close()
    handshake = next(c for c in checks if c.name == "handshake")
    assert handshake.status == "fail" and "HTTP server" in handshake.detail
    assert "IB_PORTAL_URL" in handshake.fix


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


def test_client_id_in_use(sim, new_client_id, make_client):
    busy = make_client(sim)
    busy.server_time()  # connected: its client id is taken
    taken = busy.settings.client_id
    # The package would take the next free id of the range: a warning that names it.
    settings = get_settings().replace(port=sim.port, client_id=taken,
                                      client_ids=(taken, taken + 1))
    checks = run_checks(settings, probe_timeout=2)
    check = next(c for c in checks if c.name == "client id")
    assert check.status == "warn" and "326" in check.detail
    assert f"would connect as client id {taken + 1}" in check.detail
    assert next(c for c in checks if c.name == "account").status == "ok"
    # No free id left in the range: a failure that says how to fix it.
    settings = settings.replace(client_ids=(taken, taken))
    check = next(c for c in run_checks(settings, probe_timeout=2) if c.name == "client id")
    assert check.status == "fail" and "326" in check.detail and "IB_CLIENT_ID" in check.fix


def test_fleet_check_reports_a_halt(sim, make_client, tmp_path):
    settings = get_settings().replace(port=sim.port, fleet_dir=str(tmp_path))
    fleet = next(c for c in run_checks(settings, probe_timeout=2) if c.name == "fleet")
    assert fleet.status == "ok" and str(tmp_path) in fleet.detail
    trader = make_client(sim, fleet_dir=str(tmp_path)).trading
    trader.emergency_stop()
    fleet = next(c for c in run_checks(settings, probe_timeout=2) if c.name == "fleet")
    assert fleet.status == "warn" and "halted" in fleet.detail and "resume" in fleet.fix


def test_fleet_check_fails_for_an_unreachable_redis(sim):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = get_settings().replace(port=sim.port, redis_url=f"redis://127.0.0.1:{port}/0")
    fleet = next(c for c in run_checks(settings, probe_timeout=2) if c.name == "fleet")
    assert fleet.status == "fail" and "unreachable" in fleet.detail
    assert "opening orders are refused" in fleet.fix


def test_market_data_not_subscribed_suggests_delayed_data(fresh_sim, new_client_id):
    fresh_sim.set_market_data_subscribed(False)
    settings = get_settings().replace(port=fresh_sim.port, client_id=new_client_id())
    checks = run_checks(settings, probe_timeout=2)
    check = next(c for c in checks if c.name == "market data")
    assert check.status == "fail" and "354" in check.detail
    assert "market_data_type=3" in check.fix
    # With delayed data configured the same account passes.
    delayed = settings.replace(market_data_type=3, client_id=new_client_id())
    assert _statuses(run_checks(delayed, probe_timeout=2))["market data"] == "ok"


def test_a_live_account_is_a_warning(new_client_id):
    from ib_nice_funcs.sim import run_simulator

    with run_simulator(seed=3, account="U7654321") as live:
        settings = get_settings().replace(port=live.port, client_id=new_client_id())
        checks = run_checks(settings, probe_timeout=2)
    account = next(c for c in checks if c.name == "account")
    assert account.status == "warn" and "LIVE" in account.detail
    assert "ALLOW_LIVE" in account.fix


def test_the_client_portal_session(sim, new_client_id):
    portal = pytest.importorskip("ib_nice_funcs.sim").run_portal_simulator
    try:
        context = portal(tls=False)
        handle = context.__enter__()
    except Exception as exc:  # noqa: BLE001 - the portal simulator is optional here
        pytest.skip(f"Client Portal simulator unavailable: {exc}")
    try:
        settings = get_settings().replace(port=sim.port, client_id=new_client_id(),
                                          portal_url=handle.url)
        ok = next(c for c in run_checks(settings, probe_timeout=2) if c.name == "client portal")
        assert ok.status == "ok", ok
        handle.set_authenticated(False)
        settings = settings.replace(client_id=new_client_id())
        bad = next(c for c in run_checks(settings, probe_timeout=2) if c.name == "client portal")
        assert bad.status == "fail" and "log in" in bad.fix
    finally:
        context.__exit__(None, None, None)


def test_an_unreachable_portal(sim, new_client_id):
    settings = get_settings().replace(port=sim.port, client_id=new_client_id(),
                                      portal_url=f"http://127.0.0.1:{_free_port()}/v1/api")
    check = next(c for c in run_checks(settings, probe_timeout=1) if c.name == "client portal")
    assert check.status == "fail" and "Client Portal gateway" in check.fix
