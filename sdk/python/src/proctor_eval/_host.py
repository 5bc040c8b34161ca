"""Where the SDK's calls go: the component's imports once the build's entry module has bound
them, a test double in unit tests, and a clear error anywhere else."""

from __future__ import annotations

from typing import Protocol, Sequence

from ._types import Completion, Message, Params


class Host(Protocol):
    """The host functions of the proctor:eval world, in the SDK's types."""

    def complete(self, messages: Sequence[Message], params: Params) -> Completion: ...

    def count(self) -> int: ...

    def item(self, index: int) -> str: ...

    def report(self, metric: str, value: float) -> None: ...

    def isolation_run(self, code: str, fuel: int) -> str: ...


class _Unbound:
    """Stands in until a host is bound: the SDK was imported outside a built component."""

    def __getattr__(self, name: str):
        raise RuntimeError(
            "proctor_eval's host functions exist only inside a component built with "
            "`proctor-eval build`"
        )


_current: Host = _Unbound()  # type: ignore[assignment]


def bind(host: Host) -> None:
    """Routes the SDK's calls to `host` (the entry module does this once, at build time)."""
    global _current
    _current = host


def current() -> Host:
    """The bound host."""
    return _current
