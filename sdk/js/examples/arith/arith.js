// The arithmetic eval of CONTRACTS.md on the JavaScript SDK; the same metric and semantics as
// the Rust example (crates/evals/arith), run on its dataset (crates/evals/arith/arith.jsonl).
import { Message, SampleError, SampleFailed, dataset, defineEval, model, scores } from "proctor-eval";

export default defineEval({
  describe() {
    return {
      name: "arith-js",
      version: "1.0.0",
      metrics: [{ name: "accuracy", description: "the first integer in the reply is a + b", min: 0, max: 1 }],
    };
  },

  runSample(index) {
    const { a, b } = dataset.itemJson(index);
    // Items are {"a": int, "b": int}; JSON numbers are exact as integers up to 2^53.
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b)) throw new SampleFailed(SampleError.InvalidItem);
    const reply = model.complete([Message.user(`What is ${a} + ${b}?`)], { maxTokens: 16, temperature: 0 });
    const found = firstInteger(reply.text);
    scores.report("accuracy", found === BigInt(a) + BigInt(b) ? 1 : 0);
  },
});

/** The first integer in `text`, with its sign if a `-` is right before it. */
function firstInteger(text) {
  const match = /-?\d+/.exec(text);
  return match === null ? null : BigInt(match[0]);
}
