"""The `proctor eval new --lang python` template: its placeholders, and that its app, rendered,
is a working eval over its own dataset."""

import importlib.util
import json
import re
import tempfile
import unittest
from pathlib import Path

from fake_host import FakeHost
from proctor_eval._discover import find_eval

TEMPLATE = Path(__file__).resolve().parents[1] / "template"
PLACEHOLDERS = {"{{name}}": "my-eval", "{{sdk_path}}": "/opt/proctor/sdk/python"}


def render(text):
    for key, value in PLACEHOLDERS.items():
        text = text.replace(key, value)
    return text


class Template(unittest.TestCase):
    def test_only_known_placeholders_appear(self):
        for f in TEMPLATE.iterdir():
            for found in re.findall(r"\{\{[^}]*\}\}", f.read_text()):
                self.assertIn(found, PLACEHOLDERS, f.name)

    def test_the_rendered_app_scores_its_dataset(self):
        with tempfile.TemporaryDirectory() as tmp:
            app = Path(tmp) / "app.py"
            app.write_text(render((TEMPLATE / "app.py").read_text()))
            self.assertEqual(find_eval(app.read_text(), "app.py"), "Arith")
            spec = importlib.util.spec_from_file_location("template_app", app)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        self.assertEqual(module.Arith().describe().name, "my-eval")
        items = (TEMPLATE / "arith.jsonl").read_text().splitlines()
        self.assertGreaterEqual(len(items), 10)  # the standard policy's min_samples
        for i, line in enumerate(items):
            item = json.loads(line)
            with FakeHost(items=items, answer=str(item["a"] + item["b"])) as host:
                module.Arith().run_sample(i)
            self.assertEqual(host.reports, [("accuracy", 1.0)], line)

    def test_the_requirements_install_the_sdk_from_a_path(self):
        self.assertIn("proctor-eval @ file:///opt/proctor/sdk/python", render((TEMPLATE / "requirements.txt").read_text()))


if __name__ == "__main__":
    unittest.main()
