"""A second, independent TWS-protocol gateway for the benchmarks (not the project's simulator).

Written from the protocol notes (framing, handshake, the start-up sync
``IB.connectAsync`` does, contract details, snapshot market data, current
time), sharing no code with :mod:`ib_nice_funcs.sim`, and deliberately timed
differently from it: every request is handled in a task of its own (no
per-connection queue), and every reply message is written on its own after
``--delay`` seconds (no batching), so a snapshot of four ticks and its end
takes five delays. It knows a few instruments and answers error 200 for any
other; it serves no bars and takes no orders.

    python bench/second_gateway.py --port 4010 --delay 0.02

Listens on loopback only; stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import time

SERVER_VERSION = 176
ACCOUNT = "DU7654321"

# symbol, secType, currency -> conId, primary exchange, (bid, ask, last, close)
KNOWN = {
    ("AAPL", "STK", "USD"): (265598, "NASDAQ", (189.98, 190.02, 190.0, 188.5)),
    ("MSFT", "STK", "USD"): (272093, "NASDAQ", (409.9, 410.1, 410.0, 405.0)),
    ("NVDA", "STK", "USD"): (4815747, "NASDAQ", (119.9, 120.1, 120.0, 118.0)),
    ("SPY", "STK", "USD"): (756733, "ARCA", (519.9, 520.1, 520.0, 515.0)),
    ("EUR", "CASH", "USD"): (12087792, "IDEALPRO", (1.0849, 1.0851, 0.0, 1.083)),
    ("BTC", "CRYPTO", "USD"): (479624278, "PAXOS", (64990.0, 65010.0, 65000.0, 64000.0)),
}


def frame(*fields: object) -> bytes:
    payload = b"".join(str(f).encode() + b"\0" for f in fields)
    return struct.pack(">I", len(payload)) + payload


class Session:
    """One API client connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 delay: float) -> None:
        self.reader, self.writer, self.delay = reader, writer, delay
        self.tasks: set[asyncio.Task[None]] = set()

    async def send(self, *fields: object) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.writer.write(frame(*fields))
        await self.writer.drain()

    async def read_message(self) -> list[str]:
        size = struct.unpack(">I", await self.reader.readexactly(4))[0]
        data = await self.reader.readexactly(size)
        return data.decode(errors="replace").split("\0")[:-1]

    async def run(self) -> None:
        prefix = await self.reader.readexactly(4)
        if prefix != b"API\0":
            return
        await self.read_message()  # "v157..178": we pick one inside the range
        when = time.strftime("%Y%m%d %H:%M:%S UTC", time.gmtime())
        self.writer.write(frame(SERVER_VERSION, when))
        await self.writer.drain()
        while True:
            fields = await self.read_message()
            if not fields:
                continue
            task = asyncio.ensure_future(self.handle(fields))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def handle(self, f: list[str]) -> None:
        msg = int(f[0])
        if msg == 71:  # startApi
            await self.send(9, 1, 1)  # nextValidId
            await self.send(15, 1, ACCOUNT)  # managedAccounts
        elif msg == 61:  # reqPositions
            await self.send(62, 1)
        elif msg == 5:  # reqOpenOrders
            await self.send(53, 1)
        elif msg == 99:  # reqCompletedOrders
            await self.send(102)
        elif msg == 6:  # reqAccountUpdates
            await self.send(54, 1, f[3] if len(f) > 3 else ACCOUNT)
        elif msg == 76:  # reqAccountUpdatesMulti
            await self.send(74, 1, f[2])
        elif msg == 7:  # reqExecutions
            await self.send(55, 1, f[2])
        elif msg == 49:  # reqCurrentTime
            await self.send(49, 1, int(time.time()))
        elif msg == 9:  # reqContractDetails
            await self.contract_details(f)
        elif msg == 1:  # reqMktData
            await self.market_data(f)
        # anything else (reqMarketDataType, cancels...) needs no answer here

    @staticmethod
    def lookup(f: list[str]) -> tuple[str, str, str, str, tuple] | None:
        # [msg, version, reqId, conId, symbol, secType, lastTradeDate, strike, right,
        #  multiplier, exchange, primaryExch, currency, localSymbol, tradingClass, ...]
        symbol, sec_type, exchange, currency = f[4], f[5], f[10], f[12]
        found = KNOWN.get((symbol, sec_type, currency))
        if found is None:
            return None
        con_id, primary, quote = found
        return str(con_id), primary, exchange or primary, currency, quote

    async def error(self, req_id: str, code: int, text: str) -> None:
        await self.send(4, 2, req_id, code, text, "")

    async def contract_details(self, f: list[str]) -> None:
        req_id = f[2]
        found = self.lookup(f)
        if found is None:
            await self.error(req_id, 200, "No security definition has been found for the request")
            return
        con_id, primary, exchange, currency, _ = found
        symbol, sec_type = f[4], f[5]
        local = f"{symbol}.{currency}" if sec_type == "CASH" else symbol
        min_tick = "0.00005" if sec_type == "CASH" else "0.01"
        await self.send(
            10, req_id, symbol, sec_type, "", "0", "", exchange, currency, local, symbol, symbol,
            con_id, min_tick, "", "LMT,MKT", f"SMART,{primary}", 1, 0, f"{symbol} test",
            primary, "",
            "", "", "", "UTC", "", "", "", "", 0,  # no sec ids
            "1", "", "", "26", "", "COMMON", "1", "1", "1",
        )
        await self.send(52, 1, req_id)

    async def market_data(self, f: list[str]) -> None:
        req_id = f[2]
        found = self.lookup(f)
        if found is None:
            await self.error(req_id, 200, "No security definition has been found for the request")
            return
        bid, ask, last, close = found[4]
        for tick_type, price in ((1, bid), (2, ask), (4, last), (9, close)):
            if price:
                await self.send(1, 6, req_id, tick_type, price, 100, 0)
        snapshot = len(f) > 17 and f[17] == "1"
        if snapshot:
            await self.send(57, 1, req_id)


async def serve(port: int, delay: float) -> None:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(reader, writer, delay)
        try:
            await session.run()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for task in list(session.tasks):
                task.cancel()
            writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="an independent TWS-protocol test gateway")
    parser.add_argument("--port", type=int, default=4010)
    parser.add_argument("--delay", type=float, default=0.02,
                        help="seconds before each reply message (default 0.02)")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.delay))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
