"""Inside the component only: binds the SDK to the generated `wit_world` bindings and adapts the
app's `Eval` subclass to the `WitWorld` class componentize-py exports.

`proctor-eval build` generates an entry module that calls `export` once; this runs at build time
(componentize-py pre-initializes the interpreter), so a bad app fails the build, not a sample.
"""

from __future__ import annotations

import io
import sys
from types import ModuleType
from typing import Sequence

import wit_world
from componentize_py_types import Err
from wit_world.imports import dataset as _dataset
from wit_world.imports import model as _model
from wit_world.imports import scores as _scores
from wit_world.imports import types as _t

from . import _host
from ._eval import Eval, sample_error
from ._types import Completion, FinishReason, Message, Params, QueryFailed
from .isolation import exec_isolated


class _WitHost:
    """The component's imports, in the SDK's types."""

    def __init__(self, isolation_run) -> None:
        self._isolation_run = isolation_run

    def complete(self, messages: Sequence[Message], params: Params) -> Completion:
        wit_messages = [_t.Message(role=_t.Role[m.role.name], content=m.content) for m in messages]
        wit_params = _t.Params(
            max_tokens=params.max_tokens,
            temperature=None if params.temperature is None else float(params.temperature),
            stop=list(params.stop),
        )
        try:
            c = _model.complete(wit_messages, wit_params)
        except Err as e:
            if isinstance(e.value, _t.QueryError_BudgetExhausted):
                raise QueryFailed("budget-exhausted") from None
            if isinstance(e.value, _t.QueryError_Unavailable):
                raise QueryFailed("unavailable") from None
            raise QueryFailed("rejected", e.value.value) from None
        return Completion(c.text, FinishReason[c.finish.name], c.input_tokens, c.output_tokens)

    def count(self) -> int:
        return _dataset.count()

    def item(self, index: int) -> str:
        return _dataset.item(index)

    def report(self, metric: str, value: float) -> None:
        _scores.report(metric, value)

    def isolation_run(self, code: str, fuel: int) -> str:
        return self._isolation_run(code, fuel)


def _no_isolation(code: str, fuel: int) -> str:
    raise RuntimeError(
        "isolation.run needs a component built with `proctor-eval build --isolation` "
        "(world proctor:eval@0.2.0)"
    )


def _wit_isolation_run(code: str, fuel: int) -> str:
    from wit_world.imports import isolation as _isolation

    return _isolation.run(code, fuel).name.lower().replace("_", "-")


class _Discard(io.TextIOBase):
    """Stands for stdout and stderr in a zero-WASI build, where writing to the real ones would
    trap the sample: a debugging `print` costs nothing and goes nowhere."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


def export(app: ModuleType, name: str, isolation: bool, wasi: bool) -> type:
    """Binds the host and returns the `WitWorld` class exporting `app.<name>`."""
    cls = getattr(app, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Eval)):
        raise TypeError(f"proctor-eval: {app.__name__}.{name} is not a subclass of proctor_eval.Eval")
    _host.bind(_WitHost(_wit_isolation_run if isolation else _no_isolation))
    if not wasi:
        sys.stdout = sys.stderr = _Discard()

    class WitWorld(wit_world.WitWorld):
        def describe(self) -> _t.EvalInfo:
            info = cls().describe()
            return _t.EvalInfo(
                name=info.name,
                version=info.version,
                metrics=[
                    _t.Metric(name=m.name, description=m.description, min=float(m.min), max=float(m.max))
                    for m in info.metrics
                ],
            )

        def run_sample(self, index: int) -> None:
            error = sample_error(cls(), index)
            if error is not None:
                raise Err(_t.SampleError[error.name])

    if not isolation:
        return WitWorld

    class IsolatingWitWorld(WitWorld):
        def run_isolated(self, code: str) -> bool:
            return exec_isolated(code)

    return IsolatingWitWorld
