//! What the tests that run the real binary against a local endpoint share.

use std::net::SocketAddr;

use axum::Router;

/// A local HTTP endpoint serving `app` on a loopback port, on a runtime of its own, so the
/// test thread can block on the binary. It serves until the runtime is dropped.
pub struct Endpoint {
    pub addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl Endpoint {
    pub fn serve(app: Router, worker_threads: usize) -> Endpoint {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        let addr = listener.local_addr().expect("bound");
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Endpoint {
            addr,
            _runtime: runtime,
        }
    }
}
