// An eval whose describe queries the model: the host refuses it when it prepares the eval,
// before any sample runs (what describe saw could ride out in metric names).
import { Message, defineEval, model, scores } from "proctor-eval";

export default defineEval({
  describe() {
    const reply = model.complete([Message.user("name a metric")]);
    return {
      name: "describe-calls-model",
      version: "1.0.0",
      metrics: [{ name: reply.text, description: "", min: 0, max: 1 }],
    };
  },

  runSample() {
    scores.report("ok", 1);
  },
});
