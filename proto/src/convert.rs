//! Gossip values as the wire's messages: one place for both daemons (the agent's
//! `NodeInfo`, the coordinator's status).

use crate::gossip::{self, NodeKeys};
use crate::v1;

/// The wire's role for a gossiped role (the coordinator has none on the wire).
pub fn proto_role(role: gossip::Role) -> v1::Role {
    match role {
        gossip::Role::Core => v1::Role::Core,
        gossip::Role::Web => v1::Role::Web,
        gossip::Role::Coordinator | gossip::Role::Unknown => v1::Role::Unspecified,
    }
}

/// Each managed service's state, by name.
pub fn service_states(keys: &NodeKeys) -> Vec<v1::ServiceState> {
    keys.service_states()
        .into_iter()
        .map(|(name, state)| v1::ServiceState {
            name: name.to_string(),
            state: state.to_string(),
        })
        .collect()
}

/// The host's CPU and memory as gossiped (zero when not yet measured).
pub fn host_metrics(metrics: &gossip::MetricKeys) -> v1::HostMetrics {
    v1::HostMetrics {
        cpu_percent: metrics.cpu_percent.unwrap_or(0.0),
        mem_used_bytes: metrics.mem_used_bytes.unwrap_or(0),
        mem_total_bytes: metrics.mem_total_bytes.unwrap_or(0),
    }
}
