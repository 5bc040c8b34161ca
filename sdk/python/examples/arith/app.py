"""Arithmetic (CONTRACTS.md): one question `What is {a} + {b}?` per item (`{"a": int, "b": int}`);
`accuracy` is 1 when the first integer in the reply is the sum. The same eval, metric and
semantics as the Rust example `crates/evals/arith`, so both give the same aggregates."""

from proctor_eval import Eval, EvalInfo, Message, Metric, Params, SampleError, SampleFailed, dataset, model, scores

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


class Arith(Eval):
    def describe(self) -> EvalInfo:
        return EvalInfo("arith-py", "1.0.0", [Metric("accuracy", "the first integer in the reply is a + b", 0.0, 1.0)])

    def run_sample(self, index: int) -> None:
        item = dataset.item_json(index)
        a, b = integer(item, "a"), integer(item, "b")
        if not I64_MIN <= a + b <= I64_MAX:
            raise SampleFailed(SampleError.INVALID_ITEM)
        reply = model.complete([Message.user(f"What is {a} + {b}?")], Params(max_tokens=16, temperature=0.0))
        scores.report("accuracy", 1.0 if first_integer(reply.text) == a + b else 0.0)


def integer(item: object, key: str) -> int:
    """`item[key]` as a 64-bit integer (as the Rust example reads it), else an invalid item."""
    value = item.get(key) if isinstance(item, dict) else None
    if type(value) is not int or not I64_MIN <= value <= I64_MAX:
        raise SampleFailed(SampleError.INVALID_ITEM)
    return value


def first_integer(text: str) -> int | None:
    """The first run of ASCII digits in `text` as a 64-bit integer, negative if a `-` is right
    before it; None when there is none or it does not fit."""
    start = next((i for i, c in enumerate(text) if "0" <= c <= "9"), None)
    if start is None:
        return None
    end = start
    while end < len(text) and "0" <= text[end] <= "9":
        end += 1
    value = int(text[start:end])
    if value > I64_MAX:
        return None
    return -value if text[:start].endswith("-") else value
