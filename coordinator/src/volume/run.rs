//! The volume loop: observe the pool through one live core node's agent, plan, run the
//! steps through that agent, publish a status line.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_stream::StreamExt;
use triad_proto::gossip::Health;
use triad_proto::v1;
use triad_proto::v1::agent_service_client::AgentServiceClient;

use super::{plan, BrickObs, NodeFacts, PeerObs, Plan, PoolObs, Step, VolumeObs, VolumeSpec};
use crate::agent_client::{answer, AgentError};
use crate::observer::Coordinator;
use crate::runner;
use crate::view::ClusterView;

#[async_trait::async_trait]
pub trait VolumeAgents: Send + Sync {
    async fn state(
        &self,
        node: &str,
        grpc: SocketAddr,
        volume: &str,
        heal_info: bool,
    ) -> Result<PoolObs, AgentError>;
    async fn step(
        &self,
        node: &str,
        grpc: SocketAddr,
        volume: &str,
        step: &Step,
    ) -> Result<String, AgentError>;
}

/// Agents over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcVolumeAgents {
    pub connect_timeout: Duration,
}

impl GrpcVolumeAgents {
    async fn client(
        &self,
        node: &str,
        grpc: SocketAddr,
    ) -> Result<AgentServiceClient<tonic::transport::Channel>, AgentError> {
        // volume create/start and heal info take seconds on a busy node
        crate::agent_client::connect(node, grpc, self.connect_timeout, Duration::from_secs(90))
            .await
    }
}

#[async_trait::async_trait]
impl VolumeAgents for GrpcVolumeAgents {
    async fn state(
        &self,
        node: &str,
        grpc: SocketAddr,
        volume: &str,
        heal_info: bool,
    ) -> Result<PoolObs, AgentError> {
        let mut client = self.client(node, grpc).await?;
        let request = v1::GlusterStateRequest {
            volume: volume.to_string(),
            heal_info,
        };
        let reply = answer(node, client.gluster_state(request).await)?;
        Ok(PoolObs {
            via: node.to_string(),
            peers: reply
                .peers
                .into_iter()
                .map(|p| PeerObs {
                    hostname: p.hostname,
                    connected: p.connected,
                    state: p.state,
                })
                .collect(),
            volume: reply.volume.map(|v| VolumeObs {
                status: v.status,
                replica: v.replica,
                bricks: v
                    .bricks
                    .into_iter()
                    .map(|b| BrickObs {
                        name: b.name,
                        online: b.online,
                        heal_pending: b.heal_pending,
                        split_brain: b.split_brain,
                    })
                    .collect(),
                options: v.options.into_iter().collect(),
                split_brain_files: v.split_brain_files,
            }),
        })
    }

    async fn step(
        &self,
        node: &str,
        grpc: SocketAddr,
        volume: &str,
        step: &Step,
    ) -> Result<String, AgentError> {
        use v1::gluster_step_request::Step as P;
        let proto = match step {
            Step::Probe(host) => P::Probe(host.clone()),
            Step::Create {
                replica,
                bricks,
                force,
            } => P::Create(v1::GlusterVolumeCreate {
                volume: volume.to_string(),
                replica: *replica,
                bricks: bricks.clone(),
                force: *force,
            }),
            Step::Set(key, value) => P::Set(v1::GlusterVolumeSet {
                volume: volume.to_string(),
                key: key.clone(),
                value: value.clone(),
            }),
            Step::Start => P::Start(volume.to_string()),
            Step::Resolve {
                policy,
                brick,
                file,
            } => P::Resolve(v1::GlusterResolve {
                volume: volume.to_string(),
                policy: policy.clone(),
                brick: brick.clone(),
                file: file.clone(),
            }),
        };
        let mut client = self.client(node, grpc).await?;
        let request = v1::GlusterStepRequest { step: Some(proto) };
        answer(node, client.gluster_step(request).await).map(|reply| reply.output)
    }
}

/// A member's address: the host of its gRPC address (agents listen on the node address),
/// else of its gossip address.
/// Pure: facts of the formation nodes, the addresses for auth.allow, and where to reach
/// each formation node's agent.
pub fn facts(
    spec: &VolumeSpec,
    view: &ClusterView,
) -> (Vec<NodeFacts>, Vec<IpAddr>, Vec<(String, SocketAddr)>) {
    let mut nodes = Vec::new();
    let mut grpc = Vec::new();
    for id in &spec.nodes {
        if let Some(member) = view.members().find(|m| &m.node_id == id) {
            nodes.push(NodeFacts {
                id: id.clone(),
                address: member.address(),
                live: member.live,
                glusterd_ok: member.keys.gluster_daemon == Health::Ok,
                peers_down: member.keys.gluster_peers_down.clone(),
            });
            if let Some(addr) = member.keys.grpc {
                if member.live && member.keys.gluster_daemon == Health::Ok {
                    grpc.push((id.clone(), addr));
                }
            }
        }
    }
    // dead web nodes leave auth.allow (a removed node's address may be given to another
    // machine); dead core nodes stay (they come back to their bricks)
    let mut allow: Vec<IpAddr> = view
        .members()
        .filter(|m| m.keys.role != triad_proto::gossip::Role::Unknown)
        .filter(|m| m.live || m.keys.role != triad_proto::gossip::Role::Web)
        .map(|m| m.address())
        .chain(nodes.iter().map(|n| n.address))
        .collect();
    allow.sort();
    allow.dedup();
    (nodes, allow, grpc)
}

pub struct VolumeLoop {
    pub spec: VolumeSpec,
    pub agents: Arc<dyn VolumeAgents>,
    pub tick: Duration,
    /// The pause when the volume is formed and every brick online and healed.
    pub steady_tick: Duration,
    /// Ask for heal info every this many ticks (it runs a gfapi client on the node).
    pub heal_every: u32,
    status: watch::Sender<VolumeStatus>,
    /// Heal and split-brain counts of the last pass that asked, per brick, and the files in
    /// split-brain: shown between heal-info passes.
    last_heal: std::sync::Mutex<HealMemory>,
    /// Node maintenance's wish for a relaxed quorum (issue 21); `None`: never relaxed.
    relax: Option<Arc<super::QuorumRelax>>,
}

#[derive(Debug, Default)]
struct HealMemory {
    pending: std::collections::BTreeMap<String, u64>,
    split_brain: std::collections::BTreeMap<String, u64>,
    files: Vec<String>,
}

/// Resolves files in split-brain (`triadctl volume resolve`) through the first formation
/// node whose agent answers with glusterd running.
#[derive(Clone)]
pub struct VolumeResolver {
    spec: VolumeSpec,
    agents: Arc<dyn VolumeAgents>,
}

impl std::fmt::Debug for VolumeResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VolumeResolver({})", self.spec.name)
    }
}

impl VolumeResolver {
    /// gluster's answer ("Healed /f.") or why not, naming the node and gluster's words
    /// ("No difference in mtime", "File not in split-brain").
    pub async fn resolve(
        &self,
        view: &ClusterView,
        policy: &str,
        brick: &str,
        file: &str,
    ) -> Result<String, String> {
        let (_, _, grpc) = facts(&self.spec, view);
        if grpc.is_empty() {
            return Err(format!(
                "volume {}: no formation node is live with glusterd running",
                self.spec.name
            ));
        }
        let step = Step::Resolve {
            policy: policy.to_string(),
            brick: brick.to_string(),
            file: file.to_string(),
        };
        let mut errors = Vec::new();
        for (node, addr) in grpc {
            match self.agents.step(&node, addr, &self.spec.name, &step).await {
                Ok(output) => return Ok(format!("{node}: {output}")),
                // gluster answered (a refusal, not an unreachable agent): no other node
                // would answer otherwise
                Err(error) if error.kind != triad_proto::errors::ErrorKind::Unavailable => {
                    return Err(error.to_string())
                }
                Err(error) => errors.push(error.to_string()),
            }
        }
        Err(errors.join("; "))
    }
}

/// The volume loop's status as it publishes it: the operator's line and, for /metrics,
/// where the volume stands.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeStatus {
    /// The line `triadctl status` shows.
    pub line: String,
    pub state: VolumeState,
    /// The bricks as the last answering node saw them (heal counts from the last heal-info
    /// pass); empty until observed and while no node answers.
    pub bricks: Vec<super::BrickObs>,
    /// Files in split-brain as the last heal-info pass found them.
    pub split_brain_files: Vec<String>,
    /// The quorum as the last observation found it: relaxed for maintenance or not
    /// (`None`: not observed).
    pub quorum_relaxed: Option<bool>,
}

/// Where the volume stands, as the last pass saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeState {
    /// No pass has observed it yet.
    NotObserved,
    /// No agent could say (glusterd down everywhere, or a peer cut off holds the lock).
    Unknown,
    /// Being formed or repaired: steps to take, or waiting for nodes.
    Forming,
    /// A step failed; the next pass plans again.
    StepFailed,
    /// Formed and started; `steady`: every brick online and nothing left to heal.
    Formed { steady: bool },
}

impl VolumeState {
    /// The word for /metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeState::NotObserved => "not-observed",
            VolumeState::Unknown => "unknown",
            VolumeState::Forming => "forming",
            VolumeState::StepFailed => "step-failed",
            VolumeState::Formed { steady: true } => "steady",
            VolumeState::Formed { steady: false } => "formed",
        }
    }
}

impl VolumeLoop {
    pub fn new(spec: VolumeSpec, agents: Arc<dyn VolumeAgents>, tick: Duration) -> VolumeLoop {
        VolumeLoop {
            status: watch::channel(VolumeStatus {
                line: format!("{}: not observed yet", spec.name),
                state: VolumeState::NotObserved,
                bricks: Vec::new(),
                split_brain_files: Vec::new(),
                quorum_relaxed: None,
            })
            .0,
            relax: None,
            spec,
            agents,
            tick,
            steady_tick: Duration::from_secs(10),
            heal_every: 3,
            last_heal: Default::default(),
        }
    }

    pub fn status(&self) -> watch::Receiver<VolumeStatus> {
        self.status.subscribe()
    }

    /// Relax the quorum when node maintenance asks (issue 21).
    pub fn with_relax(mut self, relax: Arc<super::QuorumRelax>) -> VolumeLoop {
        self.relax = Some(relax);
        self
    }

    fn relax_wanted(&self) -> bool {
        self.relax.as_ref().is_some_and(|r| r.wanted())
    }

    fn set_status(&self, text: String, state: VolumeState) {
        self.status.send_if_modified(|old| {
            if old.line == text && old.state == state {
                return false;
            }
            if old.line != text {
                tracing::info!(state = state.as_str(), "volume: {text}");
            }
            old.line = text;
            old.state = state;
            true
        });
    }

    fn set_bricks(&self, bricks: Vec<super::BrickObs>, split_brain_files: Vec<String>) {
        self.status.send_if_modified(|old| {
            let changed = old.bricks != bricks || old.split_brain_files != split_brain_files;
            old.bricks = bricks;
            old.split_brain_files = split_brain_files;
            changed
        });
    }

    /// The operator's side of the volume: split-brain resolution through an agent.
    pub fn resolver(&self) -> VolumeResolver {
        VolumeResolver {
            spec: self.spec.clone(),
            agents: self.agents.clone(),
        }
    }

    /// One observation and its steps. True when the volume is formed with every brick
    /// online (the loop then polls slowly: each observation runs three gluster CLI calls,
    /// about 65 ms of CPU each, on the observed node).
    pub async fn pass(&self, view: &ClusterView, heal_info: bool) -> bool {
        let (nodes, allow, grpc) = facts(&self.spec, view);
        let mut obs = None;
        let mut errors = Vec::new();
        for (node, addr) in &grpc {
            match self
                .agents
                .state(node, *addr, &self.spec.name, heal_info)
                .await
            {
                Ok(o) => {
                    obs = Some((o, *addr));
                    break;
                }
                Err(error) => errors.push(format!("{node}: {error}")),
            }
        }
        let Some((mut obs, via_addr)) = obs else {
            let line = if errors.is_empty() {
                format!("{}: no core node with glusterd running", self.spec.name)
            } else {
                // glusterd's cluster-wide calls fail while a peer is cut off (it holds
                // the cluster lock): the volume's state is unknown, not offline; the
                // nodes judge their own bricks locally
                format!(
                    "{}: state unknown, no agent answered ({})",
                    self.spec.name,
                    errors.join("; ")
                )
            };
            self.set_bricks(Vec::new(), Vec::new());
            self.set_status(line, VolumeState::Unknown);
            return false;
        };
        if let Some(volume) = obs.volume.as_mut() {
            let mut cache = self.last_heal.lock().unwrap_or_else(|p| p.into_inner());
            let cache = &mut *cache;
            for brick in &mut volume.bricks {
                for (count, memory) in [
                    (&mut brick.heal_pending, &mut cache.pending),
                    (&mut brick.split_brain, &mut cache.split_brain),
                ] {
                    match *count {
                        Some(n) if heal_info => {
                            memory.insert(brick.name.clone(), n);
                        }
                        None if heal_info => {
                            memory.remove(&brick.name);
                        }
                        _ => *count = memory.get(&brick.name).copied(),
                    }
                }
            }
            if heal_info {
                cache.files = volume.split_brain_files.clone();
            } else {
                volume.split_brain_files = cache.files.clone();
            }
        }
        self.set_bricks(
            obs.volume
                .as_ref()
                .map(|v| v.bricks.clone())
                .unwrap_or_default(),
            obs.volume
                .as_ref()
                .map(|v| v.split_brain_files.clone())
                .unwrap_or_default(),
        );
        let observed_relaxed = obs
            .volume
            .as_ref()
            .map(|v| super::quorum_relaxed(&v.options));
        self.status.send_if_modified(|old| {
            let changed = old.quorum_relaxed != observed_relaxed;
            old.quorum_relaxed = observed_relaxed;
            changed
        });
        let unseen = super::unseen_peers(&nodes);
        let steady = obs.volume.as_ref().is_some_and(super::steady) && unseen.is_empty();
        match plan(&self.spec, &nodes, &obs, &allow, self.relax_wanted()) {
            Plan::Formed(text) if unseen.is_empty() => {
                self.set_status(text, VolumeState::Formed { steady });
                return steady;
            }
            Plan::Formed(text) => {
                let text = format!(
                    "{text}; {} yet (server quorum at risk until it does)",
                    unseen.join(", ")
                );
                self.set_status(text, VolumeState::Formed { steady });
                return steady;
            }
            Plan::Wait(text) => self.set_status(text, VolumeState::Forming),
            Plan::Steps(steps) => {
                for step in steps {
                    tracing::info!(via = %obs.via, ?step, "volume {}: step", self.spec.name);
                    match self
                        .agents
                        .step(&obs.via, via_addr, &self.spec.name, &step)
                        .await
                    {
                        Ok(_) => self.set_status(
                            format!("{}: done {step:?} on {}", self.spec.name, obs.via),
                            VolumeState::Forming,
                        ),
                        Err(error) => {
                            tracing::warn!(via = %obs.via, ?step, "volume {} step failed: {error}", self.spec.name);
                            self.set_status(
                                format!(
                                    "{}: {step:?} on {} failed: {error}",
                                    self.spec.name, obs.via
                                ),
                                VolumeState::StepFailed,
                            );
                            break;
                        }
                    }
                }
            }
        }
        false
    }

    pub fn spawn(
        self,
        coordinator: Arc<Coordinator>,
        stop: watch::Receiver<bool>,
    ) -> watch::Receiver<VolumeStatus> {
        let status = self.status();
        let pass = VolumePass {
            volume: self,
            coordinator,
            ticks: 0,
            steady: None,
        };
        let mut inputs = runner::Inputs::default();
        if let Some(relax) = &pass.volume.relax {
            // node maintenance's wish for the quorum is carried out at once
            inputs = inputs.wakes(
                tokio_stream::wrappers::WatchStream::from_changes(relax.subscribe()).map(|_| ()),
            );
        }
        tokio::spawn(runner::run(
            "volume",
            pass,
            runner::Backoff::NEVER_USED,
            inputs,
            stop,
        ));
        status
    }
}

/// In steady state (formed, every brick online and healed), how long gossip holding still
/// spares asking glusterd again: each observation runs three gluster CLI calls on the
/// observed node, and each call starts a Python `gsyncd --version` (about 65 ms of CPU
/// each; issue 24 measured it as most of that node's agent cost at a 10 s pace, and still
/// a third of it at 60 s). What gossip cannot show (entries pending heal without a brick
/// going down, an option changed by hand) is therefore seen within five minutes.
pub const STEADY_OBSERVE_EVERY: Duration = Duration::from_secs(300);

/// What gossip says about everything a volume observation depends on: the members (for
/// `auth.allow`), whether each is live, and each one's glusterd, brick (online, offline,
/// healing) and the peers its glusterd misses. Any change means a fresh observation.
#[derive(Debug, Clone, PartialEq)]
pub struct GossipFingerprint(Vec<GossipFacts>);

type GossipFacts = (
    String,
    bool,
    triad_proto::gossip::Role,
    IpAddr,
    Health,
    triad_proto::gossip::BrickState,
    Vec<String>,
);

impl GossipFingerprint {
    pub fn of(view: &ClusterView) -> GossipFingerprint {
        GossipFingerprint(
            view.members()
                .map(|m| {
                    (
                        m.node_id.clone(),
                        m.live,
                        m.keys.role,
                        m.address(),
                        m.keys.gluster_daemon,
                        m.keys.gluster_brick,
                        m.keys.gluster_peers_down.clone(),
                    )
                })
                .collect(),
        )
    }
}

/// Pure: may a pass skip asking glusterd? Only after a steady observation, less than
/// [`STEADY_OBSERVE_EVERY`] ago, with gossip unchanged since.
pub fn may_skip(
    steady: Option<&(GossipFingerprint, std::time::Instant)>,
    now: std::time::Instant,
    current: &GossipFingerprint,
) -> bool {
    steady.is_some_and(|(seen, at)| {
        seen == current && now.saturating_duration_since(*at) < STEADY_OBSERVE_EVERY
    })
}

/// The volume loop in the runner's shape: heal info every `heal_every` passes, a slow pace
/// once the volume is formed and healed, and no observation at all while it stays steady
/// and gossip holds still (up to [`STEADY_OBSERVE_EVERY`]).
struct VolumePass {
    volume: VolumeLoop,
    coordinator: Arc<Coordinator>,
    ticks: u32,
    /// The last steady observation: what gossip said then, and when.
    steady: Option<(GossipFingerprint, std::time::Instant)>,
}

#[async_trait::async_trait]
impl runner::Reconciler for VolumePass {
    type Command = ();

    async fn pass(&mut self) -> runner::Next {
        let volume = &self.volume;
        let view = self.coordinator.view();
        let fingerprint = GossipFingerprint::of(&view);
        // a quorum to relax or put back for maintenance is never skipped
        let quorum_as_wanted = volume.status.borrow().quorum_relaxed == Some(volume.relax_wanted());
        if quorum_as_wanted
            && may_skip(
                self.steady.as_ref(),
                std::time::Instant::now(),
                &fingerprint,
            )
        {
            return runner::Next::After(volume.steady_tick);
        }
        let heal = self.ticks.is_multiple_of(volume.heal_every.max(1));
        let steady = volume.pass(&view, heal).await;
        self.ticks = self.ticks.wrapping_add(1);
        self.steady = steady.then(|| (fingerprint, std::time::Instant::now()));
        // the quorum just set is observed again soon (node maintenance waits for it)
        runner::Next::After(if steady && quorum_as_wanted {
            volume.steady_tick
        } else {
            volume.tick
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use triad_proto::gossip::{BrickState, Role};

    fn fingerprint(brick: BrickState, peers_down: &[&str]) -> GossipFingerprint {
        GossipFingerprint(
            ["n1", "n2", "n3"]
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    (
                        id.to_string(),
                        true,
                        Role::Core,
                        IpAddr::from([10, 214, 0, 11 + i as u8]),
                        Health::Ok,
                        if i == 1 { brick } else { BrickState::Online },
                        peers_down.iter().map(|p| p.to_string()).collect(),
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn only_a_steady_observation_with_gossip_unchanged_spares_the_next_one() {
        let t0 = Instant::now();
        let steady = fingerprint(BrickState::Online, &[]);
        // nothing observed yet, or the last observation was not steady
        assert!(!may_skip(None, t0, &steady));
        let last = (steady.clone(), t0);
        assert!(may_skip(Some(&last), t0 + Duration::from_secs(10), &steady));
        assert!(may_skip(
            Some(&last),
            t0 + STEADY_OBSERVE_EVERY - Duration::from_secs(1),
            &steady
        ));
        // the slow cadence still observes what gossip cannot show
        assert!(!may_skip(Some(&last), t0 + STEADY_OBSERVE_EVERY, &steady));
        // any change in gossip: a brick offline, a peer missed, a node gone or added
        let offline = fingerprint(BrickState::Offline, &[]);
        assert!(!may_skip(
            Some(&last),
            t0 + Duration::from_secs(10),
            &offline
        ));
        let missed = fingerprint(BrickState::Online, &["n3"]);
        assert!(!may_skip(
            Some(&last),
            t0 + Duration::from_secs(10),
            &missed
        ));
        let mut grown = steady.clone();
        grown.0.push((
            "n4".into(),
            true,
            Role::Web,
            IpAddr::from([10, 214, 0, 14]),
            Health::Ok,
            BrickState::Offline,
            vec![],
        ));
        assert!(!may_skip(Some(&last), t0 + Duration::from_secs(10), &grown));
    }
}
