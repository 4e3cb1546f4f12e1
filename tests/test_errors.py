from __future__ import annotations

import pytest

from ib_nice_funcs import errors
from ib_nice_funcs._gateway import error_from_ib


@pytest.mark.parametrize(
    ("code", "action"),
    [(2104, "info"), (2106, "info"), (2158, "info"), (1100, "retry"), (2110, "retry"),
     (1101, "retry"), (1102, "info"), (201, "reject"), (200, "fallback"), (162, "fallback"),
     (10167, "fallback"), (321, "fail"), (504, "fallback"), (399, "info")],
)
def test_classify(code, action):
    assert errors.classify_ib_error(code) == action


@pytest.mark.parametrize(
    ("code", "message", "kind"),
    [(200, "No security definition has been found for the request", errors.UnknownSymbolError),
     (162, "Historical Market Data Service error message:"
           "API historical data query pacing violation",
      errors.PacingViolationError),
     (162, "Historical Market Data Service error message:HMDS query returned no data",
      errors.NoDataError),
     (354, "Requested market data is not subscribed", errors.MarketDataNotSubscribedError),
     (201, "Order rejected - reason: insufficient funds", errors.OrderRejectedError)],
)
def test_error_from_ib_maps_codes(code, message, kind):
    exc = error_from_ib(code, message, "price of AAPL")
    assert isinstance(exc, kind)
    assert "price of AAPL" in str(exc) and str(code) in str(exc)


def test_hierarchy_roots():
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, errors.IBNiceFuncsError)
    assert issubclass(errors.RequestTimeoutError, TimeoutError)
    assert issubclass(errors.ConnectionFailedError, ConnectionError)
