"""A hostile eval on the SDK: each dataset item names what the sample does, so one component
shows every way a Python sample can end (`crates/proctor-sandbox/tests/python_sdk.rs`)."""

import sys

from proctor_eval import Eval, EvalInfo, Message, Metric, Params, SampleError, SampleFailed, dataset, model, scores


class Hostile(Eval):
    def describe(self) -> EvalInfo:
        return EvalInfo("hostile-py", "1.0.0", [Metric("ok", "the sample got to its end", 0.0, 1.0)])

    def run_sample(self, index: int) -> None:
        do = dataset.item_json(index)["do"]
        if do == "print":
            # A zero-WASI build has no stdout: the SDK discards what is printed.
            print("a debugging line", flush=True)
            print("and one to stderr", file=sys.stderr)
        elif do == "loop":
            while True:
                pass
        elif do == "memory":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        elif do == "raise":
            raise RuntimeError("an exception nobody catches")
        elif do == "undeclared":
            scores.report("not-declared", 1.0)
        elif do == "non-finite":
            scores.report("ok", float("nan"))
        elif do == "out-of-range":
            dataset.item(dataset.count())
        elif do == "invalid":
            raise SampleFailed(SampleError.INVALID_ITEM)
        elif do == "rejected":
            # Above the policy's max_tokens: the host rejects the query, the SDK maps it to `failed`.
            model.complete([Message.user("hi")], Params(max_tokens=1_000_000))
        elif do == "budget":
            # One query more than the policy's max_per_sample: `budget-exhausted`.
            for _ in range(1000):
                model.complete([Message.user("hi")])
        scores.report("ok", 1.0)
