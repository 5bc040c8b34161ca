# The arithmetic eval of CONTRACTS.md, written in Python against the proctor:eval@0.1.0 world
# and built with componentize-py: it must run unchanged under the standard policy.
import json
import re

import wit_world
from componentize_py_types import Err
from wit_world.imports import dataset, model, scores
from wit_world.imports.types import (
    EvalInfo,
    Message,
    Metric,
    Params,
    QueryError_BudgetExhausted,
    QueryError_Unavailable,
    Role,
    SampleError,
)

FIRST_INT = re.compile(r"-?\d+")


class WitWorld(wit_world.WitWorld):
    def describe(self) -> EvalInfo:
        return EvalInfo(
            name="arith-py",
            version="1.0.0",
            metrics=[Metric(name="accuracy", description="the reply's first integer is the sum", min=0.0, max=1.0)],
        )

    def run_sample(self, index: int) -> None:
        try:
            item = json.loads(dataset.item(index))
            a, b = int(item["a"]), int(item["b"])
        except (ValueError, KeyError, TypeError):
            raise Err(SampleError.INVALID_ITEM)
        try:
            reply = model.complete(
                [Message(role=Role.USER, content=f"What is {a} + {b}?")],
                Params(max_tokens=16, temperature=0.0, stop=[]),
            )
        except Err as e:
            if isinstance(e.value, QueryError_BudgetExhausted):
                raise Err(SampleError.BUDGET_EXHAUSTED)
            if isinstance(e.value, QueryError_Unavailable):
                raise Err(SampleError.MODEL_UNAVAILABLE)
            raise Err(SampleError.FAILED)
        found = FIRST_INT.search(reply.text)
        scores.report("accuracy", 1.0 if found and int(found.group()) == a + b else 0.0)
