//! One tiny request to check a configuration against its endpoint (`proctor model test`, and
//! the service when a vendor registers a model).

use std::time::{Duration, Instant};

use proctor_core::{
    CompletionRequest, FinishReason, Message, Model, ModelDescriptor, Params, Role,
};

use crate::config::{Built, ModelConfig};
use crate::credential::Credential;
use crate::error::ProbeError;
use crate::hosts::HostPolicy;

/// The probe's question: short, and answerable by anything that follows instructions.
const PROBE_PROMPT: &str = "Reply with the single word OK.";
/// Enough for the answer; a reasoning model may spend it all thinking and finish `length`,
/// which the report shows rather than hides.
const PROBE_MAX_TOKENS: u32 = 16;

/// What the probe learned.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    /// The model as results would name it (the version as the endpoint reported it, if it did).
    pub model: ModelDescriptor,
    /// Wall time of the request, retries included.
    pub latency: Duration,
    /// Why the answer ended.
    pub finish: FinishReason,
    /// Token counts, when the endpoint reported them; without them, budgets in tokens see 0.
    pub usage: Option<TokenCounts>,
}

/// Tokens in and out of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCounts {
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Reply tokens.
    pub output_tokens: u32,
}

impl ModelConfig {
    /// Validates the configuration, sends one tiny request under `hosts` and reports on the
    /// answer. The reply's text is not returned: a probe has no use for it, and nothing should
    /// print it.
    pub async fn probe(
        &self,
        credential: Option<Credential>,
        hosts: &HostPolicy,
    ) -> Result<ProbeReport, ProbeError> {
        let built = self.build_concrete(credential, None, hosts)?;
        let request = CompletionRequest {
            messages: vec![Message {
                role: Role::User,
                content: PROBE_PROMPT.to_owned(),
            }],
            params: Params {
                max_tokens: PROBE_MAX_TOKENS,
                temperature: None,
                stop: Vec::new(),
            },
        };
        let started = Instant::now();
        let (model, finish, usage) = match &built {
            Built::Openai(model) => {
                let d = model.exchange(&request).await?;
                (
                    model.descriptor(),
                    d.completion.finish,
                    d.usage_reported.then_some(counts(&d.completion)),
                )
            }
            Built::Anthropic(model) => {
                let d = model.exchange(&request).await?;
                (
                    model.descriptor(),
                    d.completion.finish,
                    d.usage_reported.then_some(counts(&d.completion)),
                )
            }
            Built::Builtin(model) => {
                let c = model.complete(request).await?;
                (model.descriptor(), c.finish, Some(counts(&c)))
            }
        };
        Ok(ProbeReport {
            model,
            latency: started.elapsed(),
            finish,
            usage,
        })
    }
}

fn counts(c: &proctor_core::Completion) -> TokenCounts {
    TokenCounts {
        input_tokens: c.input_tokens,
        output_tokens: c.output_tokens,
    }
}
