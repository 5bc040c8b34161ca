//! The operator's commands (admin): `proctor account create|list` and
//! `proctor account token create|list|revoke`, over the service's account routes.
//!
//! A token's secret is printed once, by the command that made it: the service keeps only its
//! sha256.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use proctor_api::accounts::{
    AccountView, CreatedToken, NewAccount, NewToken, Role, Tier, TokenView,
};
use reqwest::Method;
use serde::Serialize;

use crate::client::{Body, Client, ServerArgs};
use crate::remote::segment;
use crate::run::{Failure, run_to_exit};

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Create an account and its first token; the token is printed once.
    Create(CreateArgs),
    /// Every account, oldest first.
    List(ListArgs),
    /// Make, list and revoke an account's tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make a new token for an account; its secret is printed once, alone on stdout.
    Create(TokenCreateArgs),
    /// An account's tokens (never their secrets), revoked ones included.
    List(TokenListArgs),
    /// Revoke a token: the next request that presents it is answered 401.
    Revoke(TokenRevokeArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
    Vendor,
    Evaluator,
    Regulator,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Admin => Role::Admin,
            RoleArg::Vendor => Role::Vendor,
            RoleArg::Evaluator => Role::Evaluator,
            RoleArg::Regulator => Role::Regulator,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum TierArg {
    Academic,
    Auditor,
    Regulator,
    Commercial,
}

impl From<TierArg> for Tier {
    fn from(tier: TierArg) -> Tier {
        match tier {
            TierArg::Academic => Tier::Academic,
            TierArg::Auditor => Tier::Auditor,
            TierArg::Regulator => Tier::Regulator,
            TierArg::Commercial => Tier::Commercial,
        }
    }
}

#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The account's unique name (A-Z a-z 0-9 - _ .).
    name: String,
    /// What the account may do.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// An evaluator's tier (required for evaluators, refused for other roles).
    #[arg(long, value_enum)]
    tier: Option<TierArg>,
    /// Create the account without a token.
    #[arg(long)]
    no_token: bool,
    /// Print the account (and its token) as one JSON object.
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
pub struct TokenCreateArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The account's id.
    account: String,
    /// A label for the token, shown by `proctor account token list`.
    #[arg(long, alias = "label", default_value = "")]
    name: String,
    /// Print the token (secret included) as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct TokenListArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The account's id.
    account: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct TokenRevokeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The token's id (as `proctor account token create` or `token list` shows it).
    id: String,
}

pub fn run(cmd: AccountCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AccountCommand::Create(args) => run_to_exit(create(args)),
        AccountCommand::List(args) => run_to_exit(list(args)),
        AccountCommand::Token(TokenCommand::Create(args)) => run_to_exit(token_create(args)),
        AccountCommand::Token(TokenCommand::List(args)) => run_to_exit(token_list(args)),
        AccountCommand::Token(TokenCommand::Revoke(args)) => run_to_exit(token_revoke(args)),
    }
}

/// `proctor account create --json`: the account and, unless `--no-token`, its first token.
#[derive(Serialize)]
struct Created {
    account: AccountView,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<CreatedToken>,
}

async fn create(args: CreateArgs) -> Result<(), Failure> {
    let body = NewAccount {
        name: args.name,
        role: args.role.into(),
        tier: args.tier.map(Tier::from),
    };
    let client = args.server.client()?;
    let account: AccountView = client.call(Method::POST, "/v1/accounts", &body).await?;
    let id = account.id.clone();
    // The account route makes no token; the first one is made here, so the operator has
    // something to hand over. Should this second call fail, the account exists: say so.
    let token = if args.no_token {
        None
    } else {
        Some(new_token(&client, &id, "first").await.map_err(|e| {
            let context = format!(
                "account {id} was created, but its token was not (retry with `proctor account token create {id}`)"
            );
            match e {
                Failure::Refused(e) => Failure::Refused(e.context(context)),
                Failure::Internal(e) => Failure::Internal(e.context(context)),
            }
        })?)
    };
    if args.json {
        return print_json(&Created { account, token });
    }
    println!("account   {id}");
    println!("name      {}", account.name);
    println!("role      {}", role_of(&account));
    if let Some(token) = token {
        println!("token id  {}", token.info.id);
        println!("token     {}", token.token);
        eprintln!("the token is shown once: keep it now");
    }
    Ok(())
}

async fn list(args: ListArgs) -> Result<(), Failure> {
    let accounts: Vec<AccountView> = args.server.client()?.get("/v1/accounts").await?;
    if args.json {
        return print_json(&accounts);
    }
    println!("{:36}  {:24}  {:20}  created", "account", "name", "role");
    for a in &accounts {
        println!(
            "{:36}  {:24}  {:20}  {}",
            a.id,
            a.name,
            role_of(a),
            a.created_at
        );
    }
    Ok(())
}

async fn token_create(args: TokenCreateArgs) -> Result<(), Failure> {
    let client = args.server.client()?;
    let token = new_token(&client, &args.account, &args.name).await?;
    if args.json {
        return print_json(&token);
    }
    // The secret alone on stdout, so a script can capture it; what it is on stderr.
    println!("{}", token.token);
    eprintln!(
        "token {} of account {}; the secret is shown once: keep it now",
        token.info.id, token.info.account
    );
    Ok(())
}

async fn token_list(args: TokenListArgs) -> Result<(), Failure> {
    let path = format!("/v1/accounts/{}/tokens", segment(&args.account)?);
    let tokens: Vec<TokenView> = args.server.client()?.get(&path).await?;
    if args.json {
        return print_json(&tokens);
    }
    println!("{:36}  {:24}  {:24}  revoked", "token", "label", "created");
    for t in &tokens {
        println!(
            "{:36}  {:24}  {:24}  {}",
            t.id,
            t.label,
            t.created_at,
            t.revoked_at.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

async fn token_revoke(args: TokenRevokeArgs) -> Result<(), Failure> {
    let path = format!("/v1/tokens/{}", segment(&args.id)?);
    // 204: no body to read.
    args.server
        .client()?
        .send(Method::DELETE, &path, Body::None)
        .await?;
    println!("revoked token {}", args.id);
    Ok(())
}

/// `POST /v1/accounts/{id}/tokens`: the token's metadata and, this once, its secret.
async fn new_token(client: &Client, account: &str, label: &str) -> Result<CreatedToken, Failure> {
    let path = format!("/v1/accounts/{}/tokens", segment(account)?);
    let body = NewToken {
        label: label.to_owned(),
    };
    client.call(Method::POST, &path, &body).await
}

/// `vendor`, or `evaluator (academic)`.
fn role_of(account: &AccountView) -> String {
    match account.tier {
        Some(tier) => format!("{} ({tier})", account.role),
        None => account.role.to_string(),
    }
}

fn print_json<T: Serialize>(v: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Failure::Internal(e.into()))?;
    println!("{text}");
    Ok(())
}
