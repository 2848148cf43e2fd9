//! Galera formation and full-outage recovery (design section 5): the coordinator loop.
//!
//! Inputs: the cluster view (gossip: which core nodes are live, Synced, Primary), the
//! persisted [`store::GaleraRecord`], and positions asked of the agents over gRPC. It drives
//! toward one Primary component with every core node Synced:
//! - while a component is Primary it only remembers its members (the last Primary view)
//!   and, after a bootstrap, asks the stopped nodes to join;
//! - when no node has been Primary for longer than the grace period, it asks every member
//!   of the last Primary view for its position (an agent stops a mysqld that hangs outside
//!   a Primary component first), runs the [`election`], persists the decision with a new
//!   epoch (fsync) and only then calls `Bootstrap` on the chosen node;
//! - a persisted decision is resumed after a restart: the same node, the same epoch.
//!
//! Errors (an unreachable agent, a refused call) are shown in the status line and retried
//! on the next tick; nothing is retried with a different node without a new election.

mod agents;
pub mod election;
mod finished;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use triad_galera::join::{next_joiner, MemberGalera, JOIN_SETTLE};
use triad_galera::position::Position;
use triad_proto::gossip::{GaleraKeys, GaleraState, Role};

use crate::observer::Coordinator;
use crate::runner;
use crate::view::ClusterView;
pub use agents::{Agents, GrpcAgents, PositionAnswer};
use election::{check_override, elect, Election, Report};
pub use finished::finished;
use store::{Decision, GaleraRecord, Phase, Store};

#[derive(Debug, Clone)]
pub struct RecoverySettings {
    pub state_dir: std::path::PathBuf,
    /// No Primary for this long counts as a full outage.
    pub grace: Duration,
    pub tick: Duration,
    /// Galera members when no Primary view was ever recorded (from config).
    pub expected_nodes: Vec<String>,
}

/// An operator request.
#[derive(Debug)]
pub struct RecoverCommand {
    pub bootstrap_node: Option<String>,
    pub force: bool,
    pub reply: oneshot::Sender<Result<(u64, String), String>>,
}

/// Handle to the running loop: its status line and the operator's command channel.
#[derive(Debug, Clone)]
pub struct RecoveryHandle {
    status: Arc<RwLock<String>>,
    commands: mpsc::Sender<RecoverCommand>,
}

impl RecoveryHandle {
    pub fn status(&self) -> String {
        self.status
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub async fn recover(
        &self,
        bootstrap_node: Option<String>,
        force: bool,
    ) -> Result<(u64, String), String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(RecoverCommand {
                bootstrap_node,
                force,
                reply,
            })
            .await
            .map_err(|_| "the recovery loop is not running".to_string())?;
        answer
            .await
            .map_err(|_| "the recovery loop stopped".to_string())?
    }
}

struct Core<'a> {
    id: &'a str,
    live: bool,
    grpc: Option<SocketAddr>,
    state: GaleraState,
    /// Synced in a Primary component.
    primary: bool,
    /// Reports being in a Primary component, in any local state (Synced, a donor's
    /// `Donor/Desynced`, a joiner's `Joined`).
    in_component: bool,
    /// `wsrep_cluster_size` the node reports.
    size: Option<u32>,
    keys: &'a GaleraKeys,
}

/// A member outside the Primary component, for the status line.
fn describe_outside(member: &Core<'_>, core: &[Core<'_>]) -> String {
    if member.state != GaleraState::Ahead {
        return format!("{} {}", member.id, member.state);
    }
    let primary_seqno = core
        .iter()
        .filter(|c| c.primary)
        .filter_map(|c| c.keys.seqno)
        .max();
    let seqno = |s: Option<i64>| s.map_or("?".to_string(), |s| s.to_string());
    format!(
        "{} ahead of the Primary component (seqno {} vs {}; Galera refused it: Reversing \
         history): kept stopped with its data, an operator decides",
        member.id,
        seqno(member.keys.seqno),
        seqno(primary_seqno)
    )
}

/// The live members that report being in a Primary component, whatever their local state.
fn component_of(core: &[Core<'_>]) -> Vec<String> {
    core.iter()
        .filter(|c| c.in_component)
        .map(|c| c.id.to_string())
        .collect()
}

fn core_members(view: &ClusterView) -> Vec<Core<'_>> {
    view.members()
        .filter(|m| m.keys.role == Role::Core && m.keys.galera.state != GaleraState::NotManaged)
        .map(|m| Core {
            id: &m.node_id,
            live: m.live,
            grpc: m.keys.grpc,
            state: m.keys.galera.state,
            primary: m.live
                && m.keys.galera.state == GaleraState::Synced
                && m.keys.galera.cluster_status.as_deref() == Some("Primary"),
            in_component: m.live && m.keys.galera.cluster_status.as_deref() == Some("Primary"),
            size: m.keys.galera.size,
            keys: &m.keys.galera,
        })
        .collect()
}

pub struct Recovery {
    settings: RecoverySettings,
    store: Store,
    record: GaleraRecord,
    agents: Arc<dyn Agents>,
    outage_since: Option<Instant>,
    /// A refused bootstrap is retried after [`BOOTSTRAP_RETRY`], not on every tick.
    last_bootstrap_failure: Option<Instant>,
    /// The epoch, the member last asked to join in it, and since when (bounds the
    /// one-at-a-time wait; a join of an earlier epoch does not count).
    last_join: Option<(u64, String, Instant)>,
    status: Arc<RwLock<String>>,
}

const BOOTSTRAP_RETRY: Duration = Duration::from_secs(5);

impl Recovery {
    pub fn new(
        settings: RecoverySettings,
        agents: Arc<dyn Agents>,
    ) -> Result<Recovery, store::StoreError> {
        let store = Store::new(&settings.state_dir);
        let record = store.load()?;
        if let Some(decision) = &record.decision {
            tracing::warn!(epoch = decision.epoch, node = %decision.node, phase = ?decision.phase, "resuming a persisted galera decision");
        }
        Ok(Recovery {
            settings,
            store,
            record,
            agents,
            outage_since: None,
            last_bootstrap_failure: None,
            last_join: None,
            status: Arc::new(RwLock::new("starting".into())),
        })
    }

    pub fn record(&self) -> &GaleraRecord {
        &self.record
    }

    pub fn status(&self) -> String {
        self.status
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_status(&self, text: String) {
        let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
        if *status != text {
            tracing::info!(galera = %text, "galera status");
            *status = text;
        }
    }

    fn save(&mut self) -> bool {
        match self.store.save(&self.record) {
            Ok(()) => true,
            Err(error) => {
                self.set_status(format!(
                    "cannot persist the galera decision, not acting: {error}"
                ));
                false
            }
        }
    }

    /// One pass over the current view.
    pub async fn tick(&mut self, view: &ClusterView, now: Instant) {
        let core = core_members(view);
        if core.is_empty() {
            self.set_status("no Galera member in the cluster view yet".into());
            return;
        }
        let primary: Vec<String> = core
            .iter()
            .filter(|c| c.primary)
            .map(|c| c.id.to_string())
            .collect();
        let component = component_of(&core);
        self.close_if_finished(&core, &primary, &component);
        if !component.is_empty() {
            // a component whose only Synced member became a donor is still Primary: it is
            // serving a joiner's state transfer, not down
            self.outage_since = None;
            self.with_primary(&core, primary).await;
            return;
        }
        if let Some(decision) = self.record.decision.clone() {
            self.bootstrap_decided(&core, decision).await;
            return;
        }
        let since = *self.outage_since.get_or_insert(now);
        let down_for = now.saturating_duration_since(since);
        if down_for < self.settings.grace {
            self.set_status(format!(
                "no Primary component for {:.1}s (grace {:?})",
                down_for.as_secs_f64(),
                self.settings.grace
            ));
            return;
        }
        self.elect_and_bootstrap(&core).await;
    }

    async fn with_primary(&mut self, core: &[Core<'_>], mut primary: Vec<String>) {
        primary.sort();
        // record a view only when gossip agrees with itself: every member reports the
        // component size we see (a stale "Primary" of a node that just lost its peers
        // would otherwise shrink the view)
        let consistent = core
            .iter()
            .filter(|c| c.primary)
            .all(|c| c.size == Some(primary.len() as u32));
        if consistent
            && !primary.is_empty()
            && self.record.last_primary_view != primary
            && self.record.decision.is_none()
        {
            self.record.last_primary_view = primary.clone();
            self.save();
        }
        let Some(mut decision) = self.record.decision.clone() else {
            let mut parts = vec![if primary.is_empty() {
                "Primary component: no member Synced (a state transfer)".to_string()
            } else {
                format!("Primary: {} synced", primary.join(", "))
            }];
            parts.extend(
                core.iter()
                    .filter(|c| !c.primary)
                    .map(|c| describe_outside(c, core)),
            );
            parts.extend(self.closed_note());
            self.set_status(parts.join("; "));
            return;
        };
        if decision.phase == Phase::Bootstrapping || !decision.primary_seen {
            decision.phase = Phase::Joining;
            decision.primary_seen = true;
            self.record.decision = Some(decision.clone());
            self.save();
        }
        let waiting: Vec<String> = core
            .iter()
            .filter(|c| !c.primary)
            .map(|c| describe_outside(c, core))
            .collect();
        if let Some(next) = self.next_join(core, decision.epoch) {
            self.join(core, &next, decision.epoch).await;
        }
        self.set_status(format!(
            "epoch {}: {} bootstrapped; joining {}",
            decision.epoch,
            decision.node,
            waiting.join(", ")
        ));
    }

    /// Closes the open decision once [`finished`] says it has done its work: persisted,
    /// logged, and kept as `last_closed` for the status and the operator.
    fn close_if_finished(&mut self, core: &[Core<'_>], primary: &[String], component: &[String]) {
        let Some(decision) = &self.record.decision else {
            return;
        };
        let ids: Vec<&str> = core.iter().map(|c| c.id).collect();
        let Some(how) = finished(decision, &ids, primary, component) else {
            return;
        };
        self.close_decision(how);
        if !primary.is_empty() && primary.len() == ids.len() {
            let mut view = primary.to_vec();
            view.sort();
            self.record.last_primary_view = view;
        }
        self.save();
    }

    /// Takes the open decision off the record (not yet saved) and keeps it as
    /// `last_closed` with `how` it ended.
    fn close_decision(&mut self, how: String) {
        let Some(decision) = self.record.decision.take() else {
            return;
        };
        tracing::info!(epoch = decision.epoch, node = %decision.node, %how, "galera decision closed");
        self.record.last_closed = Some(store::Closed {
            epoch: decision.epoch,
            node: decision.node,
            closed_at: store::unix_now(),
            how,
        });
        self.last_join = None;
    }

    /// The last closed decision, for the status line: "last recovery: epoch 4 (n1) closed
    /// at 2026-12-04T20:41:03Z: …" (a time, not an age, so the line does not change every
    /// tick).
    fn closed_note(&self) -> Option<String> {
        let closed = self.record.last_closed.as_ref()?;
        let at = std::time::UNIX_EPOCH + Duration::from_secs(closed.closed_at);
        Some(format!(
            "last recovery: epoch {} ({}) closed at {}: {}",
            closed.epoch,
            closed.node,
            humantime::format_rfc3339_seconds(at),
            closed.how
        ))
    }

    /// What the open decision is doing, for refusals and the operator: "epoch 4 chose n1
    /// (seqno 57) 12s ago, joining the others; it closes when n1, n2, n3 are Synced in one
    /// Primary component, or when that component is lost again".
    fn describe_open(&self, decision: &Decision) -> String {
        let ago = if decision.decided_at == 0 {
            String::new()
        } else {
            format!(
                " {}s ago",
                store::unix_now().saturating_sub(decision.decided_at)
            )
        };
        let doing = match (&decision.phase, decision.primary_seen) {
            (Phase::Bootstrapping, _) => format!("bootstrapping {}", decision.node),
            (Phase::Joining, false) => {
                format!("{} bootstrapped, waiting to see it Primary", decision.node)
            }
            (Phase::Joining, true) => "joining the others".to_string(),
        };
        let members = if decision.members.is_empty() {
            "every core member".to_string()
        } else {
            decision.members.join(", ")
        };
        let closes = if decision.primary_seen {
            format!(
                "it closes when {members} are Synced in one Primary component, or when that \
                 component is lost again"
            )
        } else {
            format!(
                "it closes when {members} are Synced in one Primary component, or when a \
                 Primary forms without {}",
                decision.node
            )
        };
        format!(
            "epoch {} chose {} (seqno {}){ago}, {doing}; {closes}",
            decision.epoch, decision.node, decision.seqno
        )
    }

    async fn bootstrap_decided(&mut self, core: &[Core<'_>], decision: Decision) {
        let target = core.iter().find(|c| c.id == decision.node);
        let Some(grpc) = target.filter(|c| c.live).and_then(|c| c.grpc) else {
            self.set_status(format!(
                "epoch {}: waiting for {} (chosen at seqno {}) to come back",
                decision.epoch, decision.node, decision.seqno
            ));
            return;
        };
        if self
            .last_bootstrap_failure
            .is_some_and(|failed| failed.elapsed() < BOOTSTRAP_RETRY)
        {
            return;
        }
        let position = Position {
            uuid: decision.uuid.clone(),
            seqno: decision.seqno,
        };
        self.set_status(format!(
            "epoch {}: bootstrapping {} at {position}",
            decision.epoch, decision.node
        ));
        match self
            .agents
            .bootstrap(&decision.node, grpc, decision.epoch, &position)
            .await
        {
            Ok(message) => {
                self.last_bootstrap_failure = None;
                tracing::warn!(epoch = decision.epoch, node = %decision.node, %message, "bootstrapped");
                let mut decided = decision.clone();
                decided.phase = Phase::Joining;
                self.record.decision = Some(decided);
                self.save();
                self.set_status(format!(
                    "epoch {}: {} bootstrapped ({message}); joining the others one at a time",
                    decision.epoch, decision.node
                ));
                // the first joiner at once (gossip does not show the new Primary yet); the
                // others one at a time as each enters the component (see `next_join`)
                let first = core
                    .iter()
                    .filter(|c| c.id != decision.node && c.live)
                    .map(|c| c.id)
                    .min();
                if let Some(first) = first {
                    self.join(core, first, decision.epoch).await;
                }
            }
            Err(error) if error.is_refused() => {
                let reason = error.message;
                // nothing was done for this epoch: elect again from fresh positions
                tracing::warn!(epoch = decision.epoch, node = %decision.node, %reason, "bootstrap refused by the agent; electing again");
                self.record.decision = None;
                self.save();
                self.last_bootstrap_failure = Some(Instant::now());
                self.set_status(format!(
                    "epoch {}: {} refused the bootstrap ({reason}); electing again",
                    decision.epoch, decision.node
                ));
            }
            Err(error) => {
                self.last_bootstrap_failure = Some(Instant::now());
                self.set_status(format!(
                    "epoch {}: bootstrap of {} failed: {error}; retrying",
                    decision.epoch, decision.node
                ))
            }
        }
    }

    /// The member to ask to join now: [`next_joiner`] (one at a time into the component,
    /// lowest id first); when the last joiner has not entered the component within
    /// [`JOIN_SETTLE`], the lowest stopped member goes anyway.
    fn next_join(&self, core: &[Core<'_>], epoch: u64) -> Option<String> {
        let galera: Vec<MemberGalera> = core
            .iter()
            .map(|c| MemberGalera {
                id: c.id,
                live: c.live,
                keys: c.keys,
            })
            .collect();
        if let Some(next) = next_joiner(&galera) {
            return Some(next.to_string());
        }
        // a join of an earlier epoch (an outage that hit while joiners were going in) says
        // nothing about this one: its age must not let two joiners go at once
        let (last, since) = match &self.last_join {
            Some((joined_in, last, since)) if *joined_in == epoch => (last, since),
            _ => return None,
        };
        if since.elapsed() < JOIN_SETTLE {
            return None;
        }
        let next = core
            .iter()
            .filter(|c| c.live && c.state == GaleraState::Stopped && c.id != last)
            .map(|c| c.id)
            .min()?;
        tracing::warn!(joiner = %last, next, "joiner not in the Primary component after {JOIN_SETTLE:?}; joining the next one anyway");
        Some(next.to_string())
    }

    async fn join(&mut self, core: &[Core<'_>], node: &str, epoch: u64) {
        let Some(grpc) = core.iter().find(|c| c.id == node).and_then(|c| c.grpc) else {
            return;
        };
        if self
            .last_join
            .as_ref()
            .is_none_or(|(joined_in, last, _)| *joined_in != epoch || last != node)
        {
            self.last_join = Some((epoch, node.to_string(), Instant::now()));
        }
        match self.agents.join(node, grpc, epoch).await {
            Ok(message) => tracing::info!(node, epoch, %message, "join"),
            Err(error) => tracing::warn!(node, %error, "join failed; retrying"),
        }
    }

    /// Whose positions an election waits for: the last Primary view seen in gossip, and
    /// always every configured `[galera] nodes` member — gossip can be forged, and a
    /// forged small "Primary" must not shrink the election to a node that is behind.
    fn members_for_election(&self, core: &[Core<'_>]) -> BTreeSet<String> {
        if !self.record.last_primary_view.is_empty() {
            let mut members: BTreeSet<String> =
                self.record.last_primary_view.iter().cloned().collect();
            members.extend(self.settings.expected_nodes.iter().cloned());
            return members;
        }
        if !self.settings.expected_nodes.is_empty() {
            return self.settings.expected_nodes.iter().cloned().collect();
        }
        core.iter().map(|c| c.id.to_string()).collect()
    }

    /// Every member's position for an election, in two passes: first without stopping
    /// anything; only when no member is in a Primary component, a member that refused (its
    /// mysqld hangs outside one) is asked again with leave to stop it (a joiner inside a component that
    /// gossip does not show yet must never be stopped). Returns the reports, the problems
    /// ("n2: down"), and the members that answered from a live Primary component.
    async fn gather(
        &self,
        core: &[Core<'_>],
        members: &BTreeSet<String>,
    ) -> (BTreeMap<String, Report>, Vec<String>, Vec<String>) {
        let mut reports = BTreeMap::new();
        let mut problems = Vec::new();
        let mut live_primary = Vec::new();
        let mut again = Vec::new();
        for id in members {
            let Some(member) = core.iter().find(|c| c.id == id) else {
                problems.push(format!("{id}: not in gossip"));
                continue;
            };
            let Some(grpc) = member.grpc.filter(|_| member.live) else {
                problems.push(format!("{id}: down"));
                continue;
            };
            match self.agents.position(id, grpc, false).await {
                Ok(answer) if answer.source == "live" => live_primary.push(id.clone()),
                Ok(answer) => {
                    reports.insert(id.clone(), answer.report);
                }
                // the agent was reached and said no (mysqld outside a component, not final):
                // asked again below with leave to stop it; an agent that could not be
                // reached is not dialled twice
                Err(error) if error.is_refused() => again.push((id.clone(), grpc)),
                Err(error) => problems.push(format!("{id}: {error}")),
            }
        }
        if !live_primary.is_empty() {
            return (reports, problems, live_primary);
        }
        for (id, grpc) in again {
            match self.agents.position(&id, grpc, true).await {
                Ok(answer) if answer.source == "live" => live_primary.push(id),
                Ok(answer) => {
                    reports.insert(id, answer.report);
                }
                Err(error) => problems.push(format!("{id}: {error}")),
            }
        }
        (reports, problems, live_primary)
    }

    async fn elect_and_bootstrap(&mut self, core: &[Core<'_>]) {
        if self
            .last_bootstrap_failure
            .is_some_and(|failed| failed.elapsed() < BOOTSTRAP_RETRY)
        {
            return;
        }
        let members = self.members_for_election(core);
        let (reports, problems, live_primary) = self.gather(core, &members).await;
        if !live_primary.is_empty() {
            self.set_status(format!(
                "{} report a Primary component over gRPC; waiting for gossip",
                live_primary.join(", ")
            ));
            return;
        }
        match elect(&members, &reports) {
            Election::Waiting { missing } => self.set_status(format!(
                "full outage: waiting for the position of {} ({})",
                missing.join(", "),
                problems.join("; ")
            )),
            Election::Refused { reason } => self.set_status(format!(
                "full outage: automatic bootstrap refused: {reason}"
            )),
            Election::Bootstrap {
                node,
                position,
                formation,
            } => {
                self.decide(node, position, formation, false, &members, core)
                    .await;
            }
        }
    }

    async fn decide(
        &mut self,
        node: String,
        position: Position,
        formation: bool,
        operator: bool,
        members: &BTreeSet<String>,
        core: &[Core<'_>],
    ) -> u64 {
        let epoch = self.record.last_epoch + 1;
        let decision = Decision {
            epoch,
            node: node.clone(),
            uuid: position.uuid.clone(),
            seqno: position.seqno,
            formation,
            operator,
            phase: Phase::Bootstrapping,
            members: members.iter().cloned().collect(),
            decided_at: store::unix_now(),
            primary_seen: false,
        };
        self.record.last_epoch = epoch;
        self.record.decision = Some(decision.clone());
        if !self.save() {
            return epoch;
        }
        tracing::warn!(epoch, node = %node, %position, formation, operator, "galera bootstrap decided and persisted");
        self.bootstrap_decided(core, decision).await;
        epoch
    }

    /// `triadctl recover`: with a node, bootstrap it (checked unless forced); without, skip
    /// the grace period.
    pub async fn operator_recover(
        &mut self,
        view: &ClusterView,
        node: Option<String>,
        force: bool,
    ) -> Result<(u64, String), String> {
        let core = core_members(view);
        if let Some(primary) = core.iter().find(|c| c.in_component) {
            return Err(format!(
                "{} is in a Primary component ({}): nothing to recover",
                primary.id, primary.state
            ));
        }
        // a decision whose work is done is closed first: the loop may not have ticked
        // since (the operator often acts seconds after the outage)
        self.close_if_finished(&core, &[], &[]);
        if let Some(decision) = self.record.decision.clone() {
            let same = node.as_ref().is_none_or(|n| *n == decision.node);
            if same {
                // what the operator asks for is already under way: not a conflict
                return Ok((
                    decision.epoch,
                    format!("already under way: {}", self.describe_open(&decision)),
                ));
            }
            if !force {
                return Err(format!(
                    "{}; use --force to replace it",
                    self.describe_open(&decision)
                ));
            }
        }
        let Some(node) = node else {
            self.outage_since = Some(Instant::now() - self.settings.grace);
            self.record.decision = None;
            self.elect_and_bootstrap(&core).await;
            return Ok((self.record.last_epoch, self.status()));
        };
        let all: BTreeSet<String> = core.iter().map(|c| c.id.to_string()).collect();
        let (reports, _, live) = self.gather(&core, &all).await;
        if !live.is_empty() {
            return Err(format!("{} report a Primary component", live.join(", ")));
        }
        let position = check_override(&node, &reports, force)?;
        tracing::warn!(node = %node, force, "operator-requested bootstrap");
        self.close_decision(format!(
            "replaced by the operator's bootstrap of {node} (--force)"
        ));
        let members = self.members_for_election(&core);
        let epoch = self
            .decide(node, position, false, true, &members, &core)
            .await;
        Ok((epoch, self.status()))
    }

    /// Spawn the loop (a pass every `tick`, operator commands between passes); the
    /// handle serves status and operator commands.
    pub fn spawn(
        self,
        coordinator: Arc<Coordinator>,
        stop: watch::Receiver<bool>,
    ) -> RecoveryHandle {
        let (commands, receiver) = mpsc::channel(4);
        let handle = RecoveryHandle {
            status: self.status.clone(),
            commands,
        };
        let pass = RecoveryPass {
            recovery: self,
            coordinator,
        };
        tokio::spawn(runner::run(
            "galera recovery",
            pass,
            runner::Backoff::NEVER_USED,
            runner::Inputs::default().commands(receiver),
            stop,
        ));
        handle
    }
}

/// Recovery in the runner's shape.
struct RecoveryPass {
    recovery: Recovery,
    coordinator: Arc<Coordinator>,
}

#[async_trait::async_trait]
impl runner::Reconciler for RecoveryPass {
    type Command = RecoverCommand;

    async fn command(&mut self, command: RecoverCommand) {
        let result = self
            .recovery
            .operator_recover(
                &self.coordinator.view(),
                command.bootstrap_node,
                command.force,
            )
            .await;
        let _ = command.reply.send(result);
    }

    async fn pass(&mut self) -> runner::Next {
        self.recovery
            .tick(&self.coordinator.view(), Instant::now())
            .await;
        runner::Next::After(self.recovery.settings.tick)
    }
}
