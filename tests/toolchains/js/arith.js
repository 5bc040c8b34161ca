// The arithmetic eval of CONTRACTS.md, written in JavaScript against the proctor:eval@0.1.0
// world and built with componentize-js: it must run unchanged under the standard policy.
import { complete } from "proctor:eval/model@0.1.0";
import { item } from "proctor:eval/dataset@0.1.0";
import { report } from "proctor:eval/scores@0.1.0";

export function describe() {
  return {
    name: "arith-js",
    version: "1.0.0",
    metrics: [{ name: "accuracy", description: "the reply's first integer is the sum", min: 0, max: 1 }],
  };
}

export function runSample(index) {
  let a, b;
  try {
    const parsed = JSON.parse(item(index));
    a = parsed.a;
    b = parsed.b;
  } catch {
    throw "invalid-item";
  }
  if (!Number.isInteger(a) || !Number.isInteger(b)) throw "invalid-item";
  let reply;
  try {
    reply = complete([{ role: "user", content: `What is ${a} + ${b}?` }], {
      maxTokens: 16,
      temperature: 0,
      stop: [],
    });
  } catch (e) {
    const tag = e && e.payload ? e.payload.tag : undefined;
    if (tag === "budget-exhausted") throw "budget-exhausted";
    if (tag === "unavailable") throw "model-unavailable";
    throw "failed";
  }
  const found = reply.text.match(/-?\d+/);
  report("accuracy", found && Number(found[0]) === a + b ? 1 : 0);
}
