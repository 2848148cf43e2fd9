//! Node maintenance (issue 21): an operator's `triadctl maintenance NODE on|off` for a
//! planned stop or reboot, or an agent whose node is shutting down (it publishes
//! maintenance `shutdown` and waits for its turn). The service stays up down to one node:
//!
//! - Departures are serialized. Two Galera members that leave at the same moment collide
//!   ("sending install message for new primary component failed: Cluster configuration
//!   change in progress", the reference's power-off of n2 and n3 on the lab) and the last
//!   node goes non-Primary; one at a time, each leave is an ordinary view change and the
//!   survivors stay Primary. The next node may go once the previous one's mysqld is
//!   stopped.
//! - Gluster's quorums are relaxed for departures by maintenance only: before the departure
//!   that would leave fewer than a majority of the volume's nodes (glusterd's server quorum
//!   would stop the last bricks, client quorum `auto` would refuse writes), server quorum
//!   is turned off and client quorum fixed at one brick; they are put back once every node
//!   is out of maintenance and nothing waits for a heal. An unplanned crash never gets this
//!   (two sides writing alone is a split-brain).
//!
//! Pure: [`plan`] takes the wanted maintenance and what the nodes report, and says which
//! node may leave now, whether the quorum must be relaxed first or may be put back, and a
//! status line. [`MaintenanceLoop`] carries it out: the agents hold the maintenance flag
//! (gossip `maintenance`, kept across their restarts when an operator set it), the loop
//! grants one leave at a time through the agent's `Maintenance` RPC, and the volume loop
//! sets the quorum [`QuorumRelax`] asks for.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use triad_proto::gossip::{BrickState, GaleraState};

use crate::events::EventLog;
use crate::runner;
use crate::view::{ClusterView, MemberView};
use crate::volume::run::VolumeStatus;
use crate::volume::QuorumRelax;

/// A node as the plan needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// Its mysqld runs (any state).
    pub mysqld_running: bool,
    /// Its brick is online in the volume.
    pub brick_online: bool,
}

/// The volume's quorum as Triad set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    /// Server quorum on, client quorum `auto` (Triad's normal settings).
    Normal,
    /// Relaxed for maintenance: server quorum off, client quorum fixed at one brick.
    Relaxed,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Relax the quorum before the next departure.
    RelaxQuorum,
    /// Ask this node's agent to leave (drain, then a clean Galera leave).
    Leave(String),
    /// Every node is back and healed: Triad's normal quorum again.
    RestoreQuorum,
    /// Nothing now; the status line says what is awaited.
    Wait,
}

/// Pure: the next step for the nodes in `maintenance` (wanted), over `facts` (every node
/// of the volume), the volume's `quorum` as set and whether heals are `pending`.
///
/// A node in maintenance has left once its mysqld is stopped. One node leaves at a time,
/// in name order. The quorum is relaxed before a departure that would leave fewer than a
/// majority of the nodes with their brick, and put back only when no node is in
/// maintenance, every brick is online and nothing waits for a heal.
pub fn plan(
    maintenance: &BTreeSet<String>,
    facts: &BTreeMap<String, NodeFacts>,
    quorum: Quorum,
    heal_pending: bool,
) -> (Step, String) {
    if maintenance.is_empty() {
        if quorum == Quorum::Relaxed {
            let offline: Vec<&str> = facts
                .iter()
                .filter(|(_, f)| !f.brick_online)
                .map(|(id, _)| id.as_str())
                .collect();
            if !offline.is_empty() {
                return (
                    Step::Wait,
                    format!(
                        "maintenance over; quorum stays relaxed until the bricks of {} are back",
                        offline.join(", ")
                    ),
                );
            }
            if heal_pending {
                return (
                    Step::Wait,
                    "maintenance over; quorum stays relaxed until the heals are done".into(),
                );
            }
            return (
                Step::RestoreQuorum,
                "maintenance over, every brick back and healed: quorum back to normal".into(),
            );
        }
        return (Step::Wait, "no node in maintenance".into());
    }
    let leaving: Vec<&str> = maintenance
        .iter()
        .filter(|id| facts.get(*id).is_some_and(|f| f.mysqld_running))
        .map(String::as_str)
        .collect();
    let Some(next) = leaving.first() else {
        let away: Vec<&str> = maintenance.iter().map(String::as_str).collect();
        return (Step::Wait, format!("in maintenance: {}", away.join(", ")));
    };
    // the nodes that keep their brick after this departure
    let staying = facts
        .iter()
        .filter(|(id, _)| !maintenance.contains(*id))
        .count();
    let majority = facts.len() / 2 + 1;
    if staying < majority && quorum == Quorum::Normal {
        return (
            Step::RelaxQuorum,
            format!(
                "{next} leaves for maintenance, leaving {staying} of {} node(s): relaxing the \
                 volume's quorum first",
                facts.len()
            ),
        );
    }
    if leaving.len() > 1 {
        return (
            Step::Leave(next.to_string()),
            format!(
                "{next} leaving for maintenance; then {} (one at a time)",
                leaving[1..].join(", ")
            ),
        );
    }
    (
        Step::Leave(next.to_string()),
        format!("{next} leaving for maintenance"),
    )
}

/// Pure: whether a member's mysqld runs, as gossip says (a dead node's does not count: it
/// is gone from the Galera view).
pub fn mysqld_running(member: &MemberView) -> bool {
    member.live
        && !matches!(
            member.keys.galera.state,
            GaleraState::Stopped | GaleraState::NotManaged
        )
}

/// Pure: the plan's facts for `nodes` (the volume's or Galera's; every member when empty).
pub fn facts_of(view: &ClusterView, nodes: &[String]) -> BTreeMap<String, NodeFacts> {
    view.members()
        .filter(|m| nodes.is_empty() || nodes.contains(&m.node_id))
        .map(|m| {
            (
                m.node_id.clone(),
                NodeFacts {
                    mysqld_running: mysqld_running(m),
                    brick_online: m.live && m.keys.gluster_brick == BrickState::Online,
                },
            )
        })
        .collect()
}

/// Pure: the nodes in maintenance (live or not: a node powered off for it keeps its last
/// word until it returns), with the reason each gave.
pub fn in_maintenance(view: &ClusterView) -> BTreeMap<String, String> {
    view.members()
        .filter_map(|m| {
            m.keys
                .maintenance
                .clone()
                .map(|reason| (m.node_id.clone(), reason))
        })
        .collect()
}

/// Pure: whether `node` may go into maintenance (`on`) or come out of it now, and its
/// agent's address. Refused: an unknown node, one whose agent cannot be told, and putting
/// in maintenance the only node that serves.
pub fn check(view: &ClusterView, node: &str, on: bool) -> Result<std::net::SocketAddr, String> {
    let (member, grpc) = view.reachable_agent(node)?;
    if on && member.keys.maintenance.is_none() {
        let others = view
            .members()
            .filter(|m| m.node_id != node && m.serving() && m.keys.maintenance.is_none())
            .count();
        if others == 0 {
            return Err(format!(
                "{node} is the only node serving: taking it out would leave the service nothing"
            ));
        }
    }
    Ok(grpc)
}

/// A node's departure, as the loop grants it.
#[async_trait::async_trait]
pub trait LeaveCalls: Send + Sync {
    /// Ask `node`'s agent to leave Galera now (stop mysqld cleanly and hold it).
    async fn leave(
        &self,
        node: &str,
        grpc: std::net::SocketAddr,
        reason: &str,
    ) -> Result<String, String>;
}

/// [`LeaveCalls`] over the agents' gRPC.
#[derive(Debug, Clone)]
pub struct GrpcLeaveCalls;

#[async_trait::async_trait]
impl LeaveCalls for GrpcLeaveCalls {
    async fn leave(
        &self,
        node: &str,
        grpc: std::net::SocketAddr,
        reason: &str,
    ) -> Result<String, String> {
        // a clean mysqld shutdown can take a while on a busy node
        let mut client = crate::agent_client::connect(
            node,
            grpc,
            Duration::from_secs(5),
            Duration::from_secs(150),
        )
        .await
        .map_err(|e| e.message)?;
        client
            .maintenance(triad_proto::v1::AgentMaintenanceRequest {
                on: true,
                leave: true,
                reason: reason.to_string(),
            })
            .await
            .map(|reply| reply.into_inner().message)
            .map_err(|status| format!("{node}: {}", status.message()))
    }
}

/// The loop: every pass, the plan over gossip and the volume's status, one step.
pub struct MaintenanceLoop {
    /// The cluster view as of now (the coordinator's, a fixed one in tests).
    pub view: Arc<dyn Fn() -> ClusterView + Send + Sync>,
    /// The nodes that count (the volume's, else Galera's; every member when empty).
    pub nodes: Vec<String>,
    pub relax: Option<Arc<QuorumRelax>>,
    pub volume: Option<watch::Receiver<VolumeStatus>>,
    pub calls: Arc<dyn LeaveCalls>,
    pub events: Option<Arc<EventLog>>,
    pub tick: Duration,
    status: watch::Sender<String>,
    /// The last leave granted and when: gossip shows the stop a moment later, and the
    /// same node is not asked again meanwhile.
    granted: std::sync::Mutex<Option<(String, tokio::time::Instant)>>,
    /// When each node now in maintenance was first seen in it.
    first_seen: std::sync::Mutex<BTreeMap<String, tokio::time::Instant>>,
}

/// How long after a node goes into maintenance the first leave waits for others going at
/// the same moment: two nodes powered off together publish their flags a gossip round
/// apart, and the quorum must be relaxed before the first departure. Relaxed after it,
/// glusterd's volume commands waited ~20 s for the departing peer (lab, n2 and n3 powered
/// off at once: n3's turn came 25 s later).
pub const ARRIVAL_SETTLE: Duration = Duration::from_secs(2);

/// How long a granted leave waits for gossip to show it before the node is asked again.
const GRANT_SETTLE: Duration = Duration::from_secs(5);

impl MaintenanceLoop {
    pub fn new(
        view: Arc<dyn Fn() -> ClusterView + Send + Sync>,
        nodes: Vec<String>,
        relax: Option<Arc<QuorumRelax>>,
        volume: Option<watch::Receiver<VolumeStatus>>,
        calls: Arc<dyn LeaveCalls>,
        events: Option<Arc<EventLog>>,
    ) -> MaintenanceLoop {
        MaintenanceLoop {
            view,
            nodes,
            relax,
            volume,
            calls,
            events,
            tick: Duration::from_millis(500),
            status: watch::channel(String::new()).0,
            granted: std::sync::Mutex::new(None),
            first_seen: Default::default(),
        }
    }

    fn event(&self, subject: &str, text: String) {
        tracing::warn!(subject, "node maintenance: {text}");
        if let Some(events) = &self.events {
            events.record("maintenance", subject, text, None);
        }
    }

    /// One pass; answers the status line (empty when nothing is in maintenance and the
    /// quorum is normal).
    pub async fn step(&self) -> String {
        let view = (self.view)();
        let away = in_maintenance(&view);
        let wanted: BTreeSet<String> = away.keys().cloned().collect();
        let newest_arrival = {
            let mut seen = self.first_seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.retain(|node, _| away.contains_key(node));
            for node in away.keys() {
                seen.entry(node.clone())
                    .or_insert_with(tokio::time::Instant::now);
            }
            seen.values().max().copied()
        };
        let facts = facts_of(&view, &self.nodes);
        let volume = self.volume.as_ref().map(|w| w.borrow().clone());
        // no volume: nothing to relax, so the plan never asks to
        let quorum = match (&self.relax, volume.as_ref().and_then(|v| v.quorum_relaxed)) {
            (None, _) | (_, Some(true)) => Quorum::Relaxed,
            _ => Quorum::Normal,
        };
        let heal_pending = volume
            .as_ref()
            .is_some_and(|v| v.bricks.iter().any(|b| b.heal_pending != Some(0)));
        let (step, line) = plan(&wanted, &facts, quorum, heal_pending);
        match step {
            Step::RelaxQuorum => {
                if let Some(relax) = self.relax.as_ref().filter(|r| !r.wanted()) {
                    match relax.set(true) {
                        Ok(()) => self.event("volume", format!("quorum relaxed for maintenance ({}): server quorum off, client quorum one brick", wanted.iter().cloned().collect::<Vec<_>>().join(", "))),
                        Err(error) => return format!("{line}; {error}"),
                    }
                }
            }
            Step::Leave(ref node) => {
                let recent = self
                    .granted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .is_some_and(|(n, at)| n == node && at.elapsed() < GRANT_SETTLE);
                if recent {
                    return format!("{node} has left; waiting for gossip to show it");
                }
                if newest_arrival.is_some_and(|at| at.elapsed() < ARRIVAL_SETTLE) {
                    return format!(
                        "{line}; first {ARRIVAL_SETTLE:?} for other nodes going away at the same moment"
                    );
                }
                let reason = away.get(node).cloned().unwrap_or_default();
                let Some(grpc) = view.get(node).and_then(|m| m.keys.grpc) else {
                    return format!("{line}; {node} has no gRPC address in gossip");
                };
                match self.calls.leave(node, grpc, &reason).await {
                    Ok(message) => {
                        *self.granted.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some((node.clone(), tokio::time::Instant::now()));
                        self.event(
                            node,
                            format!("{node} left Galera for maintenance ({reason}): {message}"),
                        )
                    }
                    Err(error) => return format!("{line}; the leave failed: {error}"),
                }
            }
            Step::RestoreQuorum => {
                if let Some(relax) = self.relax.as_ref().filter(|r| r.wanted()) {
                    match relax.set(false) {
                        Ok(()) => self.event(
                            "volume",
                            "quorum back to normal: every node back from maintenance and healed"
                                .into(),
                        ),
                        Err(error) => return format!("{line}; {error}"),
                    }
                }
            }
            Step::Wait => {}
        }
        if wanted.is_empty() && (quorum == Quorum::Normal || self.relax.is_none()) {
            String::new()
        } else {
            line
        }
    }

    pub fn spawn(self, stop: watch::Receiver<bool>) -> watch::Receiver<String> {
        let status = self.status.subscribe();
        tokio::spawn(runner::run(
            "node maintenance",
            self,
            runner::Backoff::NEVER_USED,
            runner::Inputs::default(),
            stop,
        ));
        status
    }
}

#[async_trait::async_trait]
impl runner::Reconciler for MaintenanceLoop {
    type Command = ();

    async fn pass(&mut self) -> runner::Next {
        let line = self.step().await;
        self.status.send_if_modified(|old| {
            if *old == line {
                return false;
            }
            *old = line;
            true
        });
        runner::Next::After(self.tick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(running: &[&str], offline: &[&str]) -> BTreeMap<String, NodeFacts> {
        ["n1", "n2", "n3"]
            .into_iter()
            .map(|id| {
                (
                    id.to_string(),
                    NodeFacts {
                        mysqld_running: running.contains(&id),
                        brick_online: !offline.contains(&id),
                    },
                )
            })
            .collect()
    }

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_node_leaves_without_touching_the_quorum() {
        let (step, line) = plan(
            &set(&["n2"]),
            &facts(&["n1", "n2", "n3"], &[]),
            Quorum::Normal,
            false,
        );
        assert_eq!(step, Step::Leave("n2".into()), "{line}");
    }

    #[test]
    fn two_at_once_leave_one_at_a_time_and_the_second_relaxes_the_quorum_first() {
        let all = facts(&["n1", "n2", "n3"], &[]);
        let (step, line) = plan(&set(&["n2", "n3"]), &all, Quorum::Normal, false);
        assert_eq!(step, Step::RelaxQuorum, "{line}");
        let (step, line) = plan(&set(&["n2", "n3"]), &all, Quorum::Relaxed, false);
        assert_eq!(step, Step::Leave("n2".into()));
        assert!(line.contains("then n3"), "{line}");
        // n2 has left: n3 may go
        let (step, _) = plan(
            &set(&["n2", "n3"]),
            &facts(&["n1", "n3"], &["n2"]),
            Quorum::Relaxed,
            false,
        );
        assert_eq!(step, Step::Leave("n3".into()));
        let (step, line) = plan(
            &set(&["n2", "n3"]),
            &facts(&["n1"], &["n2", "n3"]),
            Quorum::Relaxed,
            false,
        );
        assert_eq!(step, Step::Wait);
        assert!(line.contains("n2, n3"), "{line}");
    }

    #[test]
    fn the_quorum_comes_back_only_when_every_brick_is_back_and_healed() {
        let (step, line) = plan(
            &set(&[]),
            &facts(&["n1", "n2", "n3"], &["n3"]),
            Quorum::Relaxed,
            false,
        );
        assert_eq!(step, Step::Wait);
        assert!(line.contains("n3"), "{line}");
        let (step, _) = plan(
            &set(&[]),
            &facts(&["n1", "n2", "n3"], &[]),
            Quorum::Relaxed,
            true,
        );
        assert_eq!(step, Step::Wait);
        let (step, _) = plan(
            &set(&[]),
            &facts(&["n1", "n2", "n3"], &[]),
            Quorum::Relaxed,
            false,
        );
        assert_eq!(step, Step::RestoreQuorum);
        let (step, _) = plan(
            &set(&[]),
            &facts(&["n1", "n2", "n3"], &[]),
            Quorum::Normal,
            false,
        );
        assert_eq!(step, Step::Wait);
    }

    mod the_loop {
        use super::super::*;
        use crate::view::testing::{observed, view_of};
        use crate::volume::run::{VolumeState, VolumeStatus};
        use crate::volume::BrickObs;
        use crate::volume::RELAX_FILE;
        use std::sync::Mutex;
        use triad_cluster::membership::ObservedMember;

        #[derive(Default)]
        struct Calls(Mutex<Vec<String>>);

        #[async_trait::async_trait]
        impl LeaveCalls for Calls {
            async fn leave(
                &self,
                node: &str,
                _: std::net::SocketAddr,
                reason: &str,
            ) -> Result<String, String> {
                self.0.lock().unwrap().push(format!("{node} ({reason})"));
                Ok("stopped".into())
            }
        }

        fn member(
            id: &str,
            live: bool,
            maintenance: Option<&str>,
            galera: GaleraState,
        ) -> ObservedMember {
            let mut m = observed(id, live, live && maintenance.is_none());
            m.keys.maintenance = maintenance.map(str::to_string);
            m.keys.galera.state = galera;
            m.keys.gluster_brick = if live {
                BrickState::Online
            } else {
                BrickState::Offline
            };
            m
        }

        fn volume(relaxed: bool) -> VolumeStatus {
            VolumeStatus {
                line: String::new(),
                state: VolumeState::Formed { steady: true },
                bricks: (1..=3)
                    .map(|i| BrickObs {
                        name: format!("10.0.0.{i}:/bricks/www"),
                        online: true,
                        heal_pending: Some(0),
                        split_brain: Some(0),
                    })
                    .collect(),
                split_brain_files: vec![],
                quorum_relaxed: Some(relaxed),
            }
        }

        /// The reference's power-off of n2 and n3, as the loop sees it pass by pass: the
        /// quorum relaxed first, one leave at a time, the quorum back once they returned.
        #[tokio::test]
        async fn two_nodes_shutting_down_leave_one_at_a_time_after_the_quorum_is_relaxed() {
            use GaleraState::{Stopped, Synced};
            tokio::time::pause();
            let dir = tempfile::tempdir().unwrap();
            let relax = Arc::new(QuorumRelax::open(dir.path()));
            let view = Arc::new(Mutex::new(view_of(&[
                member("n1", true, None, Synced),
                member("n2", true, Some("shutdown"), Synced),
                member("n3", true, Some("shutdown"), Synced),
            ])));
            let (volume_tx, volume_rx) = watch::channel(volume(false));
            let calls = Arc::new(Calls::default());
            let source = view.clone();
            let maintenance = MaintenanceLoop::new(
                Arc::new(move || source.lock().unwrap().clone()),
                vec!["n1".into(), "n2".into(), "n3".into()],
                Some(relax.clone()),
                Some(volume_rx),
                calls.clone(),
                None,
            );
            let line = maintenance.step().await;
            assert!(relax.wanted(), "{line}");
            assert!(dir.path().join(RELAX_FILE).exists());
            assert!(
                calls.0.lock().unwrap().is_empty(),
                "no leave before the quorum is relaxed"
            );
            // not yet observed relaxed: still no leave
            maintenance.step().await;
            assert!(calls.0.lock().unwrap().is_empty());
            volume_tx.send_replace(volume(true));
            // others going away at the same moment get their gossip round first
            let line = maintenance.step().await;
            assert!(calls.0.lock().unwrap().is_empty(), "{line}");
            tokio::time::advance(ARRIVAL_SETTLE).await;
            maintenance.step().await;
            assert_eq!(*calls.0.lock().unwrap(), ["n2 (shutdown)"]);
            // n2 has left and powered off: n3's turn
            *view.lock().unwrap() = view_of(&[
                member("n1", true, None, Synced),
                member("n2", false, Some("shutdown"), Stopped),
                member("n3", true, Some("shutdown"), Synced),
            ]);
            maintenance.step().await;
            assert_eq!(*calls.0.lock().unwrap(), ["n2 (shutdown)", "n3 (shutdown)"]);
            *view.lock().unwrap() = view_of(&[
                member("n1", true, None, Synced),
                member("n2", false, Some("shutdown"), Stopped),
                member("n3", false, Some("shutdown"), Stopped),
            ]);
            let line = maintenance.step().await;
            assert!(line.contains("in maintenance: n2, n3"), "{line}");
            assert_eq!(calls.0.lock().unwrap().len(), 2);
            // back, but one brick not healed yet: the quorum stays relaxed
            *view.lock().unwrap() = view_of(&[
                member("n1", true, None, Synced),
                member("n2", true, None, Synced),
                member("n3", true, None, Synced),
            ]);
            let mut healing = volume(true);
            healing.bricks[2].heal_pending = Some(4);
            volume_tx.send_replace(healing);
            let line = maintenance.step().await;
            assert!(relax.wanted(), "{line}");
            volume_tx.send_replace(volume(true));
            maintenance.step().await;
            assert!(!relax.wanted());
            assert!(!dir.path().join(RELAX_FILE).exists());
            assert_eq!(calls.0.lock().unwrap().len(), 2);
        }

        /// An unplanned crash is never a reason to relax the quorum.
        #[tokio::test]
        async fn a_crash_relaxes_nothing() {
            use GaleraState::{Stopped, Synced};
            let dir = tempfile::tempdir().unwrap();
            let relax = Arc::new(QuorumRelax::open(dir.path()));
            let view = view_of(&[
                member("n1", true, None, Synced),
                member("n2", false, None, Stopped),
                member("n3", false, None, Stopped),
            ]);
            let calls = Arc::new(Calls::default());
            let maintenance = MaintenanceLoop::new(
                Arc::new(move || view.clone()),
                vec![],
                Some(relax.clone()),
                Some(watch::channel(volume(false)).1),
                calls.clone(),
                None,
            );
            assert_eq!(maintenance.step().await, "");
            assert!(!relax.wanted());
            assert!(calls.0.lock().unwrap().is_empty());
        }

        #[test]
        fn the_only_serving_node_is_not_taken_away() {
            let view = view_of(&[
                member("n1", true, None, GaleraState::Synced),
                member("n2", true, Some("operator alice"), GaleraState::Stopped),
            ]);
            let error = check(&view, "n1", true).unwrap_err();
            assert!(error.contains("the only node serving"), "{error}");
            assert!(check(&view, "n2", false).is_ok());
            assert!(check(&view, "n9", true)
                .unwrap_err()
                .contains("not in the cluster"));
        }
    }
}
