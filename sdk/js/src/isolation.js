// Code the eval does not trust (a model's program) run in a fresh, confined instance of the
// same component under fuel of its own; the sample learns only a verdict. Needs a build with
// `proctor-eval build --isolation` (world proctor:eval@0.2.0): a build without it resolves
// the isolation import to a stub that says so.

import { run as witRun } from "proctor:eval/isolation@0.2.0";

/** How an isolated run ended (the WIT `verdict`). */
export const Verdict = Object.freeze({
  Passed: "passed",
  Failed: "failed",
  OutOfFuel: "out-of-fuel",
  OutOfMemory: "out-of-memory",
  TimedOut: "timed-out",
  Crashed: "crashed",
});

/** Fuel for one isolated run unless the caller says otherwise; the host caps it by what is
 * left of the sample's isolation fuel (as much again as the sample's own). */
export const DEFAULT_FUEL = 500_000_000n;

const U64_END = 1n << 64n;

export const isolation = Object.freeze({
  Verdict,
  /** Runs `code` (JavaScript source, as a script) in an isolated instance with at most `fuel`
   * fuel (a number or a BigInt) and returns the verdict: `passed` when it ran to its end
   * without throwing. */
  run(code, fuel = DEFAULT_FUEL) {
    if (typeof code !== "string") {
      throw new TypeError("isolation.run takes the code as a string");
    }
    const amount = typeof fuel === "bigint" ? fuel : Number.isSafeInteger(fuel) ? BigInt(fuel) : -1n;
    if (amount < 0n || amount >= U64_END) {
      throw new RangeError("isolation.run: fuel must be an integer in [0, 2**64)");
    }
    return witRun(code, amount);
  },
});

/** What the isolated instance does with `code` (the component's `runIsolated`): runs it as a
 * script in the global scope; true when nothing was thrown. */
export function runIsolated(code) {
  try {
    (0, eval)(code);
  } catch {
    return false;
  }
  return true;
}
