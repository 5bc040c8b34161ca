// `proctor-eval build`: the author's module and this SDK bundled into one ES module (esbuild;
// TypeScript is type-stripped on the way), then made a component of the bundled WIT world by
// componentize-js. Build-time only: nothing here is part of the component.

import { copyFile, mkdir, mkdtemp, rm, writeFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";
import { componentize } from "@bytecodealliance/componentize-js";

const SDK = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const WIT = join(SDK, "wit");
/** The 0.2.0 world, which includes 0.1.0: staged with 0.1.0 as its dependency. */
const WIT_0_2_0 = join(SDK, "wit-0.2.0", "proctor.wit");
const SOURCE_EXTENSIONS = new Set([".js", ".mjs", ".ts", ".mts"]);

/** Every WASI feature componentize-js knows; a pure build disables them all. */
const PURE = ["stdio", "random", "clocks", "http", "fetch-event"];
/** `--wasi` keeps stdio, random and clocks (which the host links as inert shims); http and
 * fetch-event would import `wasi:http`, which no policy links. */
const WITH_WASI = ["http", "fetch-event"];

/** A mistake of the author's (bad input, a module that does not bundle or initialize): the
 * CLI prints its message as one line and exits 2. */
export class BuildError extends Error {
  constructor(message) {
    super(message);
    this.name = "BuildError";
  }
}

/** The componentize-js features a build disables. */
export function disabledFeatures({ wasi }) {
  return wasi ? [...WITH_WASI] : [...PURE];
}

/** Bundles `app` (its default export made by `defineEval`) with this SDK: one ES module whose
 * only imports are the proctor:eval interfaces, exporting `describe` and `runSample` (and,
 * with `isolation`, `runIsolated`). */
export async function bundle(app, { isolation = false } = {}) {
  const entry = [
    `import evalDefinition from ${JSON.stringify(app)};`,
    `import { componentExports } from ${JSON.stringify(join(SDK, "src", "define.js"))};`,
    "const exported = componentExports(evalDefinition);",
    "export const describe = exported.describe;",
    "export const runSample = exported.runSample;",
    ...(isolation
      ? [`export { runIsolated } from ${JSON.stringify(join(SDK, "src", "isolation.js"))};`]
      : []),
    "",
  ].join("\n");
  let result;
  try {
    result = await esbuild.build({
      stdin: { contents: entry, resolveDir: dirname(app), sourcefile: "proctor-eval-entry.js", loader: "js" },
      bundle: true,
      write: false,
      format: "esm",
      platform: "neutral",
      mainFields: ["module", "main"],
      logLevel: "silent",
      plugins: [sdkResolver(isolation)],
    });
  } catch (e) {
    throw new BuildError(firstBundleError(e, app));
  }
  return result.outputFiles[0].text;
}

/** Resolves `proctor-eval` to this very SDK (so the author's module and the entry share one
 * copy, and `instanceof` holds), and keeps the WIT interfaces as the bundle's imports, but for
 * the isolation interface in a build without `isolation`: its world has none. */
const sdkResolver = (isolation) => ({
  name: "proctor-eval",
  setup(build) {
    build.onResolve({ filter: /^proctor-eval(\/.*)?$/ }, (args) =>
      args.path === "proctor-eval"
        ? { path: join(SDK, "src", "index.js") }
        : { errors: [{ text: `proctor-eval has no module ${JSON.stringify(args.path)}: import from "proctor-eval"` }] },
    );
    build.onResolve({ filter: /^proctor:eval\/isolation@/ }, (args) =>
      isolation ? { path: args.path, external: true } : { path: join(SDK, "src", "isolation-stub.js") },
    );
    build.onResolve({ filter: /^proctor:/ }, (args) => ({ path: args.path, external: true }));
  },
});

function firstBundleError(e, app) {
  const first = e.errors?.[0];
  if (!first) return String(e.message ?? e);
  if (/No matching export .* for import "default"/.test(first.text)) {
    return `${app} has no default export: end it with \`export default defineEval({ describe, runSample })\``;
  }
  const where = first.location ? `${first.location.file}:${first.location.line}:${first.location.column + 1}: ` : "";
  return `${where}${first.text}`;
}

/** Writes the 0.2.0 world into `dir` with 0.1.0, which it includes, as its dependency. */
async function stageWit020(dir) {
  await mkdir(join(dir, "deps", "eval-0.1.0"), { recursive: true });
  await copyFile(WIT_0_2_0, join(dir, "proctor.wit"));
  await copyFile(join(WIT, "proctor.wit"), join(dir, "deps", "eval-0.1.0", "proctor.wit"));
  return dir;
}

/** Builds `input` into the component `output`; `wasi` keeps stdio, clocks and random;
 * `isolation` builds for proctor:eval@0.2.0, so that `isolation.run` works. */
export async function build({ input, output, wasi = false, isolation = false }) {
  const app = resolve(input);
  if (!SOURCE_EXTENSIONS.has(extname(app))) {
    throw new BuildError(`${input}: expected a .js, .mjs, .ts or .mts module`);
  }
  const found = await stat(app).catch(() => null);
  if (!found?.isFile()) {
    throw new BuildError(`${input}: no such file`);
  }
  const source = await bundle(app, { isolation });
  const work = await mkdtemp(join(tmpdir(), "proctor-eval-"));
  try {
    const sourcePath = join(work, "eval.js");
    await writeFile(sourcePath, source);
    let component;
    try {
      ({ component } = await componentize({
        sourcePath,
        witPath: isolation ? await stageWit020(join(work, "wit")) : WIT,
        worldName: "eval",
        disableFeatures: disabledFeatures({ wasi }),
      }));
    } catch (e) {
      throw new BuildError(componentizeError(String(e?.message ?? e)));
    }
    await writeFile(resolve(output), component);
    return { bytes: component.length };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** componentize-js runs the module once while it builds (wizer); an exception there (a
 * misused defineEval, a top-level statement that throws) is reported in several lines, the
 * exception on the one after "Exception while evaluating top-level script". */
export function componentizeError(message) {
  const lines = message.split("\n").map((l) => l.trim()).filter(Boolean);
  const at = lines.findIndex((l) => l.startsWith("Exception while evaluating top-level script"));
  if (at >= 0 && at + 1 < lines.length) {
    // The location points into the bundle, not the author's file: leave it out.
    return `the module threw while it was initialized: ${lines[at + 1].replace(/^\S+:\d+:\d+ /, "")}`;
  }
  return `componentize-js: ${lines.join(" | ")}`;
}
