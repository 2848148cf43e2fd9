//! The agent calls recovery makes: the `Agents` port (gRPC in production, direct calls in
//! the simulations), with errors typed by `agent_client`.

use std::net::SocketAddr;
use std::time::Duration;

use triad_galera::position::Position;
use triad_proto::v1;
use triad_proto::v1::agent_service_client::AgentServiceClient;

use super::election::Report;
use crate::agent_client::{self, answer, within, AgentError};

/// A position as an agent reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionAnswer {
    pub report: Report,
    /// "live" when the node runs in a Primary component.
    pub source: String,
    /// A stopped node's saved Primary view (gvwstate.dat, gossip form), if any.
    pub saved_view: Option<String>,
    /// The agent's gossip generation (0: an agent too old to say).
    pub generation: u64,
}

/// The agent calls recovery makes; gRPC in production, a fake in simulations.
#[async_trait::async_trait]
pub trait Agents: Send + Sync {
    async fn position(
        &self,
        node: &str,
        grpc: SocketAddr,
        stop_if_not_primary: bool,
    ) -> Result<PositionAnswer, AgentError>;
    async fn bootstrap(
        &self,
        node: &str,
        grpc: SocketAddr,
        epoch: u64,
        position: &Position,
    ) -> Result<String, AgentError>;
    /// A refusal ([`AgentError::is_refused`]) means the agent checked and did not act (its
    /// position differs, a peer is Primary, the epoch is old): the decision may be
    /// replaced. Any other error may have acted (mysqld started and failed): retry the
    /// same decision.
    async fn join(&self, node: &str, grpc: SocketAddr, epoch: u64) -> Result<String, AgentError>;
    /// The fast path: start `node`'s mysqld for Galera's pc.recovery to re-form `view`
    /// (`<view uuid>:<seq>`); refused when the node did not save that view.
    async fn reform(&self, node: &str, grpc: SocketAddr, view: &str) -> Result<String, AgentError>;
}

/// Agents over gRPC, one short-lived connection per call.
#[derive(Debug, Clone)]
pub struct GrpcAgents {
    pub timeout: Duration,
}

impl GrpcAgents {
    async fn client(
        &self,
        node: &str,
        grpc: SocketAddr,
    ) -> Result<AgentServiceClient<tonic::transport::Channel>, AgentError> {
        // a position may need --wsrep-recover or stopping a hung mysqld first
        agent_client::connect(node, grpc, self.timeout, Duration::from_secs(60)).await
    }
}

#[async_trait::async_trait]
impl Agents for GrpcAgents {
    async fn position(
        &self,
        node: &str,
        grpc: SocketAddr,
        stop_if_not_primary: bool,
    ) -> Result<PositionAnswer, AgentError> {
        let mut client = self.client(node, grpc).await?;
        let request = v1::GaleraPositionRequest {
            stop_if_not_primary,
        };
        let reply = answer(node, client.galera_position(request).await)?;
        Ok(PositionAnswer {
            report: Report {
                position: Position {
                    uuid: reply.uuid,
                    seqno: reply.seqno,
                },
                safe_to_bootstrap: reply.safe_to_bootstrap,
            },
            source: reply.source,
            saved_view: Some(reply.saved_view).filter(|v| !v.is_empty()),
            generation: reply.generation,
        })
    }

    async fn bootstrap(
        &self,
        node: &str,
        grpc: SocketAddr,
        epoch: u64,
        position: &Position,
    ) -> Result<String, AgentError> {
        let request = v1::BootstrapRequest {
            epoch,
            expected: Some(v1::GaleraPosition {
                uuid: position.uuid.clone(),
                seqno: position.seqno,
                ..v1::GaleraPosition::default()
            }),
        };
        // a bootstrap waits for mysqld to start: allow more than one RPC timeout
        let mut client = self.client(node, grpc).await?;
        within(node, Duration::from_secs(150), async {
            answer(node, client.bootstrap(request).await).map(|reply| reply.message)
        })
        .await
    }

    async fn join(&self, node: &str, grpc: SocketAddr, epoch: u64) -> Result<String, AgentError> {
        let mut client = self.client(node, grpc).await?;
        let request = v1::JoinRequest {
            epoch,
            pc_recovery_view: String::new(),
        };
        answer(node, client.join(request).await).map(|reply| reply.message)
    }

    async fn reform(&self, node: &str, grpc: SocketAddr, view: &str) -> Result<String, AgentError> {
        let mut client = self.client(node, grpc).await?;
        let request = v1::JoinRequest {
            epoch: 0,
            pc_recovery_view: view.to_string(),
        };
        answer(node, client.join(request).await).map(|reply| reply.message)
    }
}
