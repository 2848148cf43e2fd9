//! The coordinator's status answer (`v1::ClusterStatus`), built from the cluster view;
//! `triadctl` renders it (`triadctl::report`).

use tokio::time::Instant;
use triad_proto::v1;

use crate::view::ClusterView;

/// Build the gRPC answer from the view.
pub fn cluster_status(
    galera: &str,
    cluster_name: &str,
    view: &ClusterView,
    observing_secs: u64,
    now: Instant,
) -> v1::ClusterStatus {
    let nodes = view
        .members()
        .map(|member| v1::NodeView {
            node_id: member.node_id.clone(),
            generation: member.generation,
            gossip_addr: member.gossip_addr.to_string(),
            grpc_addr: member.keys.grpc.map(|a| a.to_string()).unwrap_or_default(),
            role: triad_proto::convert::proto_role(member.keys.role) as i32,
            live: member.live,
            ready: member.keys.ready,
            draining: member.keys.draining,
            maintenance: member.keys.maintenance.clone().unwrap_or_default(),
            services: triad_proto::convert::service_states(&member.keys),
            heartbeat_age_ms: member.heartbeat_age(now).map(|age| age.as_millis() as u64),
            agent_version: member.keys.version.clone().unwrap_or_default(),
            metrics: Some(triad_proto::convert::host_metrics(&member.keys.metrics)),
            decode_errors: member.decode_errors.clone(),
            schema_version: member.keys.schema,
            // a reason published while not ready may linger in gossip after the node turned
            // ready; it means nothing then
            not_ready_reason: member
                .keys
                .ready_reason
                .clone()
                .filter(|_| !member.keys.ready)
                .unwrap_or_default(),
        })
        .collect();
    v1::ClusterStatus {
        galera: galera.to_string(),
        cluster_name: cluster_name.to_string(),
        coordinator_version: env!("CARGO_PKG_VERSION").to_string(),
        nodes,
        observing_secs,
        ..Default::default()
    }
}
