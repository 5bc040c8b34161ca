"""HumanEval (Chen et al., 2021) as a Proctor eval: does the model's code pass the problem's tests?

One sample per problem. The model is shown the problem's prompt (a signature and a docstring)
and asked for the function; its reply is stripped of markdown fences and run, with the
problem's tests, through `isolation.run`: in a fresh instance of this component, under fuel of
its own, where the model, the dataset and scores are out of reach. Only the verdict comes back,
so the sample is `ok` whatever the candidate does (loops, exhausts memory, crashes, or tries
to report a score of its own); `pass_at_1` is 1.0 when the verdict is `PASSED`, else 0.0.
"""

import re

# Modules the problems' tests, their canonical solutions and common completions import.
# componentize-py snapshots the interpreter after importing this file and bundles nothing
# else, so an `import string` in the isolated run finds the module already imported here or
# not at all (ModuleNotFoundError: the candidate fails).
import collections  # noqa: F401
import copy  # noqa: F401
import functools  # noqa: F401
import hashlib  # noqa: F401
import heapq  # noqa: F401
import itertools  # noqa: F401
import math  # noqa: F401
import random  # noqa: F401
import string  # noqa: F401
import typing  # noqa: F401

from proctor_eval import (
    Eval,
    EvalInfo,
    Message,
    Metric,
    Params,
    SampleError,
    SampleFailed,
    dataset,
    isolation,
    model,
    scores,
)

# Fuel for one candidate's run with its tests (about three seconds of CPython's work; the
# slowest canonical solution needs 2e9 to 4e9). The host caps it by what is left of the
# sample's isolation budget, the policy's fuel per sample: `policy.toml` beside this file
# gives 1e10, `standard` only 2e9.
FUEL = 10_000_000_000

INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function, "
    "in one ```python code block.\n\n"
)

# The first fenced block: ```python, ```py, ```python3 or a bare ```. Its closing fence may
# be missing when the reply was cut off at the token limit.
FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\r?\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def extract_code(completion: str) -> str:
    """The code in a reply, as common harnesses take it: the first fenced block's content if
    the reply has one, else the reply as it is. A reply that is not code is kept too: it fails
    to compile in the isolated run, which is a `FAILED` verdict and a 0 for the problem."""
    match = FENCE.search(completion)
    return match.group(1) if match else completion


def program(problem: dict, completion: str) -> str:
    """The official harness's check program: the prompt, the completion (a body continues
    the prompt's function; a whole function redefines it), the tests, the call of `check`."""
    return (
        problem["prompt"]
        + extract_code(completion)
        + "\n"
        + problem["test"]
        + f"\ncheck({problem['entry_point']})\n"
    )


class HumanEval(Eval):
    def describe(self) -> EvalInfo:
        return EvalInfo(
            "humaneval",
            "1.0.0",
            [
                Metric(
                    "pass_at_1",
                    "the model's one completion (temperature 0) passes the problem's tests",
                    0.0,
                    1.0,
                )
            ],
        )

    def run_sample(self, index: int) -> None:
        problem = dataset.item_json(index)
        try:
            prompt, test, entry_point = problem["prompt"], problem["test"], problem["entry_point"]
        except (KeyError, TypeError):
            raise SampleFailed(SampleError.INVALID_ITEM)
        if not all(isinstance(v, str) for v in (prompt, test, entry_point)):
            raise SampleFailed(SampleError.INVALID_ITEM)
        # No max_tokens: the policy's ceiling is the default, so the eval runs under any policy.
        reply = model.complete(
            [Message.user(INSTRUCTION + "```python\n" + prompt + "```\n")],
            Params(temperature=0.0),
        )
        verdict = isolation.run(program(problem, reply.text), FUEL)
        scores.report("pass_at_1", 1.0 if verdict == isolation.Verdict.PASSED else 0.0)
