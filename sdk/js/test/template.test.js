// The project template `proctor eval new NAME --lang js` writes: only the placeholders the CLI
// fills in, and a package.json that is JSON once they are.
import assert from "node:assert/strict";
import { readFile, readdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const TEMPLATE = join(dirname(fileURLToPath(import.meta.url)), "..", "template");
const PLACEHOLDERS = new Set(["{{name}}", "{{sdk_path}}"]);

const render = (text) => text.replaceAll("{{name}}", "my-eval").replaceAll("{{sdk_path}}", "/opt/proctor/sdk/js");

test("the template uses only {{name}} and {{sdk_path}}", async () => {
  const files = await readdir(TEMPLATE);
  assert.deepEqual(files.sort(), [".gitignore", "README.md", "arith.jsonl", "eval.js", "package.json"]);
  for (const file of files) {
    const text = await readFile(join(TEMPLATE, file), "utf8");
    for (const [placeholder] of text.matchAll(/\{\{[^}]*\}\}/g)) {
      assert.ok(PLACEHOLDERS.has(placeholder), `${file}: ${placeholder}`);
    }
  }
});

test("rendered, the package depends on the SDK by path and builds eval.js", async () => {
  const pkg = JSON.parse(render(await readFile(join(TEMPLATE, "package.json"), "utf8")));
  assert.equal(pkg.name, "my-eval");
  assert.deepEqual(pkg.dependencies, { "proctor-eval": "file:/opt/proctor/sdk/js" });
  assert.equal(pkg.scripts.build, "proctor-eval build eval.js -o eval.wasm");
});

test("the sample dataset is JSONL of {a, b} integers, enough for the standard policy's release", async () => {
  const lines = (await readFile(join(TEMPLATE, "arith.jsonl"), "utf8")).trimEnd().split("\n");
  assert.ok(lines.length >= 10, "standard's min_samples is 10");
  for (const line of lines) {
    const { a, b } = JSON.parse(line);
    assert.ok(Number.isSafeInteger(a) && Number.isSafeInteger(b), line);
  }
});
