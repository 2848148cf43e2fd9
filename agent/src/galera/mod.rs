//! Galera: the agent's management of the local mysqld (mariadb.service).
//!
//! Inputs: the unit's state (systemd), wsrep status over SQL (unix socket), grastate.dat,
//! and gossip (is a live core peer Synced in a Primary component?). It drives toward:
//! mysqld running and Synced whenever the cluster is Primary somewhere. A stopped node
//! whose cluster is Primary elsewhere is started plainly and rejoins by IST/SST without the
//! coordinator. It never stops or restarts a running mysqld on its own: a joiner or donor
//! in SST is a state, not a failure (the anchors' most common way to lose data).
//! Bootstrapping is only ever done on the coordinator's fenced `Bootstrap` call (see
//! [`bootstrap`]). Errors are logged and retried on the next tick with a start backoff.

pub mod cnf;
pub mod driver;
pub mod host;
pub mod sst;
pub mod status_conn;
pub mod tls;

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;
use triad_proto::gossip::{GaleraKeys, GaleraState};

pub use cnf::SstMethod;
use triad_galera::join::JOIN_SETTLE;
use triad_galera::position::{GraState, Position, ReversingHistory};

/// `[galera]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GaleraSettings {
    pub managed: bool,
    pub cluster_name: String,
    pub unit: String,
    pub provider: String,
    pub config_path: std::path::PathBuf,
    pub datadir: std::path::PathBuf,
    pub socket: std::path::PathBuf,
    pub sst_method: SstMethod,
    pub gcache_size: String,
    pub innodb_buffer_pool_size: Option<String>,
    pub extra_provider_options: Vec<String>,
    /// Explicit core peer addresses; when empty, the core nodes seen in gossip and the
    /// gossip seeds' hosts are used.
    pub peers: Vec<IpAddr>,
    /// Minimum time between two automatic starts of mysqld.
    pub start_backoff: Duration,
    /// The OS user (from the agent package's sysusers.d) the agent reads wsrep status as,
    /// over the unix socket: a MariaDB account `'<user>'@'localhost' IDENTIFIED VIA
    /// unix_socket` with no privileges at all (status needs none), created by the agent once
    /// its node is Synced in a Primary component. Until it exists: root over the socket.
    pub monitor_user: String,
    /// Replication (gcomm and IST) and the SST over TLS from the cluster CA (`[galera] tls`).
    pub tls: Option<GaleraTls>,
}

/// Galera's TLS: the node's own certificate (the gRPC one, issued by the cluster CA) copied
/// where mysqld, running as `mysql`, can read it; every peer must present a certificate of
/// the same CA, so a host without one can neither join the group nor send or receive a
/// state transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct GaleraTls {
    /// The agent's `[tls]` files (root-only; mysqld cannot read them).
    pub source: triad_daemon::tls::TlsFiles,
    /// Where the copies go: `ca.pem`, `cert.pem` (0644) and `key.pem` (0640 root:`user`'s group).
    pub dir: std::path::PathBuf,
    /// The OS user mysqld runs as; its primary group may read the key copy.
    pub user: String,
}

impl GaleraTls {
    pub const DEFAULT_DIR: &'static str = "/etc/mysql/triad-tls";

    pub fn new(source: triad_daemon::tls::TlsFiles) -> GaleraTls {
        GaleraTls {
            source,
            dir: Self::DEFAULT_DIR.into(),
            user: "mysql".to_string(),
        }
    }

    pub fn ca(&self) -> std::path::PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn cert(&self) -> std::path::PathBuf {
        self.dir.join("cert.pem")
    }

    pub fn key(&self) -> std::path::PathBuf {
        self.dir.join("key.pem")
    }
}

impl GaleraSettings {
    pub fn defaults(cluster_name: &str) -> GaleraSettings {
        GaleraSettings {
            managed: true,
            cluster_name: cluster_name.to_string(),
            unit: "mariadb.service".to_string(),
            provider: "/usr/lib/galera/libgalera_smm.so".to_string(),
            config_path: "/etc/mysql/mariadb.conf.d/60-triad-galera.cnf".into(),
            datadir: "/var/lib/mysql".into(),
            socket: "/run/mysqld/mysqld.sock".into(),
            sst_method: SstMethod::Mariabackup,
            monitor_user: "triad-monitor".to_string(),
            gcache_size: "128M".to_string(),
            innodb_buffer_pool_size: None,
            extra_provider_options: vec![],
            peers: vec![],
            start_backoff: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// systemd's view of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitState {
    Active,
    Activating,
    Deactivating,
    Inactive,
    Failed,
    Unknown,
}

impl UnitState {
    pub fn parse(text: &str) -> UnitState {
        match text.trim() {
            "active" | "reloading" => UnitState::Active,
            "activating" => UnitState::Activating,
            "deactivating" => UnitState::Deactivating,
            "inactive" => UnitState::Inactive,
            "failed" => UnitState::Failed,
            _ => UnitState::Unknown,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(
            self,
            UnitState::Active | UnitState::Activating | UnitState::Deactivating
        )
    }
}

/// wsrep status variables read over SQL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WsrepStatus {
    /// `wsrep_on` as a server variable: false when mysqld runs without Galera.
    pub wsrep_on: bool,
    pub local_state_comment: String,
    pub cluster_status: String,
    pub cluster_size: u32,
    pub last_committed: i64,
    pub cluster_state_uuid: String,
    pub ready: bool,
    /// For /metrics only (through gossip).
    pub flow_control_paused_ns: Option<u64>,
    pub recv_queue: Option<u64>,
    pub cert_failures: Option<u64>,
}

/// Everything the local Galera plan looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub unit: UnitState,
    pub status: Option<WsrepStatus>,
    pub grastate: Option<GraState>,
    /// `gvwstate.dat` in gossip form (`triad_galera::view`); the plan does not read it,
    /// the coordinator does (whether pc.recovery could re-form the last Primary view).
    pub saved_view: Option<String>,
    /// Position from `--wsrep-recover` since mysqld last stopped.
    pub recovered: Option<Position>,
    pub sst_in_progress: bool,
    /// A live core peer reports Synced in a Primary component (gossip).
    pub peer_primary: bool,
    /// [`next_joiner`] over the gossip snapshot names this node.
    pub my_turn: bool,
    /// Since when this stopped node has been waiting for its turn to join.
    pub waiting_for_turn_since: Option<Instant>,
    /// The cluster address names at least one other node.
    pub has_peers: bool,
    /// The coordinator is bootstrapping or joining this node right now.
    pub coordinator_action: bool,
    pub last_start: Option<Instant>,
    /// mysqld's last run aborted with `Reversing history` (see [`ReversingHistory`]).
    pub ahead: Option<ReversingHistory>,
    /// Since when mysqld has been running outside a Primary component while a live peer is
    /// in one (gossip).
    pub outside_since: Option<Instant>,
    /// The previous observation saw this mysqld run Synced or donating in a Primary
    /// component: a "Joined" now is a donor catching up on what it queued while donating.
    pub serving_before: bool,
    /// Starts in a row whose run ended before it reached the Primary component.
    pub failed_starts: u32,
    /// Since when mysqld has been starting (unit activating), with no state transfer
    /// running, outside the Primary component its live peers are in.
    pub joining_since: Option<Instant>,
    /// Since when this node has been a donor (`Donor/Desynced` in a Primary component) with
    /// its state-transfer script running while no live peer is joining: the transfer has no
    /// receiver left.
    pub orphan_donation_since: Option<Instant>,
}

/// How long mysqld may stay starting outside its peers' Primary component with no state
/// transfer running before it is stopped (and started again after the backoff). A joiner
/// connects within seconds, an IST is applied inside the component, an SST runs its script
/// (never stopped); what is left past this bound waits for something that will not come
/// (issue 20: a joiner stuck outside the Primary component after a state transfer).
pub const JOIN_STUCK_LIMIT: Duration = Duration::from_secs(600);

/// How long a donor may keep its state-transfer script running with no live peer joining
/// before the script is stopped. Why: a joiner whose machine vanished mid-transfer sends no
/// reset, so the donor's script (socat or rsync writing to it) blocks until TCP gives up,
/// about 15 minutes with Linux's defaults, and the donor stays `Donor/Desynced`, outside
/// flow control, all that time. A live joiner is in gossip as joining; its gossip is at
/// most seconds old, so a minute leaves a wide margin.
pub const DONOR_ORPHAN_LIMIT: Duration = Duration::from_secs(60);

/// The longest wait between two starts of a mysqld whose starts keep failing.
pub const MAX_START_BACKOFF: Duration = Duration::from_secs(600);

/// The wait before the next start after `failed` starts in a row failed: the configured
/// backoff, doubled with each failure, at most [`MAX_START_BACKOFF`]. Why: a mysqld that
/// cannot start (a broken table, a full disk, a config it rejects) was started again every
/// 10 s for good, each start a state-transfer request that desyncs a donor.
pub fn start_backoff(settings: &GaleraSettings, failed: u32) -> Duration {
    let doubled = settings
        .start_backoff
        .saturating_mul(1u32.checked_shl(failed.min(16)).unwrap_or(u32::MAX));
    doubled.min(MAX_START_BACKOFF.max(settings.start_backoff))
}

/// How long a running mysqld may stay outside a Primary component that its live peers are
/// in before it is stopped to rejoin. Why: a join that fails in gcs (measured on the lab
/// after a full outage: "Initialized/Disconnected" with a final non-primary view) leaves
/// mysqld running but never joining, and nothing else restarts it; a node that merely
/// reconnects after a short cut merges within seconds.
pub const OUTSIDE_LIMIT: Duration = Duration::from_secs(20);

/// How long a running mysqld whose group connection is closed (`wsrep_cluster_status`
/// `Disconnected`) may stay so while its peers are in a Primary component before it is
/// stopped to rejoin. Why: Galera closes the connection for good when a join fails after
/// the state transfer; measured in bench-recovery, a joiner whose IST missed a write set
/// ("IST didn't contain all write sets ... node restart required") went Disconnected at
/// once and sat there for [`OUTSIDE_LIMIT`] (34.6 s instead of 7 s for that round). A node
/// cut off from its peers is `non-Primary`, not `Disconnected`, and keeps the longer bound;
/// this one only covers a reconnect that an operator triggers by hand.
pub const DISCONNECTED_LIMIT: Duration = Duration::from_secs(3);

/// Whether mysqld's group connection is closed: it will not rejoin without a restart.
pub fn disconnected(status: &WsrepStatus) -> bool {
    status.wsrep_on && status.cluster_status == "Disconnected"
}

/// How long a mysqld outside the Primary component gets to stop before it is killed. Such a
/// mysqld has no clients to finish and InnoDB recovers from a kill; but one whose group
/// vanished while it joined ignores SIGTERM for good (lab, session 13: a joiner whose donor
/// crashed was still stopping 9 minutes later, and the full-outage recovery waited on its
/// position all that time). Below the coordinator's 60 s position RPC, with room for the
/// kill and `--wsrep-recover` after it.
pub const OUTSIDE_STOP_GRACE: Duration = Duration::from_secs(25);

/// How long a mysqld started for the fast path and still waiting in pc.recovery gets to
/// stop when the election takes over. It has taken no write in this run (it never reached
/// a Primary component), so a kill loses nothing; it ignored SIGTERM for the whole
/// [`OUTSIDE_STOP_GRACE`] on the lab (session 25), which the election waited out.
pub const REFORM_STOP_GRACE: Duration = Duration::from_secs(5);

/// How long a clean leave (scale-in) waits for mysqld to stop before it is killed: a
/// Synced member flushes its buffer pool first, which may take a while on a large one.
pub const LEAVE_STOP_GRACE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `systemctl reset-failed` so the unit can be started again.
    ResetFailed,
    /// Plain start: the node joins the Primary component (IST or SST).
    StartJoin,
    /// mysqld runs without wsrep (e.g. Debian's stock start before Triad wrote its config):
    /// stop it so the next start uses the Galera configuration.
    StopStandalone,
    /// The node is ahead of the Primary component and systemd's `Restart=` keeps starting
    /// it into the same abort: stop it, keep its data, leave the decision to an operator.
    StopAhead,
    /// mysqld has run outside the Primary component its peers are in for
    /// [`OUTSIDE_LIMIT`] ([`DISCONNECTED_LIMIT`] once its group connection is closed): stop
    /// it; it then rejoins like any stopped node (IST or SST).
    StopOutside,
    /// mysqld has been starting outside its peers' Primary component, with no state
    /// transfer running, for [`JOIN_STUCK_LIMIT`]: stop it; it starts again after the
    /// backoff (a failed start).
    StopJoiner,
    /// This node has donated for [`DONOR_ORPHAN_LIMIT`] with no live peer joining: stop its
    /// state-transfer script; Galera counts the transfer failed and the donor returns to
    /// Synced (mysqld keeps running and serving).
    AbortDonation,
}

/// The state word published in gossip.
pub fn derive_state(observed: &Observed) -> GaleraState {
    let primary = matches!(observed.status.as_ref(), Some(s) if s.cluster_status == "Primary");
    if observed.coordinator_action && !primary && observed.unit.is_running() {
        return GaleraState::Bootstrapping;
    }
    if observed.ahead.is_some() && !primary {
        return GaleraState::Ahead;
    }
    match observed.unit {
        UnitState::Inactive | UnitState::Failed => GaleraState::Stopped,
        UnitState::Unknown => GaleraState::Unknown,
        UnitState::Deactivating => GaleraState::Stopped,
        UnitState::Activating => {
            // starting: receiving a state transfer, or waiting for a Primary component
            GaleraState::Joining
        }
        UnitState::Active => match &observed.status {
            None => GaleraState::PrimaryLost,
            Some(status) if !status.wsrep_on => GaleraState::Stopped,
            Some(status) if status.cluster_status != "Primary" => GaleraState::PrimaryLost,
            Some(status) => match status.local_state_comment.as_str() {
                "Synced" => GaleraState::Synced,
                comment if comment.starts_with("Donor") => GaleraState::Donor,
                // Galera's donor goes DONOR -> JOINED -> SYNCED, also for an IST (measured on
                // the lab: under writes the JOINED step lasted over 0.5 s)
                "Joined" if observed.serving_before => GaleraState::Donor,
                comment if comment.starts_with("Join") => GaleraState::Joining,
                _ => GaleraState::PrimaryLost,
            },
        },
    }
}

/// Pure: what to do about the local mysqld now.
pub fn plan(observed: &Observed, settings: &GaleraSettings, now: Instant) -> Vec<Action> {
    if !settings.managed || observed.coordinator_action {
        return vec![];
    }
    if let (UnitState::Active, Some(status)) = (observed.unit, &observed.status) {
        if !status.wsrep_on {
            return vec![Action::StopStandalone];
        }
    }
    if observed.ahead.is_some() {
        // never started again (it would abort again) and never wiped (an SST would lose
        // the events only this node has): an operator decides
        return if observed.unit.is_running() {
            vec![Action::StopAhead]
        } else {
            vec![]
        };
    }
    let backoff = start_backoff(settings, observed.failed_starts);
    let backoff_over = observed
        .last_start
        .is_none_or(|last| now.saturating_duration_since(last) >= backoff);
    let turn = observed.my_turn
        || observed
            .waiting_for_turn_since
            .is_some_and(|since| now.saturating_duration_since(since) >= JOIN_SETTLE);
    let outside_limit = match &observed.status {
        Some(status) if disconnected(status) => DISCONNECTED_LIMIT,
        _ => OUTSIDE_LIMIT,
    };
    let outside_too_long = observed
        .outside_since
        .is_some_and(|since| now.saturating_duration_since(since) >= outside_limit);
    let joining_too_long = observed
        .joining_since
        .is_some_and(|since| now.saturating_duration_since(since) >= JOIN_STUCK_LIMIT);
    let orphaned_too_long = observed
        .orphan_donation_since
        .is_some_and(|since| now.saturating_duration_since(since) >= DONOR_ORPHAN_LIMIT);
    match observed.unit {
        UnitState::Active if orphaned_too_long => vec![Action::AbortDonation],
        UnitState::Active if observed.peer_primary && outside_too_long => {
            vec![Action::StopOutside]
        }
        UnitState::Activating
            if observed.peer_primary && !observed.sst_in_progress && joining_too_long =>
        {
            vec![Action::StopJoiner]
        }
        UnitState::Failed => vec![Action::ResetFailed],
        UnitState::Inactive
            if observed.peer_primary && observed.has_peers && backoff_over && turn =>
        {
            vec![Action::StartJoin]
        }
        _ => vec![],
    }
}

/// The position to publish and report: live when running in a Primary component,
/// otherwise grastate, completed by `--wsrep-recover` when grastate's seqno is -1.
pub fn best_position(observed: &Observed) -> Option<(Position, &'static str)> {
    if let Some(status) = &observed.status {
        if status.wsrep_on
            && status.cluster_status == "Primary"
            && triad_galera::position::is_uuid(&status.cluster_state_uuid)
        {
            return Some((
                Position {
                    uuid: status.cluster_state_uuid.clone(),
                    seqno: status.last_committed,
                },
                "live",
            ));
        }
    }
    if let Some(recovered) = &observed.recovered {
        return Some((recovered.clone(), "wsrep-recover"));
    }
    observed
        .grastate
        .as_ref()
        .map(|g| (g.position.clone(), "grastate"))
}

/// The galera gossip keys for this observation.
pub fn keys(observed: &Observed, settings: &GaleraSettings) -> GaleraKeys {
    if !settings.managed {
        return GaleraKeys {
            state: GaleraState::NotManaged,
            ..GaleraKeys::default()
        };
    }
    let position = best_position(observed);
    let running = observed.status.as_ref().filter(|s| s.wsrep_on);
    GaleraKeys {
        state: derive_state(observed),
        cluster_status: observed
            .status
            .as_ref()
            .filter(|s| s.wsrep_on)
            .map(|s| s.cluster_status.clone()),
        size: observed
            .status
            .as_ref()
            .filter(|s| s.wsrep_on)
            .map(|s| s.cluster_size),
        uuid: position.as_ref().map(|(p, _)| p.uuid.clone()),
        seqno: position.as_ref().map(|(p, _)| p.seqno),
        safe_to_bootstrap: observed.grastate.as_ref().map(|g| g.safe_to_bootstrap),
        flow_control_paused_ns: running.and_then(|s| s.flow_control_paused_ns),
        recv_queue: running.and_then(|s| s.recv_queue),
        cert_failures: running.and_then(|s| s.cert_failures),
        failed_starts: observed.failed_starts,
        saved_view: observed.saved_view.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn observed(unit: UnitState) -> Observed {
        Observed {
            unit,
            status: None,
            grastate: None,
            saved_view: None,
            recovered: None,
            sst_in_progress: false,
            peer_primary: false,
            my_turn: true,
            waiting_for_turn_since: None,
            has_peers: true,
            coordinator_action: false,
            last_start: None,
            ahead: None,
            outside_since: None,
            joining_since: None,
            orphan_donation_since: None,
            failed_starts: 0,
            serving_before: false,
        }
    }

    fn synced() -> WsrepStatus {
        WsrepStatus {
            wsrep_on: true,
            local_state_comment: "Synced".into(),
            cluster_status: "Primary".into(),
            cluster_size: 3,
            last_committed: 42,
            cluster_state_uuid: "9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31".into(),
            ready: true,
            ..WsrepStatus::default()
        }
    }

    #[test]
    fn stopped_node_rejoins_only_when_a_peer_is_primary() {
        let settings = GaleraSettings::defaults("c");
        let now = Instant::now();
        let mut obs = observed(UnitState::Inactive);
        assert!(
            plan(&obs, &settings, now).is_empty(),
            "nobody primary: wait for the coordinator"
        );
        obs.peer_primary = true;
        assert_eq!(plan(&obs, &settings, now), vec![Action::StartJoin]);
        obs.last_start = Some(now);
        assert!(
            plan(&obs, &settings, now + Duration::from_secs(1)).is_empty(),
            "start backoff"
        );
        obs.has_peers = false;
        obs.last_start = None;
        assert!(
            plan(&obs, &settings, now).is_empty(),
            "never start with no peer in the cluster address"
        );
    }

    #[test]
    fn a_running_joiner_or_donor_is_never_touched() {
        let settings = GaleraSettings::defaults("c");
        let mut obs = observed(UnitState::Activating);
        obs.sst_in_progress = true;
        obs.peer_primary = true;
        assert!(plan(&obs, &settings, Instant::now()).is_empty());
        assert_eq!(derive_state(&obs), GaleraState::Joining);
        let mut donor = observed(UnitState::Active);
        donor.status = Some(WsrepStatus {
            local_state_comment: "Donor/Desynced".into(),
            ..synced()
        });
        assert!(plan(&donor, &settings, Instant::now()).is_empty());
        assert_eq!(derive_state(&donor), GaleraState::Donor);
    }

    #[test]
    fn joined_is_a_donor_catching_up_only_after_serving() {
        let mut obs = observed(UnitState::Active);
        obs.status = Some(WsrepStatus {
            local_state_comment: "Joined".into(),
            ..synced()
        });
        assert_eq!(
            derive_state(&obs),
            GaleraState::Joining,
            "a joiner past its state transfer"
        );
        obs.serving_before = true;
        assert_eq!(
            derive_state(&obs),
            GaleraState::Donor,
            "Synced or Donor before: the donor's DONOR -> JOINED -> SYNCED"
        );
        obs.status = Some(WsrepStatus {
            local_state_comment: "Joining: receiving State Transfer".into(),
            ..synced()
        });
        assert_eq!(derive_state(&obs), GaleraState::Joining);
    }

    /// Outside its peers' Primary component: a node that may still merge (non-Primary) gets
    /// OUTSIDE_LIMIT; one whose group connection closed (bench-recovery: a joiner whose IST
    /// missed a write set, "node restart required") only DISCONNECTED_LIMIT.
    #[test]
    fn a_mysqld_left_outside_its_peers_primary_is_stopped_after_its_limit() {
        let settings = GaleraSettings::defaults("c");
        let now = Instant::now();
        for (cluster_status, limit) in [
            ("non-Primary", OUTSIDE_LIMIT),
            ("Disconnected", DISCONNECTED_LIMIT),
        ] {
            let mut obs = observed(UnitState::Active);
            obs.status = Some(WsrepStatus {
                cluster_status: cluster_status.into(),
                local_state_comment: "Initialized".into(),
                ..synced()
            });
            obs.peer_primary = true;
            obs.outside_since = Some(now);
            assert!(
                plan(&obs, &settings, now + limit / 2).is_empty(),
                "{cluster_status}: stopped before its limit"
            );
            assert_eq!(
                plan(&obs, &settings, now + limit),
                vec![Action::StopOutside],
                "{cluster_status}"
            );
            // no live peer in a component (a cut-off node, a full outage): left to the
            // coordinator's recovery, never stopped here
            obs.peer_primary = false;
            assert!(plan(&obs, &settings, now + OUTSIDE_LIMIT * 3).is_empty());
            // the coordinator is acting on this node
            obs.peer_primary = true;
            obs.coordinator_action = true;
            assert!(plan(&obs, &settings, now + OUTSIDE_LIMIT * 3).is_empty());
        }
        // mysqld without Galera is not "Disconnected" (it is stopped as standalone instead)
        assert!(!disconnected(&WsrepStatus {
            wsrep_on: false,
            cluster_status: "Disconnected".into(),
            ..synced()
        }));
    }

    #[test]
    fn a_donation_with_no_joiner_left_is_aborted_after_the_limit() {
        let settings = GaleraSettings::defaults("c");
        let now = Instant::now();
        let mut obs = observed(UnitState::Active);
        obs.status = Some(WsrepStatus {
            local_state_comment: "Donor/Desynced".into(),
            ..synced()
        });
        obs.peer_primary = true;
        obs.orphan_donation_since = Some(now);
        let later = now + DONOR_ORPHAN_LIMIT;
        assert!(plan(&obs, &settings, later - Duration::from_secs(1)).is_empty());
        assert_eq!(plan(&obs, &settings, later), vec![Action::AbortDonation]);
        // the coordinator is acting on this node
        obs.coordinator_action = true;
        assert!(plan(&obs, &settings, later).is_empty());
        obs.coordinator_action = false;
        // a joiner in gossip (or no script running) clears the clock in the driver
        obs.orphan_donation_since = None;
        assert!(plan(&obs, &settings, later).is_empty());
    }

    #[test]
    fn a_joiner_starting_outside_the_component_with_no_transfer_is_stopped_after_the_limit() {
        let settings = GaleraSettings::defaults("c");
        let now = Instant::now();
        let mut obs = observed(UnitState::Activating);
        obs.peer_primary = true;
        obs.joining_since = Some(now);
        let later = now + JOIN_STUCK_LIMIT;
        assert!(plan(&obs, &settings, later - Duration::from_secs(1)).is_empty());
        assert_eq!(plan(&obs, &settings, later), vec![Action::StopJoiner]);
        // a state transfer running is never stopped
        obs.sst_in_progress = true;
        assert!(plan(&obs, &settings, later).is_empty());
        obs.sst_in_progress = false;
        // no peer in a Primary component: a full outage is the coordinator's
        obs.peer_primary = false;
        assert!(plan(&obs, &settings, later).is_empty());
        // the coordinator is acting on this node
        obs.peer_primary = true;
        obs.coordinator_action = true;
        assert!(plan(&obs, &settings, later).is_empty());
    }

    #[test]
    fn the_start_backoff_doubles_with_each_failed_start_up_to_ten_minutes() {
        let settings = GaleraSettings::defaults("c");
        let secs: Vec<u64> = [0, 1, 2, 3, 5, 6, 7, 40, u32::MAX]
            .iter()
            .map(|n| start_backoff(&settings, *n).as_secs())
            .collect();
        assert_eq!(secs, vec![10, 20, 40, 80, 320, 600, 600, 600, 600]);
        // a node that failed to start waits the doubled backoff before the next start
        let now = Instant::now();
        let mut obs = observed(UnitState::Inactive);
        obs.peer_primary = true;
        obs.has_peers = true;
        obs.my_turn = true;
        obs.failed_starts = 2;
        obs.last_start = Some(now);
        assert!(plan(&obs, &settings, now + Duration::from_secs(39)).is_empty());
        assert_eq!(
            plan(&obs, &settings, now + Duration::from_secs(40)),
            vec![Action::StartJoin]
        );
    }

    #[test]
    fn states_follow_wsrep_status() {
        let mut obs = observed(UnitState::Active);
        obs.status = Some(synced());
        assert_eq!(derive_state(&obs), GaleraState::Synced);
        obs.status = Some(WsrepStatus {
            cluster_status: "non-Primary".into(),
            ..synced()
        });
        assert_eq!(derive_state(&obs), GaleraState::PrimaryLost);
        obs.status = None;
        assert_eq!(
            derive_state(&obs),
            GaleraState::PrimaryLost,
            "running without an SQL answer"
        );
        assert_eq!(
            derive_state(&observed(UnitState::Failed)),
            GaleraState::Stopped
        );
    }

    #[test]
    fn standalone_mysqld_is_stopped_and_failed_unit_reset() {
        let settings = GaleraSettings::defaults("c");
        let mut obs = observed(UnitState::Active);
        obs.status = Some(WsrepStatus {
            wsrep_on: false,
            ..Default::default()
        });
        assert_eq!(
            plan(&obs, &settings, Instant::now()),
            vec![Action::StopStandalone]
        );
        assert_eq!(
            plan(&observed(UnitState::Failed), &settings, Instant::now()),
            vec![Action::ResetFailed]
        );
    }

    #[test]
    fn published_position_prefers_live_then_recovered_then_grastate() {
        let settings = GaleraSettings::defaults("c");
        let mut obs = observed(UnitState::Inactive);
        obs.grastate = Some(GraState {
            version: "2.1".into(),
            position: Position {
                uuid: "9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31".into(),
                seqno: -1,
            },
            safe_to_bootstrap: false,
        });
        assert_eq!(keys(&obs, &settings).seqno, Some(-1));
        obs.recovered = Some(Position {
            uuid: "9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31".into(),
            seqno: 250,
        });
        assert_eq!(keys(&obs, &settings).seqno, Some(250));
        obs.unit = UnitState::Active;
        obs.status = Some(synced());
        assert_eq!(keys(&obs, &settings).seqno, Some(42));
        assert_eq!(
            keys(&obs, &settings).cluster_status.as_deref(),
            Some("Primary")
        );
    }

    #[test]
    fn a_node_waits_for_its_turn_at_most_join_settle() {
        let settings = GaleraSettings::defaults("c");
        let now = Instant::now();
        let mut obs = observed(UnitState::Inactive);
        obs.peer_primary = true;
        obs.my_turn = false;
        obs.waiting_for_turn_since = Some(now);
        assert!(
            plan(&obs, &settings, now).is_empty(),
            "another joiner goes first"
        );
        assert!(plan(
            &obs,
            &settings,
            now + JOIN_SETTLE - Duration::from_millis(1)
        )
        .is_empty());
        assert_eq!(
            plan(&obs, &settings, now + JOIN_SETTLE),
            vec![Action::StartJoin],
            "a joiner that never enters the component does not hold this node back"
        );
    }

    #[test]
    fn a_node_ahead_of_the_component_is_stopped_never_started_and_shown() {
        let settings = GaleraSettings::defaults("c");
        let now = Instant::now();
        let mut obs = observed(UnitState::Activating);
        obs.peer_primary = true;
        obs.ahead = Some(ReversingHistory {
            local: 288,
            primary: 123,
        });
        assert_eq!(
            plan(&obs, &settings, now),
            vec![Action::StopAhead],
            "systemd's Restart= loop is stopped"
        );
        assert_eq!(derive_state(&obs), GaleraState::Ahead);
        obs.unit = UnitState::Failed;
        assert!(plan(&obs, &settings, now).is_empty(), "no reset, no start");
        obs.unit = UnitState::Inactive;
        assert!(plan(&obs, &settings, now).is_empty());
        assert_eq!(keys(&obs, &settings).state, GaleraState::Ahead);
        // an operator resolved it: the node runs Synced in a Primary component
        obs.unit = UnitState::Active;
        obs.status = Some(synced());
        assert_eq!(derive_state(&obs), GaleraState::Synced);
    }

    /// `systemctl is-active` words and the state each one means.
    const UNIT_WORDS: [(&str, UnitState); 6] = [
        ("active", UnitState::Active),
        ("reloading", UnitState::Active),
        ("activating", UnitState::Activating),
        ("deactivating", UnitState::Deactivating),
        ("inactive", UnitState::Inactive),
        ("failed", UnitState::Failed),
    ];

    proptest! {
        /// systemctl's answer is outside input: anything that is not one of its words is
        /// Unknown (never a running state by accident).
        #[test]
        fn unit_state_never_panics(
            text in prop_oneof![
                any::<String>(),
                (proptest::sample::select(&UNIT_WORDS[..]), "[a-z -]{0,3}", "[a-z -]{0,3}")
                    .prop_map(|((word, _), a, b)| format!("{a}{word}{b}")),
            ],
        ) {
            let state = UnitState::parse(&text);
            let known = UNIT_WORDS.iter().find(|(word, _)| *word == text.trim());
            prop_assert_eq!(state, known.map_or(UnitState::Unknown, |(_, s)| *s));
        }

        /// Each word, padded the way command output is, reads as its state.
        #[test]
        fn unit_state_words_round_trip(
            (word, want) in proptest::sample::select(&UNIT_WORDS[..]),
            before in "[ \t\n]{0,3}",
            after in "[ \t\r\n]{0,3}",
        ) {
            prop_assert_eq!(UnitState::parse(&format!("{before}{word}{after}")), want);
        }
    }
}
