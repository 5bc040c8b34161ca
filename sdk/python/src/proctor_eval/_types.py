"""The contract's records as plain Python types (the WIT `types` interface of proctor:eval)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Sequence


class Role(enum.Enum):
    """Who speaks a message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True)
class Message:
    """One message of a conversation."""

    role: Role
    content: str

    @classmethod
    def system(cls, content: str) -> Message:
        """A system message."""
        return cls(Role.SYSTEM, content)

    @classmethod
    def user(cls, content: str) -> Message:
        """A user message."""
        return cls(Role.USER, content)

    @classmethod
    def assistant(cls, content: str) -> Message:
        """An assistant message (for few-shot conversations)."""
        return cls(Role.ASSISTANT, content)


@dataclass(frozen=True)
class Params:
    """Request parameters. `max_tokens` None: the policy's ceiling applies; `temperature` None:
    the endpoint's default."""

    max_tokens: int | None = None
    temperature: float | None = None
    stop: Sequence[str] = field(default=())

    def __post_init__(self) -> None:
        # A bare string is a sequence of one-character stop sequences: never what was meant.
        if isinstance(self.stop, str):
            raise TypeError("Params.stop takes a sequence of strings, not one string")
        object.__setattr__(self, "stop", tuple(self.stop))


class FinishReason(enum.Enum):
    """Why the model stopped."""

    STOP = "stop"
    LENGTH = "length"
    REFUSED = "refused"
    OTHER = "other"


@dataclass(frozen=True)
class Completion:
    """The model's answer."""

    text: str
    finish: FinishReason
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Metric:
    """A declared metric: `name` matches `[a-z][a-z0-9_-]{0,63}`, values lie in [min, max]."""

    name: str
    description: str
    min: float
    max: float


@dataclass(frozen=True)
class EvalInfo:
    """An eval's name, version and metric declarations."""

    name: str
    version: str
    metrics: Sequence[Metric]


class SampleError(enum.Enum):
    """How a sample can fail on purpose (its scores are dropped)."""

    MODEL_UNAVAILABLE = "model-unavailable"
    BUDGET_EXHAUSTED = "budget-exhausted"
    INVALID_ITEM = "invalid-item"
    FAILED = "failed"


class SampleFailed(Exception):
    """Raised by `run_sample` to end the sample as failed with `error`."""

    def __init__(self, error: SampleError) -> None:
        super().__init__(error.value)
        self.error = error


class QueryFailed(Exception):
    """The host refused a model call: `kind` is "budget-exhausted", "unavailable" or
    "rejected"; `reason` is the host's text for "rejected", else None."""

    KINDS = ("budget-exhausted", "unavailable", "rejected")

    def __init__(self, kind: str, reason: str | None = None) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown query error kind {kind!r}")
        super().__init__(kind if reason is None else f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason

    def sample_error(self) -> SampleError:
        """The sample error that usually follows: the budget, the endpoint, or (for a request
        the policy rejected) a plain failure."""
        return {
            "budget-exhausted": SampleError.BUDGET_EXHAUSTED,
            "unavailable": SampleError.MODEL_UNAVAILABLE,
            "rejected": SampleError.FAILED,
        }[self.kind]
