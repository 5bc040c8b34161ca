//! The real service on a loopback port: `Server::start` and `proctor_server::serve`, as
//! `proctor serve` runs them, with `proctor serve`'s defaults, on a runtime and thread of its
//! own so that the bench's client side does not share its scheduler.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use anyhow::Context;
use proctor_server::{Config, Server};
use tokio::sync::oneshot;

use crate::database::Database;

/// A running service.
pub struct Service {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://ADDR`.
    pub base: String,
    /// The first admin's token.
    pub admin_token: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _data: tempfile::TempDir,
}

type Started = anyhow::Result<(SocketAddr, String)>;

impl Service {
    /// Starts the service over `db` with a fresh data directory, `proctor serve`'s defaults
    /// (two workers, the service's engine, its connection limits and quotas) and `threads`
    /// runtime threads.
    pub async fn start(db: &Database, threads: usize) -> anyhow::Result<Service> {
        let data = tempfile::tempdir()?;
        let config = Config::new(&db.url, data.path());
        let (ready_tx, ready_rx) = oneshot::channel::<Started>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("service".into())
            .spawn(move || serve(config, threads, ready_tx, stop_rx))?;
        let (addr, admin_token) = ready_rx
            .await
            .context("the service's thread ended during start-up")??;
        Ok(Service {
            addr,
            base: format!("http://{addr}"),
            admin_token,
            stop: Some(stop_tx),
            thread: Some(thread),
            _data: data,
        })
    }

    /// Stops serving, then the workers, and waits for the service's thread.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join())
                .await?
                .map_err(|_| anyhow::anyhow!("the service's thread panicked"))?;
        }
        Ok(())
    }
}

/// The service's thread: its runtime, the server, the listener, until `stop`.
fn serve(
    config: Config,
    threads: usize,
    ready: oneshot::Sender<Started>,
    stop: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("service-worker")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = ready.send(Err(err.into()));
            return;
        }
    };
    runtime.block_on(async move {
        let started = async {
            let server = Server::start(config).await?;
            let admin = server
                .admin_token
                .clone()
                .context("a fresh database creates the first admin")?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            anyhow::Ok((server, listener, admin))
        }
        .await;
        let (server, listener, admin) = match started {
            Ok(started) => started,
            Err(err) => {
                let _ = ready.send(Err(err));
                return;
            }
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(err) => {
                let _ = ready.send(Err(err.into()));
                server.shutdown().await;
                return;
            }
        };
        let serving = tokio::spawn(proctor_server::serve(
            listener,
            server.router(),
            server.state.config.connections,
            async {
                let _ = stop.await;
            },
        ));
        let _ = ready.send(Ok((addr, admin)));
        let _ = serving.await;
        server.shutdown().await;
    });
}
