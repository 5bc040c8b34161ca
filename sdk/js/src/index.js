// proctor-eval: write a Proctor eval in JavaScript or TypeScript. It mirrors the Rust SDK
// (crates/proctor-guest) and the Python one (sdk/python): an eval is `describe()` and
// `runSample(index)`; the model, the dataset and the scores are plain functions here, over the
// bindings componentize-js generates for the proctor:eval@0.1.0 world (wit/proctor.wit), and
// `isolation.run` for the 0.2.0 world (wit-0.2.0/proctor.wit, `proctor-eval build --isolation`).

import { complete as witComplete } from "proctor:eval/model@0.1.0";
import { count as witCount, item as witItem } from "proctor:eval/dataset@0.1.0";
import { report as witReport } from "proctor:eval/scores@0.1.0";

import { SampleFailed, SampleError } from "./errors.js";
import { queryFailedFrom, toParams } from "./request.js";

export { QueryFailed, SampleFailed, SampleError } from "./errors.js";
export { defineEval } from "./define.js";
export { isolation } from "./isolation.js";

/** The roles of a conversation (the WIT `role`). */
export const Role = Object.freeze({ System: "system", User: "user", Assistant: "assistant" });

/** Why the model stopped (the WIT `finish-reason`). */
export const FinishReason = Object.freeze({
  Stop: "stop",
  Length: "length",
  Refused: "refused",
  Other: "other",
});

/** Messages of a conversation: `Message.user("What is 2 + 2?")`. */
export const Message = Object.freeze({
  system: (content) => message(Role.System, content),
  user: (content) => message(Role.User, content),
  assistant: (content) => message(Role.Assistant, content),
});

function message(role, content) {
  if (typeof content !== "string") {
    throw new TypeError(`a message's content must be a string, not ${typeof content}`);
  }
  return { role, content };
}

/** The model under test: the eval's only capability. */
export const model = Object.freeze({
  /**
   * Sends one request and waits for the reply (the host waits without holding a thread).
   * A refusal by the host (budget, policy, endpoint) throws `QueryFailed`; left uncaught in
   * `runSample`, it ends the sample with the matching sample error.
   */
  complete(messages, params = {}) {
    const request = toParams(params);
    try {
      return witComplete(messages, request);
    } catch (e) {
      throw queryFailedFrom(e);
    }
  },
});

/** The dataset the job runs over: one JSON text per item. */
export const dataset = Object.freeze({
  /** How many items the dataset has. */
  count: () => witCount(),
  /** Item `index`, exactly as its line was written. An index past the end traps the sample. */
  item: (index) => witItem(index),
  /** Item `index` parsed as JSON; a malformed item throws `SampleFailed("invalid-item")`. */
  itemJson(index) {
    const text = witItem(index);
    try {
      return JSON.parse(text);
    } catch {
      throw new SampleFailed(SampleError.InvalidItem);
    }
  },
});

/** Scores: only declared metrics and finite values (else the sample traps); the host clips
 * to the declared range and keeps the last value per metric per sample. */
export const scores = Object.freeze({
  report: (metric, value) => witReport(metric, value),
});
