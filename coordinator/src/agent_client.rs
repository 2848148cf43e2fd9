//! One way to reach an agent's gRPC server, for every loop that calls agents (recovery,
//! volume, balancer confirmation, autoscaling): a fresh channel per call, bounded connect
//! and call times, and an error that names the agent. With `[tls]` the channel is mutual
//! TLS: the coordinator's certificate identifies it, and the agent must prove it is the
//! node the coordinator meant (its certificate names the node id gossip announced).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use triad_daemon::tls::{error_chain, TlsFiles};
use triad_proto::v1::agent_service_client::AgentServiceClient;

static TLS: OnceLock<Option<TlsFiles>> = OnceLock::new();

/// Set once at start from `[tls]` (None: plaintext). Files are read at every connect, so a
/// renewed certificate is used without a restart.
pub fn set_tls(files: Option<TlsFiles>) {
    let _ = TLS.set(files);
}

pub async fn connect(
    node: &str,
    grpc: SocketAddr,
    connect_timeout: Duration,
    call_timeout: Duration,
) -> Result<AgentServiceClient<tonic::transport::Channel>, String> {
    let tls = TLS.get().cloned().flatten();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{grpc}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(connect_timeout)
        .timeout(call_timeout);
    if let Some(files) = tls {
        let config = files.client_config(node).map_err(|e| e.to_string())?;
        endpoint = endpoint
            .tls_config(config)
            .map_err(|e| format!("TLS toward {node} at {grpc}: {e}"))?;
    }
    let channel = endpoint.connect().await.map_err(|e| {
        format!(
            "cannot reach the agent of {node} at {grpc}: {}",
            error_chain(&e)
        )
    })?;
    Ok(AgentServiceClient::new(channel))
}
