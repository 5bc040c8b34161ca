"""Scores: only declared metrics, finite values; the host clips to the declared range and keeps
the last value per metric per sample."""

from __future__ import annotations

from . import _host


def report(metric: str, value: float) -> None:
    """Reports `value` for `metric`. An undeclared metric or a non-finite value ends the sample
    as `policy-violation`."""
    _host.current().report(metric, float(value))
