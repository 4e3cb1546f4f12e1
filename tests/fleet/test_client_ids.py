"""Client ids without thought: a second default agent process connects and trades."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ib_nice_funcs.config import Settings
from ib_nice_funcs.errors import ClientIdInUseError, ConfigurationError
from ib_nice_funcs.fleet.client_ids import client_id_candidates


@given(st.integers(0, 200), st.integers(0, 100), st.integers(0, 40))
def test_candidates_try_the_configured_id_first_and_each_id_once(configured, first, width):
    ids = client_id_candidates(configured, (first, first + width))
    assert ids[0] == configured
    assert len(ids) == len(set(ids))
    assert set(ids) == {configured, *range(first, first + width + 1)}


@pytest.mark.parametrize("text, expected", [("23-54", (23, 54)), ("100..101", (100, 101)),
                                            (" 7 - 7 ", (7, 7))])
def test_client_id_range_from_the_environment(text, expected):
    assert Settings.from_env({"IB_NICE_FUNCS_CLIENT_IDS": text}).client_ids == expected


@pytest.mark.parametrize("bad", ["54-23", "x-y", "23", (1, 2, 3), -1])
def test_a_malformed_range_names_the_setting(bad):
    with pytest.raises(ConfigurationError, match="client_ids"):
        Settings().replace(client_ids=bad)


def test_second_client_takes_the_next_free_id(sim, caplog):
    from ib_nice_funcs import Client

    caplog.set_level("INFO", logger="ib_nice_funcs")
    with Client(port=sim.port, sources="ib", client_id=40, client_ids=(40, 42)) as first, \
            Client(port=sim.port, sources="ib", client_id=40, client_ids=(40, 42)) as second:
        first.server_time()
        second.server_time()
        assert (first.gateway.client_id, second.gateway.client_id) == (40, 41)
        said = [r.getMessage() for r in caplog.records
                if "connected as client id" in r.getMessage()]
        assert said == [f"client id 40 is in use at IB gateway 127.0.0.1:{sim.port}; "
                        "connected as client id 41"]
        with Client(port=sim.port, sources="ib", client_id=40, client_ids=(40, 41),
                    timeout=5) as third:
            with pytest.raises(ClientIdInUseError, match="in use .*IB_NICE_FUNCS_CLIENT_IDS"):
                third.server_time()


def test_a_second_default_process_trades(tsim, agents):
    first, second = agents(tsim), agents(tsim)
    assert first.call("token_price", "AAPL") > 0
    assert second.call("token_price", "AAPL") > 0
    assert {first.client_id(), second.client_id()} == {23, 24}
    bought = second.call("market_buy", "AAPL", 500, client_order_id="second-1")
    assert bought["success"], bought
    # The id is found across client ids: the first process gets that order back.
    again = first.call("market_buy", "AAPL", 500, client_order_id="second-1")
    # (IB gives another client's order its perm id, not the placing client's order id.)
    assert again["perm_id"] == bought["perm_id"] and again.get("existing") is True
    assert tsim.sim.order_count == 1


@pytest.mark.parametrize("bad", ["localhost:6379", "http://x", "redis://", "redis://h:99999",
                                 "redis://h:6379/zero", "unix://"])
def test_a_malformed_redis_url_names_the_setting_and_the_form(bad):
    with pytest.raises(ConfigurationError, match=r"redis_url.*redis://HOST:PORT/DB"):
        Settings().replace(redis_url=bad)
