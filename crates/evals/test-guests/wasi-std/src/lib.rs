//! Uses std's environment, files, clock and stdout (wasm32-wasip2): inert WASI shows it nothing
//! and discards what it prints.

use proctor_guest::{Eval, EvalInfo, Metric, SampleError, scores};

struct Guest;

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "wasi-std",
            "1.0.0",
            vec![
                Metric::new("ok", "the sample completed", 0.0, 1.0),
                Metric::new("env_vars", "environment variables and arguments visible", 0.0, 1000.0),
            ],
        )
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        println!("sample {index} says hello to nobody");
        eprintln!("and to nobody on stderr");
        let files_visible = std::fs::read_dir("/").map(|d| d.count()).unwrap_or(0)
            + std::fs::read("/etc/passwd").map(|_| 1).unwrap_or(0);
        let clock_works = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .is_ok();
        scores::report("env_vars", (std::env::vars().count() + std::env::args().count()) as f64);
        scores::report("ok", if files_visible == 0 && clock_works { 1.0 } else { 0.0 });
        Ok(())
    }
}

proctor_guest::export_eval!(Guest);
