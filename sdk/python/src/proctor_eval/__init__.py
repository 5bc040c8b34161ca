"""proctor-eval: write Proctor evals in Python.

Subclass `Eval`, implement `describe` and `run_sample`, and build the module into a
WebAssembly component with `proctor-eval build app.py -o eval.wasm`.
"""

from . import dataset, isolation, model, scores
from ._eval import Eval
from ._types import (
    Completion,
    EvalInfo,
    FinishReason,
    Message,
    Metric,
    Params,
    QueryFailed,
    Role,
    SampleError,
    SampleFailed,
)

__all__ = [
    "Completion",
    "Eval",
    "EvalInfo",
    "FinishReason",
    "Message",
    "Metric",
    "Params",
    "QueryFailed",
    "Role",
    "SampleError",
    "SampleFailed",
    "dataset",
    "isolation",
    "model",
    "scores",
]
