// `node --import ./test/fake-host/register.js`: the SDK's imports of the proctor:eval world
// resolve to fake-host/host.js, so its logic runs under node's test runner.
import { register } from "node:module";

register("./hooks.js", import.meta.url);
