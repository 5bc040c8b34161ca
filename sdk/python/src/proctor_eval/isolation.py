"""Runs code the eval does not trust (a model's program) in a fresh, confined instance of the
same component, under fuel of its own; the sample learns only a verdict.

Needs a build with `proctor-eval build --isolation` (world proctor:eval@0.2.0). In the isolated
instance the SDK runs `exec(compile(code, "<isolated>", "exec"), {"__name__": "__isolated__"})`:
the verdict is PASSED when no exception (BaseException included) escaped, FAILED otherwise.
"""

from __future__ import annotations

import enum

from . import _host

# Fuel for one isolated run unless the caller says otherwise; the host caps it by what is left
# of the sample's isolation fuel (as much again as the sample's own).
DEFAULT_FUEL = 500_000_000

_U64 = 1 << 64


class Verdict(enum.Enum):
    """How an isolated run ended (the WIT `verdict`)."""

    PASSED = "passed"
    FAILED = "failed"
    OUT_OF_FUEL = "out-of-fuel"
    OUT_OF_MEMORY = "out-of-memory"
    TIMED_OUT = "timed-out"
    CRASHED = "crashed"


def run(code: str, fuel: int = DEFAULT_FUEL) -> Verdict:
    """Runs `code` in an isolated instance with at most `fuel` fuel and returns the verdict."""
    if not isinstance(code, str):
        raise TypeError("isolation.run takes the code as a string")
    if isinstance(fuel, bool) or not isinstance(fuel, int) or not 0 <= fuel < _U64:
        raise ValueError("isolation.run: fuel must be an integer in [0, 2**64)")
    return Verdict(_host.current().isolation_run(code, fuel))


def exec_isolated(code: str) -> bool:
    """What the isolated instance does with `code`: True when it ran without an exception."""
    try:
        exec(compile(code, "<isolated>", "exec"), {"__name__": "__isolated__"})
    except BaseException:
        return False
    return True
