//! The OpenAI-compatible Chat Completions dialect (`POST {base_url}/chat/completions`), spoken
//! by OpenAI, vLLM, llama.cpp's server, Ollama, TGI and most hosted providers.
//!
//! System messages stay in `messages` with role `system`, where every compatible server expects
//! them. The credential goes in `Authorization: Bearer`. Finish reasons: `stop` → stop,
//! `length` → length, `content_filter` or a non-null `message.refusal` → refused, anything
//! else (`tool_calls`, a server's own) → other.

use proctor_core::{Completion, CompletionRequest, FinishReason, ModelError, Role};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::adapter::{Decoded, Dialect, tokens};
use crate::config::MaxTokensField;
use crate::credential::Credential;
use crate::error::ConfigError;

/// The Chat Completions dialect, with the name the endpoint wants for the token ceiling.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenAiChat {
    pub(crate) max_tokens_field: MaxTokensField,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    /// An empty list is left out: some compatible servers reject `"stop": []`.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Deserialize)]
struct ChatResponse {
    model: Option<String>,
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<AnswerMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct AnswerMessage {
    content: Option<String>,
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl Dialect for OpenAiChat {
    fn url(base_url: &str) -> String {
        format!("{base_url}/chat/completions")
    }

    fn headers(credential: Option<&Credential>) -> Result<HeaderMap, ConfigError> {
        let mut headers = crate::adapter::json_headers();
        if let Some(credential) = credential {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", credential.expose()))
                .map_err(|_| ConfigError::CredentialNotAHeader)?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        Ok(headers)
    }

    fn encode(&self, model: &str, request: &CompletionRequest) -> Result<Vec<u8>, ModelError> {
        let ceiling = Some(request.params.max_tokens);
        let (max_tokens, max_completion_tokens) = match self.max_tokens_field {
            MaxTokensField::MaxTokens => (ceiling, None),
            MaxTokensField::MaxCompletionTokens => (None, ceiling),
        };
        let body = ChatRequest {
            model,
            messages: request
                .messages
                .iter()
                .map(|m| ChatMessage {
                    role: match m.role {
                        Role::System => "system",
                        Role::User => "user",
                        Role::Assistant => "assistant",
                    },
                    content: &m.content,
                })
                .collect(),
            max_tokens,
            max_completion_tokens,
            temperature: request.params.temperature,
            stop: &request.params.stop,
        };
        serde_json::to_vec(&body).map_err(|_| {
            ModelError::Rejected("the request could not be encoded as JSON".to_owned())
        })
    }

    fn decode(body: &[u8]) -> Result<Decoded, &'static str> {
        let answer: ChatResponse =
            serde_json::from_slice(body).map_err(|_| "not a chat completion (malformed JSON)")?;
        let choice = answer
            .choices
            .into_iter()
            .next()
            .ok_or("a chat completion with no choices")?;
        let message = choice.message.ok_or("a choice with no message")?;
        let (text, finish) = match (message.refusal, choice.finish_reason.as_deref()) {
            (Some(refusal), _) => (
                message.content.filter(|c| !c.is_empty()).unwrap_or(refusal),
                FinishReason::Refused,
            ),
            (None, reason) => (
                message.content.unwrap_or_default(),
                match reason {
                    Some("stop") => FinishReason::Stop,
                    Some("length") => FinishReason::Length,
                    Some("content_filter") => FinishReason::Refused,
                    _ => FinishReason::Other,
                },
            ),
        };
        let counts = answer
            .usage
            .and_then(|u| Some((u.prompt_tokens?, u.completion_tokens?)));
        let (input, output) = counts.unwrap_or((0, 0));
        Ok(Decoded {
            completion: Completion {
                text,
                finish,
                input_tokens: tokens(input),
                output_tokens: tokens(output),
            },
            usage_reported: counts.is_some(),
            model: answer.model,
        })
    }
}

#[cfg(test)]
mod tests {
    use proctor_core::{Message, Params};
    use serde_json::{Value, json};

    use super::*;

    fn request(stop: Vec<String>) -> CompletionRequest {
        CompletionRequest {
            messages: vec![
                Message {
                    role: Role::System,
                    content: "Answer with digits.".to_owned(),
                },
                Message {
                    role: Role::User,
                    content: "What is 2 + 3?".to_owned(),
                },
            ],
            params: Params {
                max_tokens: 16,
                temperature: Some(0.0),
                stop,
            },
        }
    }

    fn encoded(field: MaxTokensField, request: &CompletionRequest) -> Value {
        let bytes = OpenAiChat {
            max_tokens_field: field,
        }
        .encode("m", request)
        .expect("encodes");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn a_request_keeps_system_messages_in_line_and_leaves_out_an_empty_stop_list() {
        let body = encoded(MaxTokensField::MaxTokens, &request(vec![]));
        assert_eq!(
            body,
            json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "Answer with digits."},
                    {"role": "user", "content": "What is 2 + 3?"}
                ],
                "max_tokens": 16,
                "temperature": 0.0
            })
        );
        let body = encoded(
            MaxTokensField::MaxCompletionTokens,
            &request(vec!["\n".to_owned()]),
        );
        assert_eq!(body["max_completion_tokens"], 16);
        assert!(body.get("max_tokens").is_none());
        assert_eq!(body["stop"], json!(["\n"]));
    }

    fn decode(v: Value) -> Result<Decoded, &'static str> {
        OpenAiChat::decode(v.to_string().as_bytes())
    }

    #[test]
    fn finish_reasons_and_refusals_are_mapped() {
        let answer = |reason: &str| {
            decode(json!({"model": "m-1", "choices": [{"index": 0,
                "message": {"role": "assistant", "content": "5"}, "finish_reason": reason}]}))
            .expect("decodes")
            .completion
            .finish
        };
        assert_eq!(answer("stop"), FinishReason::Stop);
        assert_eq!(answer("length"), FinishReason::Length);
        assert_eq!(answer("content_filter"), FinishReason::Refused);
        assert_eq!(answer("tool_calls"), FinishReason::Other);
        let refused = decode(
            json!({"choices": [{"index": 0, "message": {"role": "assistant",
            "content": null, "refusal": "I can't help with that."}, "finish_reason": "stop"}]}),
        )
        .expect("decodes");
        assert_eq!(refused.completion.text, "I can't help with that.");
        assert_eq!(refused.completion.finish, FinishReason::Refused);
        assert!(!refused.usage_reported);
    }

    #[test]
    fn usage_is_read_and_its_absence_noticed() {
        let d = decode(
            json!({"model": "m-1", "choices": [{"message": {"content": "5"},
            "finish_reason": "stop"}], "usage": {"prompt_tokens": 12, "completion_tokens": 1,
            "total_tokens": 13}}),
        )
        .expect("decodes");
        assert_eq!(
            (d.completion.input_tokens, d.completion.output_tokens),
            (12, 1)
        );
        assert!(d.usage_reported);
        assert_eq!(d.model.as_deref(), Some("m-1"));
    }

    #[test]
    fn malformed_answers_are_refused_with_host_written_reasons() {
        assert_eq!(
            OpenAiChat::decode(b"{\"choices\": [").expect_err("malformed"),
            "not a chat completion (malformed JSON)"
        );
        assert_eq!(
            decode(json!({"choices": []})).expect_err("empty"),
            "a chat completion with no choices"
        );
    }
}
