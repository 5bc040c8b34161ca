//! The vendor's access commands and the evaluator's view of them: `proctor grant
//! create|list|show|revoke|budget`, `proctor approval list|download|approve|reject`,
//! `proctor usage`, `proctor model list` and `proctor model ledger`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use proctor_api::approvals::{PendingView, Reject};
use proctor_api::grants::{
    ApprovalMode, BudgetFigures, BudgetView, CreateGrant, GrantBudgets, GrantTier, GrantView,
    Grantee, RemainingView, RevokedView,
};
use proctor_api::jobs::JobView;
use proctor_api::models::{ModelLedgerView, ModelView, SetModelLedger};
use proctor_api::usage::{UsageCounters, UsageReport};
use reqwest::Method;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::client::ServerArgs;
use crate::examples::write_atomically;
use crate::remote::segment;
use crate::run::{Failure, run_to_exit};

#[derive(Subcommand)]
pub enum GrantCommand {
    /// Grant an evaluator tier or account access to one of your models (vendor); prints the
    /// grant's id.
    // Boxed: its many budget flags make it far larger than the other variants.
    Create(Box<CreateArgs>),
    /// Your grants (vendor), or the grants that name you (evaluator).
    List(ListArgs),
    /// One grant: its effective policy, budgets, approval mode and expiry.
    Show(IdArgs),
    /// Revoke a grant (vendor): new jobs are refused, queued ones end and running ones stop.
    Revoke(IdArgs),
    /// A grant's budgets: limit, used, held and left, and the epsilon ledger.
    Budget(IdArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum TierArg {
    Academic,
    Auditor,
    Regulator,
}

#[derive(Clone, Copy, ValueEnum)]
enum ApprovalArg {
    Auto,
    Manual,
}

#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The model's id.
    #[arg(long, value_name = "ID")]
    model: String,
    /// Every evaluator of this tier (commercial evaluators only by --account).
    #[arg(
        long,
        value_enum,
        conflicts_with = "account",
        required_unless_present = "account"
    )]
    tier: Option<TierArg>,
    /// One evaluator account, by id.
    #[arg(long, value_name = "ID")]
    account: Option<String>,
    /// A policy the service ships (default `standard`).
    #[arg(long, value_name = "NAME")]
    policy: Option<String>,
    /// Tighten one policy key, e.g. `queries.max_per_sample=2` or `wasi=none`; repeatable.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Jobs per UTC day.
    #[arg(long, value_name = "N")]
    jobs_per_day: Option<u64>,
    /// Model queries per UTC day.
    #[arg(long, value_name = "N")]
    queries_per_day: Option<u64>,
    /// Tokens (in + out) per UTC day.
    #[arg(long, value_name = "N")]
    tokens_per_day: Option<u64>,
    /// Model queries over the grant's life.
    #[arg(long, value_name = "N")]
    queries_total: Option<u64>,
    /// Tokens over the grant's life.
    #[arg(long, value_name = "N")]
    tokens_total: Option<u64>,
    /// The privacy ledger: the most epsilon one evaluator may spend on the model, across all
    /// its grants (required when the policy sets `release.dp_epsilon`).
    #[arg(long, value_name = "EPSILON")]
    epsilon_total: Option<f64>,
    /// The largest leakage bound (bits) a job under the grant may have.
    #[arg(long, value_name = "BITS")]
    bits_per_job: Option<f64>,
    /// The most leakage (bits, summed over job bounds) one evaluator may spend on the model,
    /// across all its grants.
    #[arg(long, value_name = "BITS")]
    bits_total: Option<f64>,
    /// The most CPU time, in whole seconds, the samples of one job may use; a job that passes
    /// it is stopped and ends `failed`.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    cpu_seconds_per_job: Option<u64>,
    /// `manual`: jobs wait until you approve them.
    #[arg(long, value_enum, default_value = "auto")]
    approval: ApprovalArg,
    /// When the grant stops covering anything (RFC 3339, e.g. 2027-01-01T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    expires_at: Option<String>,
    /// Print the grant as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct IdArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The id.
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum ApprovalCommand {
    /// Jobs on your models waiting for your approval, with what they run.
    List(ListArgs),
    /// Write a waiting job's eval component to a file, to inspect it.
    Download(DownloadArgs),
    /// Approve a waiting job: it runs.
    Approve(IdArgs),
    /// Reject a waiting job: it ends cancelled, with a signed result saying so.
    Reject(RejectArgs),
}

#[derive(Args)]
pub struct DownloadArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The job's id.
    job: String,
    /// Where to write the component.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Args)]
pub struct RejectArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The job's id.
    job: String,
    /// Why (one line, at most 500 characters), in the job's attested reason.
    #[arg(long)]
    reason: Option<String>,
}

/// Parses `a.b=value` into a nested override; the value is JSON (a number), else a bare word
/// taken as a string.
fn set_override(overrides: &mut Map<String, Value>, text: &str) -> Result<(), Failure> {
    let (key, raw) = text.split_once('=').ok_or_else(|| {
        Failure::from(anyhow::anyhow!(
            "--override `{text}` is not KEY=VALUE (e.g. queries.max_per_sample=2)"
        ))
    })?;
    let value: Value =
        serde_json::from_str(raw.trim()).unwrap_or_else(|_| Value::String(raw.trim().to_owned()));
    let mut path = key.trim().split('.').collect::<Vec<_>>();
    let last = path
        .pop()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Failure::from(anyhow::anyhow!("--override `{text}` names no key")))?;
    let mut table = overrides;
    for part in path {
        table = table
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| {
                Failure::from(anyhow::anyhow!("--override `{text}`: `{part}` is a value"))
            })?;
    }
    table.insert(last.to_owned(), value);
    Ok(())
}

/// The body of a `POST` whose route reads none: an empty JSON object.
#[derive(Serialize)]
struct NoBody {}

pub fn grant(cmd: GrantCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        GrantCommand::Create(args) => run_to_exit(create(*args)),
        GrantCommand::List(args) => run_to_exit(async move {
            let grants: Vec<GrantView> = args.server.client()?.get("/v1/grants").await?;
            if args.json {
                return print_json(&grants);
            }
            println!(
                "{:36}  {:36}  {:22}  {:10}  {:7}  status",
                "grant", "model", "grantee", "policy", "approval"
            );
            for g in &grants {
                println!(
                    "{:36}  {:36}  {:22}  {:10}  {:7}  {}",
                    g.id,
                    g.model,
                    grantee_of(&g.grantee),
                    g.policy.name,
                    g.approval.as_str(),
                    g.status.as_str()
                );
            }
            Ok(())
        }),
        GrantCommand::Show(args) => run_to_exit(async move {
            let client = args.server.client()?;
            let g: GrantView = client
                .get(&format!("/v1/grants/{}", segment(&args.id)?))
                .await?;
            if args.json {
                return print_json(&g);
            }
            print_grant(&g)
        }),
        GrantCommand::Revoke(args) => run_to_exit(async move {
            let client = args.server.client()?;
            let revoked: RevokedView = client
                .call(
                    Method::POST,
                    &format!("/v1/grants/{}/revoke", segment(&args.id)?),
                    &NoBody {},
                )
                .await?;
            if args.json {
                return print_json(&revoked);
            }
            println!("grant {} revoked", revoked.grant.id);
            for (jobs, what) in [
                (&revoked.ended, "ended (had not started)"),
                (&revoked.stopping, "stopping"),
            ] {
                for job in jobs {
                    println!("  job {job} {what}");
                }
            }
            Ok(())
        }),
        GrantCommand::Budget(args) => run_to_exit(async move {
            let client = args.server.client()?;
            let b: RemainingView = client
                .get(&format!("/v1/grants/{}/budget", segment(&args.id)?))
                .await?;
            if args.json {
                return print_json(&b);
            }
            print_budget(&b);
            Ok(())
        }),
    }
}

async fn create(args: CreateArgs) -> Result<(), Failure> {
    let grantee = match (&args.tier, &args.account) {
        (_, Some(account)) => Grantee::Account(account.clone()),
        (Some(tier), None) => Grantee::Tier(
            match tier {
                TierArg::Academic => GrantTier::Academic,
                TierArg::Auditor => GrantTier::Auditor,
                TierArg::Regulator => GrantTier::Regulator,
            }
            .as_str()
            .to_owned(),
        ),
        (None, None) => return Err(anyhow::anyhow!("give --tier or --account").into()),
    };
    let mut overrides = Map::new();
    for text in &args.overrides {
        set_override(&mut overrides, text)?;
    }
    let approval = match args.approval {
        ApprovalArg::Auto => ApprovalMode::Auto,
        ApprovalArg::Manual => ApprovalMode::Manual,
    };
    let body = CreateGrant {
        model: args.model.clone(),
        grantee,
        policy: args.policy.clone(),
        // Sent as given: the service checks each key and names the one it refuses.
        overrides: Some(Value::Object(overrides)),
        budgets: GrantBudgets {
            jobs_per_day: args.jobs_per_day,
            queries_per_day: args.queries_per_day,
            tokens_per_day: args.tokens_per_day,
            queries_total: args.queries_total,
            tokens_total: args.tokens_total,
            epsilon_total: args.epsilon_total,
            bits_per_job: args.bits_per_job,
            bits_total: args.bits_total,
            cpu_seconds_per_job: args.cpu_seconds_per_job,
        },
        approval: Some(approval.as_str().to_owned()),
        expires_at: args.expires_at.clone(),
        alerts: None,
    };
    let g: GrantView = args
        .server
        .client()?
        .call(Method::POST, "/v1/grants", &body)
        .await?;
    if args.json {
        return print_json(&g);
    }
    println!("{}", g.id);
    eprintln!(
        "granted {} access under policy {} (sha256 {}), approval {}",
        grantee_of(&g.grantee),
        g.policy.name,
        g.policy.sha256,
        g.approval
    );
    Ok(())
}

pub fn approval(cmd: ApprovalCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ApprovalCommand::List(args) => run_to_exit(async move {
            let pending: Vec<PendingView> = args.server.client()?.get("/v1/approvals").await?;
            if args.json {
                return print_json(&pending);
            }
            for p in &pending {
                let metrics: Vec<&str> = p.eval.metrics.iter().map(|m| m.name.as_str()).collect();
                println!(
                    "job {}  by {} ({})  eval {} {} (sha256 {}, {} bytes, metrics: {})  dataset {} items  policy {}",
                    p.job,
                    p.evaluator.name,
                    p.evaluator.tier.map_or("", |t| t.as_str()),
                    p.eval.name,
                    p.eval.version,
                    p.eval.sha256,
                    p.eval.size,
                    metrics.join(", "),
                    p.dataset.items,
                    p.policy.name,
                );
            }
            Ok(())
        }),
        ApprovalCommand::Download(args) => run_to_exit(async move {
            let client = args.server.client()?;
            let bytes = client
                .get_bytes(&format!("/v1/approvals/{}/component", segment(&args.job)?))
                .await?;
            write_atomically(&args.out, &bytes).map_err(Failure::Internal)?;
            eprintln!("wrote {} bytes to {}", bytes.len(), args.out.display());
            Ok(())
        }),
        ApprovalCommand::Approve(args) => run_to_exit(async move {
            let client = args.server.client()?;
            let job: JobView = client
                .call(
                    Method::POST,
                    &format!("/v1/approvals/{}/approve", segment(&args.id)?),
                    &NoBody {},
                )
                .await?;
            if args.json {
                return print_json(&job);
            }
            println!("job {} approved", job.id);
            Ok(())
        }),
        ApprovalCommand::Reject(args) => run_to_exit(async move {
            let client = args.server.client()?;
            let body = Reject {
                reason: args.reason.clone(),
            };
            let job: JobView = client
                .call(
                    Method::POST,
                    &format!("/v1/approvals/{}/reject", segment(&args.job)?),
                    &body,
                )
                .await?;
            println!(
                "job {} rejected: {}",
                job.id,
                job.reason.as_deref().unwrap_or("")
            );
            Ok(())
        }),
    }
}

/// A budget view: exact (`used`, `reserved`), or, for the evaluator of a DP grant, the worst
/// cases held at acceptance only.
fn print_budget(b: &RemainingView) {
    println!("grant {} on {} (UTC)", b.grant, b.day);
    let worst_case = b.figures == BudgetFigures::WorstCase;
    if worst_case {
        println!("(differential privacy: worst cases held at acceptance, not exact usage)");
    }
    println!(
        "{:14} {:>14} {:>14} {:>14} {:>14}",
        "budget",
        "limit",
        if worst_case { "" } else { "used" },
        if worst_case { "worst case" } else { "held" },
        "left"
    );
    for (label, u) in [
        ("jobs today", BudgetView::Exact(b.jobs_today)),
        ("queries today", b.queries_today),
        ("tokens today", b.tokens_today),
        ("queries total", b.queries_total),
        ("tokens total", b.tokens_total),
    ] {
        let (used, held) = match u {
            BudgetView::WorstCase(w) => (String::new(), w.worst_case.to_string()),
            BudgetView::Exact(e) => (e.used.to_string(), e.reserved.to_string()),
        };
        println!(
            "{:14} {:>14} {:>14} {:>14} {:>14}",
            label,
            count_or(u.limit(), "unlimited"),
            used,
            held,
            count_or(u.remaining(), "unlimited"),
        );
    }
    for (label, total, spent, remaining) in [
        (
            "epsilon",
            b.epsilon.total,
            b.epsilon.spent,
            b.epsilon.remaining,
        ),
        ("bits", b.bits.total, b.bits.spent, b.bits.remaining),
    ] {
        println!(
            "{:14} {:>14} {:>14} {:>14} {:>14}",
            label,
            figure_or(total, "unlimited"),
            figure(spent),
            "",
            figure_or(remaining, "-"),
        );
    }
    if let Some(per_job) = b.bits.per_job {
        println!("{:14} {per_job:>14}", "bits per job");
    }
}

/// `proctor model ledger`.
#[derive(Args)]
pub struct LedgerArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The model's id.
    model: String,
    /// The most epsilon all evaluators together may spend on the model (left out: no cap).
    #[arg(long, value_name = "EPSILON")]
    epsilon_total: Option<f64>,
    /// The most leakage (bits) all evaluators together may spend on the model (left out: no
    /// cap).
    #[arg(long, value_name = "BITS")]
    bits_total: Option<f64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Sets a model's caps across all evaluators (vendor): both at once, a cap left out is lifted.
pub fn model_ledger(args: LedgerArgs) -> anyhow::Result<ExitCode> {
    run_to_exit(async move {
        let client = args.server.client()?;
        let path = format!("/v1/models/{}/ledger", segment(&args.model)?);
        let body = SetModelLedger {
            epsilon_total: args.epsilon_total,
            bits_total: args.bits_total,
        };
        let ledger: ModelLedgerView = client.call(Method::PUT, &path, &body).await?;
        if args.json {
            return print_json(&ledger);
        }
        println!("model {}", ledger.model);
        for (label, total, spent) in [
            ("epsilon", ledger.epsilon_total, ledger.epsilon_spent),
            ("bits", ledger.bits_total, ledger.bits_spent),
        ] {
            println!(
                "{label:8} cap {:>14}  spent {:>14}",
                figure_or(total, "none"),
                figure(spent),
            );
        }
        Ok(())
    })
}

/// `proctor usage`.
#[derive(Args)]
pub struct UsageArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn usage(args: UsageArgs) -> anyhow::Result<ExitCode> {
    run_to_exit(async move {
        let report: UsageReport = args.server.client()?.get("/v1/usage").await?;
        if args.json {
            return print_json(&report);
        }
        let line = |label: String, c: &UsageCounters| {
            println!(
                "{label:50} {:>10} {:>14} {:>14} {:>9}",
                c.queries, c.input_tokens, c.output_tokens, c.in_flight,
            );
        };
        println!(
            "{:50} {:>10} {:>14} {:>14} {:>9}",
            "", "queries", "input tokens", "output tokens", "in flight"
        );
        line("total".to_owned(), &report.total);
        for row in &report.by_grant {
            line(format!("grant {}", row.grant), &row.counters);
        }
        for row in &report.by_evaluator {
            line(
                format!("evaluator {} ({})", row.name, row.evaluator),
                &row.counters,
            );
        }
        for row in &report.by_model {
            line(format!("model {} ({})", row.name, row.model), &row.counters);
        }
        Ok(())
    })
}

/// `proctor model list`.
pub fn list_models(args: ListArgs) -> anyhow::Result<ExitCode> {
    run_to_exit(async move {
        let models: Vec<ModelView> = args.server.client()?.get("/v1/models").await?;
        if args.json {
            return print_json(&models);
        }
        for m in &models {
            let grant = m
                .grant
                .as_deref()
                .map(|g| format!("  grant {g}"))
                .unwrap_or_default();
            println!(
                "{}  {} {} ({}){grant}",
                m.id,
                m.name,
                m.version,
                word(&m.adapter)?
            );
        }
        Ok(())
    })
}

fn print_grant(g: &GrantView) -> Result<(), Failure> {
    println!("grant     {}", g.id);
    println!("model     {}", g.model);
    println!("grantee   {}", grantee_of(&g.grantee));
    println!(
        "policy    {} (sha256 {}), overrides {}",
        g.policy.name,
        g.policy.sha256,
        compact(&g.overrides)?
    );
    println!("budgets   {}", compact(&g.budgets)?);
    println!("approval  {}", g.approval);
    println!("expires   {}", g.expires_at.as_deref().unwrap_or("never"));
    println!("status    {}", g.status);
    Ok(())
}

fn grantee_of(g: &Grantee) -> String {
    match g {
        Grantee::Tier(tier) => format!("tier {tier}"),
        Grantee::Account(account) => format!("account {account}"),
    }
}

/// A count, or `absent` for none.
fn count_or(v: Option<u64>, absent: &str) -> String {
    v.map_or_else(|| absent.to_owned(), |n| n.to_string())
}

/// A figure as its JSON spells it (`2.0`, `1e-7`).
fn figure(v: f64) -> String {
    serde_json::Number::from_f64(v).map_or_else(|| "null".to_owned(), |n| n.to_string())
}

/// A figure as its JSON spells it, or `absent` for none.
fn figure_or(v: Option<f64>, absent: &str) -> String {
    v.map_or_else(|| absent.to_owned(), figure)
}

/// A value as one line of JSON, its keys sorted.
fn compact<T: Serialize>(v: &T) -> Result<String, Failure> {
    let value = serde_json::to_value(v).map_err(|e| Failure::Internal(e.into()))?;
    Ok(value.to_string())
}

/// An enum's name as its JSON spells it (`openai`).
fn word<T: Serialize>(v: &T) -> Result<String, Failure> {
    match serde_json::to_value(v).map_err(|e| Failure::Internal(e.into()))? {
        Value::String(s) => Ok(s),
        other => Ok(other.to_string()),
    }
}

fn print_json<T: Serialize>(v: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Failure::Internal(e.into()))?;
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn overrides_nest_by_their_dotted_keys_and_parse_their_values() {
        let mut o = Map::new();
        assert!(set_override(&mut o, "queries.max_per_sample=2").is_ok());
        assert!(set_override(&mut o, "limits.sample_timeout_s=1.5").is_ok());
        assert!(set_override(&mut o, "wasi=none").is_ok());
        assert!(set_override(&mut o, "release.dp_epsilon=0.5").is_ok());
        assert_eq!(
            Value::Object(o),
            json!({"queries": {"max_per_sample": 2}, "limits": {"sample_timeout_s": 1.5},
                   "wasi": "none", "release": {"dp_epsilon": 0.5}})
        );
        let mut o = Map::new();
        assert!(set_override(&mut o, "queries.max_per_sample").is_err());
        assert!(set_override(&mut o, "queries.=2").is_err());
        assert!(set_override(&mut o, "wasi=none").is_ok());
        assert!(set_override(&mut o, "wasi.x=1").is_err());
    }
}
