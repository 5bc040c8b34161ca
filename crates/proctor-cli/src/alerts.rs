//! `proctor alerts [--identity] [--json]`, `proctor alerts ack [--identity] ID` and
//! `proctor alerts reinstate GRANT`: the usage alerts on a vendor's grants (an admin: every
//! alert), and a suspended grant's reinstatement; with `--identity`, the identity alerts (a
//! model answered unlike its fingerprint) on a vendor's models or an evaluator's jobs.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use proctor_api::alerts::AlertView;
use proctor_api::grants::GrantView;
use proctor_api::identity::{IdentityAlertSubjectView, IdentityAlertView};
use reqwest::Method;
use serde::Serialize;

use crate::client::ServerArgs;
use crate::remote::segment;
use crate::run::{Failure, run_to_exit};

/// `proctor alerts`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AlertsArgs {
    #[command(subcommand)]
    command: Option<AlertsCommand>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// Acknowledge an alert.
    Ack(AckArgs),
    /// Reinstate a grant a usage alert suspended.
    Reinstate(AckArgs),
}

#[derive(Args)]
struct ListArgs {
    #[command(flatten)]
    server: Option<ServerArgs>,
    /// The identity alerts instead (a vendor's models', an evaluator's jobs').
    #[arg(long)]
    identity: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct AckArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The alert's id (`ack`) or the grant's (`reinstate`).
    id: String,
    /// An identity alert's id (`ack`).
    #[arg(long)]
    identity: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: AlertsArgs) -> anyhow::Result<ExitCode> {
    run_to_exit(async move {
        match args.command {
            Some(AlertsCommand::Ack(a)) if a.identity => {
                let path = format!("/v1/identity-alerts/{}/ack", segment(&a.id)?);
                let alert: IdentityAlertView =
                    a.server.client()?.call(Method::POST, &path, &()).await?;
                if a.json {
                    return print_json(&alert);
                }
                println!("{}", identity_line(&alert));
                Ok(())
            }
            Some(AlertsCommand::Ack(a)) => {
                let path = format!("/v1/alerts/{}/ack", segment(&a.id)?);
                let alert: AlertView = a.server.client()?.call(Method::POST, &path, &()).await?;
                if a.json {
                    return print_json(&alert);
                }
                println!("{}", line(&alert));
                Ok(())
            }
            Some(AlertsCommand::Reinstate(a)) if a.identity => Err(Failure::Refused(
                anyhow::anyhow!("--identity is for `ack`: an identity alert suspends no grant"),
            )),
            Some(AlertsCommand::Reinstate(a)) => {
                let path = format!("/v1/grants/{}/reinstate", segment(&a.id)?);
                let grant: GrantView = a.server.client()?.call(Method::POST, &path, &()).await?;
                if a.json {
                    return print_json(&grant);
                }
                println!("{} {}", grant.id, grant.status);
                Ok(())
            }
            None => {
                let server = args.list.server.ok_or_else(|| {
                    Failure::Refused(anyhow::anyhow!("--server (or PROCTOR_SERVER) is required"))
                })?;
                if args.list.identity {
                    let alerts: Vec<IdentityAlertView> =
                        server.client()?.get("/v1/identity-alerts").await?;
                    if args.list.json {
                        return print_json(&alerts);
                    }
                    for alert in &alerts {
                        println!("{}", identity_line(alert));
                    }
                    return Ok(());
                }
                let alerts: Vec<AlertView> = server.client()?.get("/v1/alerts").await?;
                if args.list.json {
                    return print_json(&alerts);
                }
                for alert in &alerts {
                    println!("{}", line(alert));
                }
                Ok(())
            }
        }
    })
}

/// One alert on one line: id, kind, grant, window, figures, whether it suspended the grant
/// and whether it was acknowledged.
fn line(a: &AlertView) -> String {
    let kind = serde_json::to_value(a.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let p = a
        .figures
        .p_value
        .map_or_else(|| "-".to_owned(), |p| format!("{p:.1e}"));
    format!(
        "{} {kind:12} grant {} window {}..{} current {:.3} baseline {:.3} p {p} queries {}{}{}",
        a.id,
        a.grant,
        a.window_start,
        a.window_end,
        a.figures.current,
        a.figures.baseline,
        a.figures.window_queries,
        if a.suspended { " suspended" } else { "" },
        if a.acknowledged_at.is_some() {
            " acknowledged"
        } else {
            ""
        },
    )
}

/// One identity alert on one line: id, what it reports, model, job, figures, time and
/// whether the caller acknowledged it.
fn identity_line(a: &IdentityAlertView) -> String {
    let subject = match (a.subject, a.check) {
        (IdentityAlertSubjectView::Job, _) => "job".to_owned(),
        (IdentityAlertSubjectView::Check, kind) => kind
            .and_then(|k| serde_json::to_value(k).ok())
            .and_then(|v| v.as_str().map(|k| format!("check {k}")))
            .unwrap_or_else(|| "check".to_owned()),
    };
    let p = a
        .identity
        .p_value
        .map_or_else(|| "-".to_owned(), |p| format!("{p:.4}"));
    format!(
        "{} {subject:18} model {} job {} mismatches {}/{} p {p} at {}{}",
        a.id,
        a.model,
        a.job.as_deref().unwrap_or("-"),
        a.identity.mismatches,
        a.identity.queries,
        a.at,
        if a.acknowledged_at.is_some() {
            " acknowledged"
        } else {
            ""
        },
    )
}

fn print_json<T: Serialize>(v: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Failure::Internal(e.into()))?;
    println!("{text}");
    Ok(())
}
