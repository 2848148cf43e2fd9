//! The balancer membership loop.
//!
//! Inputs: the coordinator's [`ClusterView`] (gossip's opinion: live, ready, draining, the
//! node's gRPC address), the agents' own answers over gRPC ([`Confirmer`]), and the
//! balancer's current members ([`Balancer::observe`]).
//! Drives toward: members = ready, non-draining nodes (see [`plan`](super::plan) for the
//! rules: confirmation before change, hysteresis, drain, last member kept).
//! Triggers: every `interval` and at once on every cluster view event; the planner is
//! blind to which. After gRPC confirmations it plans again in the same round, so a
//! confirmed failure is acted on without waiting for the next tick.
//! Errors: an unreadable balancer leaves membership untouched (fact unknown); a failed
//! change is recorded in the status (`last_error`, `errors_total`) and retried with
//! exponential backoff (transient: from `interval` up to 10 s; terminal errors such as
//! Octavia ERROR: every 30 s, never in a tight loop). The loop never exits on error.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;
use triad_proto::v1::AgentStatusRequest;

use super::plan::{plan, Action, Confirmation, Fact, NodeFacts, Observed, Spec, Verdict};
use super::{Balancer, Member, MemberChange, MemberState};
use crate::runner;
use crate::view::{ClusterEvent, ClusterView};

/// Asks a node's agent whether it serves (design principle 2: authenticated gRPC decides).
#[async_trait]
pub trait Confirmer: Send + Sync {
    async fn confirm(&self, node_id: &str, grpc: SocketAddr) -> Verdict;
}

/// AgentService.Status over gRPC with bounded connect and request times. An agent that
/// answers as a different node id counts as unreachable (the address was reused).
#[derive(Debug, Clone)]
pub struct GrpcConfirmer {
    pub timeout: Duration,
}

impl Default for GrpcConfirmer {
    fn default() -> GrpcConfirmer {
        GrpcConfirmer {
            timeout: Duration::from_millis(800),
        }
    }
}

#[async_trait]
impl Confirmer for GrpcConfirmer {
    async fn confirm(&self, node_id: &str, grpc: SocketAddr) -> Verdict {
        let ask = async {
            let mut client =
                crate::agent_client::connect(node_id, grpc, self.timeout, self.timeout).await?;
            crate::agent_client::answer(node_id, client.status(AgentStatusRequest {}).await)
        };
        match tokio::time::timeout(self.timeout * 2, ask).await {
            Ok(Ok(status)) if status.node_id == node_id => {
                if status.ready && !status.draining {
                    Verdict::Serving
                } else {
                    Verdict::NotServing {
                        draining: status.draining,
                    }
                }
            }
            Ok(Ok(status)) => {
                tracing::warn!(node = %node_id, %grpc, answered_as = %status.node_id, "agent answered as another node");
                Verdict::Unreachable
            }
            Ok(Err(error)) => {
                tracing::debug!(node = %node_id, %grpc, %error, "agent did not answer");
                Verdict::Unreachable
            }
            Err(_) => Verdict::Unreachable,
        }
    }
}

/// Where the loop reads the cluster view from (the coordinator, or a test).
pub type ViewSource = Arc<dyn Fn() -> ClusterView + Send + Sync>;

#[derive(Debug, Clone)]
pub struct LoopSettings {
    pub spec: Spec,
    pub interval: Duration,
}

impl Default for LoopSettings {
    fn default() -> LoopSettings {
        LoopSettings {
            spec: Spec::default(),
            interval: Duration::from_millis(250),
        }
    }
}

/// What the loop reports (for status and metrics).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BalancerStatus {
    pub kind: &'static str,
    pub members: Vec<Member>,
    pub rounds_total: u64,
    pub changes_total: u64,
    pub confirmations_total: u64,
    pub errors_total: u64,
    /// The failed round's error, until a round succeeds.
    pub last_error: Option<String>,
    pub last_changes: Vec<MemberChange>,
    /// Maintenance mode as last put in place on the balancer (None: off); `None` also
    /// until the first round.
    pub maintenance: Option<crate::maintenance::Maintenance>,
    /// Whether `maintenance` was put in place (false until it is, and after a failure).
    pub maintenance_applied: bool,
    /// Why maintenance mode could not be put in place, until it is.
    pub maintenance_error: Option<String>,
}

impl BalancerStatus {
    /// Whether the balancer has maintenance mode as `wanted` (None: off) in place.
    pub fn maintenance_in_place(&self, wanted: Option<&crate::maintenance::Maintenance>) -> bool {
        self.maintenance_applied && self.maintenance.as_ref() == wanted
    }
}

/// A running loop; dropping the handle does not stop it, [`BalancerLoop::stop`] does.
pub struct BalancerLoop {
    stop: watch::Sender<bool>,
    status: watch::Receiver<BalancerStatus>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for BalancerLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalancerLoop").finish_non_exhaustive()
    }
}

impl BalancerLoop {
    /// The loop without maintenance mode.
    pub fn start(
        balancer: Arc<dyn Balancer>,
        view: ViewSource,
        events: Option<broadcast::Receiver<ClusterEvent>>,
        confirmer: Arc<dyn Confirmer>,
        settings: LoopSettings,
    ) -> BalancerLoop {
        let (_off, maintenance) = watch::channel(None);
        BalancerLoop::start_with(balancer, view, events, confirmer, settings, maintenance)
    }

    /// The loop, converging the balancer on `maintenance` (the wanted state) every round.
    pub fn start_with(
        balancer: Arc<dyn Balancer>,
        view: ViewSource,
        events: Option<broadcast::Receiver<ClusterEvent>>,
        confirmer: Arc<dyn Confirmer>,
        settings: LoopSettings,
        maintenance: watch::Receiver<Option<crate::maintenance::Maintenance>>,
    ) -> BalancerLoop {
        let (stop, stop_rx) = watch::channel(false);
        let (status_tx, status) = watch::channel(BalancerStatus {
            kind: balancer.kind(),
            ..Default::default()
        });
        tracing::info!(
            balancer = balancer.kind(),
            "balancer membership loop started"
        );
        let mut inputs = runner::Inputs::default();
        if let Some(events) = events {
            // every view event wakes a round (a lagged receiver too: something changed)
            inputs = inputs.wakes(BroadcastStream::new(events).map(|_| ()));
        }
        // a change of the wanted maintenance mode wakes a round at once
        inputs = inputs.wakes(
            tokio_stream::wrappers::WatchStream::from_changes(maintenance.clone()).map(|_| ()),
        );
        let backoff = runner::Backoff {
            first: settings.interval,
            max: Duration::from_secs(10),
            terminal: Duration::from_secs(30),
        };
        let pass = BalancerPass {
            balancer,
            view_source: view,
            confirmer,
            settings,
            memory: Memory::default(),
            watching_since: Instant::now(),
            status: status_tx,
            maintenance,
        };
        let task = tokio::spawn(runner::run("balancer", pass, backoff, inputs, stop_rx));
        BalancerLoop { stop, status, task }
    }

    pub fn status(&self) -> BalancerStatus {
        self.status.borrow().clone()
    }

    pub fn status_watch(&self) -> watch::Receiver<BalancerStatus> {
        self.status.clone()
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The loop's memory between rounds: per node, the last gossip claim, since when it has
/// been serving, and the last confirmation; per member, when its drain was first seen.
#[derive(Debug, Default)]
struct Memory {
    claims: BTreeMap<String, (bool, bool, bool)>,
    serving_since: BTreeMap<String, Instant>,
    confirmations: BTreeMap<String, Confirmation>,
    drain_started: BTreeMap<String, Instant>,
    maint_started: BTreeMap<String, Instant>,
}

impl Memory {
    /// Fold the view in. A changed gossip claim invalidates the node's confirmation: it may
    /// describe the node before the change.
    fn observe_view(&mut self, view: &ClusterView, now: Instant) -> BTreeMap<String, NodeFacts> {
        let mut nodes = BTreeMap::new();
        for member in view.members() {
            let claim = (member.live, member.keys.ready, member.keys.draining);
            if self.claims.get(&member.node_id) != Some(&claim) {
                self.confirmations.remove(&member.node_id);
                self.claims.insert(member.node_id.clone(), claim);
            }
            let serving = member.live && member.keys.ready && !member.keys.draining;
            if serving {
                self.serving_since
                    .entry(member.node_id.clone())
                    .or_insert(now);
            } else {
                self.serving_since.remove(&member.node_id);
            }
            nodes.insert(
                member.node_id.clone(),
                NodeFacts {
                    address: member.keys.grpc.map(|g| g.ip()),
                    live: member.live,
                    ready: member.keys.ready,
                    draining: member.keys.draining,
                    serving_since: self.serving_since.get(&member.node_id).copied(),
                    confirmed: self.confirmations.get(&member.node_id).copied(),
                },
            );
        }
        self.claims.retain(|id, _| nodes.contains_key(id));
        self.serving_since.retain(|id, _| nodes.contains_key(id));
        self.confirmations.retain(|id, _| nodes.contains_key(id));
        nodes
    }

    fn observe_members(&mut self, members: &[Member], now: Instant) {
        for member in members {
            for (state, since) in [
                (MemberState::Draining, &mut self.drain_started),
                (MemberState::Maint, &mut self.maint_started),
            ] {
                if member.state == state {
                    since.entry(member.name.clone()).or_insert(now);
                } else {
                    since.remove(&member.name);
                }
            }
        }
        self.drain_started
            .retain(|name, _| members.iter().any(|m| &m.name == name));
        self.maint_started
            .retain(|name, _| members.iter().any(|m| &m.name == name));
    }
}

/// The membership loop in the runner's shape: a round every `interval` and at once on
/// every view event; a failed round backs off (transient errors from `interval` up to
/// 10 s, terminal ones such as a refused credential 30 s) and is counted in the status.
struct BalancerPass {
    balancer: Arc<dyn Balancer>,
    view_source: ViewSource,
    confirmer: Arc<dyn Confirmer>,
    settings: LoopSettings,
    memory: Memory,
    watching_since: Instant,
    status: watch::Sender<BalancerStatus>,
    maintenance: watch::Receiver<Option<crate::maintenance::Maintenance>>,
}

impl BalancerPass {
    /// Converges maintenance mode on the wanted state: every round while it is on (a
    /// reloaded HAProxy starts with empty maps), and while off until that is in place.
    async fn maintenance(&mut self) {
        let wanted = self.maintenance.borrow().clone();
        if wanted.is_none() && self.status.borrow().maintenance_in_place(None) {
            return;
        }
        let result = self.balancer.maintenance(wanted.as_ref()).await;
        self.status.send_modify(|s| match result {
            Ok(_) => {
                s.maintenance = wanted;
                s.maintenance_applied = true;
                s.maintenance_error = None;
            }
            Err(error) => {
                tracing::warn!(balancer = self.balancer.kind(), "maintenance mode: {error}");
                s.maintenance_applied = false;
                s.maintenance_error = Some(error.to_string());
            }
        });
    }
}

#[async_trait]
impl runner::Reconciler for BalancerPass {
    type Command = ();

    async fn pass(&mut self) -> runner::Next {
        self.maintenance().await;
        let outcome = round(
            self.balancer.as_ref(),
            &self.view_source,
            &self.confirmer,
            &self.settings,
            &mut self.memory,
            self.watching_since,
            &self.status,
        )
        .await;
        match outcome {
            Ok(()) => {
                // the status says what is wrong now; errors_total keeps the history
                self.status
                    .send_if_modified(|s| s.last_error.take().is_some());
                runner::Next::After(self.settings.interval)
            }
            Err((transient, message)) => {
                let kind = self.balancer.kind();
                self.status.send_modify(|s| {
                    s.errors_total += 1;
                    s.last_error = Some(message.clone());
                });
                runner::Next::Failed {
                    message: format!("{kind}: {message}"),
                    transient,
                }
            }
        }
    }
}

/// One observe → (confirm → re-plan) → apply round. Errors: (transient, message).
async fn round(
    balancer: &dyn Balancer,
    view_source: &ViewSource,
    confirmer: &Arc<dyn Confirmer>,
    settings: &LoopSettings,
    memory: &mut Memory,
    watching_since: Instant,
    status: &watch::Sender<BalancerStatus>,
) -> Result<(), (bool, String)> {
    let view = view_source();
    let now = Instant::now();
    let nodes = memory.observe_view(&view, now);
    let members = match balancer.observe().await {
        Ok(members) => members,
        Err(error) => return Err((error.is_transient(), error.to_string())),
    };
    memory.observe_members(&members, now);
    status.send_modify(|s| {
        s.rounds_total += 1;
        s.members = members.clone();
    });
    let mut observed = Observed {
        nodes,
        members: Fact::Known(members),
        drain_started: memory.drain_started.clone(),
        maint_started: memory.maint_started.clone(),
        watching_since,
    };
    let port = balancer.member_port();
    let mut actions = plan(&settings.spec, &observed, port, now);
    let to_confirm: Vec<String> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Confirm { node } => Some(node.clone()),
            Action::Change(_) => None,
        })
        .collect();
    if !to_confirm.is_empty() {
        // Ask every node concurrently; each answer is bounded by the confirmer's timeout.
        let mut asks = JoinSet::new();
        for node in to_confirm {
            let Some(grpc) = view.get(&node).and_then(|m| m.keys.grpc) else {
                continue;
            };
            let confirmer = confirmer.clone();
            asks.spawn(async move {
                let verdict = confirmer.confirm(&node, grpc).await;
                (node, verdict)
            });
        }
        let mut answers = Vec::new();
        while let Some(joined) = asks.join_next().await {
            if let Ok(answer) = joined {
                answers.push(answer);
            }
        }
        let confirmed_at = Instant::now();
        for (node, verdict) in answers {
            tracing::debug!(node = %node, ?verdict, "confirmed over gRPC");
            let confirmation = Confirmation {
                at: confirmed_at,
                verdict,
            };
            memory.confirmations.insert(node.clone(), confirmation);
            if let Some(facts) = observed.nodes.get_mut(&node) {
                facts.confirmed = Some(confirmation);
            }
            status.send_modify(|s| s.confirmations_total += 1);
        }
        actions = plan(&settings.spec, &observed, port, confirmed_at);
    }
    let changes: Vec<MemberChange> = actions
        .into_iter()
        .filter_map(|a| match a {
            Action::Change(change) => Some(change),
            Action::Confirm { .. } => None,
        })
        .collect();
    if changes.is_empty() {
        return Ok(());
    }
    tracing::info!(balancer = balancer.kind(), changes = ?changes, "applying membership changes");
    let result = balancer.apply(&changes).await;
    status.send_modify(|s| {
        s.last_changes = changes.clone();
        if result.is_ok() {
            s.changes_total += changes.len() as u64;
            s.last_error = None;
        }
    });
    result.map_err(|error| (error.is_transient(), error.to_string()))
}
