"""The family-neutral backend base: what every backend of every family declares and answers.

A backend states its facts as literal class attributes (read by ``kmbench list``, the
plots, ``auto``, the suites and the tests, so no list elsewhere repeats them), says
*why* it cannot run through ``unavailable()`` (environment) and ``skip()`` (the case),
and releases what it holds in ``close()``. Each family's base adds the timed cycle
(K-Means: ``impls.base.Backend``): ``prepare -> warm_up -> run -> result``, which
only the harness times (``kmbench.core.engine``).
"""
from __future__ import annotations

import importlib.util
import numbers


class Interval:
    """A numeric option's constraint: an instance of ``kind`` within ``[low, high]``.

    ``closed`` says which ends are included: "both", "left", "right" or "neither";
    a None bound is unbounded. Booleans are never numbers here.
    """

    def __init__(self, kind, low=None, high=None, closed: str = "both"):
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def __contains__(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        low_ok = self.low is None or (value >= self.low if self.closed in ("both", "left") else value > self.low)
        high_ok = self.high is None or (value <= self.high if self.closed in ("both", "right") else value < self.high)
        return low_ok and high_ok

    def __str__(self) -> str:
        kind = {numbers.Integral: "an int", numbers.Real: "a number"}.get(self.kind, f"a {self.kind.__name__}")
        left = "[" if self.closed in ("both", "left") and self.low is not None else "("
        right = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        low = "-inf" if self.low is None else self.low
        high = "inf" if self.high is None else self.high
        return f"{kind} in {left}{low}, {high}{right}"


def _satisfies(value, constraint) -> bool:
    if constraint is None:
        return value is None
    if isinstance(constraint, Interval):
        return value in constraint
    if isinstance(constraint, (set, frozenset)):
        return isinstance(value, str) and value in constraint
    if constraint is bool:
        return isinstance(value, bool)
    if isinstance(constraint, type):
        return isinstance(value, constraint)
    raise TypeError(f"unknown option constraint {constraint!r}")


def _describe(constraint) -> str:
    if constraint is None:
        return "None"
    if isinstance(constraint, (set, frozenset)):
        return "one of " + ", ".join(map(repr, sorted(constraint)))
    if isinstance(constraint, type):
        return f"a {constraint.__name__}"
    return str(constraint)


def check_options(owner: str, options: dict, parameters: dict | None) -> None:
    """Check ``options`` against declared ``parameters`` (``{name: [constraint, ...]}``).

    A value passes when it meets any of its option's constraints, as scikit-learn's
    ``_parameter_constraints``; an undeclared name fails. ``parameters=None`` declares
    nothing and checks nothing (the backend validates its own options).
    """
    if parameters is None:
        return
    for key, value in options.items():
        if key not in parameters:
            accepted = ", ".join(sorted(parameters)) or "none"
            raise ValueError(f"backend {owner!r} has no option {key!r}; its options: {accepted}")
        allowed = parameters[key]
        if not any(_satisfies(value, c) for c in allowed):
            raise ValueError(f"the {key!r} option of backend {owner!r} must be "
                             f"{' or '.join(_describe(c) for c in allowed)}; got {value!r}")


class Backend:
    """Base of every backend: sensible defaults, so a backend states only what differs."""

    name: str = ""
    #: importable top-level modules this backend needs (checked without importing them)
    requires: tuple = ()
    #: the pip extra that installs ``requires``
    extra: str | None = None
    devices: tuple = ("cpu",)
    dtypes: tuple = ("float64", "float32")
    #: contract lines this backend does not honour, each ``key: explanation``;
    #: ``kmbench check`` and the tests read these instead of failing on them
    deviations: dict = {}
    #: options the constructor accepts, ``{name: [constraint, ...]}`` (an :class:`Interval`, a set of
    #: strings, a type, or None); checked once here. None: the backend checks its own options.
    parameters: dict | None = None
    #: how figures draw this backend (matplotlib colour and marker)
    color: str = "#555555"
    marker: str = "."
    #: place in the order ``auto`` tries when nothing was measured here (lower first); None: never
    fallback_rank: int | None = None
    #: True where the first call compiles code (Numba, ...): warm-up times are compile times
    compiles: bool = False
    #: True where the backend runs on a cluster (dask): the suites for one machine leave it out
    distributed: bool = False

    def __init__(self, *, threads: int = 1, device: str | None = None, **options):
        check_options(self.name or type(self).__name__, options, self.parameters)
        self.threads = threads
        self.device = device or self.devices[0]
        self.options = options

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this backend cannot run in this environment, or None.

        Must stay cheap and must not import heavy libraries: ``kmbench list`` calls it
        for every backend.
        """
        missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
        if missing:
            hint = f"pip install 'kmbench[{cls.extra}]'" if cls.extra else "pip install " + " ".join(missing)
            return f"{', '.join(missing)} not installed: {hint}"
        return None

    def skip(self, *, dtype: str | None = None, **case) -> str | None:
        """Why this backend will not run this case, or None; the base checks dtype and device.

        Each family's base passes the case by keyword (K-Means: ``n, k, d, dtype``).
        """
        if dtype is not None and dtype not in self.dtypes:
            return f"{self.name} does not support dtype={dtype}; supported: {', '.join(self.dtypes)}"
        if self.device not in self.devices:
            return f"{self.name} does not run on device={self.device!r}; devices: {', '.join(self.devices)}"
        return None

    def warm_up(self) -> None:
        """Pay one-off costs (compilation, context creation). Default: nothing."""

    def close(self) -> None:
        """Release what ``prepare`` acquired (clusters, device memory). Called by the harness
        after every cycle, also one that failed; must be safe to call twice. Default: nothing."""
