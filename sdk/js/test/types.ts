// Type-level checks of index.d.ts (`npm run typecheck`): each `@ts-expect-error` line must be
// an error, or tsc fails.
import { Message, QueryFailed, SampleError, SampleFailed, dataset, defineEval, model } from "proctor-eval";
import type { Completion, QueryErrorKind } from "proctor-eval";

// @ts-expect-error a typo in a params key
model.complete([Message.user("hi")], { max_tokens: 16 });
// @ts-expect-error a message's content is a string
Message.user(42);
// @ts-expect-error not a sample error
new SampleFailed("timeout");
// @ts-expect-error not a query error kind
new QueryFailed("refused");
// @ts-expect-error describe must return an EvalInfo
defineEval({ describe: () => ({ name: "x" }), runSample() {} });
// @ts-expect-error runSample is required
defineEval({ describe: () => ({ name: "x", version: "1", metrics: [] }) });

const reply: Completion = model.complete([Message.system("be brief"), Message.assistant("ok")]);
const finish: "stop" | "length" | "refused" | "other" = reply.finish;
const kind: QueryErrorKind = "rejected";
const item: { a: number } = dataset.itemJson<{ a: number }>(0);
const failed: SampleError = new SampleFailed(SampleError.InvalidItem).error;
export { finish, kind, item, failed };
