//! The credential never shows: not in any log line at any level (the HTTP stack's own
//! included), not in an error, not in a descriptor. One test per binary, since it installs the
//! process-wide subscriber that captures everything.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Dialect, Endpoint, Reply, question};
use proctor_models::{Credential, HostPolicy, ModelConfig};

const SECRET: &str = "sk-proctor-test-5ecret-Zq9";

/// A `MakeWriter` that appends every log line to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credential_appears_in_no_log_line_error_or_descriptor() {
    let logs = Captured::default();
    // Global, so the runtime's worker threads log here too; `try_init` also routes the `log`
    // records of the HTTP stack (reqwest, hyper-util) into the same buffer.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .try_init()
        .expect("the only subscriber in this binary");

    let mut texts = Vec::new();
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        let script = vec![
            Reply::Status(500, None),
            Reply::Status(429, Some("0")),
            Reply::Malformed,
            Reply::Answer,
        ];
        let server = Endpoint::start(dialect, Some(SECRET), Duration::ZERO, script).await;
        let model = server
            .config("max_attempts = 4")
            .build(Some(Credential::new(SECRET)), None, &HostPolicy::any())
            .expect("builds");
        let answer = model
            .complete(question(1, 2))
            .await
            .expect("answered on the 4th attempt");
        assert_eq!(answer.text, "3");
        texts.push(format!("{:?}", model.descriptor()));

        // A wrong key, a hung endpoint, an endpoint that keeps failing, a redirect.
        let wrong = server
            .config("")
            .build(
                Some(Credential::new(format!("{SECRET}-wrong"))),
                None,
                &HostPolicy::any(),
            )
            .expect("builds");
        let err = wrong.complete(question(1, 2)).await.expect_err("401");
        texts.push(format!("{err} {err:?}"));
        for script in [
            vec![Reply::Hang],
            vec![Reply::Status(503, None)],
            vec![Reply::Redirect("http://127.0.0.1:9/elsewhere".to_owned())],
        ] {
            let failing = Endpoint::start(dialect, Some(SECRET), Duration::ZERO, script).await;
            let model = failing
                .config("timeout_s = 0.3\nmax_attempts = 2")
                .build(Some(Credential::new(SECRET)), None, &HostPolicy::any())
                .expect("builds");
            let err = model.complete(question(1, 2)).await.expect_err("fails");
            texts.push(format!("{err} {err:?}"));
        }
    }

    // Configuration errors name the variable, never its value.
    let var = "PROCTOR_CREDENTIALS_TEST_KEY";
    let config = ModelConfig::from_toml(&format!(
        "adapter = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\napi_key_env = \"{var}\""
    ))
    .expect("valid");
    let unset = config.credential_from_env().expect_err("unset");
    texts.push(format!("{unset} {unset:?}"));
    let pasted = ModelConfig::from_toml(&format!(
        "adapter = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\napi_key = \"{SECRET}\""
    ))
    .expect_err("unknown key");
    texts.push(format!("{pasted} {pasted:?}"));
    let misplaced = ModelConfig::from_toml(&format!(
        "adapter = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\napi_key_env = \"{SECRET}\""
    ))
    .expect_err("a key where a variable name belongs");
    texts.push(format!("{misplaced} {misplaced:?}"));
    texts.push(format!(
        "{} {:?}",
        Credential::new(SECRET),
        Credential::new(SECRET)
    ));

    let logged = String::from_utf8_lossy(&logs.0.lock().expect("lock")).into_owned();
    assert!(
        logged.contains("retrying a model request"),
        "the capture works: {logged}"
    );
    assert!(
        !logged.contains(SECRET),
        "the credential was logged:\n{logged}"
    );
    for text in &texts {
        assert!(!text.contains(SECRET), "the credential leaked: {text}");
    }
}
