"""An agent process for the fleet tests: runs nice_funcs calls sent on stdin.

Started by :class:`tests.fleet.conftest.Agent` as ``python agent_proc.py``
with ``PYTHONPATH`` at the repository root. Each stdin line is a JSON
command; each answer is one JSON line on stdout:

- ``{"op": "configure", "settings": {...}, "clock_offset": s}``: configure()
  (the clock runs ``clock_offset`` seconds ahead of the wall clock, so the
  process dates things like the test's simulator);
- ``{"op": "call", "fn": name, "args": [...], "kwargs": {...}}``: call
  ``ib_nice_funcs.<name>`` and answer ``{"ok": true, "value": ...}`` (or the
  error's type and text);
- ``{"op": "gateway"}``: the live session's client id;
- ``{"op": "mark", "token": t}``: write ``MARK t`` to stderr (after all logged so far);
- ``{"op": "exit"}``: close and exit.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(process)d %(levelname)s %(name)s %(message)s")
    import ib_nice_funcs as n

    out = sys.stdout
    ticks: list[float] = []
    subscriptions = []  # noqa: F841 - kept alive
    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:
        command: dict[str, Any] = json.loads(line)
        op = command["op"]
        try:
            if op == "configure":
                settings = dict(command.get("settings", {}))
                offset = command.get("clock_offset")
                if offset is not None:
                    settings["clock"] = lambda ahead=float(offset): time.time() + ahead
                n.configure(**settings)
                value: Any = None
            elif op == "call":
                fn = getattr(n, command["fn"])
                value = fn(*command.get("args", []), **command.get("kwargs", {}))
                if hasattr(value, "columns") and hasattr(value, "attrs"):  # a DataFrame
                    value = {"rows": len(value), "source": value.attrs.get("source")}
            elif op == "subscribe":
                # Every delivery's wall time, for the test to ask with "last_tick".
                subscriptions.append(n.subscribe(
                    command["symbols"], lambda _s, _p, _t: ticks.append(time.time())))
                value = None
            elif op == "last_tick":
                value = ticks[-1] if ticks else None
            elif op == "lines":
                value = n.default_client().source("ib").tickers.live_symbols()
            elif op == "mark":
                # Everything logged before this line is on stderr ahead of it.
                print(f"MARK {command['token']}", file=sys.stderr, flush=True)
                value = None
            elif op == "gateway":
                value = n.default_client().gateway.client_id
            elif op == "exit":
                n.close()
                print(json.dumps({"ok": True, "value": None}), file=out, flush=True)
                return
            else:
                raise ValueError(f"unknown op {op!r}")
            answer = {"ok": True, "value": value}
        except Exception as exc:  # noqa: BLE001 - reported to the test
            answer = {"ok": False, "type": type(exc).__name__, "error": str(exc)}
        print(json.dumps(answer, default=str), file=out, flush=True)


if __name__ == "__main__":
    main()
