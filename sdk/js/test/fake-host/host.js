// A stand-in for the host's side of the proctor:eval world, as componentize-js presents it:
// `complete` throws `{ payload: { tag, val } }` for a query error. Tests set `fake`'s fields.

export const fake = {
  items: [],
  /** (messages, params) => completion; may throw. */
  reply: () => ({ text: "", finish: "stop", inputTokens: 0, outputTokens: 0 }),
  calls: [],
  reports: [],
  /** What `isolation.run` answers, and what it was asked. */
  verdict: "passed",
  isolated: [],
};

export function complete(messages, params) {
  fake.calls.push({ messages, params });
  return fake.reply(messages, params);
}

export function count() {
  return fake.items.length;
}

export function item(index) {
  return fake.items[index];
}

export function report(metric, value) {
  fake.reports.push([metric, value]);
}

export function run(code, fuel) {
  fake.isolated.push({ code, fuel });
  return fake.verdict;
}

/** The error componentize-js throws for an `err(query-error)`. */
export function queryError(tag, val) {
  const e = new Error(`query error ${tag}`);
  e.payload = val === undefined ? { tag } : { tag, val };
  return e;
}
