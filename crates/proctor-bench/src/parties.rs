//! What a service needs before a job runs, done over HTTP as its users do it (as `proctor
//! demo` does): the admin creates a vendor and an evaluator, the vendor registers built-in
//! models and grants the evaluator access to them, the evaluator uploads the eval and its
//! datasets.

use proctor_api::accounts::{AccountView, CreatedToken, NewAccount, NewToken, Role, Tier};
use proctor_api::artifacts::{DatasetView, EvalView};
use proctor_api::grants::{CreateGrant, GrantBudgets, GrantView, Grantee};
use proctor_api::models::{ModelAdapter, ModelConfig, ModelView, RegisterModel};

use crate::client::Client;
use crate::service::Service;

/// Queries and tokens a bench grant allows: a budget that is checked on every query, as a
/// vendor's would be, but never runs out.
const UNLIMITED: u64 = 1 << 50;

/// Whether a grant's jobs run at once or wait for the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// They run at once.
    Auto,
    /// They wait (queued, never claimed) until the vendor decides.
    Manual,
}

/// The vendor and the evaluator of one service.
pub struct Parties {
    /// Registers models and grants them.
    pub vendor: Client,
    /// Uploads and submits.
    pub evaluator: Client,
    /// The evaluator's account id, which grants name.
    pub evaluator_id: String,
}

impl Parties {
    /// Creates a vendor and an (academic) evaluator, each with a token.
    pub async fn create(service: &Service) -> anyhow::Result<Parties> {
        let admin = Client::new(&service.base, &service.admin_token);
        let (_, vendor) = account(&admin, "bench-vendor", Role::Vendor, None).await?;
        let (evaluator_id, evaluator) = account(
            &admin,
            "bench-evaluator",
            Role::Evaluator,
            Some(Tier::Academic),
        )
        .await?;
        Ok(Parties {
            vendor,
            evaluator,
            evaluator_id,
        })
    }

    /// Registers `builtin:arith?latency_ms=L` as model `name` and grants it to the evaluator
    /// ([`Parties::grant`], automatic approval); returns the model's id.
    pub async fn granted_model(
        &self,
        name: &str,
        latency_ms: u64,
        concurrency: u64,
    ) -> anyhow::Result<String> {
        let model = self.register(name, latency_ms).await?;
        self.grant(&model, concurrency, Approval::Auto).await?;
        Ok(model)
    }

    /// Registers `builtin:arith?latency_ms=L` as model `name`; returns its id.
    pub async fn register(&self, name: &str, latency_ms: u64) -> anyhow::Result<String> {
        let register = RegisterModel {
            name: name.to_owned(),
            version: "1".into(),
            config: ModelConfig {
                adapter: ModelAdapter::Builtin,
                model: format!("arith?latency_ms={latency_ms}"),
                base_url: None,
                api_key_env: None,
                version: None,
                max_concurrency: None,
                requests_per_minute: None,
                timeout_s: None,
                max_attempts: None,
                max_tokens_field: None,
            },
            credential: None,
        };
        let model: ModelView = self.vendor.post("/v1/models", &register).await?;
        Ok(model.id)
    }

    /// Grants `model` to the evaluator under `standard`, with `max_concurrency` tightened to
    /// `concurrency` and budgets that never run out. One grant per model, so a job's grant is
    /// never a choice among several.
    pub async fn grant(
        &self,
        model: &str,
        concurrency: u64,
        approval: Approval,
    ) -> anyhow::Result<()> {
        let grant = CreateGrant {
            model: model.to_owned(),
            grantee: Grantee::Account(self.evaluator_id.clone()),
            policy: Some("standard".into()),
            overrides: Some(serde_json::json!({"limits": {"max_concurrency": concurrency}})),
            budgets: GrantBudgets {
                queries_total: Some(UNLIMITED),
                tokens_total: Some(UNLIMITED),
                ..GrantBudgets::default()
            },
            approval: Some(
                match approval {
                    Approval::Auto => "auto",
                    Approval::Manual => "manual",
                }
                .into(),
            ),
            expires_at: None,
            alerts: None,
        };
        let _: GrantView = self.vendor.post("/v1/grants", &grant).await?;
        Ok(())
    }

    /// Uploads the arithmetic example's component; returns its id.
    pub async fn upload_eval(&self) -> anyhow::Result<String> {
        let eval: EvalView = self
            .evaluator
            .upload("/v1/evals", proctor_evals::examples::ARITH_WASM.to_vec())
            .await?;
        Ok(eval.id)
    }

    /// Uploads a dataset; returns its id.
    pub async fn upload_dataset(&self, bytes: Vec<u8>) -> anyhow::Result<String> {
        let dataset: DatasetView = self.evaluator.upload("/v1/datasets", bytes).await?;
        Ok(dataset.id)
    }
}

/// Creates an account and a token for it; returns its id and a client acting as it.
async fn account(
    admin: &Client,
    name: &str,
    role: Role,
    tier: Option<Tier>,
) -> anyhow::Result<(String, Client)> {
    let body = NewAccount {
        name: name.to_owned(),
        role,
        tier,
    };
    let account: AccountView = admin.post("/v1/accounts", &body).await?;
    let label = NewToken {
        label: "bench".into(),
    };
    let token: CreatedToken = admin
        .post(&format!("/v1/accounts/{}/tokens", account.id), &label)
        .await?;
    Ok((account.id, admin.with_token(&token.token)))
}
