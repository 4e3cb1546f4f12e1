"""The max_market_data_lines setting (IB_NICE_FUNCS_MAX_LINES)."""

from __future__ import annotations

import pytest

import ib_nice_funcs as n
from ib_nice_funcs.config import Settings
from ib_nice_funcs.errors import ConfigurationError


def test_default_and_environment():
    assert Settings().max_market_data_lines == 100
    assert Settings.from_env({"IB_NICE_FUNCS_MAX_LINES": "7"}).max_market_data_lines == 7


@pytest.mark.parametrize("bad", ["0", "-3", "lots"])
def test_bad_values_are_refused(bad):
    with pytest.raises(ConfigurationError, match="IB_NICE_FUNCS_MAX_LINES"):
        Settings.from_env({"IB_NICE_FUNCS_MAX_LINES": bad})


def test_configure_reaches_the_tickers(use_sim):
    n.configure(max_market_data_lines=5)
    assert n.default_client()._source("ib").tickers.max_lines == 5
    with pytest.raises(ConfigurationError):
        n.configure(max_market_data_lines=True)


def test_public_names():
    assert {"subscribe", "stream_prices"} <= set(n.__all__)
    assert callable(n.subscribe) and callable(n.stream_prices)
