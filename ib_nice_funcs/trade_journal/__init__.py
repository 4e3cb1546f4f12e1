"""The trade journal: every order attempt, status change, fill and commission, in SQLite.

- :mod:`.store`: the file (schema, path, read and write);
- :mod:`.writer`: the background writer, one per file per process;
- :mod:`.recorder`: what the trading layer calls;
- :mod:`.api`: :func:`journal` (``n.journal()``) and ``--since`` parsing;
- :mod:`.report`: per-symbol and per-agent numbers from the rows.

Nothing runs at import.
"""
