// Stands for the proctor:eval@0.2.0 isolation import in a build without `--isolation`, whose
// world (0.1.0) has no such import.

export function run() {
  throw new Error("isolation.run needs a component built with `proctor-eval build --isolation` (world proctor:eval@0.2.0)");
}
