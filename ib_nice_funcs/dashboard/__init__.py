"""``ib-nice-funcs dashboard``: a local web page to watch and stop the agents.

- :mod:`.state`: what the page shows (account, positions, orders, risk bars,
  data sources, journal fills and agents), gathered from a Client, and the
  account-wide halt and daily-loss baseline, read from the fleet state;
- :mod:`.app`: the Starlette app (token-guarded routes, plotly served locally);
- :mod:`.server`: uvicorn on a pre-bound socket;
- :mod:`.cli`: the ``dashboard`` command.

Needs the ``dashboard`` extra (starlette, uvicorn, plotly). Nothing runs at import.
"""
