"""The dataset the job runs over: one JSON text per item."""

from __future__ import annotations

import json
from typing import Any

from . import _host
from ._types import SampleError, SampleFailed


def count() -> int:
    """How many items the dataset has."""
    return _host.current().count()


def item(index: int) -> str:
    """Item `index`, exactly as its line was written. An index past the end ends the sample as
    `policy-violation`."""
    return _host.current().item(index)


def item_json(index: int) -> Any:
    """Item `index` parsed as JSON; text that is not JSON raises
    `SampleFailed(SampleError.INVALID_ITEM)`."""
    try:
        return json.loads(item(index))
    except ValueError:
        raise SampleFailed(SampleError.INVALID_ITEM) from None
