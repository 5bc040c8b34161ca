//! Opens a TCP connection on even samples (wasm32-wasip2): inert WASI must refuse it.

use proctor_guest::{Eval, EvalInfo, Metric, SampleError, scores};

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "sockets",
            "1.0.0",
            vec![Metric::new("ok", "the sample completed", 0.0, 1.0)],
        )
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        if index % 2 == 0 {
            let refused = std::net::TcpStream::connect(("127.0.0.1", 9)).is_err();
            scores::report("ok", if refused { 1.0 } else { 0.0 });
            return Ok(());
        }
        scores::report("ok", 1.0);
        Ok(())
    }
}

proctor_guest::export_eval!(Guest);
