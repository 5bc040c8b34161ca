// The build's pure parts: which WASI features each build disables, the bundle it hands to
// componentize-js, and the one-line errors an author sees.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { BuildError, build, bundle, componentizeError, disabledFeatures } from "../src/build.js";

const SDK = join(dirname(fileURLToPath(import.meta.url)), "..");
const fixture = (name) => join(SDK, "test", "fixtures", name);

test("a pure build disables every WASI feature; --wasi keeps all but http and fetch-event", () => {
  assert.deepEqual(disabledFeatures({ wasi: false }), ["stdio", "random", "clocks", "http", "fetch-event"]);
  assert.deepEqual(disabledFeatures({ wasi: true }), ["http", "fetch-event"]);
});

test("the bundle imports only the proctor:eval interfaces, exports the world's functions, and holds one SDK", async () => {
  for (const app of ["arith.js", "arith.ts"]) {
    const source = await bundle(join(SDK, "examples", "arith", app));
    const imports = [...source.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]).sort();
    assert.deepEqual(imports, ["proctor:eval/dataset@0.1.0", "proctor:eval/model@0.1.0", "proctor:eval/scores@0.1.0"], app);
    assert.match(source, /export \{[^}]*\bdescribe\b[^}]*\}/, app);
    assert.match(source, /export \{[^}]*\brunSample\b[^}]*\}/, app);
    assert.equal(source.match(/this.name = "QueryFailed"/g)?.length, 1, `${app}: one copy of the SDK`);
    assert.doesNotMatch(source, /interface Item/, `${app}: types stripped`);
  }
});

test("a module without a default export is told how to end", async () => {
  await assert.rejects(bundle(fixture("no-default.js")), (e) => e instanceof BuildError && /export default defineEval/.test(e.message));
});

test("bundling errors name the author's file and line", async () => {
  await assert.rejects(bundle(fixture("syntax-error.js")), (e) => e instanceof BuildError && /syntax-error\.js:\d+:/.test(e.message));
  await assert.rejects(bundle(fixture("unknown-import.js")), (e) => e instanceof BuildError && /Could not resolve "no-such-package"/.test(e.message));
  await assert.rejects(bundle(fixture("sdk-subpath.js")), (e) => e instanceof BuildError && /import from "proctor-eval"/.test(e.message));
});

test("a missing file or a foreign extension is refused before anything runs", async () => {
  await assert.rejects(build({ input: fixture("absent.js"), output: "/dev/null" }), /no such file/);
  await assert.rejects(build({ input: join(SDK, "package.json"), output: "/dev/null" }), /expected a \.js, \.mjs, \.ts or \.mts module/);
});

test("an exception while componentize-js initializes the module is one line naming it", () => {
  const wizer = [
    "Failed to initialize component (wizer (/x/wizer)):",
    "",
    "Exception while evaluating top-level script",
    "eval.js:92:13 TypeError: defineEval: runSample must be a function",
    "Additionally, some promises were rejected, but the rejection never handled:",
    "Stack:",
    "  defineEval@eval.js:92:13",
  ].join("\n");
  assert.equal(
    componentizeError(wizer),
    "the module threw while it was initialized: TypeError: defineEval: runSample must be a function",
  );
  assert.equal(componentizeError("first\n\n  second\n"), "componentize-js: first | second");
});
