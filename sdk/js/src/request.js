// Turning an eval's request into the WIT `params` record, and a host refusal into QueryFailed.
// Checked here so a typo (`max_tokens`) or a wrong type is a clear TypeError, not a silently
// ignored field or an opaque trap in the bindings.

import { QueryFailed } from "./errors.js";

const PARAM_KEYS = new Set(["maxTokens", "temperature", "stop"]);
const U32_MAX = 2 ** 32 - 1;

/** `params` with its defaults filled in: no token cap (the policy's applies), the endpoint's
 * temperature, no stop sequences. */
export function toParams(params) {
  if (params === null || typeof params !== "object" || Array.isArray(params)) {
    throw new TypeError("params must be an object such as { maxTokens: 16, temperature: 0 }");
  }
  for (const key of Object.keys(params)) {
    if (!PARAM_KEYS.has(key)) {
      throw new TypeError(`unknown params key ${JSON.stringify(key)}: expected maxTokens, temperature or stop`);
    }
  }
  const { maxTokens, temperature, stop = [] } = params;
  if (maxTokens !== undefined && !(Number.isInteger(maxTokens) && maxTokens >= 0 && maxTokens <= U32_MAX)) {
    throw new TypeError(`params.maxTokens must be an integer in [0, ${U32_MAX}], not ${String(maxTokens)}`);
  }
  if (temperature !== undefined && !(typeof temperature === "number" && Number.isFinite(temperature))) {
    throw new TypeError(`params.temperature must be a finite number, not ${String(temperature)}`);
  }
  if (!Array.isArray(stop) || !stop.every((s) => typeof s === "string")) {
    throw new TypeError("params.stop must be an array of strings");
  }
  return { maxTokens, temperature, stop: [...stop] };
}

/** The error componentize-js throws for a `query-error` (`e.payload = {tag, val}`) as a
 * QueryFailed; anything else (a bug in the call) is passed on unchanged. */
export function queryFailedFrom(e) {
  const payload = e !== null && typeof e === "object" ? e.payload : undefined;
  switch (payload?.tag) {
    case "budget-exhausted":
    case "unavailable":
      return new QueryFailed(payload.tag);
    case "rejected":
      return new QueryFailed("rejected", String(payload.val));
    default:
      return e;
  }
}
