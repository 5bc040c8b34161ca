// {{name}}: an eval written with proctor-eval. It starts as the arithmetic example: one question
// "What is {a} + {b}?" per item of arith.jsonl, and `accuracy` 1 when the first integer in the
// reply is the sum. Change describe() and runSample(); `npm run build` makes eval.wasm.
import { Message, SampleError, SampleFailed, dataset, defineEval, model, scores } from "proctor-eval";

export default defineEval({
  // Runs once, when the eval is uploaded: its name, version and metrics, fixed before it may
  // see the model or the dataset.
  describe() {
    return {
      name: "{{name}}",
      version: "0.1.0",
      metrics: [{ name: "accuracy", description: "the first integer in the reply is a + b", min: 0, max: 1 }],
    };
  },

  // Runs once per dataset item, each time in a fresh instance.
  runSample(index) {
    const { a, b } = dataset.itemJson(index);
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b)) throw new SampleFailed(SampleError.InvalidItem);
    // A refused query (budget, policy, endpoint) throws QueryFailed; left uncaught it fails
    // the sample with the matching sample error.
    const reply = model.complete([Message.user(`What is ${a} + ${b}?`)], { maxTokens: 16, temperature: 0 });
    const found = /-?\d+/.exec(reply.text);
    scores.report("accuracy", found !== null && BigInt(found[0]) === BigInt(a) + BigInt(b) ? 1 : 0);
  },
});
