//! The Anthropic Messages dialect (`POST {base_url}/v1/messages`, `base_url` the host root as
//! Anthropic's SDKs take it).
//!
//! Messages API has no `system` role: system messages are lifted, in order and joined by a
//! blank line, into the top-level `system` field. Stop sequences are `stop_sequences`.
//! Headers: `x-api-key` and `anthropic-version: 2023-06-01`. Finish reasons: `end_turn` and
//! `stop_sequence` → stop, `max_tokens` → length, `refusal` → refused, anything else
//! (`tool_use`, `pause_turn`) → other. Input tokens count cache reads and writes too: the
//! vendor bills them.

use proctor_core::{Completion, CompletionRequest, FinishReason, ModelError, Role};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::adapter::{Decoded, Dialect, tokens};
use crate::credential::Credential;
use crate::error::ConfigError;

/// The API version every request names; the answer's shape below is this version's.
pub(crate) const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The Messages dialect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AnthropicMessages;

#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<TurnMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
}

#[derive(Serialize)]
struct TurnMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Deserialize)]
struct MessagesResponse {
    model: Option<String>,
    content: Vec<ContentBlock>,
    stop_reason: Option<String>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl Dialect for AnthropicMessages {
    fn url(base_url: &str) -> String {
        format!("{base_url}/v1/messages")
    }

    fn headers(credential: Option<&Credential>) -> Result<HeaderMap, ConfigError> {
        let mut headers = crate::adapter::json_headers();
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        if let Some(credential) = credential {
            let mut value = HeaderValue::from_str(credential.expose())
                .map_err(|_| ConfigError::CredentialNotAHeader)?;
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static("x-api-key"), value);
        }
        Ok(headers)
    }

    fn encode(&self, model: &str, request: &CompletionRequest) -> Result<Vec<u8>, ModelError> {
        let system: Vec<&str> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        let body = MessagesRequest {
            model,
            max_tokens: request.params.max_tokens,
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            messages: request
                .messages
                .iter()
                .filter_map(|m| {
                    let role = match m.role {
                        Role::System => return None,
                        Role::User => "user",
                        Role::Assistant => "assistant",
                    };
                    Some(TurnMessage {
                        role,
                        content: &m.content,
                    })
                })
                .collect(),
            temperature: request.params.temperature,
            stop_sequences: &request.params.stop,
        };
        serde_json::to_vec(&body).map_err(|_| {
            ModelError::Rejected("the request could not be encoded as JSON".to_owned())
        })
    }

    fn decode(body: &[u8]) -> Result<Decoded, &'static str> {
        let answer: MessagesResponse =
            serde_json::from_slice(body).map_err(|_| "not a Messages answer (malformed JSON)")?;
        let text: String = answer
            .content
            .iter()
            .filter(|block| block.kind == "text")
            .filter_map(|block| block.text.as_deref())
            .collect();
        let finish = match answer.stop_reason.as_deref() {
            Some("end_turn" | "stop_sequence") => FinishReason::Stop,
            Some("max_tokens") => FinishReason::Length,
            Some("refusal") => FinishReason::Refused,
            _ => FinishReason::Other,
        };
        let counts = answer.usage.and_then(|u| {
            let cached =
                u.cache_creation_input_tokens.unwrap_or(0) + u.cache_read_input_tokens.unwrap_or(0);
            Some((u.input_tokens?.saturating_add(cached), u.output_tokens?))
        });
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

    fn message(role: Role, content: &str) -> Message {
        Message {
            role,
            content: content.to_owned(),
        }
    }

    fn encoded(request: &CompletionRequest) -> Value {
        let bytes = AnthropicMessages
            .encode("claude-x", request)
            .expect("encodes");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn system_messages_are_lifted_to_the_top_level_and_stop_becomes_stop_sequences() {
        let request = CompletionRequest {
            messages: vec![
                message(Role::System, "Be brief."),
                message(Role::User, "What is 2 + 3?"),
                message(Role::Assistant, "5"),
                message(Role::System, "Digits only."),
                message(Role::User, "And 4 + 4?"),
            ],
            params: Params {
                max_tokens: 16,
                temperature: None,
                stop: vec!["\n".to_owned()],
            },
        };
        assert_eq!(
            encoded(&request),
            json!({
                "model": "claude-x",
                "max_tokens": 16,
                "system": "Be brief.\n\nDigits only.",
                "messages": [
                    {"role": "user", "content": "What is 2 + 3?"},
                    {"role": "assistant", "content": "5"},
                    {"role": "user", "content": "And 4 + 4?"}
                ],
                "stop_sequences": ["\n"]
            })
        );
    }

    #[test]
    fn no_system_message_and_an_empty_stop_list_leave_both_fields_out() {
        let request = CompletionRequest {
            messages: vec![message(Role::User, "Hi")],
            params: Params {
                max_tokens: 8,
                temperature: Some(0.0),
                stop: vec![],
            },
        };
        let body = encoded(&request);
        assert!(body.get("system").is_none());
        assert!(body.get("stop_sequences").is_none());
        assert_eq!(body["temperature"], 0.0);
    }

    #[test]
    fn an_answer_is_read_with_its_text_blocks_finish_and_usage() {
        let body = json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x-20250101",
            "content": [{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "5"},
                        {"type": "text", "text": "!"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 2, "cache_read_input_tokens": 3}
        });
        let d = AnthropicMessages::decode(body.to_string().as_bytes()).expect("decodes");
        assert_eq!(d.completion.text, "5!");
        assert_eq!(d.completion.finish, FinishReason::Stop);
        assert_eq!(
            (d.completion.input_tokens, d.completion.output_tokens),
            (13, 2)
        );
        assert_eq!(d.model.as_deref(), Some("claude-x-20250101"));
        let finish = |reason: &str| {
            let body = json!({"content": [], "stop_reason": reason});
            AnthropicMessages::decode(body.to_string().as_bytes())
                .expect("decodes")
                .completion
                .finish
        };
        assert_eq!(finish("max_tokens"), FinishReason::Length);
        assert_eq!(finish("stop_sequence"), FinishReason::Stop);
        assert_eq!(finish("refusal"), FinishReason::Refused);
        assert_eq!(finish("tool_use"), FinishReason::Other);
        assert!(
            AnthropicMessages::decode(b"{\"content\": 5}").is_err(),
            "content must be a list"
        );
    }
}
