//! Triad's wire contracts: the gRPC services of the agent and the coordinator (generated
//! code, committed), the gossip key schema, and the mapping from Triad error codes to gRPC
//! status. No logic lives here beyond encoding and decoding.

#![forbid(unsafe_code)]

pub mod convert;
pub mod errors;
pub mod gossip;

/// Generated prost/tonic code for `proto/triad/v1/*.proto`.
#[allow(clippy::all, missing_docs, unused_qualifications)]
pub mod v1 {
    include!("gen/triad.v1.rs");
}

/// Default ports: gossip (UDP), agent gRPC, coordinator gRPC.
pub mod ports {
    /// chitchat gossip, UDP, on the cluster address.
    pub const GOSSIP: u16 = 7420;
    /// The agent's gRPC server, on the node address.
    pub const AGENT_GRPC: u16 = 7421;
    /// The coordinator's gRPC server.
    pub const COORDINATOR_GRPC: u16 = 7422;
}
