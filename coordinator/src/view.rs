//! The coordinator's typed view of the cluster, built from gossip snapshots.
//!
//! Pure: [`ClusterView::apply`] takes what gossip shows now and the current instant and
//! returns the change events. It keeps one entry per node id (the highest generation
//! wins, so a restarted agent replaces its old incarnation instead of appearing twice),
//! skips observers (the coordinator itself), and tracks when each node's agent heartbeat
//! key last changed, on the coordinator's own clock (no cross-host clock skew).
//!
//! Liveness here is gossip's opinion only. Design principle 2: nothing destructive is
//! decided from this view without confirming over gRPC.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;
use triad_cluster::membership::ObservedMember;
use triad_proto::gossip::{NodeKeys, Role};

/// One node as the coordinator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    pub node_id: String,
    pub generation: u64,
    pub gossip_addr: SocketAddr,
    pub live: bool,
    pub keys: NodeKeys,
    /// Values that did not decode, as "key = value: reason".
    pub decode_errors: Vec<String>,
    /// When the coordinator last saw the agent's heartbeat key change.
    pub heartbeat_seen_at: Option<Instant>,
}

impl MemberView {
    /// The node's address: its gRPC address's IP, else its gossip address's.
    pub fn address(&self) -> std::net::IpAddr {
        self.keys
            .grpc
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified())
            .unwrap_or(self.gossip_addr.ip())
    }

    pub fn heartbeat_age(&self, now: Instant) -> Option<Duration> {
        self.heartbeat_seen_at
            .map(|seen| now.saturating_duration_since(seen))
    }

    /// Gossip's claim that this node can serve: live and ready.
    pub fn serving(&self) -> bool {
        self.live && self.keys.ready
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClusterEvent {
    Add(MemberView),
    Update(MemberView),
    Remove(MemberView),
}

impl ClusterEvent {
    pub fn member(&self) -> &MemberView {
        match self {
            ClusterEvent::Add(m) | ClusterEvent::Update(m) | ClusterEvent::Remove(m) => m,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    members: BTreeMap<String, MemberView>,
}

impl ClusterView {
    pub fn members(&self) -> impl Iterator<Item = &MemberView> {
        self.members.values()
    }

    /// The member `node` and its agent's gRPC address, for a command to it; refused, in
    /// words an operator reads, when the node is unknown, dead or has no address.
    pub fn reachable_agent(&self, node: &str) -> Result<(&MemberView, SocketAddr), String> {
        let member = self
            .get(node)
            .ok_or_else(|| format!("node {node:?} is not in the cluster"))?;
        if !member.live {
            return Err(format!("{node} is not live: its agent cannot be told"));
        }
        let grpc = member
            .keys
            .grpc
            .ok_or_else(|| format!("{node} has no gRPC address in gossip"))?;
        Ok((member, grpc))
    }

    pub fn get(&self, node_id: &str) -> Option<&MemberView> {
        self.members.get(node_id)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Fold a gossip snapshot into the view; returns the events, sorted by node id.
    /// Heartbeat and metric changes alone update the view without an event.
    pub fn apply(&mut self, observed: &[ObservedMember], now: Instant) -> Vec<ClusterEvent> {
        let mut newest: BTreeMap<&str, &ObservedMember> = BTreeMap::new();
        for member in observed {
            if member.is_self || member.keys.role == Role::Coordinator {
                continue;
            }
            let slot = newest.entry(member.node_id.as_str()).or_insert(member);
            if member.generation > slot.generation {
                *slot = member;
            }
        }

        let mut events = Vec::new();
        for (node_id, member) in &newest {
            let previous = self.members.get(*node_id);
            if let Some(previous) = previous {
                if member.generation < previous.generation {
                    // An older incarnation resurfacing (e.g. gossiped by a lagging peer).
                    continue;
                }
            }
            let heartbeat_seen_at = match previous {
                Some(previous)
                    if previous.generation == member.generation
                        && previous.keys.heartbeat == member.keys.heartbeat =>
                {
                    previous.heartbeat_seen_at
                }
                _ => member.keys.heartbeat.map(|_| now),
            };
            let view = MemberView {
                node_id: member.node_id.clone(),
                generation: member.generation,
                gossip_addr: member.gossip_addr,
                live: member.live,
                keys: member.keys.clone(),
                decode_errors: member
                    .decode_errors
                    .iter()
                    .map(|e| format!("{} = {:?}: {}", e.key, e.value, e.reason))
                    .collect(),
                heartbeat_seen_at,
            };
            match previous {
                None => events.push(ClusterEvent::Add(view.clone())),
                Some(previous) if significant(previous, &view) => {
                    events.push(ClusterEvent::Update(view.clone()))
                }
                Some(_) => {}
            }
            self.members.insert(node_id.to_string(), view);
        }

        let gone: Vec<String> = self
            .members
            .keys()
            .filter(|id| !newest.contains_key(id.as_str()))
            .cloned()
            .collect();
        for node_id in gone {
            if let Some(view) = self.members.remove(&node_id) {
                events.push(ClusterEvent::Remove(view));
            }
        }
        events
    }
}

fn significant(previous: &MemberView, next: &MemberView) -> bool {
    let strip = |view: &MemberView| {
        let mut keys = view.keys.clone();
        keys.heartbeat = None;
        keys.metrics = Default::default();
        (
            view.generation,
            view.gossip_addr,
            view.live,
            keys,
            view.decode_errors.clone(),
        )
    };
    strip(previous) != strip(next)
}

/// Members and views for the coordinator's tests.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// A core node as gossip shows it: gRPC at 10.0.0.1:7421, `live`, `ready`.
    pub fn observed(id: &str, live: bool, ready: bool) -> ObservedMember {
        let mut keys = NodeKeys::initial(Role::Core, "10.0.0.1:7421".parse().unwrap(), "0.1.0");
        keys.ready = ready;
        ObservedMember {
            node_id: id.into(),
            generation: 1,
            gossip_addr: "10.0.0.1:7420".parse().unwrap(),
            live,
            is_self: false,
            keys,
            decode_errors: vec![],
        }
    }

    /// The view of `members`, now.
    pub fn view_of(members: &[ObservedMember]) -> ClusterView {
        let mut view = ClusterView::default();
        view.apply(members, Instant::now());
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, generation: u64, live: bool, heartbeat: u64) -> ObservedMember {
        let mut keys = NodeKeys::initial(Role::Core, "127.0.0.1:7421".parse().unwrap(), "t");
        keys.heartbeat = Some(heartbeat);
        ObservedMember {
            node_id: id.into(),
            generation,
            gossip_addr: "127.0.0.1:7420".parse().unwrap(),
            live,
            is_self: false,
            keys,
            decode_errors: vec![],
        }
    }

    fn kinds(events: &[ClusterEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                ClusterEvent::Add(m) => format!("add {}", m.node_id),
                ClusterEvent::Update(m) => format!("update {}", m.node_id),
                ClusterEvent::Remove(m) => format!("remove {}", m.node_id),
            })
            .collect()
    }

    #[test]
    fn new_members_are_added_and_heartbeats_alone_make_no_event() {
        let mut view = ClusterView::default();
        let t0 = Instant::now();
        let events = view.apply(&[member("n1", 1, true, 1), member("n2", 1, true, 1)], t0);
        assert_eq!(kinds(&events), ["add n1", "add n2"]);
        let t1 = t0 + Duration::from_secs(1);
        let events = view.apply(&[member("n1", 1, true, 2), member("n2", 1, true, 1)], t1);
        assert!(events.is_empty());
        assert_eq!(
            view.get("n1").unwrap().heartbeat_age(t1),
            Some(Duration::ZERO)
        );
        assert_eq!(
            view.get("n2").unwrap().heartbeat_age(t1),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn restart_replaces_the_old_generation_instead_of_duplicating() {
        let mut view = ClusterView::default();
        let t0 = Instant::now();
        view.apply(&[member("n1", 1, true, 5)], t0);
        let events = view.apply(&[member("n1", 1, false, 5), member("n1", 2, true, 1)], t0);
        assert_eq!(kinds(&events), ["update n1"]);
        assert_eq!(view.len(), 1);
        assert_eq!(view.get("n1").unwrap().generation, 2);
        assert!(view.get("n1").unwrap().live);
        // the older incarnation gossiped alone never replaces the newer one
        let events = view.apply(&[member("n1", 1, false, 5)], t0);
        assert!(events.is_empty());
        assert_eq!(view.get("n1").unwrap().generation, 2);
    }

    #[test]
    fn death_is_an_update_and_forgetting_is_a_remove() {
        let mut view = ClusterView::default();
        let t0 = Instant::now();
        view.apply(&[member("n1", 1, true, 1)], t0);
        let events = view.apply(&[member("n1", 1, false, 1)], t0);
        assert_eq!(kinds(&events), ["update n1"]);
        assert!(!view.get("n1").unwrap().live);
        let events = view.apply(&[], t0);
        assert_eq!(kinds(&events), ["remove n1"]);
        assert!(view.is_empty());
    }

    #[test]
    fn self_and_coordinators_are_not_members() {
        let mut view = ClusterView::default();
        let mut me = member("coordinator", 1, true, 1);
        me.is_self = true;
        let mut other = member("coordinator-2", 1, true, 1);
        other.keys.role = Role::Coordinator;
        assert!(view.apply(&[me, other], Instant::now()).is_empty());
        assert!(view.is_empty());
    }
}
