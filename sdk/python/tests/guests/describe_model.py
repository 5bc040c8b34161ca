"""An eval whose `describe` calls the model: the host refuses it at prepare."""

from proctor_eval import Eval, EvalInfo, Message, Metric, model, scores


class DescribeCallsModel(Eval):
    def describe(self) -> EvalInfo:
        reply = model.complete([Message.user("What should I be called?")])
        return EvalInfo(reply.text, "1.0.0", [Metric("ok", "", 0.0, 1.0)])

    def run_sample(self, index: int) -> None:
        scores.report("ok", 1.0)
