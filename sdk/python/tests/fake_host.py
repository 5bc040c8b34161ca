"""A host double for unit tests: records calls, answers from a list of items."""

from __future__ import annotations

from proctor_eval import Completion, FinishReason, QueryFailed, _host


class FakeHost:
    def __init__(self, items=(), answer="7", refuse=None, verdict="passed"):
        self.items = list(items)
        self.answer = answer
        self.refuse = refuse  # a QueryFailed kind to raise from complete, or None
        self.verdict = verdict
        self.requests = []
        self.reports = []
        self.isolated = []

    def complete(self, messages, params):
        self.requests.append((messages, params))
        if self.refuse is not None:
            raise QueryFailed(self.refuse, "prompt is 9 bytes; the policy allows 1" if self.refuse == "rejected" else None)
        return Completion(self.answer, FinishReason.STOP, 4, 1)

    def count(self):
        return len(self.items)

    def item(self, index):
        return self.items[index]

    def report(self, metric, value):
        self.reports.append((metric, value))

    def isolation_run(self, code, fuel):
        self.isolated.append((code, fuel))
        return self.verdict

    def __enter__(self):
        self._before = _host.current()
        _host.bind(self)
        return self

    def __exit__(self, *exc):
        _host.bind(self._before)
        return False
