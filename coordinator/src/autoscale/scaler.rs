//! The scale-out and scale-in flows, one recorded step at a time.
//!
//! Scale-out: launch (provider) → warming (the agent joins gossip; a web node, stateless,
//! mounts the volume as a client and reaches the database through its endpoint) → serving
//! once the node is ready (the balancer loop confirms it over gRPC and adds it). Scale-in,
//! only autoscaled nodes, the newest first: draining (agent `Drain`; the balancer drains it
//! and removes it once its connections ended, bounded) → leaving (a node that runs a
//! Galera member stops mysqld cleanly and leaves the Galera view; a stateless one skips it)
//! → deleting (provider) → forgotten.
//!
//! Every phase change is persisted (`autoscale.json`, fsync + rename) before the next
//! step acts, so a restarted coordinator resumes, never repeats: provider calls are
//! idempotent, and a launch cut short is launched again rather than launched twice under
//! another name. A node that never becomes ready within `ready_timeout`, or an autoscaled
//! node that stayed down that long, is deleted (the sweep).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::provider::{Launch, Provider};
use crate::agent_client::{self, answer, AgentError};
pub use crate::runner::Now;

/// Where an autoscaled node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Launching,
    Warming,
    Serving,
    Draining,
    Leaving,
    Deleting,
}

impl Phase {
    /// The word for status, events and /metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Launching => "launching",
            Phase::Warming => "warming",
            Phase::Serving => "serving",
            Phase::Draining => "draining",
            Phase::Leaving => "leaving",
            Phase::Deleting => "deleting",
        }
    }

    pub const ALL: [Phase; 6] = [
        Phase::Launching,
        Phase::Warming,
        Phase::Serving,
        Phase::Draining,
        Phase::Leaving,
        Phase::Deleting,
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaled {
    pub node: String,
    pub phase: Phase,
    /// When the phase began (Unix ms, so that it survives restarts).
    pub since_ms: u64,
}

/// What is persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleRecord {
    pub nodes: Vec<Scaled>,
    /// The last scale action (Unix ms): the cooldown survives restarts.
    pub last_action_ms: Option<u64>,
    /// Nodes this scaler deleted (newest last, at most 64): their gossip entries linger
    /// as dead for a while; they are not shown as down, and their names may be reused.
    #[serde(default)]
    pub removed: Vec<String>,
}

/// One node as the cluster view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFact {
    pub live: bool,
    pub ready: bool,
    pub grpc: Option<SocketAddr>,
    /// The node says it is a web node (autoscaled nodes always are; a core node is never
    /// adopted or removed by the flows).
    pub web: bool,
    /// It runs a Galera member (a stateless web node does not: nothing to leave).
    pub galera: bool,
}

/// The agent calls the flows make (gRPC in production).
#[async_trait::async_trait]
pub trait NodeCalls: Send + Sync {
    async fn drain(&self, node: &str, grpc: SocketAddr) -> Result<(), AgentError>;
    /// Stop mysqld cleanly and keep it stopped (the node leaves the Galera view).
    async fn leave(&self, node: &str, grpc: SocketAddr) -> Result<(), AgentError>;
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlowSettings {
    /// Names of autoscaled nodes: prefix + the lowest free number.
    pub name_prefix: String,
    /// Names never given to an autoscaled node (the configured core nodes), even while
    /// gossip has not shown them yet.
    pub reserved: Vec<String>,
    pub role: String,
    pub ready_timeout: Duration,
    pub drain_timeout: Duration,
    pub state_file: PathBuf,
}

pub struct Scaler {
    pub settings: FlowSettings,
    provider: Arc<dyn Provider>,
    calls: Arc<dyn NodeCalls>,
    record: ScaleRecord,
    /// The last round's error, for the status line.
    pub last_error: Option<String>,
    /// Since when a serving autoscaled node has been seen down (memory only).
    down_since: BTreeMap<String, Instant>,
    /// How far each pending launch got, for the status line (memory only).
    pending: BTreeMap<String, String>,
    /// The sweep's memory: since when a server of ours that no flow knows has been seen,
    /// and how many provider lists in a row missed a recorded node's server.
    strays: BTreeMap<String, Instant>,
    missing: BTreeMap<String, u32>,
}

impl Scaler {
    /// Loads the record (a missing file is an empty record; an unreadable one is an error
    /// naming the file: the coordinator does not start scaling blind).
    pub fn load(
        settings: FlowSettings,
        provider: Arc<dyn Provider>,
        calls: Arc<dyn NodeCalls>,
    ) -> Result<Scaler, String> {
        let record = match std::fs::read_to_string(&settings.state_file) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("{}: {e}", settings.state_file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ScaleRecord::default(),
            Err(e) => return Err(format!("{}: {e}", settings.state_file.display())),
        };
        if !record.nodes.is_empty() {
            tracing::warn!(nodes = ?record.nodes, "resuming autoscaling steps in progress");
        }
        Ok(Scaler {
            settings,
            provider,
            calls,
            record,
            last_error: None,
            down_since: BTreeMap::new(),
            pending: BTreeMap::new(),
            strays: BTreeMap::new(),
            missing: BTreeMap::new(),
        })
    }

    pub fn record(&self) -> &ScaleRecord {
        &self.record
    }

    fn save(&mut self) -> bool {
        let path = &self.settings.state_file;
        let text = serde_json::to_string_pretty(&self.record).unwrap_or_default();
        match triad_daemon::fs::durable_write(path, &text) {
            Ok(()) => true,
            Err(e) => {
                self.last_error = Some(format!(
                    "cannot persist {}: {e}; not acting",
                    path.display()
                ));
                false
            }
        }
    }

    fn set_phase(&mut self, node: &str, phase: Phase, now: Now) -> bool {
        if let Some(entry) = self.record.nodes.iter_mut().find(|n| n.node == node) {
            tracing::info!(node, from = ?entry.phase, to = ?phase, "autoscale step");
            entry.phase = phase;
            entry.since_ms = now.unix_ms;
        }
        self.save()
    }

    /// Nodes launched and not serving yet.
    pub fn warming(&self) -> usize {
        self.count(&[Phase::Launching, Phase::Warming])
    }

    /// Autoscaled nodes that serve (the only ones scale-in may remove).
    pub fn removable(&self, facts: &BTreeMap<String, NodeFact>) -> usize {
        self.record
            .nodes
            .iter()
            .filter(|n| {
                n.phase == Phase::Serving && facts.get(&n.node).is_some_and(|f| f.ready && f.web)
            })
            .count()
    }

    fn count(&self, phases: &[Phase]) -> usize {
        self.record
            .nodes
            .iter()
            .filter(|n| phases.contains(&n.phase))
            .count()
    }

    pub fn last_action_ms(&self) -> Option<u64> {
        self.record.last_action_ms
    }

    /// The lowest free name: not recorded, and not in the view unless it is a dead node
    /// this scaler deleted (a dead core node's name is never taken).
    fn next_name(&self, facts: &BTreeMap<String, NodeFact>) -> String {
        (1..)
            .map(|k| format!("{}{k}", self.settings.name_prefix))
            .find(|name| {
                let free_in_view = match facts.get(name) {
                    None => true,
                    Some(fact) => !fact.live && self.record.removed.contains(name),
                };
                free_in_view
                    && !self.settings.reserved.contains(name)
                    && !self.record.nodes.iter().any(|n| &n.node == name)
            })
            .expect("an unbounded range has a free name")
    }

    /// Record `count` new nodes as launching (persisted before any provider call).
    pub fn scale_out(&mut self, count: usize, facts: &BTreeMap<String, NodeFact>, now: Now) {
        for _ in 0..count {
            let node = self.next_name(facts);
            tracing::warn!(node = %node, "autoscale: scaling out: launching {node}");
            self.record.removed.retain(|n| n != &node);
            self.record.nodes.push(Scaled {
                node,
                phase: Phase::Launching,
                since_ms: now.unix_ms,
            });
        }
        self.record.last_action_ms = Some(now.unix_ms);
        self.save();
    }

    /// Start draining the newest serving autoscaled node; returns its name.
    pub fn scale_in(&mut self, facts: &BTreeMap<String, NodeFact>, now: Now) -> Option<String> {
        let node = self
            .record
            .nodes
            .iter()
            .rev()
            .find(|n| {
                n.phase == Phase::Serving && facts.get(&n.node).is_some_and(|f| f.ready && f.web)
            })?
            .node
            .clone();
        tracing::warn!(node = %node, "autoscale: scaling in: draining {node}");
        self.record.last_action_ms = Some(now.unix_ms);
        self.set_phase(&node, Phase::Draining, now);
        Some(node)
    }

    /// Advance every recorded node by at most one step. `members`: the balancer's current
    /// members (None without a balancer).
    pub async fn advance(
        &mut self,
        now: Now,
        facts: &BTreeMap<String, NodeFact>,
        members: Option<&[String]>,
    ) {
        self.last_error = None;
        self.pending.clear();
        match self.provider.list().await {
            Ok(Some(listed)) => self.sweep(now, &listed, facts).await,
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "cannot list the provider's nodes: {error}");
                self.last_error = Some(format!("sweep: {error}"));
            }
        }
        for entry in self.record.nodes.clone() {
            let elapsed = Duration::from_millis(now.unix_ms.saturating_sub(entry.since_ms));
            let fact = facts.get(&entry.node);
            let node = entry.node.as_str();
            match entry.phase {
                Phase::Launching => {
                    let outcome = self.provider.launch(node, &self.settings.role).await;
                    match outcome {
                        Ok(Launch::Done) => {
                            self.set_phase(node, Phase::Warming, now);
                            continue;
                        }
                        Ok(Launch::Pending(how)) => {
                            tracing::info!(node, "launch under way: {how}");
                            self.pending.insert(node.to_string(), how);
                        }
                        Err(error) => {
                            tracing::error!(node, %error, "launch failed: {error}");
                            self.last_error = Some(error.to_string());
                        }
                    }
                    if elapsed > self.settings.ready_timeout {
                        tracing::error!(
                            node,
                            "{node} not launched {:?} after the decision: deleting it",
                            self.settings.ready_timeout
                        );
                        self.set_phase(node, Phase::Deleting, now);
                    }
                }
                Phase::Warming => {
                    if fact.is_some_and(|f| f.live && f.ready && !f.web) {
                        // a node of that name that is not a web node is not ours to manage
                        let error = format!("{node} answered as a core node: dropped from the autoscaled nodes, not deleted");
                        tracing::error!(node, "{error}");
                        self.last_error = Some(error);
                        self.record.nodes.retain(|n| n.node != node);
                        self.save();
                    } else if fact.is_some_and(|f| f.live && f.ready) {
                        tracing::warn!(node, after = ?elapsed, "autoscale: {node} is ready and serving, {:.1}s after its launch returned", elapsed.as_secs_f64());
                        self.set_phase(node, Phase::Serving, now);
                    } else if elapsed > self.settings.ready_timeout {
                        let error = format!(
                            "{node} not ready {:?} after its launch: deleting it",
                            self.settings.ready_timeout
                        );
                        tracing::error!(node, "{error}");
                        self.last_error = Some(error);
                        self.set_phase(node, Phase::Deleting, now);
                    }
                }
                Phase::Serving => {
                    // the sweep: an autoscaled node whose server is gone
                    if fact.is_some_and(|f| f.live) {
                        self.down_since.remove(node);
                    } else {
                        let down = *self.down_since.entry(node.to_string()).or_insert(now.at);
                        if now.at.saturating_duration_since(down) > self.settings.ready_timeout {
                            tracing::warn!(
                                node,
                                "autoscaled {node} has been down for {:?}: deleting it",
                                self.settings.ready_timeout
                            );
                            self.down_since.remove(node);
                            self.set_phase(node, Phase::Deleting, now);
                        }
                    }
                }
                Phase::Draining => {
                    let Some(grpc) = fact.filter(|f| f.live).and_then(|f| f.grpc) else {
                        self.set_phase(node, Phase::Deleting, now);
                        continue;
                    };
                    if let Err(error) = self.calls.drain(node, grpc).await {
                        self.last_error = Some(format!("drain {node}: {error}"));
                        continue;
                    }
                    let gone = members.is_none_or(|m| !m.iter().any(|n| n == node));
                    if gone || elapsed > self.settings.drain_timeout {
                        if !gone {
                            tracing::warn!(node, "{node} still a balancer member {:?} after the drain began: going on", self.settings.drain_timeout);
                        }
                        self.set_phase(node, Phase::Leaving, now);
                    }
                }
                Phase::Leaving => {
                    let Some(grpc) = fact.filter(|f| f.live && f.galera).and_then(|f| f.grpc)
                    else {
                        // dead, or stateless (no mysqld): nothing leaves Galera
                        self.set_phase(node, Phase::Deleting, now);
                        continue;
                    };
                    match self.calls.leave(node, grpc).await {
                        Ok(()) => {
                            self.set_phase(node, Phase::Deleting, now);
                        }
                        Err(error) => {
                            self.last_error = Some(format!("stop services on {node}: {error}"));
                            if elapsed > self.settings.drain_timeout {
                                self.set_phase(node, Phase::Deleting, now);
                            }
                        }
                    }
                }
                Phase::Deleting => match self.provider.delete(node).await {
                    Ok(()) => {
                        tracing::warn!(node, "autoscale: {node} deleted");
                        self.record.nodes.retain(|n| n.node != node);
                        self.record.removed.retain(|n| n != node);
                        self.record.removed.push(node.to_string());
                        let excess = self.record.removed.len().saturating_sub(64);
                        self.record.removed.drain(..excess);
                        self.save();
                    }
                    Err(error) => {
                        tracing::error!(node, %error, "delete failed: {error}");
                        self.last_error = Some(error.to_string());
                    }
                },
            }
        }
    }

    /// The sweep over the provider's own list (servers carrying its marks):
    /// - a server no flow knows: one this scaler deleted is deleted again; another one is
    ///   adopted when its node serves as a web node (the record was lost), else deleted
    ///   once it has been there `ready_timeout` without becoming ready;
    /// - a recorded warming or serving node whose server two lists in a row did not show
    ///   is gone: it goes to deleting (an idempotent no-op) and is forgotten.
    async fn sweep(&mut self, now: Now, listed: &[String], facts: &BTreeMap<String, NodeFact>) {
        let known: Vec<String> = self.record.nodes.iter().map(|n| n.node.clone()).collect();
        self.strays.retain(|name, _| listed.contains(name));
        for name in listed.iter().filter(|n| !known.contains(n)) {
            if self.settings.reserved.contains(name) {
                continue;
            }
            let fact = facts.get(name);
            let first_seen = *self.strays.entry(name.clone()).or_insert(now.at);
            let delete = if self.record.removed.contains(name) {
                tracing::warn!(node = %name, "sweep: {name} was deleted but its server is still there: deleting it again");
                true
            } else if fact.is_some_and(|f| f.live && f.ready && f.web) {
                tracing::warn!(node = %name, "sweep: adopting {name}, a server of ours that serves but was not recorded");
                self.record.nodes.push(Scaled {
                    node: name.clone(),
                    phase: Phase::Serving,
                    since_ms: now.unix_ms,
                });
                self.save();
                false
            } else if now.at.saturating_duration_since(first_seen) > self.settings.ready_timeout {
                tracing::warn!(node = %name, "sweep: {name} is a server of ours that never became a serving node in {:?}: deleting it", self.settings.ready_timeout);
                true
            } else {
                false
            };
            if delete {
                if let Err(error) = self.provider.delete(name).await {
                    self.last_error = Some(format!("sweep: {error}"));
                } else {
                    self.strays.remove(name);
                }
            }
        }
        for entry in self.record.nodes.clone() {
            if !matches!(entry.phase, Phase::Warming | Phase::Serving) {
                continue;
            }
            if listed.contains(&entry.node) {
                self.missing.remove(&entry.node);
                continue;
            }
            let misses = self.missing.entry(entry.node.clone()).or_insert(0);
            *misses += 1;
            if *misses >= 2 {
                tracing::warn!(node = %entry.node, "sweep: the server of {} is gone: forgetting it", entry.node);
                self.missing.remove(&entry.node);
                self.set_phase(&entry.node, Phase::Deleting, now);
            }
        }
    }

    /// "n4 warming 12s, n5 draining 3s" for the status line.
    pub fn describe(&self, now: Now) -> String {
        self.record
            .nodes
            .iter()
            .filter(|n| n.phase != Phase::Serving)
            .map(|n| {
                format!(
                    "{} {} {:.0}s{}",
                    n.node,
                    serde_json::to_value(n.phase)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    now.unix_ms.saturating_sub(n.since_ms) as f64 / 1000.0,
                    self.pending
                        .get(&n.node)
                        .map(|how| format!(" ({how})"))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The flows' agent calls over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcNodeCalls {
    pub connect_timeout: Duration,
}

#[async_trait::async_trait]
impl NodeCalls for GrpcNodeCalls {
    async fn drain(&self, node: &str, grpc: SocketAddr) -> Result<(), AgentError> {
        let mut client =
            agent_client::connect(node, grpc, self.connect_timeout, Duration::from_secs(10))
                .await?;
        let request = triad_proto::v1::DrainRequest {
            reason: "autoscale: scaling in".into(),
        };
        answer(node, client.drain(request).await).map(|_| ())
    }

    async fn leave(&self, node: &str, grpc: SocketAddr) -> Result<(), AgentError> {
        // a clean mysqld shutdown can take a while on a busy node
        let mut client =
            agent_client::connect(node, grpc, self.connect_timeout, Duration::from_secs(150))
                .await?;
        let request = triad_proto::v1::ServiceActionRequest {
            service: "galera".into(),
            action: triad_proto::v1::ServiceAction::Stop as i32,
        };
        answer(node, client.service_action(request).await).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::provider::ProviderError;
    use std::sync::Mutex;

    /// A provider and agents that record calls; launches make a node appear (not ready).
    #[derive(Default)]
    struct World {
        calls: Mutex<Vec<String>>,
        fail_launch: Mutex<bool>,
        /// Launches answer Pending while this is set.
        pending: Mutex<bool>,
        /// What `list` answers (None: the provider cannot list).
        listed: Mutex<Option<Vec<String>>>,
    }

    #[async_trait::async_trait]
    impl Provider for World {
        fn kind(&self) -> &'static str {
            "fake"
        }
        async fn launch(&self, name: &str, role: &str) -> Result<Launch, ProviderError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("launch {name} {role}"));
            if *self.fail_launch.lock().unwrap() {
                return Err(ProviderError {
                    what: format!("add {name}"),
                    detail: "exit status: 1".into(),
                });
            }
            if *self.pending.lock().unwrap() {
                return Ok(Launch::Pending("server s1 BUILD (spawning) 3s".into()));
            }
            Ok(Launch::Done)
        }
        async fn delete(&self, name: &str) -> Result<(), ProviderError> {
            self.calls.lock().unwrap().push(format!("delete {name}"));
            if let Some(listed) = self.listed.lock().unwrap().as_mut() {
                listed.retain(|n| n != name);
            }
            Ok(())
        }
        async fn list(&self) -> Result<Option<Vec<String>>, ProviderError> {
            Ok(self.listed.lock().unwrap().clone())
        }
    }

    #[async_trait::async_trait]
    impl NodeCalls for World {
        async fn drain(&self, node: &str, _: SocketAddr) -> Result<(), AgentError> {
            self.calls.lock().unwrap().push(format!("drain {node}"));
            Ok(())
        }
        async fn leave(&self, node: &str, _: SocketAddr) -> Result<(), AgentError> {
            self.calls.lock().unwrap().push(format!("leave {node}"));
            Ok(())
        }
    }

    fn settings(dir: &std::path::Path) -> FlowSettings {
        FlowSettings {
            name_prefix: "n".into(),
            reserved: vec!["n1".into(), "n2".into(), "n3".into()],
            role: "web".into(),
            ready_timeout: Duration::from_secs(600),
            drain_timeout: Duration::from_secs(60),
            state_file: dir.join("autoscale.json"),
        }
    }

    fn fact(live: bool, ready: bool) -> NodeFact {
        NodeFact {
            live,
            ready,
            grpc: Some("10.0.0.4:7421".parse().unwrap()),
            web: true,
            galera: true,
        }
    }

    fn core() -> BTreeMap<String, NodeFact> {
        ["n1", "n2", "n3"]
            .iter()
            .map(|n| (n.to_string(), fact(true, true)))
            .collect()
    }

    fn scaler(dir: &std::path::Path, world: &Arc<World>) -> Scaler {
        Scaler::load(settings(dir), world.clone(), world.clone()).unwrap()
    }

    /// Drives one node from launch to deletion; `restart_at` restarts the scaler (a new one
    /// loaded from the file) right after that many advance rounds. Returns the calls made.
    async fn full_cycle(restart_at: Option<usize>) -> Vec<String> {
        cycle(restart_at, true).await
    }

    /// [`full_cycle`] of a node that runs a Galera member (`galera`) or is stateless.
    async fn cycle(restart_at: Option<usize>, galera: bool) -> Vec<String> {
        let now = Now::current();
        let dir = tempfile::tempdir().unwrap();
        let world = Arc::new(World::default());
        let mut s = scaler(dir.path(), &world);
        let mut facts = core();
        s.scale_out(1, &facts, now);
        assert_eq!(s.warming(), 1);
        let mut members: Vec<String> = vec!["n1".into(), "n2".into(), "n3".into()];
        for round in 0..20 {
            if restart_at == Some(round) {
                s = scaler(dir.path(), &world);
            }
            let phase = s.record().nodes.first().map(|n| n.phase);
            match phase {
                // the launched node boots, joins gossip, becomes ready; the balancer adds it
                Some(Phase::Warming) => {
                    facts.insert(
                        "n4".into(),
                        NodeFact {
                            galera,
                            ..fact(true, true)
                        },
                    );
                    members.push("n4".into());
                }
                Some(Phase::Serving) => {
                    assert_eq!(s.removable(&facts), 1);
                    assert_eq!(s.scale_in(&facts, now).as_deref(), Some("n4"));
                }
                // the balancer drained and removed it
                Some(Phase::Draining) => members.retain(|m| m != "n4"),
                None => break,
                _ => {}
            }
            s.advance(now, &facts, Some(&members)).await;
        }
        assert!(s.record().nodes.is_empty(), "{:?}", s.record());
        assert_eq!(s.record().removed, vec!["n4"]);
        let calls = world.calls.lock().unwrap().clone();
        calls
    }

    #[tokio::test]
    async fn a_node_goes_from_launch_to_deletion_in_order() {
        let mut calls = full_cycle(None).await;
        // the drain is asked again on every round while the balancer still lists the node
        calls.dedup();
        assert_eq!(
            calls,
            vec!["launch n4 web", "drain n4", "leave n4", "delete n4"]
        );
    }

    #[tokio::test]
    async fn a_stateless_web_node_is_deleted_without_a_galera_leave() {
        let mut calls = cycle(None, false).await;
        calls.dedup();
        assert_eq!(calls, vec!["launch n4 web", "drain n4", "delete n4"]);
    }

    #[tokio::test]
    async fn a_restart_at_every_step_resumes_and_never_repeats_a_finished_step() {
        for restart_at in 0..8 {
            let calls = full_cycle(Some(restart_at)).await;
            // each step happens once and in order (drain may be asked again while it lasts)
            let mut deduped = calls.clone();
            deduped.dedup();
            assert_eq!(
                deduped,
                vec!["launch n4 web", "drain n4", "leave n4", "delete n4"],
                "restart after round {restart_at}: {calls:?}"
            );
            assert_eq!(calls.iter().filter(|c| c.starts_with("launch")).count(), 1);
            assert_eq!(calls.iter().filter(|c| c.starts_with("delete")).count(), 1);
        }
    }

    #[tokio::test]
    async fn names_are_the_lowest_free_and_a_failed_launch_is_retried_then_cleaned_up() {
        let now = Now::current();
        let dir = tempfile::tempdir().unwrap();
        let world = Arc::new(World::default());
        let mut s = scaler(dir.path(), &world);
        let facts = core();
        s.scale_out(2, &facts, now);
        let names: Vec<&str> = s.record().nodes.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(names, vec!["n4", "n5"]);
        // a dead node is never renamed into, unless this scaler deleted it
        let mut with_dead = facts.clone();
        with_dead.insert("n6".into(), fact(false, false));
        assert_eq!(s.next_name(&with_dead), "n7", "a dead n6 that is not ours");
        s.record.removed.push("n6".into());
        assert_eq!(
            s.next_name(&with_dead),
            "n6",
            "our deleted n6, still in gossip"
        );
        *world.fail_launch.lock().unwrap() = true;
        s.advance(now, &facts, None).await;
        assert!(s.last_error.as_deref().unwrap().contains("exit status: 1"));
        assert_eq!(s.warming(), 2, "retried on the next round");
        // long past the ready timeout: given up and deleted
        for n in &mut s.record.nodes {
            n.since_ms -= 601_000;
        }
        s.advance(now, &facts, None).await;
        s.advance(now, &facts, None).await;
        assert!(s.record().nodes.is_empty(), "{:?}", s.record());
        let calls = world.calls.lock().unwrap().clone();
        assert!(
            calls.contains(&"delete n4".to_string()) && calls.contains(&"delete n5".to_string()),
            "{calls:?}"
        );
    }

    #[tokio::test]
    async fn a_pending_launch_stays_launching_shows_how_far_it_got_and_is_bounded() {
        let now = Now::current();
        let dir = tempfile::tempdir().unwrap();
        let world = Arc::new(World::default());
        *world.pending.lock().unwrap() = true;
        let mut s = scaler(dir.path(), &world);
        let facts = core();
        s.scale_out(1, &facts, now);
        s.advance(now, &facts, None).await;
        assert_eq!(s.record().nodes[0].phase, Phase::Launching);
        assert!(
            s.describe(now)
                .contains("n4 launching 0s (server s1 BUILD (spawning) 3s)"),
            "{}",
            s.describe(now)
        );
        *world.pending.lock().unwrap() = false;
        s.advance(now, &facts, None).await;
        assert_eq!(s.record().nodes[0].phase, Phase::Warming);
        // a launch pending past the ready timeout is given up
        *world.pending.lock().unwrap() = true;
        s.scale_out(1, &facts, now);
        s.record.nodes[1].since_ms -= 601_000;
        s.advance(now, &facts, None).await;
        assert_eq!(s.record().nodes[1].phase, Phase::Deleting);
    }

    #[tokio::test]
    async fn the_sweep_forgets_gone_servers_adopts_serving_ones_and_deletes_strays() {
        let now = Now::current();
        let dir = tempfile::tempdir().unwrap();
        let world = Arc::new(World::default());
        let mut s = scaler(dir.path(), &world);
        s.settings.ready_timeout = Duration::from_millis(100);
        let mut facts = core();
        // n4 is recorded and serving; its server vanishes from the cloud
        s.scale_out(1, &facts, now);
        *world.listed.lock().unwrap() = Some(vec!["n4".into()]);
        s.advance(now, &facts, None).await;
        facts.insert("n4".into(), fact(true, true));
        s.advance(now, &facts, None).await;
        assert_eq!(s.record().nodes[0].phase, Phase::Serving);
        *world.listed.lock().unwrap() = Some(vec![]);
        s.advance(now, &facts, None).await;
        assert_eq!(
            s.record().nodes[0].phase,
            Phase::Serving,
            "one missed list is not enough"
        );
        s.advance(now, &facts, None).await;
        s.advance(now, &facts, None).await;
        assert!(s.record().nodes.is_empty(), "{:?}", s.record());
        // a serving server of ours that no record knows is adopted; one that never serves,
        // and one this scaler deleted, are deleted
        facts.insert("n7".into(), fact(true, true));
        s.record.removed.push("n9".into());
        *world.listed.lock().unwrap() =
            Some(vec!["n7".into(), "n8".into(), "n9".into(), "n1".into()]);
        s.advance(now, &facts, None).await;
        assert_eq!(s.record().nodes.len(), 1);
        assert_eq!(
            (s.record().nodes[0].node.as_str(), s.record().nodes[0].phase),
            ("n7", Phase::Serving)
        );
        let calls = world.calls.lock().unwrap().clone();
        assert!(calls.contains(&"delete n9".to_string()), "{calls:?}");
        assert!(
            !calls.contains(&"delete n8".to_string()),
            "not before the ready timeout: {calls:?}"
        );
        let now = now.later(Duration::from_millis(150));
        s.advance(now, &facts, None).await;
        let calls = world.calls.lock().unwrap().clone();
        assert!(calls.contains(&"delete n8".to_string()), "{calls:?}");
        assert!(
            !calls.iter().any(|c| c == "delete n1"),
            "a core name is never swept: {calls:?}"
        );
    }

    #[tokio::test]
    async fn an_unreadable_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("autoscale.json"), "{ not json").unwrap();
        let world = Arc::new(World::default());
        let error = Scaler::load(settings(dir.path()), world.clone(), world.clone())
            .err()
            .unwrap();
        assert!(error.contains("autoscale.json"), "{error}");
    }
}
