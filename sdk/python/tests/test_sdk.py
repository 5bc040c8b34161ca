"""The SDK's own logic, outside a component: types, the host calls, error mapping, isolation."""

import unittest

from fake_host import FakeHost
from proctor_eval import (
    Eval,
    EvalInfo,
    Message,
    Metric,
    Params,
    QueryFailed,
    Role,
    SampleError,
    SampleFailed,
    dataset,
    isolation,
    model,
    scores,
)
from proctor_eval._eval import sample_error


class Raising(Eval):
    def __init__(self, exc):
        self.exc = exc

    def describe(self):
        return EvalInfo("raising", "1.0.0", [Metric("m", "", 0.0, 1.0)])

    def run_sample(self, index):
        if self.exc is not None:
            raise self.exc


class Types(unittest.TestCase):
    def test_messages_carry_their_role(self):
        self.assertEqual(Message.user("hi"), Message(Role.USER, "hi"))
        self.assertEqual(Message.system("s").role, Role.SYSTEM)
        self.assertEqual(Message.assistant("a").role, Role.ASSISTANT)

    def test_params_default_to_the_policy_and_the_endpoint(self):
        self.assertEqual(Params(), Params(None, None, ()))

    def test_params_keep_stop_sequences_as_a_tuple(self):
        self.assertEqual(Params(stop=["\n", "END"]).stop, ("\n", "END"))

    def test_a_bare_string_as_stop_is_refused(self):
        with self.assertRaises(TypeError):
            Params(stop="\n")

    def test_an_unknown_query_error_kind_is_refused(self):
        with self.assertRaises(ValueError):
            QueryFailed("teapot")


class RunSample(unittest.TestCase):
    def test_a_sample_that_returns_has_no_error(self):
        self.assertIsNone(sample_error(Raising(None), 0))

    def test_sample_failed_ends_the_sample_with_its_error(self):
        for error in SampleError:
            self.assertEqual(sample_error(Raising(SampleFailed(error)), 0), error)

    def test_query_errors_map_to_sample_errors(self):
        cases = {
            "budget-exhausted": SampleError.BUDGET_EXHAUSTED,
            "unavailable": SampleError.MODEL_UNAVAILABLE,
            "rejected": SampleError.FAILED,
        }
        for kind, error in cases.items():
            self.assertEqual(sample_error(Raising(QueryFailed(kind)), 0), error, kind)

    def test_any_other_exception_escapes_so_the_sample_traps(self):
        for exc in (KeyError("a"), ValueError("x"), RuntimeError("boom")):
            with self.assertRaises(type(exc)):
                sample_error(Raising(exc), 0)

    def test_the_base_class_implements_nothing(self):
        with self.assertRaises(NotImplementedError):
            Eval().describe()
        with self.assertRaises(NotImplementedError):
            Eval().run_sample(0)


class HostCalls(unittest.TestCase):
    def test_item_json_parses_the_item(self):
        with FakeHost(items=['{"a": 1, "b": 2}']):
            self.assertEqual(dataset.item_json(0), {"a": 1, "b": 2})
            self.assertEqual(dataset.count(), 1)

    def test_an_item_that_is_not_json_is_an_invalid_item(self):
        with FakeHost(items=["{not json"]):
            with self.assertRaises(SampleFailed) as caught:
                dataset.item_json(0)
        self.assertEqual(caught.exception.error, SampleError.INVALID_ITEM)

    def test_complete_sends_default_params_when_none_are_given(self):
        with FakeHost() as host:
            reply = model.complete([Message.user("What is 3 + 4?")])
        self.assertEqual(reply.text, "7")
        self.assertEqual(host.requests, [([Message.user("What is 3 + 4?")], Params())])

    def test_complete_takes_only_messages(self):
        with FakeHost():
            with self.assertRaises(TypeError):
                model.complete(["What is 3 + 4?"])

    def test_complete_takes_any_iterable_of_messages(self):
        with FakeHost() as host:
            model.complete(Message.user(t) for t in ("a", "b"))
        self.assertEqual(host.requests[0][0], [Message.user("a"), Message.user("b")])

    def test_a_refused_query_raises_query_failed_with_the_host_reason(self):
        with FakeHost(refuse="rejected"):
            with self.assertRaises(QueryFailed) as caught:
                model.complete([Message.user("x")])
        self.assertEqual(caught.exception.kind, "rejected")
        self.assertEqual(caught.exception.reason, "prompt is 9 bytes; the policy allows 1")

    def test_report_sends_a_float(self):
        with FakeHost() as host:
            scores.report("accuracy", 1)
        self.assertEqual(host.reports, [("accuracy", 1.0)])
        self.assertIs(type(host.reports[0][1]), float)

    def test_outside_a_component_the_host_calls_say_so(self):
        with self.assertRaises(RuntimeError) as caught:
            dataset.count()
        self.assertIn("proctor-eval build", str(caught.exception))


class Isolation(unittest.TestCase):
    def test_run_returns_the_host_verdict(self):
        for verdict in isolation.Verdict:
            with FakeHost(verdict=verdict.value) as host:
                self.assertEqual(isolation.run("x = 1", fuel=10), verdict)
            self.assertEqual(host.isolated, [("x = 1", 10)])

    def test_run_uses_the_default_fuel(self):
        with FakeHost() as host:
            isolation.run("pass")
        self.assertEqual(host.isolated, [("pass", isolation.DEFAULT_FUEL)])

    def test_fuel_outside_u64_is_refused(self):
        with FakeHost():
            for fuel in (-1, 1 << 64, 1.5, True):
                with self.assertRaises(ValueError, msg=repr(fuel)):
                    isolation.run("pass", fuel)

    def test_code_that_runs_cleanly_passes(self):
        self.assertTrue(isolation.exec_isolated("def f(x):\n    return x + 1\nassert f(1) == 2\n"))

    def test_code_that_raises_anything_fails(self):
        for code in ("assert False", "raise SystemExit(0)", "raise KeyboardInterrupt", "def f(:", "import nonexistent_module_x"):
            self.assertFalse(isolation.exec_isolated(code), code)

    def test_isolated_code_runs_in_its_own_namespace(self):
        self.assertTrue(isolation.exec_isolated("assert __name__ == '__isolated__'\nassert 'isolation' not in globals()"))


if __name__ == "__main__":
    unittest.main()
