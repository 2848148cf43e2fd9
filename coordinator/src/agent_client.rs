//! One way to reach an agent's gRPC server, for every loop that calls agents (recovery,
//! volume, balancer confirmation): a fresh channel per call, bounded connect and call times,
//! and an error that names the agent's address.

use std::net::SocketAddr;
use std::time::Duration;

use triad_proto::v1::agent_service_client::AgentServiceClient;

pub async fn connect(
    grpc: SocketAddr,
    connect_timeout: Duration,
    call_timeout: Duration,
) -> Result<AgentServiceClient<tonic::transport::Channel>, String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(connect_timeout)
        .timeout(call_timeout)
        .connect()
        .await
        .map_err(|e| format!("cannot reach the agent at {grpc}: {e}"))?;
    Ok(AgentServiceClient::new(channel))
}
