// Module resolution hook: every `proctor:eval/...` interface is the one fake host module.
const HOST = new URL("./host.js", import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier.startsWith("proctor:eval/")) return { url: HOST, shortCircuit: true };
  return next(specifier, context);
}
