"""The model under test: the eval's only capability."""

from __future__ import annotations

from typing import Sequence

from . import _host
from ._types import Completion, Message, Params


def complete(messages: Sequence[Message], params: Params | None = None) -> Completion:
    """Sends one request and returns the model's answer.

    The host checks the request against the policy first (prompt size, max tokens, queries per
    sample, budget) and answers a refusal with `QueryFailed`; escaping `run_sample`, that ends
    the sample with the matching sample error. Calling it from `describe` is refused.
    """
    messages = list(messages)
    for m in messages:
        if not isinstance(m, Message):
            raise TypeError(f"model.complete takes Message values, not {type(m).__name__}")
    if params is not None and not isinstance(params, Params):
        raise TypeError(f"model.complete takes Params, not {type(params).__name__}")
    return _host.current().complete(messages, params if params is not None else Params())
