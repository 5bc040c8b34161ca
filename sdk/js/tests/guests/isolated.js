// Isolation on the SDK (built with --isolation). Each dataset item {"code": SOURCE, "want":
// VERDICT, "fuel": N?} runs SOURCE through isolation.run and reports ok = 1 when the verdict is
// VERDICT; crates/proctor-sandbox/tests/js_sdk.rs checks every sample scores 1. The eval puts
// `scores` and `model` on globalThis so that the isolated code can try them: there they trap.
import { dataset, defineEval, isolation, model, scores } from "proctor-eval";

globalThis.scores = scores;
globalThis.model = model;

export default defineEval({
  describe() {
    return {
      name: "isolated-js",
      version: "1.0.0",
      metrics: [{ name: "ok", description: "the isolated run ended as the item expects", min: 0, max: 1 }],
    };
  },
  runSample(index) {
    const { code, want, fuel } = dataset.itemJson(index);
    const verdict = isolation.run(code, fuel ?? 200_000_000);
    scores.report("ok", verdict === want ? 1 : 0);
  },
});
