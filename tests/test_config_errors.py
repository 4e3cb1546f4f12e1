"""Every setting's error names the setting, the value and the expected form (configure and env)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ib_nice_funcs import configure
from ib_nice_funcs.config import _SPECS, Settings
from ib_nice_funcs.errors import ConfigurationError

NOT_A_NUMBER = ["abc", "", "1,5", [], True]


def test_the_issue_example():
    with pytest.raises(ConfigurationError) as info:
        configure(port="abc")
    assert "port='abc' must be a whole number (TCP port 1..65535)" in str(info.value)


def test_every_setting_but_lists_and_clock_has_a_spec():
    # sources and cash_symbols are comma lists, client_ids a FIRST-LAST pair,
    # parsed and checked on their own.
    lists = {"sources", "cash_symbols", "client_ids"}
    names = {f.name for f in dataclasses.fields(Settings)} - lists - {"clock", "extra"}
    assert names == {s.name for s in _SPECS}


def test_cash_symbols_error_names_the_setting():
    with pytest.raises(ConfigurationError, match="cash_symbols"):
        Settings().replace(cash_symbols=" , ")


@pytest.mark.parametrize("spec", _SPECS, ids=lambda s: s.name)
def test_a_wrong_kind_of_value_names_the_setting_everywhere(spec):
    bad: object = {"str": "", "optional str": 12, "bool": "maybe"}.get(spec.kind, "abc")
    with pytest.raises(ConfigurationError) as info:
        Settings().replace(**{spec.name: bad})
    text = str(info.value)
    assert text.startswith(f"{spec.name}={bad!r} must be {spec.expected}")
    assert spec.env in text
    if isinstance(bad, str) and spec.kind != "str":
        with pytest.raises(ConfigurationError) as info:
            Settings.from_env({spec.env: bad})
        assert str(info.value).startswith(f"{spec.env}={bad!r} ({spec.name}) must be")


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([s for s in _SPECS if s.kind in ("int", "number")]),
       st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                 st.sampled_from(NOT_A_NUMBER)))
def test_numeric_settings_accept_exactly_their_range(spec, value):
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    ok = number is not None and number == number  # not NaN
    if ok and spec.kind == "int":
        ok = float(number).is_integer()
    if ok and spec.finite:
        ok = abs(number) != float("inf")
    if ok and spec.low is not None:
        ok = number > spec.low if spec.above_low else number >= spec.low
    if ok and spec.high is not None:
        ok = number <= spec.high
    if ok:
        got = getattr(Settings().replace(**{spec.name: value}), spec.name)
        assert got == number
        assert isinstance(got, int if spec.kind == "int" else float)
    else:
        with pytest.raises(ConfigurationError, match=f"^{spec.name}="):
            Settings().replace(**{spec.name: value})


def test_numbers_as_text_are_converted():
    s = Settings().replace(port="4003", timeout="2.5")
    assert s.port == 4003 and s.timeout == 2.5
