//! A small HTTP client for the Proctor service: where the server is (`--server` or
//! `PROCTOR_SERVER`), who is calling (`PROCTOR_TOKEN` or `--token-file`), and the one mapping
//! from the service's `{"error": {"code", "message"}}` to a command's exit status: a refusal
//! (4xx) is a [`Failure::Refused`] (exit 2), a server failure (5xx) or a connection that fails
//! is a [`Failure::Internal`] (exit 1). Either is one line.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use proctor_api::ErrorBody;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::run::Failure;

/// The environment variable naming the server.
pub const SERVER_ENV: &str = "PROCTOR_SERVER";
/// The environment variable holding the caller's token.
pub const TOKEN_ENV: &str = "PROCTOR_TOKEN";

/// Where the service is and who calls it; flattened into every client command.
#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The service's base URL, e.g. `http://127.0.0.1:8080`.
    #[arg(long, env = SERVER_ENV, value_name = "URL")]
    server: String,
    /// A file holding the bearer token (instead of `PROCTOR_TOKEN`).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

impl ServerArgs {
    /// A client for these arguments. The token file wins over the environment: it was named
    /// on this command line.
    pub fn client(&self) -> Result<Client, Failure> {
        let token = match &self.token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the token file {}", path.display()))?;
                Some(text.trim().to_owned())
            }
            None => std::env::var(TOKEN_ENV)
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty()),
        };
        Client::new(&self.server, token)
    }
}

/// A request body.
pub enum Body {
    None,
    /// Serialized JSON.
    Json(Vec<u8>),
    Bytes(Vec<u8>),
}

/// One service, one caller.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Result<Client, Failure> {
        let base = server.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(anyhow::anyhow!("--server must be an http:// or https:// URL").into());
        }
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| Failure::Internal(e.into()))?;
        Ok(Client { http, base, token })
    }

    /// The same service, as another caller (the demo acts as several accounts).
    pub fn with_token(&self, token: &str) -> Client {
        Client {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// Sends one request; returns the body of a 2xx answer, or the answer's error as a
    /// [`Failure`].
    pub async fn send(&self, method: Method, path: &str, body: Body) -> Result<Vec<u8>, Failure> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(v),
            Body::Bytes(b) => req
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(b),
        };
        let response = req.send().await.map_err(|e| {
            // reqwest's Display omits the cause ("error sending request"); the chain names it.
            Failure::Internal(anyhow::Error::new(e).context(format!("cannot reach {}", self.base)))
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            Failure::Internal(anyhow::Error::new(e).context(format!("reading {method} {path}")))
        })?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(api_failure(status, &bytes, &method, path))
    }

    /// `GET path`, read as the API type `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        typed(&self.send(Method::GET, path, Body::None).await?, path)
    }

    /// `method path` with the JSON of `body`, read as the API type `T`.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, Failure> {
        let body = serde_json::to_vec(body).map_err(|e| Failure::Internal(e.into()))?;
        typed(&self.send(method, path, Body::Json(body)).await?, path)
    }

    /// `POST path` with raw bytes (an upload), read as the API type `T`.
    pub async fn upload<T: DeserializeOwned>(
        &self,
        path: &str,
        bytes: Vec<u8>,
    ) -> Result<T, Failure> {
        typed(
            &self.send(Method::POST, path, Body::Bytes(bytes)).await?,
            path,
        )
    }

    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, Failure> {
        self.send(Method::GET, path, Body::None).await
    }
}

/// An answer read as the API type it is described with; one that is not is the server's
/// failure (or a client older than the server), never the caller's.
fn typed<T: DeserializeOwned>(bytes: &[u8], path: &str) -> Result<T, Failure> {
    serde_json::from_slice(bytes)
        .with_context(|| format!("the server's answer to {path} is not what its API describes"))
        .map_err(Failure::Internal)
}

/// The service's error shape as one line; a body in another shape (a proxy's page) is named by
/// its status only, since its text may be long or hold markup.
fn api_failure(status: StatusCode, body: &[u8], method: &Method, path: &str) -> Failure {
    let parsed = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| (b.error.code, b.error.message));
    let line = match parsed {
        Some((code, message)) => {
            // One line, whatever the message holds.
            let message = message.replace(['\n', '\r'], " ");
            format!("{method} {path}: {} {code}: {message}", status.as_u16())
        }
        None => format!("{method} {path}: HTTP {status}"),
    };
    if status.is_server_error() {
        Failure::Internal(anyhow::anyhow!(line))
    } else {
        Failure::Refused(anyhow::anyhow!(line))
    }
}
