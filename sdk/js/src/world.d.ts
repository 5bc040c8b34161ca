// The proctor:eval@0.1.0 world (wit/proctor.wit) as componentize-js presents it to
// JavaScript: record fields in camelCase, enums as their kebab-case strings, `option<T>` as
// `T | undefined`, and an `err` result of an import thrown as an error whose `payload` is the
// `query-error` variant. The SDK (index.d.ts) is written over these modules.

declare module "proctor:eval/types@0.1.0" {
  export type Role = "system" | "user" | "assistant";
  export interface Message {
    role: Role;
    content: string;
  }
  export interface Params {
    maxTokens?: number;
    temperature?: number;
    stop: string[];
  }
  export type FinishReason = "stop" | "length" | "refused" | "other";
  export interface Completion {
    text: string;
    finish: FinishReason;
    inputTokens: number;
    outputTokens: number;
  }
  export type QueryError =
    | { tag: "budget-exhausted" }
    | { tag: "unavailable" }
    | { tag: "rejected"; val: string };
  export interface Metric {
    name: string;
    description: string;
    min: number;
    max: number;
  }
  export interface EvalInfo {
    name: string;
    version: string;
    metrics: Metric[];
  }
  export type SampleError = "model-unavailable" | "budget-exhausted" | "invalid-item" | "failed";
}

declare module "proctor:eval/model@0.1.0" {
  import type { Completion, Message, Params } from "proctor:eval/types@0.1.0";
  /** Throws an error whose `payload` is a `QueryError` when the host refuses the query. */
  export function complete(messages: Message[], params: Params): Completion;
}

declare module "proctor:eval/dataset@0.1.0" {
  export function count(): number;
  /** One JSON text per sample. */
  export function item(index: number): string;
}

declare module "proctor:eval/scores@0.1.0" {
  export function report(metric: string, value: number): void;
}

/** What the component's root module exports: `run-sample` fails by throwing the
 * `SampleError` string. */
declare module "proctor:eval/eval@0.1.0" {
  import type { EvalInfo } from "proctor:eval/types@0.1.0";
  export function describe(): EvalInfo;
  export function runSample(index: number): void;
}

// The proctor:eval@0.2.0 world (wit-0.2.0/proctor.wit, `proctor-eval build --isolation`): all
// of 0.1.0, the isolation import, and the `runIsolated` export.
declare module "proctor:eval/isolation@0.2.0" {
  export type Verdict = "passed" | "failed" | "out-of-fuel" | "out-of-memory" | "timed-out" | "crashed";
  /** `fuel` is a u64: a BigInt. */
  export function run(code: string, fuel: bigint): Verdict;
}
