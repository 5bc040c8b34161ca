// A hostile (and a careless) eval on the SDK. Each dataset item {"do": NAME} picks what its
// sample does; crates/proctor-sandbox/tests/js_sdk.rs checks the outcome the host names.
import { Message, QueryFailed, SampleError, SampleFailed, dataset, defineEval, model, scores } from "proctor-eval";

const behaviours = {
  // Completes: reports ok = 1.
  ok() {
    scores.report("ok", 1);
  },
  // Out of fuel, or past the deadline when fuel is plentiful.
  loop() {
    for (;;) {}
  },
  // Grows linear memory until the host's limit.
  memory() {
    const hoard = [];
    for (;;) hoard.push(new Float64Array(1 << 20).fill(1));
  },
  // An exception the SDK does not know: the sample traps.
  throw() {
    throw new Error("thrown by the eval");
  },
  // Reports a metric describe did not declare.
  undeclared() {
    scores.report("never-declared", 1);
  },
  // The eval's own sample error.
  invalid() {
    throw new SampleFailed(SampleError.InvalidItem);
  },
  // Queries past the per-sample limit and lets the QueryFailed escape.
  storm() {
    for (;;) model.complete([Message.user("again")]);
  },
  // A prompt over the test policy's 1 KiB, its QueryFailed left to escape.
  oversized() {
    model.complete([Message.user("x".repeat(2_000))]);
  },
  // The model's endpoint fails, the QueryFailed left to escape.
  unavailable() {
    model.complete([Message.user("unavailable")]);
  },
  // Catches the rejection and checks what it carries: the host's text.
  "rejected-reason"() {
    try {
      model.complete([Message.user("x".repeat(2_000))]);
    } catch (e) {
      const right = e instanceof QueryFailed && e.kind === "rejected" && /the policy allows/.test(e.reason);
      scores.report("ok", right ? 1 : 0);
    }
  },
};

export default defineEval({
  describe() {
    return {
      name: "hostile-js",
      version: "1.0.0",
      metrics: [{ name: "ok", description: "the sample got to its end", min: 0, max: 1 }],
    };
  },

  runSample(index) {
    const behaviour = behaviours[dataset.itemJson(index).do];
    if (behaviour === undefined) throw new SampleFailed(SampleError.InvalidItem);
    behaviour();
  },
});
