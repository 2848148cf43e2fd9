//! The Gluster loop: keep glusterd.service running, restart this node's brick when the
//! volume is started without it, trigger self-heal when the brick comes back, and publish
//! `gluster.daemon` and `gluster.brick`.
//!
//! A brick that was down (or whose history this agent does not know: at start) counts as
//! `healing` until `heal info` shows no pending entries; Gluster itself may wait up to
//! `cluster.heal-timeout` (600 s) before healing a reconnected brick, so the agent runs
//! `gluster volume heal VOL` once when the brick is back (testbed.md 4.4). When another
//! brick is disconnected its pending entries cannot drain; then this brick is not held
//! back (AFR serves reads from good copies meanwhile).
//!
//! Only node-local calls judge the brick: `peer status` and `volume info` (answered by the
//! local glusterd from its own store) and the brick process itself ([`super::local`]).
//! `volume status` takes glusterd's cluster-wide lock, which an unreachable peer holds for
//! the ping-timeout, so it is left to the coordinator's volume view. A node that lost the
//! server quorum (cut off in the minority) missed writes: once its peers are back it heals
//! before its brick counts as online again.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use tokio::time::Instant;
use triad_proto::gossip::{BrickState, Health};

use super::cli::{self, CliError, GlusterCli};
use super::local::{BrickId, LocalBrick, LocalBricks, ProcBricks};
use super::xml::{HealBrick, Peer, VolumeInfo};
use crate::galera::UnitState;
use crate::service::ServiceManager;
use crate::state::AgentState;
use triad_cluster::membership::Membership;

/// `[gluster]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GlusterSettings {
    /// Keep glusterd and a brick on this node. Core nodes only; web nodes mount as clients.
    pub managed: bool,
    pub unit: String,
    pub volume: String,
    pub brick_path: PathBuf,
    pub cli_timeout: Duration,
}

impl Default for GlusterSettings {
    fn default() -> Self {
        GlusterSettings {
            managed: true,
            unit: "glusterd.service".into(),
            volume: "www".into(),
            brick_path: PathBuf::from("/bricks/www"),
            cli_timeout: Duration::from_secs(30),
        }
    }
}

/// What the local glusterd says, for the mount module: mount only a started volume, and
/// only while this node's glusterd is in the server-quorum side of the pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalGluster {
    pub volume_started: bool,
    pub server_quorum: bool,
}

/// One observation of the pool and volume from this node.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub peers: Vec<Peer>,
    pub volume: Option<VolumeInfo>,
    /// This node's brick process, judged locally (`None`: not running).
    pub brick: Option<LocalBrick>,
}

impl Observation {
    /// glusterd's server quorum: more than half of the pool (this node included) connected.
    pub fn server_quorum(&self) -> bool {
        let pool = self.peers.len() + 1;
        let connected = 1 + self
            .peers
            .iter()
            .filter(|p| p.in_cluster_and_connected())
            .count();
        connected * 2 > pool
    }
}

/// Memory kept between ticks.
#[derive(Debug, Clone)]
pub struct BrickMemory {
    /// The brick was seen down (or its history is unknown): heal must be checked.
    pub was_down: bool,
    pub heal_triggered: bool,
    pub last_force_start: Option<Instant>,
    /// Observations failed in a row (glusterd busy with another transaction, slow CLI).
    pub failures: u32,
    /// When the CLI last observed the brick online, with what it saw: in steady state the
    /// CLI (about 65 ms of CPU per call) runs again only when the [`Fingerprint`] changes
    /// or after [`STEADY_OBSERVE_EVERY`]; between, the brick process is checked through
    /// /proc.
    pub steady_since: Option<Steady>,
    /// This node's glusterd was seen without the server quorum (in a minority): its brick
    /// missed writes, so it heals once the quorum is back.
    pub lost_quorum: bool,
    /// `volume heal` refused in a row (glusterd could not reach this node's self-heal
    /// daemon: "Glusterd Syncop Mgmt brick op 'Heal' failed").
    pub heal_refusals: u32,
    /// The last heal info of a brick not healed yet, as logged (logged again on change).
    pub heal_seen: String,
}

impl Default for BrickMemory {
    fn default() -> Self {
        BrickMemory {
            was_down: true,
            heal_triggered: false,
            last_force_start: None,
            failures: 0,
            steady_since: None,
            lost_quorum: false,
            heal_refusals: 0,
            heal_seen: String::new(),
        }
    }
}

/// What one pass decided about the brick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrickAction {
    /// `gluster volume start VOL force`: glusterd starts bricks that are not running.
    ForceStart,
    /// `gluster volume heal VOL`
    TriggerHeal,
    /// `gluster volume heal VOL info`, then [`healed_for`].
    CheckHeal,
}

/// Pure: the brick's state and what to do, before any heal info is read. `memory` is
/// updated for a lost or regained server quorum.
pub fn assess(
    obs: &Observation,
    me: &BrickId,
    memory: &mut BrickMemory,
) -> (BrickState, Vec<BrickAction>) {
    let Some(volume) = &obs.volume else {
        return (BrickState::Absent, vec![]);
    };
    if !volume
        .bricks
        .bricks
        .iter()
        .any(|b| me.matches_name(&b.name))
    {
        return (BrickState::Absent, vec![]);
    }
    if volume.status != "Started" {
        return (BrickState::Offline, vec![]);
    }
    if !obs.brick.as_ref().is_some_and(LocalBrick::serving) {
        return (BrickState::Offline, vec![BrickAction::ForceStart]);
    }
    if !obs.server_quorum() {
        // cut off: no heal can run now; heal once the peers are back
        memory.lost_quorum = true;
        return (BrickState::Healing, vec![]);
    }
    if memory.lost_quorum {
        memory.lost_quorum = false;
        memory.was_down = true;
        memory.heal_triggered = false;
    }
    if !memory.was_down {
        return (BrickState::Online, vec![]);
    }
    let mut actions = Vec::new();
    if !memory.heal_triggered {
        actions.push(BrickAction::TriggerHeal);
    }
    actions.push(BrickAction::CheckHeal);
    (BrickState::Healing, actions)
}

/// Pure: has heal caught up for a brick that was down? Every brick connected with zero
/// pending entries; or another brick is disconnected, so entries cannot drain (then only
/// this brick's own count must be zero).
pub fn healed_for(me: &BrickId, bricks: &[HealBrick]) -> bool {
    if bricks.is_empty() {
        return false;
    }
    let others_disconnected = bricks
        .iter()
        .any(|b| !me.matches_name(&b.name) && b.status != "Connected");
    if others_disconnected {
        bricks
            .iter()
            .filter(|b| me.matches_name(&b.name))
            .all(|b| b.status == "Connected" && b.entries == Some(0))
    } else {
        bricks
            .iter()
            .all(|b| b.status == "Connected" && b.entries == Some(0))
    }
}

/// In steady state (brick online and healed, process alive, every peer connected, nothing
/// changed in the volume's store or in gossip), how often the gluster CLI still observes
/// the pool and volume: a slow cadence for what no cheaper evidence shows (issue 24: two
/// CLI calls every 10 s were about 1.3 % of a core).
pub const STEADY_OBSERVE_EVERY: Duration = Duration::from_secs(60);

/// The same while glusterd does not see a peer: its reconnection shows in nothing cheaper
/// than `peer status`, and the coordinator waits on it (`gluster.peers_down`).
pub const PEERS_DOWN_OBSERVE_EVERY: Duration = Duration::from_secs(10);

/// glusterd's store: `VOLUME/info` is rewritten on every change of the volume (start,
/// stop, options, bricks).
pub const GLUSTERD_VOLS: &str = "/var/lib/glusterd/vols";

/// The cheap evidence that steady state still holds, compared between two looks: the
/// volume's `info` file (modified time and length) and every other member as gossip shows
/// it (live, its glusterd, its brick). Any difference brings the CLI back at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub info: Option<(std::time::SystemTime, u64)>,
    pub peers: Vec<(String, bool, Health, BrickState)>,
}

/// The last look that found the brick online.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steady {
    pub at: Instant,
    pub pid: i64,
    pub fingerprint: Fingerprint,
    /// glusterd did not see every peer then.
    pub peers_down: bool,
    /// `volume info` as that look read it.
    pub volume: Option<VolumeInfo>,
}

impl Steady {
    /// Pure: may this tick skip the CLI? The brick process is checked by the caller.
    pub fn still_holds(&self, now: Instant, fingerprint: &Fingerprint) -> bool {
        now.saturating_duration_since(self.at) < self.every() && self.fingerprint == *fingerprint
    }

    fn every(&self) -> Duration {
        if self.peers_down {
            PEERS_DOWN_OBSERVE_EVERY
        } else {
            STEADY_OBSERVE_EVERY
        }
    }

    /// Pure: when only the cadence ran out (nothing in the fingerprint changed), the
    /// volume as last read: glusterd answers `volume info` from its store, whose `info`
    /// file is unchanged, so only `peer status` (runtime connections) needs the CLI.
    pub fn unchanged_volume(&self, fingerprint: &Fingerprint) -> Option<&VolumeInfo> {
        if fingerprint.info.is_some() && self.fingerprint == *fingerprint {
            self.volume.as_ref()
        } else {
            None
        }
    }
}

/// Failed observations in a row before the brick is published offline.
const FAILURES_BEFORE_OFFLINE: u32 = 3;

/// Minimum time between two `volume start force` for a brick that stays offline.
const FORCE_START_EVERY: Duration = Duration::from_secs(10);

/// `volume heal` refused this many times in a row: the self-heal daemon is not there to
/// take it, and `volume start force` (which starts the volume's processes that are not
/// running, and touches none that are) brings it back.
const HEAL_REFUSALS_BEFORE_FORCE_START: u32 = 3;

/// Pure: a `volume heal` was refused; answers whether to `volume start force` now (after
/// [`HEAL_REFUSALS_BEFORE_FORCE_START`] refusals in a row, at most every
/// [`FORCE_START_EVERY`]).
pub fn heal_refused(memory: &mut BrickMemory, now: Instant) -> bool {
    memory.heal_refusals += 1;
    let recent = memory
        .last_force_start
        .is_some_and(|t| now.saturating_duration_since(t) < FORCE_START_EVERY);
    if memory.heal_refusals >= HEAL_REFUSALS_BEFORE_FORCE_START && !recent {
        memory.last_force_start = Some(now);
        return true;
    }
    false
}

pub struct GlusterDriver {
    pub settings: GlusterSettings,
    pub node_id: String,
    pub me: BrickId,
    pub cli: Arc<dyn GlusterCli>,
    pub services: Arc<dyn ServiceManager>,
    /// The brick process seen from this node (`/proc` in production).
    pub bricks: Arc<dyn LocalBricks>,
    pub state: Arc<AgentState>,
    pub local: watch::Sender<LocalGluster>,
    pub memory: Mutex<BrickMemory>,
    /// Gossip, for the steady state's [`Fingerprint`].
    pub membership: Option<Arc<Membership>>,
}

impl std::fmt::Debug for GlusterDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlusterDriver")
            .field("node", &self.node_id)
            .field("volume", &self.settings.volume)
            .finish()
    }
}

impl GlusterDriver {
    pub fn new(
        settings: GlusterSettings,
        node_id: String,
        address: IpAddr,
        cli: Arc<dyn GlusterCli>,
        services: Arc<dyn ServiceManager>,
        state: Arc<AgentState>,
        membership: Option<Arc<Membership>>,
    ) -> GlusterDriver {
        let me = BrickId {
            hosts: vec![address.to_string(), node_id.clone()],
            path: settings.brick_path.display().to_string(),
        };
        GlusterDriver {
            settings,
            node_id,
            me,
            cli,
            services,
            bricks: Arc::new(ProcBricks::default()),
            state,
            local: watch::channel(LocalGluster::default()).0,
            memory: Mutex::new(BrickMemory::default()),
            membership,
        }
    }

    /// The steady state's cheap evidence: a stat of the volume's store file and a look at
    /// gossip (no process, no glusterd call).
    async fn fingerprint(&self) -> Fingerprint {
        let info = std::path::Path::new(GLUSTERD_VOLS)
            .join(&self.settings.volume)
            .join("info");
        let info = tokio::fs::metadata(&info)
            .await
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        let mut peers = match &self.membership {
            Some(membership) => membership
                .members()
                .await
                .into_iter()
                .filter(|m| !m.is_self)
                .map(|m| {
                    (
                        m.node_id,
                        m.live,
                        m.keys.gluster_daemon,
                        m.keys.gluster_brick,
                    )
                })
                .collect(),
            None => Vec::new(),
        };
        peers.sort_by(|a, b| a.0.cmp(&b.0));
        Fingerprint { info, peers }
    }

    pub fn subscribe(&self) -> watch::Receiver<LocalGluster> {
        self.local.subscribe()
    }

    /// Node-local calls only (see the module docs): never `volume status`. `known`: the
    /// volume info still valid (see [`Steady::unchanged_volume`]), spared a CLI call.
    pub async fn observe(&self, known: Option<VolumeInfo>) -> Result<Observation, CliError> {
        let cli = self.cli.as_ref();
        let peers = cli::peers(cli).await?;
        let volume = match known {
            Some(volume) => Some(volume),
            None => cli::volume(cli, &self.settings.volume).await?,
        };
        let brick = self.local_brick().await;
        Ok(Observation {
            peers,
            volume,
            brick,
        })
    }

    /// This node's brick process (a /proc scan, off the async threads).
    async fn local_brick(&self) -> Option<LocalBrick> {
        let bricks = self.bricks.clone();
        let volume = self.settings.volume.clone();
        let me = self.me.clone();
        tokio::task::spawn_blocking(move || bricks.find(&volume, &me))
            .await
            .ok()
            .flatten()
    }

    /// `volume start VOLUME force`: starts the volume's processes that are not running
    /// (a brick, the self-heal daemon) and touches none that are.
    async fn start_force(&self) {
        let volume = &self.settings.volume;
        if let Err(error) =
            cli::command(self.cli.as_ref(), &["volume", "start", volume, "force"]).await
        {
            tracing::warn!(node = %self.node_id, "volume start force: {error}");
        }
    }

    pub async fn tick(&self) {
        let unit = self.services.state(&self.settings.unit).await;
        let start = match unit {
            UnitState::Failed => {
                if let Err(error) = self.services.reset_failed(&self.settings.unit).await {
                    tracing::warn!(node = %self.node_id, "glusterd reset-failed: {error}");
                }
                true
            }
            UnitState::Inactive => true,
            UnitState::Activating
                if self.services.waiting_to_restart(&self.settings.unit).await =>
            {
                // `start` would wait out RestartSec (60 s for glusterd); `restart` does not
                tracing::info!(node = %self.node_id, "{} waits to auto-restart: restarting it now", self.settings.unit);
                if let Err(error) = self.services.restart(&self.settings.unit).await {
                    tracing::warn!(node = %self.node_id, "restarting glusterd failed: {error}");
                }
                false
            }
            _ => false,
        };
        if start {
            tracing::info!(node = %self.node_id, ?unit, "starting {}", self.settings.unit);
            if let Err(error) = self.services.start(&self.settings.unit).await {
                tracing::warn!(node = %self.node_id, "starting glusterd failed; retrying on a later tick: {error}");
            }
        }
        if unit != UnitState::Active {
            {
                let mut memory = self.memory.lock().await;
                memory.was_down = true;
                memory.steady_since = None;
            }
            self.local.send_replace(LocalGluster::default());
            self.state.update(|keys| {
                keys.gluster_daemon = Health::Down;
                keys.gluster_brick = BrickState::Offline;
                keys.gluster_peers_down.clear();
            });
            return;
        }
        let fingerprint = self.fingerprint().await;
        let mut known_volume = None;
        {
            let mut memory = self.memory.lock().await;
            if let Some(steady) = memory.steady_since.take() {
                if self.bricks.alive(steady.pid) {
                    if steady.still_holds(Instant::now(), &fingerprint) {
                        memory.steady_since = Some(steady);
                        return;
                    }
                    known_volume = steady.unchanged_volume(&fingerprint).cloned();
                }
            }
        }
        let obs = match self.observe(known_volume).await {
            Ok(obs) => {
                self.memory.lock().await.failures = 0;
                obs
            }
            Err(error) => {
                // the local glusterd did not answer (busy, slow): that says nothing about
                // the brick, whose own process is the evidence; keep what was published
                // while it serves
                let serving = self.local_brick().await.is_some_and(|b| b.serving());
                let mut memory = self.memory.lock().await;
                memory.failures += 1;
                if serving || memory.failures < FAILURES_BEFORE_OFFLINE {
                    tracing::debug!(node = %self.node_id, failures = memory.failures, serving, "gluster observation failed: {error}");
                    return;
                }
                tracing::warn!(node = %self.node_id, failures = memory.failures, "gluster observation failed and the brick process does not serve: {error}");
                memory.was_down = true;
                drop(memory);
                self.local.send_replace(LocalGluster::default());
                self.state.update(|keys| {
                    keys.gluster_daemon = Health::Ok;
                    keys.gluster_brick = BrickState::Offline;
                });
                return;
            }
        };
        self.local.send_replace(LocalGluster {
            volume_started: obs.volume.as_ref().is_some_and(|v| v.status == "Started"),
            server_quorum: obs.server_quorum(),
        });
        let mut memory = self.memory.lock().await;
        let (mut brick, actions) = assess(&obs, &self.me, &mut memory);
        if matches!(brick, BrickState::Offline | BrickState::Absent) {
            memory.was_down = true;
            memory.heal_triggered = false;
        }
        for action in actions {
            match action {
                BrickAction::ForceStart => {
                    if memory
                        .last_force_start
                        .is_some_and(|t| t.elapsed() < FORCE_START_EVERY)
                    {
                        continue;
                    }
                    memory.last_force_start = Some(Instant::now());
                    tracing::info!(node = %self.node_id, volume = %self.settings.volume, "brick offline: volume start force");
                    self.start_force().await;
                }
                BrickAction::TriggerHeal => {
                    tracing::info!(node = %self.node_id, volume = %self.settings.volume, "brick back online: triggering self-heal");
                    let volume = self.settings.volume.clone();
                    match cli::command(self.cli.as_ref(), &["volume", "heal", &volume]).await {
                        Ok(_) => {
                            memory.heal_triggered = true;
                            memory.heal_refusals = 0;
                        }
                        Err(error) => {
                            let force = heal_refused(&mut memory, Instant::now());
                            tracing::warn!(node = %self.node_id, refusals = memory.heal_refusals, "volume heal: {error}");
                            if force {
                                tracing::info!(node = %self.node_id, volume = %volume, "heal refused {} times: volume start force (brings back a self-heal daemon that is not running)", memory.heal_refusals);
                                self.start_force().await;
                            }
                        }
                    }
                }
                BrickAction::CheckHeal => {
                    match cli::heal_info(self.cli.as_ref(), &self.settings.volume).await {
                        Ok(bricks) if healed_for(&self.me, &bricks) => {
                            tracing::info!(node = %self.node_id, "self-heal complete; brick online");
                            memory.was_down = false;
                            memory.heal_triggered = false;
                            memory.heal_refusals = 0;
                            memory.heal_seen.clear();
                            brick = BrickState::Online;
                        }
                        Ok(bricks) => {
                            // what keeps the brick healing, said once per change
                            let seen = bricks
                                .iter()
                                .map(|b| {
                                    format!(
                                        "{} {} {}",
                                        b.name,
                                        b.status,
                                        b.entries.map_or("-".into(), |n| n.to_string())
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join(", ");
                            if seen != memory.heal_seen {
                                tracing::info!(node = %self.node_id, "not healed yet: {seen}");
                                memory.heal_seen = seen;
                            }
                        }
                        Err(error) => {
                            tracing::warn!(node = %self.node_id, "heal info: {error}")
                        }
                    }
                }
            }
        }
        // the peers this glusterd does not count for server quorum (the coordinator names
        // them: one more failure and the survivors' bricks stop)
        let peers_down: Vec<String> = obs
            .peers
            .iter()
            .filter(|p| p.connected != 1)
            .map(|p| p.hostname.clone())
            .collect();
        memory.steady_since = match (brick, &obs.brick) {
            (BrickState::Online, Some(local)) => Some(Steady {
                at: Instant::now(),
                pid: local.pid,
                fingerprint,
                peers_down: !peers_down.is_empty(),
                volume: obs.volume.clone(),
            }),
            _ => None,
        };
        drop(memory);
        self.state.update(|keys| {
            keys.gluster_daemon = Health::Ok;
            keys.gluster_brick = brick;
            keys.gluster_peers_down = peers_down;
        });
    }

    pub async fn run(self: Arc<Self>, interval: Duration, stop: watch::Receiver<bool>) {
        crate::state::every(interval, stop, || self.tick()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluster::xml;

    fn me() -> BrickId {
        BrickId {
            hosts: vec!["10.214.0.13".into(), "n3".into()],
            path: "/bricks/www".into(),
        }
    }

    fn started() -> Observation {
        let mut volume = xml::volume_info(include_str!("fixtures/volume-info.xml"))
            .unwrap()
            .pop()
            .unwrap();
        volume.status = "Started".into();
        Observation {
            peers: xml::peer_status(include_str!("fixtures/peer-status.xml")).unwrap(),
            volume: Some(volume),
            brick: Some(LocalBrick {
                pid: 4242,
                port: Some(49152),
                listening: true,
            }),
        }
    }

    #[test]
    fn a_heal_refused_three_times_in_a_row_force_starts_the_volume_at_a_bounded_pace() {
        let mut memory = BrickMemory::default();
        let t0 = Instant::now();
        assert!(!heal_refused(&mut memory, t0), "once");
        assert!(!heal_refused(&mut memory, t0), "twice");
        assert!(heal_refused(&mut memory, t0), "three times in a row");
        assert!(
            !heal_refused(&mut memory, t0 + Duration::from_secs(1)),
            "not again within FORCE_START_EVERY"
        );
        assert!(heal_refused(&mut memory, t0 + FORCE_START_EVERY));
    }

    #[test]
    fn no_volume_or_no_brick_of_ours_is_absent() {
        let mut memory = BrickMemory::default();
        assert_eq!(
            assess(&Observation::default(), &me(), &mut memory),
            (BrickState::Absent, vec![])
        );
        let other = BrickId {
            hosts: vec!["n9".into()],
            path: "/bricks/www".into(),
        };
        assert_eq!(
            assess(&started(), &other, &mut memory).0,
            BrickState::Absent
        );
    }

    #[test]
    fn offline_brick_of_a_started_volume_is_force_started() {
        let mut obs = started();
        obs.brick = None;
        let (state, actions) = assess(&obs, &me(), &mut BrickMemory::default());
        assert_eq!(state, BrickState::Offline);
        assert_eq!(actions, vec![BrickAction::ForceStart]);
        // a process whose port does not listen (starting, or wedged) does not serve
        obs.brick = Some(LocalBrick {
            pid: 4242,
            port: Some(49152),
            listening: false,
        });
        let (state, _) = assess(&obs, &me(), &mut BrickMemory::default());
        assert_eq!(state, BrickState::Offline);
    }

    /// Issue 26: cut off in the minority, the brick missed writes. It is not online while
    /// cut off, and heals before it is online again; a node that keeps the quorum (a
    /// survivor of the same partition) is not held back.
    #[test]
    fn a_node_that_lost_the_server_quorum_heals_once_its_peers_are_back() {
        let mut memory = BrickMemory {
            was_down: false,
            ..BrickMemory::default()
        };
        let mut cut_off = started();
        for peer in &mut cut_off.peers {
            peer.connected = 0;
        }
        assert_eq!(
            assess(&cut_off, &me(), &mut memory),
            (BrickState::Healing, vec![])
        );
        assert_eq!(
            assess(&started(), &me(), &mut memory),
            (
                BrickState::Healing,
                vec![BrickAction::TriggerHeal, BrickAction::CheckHeal]
            )
        );
        // a survivor: one peer away, quorum kept
        let mut survivor = BrickMemory {
            was_down: false,
            ..BrickMemory::default()
        };
        let mut one_away = started();
        one_away.peers[0].connected = 0;
        assert_eq!(
            assess(&one_away, &me(), &mut survivor),
            (BrickState::Online, vec![])
        );
    }

    #[test]
    fn brick_back_online_heals_before_it_counts_as_online() {
        let mut memory = BrickMemory::default();
        let (state, actions) = assess(&started(), &me(), &mut memory);
        assert_eq!(state, BrickState::Healing);
        assert_eq!(
            actions,
            vec![BrickAction::TriggerHeal, BrickAction::CheckHeal]
        );
        memory.heal_triggered = true;
        assert_eq!(
            assess(&started(), &me(), &mut memory).1,
            vec![BrickAction::CheckHeal]
        );
        memory.was_down = false;
        assert_eq!(
            assess(&started(), &me(), &mut memory),
            (BrickState::Online, vec![])
        );
    }

    fn heal(entries: [(&str, Option<u64>); 3]) -> Vec<HealBrick> {
        entries
            .iter()
            .map(|(name, count)| HealBrick {
                name: format!("{name}:/bricks/www"),
                status: if count.is_some() {
                    "Connected".into()
                } else {
                    "Transport endpoint is not connected".into()
                },
                entries: *count,
                files: vec![],
            })
            .collect()
    }

    #[test]
    fn healed_only_when_nothing_is_pending_anywhere_that_can_drain() {
        assert!(healed_for(
            &me(),
            &heal([("n1", Some(0)), ("n2", Some(0)), ("n3", Some(0))])
        ));
        // n3 came back: the sources still hold entries for it
        assert!(!healed_for(
            &me(),
            &heal([("n1", Some(23)), ("n2", Some(23)), ("n3", Some(0))])
        ));
        // n1 is away: its entries cannot drain; n3's own brick is clean
        assert!(healed_for(
            &me(),
            &heal([("n1", None), ("n2", Some(5)), ("n3", Some(0))])
        ));
        assert!(!healed_for(
            &me(),
            &heal([("n1", None), ("n2", Some(5)), ("n3", Some(2))])
        ));
        assert!(!healed_for(&me(), &[]));
    }

    #[test]
    fn steady_state_skips_the_cli_until_something_changes_or_the_slow_cadence() {
        let t0 = Instant::now();
        let fingerprint = Fingerprint {
            info: Some((std::time::SystemTime::UNIX_EPOCH, 812)),
            peers: vec![
                ("n2".into(), true, Health::Ok, BrickState::Online),
                ("n3".into(), true, Health::Ok, BrickState::Online),
            ],
        };
        let steady = Steady {
            at: t0,
            pid: 4242,
            fingerprint: fingerprint.clone(),
            peers_down: false,
            volume: Some(started().volume.unwrap()),
        };
        let later = t0 + STEADY_OBSERVE_EVERY - Duration::from_secs(1);
        assert!(steady.still_holds(later, &fingerprint));
        assert!(!steady.still_holds(t0 + STEADY_OBSERVE_EVERY, &fingerprint));
        // only the cadence ran out: the volume as last read, peers from the CLI
        assert_eq!(
            steady.unchanged_volume(&fingerprint),
            steady.volume.as_ref()
        );
        // the volume's store rewritten (an option set, a stop): the CLI reads it again
        let mut changed = fingerprint.clone();
        changed.info = Some((std::time::SystemTime::UNIX_EPOCH, 813));
        assert!(!steady.still_holds(t0, &changed));
        assert_eq!(steady.unchanged_volume(&changed), None);
        // no store file to compare: never trusted
        let mut unknown = fingerprint.clone();
        unknown.info = None;
        let blind = Steady {
            fingerprint: unknown.clone(),
            ..steady.clone()
        };
        assert_eq!(blind.unchanged_volume(&unknown), None);
        // a peer dies, or its brick goes offline, in gossip
        let mut changed = fingerprint.clone();
        changed.peers[1].1 = false;
        assert!(!steady.still_holds(t0, &changed));
        let mut changed = fingerprint.clone();
        changed.peers[0].3 = BrickState::Offline;
        assert!(!steady.still_holds(t0, &changed));
        // while glusterd does not see a peer, its reconnection is looked for every 10 s
        let waiting = Steady {
            peers_down: true,
            ..steady
        };
        assert!(waiting.still_holds(t0 + PEERS_DOWN_OBSERVE_EVERY / 2, &fingerprint));
        assert!(!waiting.still_holds(t0 + PEERS_DOWN_OBSERVE_EVERY, &fingerprint));
    }

    #[test]
    fn server_quorum_counts_this_node() {
        let mut obs = started();
        assert!(obs.server_quorum());
        for peer in &mut obs.peers {
            peer.connected = 0;
        }
        assert!(!obs.server_quorum());
        obs.peers.truncate(1);
        // two-node pool with the peer away: 1 of 2 is not more than half
        assert!(!obs.server_quorum());
        obs.peers.clear();
        assert!(obs.server_quorum());
    }
}
