"""The `Eval` base class and the rule that turns what `run_sample` raised into a sample's end."""

from __future__ import annotations

from ._types import EvalInfo, QueryFailed, SampleError, SampleFailed


class Eval:
    """An eval program: what it measures, and how one sample runs.

    The app module defines exactly one subclass; `proctor-eval build` finds it. Each call runs
    in a fresh instance of the component, so module state starts over for every sample and
    nothing one sample saw is visible to another.
    """

    def describe(self) -> EvalInfo:
        """Names the eval and declares its metrics. Runs once, at upload, before any model or
        dataset access (calling `model` or `dataset` here is refused)."""
        raise NotImplementedError

    def run_sample(self, index: int) -> None:
        """Runs sample `index`: read items, query the model, report scores. Raising
        `SampleFailed` ends the sample as failed and drops its scores; a `QueryFailed` that
        escapes is mapped to its sample error; any other exception traps the sample."""
        raise NotImplementedError


def sample_error(eval_: Eval, index: int) -> SampleError | None:
    """Runs `eval_.run_sample(index)`: None when it returned, else the sample error it ended
    with. Exceptions other than `SampleFailed` and `QueryFailed` propagate (they trap)."""
    try:
        eval_.run_sample(index)
    except SampleFailed as e:
        return e.error
    except QueryFailed as e:
        return e.sample_error()
    return None
