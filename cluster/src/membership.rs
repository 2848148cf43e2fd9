//! A typed membership façade over chitchat: the only module that touches chitchat.
//!
//! Agents and the coordinator join the same gossip cluster through [`Membership`]. A node
//! publishes its typed [`NodeKeys`]; readers get [`ObservedMember`]s with decoded keys and
//! the decode errors of values that did not parse (reported, never fatal).
//!
//! The generation id is the process start time, so a restarted agent is a new generation of
//! the same node id; deduplicating generations is the reader's job (the coordinator's view
//! keeps the highest generation per node id).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::transport::Transport;
use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, NodeState,
    ProtocolVersion,
};
use tokio::sync::watch;
use triad_proto::gossip::{keys, DecodeError, NodeKeys};

/// Gossip tuning. The defaults aim at detecting a dead node within about 2 s
/// (design section 7): at a 200 ms interval chitchat's phi detector (phi = elapsed / mean
/// interval) convicts after about `phi_threshold` × the observed mean heartbeat interval.
#[derive(Debug, Clone, PartialEq)]
pub struct GossipSettings {
    pub listen: SocketAddr,
    pub advertise: SocketAddr,
    pub interval: Duration,
    pub phi_threshold: f64,
    /// How long a dead node stays listed (as dead) before it is forgotten.
    pub dead_node_grace: Duration,
    /// Samples kept per observed node by the failure detector (8 bytes each).
    pub sampling_window: usize,
    /// Tombstoned keys are kept this long before garbage collection.
    pub marked_for_deletion_grace: Duration,
    /// Chitchat's protocol V1: the digest (one entry per known node, sent in every SYN and
    /// SYN-ACK) is zstd-compressed. Every chitchat 0.13 decodes both versions and answers a
    /// SYN in the version it came in, so nodes with either setting gossip together.
    pub compressed_digest: bool,
}

impl GossipSettings {
    pub fn production(listen: SocketAddr) -> GossipSettings {
        GossipSettings {
            listen,
            advertise: listen,
            interval: Duration::from_millis(200),
            phi_threshold: 8.0,
            dead_node_grace: Duration::from_secs(3600),
            sampling_window: 200,
            marked_for_deletion_grace: Duration::from_secs(900),
            // Off for the clusters most run (3 to a few tens of nodes): compressing every
            // digest with a fresh zstd context cost each node about 0.3 % of a core (the
            // coordinator 0.67 -> 0.93 % with 3 nodes in bench-volume) to save 1.3 KB/s.
            // At 100 nodes the uncompressed digest is most of gossip's bytes: 135 KB/s per
            // node against 22 KB/s compressed (`make bench-gossip`): `[gossip]
            // compressed_digest = true` there.
            compressed_digest: false,
        }
    }
}

/// Everything needed to join the gossip cluster.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    pub node_id: String,
    pub generation: u64,
    /// Separates clusters sharing a network: peers with another id are refused.
    pub cluster_id: String,
    pub seeds: Vec<String>,
    pub settings: GossipSettings,
}

/// A generation id from the wall clock: nanoseconds since the epoch at process start.
pub fn generation_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("cannot start gossip on {listen}: {source}")]
    Start {
        listen: SocketAddr,
        source: anyhow::Error,
    },
}

/// One member as seen through gossip.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedMember {
    pub node_id: String,
    pub generation: u64,
    pub gossip_addr: SocketAddr,
    /// Per chitchat's failure detector (self is always live).
    pub live: bool,
    pub is_self: bool,
    pub keys: NodeKeys,
    pub decode_errors: Vec<DecodeError>,
}

/// The façade. Dropping it stops gossip; prefer [`Membership::shutdown`].
pub struct Membership {
    handle: ChitchatHandle,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("id", self.handle.chitchat_id())
            .finish()
    }
}

impl Membership {
    /// Join the cluster, publishing `initial` at once.
    pub async fn join(
        config: MembershipConfig,
        initial: &NodeKeys,
        transport: &dyn Transport,
    ) -> Result<Membership, MembershipError> {
        let settings = &config.settings;
        let chitchat_id = ChitchatId::new(
            config.node_id.clone(),
            config.generation,
            settings.advertise,
        );
        let failure_detector_config = FailureDetectorConfig {
            phi_threshold: settings.phi_threshold,
            sampling_window_size: settings.sampling_window,
            max_interval: Duration::from_secs(10),
            initial_interval: settings.interval,
            dead_node_grace_period: settings.dead_node_grace,
        };
        let chitchat_config = ChitchatConfig {
            chitchat_id,
            cluster_id: config.cluster_id.clone(),
            gossip_interval: settings.interval,
            listen_addr: settings.listen,
            seed_nodes: config.seeds.clone(),
            failure_detector_config,
            marked_for_deletion_grace_period: settings.marked_for_deletion_grace,
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: if settings.compressed_digest {
                ProtocolVersion::V1
            } else {
                ProtocolVersion::V0
            },
        };
        let initial_kvs: Vec<(String, String)> = initial
            .encode()
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect();
        let handle = spawn_chitchat(chitchat_config, initial_kvs, transport)
            .await
            .map_err(|source| MembershipError::Start {
                listen: settings.listen,
                source,
            })?;
        Ok(Membership { handle })
    }

    pub fn node_id(&self) -> &str {
        &self.handle.chitchat_id().node_id
    }

    pub fn generation(&self) -> u64 {
        self.handle.chitchat_id().generation_id
    }

    pub fn gossip_addr(&self) -> SocketAddr {
        self.handle.chitchat_id().gossip_advertise_addr
    }

    /// Publish this node's keys. Unchanged values are not re-versioned; keys whose value
    /// became unknown are deleted so peers do not keep a stale value.
    pub async fn publish(&self, node_keys: &NodeKeys) {
        let encoded = node_keys.encode();
        self.handle
            .with_chitchat(|chitchat| {
                let state = chitchat.self_node_state();
                for (key, value) in &encoded {
                    state.set(*key, value);
                }
                for key in keys::ALL {
                    let still_published = encoded.iter().any(|(k, _)| k == key);
                    if !still_published && state.contains_key(key) {
                        state.delete(key);
                    }
                }
            })
            .await;
    }

    /// Every member chitchat knows (live and dead, every generation), decoded.
    pub async fn members(&self) -> Vec<ObservedMember> {
        self.handle
            .with_chitchat(|chitchat| {
                let self_id = chitchat.self_chitchat_id().clone();
                let live: std::collections::HashSet<ChitchatId> =
                    chitchat.live_nodes().cloned().collect();
                chitchat
                    .node_states()
                    .iter()
                    .map(|(id, state)| observe(id, state, live.contains(id), *id == self_id))
                    .collect()
            })
            .await
    }

    /// How many other nodes the failure detector holds live.
    pub async fn live_peer_count(&self) -> usize {
        self.handle
            .with_chitchat(|chitchat| chitchat.live_nodes().count().saturating_sub(1))
            .await
    }

    /// A watch that changes when the live set or a live node's keys change (not on
    /// heartbeats): a wake-up signal for readers.
    pub async fn change_watcher(
        &self,
    ) -> watch::Receiver<std::collections::BTreeMap<ChitchatId, NodeState>> {
        self.handle
            .with_chitchat(|chitchat| chitchat.live_nodes_watcher())
            .await
    }

    /// The adaptive failure-detection timeout chitchat currently uses for `node_id`.
    pub async fn failure_detection_timeout(&self, node_id: &str) -> Option<Duration> {
        self.handle
            .with_chitchat(|chitchat| {
                let id = chitchat
                    .node_states()
                    .keys()
                    .filter(|id| &*id.node_id == node_id)
                    .max_by_key(|id| id.generation_id)
                    .cloned()?;
                chitchat.failure_detection_timeout(&id)
            })
            .await
    }

    /// Stop gossiping. Peers will see this generation go dead.
    pub async fn shutdown(self) {
        if let Err(error) = self.handle.shutdown().await {
            tracing::warn!(%error, "gossip server did not shut down cleanly");
        }
    }
}

fn observe(id: &ChitchatId, state: &NodeState, live: bool, is_self: bool) -> ObservedMember {
    let (keys, decode_errors) = NodeKeys::decode(&id.node_id, state.key_values());
    ObservedMember {
        node_id: id.node_id.to_string(),
        generation: id.generation_id,
        gossip_addr: id.gossip_advertise_addr,
        live: live || is_self,
        is_self,
        keys,
        decode_errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chitchat::transport::ChannelTransport;
    use triad_proto::gossip::Role;

    fn config(port: u16, seeds: &[u16]) -> MembershipConfig {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        MembershipConfig {
            node_id: format!("n{port}"),
            generation: 1,
            cluster_id: "test".into(),
            seeds: seeds.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
            settings: GossipSettings::production(addr),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn published_keys_reach_the_peer_and_unknown_values_are_deleted() {
        let transport = ChannelTransport::with_mtu(65_507);
        let grpc: SocketAddr = "127.0.0.1:7421".parse().unwrap();
        let mut keys_a = NodeKeys::initial(Role::Core, grpc, "t");
        keys_a.galera.seqno = Some(7);
        let a = Membership::join(config(1, &[2]), &keys_a, &transport)
            .await
            .unwrap();
        let b = Membership::join(
            config(2, &[1]),
            &NodeKeys::initial(Role::Web, grpc, "t"),
            &transport,
        )
        .await
        .unwrap();
        let seen = |want: Option<i64>| {
            let b = &b;
            async move {
                for _ in 0..100 {
                    let members = b.members().await;
                    if let Some(m) = members.iter().find(|m| m.node_id == "n1") {
                        if m.keys.galera.seqno == want && m.live {
                            return true;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                false
            }
        };
        assert!(seen(Some(7)).await, "n2 never saw n1 live with seqno 7");
        keys_a.galera.seqno = None;
        a.publish(&keys_a).await;
        assert!(seen(None).await, "n2 still sees n1's deleted seqno");
        a.shutdown().await;
        b.shutdown().await;
    }

    fn sees_in(members: &[ObservedMember], peer: &str, seqno: i64) -> bool {
        members
            .iter()
            .any(|m| m.node_id == peer && m.live && m.keys.galera.seqno == Some(seqno))
    }

    /// A cluster upgraded one node at a time has nodes on both digest formats for a while:
    /// they must keep seeing each other live and keep exchanging keys.
    #[tokio::test(start_paused = true)]
    async fn nodes_on_either_digest_format_gossip_together() {
        let transport = ChannelTransport::with_mtu(65_507);
        let grpc: SocketAddr = "127.0.0.1:7421".parse().unwrap();
        let mut old = config(3, &[4]);
        old.settings.compressed_digest = false;
        let mut new = config(4, &[3]);
        new.settings.compressed_digest = true;
        let mut keys_old = NodeKeys::initial(Role::Core, grpc, "t");
        keys_old.galera.seqno = Some(11);
        let mut keys_new = NodeKeys::initial(Role::Core, grpc, "t");
        keys_new.galera.seqno = Some(12);
        let a = Membership::join(old, &keys_old, &transport).await.unwrap();
        let b = Membership::join(new, &keys_new, &transport).await.unwrap();
        let mut both = false;
        for _ in 0..100 {
            let (seen_by_old, seen_by_new) = (a.members().await, b.members().await);
            both = sees_in(&seen_by_old, "n4", 12) && sees_in(&seen_by_new, "n3", 11);
            if both {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            both,
            "a V0 node and a V1 node did not see each other live with their keys within 10 s"
        );
        a.shutdown().await;
        b.shutdown().await;
    }
}
