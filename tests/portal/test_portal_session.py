"""Session, TLS and keep-alive against the Client Portal simulator over real HTTPS."""

from __future__ import annotations

import logging
import time

import pytest

from ib_nice_funcs.errors import ConnectionFailedError, SourceUnavailableError
from ib_nice_funcs.portal import http as portal_http
from ib_nice_funcs.portal.client import PortalClient
from ib_nice_funcs.symbols import parse_symbol

from .conftest import no_429, open_source

AAPL = parse_symbol("AAPL")


# --- TLS ----------------------------------------------------------------------------------------


def test_tls_verification_is_on_by_default_and_fails_without_the_ca(cp):
    with open_source(cp, portal_ca=None) as src:
        with pytest.raises(ConnectionFailedError, match=r"TLS verification .* failed.*PORTAL_CA"):
            src.prices([AAPL], timeout=5)
    assert cp.request_counts().get("POST /iserver/auth/status", 0) >= 0  # nothing else to check
    no_429(cp)


def test_the_ca_bundle_makes_it_work(cp):
    with open_source(cp) as src:
        assert src.prices([AAPL], timeout=10)["AAPL"] > 0


def test_environment_ca_bundles_cannot_override_our_verification(cp, monkeypatch, tmp_path):
    # A machine-wide bundle that would make verification pass must not be used...
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cp.ca_path)
    monkeypatch.setenv("CURL_CA_BUNDLE", cp.ca_path)
    with open_source(cp, portal_ca=None) as src:
        with pytest.raises(ConnectionFailedError, match="TLS"):
            src.prices([AAPL], timeout=5)
    # ...and one that would make it fail must not break the configured CA.
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bogus))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bogus))
    with open_source(cp) as src:
        assert src.prices([AAPL], timeout=10)["AAPL"] > 0


def test_verification_off_is_an_explicit_opt_in_logged_once(cp, monkeypatch, caplog):
    monkeypatch.setattr(portal_http, "_insecure_warned", set())
    caplog.set_level(logging.WARNING, logger="ib_nice_funcs")
    with open_source(cp, portal_ca=None, portal_verify=False) as one, \
            open_source(cp, portal_ca=None, portal_verify=False) as two:
        assert one.prices([AAPL], timeout=10)["AAPL"] > 0
        assert two.prices([AAPL], timeout=10)["AAPL"] > 0
    warned = [r for r in caplog.records if "verification is OFF" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING


def test_plain_http_gateway_url_without_api_path_is_completed():
    client = PortalClient("https://localhost:5000")
    try:
        assert client.base_url == "https://localhost:5000/v1/api"
    finally:
        client.close()


# --- session recovery ----------------------------------------------------------------------------


def test_no_bridge_at_start_is_reopened_with_ssodh_init(fresh_cp, fresh_source):
    fresh_cp.set_no_bridge(True)
    assert fresh_source.prices([AAPL], timeout=10)["AAPL"] > 0
    counts = fresh_cp.request_counts()
    assert counts["POST /iserver/auth/ssodh/init"] == 1
    assert counts["GET /iserver/accounts"] == 1


def test_no_bridge_mid_session_recovers_and_retries_once(fresh_cp, fresh_source):
    assert fresh_source.prices([AAPL], timeout=10)["AAPL"] > 0
    fresh_cp.set_no_bridge(True)
    assert fresh_source.prices([AAPL], timeout=10)["AAPL"] > 0
    counts = fresh_cp.request_counts()
    assert counts["POST /iserver/auth/ssodh/init"] == 1
    assert counts["GET /iserver/accounts"] == 2  # the pre-flight is redone after re-auth


def test_competing_session_is_taken_over(fresh_cp, fresh_source):
    fresh_cp.set_competing(True)
    assert fresh_source.prices([AAPL], timeout=10)["AAPL"] > 0
    assert fresh_cp.request_counts()["POST /iserver/auth/ssodh/init"] == 1


def test_lost_preflight_is_redone(fresh_cp, fresh_source):
    assert fresh_source.prices([AAPL], timeout=10)["AAPL"] > 0
    fresh_cp.reset_session()  # the gateway forgot the /iserver/accounts pre-flight
    assert fresh_source.prices([AAPL], timeout=10)["AAPL"] > 0
    assert fresh_cp.request_counts()["GET /iserver/accounts"] == 2


def test_not_logged_in_says_what_to_do_and_recovers_after_login(fresh_cp, fresh_source):
    fresh_cp.set_authenticated(False)
    with pytest.raises(ConnectionFailedError, match="not logged in.*log in"):
        fresh_source.prices([AAPL], timeout=5)
    fresh_cp.set_authenticated(True)
    assert fresh_source.prices([AAPL], timeout=10)["AAPL"] > 0


def test_gateway_down_fails_promptly(fresh_cp, fresh_source):
    fresh_cp.set_down(True)
    started = time.monotonic()
    with pytest.raises(ConnectionFailedError, match="could not reach"):
        fresh_source.prices([AAPL], timeout=5)
    assert time.monotonic() - started < 3
    fresh_cp.set_down(False)


def test_a_silent_gateway_times_out_within_the_budget(fresh_cp, fresh_source):
    from ib_nice_funcs.errors import RequestTimeoutError

    fresh_cp.set_blackhole(True)
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError):
        fresh_source.prices([AAPL], timeout=1.0)
    assert time.monotonic() - started < 2.5
    fresh_cp.set_blackhole(False)


# --- keep-alive ------------------------------------------------------------------------------


def test_tickle_keeps_the_session_alive_while_in_use_and_stops_when_idle(fresh_cp):
    client = PortalClient(fresh_cp.url, ca_path=fresh_cp.ca_path, tickle_interval=0.05,
                          idle_after=1.5)
    try:
        deadline = time.monotonic() + 10
        assert client.is_paper(deadline) is True
        keepalive = client.session.keepalive
        assert keepalive.running
        # Two tickles: the second waits for /tickle's 1-per-second limit.
        assert keepalive.wait_ticks(2, timeout=5)
        assert fresh_cp.request_counts()["POST /tickle"] >= 2
        assert keepalive.wait_stopped(timeout=5)  # idle: the thread ends by itself
        client.prices([AAPL], time.monotonic() + 10)  # in use again: it starts again
        assert keepalive.running
    finally:
        client.close()
    assert client.session.keepalive.wait_stopped(timeout=5)
    with pytest.raises(SourceUnavailableError, match="closed"):
        client.prices([AAPL], time.monotonic() + 5)
    no_429(fresh_cp)


def test_tickle_notices_a_lapsed_session(fresh_cp):
    client = PortalClient(fresh_cp.url, ca_path=fresh_cp.ca_path, tickle_interval=60)
    try:
        client.is_paper(time.monotonic() + 10)
        fresh_cp.set_no_bridge(True)
        client.session.tickle()
        assert not client.session._authed  # the next call re-checks the session
        assert client.prices([AAPL], time.monotonic() + 10)["AAPL"] > 0
    finally:
        client.close()
