"""The build command's own logic: finding the Eval subclass, one-line user errors, the
componentize-py command line (componentize-py itself runs in the Rust tests)."""

import contextlib
import io
import tempfile
import unittest
from pathlib import Path

from proctor_eval import build
from proctor_eval._discover import AppError, find_eval

REPO = Path(__file__).resolve().parents[3]


def run_main(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = build.main(argv)
    return code, err.getvalue()


class FindEval(unittest.TestCase):
    def test_a_direct_subclass_is_found(self):
        self.assertEqual(find_eval("from proctor_eval import Eval\nclass A(Eval):\n    pass\n", "app.py"), "A")

    def test_aliases_and_module_imports_are_followed(self):
        self.assertEqual(find_eval("from proctor_eval import Eval as E\nclass A(E): pass\n", "app.py"), "A")
        self.assertEqual(find_eval("import proctor_eval as pe\nclass A(pe.Eval): pass\n", "app.py"), "A")
        self.assertEqual(find_eval("import proctor_eval\nclass A(proctor_eval.Eval): pass\n", "app.py"), "A")

    def test_the_most_derived_local_subclass_is_the_eval(self):
        src = "from proctor_eval import Eval\nclass Base(Eval): pass\nclass A(Base): pass\n"
        self.assertEqual(find_eval(src, "app.py"), "A")

    def test_no_subclass_is_an_error(self):
        with self.assertRaisesRegex(AppError, r"^app\.py: no subclass of proctor_eval\.Eval"):
            find_eval("from proctor_eval import Eval\nclass A: pass\n", "app.py")

    def test_a_class_named_eval_from_elsewhere_does_not_count(self):
        with self.assertRaises(AppError):
            find_eval("from other import Eval\nclass A(Eval): pass\n", "app.py")

    def test_two_subclasses_are_an_error_naming_both(self):
        src = "from proctor_eval import Eval\nclass A(Eval): pass\nclass B(Eval): pass\n"
        with self.assertRaisesRegex(AppError, r"2 subclasses of proctor_eval\.Eval: A \(line 2\), B \(line 3\)"):
            find_eval(src, "app.py")

    def test_a_syntax_error_names_the_line(self):
        with self.assertRaisesRegex(AppError, r"^app\.py:2:\d+: syntax error: "):
            find_eval("from proctor_eval import Eval\ndef f(:\n", "app.py")


class UserErrors(unittest.TestCase):
    def check_one_line_error(self, name, source, expected):
        with tempfile.TemporaryDirectory() as tmp:
            app = Path(tmp) / name
            app.write_text(source)
            code, err = run_main(["build", str(app), "-o", str(Path(tmp) / "eval.wasm")])
            self.assertFalse((Path(tmp) / "eval.wasm").exists())
        self.assertEqual(code, 1)
        self.assertEqual(err.count("\n"), 1, err)
        self.assertTrue(err.startswith("proctor-eval: error: "), err)
        self.assertIn(expected, err)

    def test_no_subclass_fails_in_one_line(self):
        self.check_one_line_error("app.py", "x = 1\n", "no subclass of proctor_eval.Eval")

    def test_two_subclasses_fail_in_one_line(self):
        src = "from proctor_eval import Eval\nclass A(Eval): pass\nclass B(Eval): pass\n"
        self.check_one_line_error("app.py", src, "2 subclasses")

    def test_a_syntax_error_fails_in_one_line(self):
        self.check_one_line_error("app.py", "from proctor_eval import Eval\nclass A(Eval)\n", "app.py:2:")

    def test_an_app_named_like_a_generated_module_fails_in_one_line(self):
        self.check_one_line_error("wit_world.py", "x = 1\n", "cannot be the app's module name")

    def test_a_missing_app_fails_in_one_line(self):
        code, err = run_main(["build", "/nonexistent/app.py"])
        self.assertEqual((code, err.count("\n")), (1, 1), err)
        self.assertIn("not a Python file", err)


class Componentize(unittest.TestCase):
    def test_the_default_build_stubs_wasi_and_targets_0_1_0(self):
        args = build.componentize_args(build.WORLD_0_1, Path("w"), [Path("g"), Path("a")], Path("o.wasm"), True)
        self.assertEqual(
            args,
            ["-d", "w", "-w", "proctor:eval/eval@0.1.0", "componentize", "--stub-wasi", "-p", "g", "-p", "a", build.ENTRY, "-o", "o.wasm"],
        )

    def test_the_wasi_build_keeps_wasi(self):
        args = build.componentize_args(build.WORLD_0_2, Path("w"), [], Path("o.wasm"), False)
        self.assertNotIn("--stub-wasi", args)
        self.assertIn("proctor:eval/eval@0.2.0", args)

    def test_the_entry_exports_the_found_class(self):
        src = build.entry_source("app", "Arith", True, False)
        self.assertIn("import app as _app", src)
        self.assertIn("_world.export(_app, 'Arith', isolation=True, wasi=False)", src)
        compile(src, "entry", "exec")

    def test_a_componentize_failure_is_said_by_its_cause(self):
        output = "Traceback...\nAssertionError: long\n\n\nCaused by:\n    ImportError: No module named 'numpy'\n\nStack backtrace:\n   0: x\n"
        self.assertEqual(build.componentize_failure(output), "ImportError: No module named 'numpy'")
        self.assertEqual(build.componentize_failure("x\nAssertionError: boom\n"), "boom")


class BundledWit(unittest.TestCase):
    def test_the_bundled_wit_is_the_sandbox_wit_byte_for_byte(self):
        bundled = REPO / "sdk/python/src/proctor_eval/wit"
        sandbox = REPO / "crates/proctor-sandbox"
        self.assertEqual((bundled / "eval-0.1.0.wit").read_bytes(), (sandbox / "wit/proctor.wit").read_bytes())
        self.assertEqual((bundled / "eval-0.2.0.wit").read_bytes(), (sandbox / "wit-0.2.0/proctor.wit").read_bytes())
        self.assertEqual(
            (sandbox / "wit-0.2.0/deps/eval-0.1.0/proctor.wit").read_bytes(), (sandbox / "wit/proctor.wit").read_bytes()
        )


if __name__ == "__main__":
    unittest.main()
