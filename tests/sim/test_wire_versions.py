"""Every server message the simulator writes, read back by IB's and ib_async's decoders,
for each server version both clients can negotiate (no sockets)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from ib_nice_funcs.sim import PaperMarket, _account, _orders
from ib_nice_funcs.sim import _wire as w
from ib_nice_funcs.sim.matching import MatchingEngine, SimOrder

from .conftest import OPEN_T

ALL_VERSIONS = [100, 101, 110, 121, 124, 131, 136, 142, 145, 150, 152, 155, 157, 158, 159,
                160, 162, 163, 164, 166, 169, 170, 175, 176, 177, 178]
IB_ASYNC_VERSIONS = [v for v in ALL_VERSIONS if v >= 157]
IBAPI_VERSIONS = [v for v in ALL_VERSIONS if v <= 157]  # ibapi 9.81 speaks 100..157


class Recorder:
    """A wrapper that records every call (ib_async's Decoder calls wrapper methods)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self.defaultTimezone = dt.timezone.utc

        class _IB:
            TimezoneTWS = ""

        self.ib = _IB()

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def record(*args):
            self.calls.append((name, args))

        return record


def _messages(sv: int):
    market = PaperMarket(seed=1, clock=lambda: OPEN_T)
    engine = MatchingEngine(market, "DU1", 1_000_000.0)
    inst = market.get("BTC")
    order = SimOrder(order_id=7, client_id=3, perm_id=0, account="DU1", inst=inst, action="BUY",
                     quantity=0.25, order_type="LMT", lmt_price=99_999.0, order_ref="ref-7")
    events = engine.submit(order, OPEN_T)
    fill = [e.fill for e in events if e.kind == "fill"][0]
    pos = engine.positions[inst.con_id]

    class Sim:
        account = "DU1"

    sim = Sim()
    sim.engine, sim.market = engine, market
    rows = w.bar_rows(sv, ["20240306 10:00:00 US/Central"],
                      *[np.array([x]) for x in (1.0, 2.0, 0.5, 1.5, 0.1234, 1.2)],
                      np.array([3]), 2, 4, False)
    hist = w.historical_data(sv, 9, "a", "b", rows, 1).split("\0")[:-1]
    stock = market.get("AAPL")
    return {
        "contractDetails": w.contract_details(sv, 1, inst, "PAXOS", "x", "y"),
        "contractDetailsStock": w.contract_details(sv, 1, stock, "SMART", "x", "y"),
        "openOrder": _orders.open_order_msg(sv, order),
        "orderStatus": _orders.order_status_msg(sv, order),
        "execDetails": _orders.exec_details_msg(sv, -1, fill, "US/Central"),
        "commissionReport": _orders.commission_msg(fill),
        "position": _account.position_msg(sv, "DU1", pos),
        "updatePortfolio": _account.portfolio_msg(sim, sv, pos, 1.0, 2.0, 3.0),
        "historicalData": hist,
        "error": w.error_msg(sv, 5, 200, "No security definition"),
        "tickPrice": w.tick_price(4, 1, 1.5, w.size(0.5, sv), 1),
        "completedOrder": _orders.completed_order_msg(sv, order, "US/Central"),
        "symbolSamples": w.symbol_samples(sv, 2, [inst, stock]),
    }


def _fields(msg) -> list[str]:
    return [str(x) for x in msg]


@pytest.mark.parametrize("sv", IB_ASYNC_VERSIONS)
def test_ib_async_decoder_reads_every_message(sv):
    from ib_async.decoder import Decoder

    rec = Recorder()
    dec = Decoder(rec, sv)
    msgs = _messages(sv)
    for name, msg in msgs.items():
        before = len(rec.calls)
        dec.handlers[int(msg[0])](_fields(msg))  # raises on a layout mismatch
        assert len(rec.calls) > before, name
    calls = dict(rec.calls)
    order = calls["openOrder"][2]
    assert order.orderRef == "ref-7" and order.totalQuantity == 0.25 and order.lmtPrice == 99_999
    details = [a for n, a in rec.calls if n == "contractDetails"]
    assert details[0][1].minTick == 0.25 and details[1][1].contract.primaryExchange == "NASDAQ"
    if sv >= 164:
        assert details[0][1].sizeIncrement == 0.0001
    execution = calls["execDetails"][2]
    assert execution.orderRef == "ref-7" and execution.shares == 0.25
    assert calls["historicalData"][1].close == 1.5


@pytest.mark.parametrize("sv", IBAPI_VERSIONS)
def test_ibapi_decoder_reads_every_message(sv):
    from ibapi.decoder import Decoder
    from ibapi.wrapper import EWrapper

    got: dict[str, tuple] = {}

    class Wrapper(EWrapper):
        def __getattribute__(self, name):
            attr = object.__getattribute__(self, name)
            if callable(attr) and not name.startswith("_"):
                def record(*args, _name=name):
                    got.setdefault(_name, args)
                return record
            return attr

    dec = Decoder(Wrapper(), sv)
    msgs = _messages(sv)
    if sv < w.V_COMPLETED_ORDERS:
        msgs.pop("completedOrder")
    for msg in msgs.values():
        dec.interpret(tuple(str(x).encode() for x in msg))
    assert got["error"][:2] == (5, 200)
    assert got["openOrder"][2].orderRef == "ref-7"
    assert got["execDetails"][2].orderRef == "ref-7"
    assert got["contractDetails"][1].minTick == 0.25
    assert got["historicalData"][1].close == 1.5
    assert got["updatePortfolio"][-1] == "DU1"
    assert got["position"][0] == "DU1"
    assert got["commissionReport"][0].commission > 0
    if sv >= w.V_REQ_MATCHING_SYMBOLS:
        assert len(got["symbolSamples"][1]) == 2
