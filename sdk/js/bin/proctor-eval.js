#!/usr/bin/env node
// The `proctor-eval` command: `proctor-eval build app.js -o eval.wasm [--wasi] [--isolation]`.
// A user error is one line on stderr and exit status 2; an internal failure exits 1.

import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const USAGE = "usage: proctor-eval build APP.(js|ts) -o EVAL.wasm [--wasi] [--isolation]";

function fail(message, status) {
  process.stderr.write(`proctor-eval: ${message}\n`);
  process.exit(status);
}

async function main(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        out: { type: "string", short: "o" },
        wasi: { type: "boolean", default: false },
        isolation: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    fail(`${e.message} (${USAGE})`, 2);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(
      `${USAGE}\n\n` +
        "Bundles APP (its default export made by defineEval) with the SDK and builds a component\n" +
        "of the proctor:eval@0.1.0 world. By default the component imports no WASI at all, so it\n" +
        "runs under every policy (wasi = \"none\" included). --wasi keeps stdio, clocks and random,\n" +
        "for `proctor run --dev`, which shows what the eval writes to stderr. --isolation builds\n" +
        "for proctor:eval@0.2.0, so that isolation.run(code) runs code in a fresh instance.\n",
    );
    return;
  }
  const [command, input, ...rest] = positionals;
  if (command !== "build") fail(command ? `unknown command ${command} (${USAGE})` : USAGE, 2);
  if (!input || rest.length > 0) fail(`expected one module to build (${USAGE})`, 2);
  if (!values.out) fail(`missing -o EVAL.wasm (${USAGE})`, 2);
  const { BuildError, build } = await loadBuild();
  const started = Date.now();
  try {
    const { bytes } = await build({ input, output: values.out, wasi: values.wasi, isolation: values.isolation });
    const mib = (bytes / 2 ** 20).toFixed(1);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    process.stderr.write(`proctor-eval: wrote ${values.out} (${mib} MiB, ${values.isolation ? "proctor:eval@0.2.0, " : ""}${values.wasi ? "with WASI" : "no WASI imports"}) in ${seconds} s\n`);
  } catch (e) {
    if (e instanceof BuildError) fail(e.message, 2);
    fail(`internal error: ${e.stack ?? e}`, 1);
  }
}

/** The build module, or one line saying how to install what it needs: a project that links
 * the SDK by path (`file:`) gets no dependencies of it from its own `npm install`. */
async function loadBuild() {
  try {
    return await import("../src/build.js");
  } catch (e) {
    if (e?.code !== "ERR_MODULE_NOT_FOUND") throw e;
    const sdk = resolve(dirname(fileURLToPath(import.meta.url)), "..");
    fail(`the SDK's dependencies are not installed: run \`npm ci\` in ${sdk}`, 2);
  }
}

await main(process.argv.slice(2));
