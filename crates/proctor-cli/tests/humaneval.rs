//! HumanEval (`sdk/python/examples/humaneval`, built by `proctor-eval build --isolation`) through
//! the real `proctor run`, under the example's policy, against a local OpenAI-compatible
//! endpoint over HTTP: answered
//! with each problem's canonical solution it scores pass@1 = 1.0 on all 164 problems; answered
//! with code that loops, exhausts memory, is not code at all, or tries to report its own score,
//! it scores 0, and every sample is still `ok`: the candidate runs isolated, and only its
//! verdict reaches the eval.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

mod support;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/python/examples/humaneval")
}

/// The component, from the example's own build script (cached by the digest of its inputs).
fn humaneval_wasm() -> PathBuf {
    let out = Command::new("bash")
        .arg(example().join("build.sh"))
        .output()
        .expect("running the example's build.sh");
    assert!(
        out.status.success(),
        "build.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).expect("a UTF-8 path").trim())
}

fn jsonl(name: &str) -> Vec<Value> {
    std::fs::read_to_string(example().join(name))
        .expect("the example's data")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// What the endpoint answers, chosen by the request's `model` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// The problem's canonical solution, in a fenced block as chat models write it.
    Canonical,
    /// A body that never returns.
    Loop,
    /// A body that allocates until the sample's memory limit.
    MemoryBomb,
    /// Prose, not code.
    Garbage,
    /// A body that reports a perfect score itself and asks the model for more.
    Cheat,
}

impl Answer {
    fn of_model(model: &str) -> Option<Answer> {
        Some(match model {
            "canonical" => Answer::Canonical,
            "loop" => Answer::Loop,
            "memory-bomb" => Answer::MemoryBomb,
            "garbage" => Answer::Garbage,
            "cheat" => Answer::Cheat,
            _ => return None,
        })
    }

    fn reply(self, canonical: &str) -> String {
        match self {
            Answer::Canonical => format!("Here is the function:\n```python\n{canonical}```\n"),
            Answer::Loop => "```python\n    while True:\n        pass\n```".to_owned(),
            Answer::MemoryBomb => {
                "```python\n    hoard = []\n    while True:\n        hoard.append(bytearray(1 << 20))\n```"
                    .to_owned()
            }
            Answer::Garbage => "I am sorry, but I cannot help with that request.".to_owned(),
            Answer::Cheat => "```python\n    from proctor_eval import model, scores, Message\n    \
                 scores.report('pass_at_1', 1.0)\n    model.complete([Message.user('more')])\n```"
                .to_owned(),
        }
    }
}

/// Canonical solutions by the prompt the eval sends for their problem.
struct Problems {
    canonical_by_prompt: Vec<(String, String)>,
}

impl Problems {
    fn load() -> Problems {
        let solutions: HashMap<String, String> = jsonl("canonical-solutions.jsonl")
            .into_iter()
            .map(|s| {
                (
                    s["task_id"].as_str().expect("task_id").to_owned(),
                    s["canonical_solution"]
                        .as_str()
                        .expect("solution")
                        .to_owned(),
                )
            })
            .collect();
        let canonical_by_prompt = jsonl("humaneval.jsonl")
            .into_iter()
            .map(|p| {
                let task = p["task_id"].as_str().expect("task_id");
                (
                    p["prompt"].as_str().expect("prompt").to_owned(),
                    solutions[task].clone(),
                )
            })
            .collect();
        Problems {
            canonical_by_prompt,
        }
    }

    /// The canonical solution of the problem whose prompt the message quotes in its fence
    /// (the longest such prompt: one problem's prompt never quotes a longer one's).
    fn canonical_for(&self, message: &str) -> Option<&str> {
        self.canonical_by_prompt
            .iter()
            .filter(|(prompt, _)| message.contains(&format!("```python\n{prompt}```")))
            .max_by_key(|(prompt, _)| prompt.len())
            .map(|(_, solution)| solution.as_str())
    }
}

async fn complete(
    State(problems): State<Arc<Problems>>,
    axum::Json(request): axum::Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let message = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let (Some(answer), Some(canonical)) = (
        request["model"].as_str().and_then(Answer::of_model),
        problems.canonical_for(message),
    ) else {
        return axum::http::StatusCode::BAD_REQUEST.into_response();
    };
    axum::Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
        "model": request["model"],
        "choices": [{"index": 0, "message": {"role": "assistant",
            "content": answer.reply(canonical), "refusal": null},
            "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 200, "completion_tokens": 100, "total_tokens": 300}
    }))
    .into_response()
}

/// The endpoint, answering each problem as the model's name says.
struct Endpoint(support::Endpoint);

impl Endpoint {
    fn start() -> Endpoint {
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(Arc::new(Problems::load()));
        Endpoint(support::Endpoint::serve(app, 1))
    }

    /// `proctor run`'s report for `eval` on `dataset`, the endpoint answering as `answer`.
    fn run(&self, dir: &Path, eval: &Path, dataset: &Path, answer: &str) -> Value {
        let config = dir.join(format!("{answer}.toml"));
        std::fs::write(
            &config,
            format!(
                "adapter = \"openai\"\nbase_url = \"http://{}/v1\"\nmodel = \"{answer}\"\n\
                 max_concurrency = 16\n",
                self.0.addr
            ),
        )
        .expect("config written");
        let out = Command::new(env!("CARGO_BIN_EXE_proctor"))
            .arg("run")
            .arg(eval)
            .arg("--dataset")
            .arg(dataset)
            .arg("--model-config")
            .arg(&config)
            .arg("--policy")
            .arg(example().join("policy.toml"))
            .arg("--json")
            .env("PROCTOR_CACHE_DIR", dir.join("cache"))
            .output()
            .expect("running proctor");
        assert_eq!(
            out.status.code(),
            Some(0),
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("one JSON object")
    }
}

fn pass_at_1(report: &Value) -> f64 {
    report["metrics"]["pass_at_1"]["mean"]
        .as_f64()
        .unwrap_or_else(|| panic!("a released pass@1: {report}"))
}

#[test]
fn canonical_solutions_pass_every_problem_and_hostile_answers_score_zero_with_every_sample_ok() {
    let eval = humaneval_wasm();
    let endpoint = Endpoint::start();
    let dir = tempfile::tempdir().expect("a temporary directory");

    let all = example().join("humaneval.jsonl");
    let report = endpoint.run(dir.path(), &eval, &all, "canonical");
    assert_eq!(report["samples"]["total"], 164, "{report}");
    assert_eq!(report["samples"]["ok"], 164, "{report}");
    assert_eq!(pass_at_1(&report), 1.0, "{report}");

    // Twelve problems are enough to see each answer fail every problem, and quick: each
    // looping candidate burns its whole fuel.
    let some = dir.path().join("some.jsonl");
    let lines: Vec<&str> = include_str!("../../../sdk/python/examples/humaneval/humaneval.jsonl")
        .lines()
        .take(12)
        .collect();
    std::fs::write(&some, lines.join("\n") + "\n").expect("dataset written");
    for answer in ["loop", "memory-bomb", "garbage", "cheat"] {
        let report = endpoint.run(dir.path(), &eval, &some, answer);
        assert_eq!(report["samples"]["ok"], 12, "{answer}: {report}");
        assert_eq!(pass_at_1(&report), 0.0, "{answer}: {report}");
    }
}
