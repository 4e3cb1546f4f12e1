from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ib_nice_funcs.config import DEFAULT_CLIENT_ID, Settings
from ib_nice_funcs.errors import ConfigurationError


def test_defaults_match_the_design_table():
    s = Settings.from_env({})
    assert (s.host, s.port, s.client_id) == ("127.0.0.1", 4002, DEFAULT_CLIENT_ID)
    assert s.sources == ("ib", "yfinance")
    assert s.allow_live is False
    assert (s.max_position_usd, s.max_daily_loss_usd, s.max_exposure_usd) == (10_000, 5_000, 50_000)
    assert s.timeout == 10 and s.portal_penalty_s == 600 and s.portal_verify is True


def test_environment_is_read():
    s = Settings.from_env(
        {
            "IB_HOST": "gw", "IB_PORT": "7497", "IB_CLIENT_ID": "9", "IB_ACCOUNT": "DU1",
            "IB_NICE_FUNCS_ALLOW_LIVE": "1", "IB_MAX_POSITION_USD": "2500",
            "IB_NICE_FUNCS_TIMEOUT": "3.5", "IB_NICE_FUNCS_SOURCES": "yfinance, ib",
        }
    )
    assert (s.host, s.port, s.client_id, s.account) == ("gw", 7497, 9, "DU1")
    assert s.allow_live is True and s.max_position_usd == 2500 and s.timeout == 3.5
    assert s.sources == ("yfinance", "ib")


def test_portal_url_puts_portal_between_ib_and_yahoo():
    assert Settings.from_env({"IB_PORTAL_URL": "https://localhost:5000"}).sources == (
        "ib", "portal", "yfinance")


@pytest.mark.parametrize(
    "env",
    [{"IB_PORT": "abc"}, {"IB_PORT": "70000"}, {"IB_NICE_FUNCS_ALLOW_LIVE": "maybe"},
     {"IB_MAX_POSITION_USD": "-1"}, {"IB_NICE_FUNCS_TIMEOUT": "0"}],
)
def test_bad_environment_names_the_variable(env):
    with pytest.raises(ConfigurationError):
        Settings.from_env(env)


def test_unknown_setting_lists_valid_ones():
    with pytest.raises(ValueError, match="valid:.*port"):
        Settings().replace(prot=1)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_limits_must_be_positive_numbers(value):
    ok = value > 0 and not math.isnan(value)
    if ok:
        assert Settings().replace(max_position_usd=value).max_position_usd == value
    else:
        with pytest.raises(ConfigurationError):
            Settings().replace(max_position_usd=value)
