"""Session endpoints, TLS, authentication and the pre-flight."""

from __future__ import annotations

import pytest
import requests

from ib_nice_funcs.sim import run_portal_simulator
from ib_nice_funcs.sim._portal_tls import available_backends

from .conftest import AAPL, TIMEOUT, Api, make_session


def test_status_and_tickle(api):
    st = api.post("/iserver/auth/status")
    assert st.status_code == 200
    body = st.json()
    assert body["authenticated"] is True and body["connected"] is True
    assert body["competing"] is False and "serverInfo" in body
    assert api.get("/iserver/auth/status").json()["authenticated"] is True
    tk = api.post("/tickle").json()
    assert tk["iserver"]["authStatus"]["authenticated"] is True
    assert isinstance(tk["session"], str) and tk["collission"] is False
    assert tk["hmds"] == {"error": "no bridge"}  # as the real gateway often says


def test_accounts_preflight_payloads(api, portal):
    acc = api.get("/iserver/accounts").json()
    assert acc["accounts"] == ["DU1234567"] and acc["selectedAccount"] == "DU1234567"
    assert acc["isPaper"] is True
    pa = api.get("/portfolio/accounts").json()
    assert pa[0]["accountId"] == "DU1234567" and pa[0]["type"] == "DEMO"


@pytest.mark.parametrize("backend", ["cryptography", "openssl"])
def test_tls_verifies_with_the_ca_and_fails_without(backend, market):
    if backend not in available_backends():
        pytest.skip(f"{backend} not available here")
    with run_portal_simulator(market=market, tls_backend=backend,
                              enforce_rate_limits=False) as h:
        assert h.url.startswith("https://127.0.0.1:") and h.url.endswith("/v1/api")
        s = make_session(h)
        assert s.post(h.url + "/iserver/auth/status", timeout=TIMEOUT).status_code == 200
        # the certificate also names localhost
        local = h.url.replace("127.0.0.1", "localhost")
        assert s.post(local + "/tickle", timeout=TIMEOUT).status_code == 200
        plain = requests.Session()
        plain.trust_env = False  # default verify: the certifi bundle, which lacks our CA
        with pytest.raises(requests.exceptions.SSLError):
            plain.post(h.url + "/iserver/auth/status", timeout=TIMEOUT)
        with pytest.raises(requests.exceptions.SSLError):
            requests.post(h.url + "/tickle", timeout=TIMEOUT, verify=True)
        ca = h.ca_path
        assert open(ca).read().startswith("-----BEGIN CERTIFICATE-----")
    import os

    assert not os.path.exists(ca)  # the TLS files go with the simulator


def test_plain_http(market):
    with run_portal_simulator(market=market, tls=False, enforce_rate_limits=False) as h:
        assert h.url.startswith("http://") and h.ca_path is None
        s = make_session(h)
        assert s.get(h.url + "/iserver/auth/status", timeout=TIMEOUT).json()["authenticated"]
        with pytest.raises(requests.exceptions.SSLError):
            s.get(h.url.replace("http://", "https://") + "/tickle", timeout=TIMEOUT)


def test_unauthenticated_is_401_everywhere_until_login(api, portal):
    api.preflight()
    portal.set_authenticated(False)
    for method, path in (("POST", "/iserver/auth/status"), ("POST", "/tickle"),
                         ("GET", "/iserver/accounts"), ("GET", "/portfolio/accounts"),
                         ("GET", "/iserver/marketdata/snapshot?conids=265598")):
        r = api.s.request(method, api.url + path, timeout=TIMEOUT)
        assert r.status_code == 401, path
    portal.set_authenticated(True)
    assert api.post("/iserver/auth/status").status_code == 200
    # a new login is a new session: the pre-flight is needed again
    r = api.get("/iserver/marketdata/snapshot", params={"conids": AAPL})
    assert r.status_code == 400 and "accounts" in r.json()["error"]


def test_no_bridge_until_ssodh_init(api, portal):
    api.preflight()
    portal.set_no_bridge(True)
    st = api.post("/iserver/auth/status").json()
    assert st["authenticated"] is False and st["connected"] is True
    assert api.post("/tickle").json()["iserver"]["authStatus"]["authenticated"] is False
    r = api.get("/iserver/accounts")
    assert r.status_code == 400 and r.json()["error"] == "Bad Request: no bridge"
    assert api.get("/iserver/marketdata/history", params={"conid": AAPL}).status_code == 400
    # the portfolio service does not need the brokerage session
    assert api.get("/portfolio/accounts").status_code == 200
    init = api.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": True})
    assert init.status_code == 200 and init.json()["authenticated"] is True
    assert api.post("/iserver/auth/status").json()["authenticated"] is True
    # the brokerage session is new: pre-flight again
    assert api.get("/iserver/marketdata/snapshot", params={"conids": AAPL}).status_code == 400
    assert api.get("/iserver/accounts").status_code == 200
    assert api.get("/iserver/marketdata/snapshot", params={"conids": AAPL}).status_code == 200


def test_competing_session(api, portal):
    portal.set_competing(True)
    assert api.post("/iserver/auth/status").json()["competing"] is True
    assert api.get("/iserver/accounts").status_code == 400
    api.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": True})
    st = api.post("/iserver/auth/status").json()
    assert st["competing"] is False and st["authenticated"] is True


def test_session_times_out_without_requests(market, clock):
    from .conftest import StepClock

    mono = StepClock(1000.0)
    with run_portal_simulator(market=market, clock=mono, enforce_rate_limits=False) as h:
        h.set(session_timeout_s=300.0)
        api = Api(h)
        api.preflight()
        mono.advance(200)
        assert api.post("/tickle").status_code == 200  # keeps it alive
        mono.advance(200)
        assert api.get("/iserver/accounts").status_code == 200
        mono.advance(301)
        assert api.post("/iserver/auth/status").json()["authenticated"] is False
        assert api.get("/iserver/accounts").status_code == 400
        api.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": True})
        assert api.get("/iserver/accounts").status_code == 200
        api.close()


def test_unknown_paths_and_methods(api):
    assert api.get("/iserver/nope").status_code == 404
    assert api.s.get(api.url.replace("/v1/api", "") + "/other", timeout=TIMEOUT).status_code == 404
    assert api.delete("/iserver/accounts").status_code == 405
    r = api.s.post(api.url + "/iserver/auth/ssodh/init", data=b"{not json",
                   headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert r.status_code == 400 and "JSON" in r.json()["error"]


def test_logout_ends_the_session(api, portal):
    assert api.post("/logout").json() == {"status": True}
    assert api.post("/tickle").status_code == 401
    portal.set_authenticated(True)
    assert api.post("/tickle").status_code == 200


def test_request_counts(api, portal):
    api.post("/tickle")
    api.post("/tickle")
    api.get("/iserver/accounts")
    api.get(f"/portfolio/{api.acct}/positions/0")
    counts = portal.request_counts()
    assert counts["POST /tickle"] == 2 and counts["GET /iserver/accounts"] == 1
    assert counts["GET /portfolio/{acct}/positions/{page}"] == 1
    assert portal.count_429 == 0 and portal.order_count == 0


def test_tls_refused_clearly_without_a_backend(market, monkeypatch):
    from ib_nice_funcs.sim import _portal_tls

    monkeypatch.setattr(_portal_tls, "available_backends", lambda: [])
    with pytest.raises(_portal_tls.TlsUnavailableError, match="cryptography.*tls=False"):
        with run_portal_simulator(market=market):
            pass
    with run_portal_simulator(market=market, tls=False) as h:  # plain HTTP still works
        assert h.url.startswith("http://")
