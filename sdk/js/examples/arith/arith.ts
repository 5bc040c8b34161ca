// The arithmetic eval of examples/arith/arith.js in TypeScript: `proctor-eval build arith.ts`
// strips the types; `npm run typecheck` checks them against the SDK's declarations.
import { Message, SampleError, SampleFailed, dataset, defineEval, model, scores } from "proctor-eval";
import type { Completion, EvalInfo } from "proctor-eval";

interface Item {
  a: number;
  b: number;
}

export default defineEval({
  describe(): EvalInfo {
    return {
      name: "arith-ts",
      version: "1.0.0",
      metrics: [{ name: "accuracy", description: "the first integer in the reply is a + b", min: 0, max: 1 }],
    };
  },

  runSample(index: number): void {
    const { a, b } = dataset.itemJson<Item>(index);
    // Items are {"a": int, "b": int}; JSON numbers are exact as integers up to 2^53.
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b)) throw new SampleFailed(SampleError.InvalidItem);
    const reply: Completion = model.complete([Message.user(`What is ${a} + ${b}?`)], { maxTokens: 16, temperature: 0 });
    scores.report("accuracy", firstInteger(reply.text) === BigInt(a) + BigInt(b) ? 1 : 0);
  },
});

/** The first integer in `text`, with its sign if a `-` is right before it. */
function firstInteger(text: string): bigint | null {
  const match = /-?\d+/.exec(text);
  return match === null ? null : BigInt(match[0]);
}
