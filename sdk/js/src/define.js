// An eval as the component exports it: `defineEval` checks the author's object, and
// `componentExports` (used only by the build's entry module) wraps it so that the errors the
// SDK defines end the sample with a `sample-error` instead of trapping.

import { QueryFailed, SampleFailed, isSampleError } from "./errors.js";

const DEFINED = Symbol("proctor-eval.defined");

/** Declares the eval: `export default defineEval({ describe() {...}, runSample(index) {...} })`.
 * Each `runSample` call runs in a fresh instance: module state starts over for every sample. */
export function defineEval(definition) {
  if (definition === null || typeof definition !== "object") {
    throw new TypeError("defineEval takes an object with describe() and runSample(index)");
  }
  for (const name of ["describe", "runSample"]) {
    if (typeof definition[name] !== "function") {
      throw new TypeError(`defineEval: ${name} must be a function`);
    }
  }
  return Object.freeze({ describe: definition.describe, runSample: definition.runSample, self: definition, [DEFINED]: true });
}

/** The component's `describe` and `runSample` exports for an eval made by `defineEval`. */
export function componentExports(evalDefinition) {
  if (evalDefinition === null || typeof evalDefinition !== "object" || evalDefinition[DEFINED] !== true) {
    throw new TypeError("the eval module's default export must be made by defineEval({ describe, runSample })");
  }
  const { describe, runSample, self } = evalDefinition;
  return {
    describe: () => describe.call(self),
    runSample(index) {
      let returned;
      try {
        returned = runSample.call(self, index);
      } catch (e) {
        // componentize-js lowers a thrown string as the `sample-error` case of that name;
        // anything else thrown traps the sample (outcome `other`).
        const error = sampleErrorOf(e);
        if (!isSampleError(error)) logUncaught(index, error);
        throw error;
      }
      if (returned !== null && typeof returned === "object" && typeof returned.then === "function") {
        const error = new TypeError("runSample must be synchronous: model.complete already waits for the reply");
        logUncaught(index, error);
        throw error;
      }
    },
  };
}

/** Says what trapped the sample, for a `--wasi` build under `proctor run --dev` (the only
 * place guest stderr is shown; a pure build has no stderr and this writes nowhere). */
function logUncaught(index, e) {
  const stack = e instanceof Error && e.stack ? `\n${e.stack}` : "";
  console.error(`runSample(${index}) threw ${String(e)}${stack}`);
}

/** The `sample-error` a thrown error ends the sample with, or the error itself to trap. */
export function sampleErrorOf(e) {
  if (e instanceof SampleFailed) return e.error;
  if (e instanceof QueryFailed) return e.sampleError;
  return e;
}
