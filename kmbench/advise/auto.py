"""How ``backend="auto"`` chooses, without ever timing anything inside ``fit``.

1. Recorded results for this machine (asv, then ``kmbench sweep`` rows, then trials
   cached by ``kmbench recommend --measure``): the fastest backend at this shape by
   ``kmbench.advise.ranking.rank_recorded``, the same ranking ``kmbench recommend`` prints.
   Backends whose recorded quality fails the contract's tolerance are passed over.
2. Nothing recorded: the first backend in :func:`fallback` order (each class's
   ``fallback_rank``) that is installed, computes in the data's dtype, runs on the
   device and accepts the shape.

A measurement inside ``fit`` would cost seconds on every new shape and make the
choice depend on machine load at that moment, so ``auto`` only reads: run
``kmbench bench`` or ``kmbench recommend --measure --n N --k K --d D`` once to teach it.
The sentence returned with the name lands in ``result.info["auto"]``.
"""
from __future__ import annotations

from kmbench.advise.ranking import candidates, rank_recorded
from kmbench.core.errors import BackendUnavailable
from kmbench.core.registry import fallback_order


def fallback() -> tuple[str, ...]:
    """Fallback order, fastest first on typical CPUs, read from the backends' ``fallback_rank``."""
    return tuple(fallback_order("kmeans"))


def choose(n: int, k: int, d: int, dtype: str, *, device=None) -> tuple[str, str]:
    """The backend to use for this shape, and a sentence saying why."""
    try:
        ranking = rank_recorded(n, k, d, dtype, device)
    except Exception as exc:  # unreadable results must not stop a fit; say so in the reason
        ranking, problem = [], f" (recorded results unreadable: {exc})"
    else:
        problem = ""
    eligible = [r for r in ranking if r["eligible"]]
    if eligible:
        return eligible[0]["backend"], "ranked by recorded results: " + eligible[0]["reason"]
    refused = {}
    order = fallback()
    for name in order:
        ok, why = candidates(n, k, d, dtype, device, [name])
        if ok:
            return name, (f"no recorded results for this machine{problem}; first backend of the fallback "
                          f"order ({', '.join(order)}) that runs n={n}, k={k}, d={d}, {dtype}"
                          + (f" on {device}" if device else ""))
        refused.update(why)
    raise BackendUnavailable(f"backend 'auto' found none for n={n}, k={k}, d={d}, dtype={dtype}"
                             + (f", device={device!r}" if device else "") + ": "
                             + "; ".join(f"{name}: {reason}" for name, reason in refused.items()))
