//! One way to reach an agent's gRPC server, for every loop that calls agents (recovery,
//! volume, balancer confirmation, autoscaling): a fresh channel per call, bounded connect
//! and call times, and one typed error ([`AgentError`]: refused, unavailable or failed, by
//! the gRPC code table of `triad_proto::errors`). With `[tls]` the channel is mutual
//! TLS: the coordinator's certificate identifies it, and the agent must prove it is the
//! node the coordinator meant (its certificate names the node id gossip announced).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use triad_daemon::tls::{client_endpoint, error_chain, TlsFiles};
use triad_proto::errors::ErrorKind;
use triad_proto::v1::agent_service_client::AgentServiceClient;

/// A call to an agent that did not succeed: whose, what kind, and the one-line reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct AgentError {
    pub node: String,
    pub kind: ErrorKind,
    pub message: String,
}

impl AgentError {
    pub fn new(node: &str, kind: ErrorKind, message: impl Into<String>) -> AgentError {
        AgentError {
            node: node.to_string(),
            kind,
            message: message.into(),
        }
    }

    /// The agent's answer, read by its code.
    pub fn from_status(node: &str, status: &tonic::Status) -> AgentError {
        AgentError::new(node, ErrorKind::of(status.code()), status.message())
    }

    /// The agent's own rules refused the call (it was reached and said no).
    pub fn is_refused(&self) -> bool {
        self.kind == ErrorKind::Refused
    }
}

/// The reply of a unary call, or the agent's error read by its code.
pub fn answer<T>(
    node: &str,
    reply: Result<tonic::Response<T>, tonic::Status>,
) -> Result<T, AgentError> {
    reply
        .map(tonic::Response::into_inner)
        .map_err(|status| AgentError::from_status(node, &status))
}

/// `call` bounded by `limit` (for calls that may outlast the channel's own timeout).
pub async fn within<T>(
    node: &str,
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, AgentError>>,
) -> Result<T, AgentError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(AgentError::new(
            node,
            ErrorKind::Unavailable,
            format!("no answer from {node} within {limit:?}"),
        ))
    })
}

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
) -> Result<AgentServiceClient<tonic::transport::Channel>, AgentError> {
    connect_with(node, grpc, connect_timeout, call_timeout, None).await
}

/// [`connect`] for a long stream (a backup): HTTP/2 pings every `keepalive`, so a node
/// that vanished without a reset (a crash, a cut) ends the call after about two
/// `keepalive`s instead of TCP's many minutes.
pub async fn connect_streaming(
    node: &str,
    grpc: SocketAddr,
    connect_timeout: Duration,
    call_timeout: Duration,
    keepalive: Duration,
) -> Result<AgentServiceClient<tonic::transport::Channel>, AgentError> {
    connect_with(node, grpc, connect_timeout, call_timeout, Some(keepalive)).await
}

async fn connect_with(
    node: &str,
    grpc: SocketAddr,
    connect_timeout: Duration,
    call_timeout: Duration,
    keepalive: Option<Duration>,
) -> Result<AgentServiceClient<tonic::transport::Channel>, AgentError> {
    let unavailable = |message: String| AgentError::new(node, ErrorKind::Unavailable, message);
    let tls = TLS.get().cloned().flatten();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = client_endpoint(
        &format!("{scheme}://{grpc}"),
        tls.as_ref(),
        node,
        connect_timeout,
        Some(call_timeout),
    )
    .map_err(|message| AgentError::new(node, ErrorKind::Failed, message))?;
    let endpoint = match keepalive {
        Some(every) => endpoint
            .http2_keep_alive_interval(every)
            .keep_alive_timeout(every)
            .keep_alive_while_idle(true),
        None => endpoint,
    };
    let channel = endpoint.connect().await.map_err(|e| {
        unavailable(format!(
            "cannot reach the agent of {node} at {grpc}: {}",
            error_chain(&e)
        ))
    })?;
    Ok(AgentServiceClient::new(channel))
}
