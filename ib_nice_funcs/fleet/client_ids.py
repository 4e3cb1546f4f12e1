"""Client ids without thought: the first free id of a range (IB error 326 otherwise).

IB lets one API session per client id. The second agent started with the
default settings would be refused; instead the gateway tries the configured
id first, then the others of ``client_ids`` in order, and logs one INFO line
naming the id it took. Orders stay idempotent across ids: they are found by
client order id (``orderRef``) among every client's open orders and
executions (see :mod:`ib_nice_funcs.trading.ledger`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..errors import ClientIdInUseError, ConnectionFailedError

__all__ = ["client_id_candidates", "connect_first_free", "all_taken_error"]

log = logging.getLogger("ib_nice_funcs")
T = TypeVar("T")


def client_id_candidates(configured: int, id_range: tuple[int, int]) -> list[int]:
    """The ids to try, in order: ``configured``, then the range after it, then before it.

    >>> client_id_candidates(25, (23, 27))
    [25, 26, 27, 23, 24]
    >>> client_id_candidates(200, (23, 25))
    [200, 23, 24, 25]
    """
    first, last = id_range
    span = list(range(first, last + 1))
    if configured in span:
        k = span.index(configured)
        return span[k:] + span[:k]
    return [configured, *span]


def all_taken_error(where: str, tried: list[int]) -> ClientIdInUseError:
    """The error when every candidate id is in use, in plain words."""
    shown = f"{tried[0]}" if len(tried) == 1 else f"{tried[0]}..{tried[-1]} ({len(tried)} ids)"
    return ClientIdInUseError(
        f"IB gateway at {where} refused every client id tried ({shown}): each is in use by "
        "another API program (IB error 326). Close programs you no longer need, or widen "
        "the range with IB_NICE_FUNCS_CLIENT_IDS=FIRST-LAST (or configure(client_ids=...))"
    )


async def connect_first_free(
    connect_as: Callable[[int], Awaitable[T]],
    configured: int,
    id_range: tuple[int, int],
    where: str,
) -> tuple[T, int]:
    """Connect with the first client id IB accepts; returns ``(session, client_id)``.

    ``connect_as(client_id)`` raises :class:`ClientIdInUseError` for a taken
    id (the next one is tried) or another ConnectionFailedError (raised at
    once: the gateway itself is the problem, not the id).

    Raises:
        ClientIdInUseError: every candidate is taken.
        ConnectionFailedError: the gateway refused or timed out.
    """
    tried: list[int] = []
    for client_id in client_id_candidates(configured, id_range):
        try:
            session = await connect_as(client_id)
        except ClientIdInUseError:
            tried.append(client_id)
            continue
        except ConnectionFailedError:
            raise
        if tried:
            log.info(
                "client id %s is in use at IB gateway %s; connected as client id %s",
                configured, where, client_id,
            )
        return session, client_id
    raise all_taken_error(where, tried)
