//! [`shutdown_signal`], the future a server usually stops on, and the
//! drain that follows it.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;

use tracing::{info, warn};

/// A future that resolves on Ctrl-C (SIGINT), or SIGTERM on unix.
///
/// On unix the handlers are installed when this is called, not when the
/// future is first polled, so a signal sent right after start-up is caught.
/// Must be called within a tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (term, int) => {
                let e = term
                    .err()
                    .or(int.err())
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                warn!(error = %e, "cannot install the signal handlers; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        info!("shutdown requested");
    }
}

/// Waits up to `timeout` for `connections` to answer what they have read
/// and close, then aborts the rest.
pub(super) async fn drain(connections: &mut JoinSet<()>, timeout: Duration) {
    let drained = tokio::time::timeout(timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            connections = connections.len(),
            "drain timed out: aborting connections"
        );
        connections.shutdown().await;
    }
}
