//! What the agent's service modules share: the node's identity, its gossip keys as the
//! modules publish them ([`AgentState`]), and the loop shape every module runs in
//! ([`every`]). Kept apart from `runtime` (which starts the modules) so that no module
//! imports the code that starts it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use triad_proto::gossip::{NodeKeys, Role};

use crate::readiness::{not_ready_reason, ReadinessCheck};

/// Node maintenance's file in the agent's state directory (its reason): read by the
/// Galera module before its first pass (a node rebooted in maintenance must not start
/// mysqld even once) and written by the `Maintenance` RPC.
pub const MAINTENANCE_FILE: &str = "maintenance";

/// What does not change while this agent process runs.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub node_id: String,
    pub role: Role,
    pub address: std::net::IpAddr,
    pub gossip_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub generation: u64,
    pub version: String,
    pub started_at: Instant,
}

/// The node's current keys, shared between the main loop and the gRPC server. The
/// watch notifies readers (the gRPC event stream) of changes other than heartbeats and
/// metrics.
#[derive(Debug)]
pub struct AgentState {
    pub identity: NodeIdentity,
    pub readiness: Vec<ReadinessCheck>,
    keys: watch::Sender<NodeKeys>,
}

impl AgentState {
    pub fn new(
        identity: NodeIdentity,
        readiness: Vec<ReadinessCheck>,
        initial: NodeKeys,
    ) -> AgentState {
        AgentState {
            identity,
            readiness,
            keys: watch::channel(initial).0,
        }
    }

    pub fn keys(&self) -> NodeKeys {
        self.keys.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<NodeKeys> {
        self.keys.subscribe()
    }

    /// Apply `change` to the keys and recompute readiness. Readers are woken only when
    /// something besides the heartbeat and metrics changed.
    pub fn update(&self, change: impl FnOnce(&mut NodeKeys)) {
        self.keys.send_if_modified(|keys| {
            let before = keys.clone();
            change(keys);
            keys.ready_reason = not_ready_reason(keys, &self.readiness);
            keys.ready = keys.ready_reason.is_none();
            significant_change(&before, keys)
        });
    }
}

fn significant_change(before: &NodeKeys, after: &NodeKeys) -> bool {
    let mut a = before.clone();
    let mut b = after.clone();
    a.heartbeat = None;
    b.heartbeat = None;
    a.metrics = Default::default();
    b.metrics = Default::default();
    a != b
}

/// Run `tick` every `interval` (a late tick is delayed, never bunched) until `stop` changes:
/// the loop shape of every service module.
pub async fn every<F, Fut>(interval: Duration, mut stop: watch::Receiver<bool>, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => tick().await,
            _ = stop.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_and_metrics_alone_are_not_significant() {
        let before = NodeKeys::default();
        let mut after = before.clone();
        after.heartbeat = Some(9);
        after.metrics.cpu_percent = Some(3.0);
        assert!(!significant_change(&before, &after));
        after.draining = true;
        assert!(significant_change(&before, &after));
    }
}
