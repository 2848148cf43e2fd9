//! Test helpers (feature `testsuite`): configs for in-process clusters and bounded waits
//! that say what they awaited when they time out.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use triad_proto::gossip::Role;

use crate::config::AgentConfig;
use triad_cluster::membership::GossipSettings;

/// The gossip address of in-process node `index` (1-based): 127.0.1.index:7420.
pub fn node_gossip_addr(index: u8) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 1, index)),
        triad_proto::ports::GOSSIP,
    )
}

/// A config for in-process node `n{index}` with the given seed indexes and no required
/// services (so readiness follows draining only).
pub fn agent_config_for_test(index: u8, seeds: &[SocketAddr]) -> AgentConfig {
    let gossip_addr = node_gossip_addr(index);
    AgentConfig {
        node_id: format!("n{index}"),
        role: Role::Core,
        address: gossip_addr.ip(),
        cluster_name: "test".into(),
        seeds: seeds.iter().map(|s| s.to_string()).collect(),
        gossip: GossipSettings {
            sampling_window: 100,
            ..GossipSettings::production(gossip_addr)
        },
        grpc_listen: SocketAddr::new(gossip_addr.ip(), triad_proto::ports::AGENT_GRPC),
        heartbeat_interval: Duration::from_secs(1),
        readiness: vec![],
        state_dir: std::env::temp_dir().join(format!("triad-test-n{index}")),
        apache: crate::apache::driver::ApacheSettings {
            managed: false,
            ..Default::default()
        },
        galera: crate::galera::GaleraSettings {
            managed: false,
            ..crate::galera::GaleraSettings::defaults("test")
        },
        gluster: crate::gluster::driver::GlusterSettings {
            managed: false,
            ..Default::default()
        },
        mount: crate::mount::MountSettings {
            managed: false,
            ..Default::default()
        },
        tls: None,
    }
}

/// Poll `check` every `poll` until it returns `Ok(T)` or `timeout` passes; the error names
/// `what` and the last reason `check` gave.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut check: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(value) => return Ok(value),
            Err(reason) => reason,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "timed out after {timeout:?} waiting for {what}; last seen: {last}"
            ));
        }
        tokio::time::sleep(poll).await;
    }
}
