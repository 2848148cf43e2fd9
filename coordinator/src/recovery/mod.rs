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
//!
//! Shape: [`plan`] decides each pass purely (view, record, memory and `now` in; the record
//! to persist, the status and one agent call out); this module persists, then calls, and
//! publishes a typed [`GaleraStatus`] on a watch channel (`triadctl status`, /metrics).
//! Modules: `plan`, `election` (pure: who bootstraps), `finished` (pure: when a decision
//! is done), `store` (the persisted record), `agents` (the agent calls' port).

mod agents;
pub mod election;
mod finished;
pub mod plan;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use triad_galera::position::Position;

use crate::observer::Coordinator;
use crate::runner::{self, Now};
use crate::view::ClusterView;
pub use agents::{Agents, GrpcAgents, PositionAnswer};
use election::{check_override, elect, Election, Report};
pub use finished::finished;
use plan::{core_members, describe_open, members_for_election, Core, Memory, Step};
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
    /// The restore that holds the loop asks (anyone else is refused while it holds).
    pub restore: bool,
    pub reply: oneshot::Sender<Result<(u64, String), String>>,
}

/// The recovery loop's status as it publishes it: the operator's line, and the facts
/// /metrics reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GaleraStatus {
    /// The line `triadctl status` shows.
    pub line: String,
    /// The decision in flight, if any.
    pub open: Option<OpenDecision>,
    /// The last epoch used (0: never decided).
    pub last_epoch: u64,
    /// When the open decision, and its current phase, began (this coordinator's clock: a
    /// decision adopted at start counts from then).
    pub open_since: Option<std::time::Instant>,
    pub phase_since: Option<std::time::Instant>,
    /// How long the open decision's bootstrap phase took, once it is joining.
    pub bootstrapping_secs: Option<f64>,
    /// The last decision that finished here.
    pub last_decision: Option<FinishedDecision>,
    /// The outage's fast path: "view 3 re-forming", or why it was given up.
    pub fast_path: Option<String>,
}

/// A finished decision's timing, for /metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedDecision {
    pub epoch: u64,
    /// The bootstrap phase (None: it was already joining when this coordinator started).
    pub bootstrapping_secs: Option<f64>,
    pub joining_secs: f64,
    pub total_secs: f64,
}

/// Pure: the timing facts of `next` given the published `previous` at `now`.
fn track_timing(previous: &GaleraStatus, next: &mut GaleraStatus, now: std::time::Instant) {
    let secs = |since: Option<std::time::Instant>| {
        since.map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64())
    };
    next.last_decision = previous.last_decision.clone();
    match (&previous.open, &next.open) {
        (None, Some(_)) => {
            next.open_since = Some(now);
            next.phase_since = Some(now);
        }
        (Some(was), Some(is)) if was.epoch != is.epoch => {
            next.open_since = Some(now);
            next.phase_since = Some(now);
        }
        (Some(was), Some(is)) => {
            next.open_since = previous.open_since;
            next.phase_since = previous.phase_since;
            next.bootstrapping_secs = previous.bootstrapping_secs;
            if was.phase != is.phase {
                if was.phase == Phase::Bootstrapping {
                    next.bootstrapping_secs = Some(secs(previous.phase_since));
                }
                next.phase_since = Some(now);
            }
        }
        (Some(was), None) => {
            let in_phase = secs(previous.phase_since);
            let (bootstrapping_secs, joining_secs) = match was.phase {
                Phase::Bootstrapping => (Some(in_phase), 0.0),
                Phase::Joining => (previous.bootstrapping_secs, in_phase),
            };
            next.last_decision = Some(FinishedDecision {
                epoch: was.epoch,
                bootstrapping_secs,
                joining_secs,
                total_secs: secs(previous.open_since),
            });
        }
        (None, None) => {}
    }
}

/// A decision in flight, for /metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenDecision {
    pub epoch: u64,
    pub node: String,
    /// Bootstrapping, or joining the others.
    pub phase: Phase,
}

/// Handle to the running loop: its status and the operator's command channel.
#[derive(Debug, Clone)]
pub struct RecoveryHandle {
    status: watch::Receiver<GaleraStatus>,
    commands: mpsc::Sender<RecoverCommand>,
    hold: Hold,
}

/// Why the loop is held (a restore, issue 19): while set, a pass neither elects, nor
/// bootstraps, nor joins, and only the holder's commands are served. Memory only: a
/// restarted coordinator is not held (the restore it ran has failed and says so).
type Hold = Arc<std::sync::Mutex<Option<String>>>;

/// The loop stays held while this lives.
#[derive(Debug)]
pub struct RecoveryHold {
    hold: Hold,
}

fn take_hold(hold: &Hold, why: &str) -> Result<RecoveryHold, String> {
    let mut held = hold.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(other) = held.as_ref() {
        return Err(format!("galera recovery is held already: {other}"));
    }
    *held = Some(why.to_string());
    Ok(RecoveryHold { hold: hold.clone() })
}

impl Drop for RecoveryHold {
    fn drop(&mut self) {
        *self.hold.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl RecoveryHandle {
    /// The status line.
    pub fn status(&self) -> String {
        self.status.borrow().line.clone()
    }

    /// The typed status (a snapshot).
    pub fn galera_status(&self) -> GaleraStatus {
        self.status.borrow().clone()
    }

    /// Holds the loop for `why` until the returned guard is dropped; refused while it
    /// is held already.
    pub fn hold(&self, why: &str) -> Result<RecoveryHold, String> {
        take_hold(&self.hold, why)
    }

    pub async fn recover(
        &self,
        bootstrap_node: Option<String>,
        force: bool,
    ) -> Result<(u64, String), String> {
        self.command(bootstrap_node, force, false).await
    }

    /// The holder's bootstrap of `node` (checked: `node` must be the most advanced).
    pub async fn recover_held(&self, node: String) -> Result<(u64, String), String> {
        self.command(Some(node), false, true).await
    }

    async fn command(
        &self,
        bootstrap_node: Option<String>,
        force: bool,
        restore: bool,
    ) -> Result<(u64, String), String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(RecoverCommand {
                bootstrap_node,
                force,
                restore,
                reply,
            })
            .await
            .map_err(|_| "the recovery loop is not running".to_string())?;
        answer
            .await
            .map_err(|_| "the recovery loop stopped".to_string())?
    }
}

pub struct Recovery {
    settings: RecoverySettings,
    store: Store,
    record: GaleraRecord,
    agents: Arc<dyn Agents>,
    memory: Memory,
    status: watch::Sender<GaleraStatus>,
    hold: Hold,
}

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
            memory: Memory::default(),
            status: watch::Sender::new(GaleraStatus {
                line: "starting".into(),
                ..GaleraStatus::default()
            }),
            hold: Hold::default(),
        })
    }

    pub fn record(&self) -> &GaleraRecord {
        &self.record
    }

    pub fn status(&self) -> String {
        self.status.borrow().line.clone()
    }

    /// Publishes `text` with the record's facts (a changed line is also logged).
    fn set_status(&self, text: String) {
        let open = self.record.decision.as_ref().map(|d| OpenDecision {
            epoch: d.epoch,
            node: d.node.clone(),
            phase: d.phase.clone(),
        });
        let last_epoch = self.record.last_epoch;
        let fast_path = self.memory.fast_path.as_ref().map(|f| match &f.gave_up {
            None => format!("view {} re-forming", f.view_seq),
            Some(why) => format!("given up: {why}"),
        });
        self.status.send_if_modified(|status| {
            if status.line != text {
                tracing::info!(galera = %text, "galera status");
            }
            let mut next = GaleraStatus {
                line: text,
                open,
                last_epoch,
                fast_path,
                ..GaleraStatus::default()
            };
            track_timing(status, &mut next, std::time::Instant::now());
            let changed = *status != next;
            *status = next;
            changed
        });
    }

    /// Persists `record` when it differs from the one held. A record that cannot be
    /// written is not adopted: nothing acts on it, and the next pass plans again from the
    /// last one persisted.
    fn adopt(&mut self, record: GaleraRecord) -> bool {
        if record == self.record {
            return true;
        }
        match self.store.save(&record) {
            Ok(()) => {
                self.record = record;
                true
            }
            Err(error) => {
                self.set_status(format!(
                    "cannot persist the galera decision, not acting: {error}"
                ));
                false
            }
        }
    }

    /// See [`RecoveryHandle::hold`] (the loop not spawned: simulations).
    pub fn hold(&self, why: &str) -> Result<RecoveryHold, String> {
        take_hold(&self.hold, why)
    }

    /// Why the loop is held, if it is.
    fn held(&self) -> Option<String> {
        self.hold.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One pass over the current view: [`plan::plan`], then persist, then the one call.
    /// Nothing while held.
    pub async fn tick(&mut self, view: &ClusterView, now: Now) {
        if let Some(why) = self.held() {
            self.set_status(format!("held: {why}"));
            return;
        }
        let core = core_members(view);
        let plan = plan::plan(&self.record, &self.memory, &core, &self.settings, now);
        self.memory = plan.memory;
        if !self.adopt(plan.record) {
            return;
        }
        // no new line keeps the last one, with the record's facts brought up to date
        self.set_status(plan.status.unwrap_or_else(|| self.status()));
        match plan.step {
            Step::Wait => {}
            Step::Join { node, grpc, epoch } => self.join(&node, grpc, epoch, now).await,
            Step::Bootstrap {
                decision,
                grpc,
                then_join,
            } => self.bootstrap(decision, grpc, then_join, now).await,
            Step::Elect { members } => self.elect(&core, members, now).await,
            Step::Reform { view, members } => self.reform(&view, members).await,
        }
    }

    /// The fast path's starts, all at once (pc.recovery needs every member up). A member
    /// that refuses or cannot be reached ends the fast path: the election takes over on
    /// the next pass, and stops whatever mysqld did start, reading positions.
    async fn reform(&mut self, view: &str, members: Vec<(String, SocketAddr)>) {
        let mut calls = tokio::task::JoinSet::new();
        for (node, grpc) in members {
            let (agents, view) = (self.agents.clone(), view.to_string());
            calls.spawn(async move {
                let result = agents.reform(&node, grpc, &view).await;
                (node, result)
            });
        }
        let mut failed = Vec::new();
        while let Some(joined) = calls.join_next().await {
            let Ok((node, result)) = joined else {
                failed.push("a start call panicked".to_string());
                continue;
            };
            match result {
                Ok(message) => tracing::info!(node, view, %message, "fast path start"),
                Err(error) => {
                    tracing::warn!(node, view, %error, "fast path start failed; the election takes over");
                    failed.push(format!("{node}: {error}"));
                }
            }
        }
        if failed.is_empty() {
            return;
        }
        let why = format!("a start was not made ({})", failed.join("; "));
        if let Some(fast) = self.memory.fast_path.as_mut() {
            fast.gave_up = Some(why.clone());
        }
        self.set_status(format!("full outage: fast path given up: {why}; electing"));
    }

    async fn bootstrap(
        &mut self,
        decision: Decision,
        grpc: SocketAddr,
        then_join: Option<(String, SocketAddr)>,
        now: Now,
    ) {
        let position = Position {
            uuid: decision.uuid.clone(),
            seqno: decision.seqno,
        };
        match self
            .agents
            .bootstrap(&decision.node, grpc, decision.epoch, &position)
            .await
        {
            Ok(message) => {
                self.memory.last_bootstrap_failure = None;
                tracing::warn!(epoch = decision.epoch, node = %decision.node, %message, "bootstrapped");
                let mut record = self.record.clone();
                if let Some(open) = record.decision.as_mut() {
                    open.phase = Phase::Joining;
                }
                self.adopt(record);
                self.set_status(format!(
                    "epoch {}: {} bootstrapped ({message}); joining the others one at a time",
                    decision.epoch, decision.node
                ));
                if let Some((first, grpc)) = then_join {
                    self.join(&first, grpc, decision.epoch, now).await;
                }
            }
            Err(error) if error.is_refused() => {
                let reason = error.message;
                // nothing was done for this epoch: elect again from fresh positions
                tracing::warn!(epoch = decision.epoch, node = %decision.node, %reason, "bootstrap refused by the agent; electing again");
                let mut record = self.record.clone();
                record.decision = None;
                self.adopt(record);
                self.memory.last_bootstrap_failure = Some(now.at);
                self.set_status(format!(
                    "epoch {}: {} refused the bootstrap ({reason}); electing again",
                    decision.epoch, decision.node
                ));
            }
            Err(error) => {
                self.memory.last_bootstrap_failure = Some(now.at);
                self.set_status(format!(
                    "epoch {}: bootstrap of {} failed: {error}; retrying",
                    decision.epoch, decision.node
                ))
            }
        }
    }

    async fn join(&mut self, node: &str, grpc: SocketAddr, epoch: u64, now: Now) {
        if self
            .memory
            .last_join
            .as_ref()
            .is_none_or(|(joined_in, last, _)| *joined_in != epoch || last != node)
        {
            self.memory.last_join = Some((epoch, node.to_string(), now.at));
        }
        match self.agents.join(node, grpc, epoch).await {
            Ok(message) => tracing::info!(node, epoch, %message, "join"),
            Err(error) => tracing::warn!(node, %error, "join failed; retrying"),
        }
    }

    /// Every member's position for an election, in two passes: first without stopping
    /// anything; only when no member is in a Primary component, a member that refused (its
    /// mysqld hangs outside one) is asked again with leave to stop it (a joiner inside a
    /// component that gossip does not show yet must never be stopped).
    async fn gather(&self, core: &[Core<'_>], members: &BTreeSet<String>) -> Gathered {
        let mut gathered = Gathered::default();
        let mut again = Vec::new();
        for id in members {
            let Some(member) = core.iter().find(|c| c.id == id) else {
                gathered.problems.push(format!("{id}: not in gossip"));
                continue;
            };
            let Some(grpc) = member.grpc.filter(|_| member.live) else {
                gathered.problems.push(format!("{id}: down"));
                continue;
            };
            match self.agents.position(id, grpc, false).await {
                Ok(answer) if answer.source == "live" => gathered.live_primary.push(id.clone()),
                Ok(answer) => {
                    gathered.answered.insert(
                        id.clone(),
                        plan::Answered {
                            position: answer.report.position.clone(),
                            saved_view: answer.saved_view,
                            generation: answer.generation,
                        },
                    );
                    gathered.reports.insert(id.clone(), answer.report);
                }
                // the agent was reached and said no (mysqld outside a component, not final):
                // asked again below with leave to stop it; an agent that could not be
                // reached is not dialled twice
                Err(error) if error.is_refused() => again.push((id.clone(), grpc)),
                Err(error) => gathered.problems.push(format!("{id}: {error}")),
            }
        }
        if !gathered.live_primary.is_empty() {
            return gathered;
        }
        // all at once: each stop may take the agent's whole grace (a mysqld waiting in
        // pc.recovery ignored SIGTERM for its 25 s on the lab), one after another 75 s
        gathered.stopped_some |= !again.is_empty();
        let mut stops = tokio::task::JoinSet::new();
        for (id, grpc) in again {
            let agents = self.agents.clone();
            stops.spawn(async move {
                let answer = agents.position(&id, grpc, true).await;
                (id, answer)
            });
        }
        let mut answers = Vec::new();
        while let Some(joined) = stops.join_next().await {
            match joined {
                Ok(answer) => answers.push(answer),
                Err(error) => gathered
                    .problems
                    .push(format!("a position call ended abnormally: {error}")),
            }
        }
        answers.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, answer) in answers {
            match answer {
                Ok(answer) if answer.source == "live" => gathered.live_primary.push(id),
                Ok(answer) => {
                    gathered.reports.insert(id, answer.report);
                }
                Err(error) => gathered.problems.push(format!("{id}: {error}")),
            }
        }
        gathered
    }

    /// Gathers `members`' positions and acts on them: the fast path when the agents'
    /// answers show pc.recovery can re-form the view ([`plan::fast_path_from_answers`]),
    /// else the [`elect`]ion: a decision is persisted and its bootstrap called; anything
    /// else is a status line.
    async fn elect(&mut self, core: &[Core<'_>], members: BTreeSet<String>, now: Now) {
        let Gathered {
            reports,
            problems,
            live_primary,
            answered,
            stopped_some,
        } = self.gather(core, &members).await;
        if !live_primary.is_empty() {
            self.set_status(format!(
                "{} report a Primary component over gRPC; waiting for gossip",
                live_primary.join(", ")
            ));
            return;
        }
        if problems.is_empty() && !stopped_some {
            let fast =
                plan::fast_path_from_answers(&mut self.memory, &members, &answered, core, now);
            if let Some((status, plan::Step::Reform { view, members })) = fast {
                tracing::warn!("{status}");
                self.set_status(status);
                self.reform(&view, members).await;
                return;
            }
        }
        match elect(&members, &reports) {
            Election::Waiting { missing } => self.set_status(format!(
                "full outage: waiting for the position of {} ({}); {}",
                missing.join(", "),
                problems.join("; "),
                plan::outage_note(&self.memory, core)
            )),
            Election::Refused { reason } => self.set_status(format!(
                "full outage: automatic bootstrap refused: {reason}"
            )),
            Election::Bootstrap {
                node,
                position,
                formation,
            } => {
                let record = self.record.clone();
                self.decide(
                    record, node, position, formation, false, &members, core, now,
                )
                .await;
            }
        }
    }

    /// Persists a new decision on `record` (fsync) and only then calls its bootstrap.
    /// Returns the decision's epoch.
    #[allow(clippy::too_many_arguments)]
    async fn decide(
        &mut self,
        mut record: GaleraRecord,
        node: String,
        position: Position,
        formation: bool,
        operator: bool,
        members: &BTreeSet<String>,
        core: &[Core<'_>],
        now: Now,
    ) -> u64 {
        let shown = position.to_string();
        let decision = plan::decide(
            &mut record,
            node,
            position,
            formation,
            operator,
            members,
            now,
        );
        let epoch = decision.epoch;
        if !self.adopt(record) {
            return epoch;
        }
        tracing::warn!(epoch, node = %decision.node, position = %shown, formation, operator, "galera bootstrap decided and persisted");
        let (status, step) = plan::bootstrap_step(core, decision, &self.memory, now);
        if let Some(status) = status {
            self.set_status(status);
        }
        if let Step::Bootstrap {
            decision,
            grpc,
            then_join,
        } = step
        {
            self.bootstrap(decision, grpc, then_join, now).await;
        }
        epoch
    }

    /// `triadctl recover`: with a node, bootstrap it (checked unless forced); without, skip
    /// the grace period.
    pub async fn operator_recover(
        &mut self,
        view: &ClusterView,
        node: Option<String>,
        force: bool,
        now: Now,
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
        let mut record = self.record.clone();
        if plan::close_if_finished(&mut record, &core, &[], &[], now) {
            self.memory.last_join = None;
        }
        if !self.adopt(record) {
            return Err(self.status());
        }
        if let Some(decision) = self.record.decision.clone() {
            let same = node.as_ref().is_none_or(|n| *n == decision.node);
            if same {
                // what the operator asks for is already under way: not a conflict
                return Ok((
                    decision.epoch,
                    format!("already under way: {}", describe_open(&decision, now)),
                ));
            }
            if !force {
                return Err(format!(
                    "{}; use --force to replace it",
                    describe_open(&decision, now)
                ));
            }
        }
        let Some(node) = node else {
            // no decision is open here (an open one returned above): elect now
            self.memory.outage_since = Some(now.at - self.settings.grace);
            if !self.memory.retry_pending(now) {
                let members = members_for_election(&self.record, &self.settings, &core);
                self.elect(&core, members, now).await;
            }
            return Ok((self.record.last_epoch, self.status()));
        };
        let all: BTreeSet<String> = core.iter().map(|c| c.id.to_string()).collect();
        let Gathered {
            reports,
            live_primary: live,
            ..
        } = self.gather(&core, &all).await;
        if !live.is_empty() {
            return Err(format!("{} report a Primary component", live.join(", ")));
        }
        let position = check_override(&node, &reports, force)?;
        tracing::warn!(node = %node, force, "operator-requested bootstrap");
        let mut record = self.record.clone();
        plan::close(
            &mut record,
            format!("replaced by the operator's bootstrap of {node} (--force)"),
            now,
        );
        self.memory.last_join = None;
        let members = members_for_election(&record, &self.settings, &core);
        let epoch = self
            .decide(record, node, position, false, true, &members, &core, now)
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
            status: self.status.subscribe(),
            commands,
            hold: self.hold.clone(),
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

/// What the election's position calls brought back.
#[derive(Default)]
struct Gathered {
    reports: BTreeMap<String, Report>,
    /// "n2: down", "n3: <error>".
    problems: Vec<String>,
    /// Members that answered from a live Primary component.
    live_primary: Vec<String>,
    /// The first pass's answers (stopped nodes), as the fast path reads them.
    answered: BTreeMap<String, plan::Answered>,
    /// A member was asked again with leave to stop its mysqld.
    stopped_some: bool,
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
        if let Some(why) = self.recovery.held().filter(|_| !command.restore) {
            let _ = command
                .reply
                .send(Err(format!("galera recovery is held: {why}")));
            return;
        }
        let result = self
            .recovery
            .operator_recover(
                &self.coordinator.view(),
                command.bootstrap_node,
                command.force,
                Now::current(),
            )
            .await;
        let _ = command.reply.send(result);
    }

    async fn pass(&mut self) -> runner::Next {
        self.recovery
            .tick(&self.coordinator.view(), Now::current())
            .await;
        runner::Next::After(self.recovery.settings.tick)
    }
}

#[cfg(test)]
mod timing_tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn with(open: Option<(u64, Phase)>) -> GaleraStatus {
        GaleraStatus {
            open: open.map(|(epoch, phase)| OpenDecision {
                epoch,
                node: "n2".into(),
                phase,
            }),
            ..GaleraStatus::default()
        }
    }

    #[test]
    fn a_decision_is_timed_per_phase_from_open_to_finished() {
        let t0 = Instant::now();
        let step = |previous: &GaleraStatus, open, at: u64| {
            let mut next = with(open);
            track_timing(previous, &mut next, t0 + Duration::from_secs(at));
            next
        };
        let idle = GaleraStatus::default();
        let booting = step(&idle, Some((4, Phase::Bootstrapping)), 10);
        assert_eq!(booting.open_since, Some(t0 + Duration::from_secs(10)));
        let still = step(&booting, Some((4, Phase::Bootstrapping)), 12);
        assert_eq!(still.open_since, booting.open_since, "kept while open");
        let joining = step(&still, Some((4, Phase::Joining)), 13);
        assert_eq!(joining.bootstrapping_secs, Some(3.0));
        let done = step(&joining, None, 20);
        assert_eq!(
            done.last_decision,
            Some(FinishedDecision {
                epoch: 4,
                bootstrapping_secs: Some(3.0),
                joining_secs: 7.0,
                total_secs: 10.0,
            })
        );
        assert_eq!(done.open_since, None);
        // the finished one stays shown while idle
        let later = step(&done, None, 30);
        assert_eq!(later.last_decision, done.last_decision);
    }
}
