// Types of the proctor-eval SDK (src/index.js). The records are those of the WIT world
// (world.d.ts, wit/proctor.wit) as componentize-js presents them: camelCase fields.

/// <reference path="./world.d.ts" />

import type * as wit from "proctor:eval/types@0.1.0";

/** A conversation's role. */
export type Role = wit.Role;
export declare const Role: Readonly<{ System: "system"; User: "user"; Assistant: "assistant" }>;

/** One message of a conversation. */
export type Message = wit.Message;
/** Message constructors: `Message.user("What is 2 + 2?")`. */
export declare const Message: Readonly<{
  system(content: string): Message;
  user(content: string): Message;
  assistant(content: string): Message;
}>;

/** A request's parameters; every field may be left out. */
export interface Params {
  /** Caps the reply (at most the policy's `max_tokens`; absent: the policy's). */
  maxTokens?: number;
  /** Sampling temperature (absent: the endpoint's default). */
  temperature?: number;
  /** Stop sequences (absent: none). */
  stop?: string[];
}

/** Why the model stopped. */
export type FinishReason = wit.FinishReason;
export declare const FinishReason: Readonly<{ Stop: "stop"; Length: "length"; Refused: "refused"; Other: "other" }>;

/** The model's reply. */
export type Completion = wit.Completion;

/** A metric: a short identifier (`[a-z][a-z0-9_-]{0,63}`) with values in `[min, max]`. */
export type Metric = wit.Metric;
/** The eval's name, version and metric declarations. */
export type EvalInfo = wit.EvalInfo;

/** How a sample may fail without trapping. */
export type SampleError = wit.SampleError;
export declare const SampleError: Readonly<{
  ModelUnavailable: "model-unavailable";
  BudgetExhausted: "budget-exhausted";
  InvalidItem: "invalid-item";
  Failed: "failed";
}>;

/** Thrown by the eval to end its sample with `error`. */
export declare class SampleFailed extends Error {
  constructor(error: SampleError);
  readonly error: SampleError;
}

/** Why the host refused a model query. */
export type QueryErrorKind = wit.QueryError["tag"];

/** The host refused a model query. Escaping `runSample`, it ends the sample:
 * "budget-exhausted" as budget-exhausted, "unavailable" as model-unavailable, "rejected" as
 * failed. */
export declare class QueryFailed extends Error {
  constructor(kind: QueryErrorKind, reason?: string);
  readonly kind: QueryErrorKind;
  /** The host's text, for "rejected" only. */
  readonly reason: string | undefined;
  /** The sample error this refusal ends the sample with. */
  readonly sampleError: SampleError;
}

/** An eval program: what it measures, and how one sample runs. */
export interface Eval {
  /** Names the eval and declares its metrics. Runs once, at upload, before any model or
   * dataset access (calling `model` or `dataset` here is refused). */
  describe(): EvalInfo;
  /** Runs sample `index` in a fresh instance: read items, query the model, report scores.
   * Throwing `SampleFailed` or `QueryFailed` fails the sample; any other exception traps it. */
  runSample(index: number): void;
}

/** Declares the eval; the module's default export must be its result. */
export declare function defineEval<E extends Eval>(definition: E): Readonly<Eval>;

/** The model under test. */
export declare const model: Readonly<{
  /** Sends one request; throws `QueryFailed` when the host refuses it. */
  complete(messages: Message[], params?: Params): Completion;
}>;

/** The dataset: one JSON text per item. */
export declare const dataset: Readonly<{
  count(): number;
  /** Item `index` exactly as written; an index past the end traps the sample. */
  item(index: number): string;
  /** Item `index` parsed as JSON (the type is the caller's claim, not checked); a malformed
   * item throws `SampleFailed("invalid-item")`. */
  itemJson<T = unknown>(index: number): T;
}>;

/** Scores: declared metrics and finite values only; clipped to the declared range. */
export declare const scores: Readonly<{
  report(metric: string, value: number): void;
}>;

/** How an isolated run ended (the WIT `verdict`). */
export type Verdict = import("proctor:eval/isolation@0.2.0").Verdict;

/** Runs code the eval does not trust in a fresh instance of the same component (a build with
 * `proctor-eval build --isolation`), where the model, the dataset and scores trap, under fuel
 * of its own; only the verdict comes back. */
export declare const isolation: Readonly<{
  Verdict: Readonly<{
    Passed: "passed";
    Failed: "failed";
    OutOfFuel: "out-of-fuel";
    OutOfMemory: "out-of-memory";
    TimedOut: "timed-out";
    Crashed: "crashed";
  }>;
  /** Runs `code` as a script; `passed` when it ran to its end without throwing. `fuel`
   * (default 5e8) is capped by what is left of the sample's isolation fuel. */
  run(code: string, fuel?: number | bigint): Verdict;
}>;
