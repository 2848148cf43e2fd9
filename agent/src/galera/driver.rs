//! The Galera driver: the loop that observes, plans and applies for the local mysqld, and
//! the fenced actions the coordinator asks for over gRPC (position, bootstrap, join).
//!
//! Loop ticks and gRPC actions are serialised by one async mutex, so a bootstrap never
//! races the loop's own start of mysqld.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;
use triad_cluster::membership::Membership;
use triad_galera::join::{next_joiner, MemberGalera};
use triad_galera::position::{parse_reversing_history, GraState, Position, ReversingHistory};
use triad_galera::view::SavedView;
use triad_proto::gossip::{GaleraKeys, GaleraState, Role};

use super::host::{GaleraHost, HostError};
use super::tls::TlsInstall;
use super::{
    best_position, cnf, derive_state, keys, plan, Action, GaleraSettings, Observed, UnitState,
    DISCONNECTED_LIMIT, DONOR_ORPHAN_LIMIT, JOIN_STUCK_LIMIT, LEAVE_STOP_GRACE, OUTSIDE_LIMIT,
    OUTSIDE_STOP_GRACE, REFORM_STOP_GRACE,
};
use crate::state::AgentState;

/// Why a coordinator request was refused; mapped to gRPC status codes by the server.
#[derive(Debug, thiserror::Error)]
pub enum GaleraError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("galera is not managed on this node")]
    NotManaged,
    #[error(transparent)]
    Host(#[from] HostError),
}

/// A position report for the coordinator.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionReport {
    pub position: Position,
    pub safe_to_bootstrap: bool,
    pub source: &'static str,
    /// The stopped node's saved Primary view (gvwstate.dat, gossip form), if any.
    pub saved_view: Option<String>,
    /// This agent's gossip generation.
    pub generation: u64,
}

/// One gossip snapshot, as the Galera module uses it.
#[derive(Debug)]
struct GossipFacts {
    peers: Vec<IpAddr>,
    peer_primary: bool,
    /// A live core peer reports being in a Primary component, in any local state (a donor
    /// serving a state transfer is `Donor/Desynced`).
    peer_component: bool,
    /// [`next_joiner`] names this node (it is counted as stopped).
    my_turn: bool,
    /// A live peer's mysqld is joining (starting, or receiving a state transfer).
    peer_joining: bool,
}

#[derive(Debug, Default)]
struct Memory {
    recovered: Option<Position>,
    last_start: Option<Instant>,
    coordinator_action: bool,
    waiting_for_turn_since: Option<Instant>,
    /// The last run aborted with `Reversing history`.
    ahead: Option<ReversingHistory>,
    /// The InvocationID of the last ended run whose log was read (read once per run).
    read_run: Option<String>,
    /// The node left the cluster (scale-in): mysqld stays stopped for this agent's life.
    left: bool,
    /// Node maintenance (issue 21): no action and no start while on; mysqld leaves when
    /// the coordinator grants this node's turn ([`GaleraDriver::maintenance_leave`]).
    maintenance: bool,
    /// The system shuts down: a leave signals mysqld instead of queueing a stop job.
    shutting_down: bool,
    /// A restore (issue 19) holds mysqld stopped: the backup's id, until the coordinator's
    /// next bootstrap or join. Memory only: a restarted agent starts nothing by itself
    /// while no peer is Primary, and the restore is run again.
    restoring: Option<String>,
    /// The restore is writing the datadir: no start, no bootstrap, no join.
    restore_writing: bool,
    /// Since when mysqld has run outside a Primary component that a live peer is in.
    outside_since: Option<Instant>,
    /// The last observation saw this mysqld run Synced or donating in a Primary component.
    serving: bool,
    /// A start was issued and its run has not yet reached the Primary component.
    start_pending: bool,
    /// The pending start is the fast path's (`reform`): this run waits in pc.recovery and
    /// has taken no write, so an election may kill it after a short grace.
    reform_pending: bool,
    /// Starts in a row whose run ended before reaching the Primary component.
    failed_starts: u32,
    /// Since when mysqld has been starting (unit activating) with no state transfer running
    /// and outside the Primary component its live peers are in.
    joining_since: Option<Instant>,
    /// Since when this node has donated with no live peer joining.
    orphan_donation_since: Option<Instant>,
}

/// Keeps `since` at the first observation of a condition that still holds; clears it when
/// the condition ends.
fn track_since(since: &mut Option<Instant>, holds: bool) {
    if !holds {
        *since = None;
    } else if since.is_none() {
        *since = Some(Instant::now());
    }
}

pub struct GaleraDriver {
    settings: GaleraSettings,
    node_id: String,
    address: IpAddr,
    seed_hosts: Vec<IpAddr>,
    epoch_file: PathBuf,
    /// Survives agent restarts: an agent restart must not start a node that is ahead
    /// (its seqno could by then be below the component's, and an IST would silently mix
    /// two histories). Removed when the node runs Synced in a Primary component.
    ahead_file: PathBuf,
    host: Arc<dyn GaleraHost>,
    state: Arc<AgentState>,
    membership: Arc<Membership>,
    memory: Mutex<Memory>,
}

impl std::fmt::Debug for GaleraDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GaleraDriver")
            .field("node", &self.node_id)
            .finish()
    }
}

impl GaleraDriver {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: GaleraSettings,
        node_id: String,
        address: IpAddr,
        seeds: &[String],
        state_dir: PathBuf,
        host: Arc<dyn GaleraHost>,
        state: Arc<AgentState>,
        membership: Arc<Membership>,
    ) -> GaleraDriver {
        let seed_hosts = seeds
            .iter()
            .filter_map(|seed| {
                seed.rsplit_once(':')
                    .and_then(|(h, _)| h.trim_matches(['[', ']']).parse().ok())
            })
            .collect();
        let ahead_file = state_dir.join("galera-ahead");
        let ahead = std::fs::read_to_string(&ahead_file).ok().and_then(|text| {
            let mut numbers = text.split_whitespace().map(|n| n.parse::<i64>().ok());
            Some(ReversingHistory {
                local: numbers.next()??,
                primary: numbers.next()??,
            })
        });
        if let Some(ahead) = ahead {
            tracing::warn!(node = %node_id, path = %ahead_file.display(), "this node was found ahead of the Primary component ({ahead}); mysqld stays stopped until an operator resolves it");
        }
        GaleraDriver {
            settings,
            node_id,
            address,
            seed_hosts,
            epoch_file: state_dir.join("galera-epoch"),
            ahead_file,
            host,
            state,
            membership,
            memory: Mutex::new(Memory {
                ahead,
                maintenance: state_dir.join(crate::state::MAINTENANCE_FILE).exists(),
                ..Memory::default()
            }),
        }
    }

    /// What gossip tells the Galera module, from one snapshot of the members: the core
    /// peers' addresses (configured, else core nodes in gossip and the seeds' hosts), and
    /// whether a live core peer reports Synced in a Primary component.
    async fn gossip_facts(&self) -> GossipFacts {
        let members = self.membership.members().await;
        let peer_primary = members.iter().any(|m| {
            !m.is_self
                && m.live
                && m.keys.galera.state == GaleraState::Synced
                && m.keys.galera.cluster_status.as_deref() == Some("Primary")
        });
        let peer_component = members.iter().any(|m| {
            !m.is_self && m.live && m.keys.galera.cluster_status.as_deref() == Some("Primary")
        });
        let peers = if self.settings.peers.is_empty() {
            let mut peers: Vec<IpAddr> = members
                .iter()
                .filter(|m| m.keys.role == Role::Core)
                .map(|m| m.gossip_addr.ip())
                .chain(self.seed_hosts.iter().copied())
                .collect();
            peers.sort();
            peers.dedup();
            peers
        } else {
            self.settings.peers.clone()
        };
        // this node is asked only while its mysqld is stopped: count it as such, whatever
        // it last published
        let stopped = GaleraKeys {
            state: GaleraState::Stopped,
            ..GaleraKeys::default()
        };
        let galera: Vec<MemberGalera> = members
            .iter()
            .filter(|m| m.keys.galera.state != GaleraState::NotManaged)
            // a peer in maintenance is held stopped: never the next joiner to wait for
            .filter(|m| m.is_self || m.keys.maintenance.is_none())
            .map(|m| MemberGalera {
                id: &m.node_id,
                live: m.is_self || m.live,
                keys: if m.is_self { &stopped } else { &m.keys.galera },
            })
            .collect();
        let my_turn = next_joiner(&galera) == Some(self.node_id.as_str());
        let peer_joining = members
            .iter()
            .any(|m| !m.is_self && m.live && m.keys.galera.state == GaleraState::Joining);
        GossipFacts {
            peers,
            peer_primary,
            peer_component,
            my_turn,
            peer_joining,
        }
    }

    async fn observe(&self, memory: &mut Memory, gossip: &GossipFacts) -> Observed {
        let unit = self.host.unit_state().await;
        let status = if unit.is_running() {
            self.host.status().await.ok()
        } else {
            None
        };
        let grastate = match self.host.grastate().await {
            Ok(grastate) => grastate,
            // a running mysqld (a joiner in SST) rewrites the file: not final, not a problem
            Err(error) if unit.is_running() => {
                tracing::debug!(node = %self.node_id, %error, "grastate.dat in flux: {error}");
                None
            }
            Err(error) => {
                tracing::warn!(node = %self.node_id, %error, "grastate.dat unreadable: {error}");
                None
            }
        };
        if unit.is_running() {
            memory.recovered = None;
        } else if memory.recovered.is_none() && needs_recovery(grastate.as_ref()) {
            match self.host.wsrep_recover().await {
                Ok(position) => {
                    tracing::info!(node = %self.node_id, %position, "recovered position with --wsrep-recover");
                    memory.recovered = Some(position);
                }
                Err(error) => {
                    tracing::warn!(node = %self.node_id, %error, "position recovery failed: {error}")
                }
            }
        }
        let primary = matches!(&status, Some(s) if s.wsrep_on && s.cluster_status == "Primary");
        if primary {
            if memory.ahead.take().is_some() {
                tracing::warn!(node = %self.node_id, "this node runs Synced in a Primary component again: no longer ahead");
                if let Err(error) = std::fs::remove_file(&self.ahead_file) {
                    tracing::error!(node = %self.node_id, %error, "cannot remove {}: {error}", self.ahead_file.display());
                }
            }
        } else if matches!(unit, UnitState::Failed | UnitState::Activating) {
            self.read_ended_run(memory).await;
        }
        let waiting = unit == UnitState::Inactive && gossip.peer_primary && !gossip.my_turn;
        if waiting && memory.waiting_for_turn_since.is_none() {
            tracing::info!(node = %self.node_id, "another node is joining the Primary component first; waiting for its turn");
        }
        track_since(&mut memory.waiting_for_turn_since, waiting);
        let sst_in_progress = self.host.sst_in_progress().await;
        let stuck_joining =
            unit == UnitState::Activating && !sst_in_progress && gossip.peer_component && !primary;
        track_since(&mut memory.joining_since, stuck_joining);
        let outside = unit == UnitState::Active
            && gossip.peer_component
            && matches!(&status, Some(s) if s.wsrep_on && s.cluster_status != "Primary");
        track_since(&mut memory.outside_since, outside);
        let donor =
            primary && matches!(&status, Some(s) if s.local_state_comment.starts_with("Donor"));
        // the script is looked for only while donating with no joiner in sight
        let orphaned = donor && !gossip.peer_joining && self.host.donating().await;
        if orphaned && memory.orphan_donation_since.is_none() {
            tracing::info!(node = %self.node_id, "donating a state transfer while no live peer is joining: aborting it in {DONOR_ORPHAN_LIMIT:?} unless a joiner shows up");
        }
        track_since(&mut memory.orphan_donation_since, orphaned);
        if primary {
            if memory.failed_starts > 0 {
                tracing::info!(node = %self.node_id, failed = memory.failed_starts, "mysqld reached the Primary component after {} failed start(s)", memory.failed_starts);
            }
            memory.failed_starts = 0;
            memory.start_pending = false;
            memory.reform_pending = false;
        } else if memory.start_pending && matches!(unit, UnitState::Inactive | UnitState::Failed) {
            memory.start_pending = false;
            memory.reform_pending = false;
            memory.failed_starts = memory.failed_starts.saturating_add(1);
            tracing::warn!(
                node = %self.node_id,
                failed = memory.failed_starts,
                "mysqld's run ended before it reached the Primary component ({} start(s) in a row); \
                 next start in {:?} at the earliest (see `journalctl -u {}`)",
                memory.failed_starts,
                super::start_backoff(&self.settings, memory.failed_starts),
                self.settings.unit
            );
        }
        // a "Joined" that follows Synced or Donor is a donor catching up, not a joiner (a
        // joiner comes from non-Primary or "Joining", which clear this)
        let serving_before = memory.serving;
        memory.serving = matches!(&status, Some(s) if s.wsrep_on
            && s.cluster_status == "Primary"
            && (s.local_state_comment == "Synced"
                || s.local_state_comment.starts_with("Donor")
                || (serving_before && s.local_state_comment == "Joined")));
        Observed {
            unit,
            status,
            grastate,
            saved_view: self.host.saved_view().await,
            serving_before,
            recovered: memory.recovered.clone(),
            sst_in_progress,
            peer_primary: gossip.peer_primary,
            my_turn: gossip.my_turn,
            waiting_for_turn_since: memory.waiting_for_turn_since,
            has_peers: gossip.peers.iter().any(|p| *p != self.address),
            coordinator_action: memory.coordinator_action,
            last_start: memory.last_start,
            ahead: memory.ahead,
            outside_since: memory.outside_since,
            joining_since: memory.joining_since,
            orphan_donation_since: memory.orphan_donation_since,
            failed_starts: memory.failed_starts,
        }
    }

    /// A run that ended (failed, or waiting out `Restart=`): did Galera refuse it because
    /// this node is ahead of the Primary component? Each run's log is read once.
    async fn read_ended_run(&self, memory: &mut Memory) {
        let (invocation, log) = match self.host.ended_run_log().await {
            Ok(Some(ended)) => ended,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(node = %self.node_id, %error, "cannot read the last run's log: {error}");
                return;
            }
        };
        if memory.read_run.as_deref() == Some(invocation.as_str()) {
            return;
        }
        memory.read_run = Some(invocation);
        if let Some(found) = parse_reversing_history(&log) {
            tracing::error!(
                node = %self.node_id,
                local_seqno = found.local,
                primary_seqno = found.primary,
                "this node is ahead of the Primary component ({found}): mysqld is stopped and \
                 not started again; its data is kept (an SST would discard the extra events). \
                 An operator decides: bootstrap from this node (stop mysqld on the Primary's \
                 nodes, then `triadctl recover --bootstrap {node}`), or discard its extra \
                 events (move {datadir} aside so that it joins by SST, then remove {file})",
                node = self.node_id,
                datadir = self.settings.datadir.display(),
                file = self.ahead_file.display()
            );
            memory.ahead = Some(found);
            let text = format!("{} {}\n", found.local, found.primary);
            if let Err(error) = durable_write(&self.ahead_file, &text) {
                tracing::error!(node = %self.node_id, %error, "cannot record the ahead state in {}: {error}", self.ahead_file.display());
            }
        }
    }

    fn publish(&self, observed: &Observed) {
        let galera = keys(observed, &self.settings);
        self.state.update(|keys| keys.galera = galera);
    }

    /// mysqld's copy of the node certificate, before the config that names it; a renewed
    /// certificate is reloaded into a running Galera (else it is read at the next start).
    async fn install_tls(&self) {
        let Some(tls) = &self.settings.tls else {
            return;
        };
        match self.host.install_tls().await {
            Ok(TlsInstall::Unchanged) => {}
            Ok(TlsInstall::Installed) => {
                tracing::info!(node = %self.node_id, "installed the node certificate for Galera's TLS in {}", tls.dir.display())
            }
            Ok(TlsInstall::Replaced) => match self.host.reload_tls().await {
                Ok(()) => {
                    tracing::info!(node = %self.node_id, "renewed certificate installed in {} and reloaded by Galera", tls.dir.display())
                }
                Err(error) => {
                    tracing::info!(node = %self.node_id, %error, "renewed certificate installed in {}; Galera reads it at its next start (reload: {error})", tls.dir.display())
                }
            },
            Err(error) => {
                tracing::error!(node = %self.node_id, %error, "cannot install the certificate for Galera's TLS: {error}")
            }
        }
    }

    /// One pass of the loop: config, observe, plan, apply, publish.
    pub async fn tick(&self) {
        let mut memory = self.memory.lock().await;
        let gossip = self.gossip_facts().await;
        let peers = &gossip.peers;
        self.install_tls().await;
        let text = cnf::render(&self.settings, &self.node_id, self.address, peers);
        match self.host.write_config(&text).await {
            Ok(true) => {
                tracing::info!(node = %self.node_id, path = %self.settings.config_path.display(), ?peers, "wrote galera config")
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(node = %self.node_id, %error, "cannot write galera config: {error}")
            }
        }
        let observed = self.observe(&mut memory, &gossip).await;
        let actions = if memory.left || memory.maintenance || memory.restoring.is_some() {
            vec![]
        } else {
            plan(&observed, &self.settings, Instant::now())
        };
        for action in actions {
            tracing::info!(node = %self.node_id, ?action, state = %derive_state(&observed), "galera action {action:?}");
            let result = match action {
                Action::ResetFailed => self.host.reset_failed().await,
                Action::StartJoin => {
                    memory.last_start = Some(Instant::now());
                    memory.start_pending = true;
                    self.prepare_start(&observed).await;
                    // handed over once: the next stop needs a fresh recovery
                    memory.recovered = None;
                    self.host.start().await
                }
                Action::StopOutside => {
                    if observed.status.as_ref().is_some_and(super::disconnected) {
                        tracing::warn!(node = %self.node_id, "mysqld's group connection has been closed (Disconnected) for {DISCONNECTED_LIMIT:?} while its peers are Primary: it will not rejoin by itself; stopping it to rejoin");
                    } else {
                        tracing::warn!(node = %self.node_id, "mysqld has run outside the Primary component of its peers for {OUTSIDE_LIMIT:?}: stopping it to rejoin");
                    }
                    memory.outside_since = None;
                    self.host.stop(OUTSIDE_STOP_GRACE).await
                }
                Action::StopJoiner => {
                    tracing::warn!(node = %self.node_id, "mysqld has been starting for {JOIN_STUCK_LIMIT:?} outside the Primary component of its peers with no state transfer running: stopping it to start again");
                    memory.joining_since = None;
                    self.host.stop(OUTSIDE_STOP_GRACE).await
                }
                Action::AbortDonation => {
                    tracing::warn!(node = %self.node_id, "this node has donated a state transfer for {DONOR_ORPHAN_LIMIT:?} with no live peer joining (the joiner is gone): stopping the transfer script so the donor returns to Synced");
                    memory.orphan_donation_since = None;
                    self.host.abort_donation().await.map(|stopped| {
                        tracing::info!(node = %self.node_id, stopped, "state-transfer script stopped ({stopped} process(es))");
                    })
                }
                Action::StopStandalone | Action::StopAhead => {
                    self.host.stop(OUTSIDE_STOP_GRACE).await
                }
            };
            if let Err(error) = result {
                tracing::warn!(node = %self.node_id, %error, "galera action failed; retrying on a later tick: {error}");
            }
        }
        self.publish(&observed);
    }

    /// Run the loop until `stop` changes; first keeps systemd from starting mysqld at boot.
    pub async fn run(
        self: Arc<Self>,
        interval: Duration,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        if let Err(error) = self.host.disable_autostart().await {
            tracing::warn!(node = %self.node_id, %error, "cannot disable mariadb autostart: {error}");
        }
        let missing = super::tls::missing_programs(
            &self.settings,
            &std::env::var("PATH").unwrap_or_default(),
        );
        if !missing.is_empty() {
            tracing::error!(node = %self.node_id, ?missing, "[galera] tls with the {} state transfer needs {} on PATH: a joiner that needs an SST will fail until installed (apt-get install {})",
                self.settings.sst_method.as_str(), missing.join(", "),
                missing.iter().map(|p| if *p == "stunnel" { "stunnel4" } else { p }).collect::<Vec<_>>().join(" "));
        }
        crate::state::every(interval, stop, || self.tick()).await;
    }

    /// The node's position for the coordinator's election.
    pub async fn position(&self, stop_if_not_primary: bool) -> Result<PositionReport, GaleraError> {
        if !self.settings.managed {
            return Err(GaleraError::NotManaged);
        }
        let mut memory = self.memory.lock().await;
        let gossip = self.gossip_facts().await;
        let mut observed = self.observe(&mut memory, &gossip).await;
        if observed.unit.is_running() {
            let primary =
                matches!(&observed.status, Some(s) if s.wsrep_on && s.cluster_status == "Primary");
            if primary {
                let (position, source) =
                    best_position(&observed).expect("a Primary node has a live position");
                return Ok(PositionReport {
                    position,
                    safe_to_bootstrap: false,
                    source,
                    saved_view: None,
                    generation: self.membership.generation(),
                });
            }
            if observed.sst_in_progress {
                return Err(GaleraError::Refused(
                    "mysqld is receiving a state transfer; it is never stopped".into(),
                ));
            }
            if !stop_if_not_primary {
                return Err(GaleraError::Refused(
                    "mysqld runs outside a Primary component; its position is not final".into(),
                ));
            }
            if gossip.peer_component {
                // most likely joining it (past the SST script, still catching up): a stop
                // here would throw the transfer away
                return Err(GaleraError::Refused(
                    "mysqld is starting while a peer reports a Primary component; it is \
                     never stopped"
                        .into(),
                ));
            }
            let grace = if memory.reform_pending {
                REFORM_STOP_GRACE
            } else {
                OUTSIDE_STOP_GRACE
            };
            tracing::warn!(node = %self.node_id, reform = memory.reform_pending, ?grace, "stopping mysqld that hangs outside a Primary component, for recovery");
            self.host.stop(grace).await?;
            memory.reform_pending = false;
            memory.recovered = None;
            observed = self.observe(&mut memory, &self.gossip_facts().await).await;
        }
        self.publish(&observed);
        let saved_view = match observed.unit.is_running() {
            true => None,
            false => self.host.saved_view().await,
        };
        match best_position(&observed) {
            Some((position, source)) => Ok(PositionReport {
                safe_to_bootstrap: observed
                    .grastate
                    .as_ref()
                    .is_some_and(|g| g.safe_to_bootstrap),
                position,
                source,
                saved_view,
                generation: self.membership.generation(),
            }),
            None => Err(GaleraError::Refused(
                "no grastate.dat and no recovered position".into(),
            )),
        }
    }

    fn stored_epoch(&self) -> u64 {
        std::fs::read_to_string(&self.epoch_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    fn store_epoch(&self, epoch: u64) -> Result<(), GaleraError> {
        Ok(durable_write(&self.epoch_file, &format!("{epoch}\n"))?)
    }

    /// Start a new Primary component from this node, fenced by `epoch` and the position the
    /// coordinator chose. Refuses when mysqld runs outside a Primary component, when a peer
    /// is Primary, when the epoch is old, or when the node's own position differs.
    pub async fn bootstrap(&self, epoch: u64, expected: &Position) -> Result<String, GaleraError> {
        if !self.settings.managed {
            return Err(GaleraError::NotManaged);
        }
        let mut memory = self.memory.lock().await;
        refuse_while_restoring(&memory)?;
        let stored = self.stored_epoch();
        if epoch < stored {
            return Err(GaleraError::Refused(format!(
                "epoch {epoch} is older than epoch {stored} already acted on"
            )));
        }
        let observed = self.observe(&mut memory, &self.gossip_facts().await).await;
        if let Some(status) = observed
            .status
            .as_ref()
            .filter(|s| s.wsrep_on && s.cluster_status == "Primary")
        {
            if epoch == stored
                && (expected.is_undefined() || status.cluster_state_uuid == expected.uuid)
            {
                return Ok(format!("already Primary for epoch {epoch}"));
            }
            return Err(GaleraError::Refused(
                "mysqld already runs in a Primary component".into(),
            ));
        }
        if observed.unit.is_running() {
            return Err(GaleraError::Refused(
                "mysqld runs (outside a Primary component); stop it first".into(),
            ));
        }
        if observed.peer_primary {
            return Err(GaleraError::Refused(
                "a peer reports a Primary component: join it instead".into(),
            ));
        }
        let own = best_position(&observed).map(|(p, _)| p);
        let matches = match &own {
            Some(own) => own == expected || (expected.is_undefined() && own.is_undefined()),
            None => expected.is_undefined(),
        };
        if !matches {
            let own = own.map(|p| p.to_string()).unwrap_or_else(|| "none".into());
            return Err(GaleraError::Refused(format!(
                "own position {own} differs from the chosen {expected}"
            )));
        }
        self.store_epoch(epoch)?;
        memory.restoring = None;
        memory.coordinator_action = true;
        tracing::warn!(node = %self.node_id, epoch, position = %expected, "bootstrapping a new Primary component at {expected} (epoch {epoch})");
        let result = async {
            if observed.grastate.is_some() {
                self.host.set_safe_to_bootstrap().await?;
            }
            // the position checked above: the one the coordinator chose
            self.prepare_start(&observed).await;
            memory.recovered = None;
            self.host.bootstrap().await?;
            let status = self.host.status().await?;
            if status.cluster_status != "Primary" {
                return Err(GaleraError::Refused(format!(
                    "after bootstrap the node is {}",
                    status.cluster_status
                )));
            }
            if !expected.is_undefined() && status.cluster_state_uuid != expected.uuid {
                return Err(GaleraError::Refused(format!(
                    "bootstrap lost the cluster history: uuid {} instead of {}",
                    status.cluster_state_uuid, expected.uuid
                )));
            }
            Ok(format!(
                "Primary with uuid {} at seqno {}",
                status.cluster_state_uuid, status.last_committed
            ))
        }
        .await;
        memory.coordinator_action = false;
        let observed = self.observe(&mut memory, &self.gossip_facts().await).await;
        self.publish(&observed);
        result
    }

    /// Leave the position this node recovered for the start about to happen (the start
    /// then skips Debian's second `--wsrep-recover`); a failure only costs that time.
    async fn prepare_start(&self, observed: &Observed) {
        let position = (!observed.unit.is_running())
            .then(|| best_position(observed))
            .flatten()
            .map(|(position, _)| position);
        if let Err(error) = self.host.prepare_start(position.as_ref()).await {
            tracing::warn!(node = %self.node_id, %error, "cannot hand the start position over: {error}");
        }
    }

    /// Leave the cluster for good (the coordinator's scale-in): stop mysqld cleanly, so that
    /// it leaves the Galera view gracefully, and never start it again in this agent's life.
    pub async fn leave(&self) -> Result<String, GaleraError> {
        if !self.settings.managed {
            return Err(GaleraError::NotManaged);
        }
        let mut memory = self.memory.lock().await;
        memory.left = true;
        tracing::warn!(node = %self.node_id, "leaving the Galera cluster on the coordinator's request: stopping mysqld, not restarting it");
        if self.host.unit_state().await.is_running() {
            self.host.stop(LEAVE_STOP_GRACE).await?;
        }
        let observed = self.observe(&mut memory, &self.gossip_facts().await).await;
        self.publish(&observed);
        Ok("mysqld stopped cleanly; it stays stopped".into())
    }

    /// Node maintenance on or off (issue 21). On: the loop takes no action and nothing
    /// starts mysqld; a running one keeps running until [`GaleraDriver::maintenance_leave`].
    /// Off: the loop joins the node again as after any stop.
    pub async fn set_maintenance(&self, on: bool) {
        let mut memory = self.memory.lock().await;
        if memory.maintenance != on {
            tracing::warn!(node = %self.node_id, on, "galera: maintenance {}", if on { "on: mysqld is held" } else { "off: the node rejoins" });
        }
        memory.maintenance = on;
    }

    /// The system shuts down (the agent got SIGTERM while systemd stops everything): the
    /// node is in maintenance, and a leave signals mysqld rather than queueing a stop job.
    pub async fn shutting_down(&self) {
        let mut memory = self.memory.lock().await;
        memory.maintenance = true;
        memory.shutting_down = true;
    }

    /// Whether mysqld runs (any state), as systemd says.
    pub async fn mysqld_running(&self) -> bool {
        self.settings.managed && self.host.unit_state().await.is_running()
    }

    /// The coordinator's grant of this node's turn to leave for maintenance: stop mysqld
    /// cleanly (a Galera leave, one node at a time so the survivors stay Primary), and
    /// keep it stopped while the maintenance lasts. Refused unless in maintenance.
    pub async fn maintenance_leave(&self) -> Result<String, GaleraError> {
        if !self.settings.managed {
            return Err(GaleraError::NotManaged);
        }
        let mut memory = self.memory.lock().await;
        if !memory.maintenance {
            return Err(GaleraError::Refused(
                "this node is not in maintenance: nothing to leave for".into(),
            ));
        }
        if !self.host.unit_state().await.is_running() {
            return Ok("mysqld is stopped already".into());
        }
        tracing::warn!(node = %self.node_id, shutdown = memory.shutting_down, "maintenance: leaving the Galera cluster, the coordinator's grant of this node's turn");
        if memory.shutting_down {
            self.host.terminate(LEAVE_STOP_GRACE).await?;
        } else {
            self.host.stop(LEAVE_STOP_GRACE).await?;
        }
        let observed = self.observe(&mut memory, &self.gossip_facts().await).await;
        self.publish(&observed);
        Ok("mysqld stopped cleanly (left the Galera cluster); it stays stopped while the maintenance lasts".into())
    }

    /// Restore (issue 19): stop mysqld cleanly and hold it stopped until the coordinator's
    /// next bootstrap or join, keep the datadir aside and leave an empty one (`fresh`: a
    /// new system datadir, to join by a state transfer). Answers where the old one is.
    pub async fn hold_for_restore(&self, id: &str, fresh: bool) -> Result<String, GaleraError> {
        if !self.settings.managed {
            return Err(GaleraError::NotManaged);
        }
        let mut memory = self.memory.lock().await;
        refuse_while_restoring(&memory)?;
        memory.restoring = Some(id.to_string());
        tracing::warn!(node = %self.node_id, backup = id, "restore: stopping mysqld and keeping its datadir aside");
        if self.host.unit_state().await.is_running() {
            self.host.stop(LEAVE_STOP_GRACE).await?;
        }
        let aside = self.host.set_aside_datadir(id, fresh).await?;
        // the datadir is new and holds no position (empty, or a new system datadir); no
        // `--wsrep-recover` may run on it (on an empty one it would create InnoDB's files)
        memory.recovered = Some(Position {
            uuid: triad_galera::position::ZERO_UUID.into(),
            seqno: -1,
        });
        memory.ahead = None;
        memory.failed_starts = 0;
        let _ = std::fs::remove_file(&self.ahead_file);
        let observed = self.observe(&mut memory, &self.gossip_facts().await).await;
        self.publish(&observed);
        Ok(format!(
            "mysqld stopped and held; the datadir before the restore is {aside}"
        ))
    }

    /// The restore of backup `id` starts writing the datadir: only while held for it,
    /// with mysqld stopped. Answers the datadir; [`Self::restore_written`] ends it.
    pub async fn restore_writing(&self, id: &str) -> Result<PathBuf, GaleraError> {
        let mut memory = self.memory.lock().await;
        if memory.restoring.as_deref() != Some(id) {
            return Err(GaleraError::Refused(format!(
                "this node is not prepared for restoring backup {id} (RestorePrepare first)"
            )));
        }
        if memory.restore_writing {
            return Err(GaleraError::Refused(
                "a restore is already writing the datadir".into(),
            ));
        }
        if self.host.unit_state().await.is_running() {
            return Err(GaleraError::Refused(
                "mysqld runs: the datadir is not restored under it".into(),
            ));
        }
        memory.restore_writing = true;
        Ok(self.settings.datadir.clone())
    }

    /// The datadir is written (or the attempt ended): positions are read afresh.
    pub async fn restore_written(&self) {
        let mut memory = self.memory.lock().await;
        memory.restore_writing = false;
        memory.recovered = None;
        let observed = self.observe(&mut memory, &self.gossip_facts().await).await;
        self.publish(&observed);
    }

    /// Start mysqld to join the Primary component (the coordinator calls this after a
    /// bootstrap; a plain start, so IST/SST brings the node up to date).
    pub async fn join(&self, epoch: u64) -> Result<String, GaleraError> {
        if !self.settings.managed {
            return Err(GaleraError::NotManaged);
        }
        let mut memory = self.memory.lock().await;
        let observed = self.observe(&mut memory, &self.gossip_facts().await).await;
        self.may_start(&memory)?;
        // a restore's hold ends with the coordinator's join
        memory.restoring = None;
        if observed.unit.is_running() {
            return Ok(format!(
                "mysqld already running ({})",
                derive_state(&observed)
            ));
        }
        tracing::info!(node = %self.node_id, epoch, "joining the Primary component");
        self.start_plainly(&mut memory, &observed).await?;
        Ok("mysqld starting".into())
    }

    /// A full outage's fast path (issue 20): start mysqld plainly so that Galera's
    /// pc.recovery re-forms `view` (`<view uuid>:<seq>`), the Primary view the coordinator
    /// saw every member save. Only when this node's `gvwstate.dat` holds that view: Galera
    /// then waits for every member of it and never forms a component without them, so no
    /// second Primary and no stale bootstrap can come of it.
    pub async fn reform(&self, view: &str) -> Result<String, GaleraError> {
        if !self.settings.managed {
            return Err(GaleraError::NotManaged);
        }
        let mut memory = self.memory.lock().await;
        let observed = self.observe(&mut memory, &self.gossip_facts().await).await;
        self.may_start(&memory)?;
        if let Some(id) = &memory.restoring {
            return Err(GaleraError::Refused(format!(
                "this node is held for restoring backup {id}; only a bootstrap or join ends it"
            )));
        }
        if observed.unit.is_running() {
            return Ok(format!(
                "mysqld already running ({})",
                derive_state(&observed)
            ));
        }
        let saved = self
            .host
            .saved_view()
            .await
            .and_then(|raw| SavedView::from_gossip(&raw).ok());
        match saved {
            Some(saved) if saved.view_id() == view => {}
            Some(saved) => {
                return Err(GaleraError::Refused(format!(
                    "this node saved Primary view {}, not {view}",
                    saved.view_id()
                )))
            }
            None => {
                return Err(GaleraError::Refused(format!(
                    "this node saved no Primary view (no readable gvwstate.dat), not {view}"
                )))
            }
        }
        tracing::warn!(node = %self.node_id, view, "full outage: starting mysqld for Galera's pc.recovery to re-form Primary view {view}");
        self.start_plainly(&mut memory, &observed).await?;
        memory.reform_pending = true;
        Ok(format!("mysqld starting to re-form view {view}"))
    }

    /// Whether the coordinator may start this node's mysqld now: not after a scale-in
    /// leave, not while a restore writes the datadir, never when the node is ahead.
    fn may_start(&self, memory: &Memory) -> Result<(), GaleraError> {
        if memory.left {
            return Err(GaleraError::Refused(
                "this node left the cluster (scale-in); restart its agent to undo".into(),
            ));
        }
        if memory.maintenance {
            return Err(GaleraError::Refused(
                "this node is in maintenance (`triadctl maintenance NODE off` ends it)".into(),
            ));
        }
        refuse_while_restoring(memory)?;
        if let Some(ahead) = memory.ahead {
            return Err(GaleraError::Refused(format!(
                "this node is ahead of the Primary component ({ahead}); joining would abort \
                 again and an SST would discard its extra events"
            )));
        }
        Ok(())
    }

    /// A plain start of the stopped mysqld, with the recovered position handed over.
    async fn start_plainly(
        &self,
        memory: &mut Memory,
        observed: &Observed,
    ) -> Result<(), GaleraError> {
        if observed.unit == UnitState::Failed {
            self.host.reset_failed().await?;
        }
        memory.last_start = Some(Instant::now());
        memory.start_pending = true;
        memory.reform_pending = false;
        self.prepare_start(observed).await;
        memory.recovered = None;
        self.host.start().await?;
        Ok(())
    }
}

/// No start, bootstrap or second hold while a restore writes the datadir.
fn refuse_while_restoring(memory: &Memory) -> Result<(), GaleraError> {
    if memory.restore_writing {
        return Err(GaleraError::Refused(
            "a restore is writing the datadir".into(),
        ));
    }
    Ok(())
}

/// [`triad_daemon::fs::durable_write`], with the error naming the file.
fn durable_write(path: &std::path::Path, text: &str) -> Result<(), HostError> {
    triad_daemon::fs::durable_write(path, text)
        .map_err(|e| HostError::new(format!("writing {}", path.display()), e.to_string()))
}

/// Recovery is needed when grastate says nothing final: missing, or seqno -1.
fn needs_recovery(grastate: Option<&GraState>) -> bool {
    grastate.is_none_or(|g| g.position.seqno == -1)
}
