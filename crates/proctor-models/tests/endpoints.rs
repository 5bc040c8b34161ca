//! The adapters against a local endpoint speaking each protocol, faults included: what is
//! sent, what is read back, what is retried, how long is waited, and what the guest sees.

mod common;

use std::time::{Duration, Instant};

use common::{Dialect, Endpoint, Reply, question};
use proctor_core::{FinishReason, ModelError};
use proctor_models::HostPolicy;
use serde_json::json;

const BOTH: [Dialect; 2] = [Dialect::OpenAi, Dialect::Anthropic];

async fn endpoint(dialect: Dialect, script: Vec<Reply>) -> Endpoint {
    Endpoint::start(dialect, None, Duration::ZERO, script).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_request_is_sent_as_chat_completions_documents_it() {
    let server = Endpoint::start(Dialect::OpenAi, Some("sk-test"), Duration::ZERO, vec![]).await;
    let key = proctor_models::Credential::new("sk-test");
    let model = server
        .config("")
        .build(Some(key), None, &HostPolicy::any())
        .expect("builds");
    let mut request = question(2, 3);
    request.messages.insert(
        0,
        proctor_core::Message {
            role: proctor_core::Role::System,
            content: "Answer with digits only.".to_owned(),
        },
    );
    let answer = model.complete(request).await.expect("answered");
    assert_eq!(answer.text, "5");
    assert_eq!(answer.finish, FinishReason::Stop);
    assert_eq!((answer.input_tokens, answer.output_tokens), (9, 1));
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(seen[0].headers["authorization"], "Bearer sk-test");
    assert_eq!(
        seen[0].body,
        json!({
            "model": "test-model",
            "messages": [
                {"role": "system", "content": "Answer with digits only."},
                {"role": "user", "content": "What is 2 + 3?"}
            ],
            "max_tokens": 16,
            "temperature": 0.0
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_request_is_sent_as_the_messages_api_documents_it() {
    let server = Endpoint::start(
        Dialect::Anthropic,
        Some("sk-ant-test"),
        Duration::ZERO,
        vec![],
    )
    .await;
    let key = proctor_models::Credential::new("sk-ant-test");
    let model = server
        .config("")
        .build(Some(key), None, &HostPolicy::any())
        .expect("builds");
    let mut request = question(40, 2);
    request.messages.insert(
        0,
        proctor_core::Message {
            role: proctor_core::Role::System,
            content: "Answer with digits only.".to_owned(),
        },
    );
    request.params.stop = vec!["\n\n".to_owned()];
    let answer = model.complete(request).await.expect("answered");
    assert_eq!(answer.text, "42");
    assert_eq!(answer.finish, FinishReason::Stop);
    assert_eq!((answer.input_tokens, answer.output_tokens), (9, 1));
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/messages");
    assert_eq!(seen[0].headers["x-api-key"], "sk-ant-test");
    assert_eq!(seen[0].headers["anthropic-version"], "2023-06-01");
    assert!(seen[0].headers.get("authorization").is_none());
    assert_eq!(
        seen[0].body,
        json!({
            "model": "test-model",
            "max_tokens": 16,
            "system": "Answer with digits only.",
            "messages": [{"role": "user", "content": "What is 40 + 2?"}],
            "temperature": 0.0,
            "stop_sequences": ["\n\n"]
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_version_is_the_configured_one_else_the_endpoint_s_else_the_model_name() {
    for dialect in BOTH {
        let server = endpoint(dialect, vec![]).await;
        let model = server
            .config("")
            .build(None, None, &HostPolicy::any())
            .expect("builds");
        assert_eq!(
            model.descriptor().version,
            "test-model",
            "before any answer"
        );
        model.complete(question(1, 1)).await.expect("answered");
        assert_eq!(model.descriptor().version, "test-model-2025-01-01");
        let pinned = server
            .config("version = \"pinned-7\"")
            .build(None, None, &HostPolicy::any())
            .expect("builds");
        pinned.complete(question(1, 1)).await.expect("answered");
        assert_eq!(pinned.descriptor().version, "pinned-7");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_waited_out_and_then_retried() {
    for dialect in BOTH {
        let server = endpoint(dialect, vec![Reply::Status(429, Some("1")), Reply::Answer]).await;
        let model = server
            .config("")
            .build(None, None, &HostPolicy::any())
            .expect("builds");
        let answer = model.complete(question(3, 4)).await.expect("answered");
        assert_eq!(answer.text, "7");
        let seen = server.seen();
        assert_eq!(seen.len(), 2, "{dialect:?}: one refusal, one retry");
        let gap = seen[1].at - seen[0].at;
        assert!(
            gap >= Duration::from_millis(990) && gap < Duration::from_secs(3),
            "{dialect:?}: waited {gap:?} for Retry-After: 1"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_holds_back_every_request_to_the_model() {
    let server = endpoint(
        Dialect::OpenAi,
        vec![Reply::Status(429, Some("1")), Reply::Answer],
    )
    .await;
    let model = server
        .config("")
        .build(None, None, &HostPolicy::any())
        .expect("builds");
    let first = tokio::spawn({
        let model = model.clone();
        async move { model.complete(question(1, 2)).await }
    });
    while server.count() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = model.complete(question(2, 2)).await.expect("answered");
    assert_eq!(second.text, "4");
    assert_eq!(first.await.expect("joined").expect("answered").text, "3");
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    for later in &seen[1..] {
        let gap = later.at - seen[0].at;
        assert!(
            gap >= Duration::from_millis(990),
            "a request went out {gap:?} after a Retry-After of 1 s"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_then_success_is_retried_after_a_backoff() {
    for dialect in BOTH {
        let server = endpoint(dialect, vec![Reply::Status(500, None), Reply::Answer]).await;
        let model = server
            .config("")
            .build(None, None, &HostPolicy::any())
            .expect("builds");
        assert_eq!(
            model.complete(question(5, 5)).await.expect("answered").text,
            "10"
        );
        let seen = server.seen();
        assert_eq!(seen.len(), 2);
        let gap = seen[1].at - seen[0].at;
        // The first backoff is 250 ms with equal jitter: between 125 and 250 ms.
        assert!(
            gap >= Duration::from_millis(120) && gap < Duration::from_secs(2),
            "{dialect:?}: backed off {gap:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_keeps_failing_is_unavailable_after_max_attempts() {
    for dialect in BOTH {
        let server = endpoint(dialect, vec![Reply::Status(529, None)]).await;
        let model = server
            .config("max_attempts = 3")
            .build(None, None, &HostPolicy::any())
            .expect("builds");
        let err = model.complete(question(1, 1)).await.expect_err("fails");
        assert_eq!(
            err,
            ModelError::Unavailable("the endpoint answered HTTP 529 (after 3 attempts)".to_owned())
        );
        assert_eq!(server.count(), 3, "{dialect:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_endpoint_times_out_each_attempt_and_the_request_ends_at_its_deadline() {
    for dialect in BOTH {
        let server = endpoint(dialect, vec![Reply::Hang]).await;
        let model = server
            .config("timeout_s = 0.4\nmax_attempts = 2")
            .build(None, None, &HostPolicy::any())
            .expect("builds");
        let started = Instant::now();
        let err = model.complete(question(1, 1)).await.expect_err("times out");
        let took = started.elapsed();
        assert!(
            matches!(&err, ModelError::Unavailable(m) if m.starts_with("no answer within")),
            "{err:?}"
        );
        assert_eq!(server.count(), 2, "{dialect:?}");
        assert!(
            took >= Duration::from_millis(780) && took < Duration::from_millis(2500),
            "{dialect:?}: took {took:?}; the deadline is 2 × 0.4 s"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_retried_and_ends_unavailable_if_it_persists() {
    for dialect in BOTH {
        let server = endpoint(dialect, vec![Reply::Malformed, Reply::Answer]).await;
        let model = server
            .config("")
            .build(None, None, &HostPolicy::any())
            .expect("builds");
        assert_eq!(
            model.complete(question(2, 2)).await.expect("answered").text,
            "4"
        );
        assert_eq!(server.count(), 2);

        let server = endpoint(dialect, vec![Reply::Malformed]).await;
        let model = server
            .config("max_attempts = 2")
            .build(None, None, &HostPolicy::any())
            .expect("builds");
        let err = model.complete(question(2, 2)).await.expect_err("fails");
        assert!(
            matches!(&err, ModelError::Unavailable(m) if m.contains("malformed JSON")),
            "{dialect:?}: {err:?}"
        );
        assert_eq!(server.count(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_choices_or_content_is_unavailable_after_retries() {
    for (dialect, why) in [
        (Dialect::OpenAi, "a chat completion with no choices"),
        (Dialect::Anthropic, "not a Messages answer (malformed JSON)"),
    ] {
        let server = endpoint(dialect, vec![Reply::Empty]).await;
        let model = server
            .config("max_attempts = 2")
            .build(None, None, &HostPolicy::any())
            .expect("builds");
        let err = model.complete(question(2, 2)).await.expect_err("fails");
        assert_eq!(
            err,
            ModelError::Unavailable(format!(
                "the endpoint's answer was not usable: {why} (after 2 attempts)"
            ))
        );
        assert_eq!(server.count(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_mapped_to_refused() {
    for dialect in BOTH {
        let server = endpoint(dialect, vec![Reply::Refusal]).await;
        let model = server
            .config("")
            .build(None, None, &HostPolicy::any())
            .expect("builds");
        let answer = model.complete(question(2, 2)).await.expect("answered");
        assert_eq!(answer.finish, FinishReason::Refused, "{dialect:?}");
        assert_eq!(server.count(), 1, "a refusal is an answer, not a fault");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_error_is_rejected_at_once_with_host_written_text() {
    for dialect in BOTH {
        let server = endpoint(dialect, vec![Reply::Status(400, None)]).await;
        let model = server
            .config("")
            .build(None, None, &HostPolicy::any())
            .expect("builds");
        let err = model.complete(question(2, 2)).await.expect_err("rejected");
        assert_eq!(
            err,
            ModelError::Rejected("the endpoint refused the request (HTTP 400)".to_owned())
        );
        assert_eq!(server.count(), 1, "{dialect:?}: a 400 is not retried");

        let guarded = Endpoint::start(dialect, Some("right"), Duration::ZERO, vec![]).await;
        let model = guarded
            .config("")
            .build(
                Some(proctor_models::Credential::new("wrong")),
                None,
                &HostPolicy::any(),
            )
            .expect("builds");
        let err = model.complete(question(2, 2)).await.expect_err("rejected");
        assert_eq!(
            err,
            ModelError::Rejected("the endpoint refused the credential (HTTP 401)".to_owned())
        );
        assert_eq!(guarded.count(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed_so_the_credential_stays_with_the_endpoint() {
    for dialect in BOTH {
        let elsewhere = endpoint(dialect, vec![]).await;
        let target = format!("{}/v1/chat/completions", elsewhere.base_url());
        let server = endpoint(dialect, vec![Reply::Redirect(target)]).await;
        let model = server
            .config("")
            .build(
                Some(proctor_models::Credential::new("sk-secret")),
                None,
                &HostPolicy::any(),
            )
            .expect("builds");
        let err = model.complete(question(2, 2)).await.expect_err("rejected");
        assert!(
            matches!(&err, ModelError::Rejected(m) if m.contains("redirect (HTTP 307)")),
            "{err:?}"
        );
        assert_eq!(
            elsewhere.count(),
            0,
            "{dialect:?}: nothing reached the other host"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_retried_then_unavailable() {
    // A port that was just free: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = proctor_models::ModelConfig::from_toml(&format!(
        "adapter = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"m\"\nmax_attempts = 2"
    ))
    .expect("valid");
    let model = config
        .build(None, None, &HostPolicy::any())
        .expect("builds");
    let err = model.complete(question(1, 1)).await.expect_err("fails");
    assert_eq!(
        err,
        ModelError::Unavailable("could not connect to the endpoint (after 2 attempts)".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_rate_limit_are_spaced_evenly() {
    // 600 a minute: one start every 100 ms, whatever the concurrency.
    for dialect in BOTH {
        let server = endpoint(dialect, vec![]).await;
        let model = server
            .config("requests_per_minute = 600\nmax_concurrency = 16")
            .build(None, None, &HostPolicy::any())
            .expect("builds");
        let started = Instant::now();
        let calls: Vec<_> = (0..12)
            .map(|i| {
                let model = model.clone();
                tokio::spawn(async move { model.complete(question(i, 1)).await })
            })
            .collect();
        for call in calls {
            call.await.expect("joined").expect("answered");
        }
        let took = started.elapsed();
        let mut arrivals: Vec<Duration> = server.seen().iter().map(|s| s.at - started).collect();
        arrivals.sort();
        // The k-th start is reserved no earlier than k intervals after the first, so the k-th
        // arrival cannot come sooner, however the requests are scheduled.
        for (k, at) in arrivals.iter().enumerate() {
            assert!(
                *at >= Duration::from_millis(100) * k as u32,
                "{dialect:?}: request {k} arrived at {at:?}"
            );
        }
        assert!(
            took < Duration::from_secs(4),
            "{dialect:?}: 12 requests at 10/s took {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_never_exceeds_max_concurrency_even_across_jobs() {
    for dialect in BOTH {
        let server = Endpoint::start(dialect, None, Duration::from_millis(30), vec![]).await;
        let config = server.config("max_concurrency = 4");
        // Two models built from one configuration stand for two jobs: they share the limit.
        let jobs = [
            config
                .build(None, None, &HostPolicy::any())
                .expect("builds"),
            config
                .build(None, None, &HostPolicy::any())
                .expect("builds"),
        ];
        let calls: Vec<_> = (0..40)
            .map(|i| {
                let model = jobs[i % 2].clone();
                tokio::spawn(async move { model.complete(question(i as i64, 1)).await })
            })
            .collect();
        for call in calls {
            call.await.expect("joined").expect("answered");
        }
        assert_eq!(server.count(), 40);
        assert_eq!(
            server.max_in_flight(),
            4,
            "{dialect:?}: at most 4 in flight, and the limit is reached"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_reports_latency_finish_and_whether_usage_came_back() {
    for dialect in BOTH {
        let server = endpoint(dialect, vec![Reply::Answer]).await;
        let report = server
            .config("")
            .probe(None, &HostPolicy::any())
            .await
            .expect("probed");
        assert_eq!(report.finish, FinishReason::Stop);
        assert!(report.usage.is_some());
        assert!(report.latency < Duration::from_secs(5));
        assert_eq!(report.model.version, "test-model-2025-01-01");

        let bare = endpoint(dialect, vec![Reply::AnswerWithoutUsage]).await;
        let report = bare
            .config("")
            .probe(None, &HostPolicy::any())
            .await
            .expect("probed");
        assert_eq!(report.usage, None, "{dialect:?}");
        let model = bare
            .config("")
            .build(None, None, &HostPolicy::any())
            .expect("builds");
        let answer = model.complete(question(1, 2)).await.expect("answered");
        assert_eq!((answer.text.as_str(), answer.input_tokens), ("3", 0));
    }
    let down = endpoint(Dialect::OpenAi, vec![Reply::Status(400, None)]).await;
    assert!(matches!(
        down.config("").probe(None, &HostPolicy::any()).await,
        Err(proctor_models::ProbeError::Model(ModelError::Rejected(_)))
    ));
}
