"""The Python arith example reads items and replies as the Rust example does
(`crates/evals/arith/src/lib.rs`), so the two give the same aggregates."""

import importlib.util
import unittest
from pathlib import Path

from fake_host import FakeHost
from proctor_eval import SampleError, SampleFailed

_spec = importlib.util.spec_from_file_location(
    "arith_example", Path(__file__).resolve().parents[1] / "examples/arith/app.py"
)
arith = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(arith)


def outcome(item, answer):
    with FakeHost(items=[item], answer=answer) as host:
        try:
            arith.Arith().run_sample(0)
        except SampleFailed as e:
            return e.error
    return host.reports


class ArithExample(unittest.TestCase):
    def test_the_right_sum_scores_one_and_the_prompt_is_the_contracts(self):
        with FakeHost(items=['{"a": 3, "b": 4}'], answer="7") as host:
            arith.Arith().run_sample(0)
        (messages, params), = host.requests
        self.assertEqual(messages[0].content, "What is 3 + 4?")
        self.assertEqual((params.max_tokens, params.temperature, params.stop), (16, 0.0, ()))
        self.assertEqual(host.reports, [("accuracy", 1.0)])

    def test_the_first_integer_of_the_reply_counts(self):
        self.assertEqual(outcome('{"a": 3, "b": 4}', "It is 7, not 8"), [("accuracy", 1.0)])
        self.assertEqual(outcome('{"a": 3, "b": 4}', "8 or 7"), [("accuracy", 0.0)])
        self.assertEqual(outcome('{"a": -3, "b": -4}', "x=-7"), [("accuracy", 1.0)])
        self.assertEqual(outcome('{"a": -3, "b": -4}', "- 7"), [("accuracy", 0.0)])
        self.assertEqual(outcome('{"a": 1, "b": 1}', "I don't know"), [("accuracy", 0.0)])

    def test_items_the_rust_example_refuses_are_invalid(self):
        for item in ['{"a": 1}', '{"a": 1.0, "b": 2}', '{"a": true, "b": 2}', '"text"', "not json",
                     '{"a": 9223372036854775807, "b": 1}', '{"a": 9223372036854775808, "b": 0}']:
            self.assertEqual(outcome(item, "0"), SampleError.INVALID_ITEM, item)

    def test_first_integer_matches_the_rust_parser(self):
        cases = {"": None, "abc": None, "42": 42, "a-5b": -5, "--5": -5, "1.5": 1, "٣ 4": 4,
                 "9223372036854775807": 2**63 - 1, "9223372036854775808": None, "007": 7}
        for text, value in cases.items():
            self.assertEqual(arith.first_integer(text), value, text)


if __name__ == "__main__":
    unittest.main()
