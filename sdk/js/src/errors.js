// The two errors an eval meets: a model query the host refused, and a sample the eval itself
// gives up on. Both end the sample with a `sample-error` when they escape `runSample`.

/** The WIT `sample-error` cases: how a sample may fail without trapping. */
export const SampleError = Object.freeze({
  ModelUnavailable: "model-unavailable",
  BudgetExhausted: "budget-exhausted",
  InvalidItem: "invalid-item",
  Failed: "failed",
});

const SAMPLE_ERRORS = new Set(Object.values(SampleError));

/** Whether `value` is one of the `SampleError` strings. */
export const isSampleError = (value) => SAMPLE_ERRORS.has(value);

/** Thrown by the eval to end its sample with `error` (a `SampleError` value). */
export class SampleFailed extends Error {
  constructor(error) {
    if (!SAMPLE_ERRORS.has(error)) {
      throw new TypeError(
        `SampleFailed takes one of ${[...SAMPLE_ERRORS].join(", ")}, not ${String(error)}`,
      );
    }
    super(`sample failed: ${error}`);
    this.name = "SampleFailed";
    this.error = error;
  }
}

/** What a refused query becomes if the eval lets it escape `runSample`. */
const SAMPLE_ERROR_OF_QUERY = Object.freeze({
  "budget-exhausted": SampleError.BudgetExhausted,
  unavailable: SampleError.ModelUnavailable,
  rejected: SampleError.Failed,
});

/** The host refused a model query (the WIT `query-error`): `kind` is "budget-exhausted",
 * "unavailable" or "rejected"; `reason` is the host's text for "rejected", else undefined. */
export class QueryFailed extends Error {
  constructor(kind, reason) {
    if (!Object.hasOwn(SAMPLE_ERROR_OF_QUERY, kind)) {
      throw new TypeError(`not a query error kind: ${String(kind)}`);
    }
    super(reason === undefined ? `model query failed: ${kind}` : `model query ${kind}: ${reason}`);
    this.name = "QueryFailed";
    this.kind = kind;
    this.reason = reason;
  }

  /** The sample error this refusal ends the sample with. */
  get sampleError() {
    return SAMPLE_ERROR_OF_QUERY[this.kind];
  }
}
