//! The vendor's access commands and the evaluator's view of them: `proctor grant
//! create|list|show|revoke|budget`, `proctor approval list|download|approve|reject`,
//! `proctor usage`, `proctor model list` and `proctor model ledger`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use crate::client::{Body, ServerArgs, str_field};
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

pub fn grant(cmd: GrantCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        GrantCommand::Create(args) => run_to_exit(create(*args)),
        GrantCommand::List(args) => run_to_exit(async move {
            let grants = args.server.client()?.get_json("/v1/grants").await?;
            if args.json {
                return print_json(&grants);
            }
            println!(
                "{:36}  {:36}  {:22}  {:10}  {:7}  status",
                "grant", "model", "grantee", "policy", "approval"
            );
            for g in grants.as_array().into_iter().flatten() {
                println!(
                    "{:36}  {:36}  {:22}  {:10}  {:7}  {}",
                    text(g, "id"),
                    text(g, "model"),
                    grantee_of(g),
                    text(&g["policy"], "name"),
                    text(g, "approval"),
                    text(g, "status")
                );
            }
            Ok(())
        }),
        GrantCommand::Show(args) => run_to_exit(async move {
            let client = args.server.client()?;
            let g = client
                .get_json(&format!("/v1/grants/{}", segment(&args.id)?))
                .await?;
            if args.json {
                return print_json(&g);
            }
            print_grant(&g);
            Ok(())
        }),
        GrantCommand::Revoke(args) => run_to_exit(async move {
            let client = args.server.client()?;
            let revoked = client
                .post_json(
                    &format!("/v1/grants/{}/revoke", segment(&args.id)?),
                    json!({}),
                )
                .await?;
            if args.json {
                return print_json(&revoked);
            }
            println!("grant {} revoked", text(&revoked["grant"], "id"));
            for (key, what) in [
                ("ended", "ended (had not started)"),
                ("stopping", "stopping"),
            ] {
                for job in revoked[key].as_array().into_iter().flatten() {
                    println!("  job {} {what}", job.as_str().unwrap_or(""));
                }
            }
            Ok(())
        }),
        GrantCommand::Budget(args) => run_to_exit(async move {
            let client = args.server.client()?;
            let b = client
                .get_json(&format!("/v1/grants/{}/budget", segment(&args.id)?))
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
        (_, Some(account)) => json!({"account": account}),
        (Some(tier), None) => json!({"tier": match tier {
            TierArg::Academic => "academic",
            TierArg::Auditor => "auditor",
            TierArg::Regulator => "regulator",
        }}),
        (None, None) => return Err(anyhow::anyhow!("give --tier or --account").into()),
    };
    let mut overrides = Map::new();
    for text in &args.overrides {
        set_override(&mut overrides, text)?;
    }
    let mut budgets = Map::new();
    for (key, value) in [
        ("jobs_per_day", args.jobs_per_day),
        ("queries_per_day", args.queries_per_day),
        ("tokens_per_day", args.tokens_per_day),
        ("queries_total", args.queries_total),
        ("tokens_total", args.tokens_total),
    ] {
        if let Some(v) = value {
            budgets.insert(key.to_owned(), v.into());
        }
    }
    for (key, value) in [
        ("epsilon_total", args.epsilon_total),
        ("bits_per_job", args.bits_per_job),
        ("bits_total", args.bits_total),
    ] {
        if let Some(v) = value {
            budgets.insert(key.to_owned(), v.into());
        }
    }
    let mut body = json!({
        "model": args.model, "grantee": grantee, "overrides": overrides, "budgets": budgets,
        "approval": match args.approval { ApprovalArg::Auto => "auto", ApprovalArg::Manual => "manual" },
    });
    if let Some(policy) = &args.policy {
        body["policy"] = policy.as_str().into();
    }
    if let Some(at) = &args.expires_at {
        body["expires_at"] = at.as_str().into();
    }
    let g = args.server.client()?.post_json("/v1/grants", body).await?;
    if args.json {
        return print_json(&g);
    }
    println!("{}", str_field(&g, "id")?);
    eprintln!(
        "granted {} access under policy {} (sha256 {}), approval {}",
        grantee_of(&g),
        text(&g["policy"], "name"),
        text(&g["policy"], "sha256"),
        text(&g, "approval")
    );
    Ok(())
}

pub fn approval(cmd: ApprovalCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ApprovalCommand::List(args) => run_to_exit(async move {
            let pending = args.server.client()?.get_json("/v1/approvals").await?;
            if args.json {
                return print_json(&pending);
            }
            for p in pending.as_array().into_iter().flatten() {
                let metrics: Vec<&str> = p["eval"]["metrics"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m["name"].as_str())
                    .collect();
                println!(
                    "job {}  by {} ({})  eval {} {} (sha256 {}, {} bytes, metrics: {})  dataset {} items  policy {}",
                    text(p, "job"),
                    text(&p["evaluator"], "name"),
                    text(&p["evaluator"], "tier"),
                    text(&p["eval"], "name"),
                    text(&p["eval"], "version"),
                    text(&p["eval"], "sha256"),
                    number_or(&p["eval"]["size"], "?"),
                    metrics.join(", "),
                    number_or(&p["dataset"]["items"], "?"),
                    text(&p["policy"], "name"),
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
            let job = client
                .post_json(
                    &format!("/v1/approvals/{}/approve", segment(&args.id)?),
                    json!({}),
                )
                .await?;
            if args.json {
                return print_json(&job);
            }
            println!("job {} approved", text(&job, "id"));
            Ok(())
        }),
        ApprovalCommand::Reject(args) => run_to_exit(async move {
            let client = args.server.client()?;
            let body = match &args.reason {
                Some(reason) => json!({"reason": reason}),
                None => json!({}),
            };
            let job = client
                .post_json(
                    &format!("/v1/approvals/{}/reject", segment(&args.job)?),
                    body,
                )
                .await?;
            println!(
                "job {} rejected: {}",
                text(&job, "id"),
                text(&job, "reason")
            );
            Ok(())
        }),
    }
}

/// A budget view: exact (`used`, `reserved`), or, for the evaluator of a DP grant, the worst
/// cases held at acceptance only.
fn print_budget(b: &Value) {
    println!("grant {} on {} (UTC)", text(b, "grant"), text(b, "day"));
    let worst_case = text(b, "figures") == "worst-case";
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
    for key in [
        "jobs_today",
        "queries_today",
        "tokens_today",
        "queries_total",
        "tokens_total",
    ] {
        let u = &b[key];
        let (used, held) = match u.get("worst_case") {
            Some(w) => (String::new(), number_or(w, "0")),
            None => (number_or(&u["used"], "0"), number_or(&u["reserved"], "0")),
        };
        println!(
            "{:14} {:>14} {:>14} {:>14} {:>14}",
            key.replace('_', " "),
            number_or(&u["limit"], "unlimited"),
            used,
            held,
            number_or(&u["remaining"], "unlimited"),
        );
    }
    for (label, v) in [("epsilon", &b["epsilon"]), ("bits", &b["bits"])] {
        println!(
            "{:14} {:>14} {:>14} {:>14} {:>14}",
            label,
            number_or(&v["total"], "unlimited"),
            number_or(&v["spent"], "0"),
            "",
            number_or(&v["remaining"], "-"),
        );
    }
    if let Some(per_job) = b["bits"]["per_job"].as_f64() {
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
        let body = json!({"epsilon_total": args.epsilon_total, "bits_total": args.bits_total});
        let bytes = client
            .send(reqwest::Method::PUT, &path, Body::Json(body))
            .await?;
        let ledger: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Failure::Internal(anyhow::Error::new(e).context(format!("PUT {path}"))))?;
        if args.json {
            return print_json(&ledger);
        }
        println!("model {}", text(&ledger, "model"));
        for (label, total, spent) in [
            ("epsilon", "epsilon_total", "epsilon_spent"),
            ("bits", "bits_total", "bits_spent"),
        ] {
            println!(
                "{label:8} cap {:>14}  spent {:>14}",
                number_or(&ledger[total], "none"),
                number_or(&ledger[spent], "0"),
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
        let report = args.server.client()?.get_json("/v1/usage").await?;
        if args.json {
            return print_json(&report);
        }
        let line = |label: String, c: &Value| {
            println!(
                "{label:50} {:>10} {:>14} {:>14} {:>9}",
                number_or(&c["queries"], "0"),
                number_or(&c["input_tokens"], "0"),
                number_or(&c["output_tokens"], "0"),
                number_or(&c["in_flight"], "0"),
            );
        };
        println!(
            "{:50} {:>10} {:>14} {:>14} {:>9}",
            "", "queries", "input tokens", "output tokens", "in flight"
        );
        line("total".to_owned(), &report["total"]);
        for (key, what, name) in [
            ("by_grant", "grant", None),
            ("by_evaluator", "evaluator", Some("name")),
            ("by_model", "model", Some("name")),
        ] {
            for row in report[key].as_array().into_iter().flatten() {
                let label = match name {
                    Some(n) => format!("{what} {} ({})", text(row, n), text(row, what)),
                    None => format!("{what} {}", text(row, what)),
                };
                line(label, row);
            }
        }
        Ok(())
    })
}

/// `proctor model list`.
pub fn list_models(args: ListArgs) -> anyhow::Result<ExitCode> {
    run_to_exit(async move {
        let models = args.server.client()?.get_json("/v1/models").await?;
        if args.json {
            return print_json(&models);
        }
        for m in models.as_array().into_iter().flatten() {
            let grant = m
                .get("grant")
                .and_then(Value::as_str)
                .map(|g| format!("  grant {g}"))
                .unwrap_or_default();
            println!(
                "{}  {} {} ({}){grant}",
                text(m, "id"),
                text(m, "name"),
                text(m, "version"),
                text(m, "adapter")
            );
        }
        Ok(())
    })
}

fn print_grant(g: &Value) {
    println!("grant     {}", text(g, "id"));
    println!("model     {}", text(g, "model"));
    println!("grantee   {}", grantee_of(g));
    println!(
        "policy    {} (sha256 {}), overrides {}",
        text(&g["policy"], "name"),
        text(&g["policy"], "sha256"),
        g["overrides"]
    );
    println!("budgets   {}", g["budgets"]);
    println!("approval  {}", text(g, "approval"));
    println!("expires   {}", number_or(&g["expires_at"], "never"));
    println!("status    {}", text(g, "status"));
}

fn grantee_of(g: &Value) -> String {
    match (
        g["grantee"]["tier"].as_str(),
        g["grantee"]["account"].as_str(),
    ) {
        (Some(tier), _) => format!("tier {tier}"),
        (None, Some(account)) => format!("account {account}"),
        _ => "?".to_owned(),
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn number_or(v: &Value, absent: &str) -> String {
    match v {
        Value::Null => absent.to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_json(v: &Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Failure::Internal(e.into()))?;
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
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
