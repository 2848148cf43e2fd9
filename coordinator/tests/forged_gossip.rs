//! Forged gossip against the coordinator's control loops (design principle 2, "gossip
//! detects, authenticated gRPC decides", and section 9: chitchat has no authentication, so
//! anyone on the cluster network can announce any node id, generation, gRPC address and
//! keys). The forger here is an ordinary chitchat node ([`Membership`]) on the same
//! in-memory transport as the agents and the coordinator; nothing is injected into the
//! coordinator's view by hand.
//!
//! - Balancer: the real observer and reconcile loop with the real [`GrpcConfirmer`] (recorded)
//!   against real agents (agent runtime + AgentService gRPC on 127.0.3.x, from
//!   `balancer_support`); the balancer itself is an in-memory one that records every change
//!   it is asked to make, so "never added / never removed" is checked on the full history,
//!   not on samples.
//! - Recovery: the real recovery loop ([`Recovery::spawn`]) over the real observer, with an
//!   [`Agents`] implementation that records every call and answers as the test scripts it
//!   (the gRPC side), while forged gossip claims a full outage. Paused time.
//!
//! Observation windows are bounded and end on a polled condition that shows the loop had its
//! chance to act (so many gRPC confirmations of the forged node, so many rounds, so many
//! position calls), never on a bare sleep.

mod balancer_support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use balancer_support::{coordinator_config, free_port, node_ip, seeds, test_spec, FakeNode, POLL};
use chitchat::transport::ChannelTransport;
use triad_agent::testsuite::wait_for;
use triad_cluster::membership::{GossipSettings, Membership, MembershipConfig};
use triad_coordinator::agent_client::AgentError;
use triad_coordinator::balancer::plan::Verdict;
use triad_coordinator::balancer::reconcile::{
    BalancerLoop, Confirmer, GrpcConfirmer, LoopSettings,
};
use triad_coordinator::balancer::{Balancer, BalancerError, Member, MemberChange, MemberState};
use triad_coordinator::observer::Coordinator;
use triad_coordinator::recovery::election::Report;
use triad_coordinator::recovery::store::Store;
use triad_coordinator::recovery::{Agents, PositionAnswer, Recovery, RecoverySettings};
use triad_coordinator::view::ClusterView;
use triad_galera::position::Position;
use triad_proto::errors::ErrorKind;
use triad_proto::gossip::{GaleraKeys, GaleraState, Health, NodeKeys, Role};

/// Real-time bound for each awaited condition of the balancer tests.
const BOUND: Duration = Duration::from_secs(15);
/// Virtual-time bound for each awaited condition of the recovery tests (paused time).
const VIRTUAL_BOUND: Duration = Duration::from_secs(60);
/// A generation above any real agent's (they run with generation 1 here): the coordinator's
/// view keeps the highest generation per node id, so this impersonates the node.
const FORGED_GENERATION: u64 = 1_000;
/// The service port the in-memory balancer reports for members.
const SERVICE_PORT: u16 = 80;
const UUID: &str = "9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31";

// ---------------------------------------------------------------------------------------
// The forger
// ---------------------------------------------------------------------------------------

/// A chitchat node announcing whatever the test wants, gossiping from 127.0.3.`gossip_host`.
async fn forge(
    transport: &ChannelTransport,
    node_id: &str,
    generation: u64,
    gossip_host: u8,
    keys: &NodeKeys,
) -> Membership {
    let gossip_addr = SocketAddr::new(node_ip(gossip_host), triad_proto::ports::GOSSIP);
    Membership::join(
        MembershipConfig {
            node_id: node_id.into(),
            generation,
            cluster_id: "test".into(),
            seeds: seeds().iter().map(|s| s.to_string()).collect(),
            settings: GossipSettings {
                sampling_window: 100,
                ..GossipSettings::production(gossip_addr)
            },
        },
        keys,
        transport,
    )
    .await
    .expect("the forger joins gossip")
}

/// Gossip claiming a node that serves: Apache ok, ready, not draining.
fn serving_claim(grpc: SocketAddr) -> NodeKeys {
    let mut keys = NodeKeys::initial(Role::Web, grpc, "forged");
    keys.apache = Health::Ok;
    keys.ready = true;
    keys.draining = false;
    keys
}

/// Gossip claiming a node that does not serve (Apache down).
fn not_serving_claim(grpc: SocketAddr) -> NodeKeys {
    let mut keys = NodeKeys::initial(Role::Web, grpc, "forged");
    keys.apache = Health::Down;
    keys.ready = false;
    keys.ready_reason = Some("apache down".into());
    keys
}

/// A gRPC address on which nothing listens (bound, then released).
fn closed_grpc_addr(host: u8) -> SocketAddr {
    SocketAddr::new(node_ip(host), free_port(node_ip(host)))
}

async fn wait_for_view(
    coordinator: &Coordinator,
    what: &str,
    bound: Duration,
    check: impl Fn(&ClusterView) -> Result<(), String>,
) {
    let check = &check;
    wait_for(
        what,
        bound,
        POLL,
        || async move { check(&coordinator.view()) },
    )
    .await
    .unwrap();
}

// ---------------------------------------------------------------------------------------
// Balancer side: an in-memory balancer that records, and the real confirmer, recorded
// ---------------------------------------------------------------------------------------

/// Members in memory; every change the loop applies is kept in `history`.
#[derive(Default)]
struct MemoryBalancer {
    members: Mutex<Vec<Member>>,
    history: Mutex<Vec<MemberChange>>,
}

impl MemoryBalancer {
    fn active(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .members
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.state == MemberState::Active)
            .map(|m| m.name.clone())
            .collect();
        names.sort();
        names
    }

    fn changes_for(&self, node: &str) -> Vec<MemberChange> {
        self.history
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.name() == node)
            .cloned()
            .collect()
    }

    /// Drain, Disable or Remove of `node`: anything that takes it out of rotation.
    fn departures_of(&self, node: &str) -> Vec<MemberChange> {
        self.changes_for(node)
            .into_iter()
            .filter(|c| {
                matches!(
                    c,
                    MemberChange::Drain { .. }
                        | MemberChange::Disable { .. }
                        | MemberChange::Remove { .. }
                )
            })
            .collect()
    }
}

#[async_trait]
impl Balancer for MemoryBalancer {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn member_port(&self) -> u16 {
        SERVICE_PORT
    }

    async fn observe(&self) -> Result<Vec<Member>, BalancerError> {
        Ok(self.members.lock().unwrap().clone())
    }

    async fn apply(&self, changes: &[MemberChange]) -> Result<(), BalancerError> {
        let mut members = self.members.lock().unwrap();
        for change in changes {
            self.history.lock().unwrap().push(change.clone());
            let set_state = |members: &mut Vec<Member>, name: &str, state: MemberState| {
                if let Some(member) = members.iter_mut().find(|m| m.name == name) {
                    member.state = state;
                }
            };
            match change {
                MemberChange::Add {
                    name,
                    address,
                    port,
                } => members.push(Member {
                    name: name.clone(),
                    address: *address,
                    port: *port,
                    state: MemberState::Active,
                    connections: Some(0),
                    health: None,
                }),
                MemberChange::SetActive { name } => {
                    set_state(&mut members, name, MemberState::Active)
                }
                MemberChange::Drain { name } => {
                    set_state(&mut members, name, MemberState::Draining)
                }
                MemberChange::Disable { name, .. } => {
                    set_state(&mut members, name, MemberState::Maint)
                }
                MemberChange::Remove { name } => members.retain(|m| &m.name != name),
            }
        }
        Ok(())
    }
}

/// The production confirmer (AgentService.Status over gRPC), with every answer recorded.
#[derive(Default)]
struct RecordingConfirmer {
    inner: GrpcConfirmer,
    asked: Mutex<Vec<(String, SocketAddr, Verdict)>>,
}

impl RecordingConfirmer {
    fn len(&self) -> usize {
        self.asked.lock().unwrap().len()
    }

    /// Verdicts for `node` recorded from position `since` on, with the address asked.
    fn answers_since(&self, since: usize, node: &str) -> Vec<(SocketAddr, Verdict)> {
        self.asked.lock().unwrap()[since..]
            .iter()
            .filter(|(n, _, _)| n == node)
            .map(|(_, grpc, verdict)| (*grpc, *verdict))
            .collect()
    }
}

#[async_trait]
impl Confirmer for RecordingConfirmer {
    async fn confirm(&self, node_id: &str, grpc: SocketAddr) -> Verdict {
        let verdict = self.inner.confirm(node_id, grpc).await;
        self.asked
            .lock()
            .unwrap()
            .push((node_id.to_string(), grpc, verdict));
        verdict
    }
}

/// The coordinator's observer and the real balancer loop over it.
struct BalancerUnderTest {
    coordinator: Arc<Coordinator>,
    balancer: Arc<MemoryBalancer>,
    confirmer: Arc<RecordingConfirmer>,
    balancer_loop: Option<BalancerLoop>,
}

impl BalancerUnderTest {
    async fn start(transport: &ChannelTransport) -> BalancerUnderTest {
        let coordinator = Arc::new(
            Coordinator::start(
                &coordinator_config(),
                triad_cluster::membership::generation_now(),
                transport,
            )
            .await
            .expect("coordinator starts"),
        );
        let balancer = Arc::new(MemoryBalancer::default());
        let confirmer = Arc::new(RecordingConfirmer::default());
        let view_of = coordinator.clone();
        let balancer_loop = BalancerLoop::start(
            balancer.clone(),
            Arc::new(move || view_of.view()),
            Some(coordinator.subscribe()),
            confirmer.clone(),
            LoopSettings {
                spec: test_spec(),
                interval: Duration::from_millis(200),
            },
        );
        BalancerUnderTest {
            coordinator,
            balancer,
            confirmer,
            balancer_loop: Some(balancer_loop),
        }
    }

    fn rounds(&self) -> u64 {
        self.balancer_loop.as_ref().unwrap().status().rounds_total
    }

    async fn wait_active(&self, expected: &[&str]) {
        let want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        wait_for(
            &format!("active members to be {expected:?}"),
            BOUND,
            POLL,
            || {
                let got = self.balancer.active();
                let want = want.clone();
                async move {
                    if got == want {
                        Ok(())
                    } else {
                        Err(format!("active {got:?}"))
                    }
                }
            },
        )
        .await
        .unwrap();
    }

    /// Waits until the loop has asked `node`'s agent `count` more times since `since`.
    async fn wait_confirmations(&self, node: &str, since: usize, count: usize) {
        wait_for(
            &format!("the loop to confirm {node} over gRPC {count} times"),
            BOUND,
            POLL,
            || {
                let answers = self.confirmer.answers_since(since, node);
                async move {
                    if answers.len() >= count {
                        Ok(())
                    } else {
                        Err(format!("answers so far {answers:?}"))
                    }
                }
            },
        )
        .await
        .unwrap();
    }

    /// Waits until the loop has run `count` more rounds (each observes, plans and applies).
    async fn wait_rounds(&self, count: u64) {
        let from = self.rounds();
        wait_for(
            &format!("the balancer loop to run {count} more rounds"),
            BOUND,
            POLL,
            || {
                let rounds = self.rounds();
                async move {
                    if rounds >= from + count {
                        Ok(())
                    } else {
                        Err(format!("{} rounds", rounds - from))
                    }
                }
            },
        )
        .await
        .unwrap();
    }

    async fn stop(mut self) {
        if let Some(balancer_loop) = self.balancer_loop.take() {
            balancer_loop.stop().await;
        }
        if let Ok(coordinator) = Arc::try_unwrap(self.coordinator) {
            coordinator.stop().await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Balancer tests
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_ready_gossip_does_not_add_a_balancer_member() {
    let transport = ChannelTransport::with_mtu(65_507);
    // n1: a genuine, ready node (the positive control). n2: a genuine agent that is not
    // ready (Apache down) and says so over gRPC.
    let genuine = FakeNode::start(&transport, 1).await;
    genuine.set_apache(true).await;
    let not_ready = FakeNode::start(&transport, 2).await;
    not_ready.set_apache(false).await;

    // Three forgeries, all claiming "ready":
    // - n2 impersonated (higher generation) with n2's real gRPC address;
    // - n7, a node that does not exist, with a gRPC address where nothing listens;
    // - n8, a node that does not exist, pointing at n1's gRPC server (answers as n1).
    let forged_n2 = forge(
        &transport,
        "n2",
        FORGED_GENERATION,
        52,
        &serving_claim(not_ready.grpc),
    )
    .await;
    let forged_n7 = forge(&transport, "n7", 1, 57, &serving_claim(closed_grpc_addr(7))).await;
    let forged_n8 = forge(&transport, "n8", 1, 58, &serving_claim(genuine.grpc)).await;
    let forged = ["n2", "n7", "n8"];

    let control = BalancerUnderTest::start(&transport).await;
    wait_for_view(
        &control.coordinator,
        "the coordinator's view to believe the forgeries: n2 (generation 1000), n7 and n8 live and ready",
        BOUND,
        |view| {
            for id in forged {
                let member = view.get(id).ok_or(format!("{id} not in the view"))?;
                if !(member.live && member.keys.ready) {
                    return Err(format!("{id}: live {} ready {}", member.live, member.keys.ready));
                }
            }
            let n2 = view.get("n2").map(|m| m.generation);
            if n2 != Some(FORGED_GENERATION) {
                return Err(format!("n2 generation {n2:?}"));
            }
            Ok(())
        },
    )
    .await;

    // Positive control: a genuinely ready node is added (so the loop does add members).
    wait_for(
        "n1 (ready over gRPC) to become an active member",
        BOUND,
        POLL,
        || {
            let active = control.balancer.active();
            async move {
                if active.contains(&"n1".to_string()) {
                    Ok(())
                } else {
                    Err(format!("active {active:?}"))
                }
            }
        },
    )
    .await
    .unwrap();

    // Each forged node passed the rise hold and reached the confirmation gate three times:
    // the loop wanted to add it and asked its (gossiped) gRPC address.
    for id in forged {
        control.wait_confirmations(id, 0, 3).await;
    }

    for id in forged {
        let changes = control.balancer.changes_for(id);
        assert!(
            changes.is_empty(),
            "awaited: no balancer change for forged {id} after the loop asked it over gRPC 3 times; got {changes:?}"
        );
    }
    let verdicts = |id: &str| -> BTreeSet<String> {
        control
            .confirmer
            .answers_since(0, id)
            .into_iter()
            .map(|(_, v)| format!("{v:?}"))
            .collect()
    };
    assert_eq!(
        verdicts("n2"),
        BTreeSet::from([format!("{:?}", Verdict::NotServing { draining: false })]),
        "awaited: n2's real agent to answer not-ready to every confirmation"
    );
    for id in ["n7", "n8"] {
        assert_eq!(
            verdicts(id),
            BTreeSet::from([format!("{:?}", Verdict::Unreachable)]),
            "awaited: {id} (no agent, or another node's agent answering) to confirm as unreachable"
        );
    }
    assert_eq!(
        control.balancer.active(),
        ["n1"],
        "awaited: only the genuinely ready n1 among the active members"
    );

    control.stop().await;
    for forger in [forged_n2, forged_n7, forged_n8] {
        forger.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_not_ready_or_dead_gossip_does_not_remove_a_serving_member() {
    let transport = ChannelTransport::with_mtu(65_507);
    let n1 = FakeNode::start(&transport, 1).await;
    let n2 = FakeNode::start(&transport, 2).await;
    n1.set_apache(true).await;
    n2.set_apache(true).await;
    let control = BalancerUnderTest::start(&transport).await;
    control.wait_active(&["n1", "n2"]).await;

    // The forger impersonates n2 (higher generation, n2's real gRPC address) and claims
    // it is not ready. n2 is not the last member, so the last-member rule does not shield
    // it: only the gRPC confirmation does.
    let mark = control.confirmer.len();
    let forger = forge(
        &transport,
        "n2",
        FORGED_GENERATION,
        52,
        &not_serving_claim(n2.grpc),
    )
    .await;
    wait_for_view(
        &control.coordinator,
        "the view to show the forged n2 (generation 1000) live and not ready",
        BOUND,
        |view| match view.get("n2") {
            Some(m) if m.generation == FORGED_GENERATION && m.live && !m.keys.ready => Ok(()),
            other => Err(format!("n2: {other:?}")),
        },
    )
    .await;
    control.wait_confirmations("n2", mark, 3).await;
    let answers = control.confirmer.answers_since(mark, "n2");
    assert!(
        answers
            .iter()
            .all(|(grpc, v)| *grpc == n2.grpc && *v == Verdict::Serving),
        "awaited: n2's real agent to answer serving to every confirmation after the forged not-ready claim; got {answers:?}"
    );
    let departures = control.balancer.departures_of("n2");
    assert!(
        departures.is_empty(),
        "awaited: n2 kept in rotation while gossip (forged) calls it not ready and its agent answers serving; got {departures:?}"
    );

    // The forged generation stops: gossip's failure detector now calls n2 dead (the view
    // keeps the highest generation, the forged one, dead).
    forger.shutdown().await;
    wait_for_view(
        &control.coordinator,
        "the view to show the forged n2 (generation 1000) dead",
        BOUND,
        |view| match view.get("n2") {
            Some(m) if m.generation == FORGED_GENERATION && !m.live => Ok(()),
            other => Err(format!("n2: {other:?}")),
        },
    )
    .await;
    let mark = control.confirmer.len();
    control.wait_confirmations("n2", mark, 3).await;
    let departures = control.balancer.departures_of("n2");
    assert!(
        departures.is_empty(),
        "awaited: n2 kept in rotation while gossip calls it dead and its agent answers serving; got {departures:?}"
    );
    assert_eq!(
        control.balancer.active(),
        ["n1", "n2"],
        "awaited: both serving nodes still active after the forged not-ready and dead claims"
    );
    control.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_gossip_never_takes_out_the_last_member() {
    let transport = ChannelTransport::with_mtu(65_507);
    let n1 = FakeNode::start(&transport, 1).await;
    n1.set_apache(true).await;
    let control = BalancerUnderTest::start(&transport).await;
    control.wait_active(&["n1"]).await;

    // The forger impersonates n1, claims it is down and has moved to an address where no
    // agent listens. A moved address takes the member out without asking gRPC (see
    // `forged_moved_address_gossip_does_not_remove_a_serving_member`); the last member is
    // kept all the same.
    let moved = closed_grpc_addr(61);
    let forger = forge(
        &transport,
        "n1",
        FORGED_GENERATION,
        51,
        &not_serving_claim(moved),
    )
    .await;
    wait_for_view(
        &control.coordinator,
        "the view to show the forged n1 (generation 1000) down at the moved address",
        BOUND,
        |view| match view.get("n1") {
            Some(m)
                if m.generation == FORGED_GENERATION
                    && m.keys.grpc == Some(moved)
                    && !m.keys.ready =>
            {
                Ok(())
            }
            other => Err(format!("n1: {other:?}")),
        },
    )
    .await;
    // 10 rounds at a 200 ms interval: 2 s, past the 500 ms confirmation ttl and the 1 s
    // hold and delete delays of the test spec, so any removal would have been planned.
    control.wait_rounds(10).await;
    let departures = control.balancer.departures_of("n1");
    assert!(
        departures.is_empty(),
        "awaited: the last member n1 kept after 10 rounds of forged down/moved gossip; got {departures:?}"
    );
    assert_eq!(
        control.balancer.active(),
        ["n1"],
        "awaited: n1 still the active member"
    );
    control.stop().await;
    forger.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_moved_address_gossip_does_not_remove_a_serving_member() {
    let transport = ChannelTransport::with_mtu(65_507);
    let n1 = FakeNode::start(&transport, 1).await;
    let n2 = FakeNode::start(&transport, 2).await;
    n1.set_apache(true).await;
    n2.set_apache(true).await;
    let control = BalancerUnderTest::start(&transport).await;
    control.wait_active(&["n1", "n2"]).await;

    // The forger impersonates n2 and announces it at another address (ready, even): the
    // real n2 still serves at its own address and would say so if asked.
    let mark = control.confirmer.len();
    let moved = closed_grpc_addr(62);
    let forger = forge(
        &transport,
        "n2",
        FORGED_GENERATION,
        52,
        &serving_claim(moved),
    )
    .await;
    wait_for_view(
        &control.coordinator,
        "the view to show the forged n2 (generation 1000) at the moved address",
        BOUND,
        |view| match view.get("n2") {
            Some(m) if m.generation == FORGED_GENERATION && m.keys.grpc == Some(moved) => Ok(()),
            other => Err(format!("n2: {other:?}")),
        },
    )
    .await;
    control.wait_rounds(10).await;
    let departures = control.balancer.departures_of("n2");
    let asked = control.confirmer.answers_since(mark, "n2");
    assert!(
        departures.is_empty(),
        "awaited: n2 (its agent serving at {}) kept in rotation after 10 rounds of forged gossip moving it to {moved}; \
         got {departures:?}; gRPC confirmations of n2 since the forgery: {asked:?}",
        n2.grpc
    );
    control.stop().await;
    forger.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Recovery side: scripted agents over the `Agents` trait, recorded
// ---------------------------------------------------------------------------------------

/// What a node's agent answers over gRPC.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// mysqld runs in a Primary component (position source "live").
    Primary,
    /// Connection refused.
    Unreachable,
    /// mysqld is stopped at this committed position (source "grastate").
    Stopped { seqno: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Call {
    Position(String),
    Bootstrap {
        node: String,
        epoch: u64,
        seqno: i64,
    },
    Join(String),
    Reform(String),
}

#[derive(Default)]
struct ScriptedAgents {
    answers: Mutex<BTreeMap<String, Answer>>,
    calls: Mutex<Vec<Call>>,
}

impl ScriptedAgents {
    fn script(&self, answers: &[(&str, Answer)]) {
        let mut map = self.answers.lock().unwrap();
        for (node, answer) in answers {
            map.insert(node.to_string(), *answer);
        }
    }

    fn calls_since(&self, since: usize) -> Vec<Call> {
        self.calls.lock().unwrap()[since..].to_vec()
    }

    fn len(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    fn bootstraps(&self) -> Vec<Call> {
        self.calls_since(0)
            .into_iter()
            .filter(|c| matches!(c, Call::Bootstrap { .. }))
            .collect()
    }
}

#[async_trait]
impl Agents for ScriptedAgents {
    async fn position(
        &self,
        node: &str,
        grpc: SocketAddr,
        _stop_if_not_primary: bool,
    ) -> Result<PositionAnswer, AgentError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Position(node.to_string()));
        let answer = self.answers.lock().unwrap().get(node).copied();
        let answer_at = |seqno: i64, source: &str| PositionAnswer {
            report: Report {
                position: Position {
                    uuid: UUID.into(),
                    seqno,
                },
                safe_to_bootstrap: false,
            },
            source: source.into(),
            saved_view: None,
            generation: 1,
        };
        match answer {
            Some(Answer::Primary) => Ok(answer_at(500, "live")),
            Some(Answer::Stopped { seqno }) => Ok(answer_at(seqno, "grastate")),
            Some(Answer::Unreachable) | None => Err(AgentError::new(
                node,
                ErrorKind::Unavailable,
                format!("cannot reach the agent of {node} at {grpc}: connection refused"),
            )),
        }
    }

    async fn bootstrap(
        &self,
        node: &str,
        _grpc: SocketAddr,
        epoch: u64,
        position: &Position,
    ) -> Result<String, AgentError> {
        self.calls.lock().unwrap().push(Call::Bootstrap {
            node: node.to_string(),
            epoch,
            seqno: position.seqno,
        });
        Ok("bootstrapped (scripted)".into())
    }

    async fn join(&self, node: &str, _grpc: SocketAddr, _epoch: u64) -> Result<String, AgentError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Join(node.to_string()));
        Ok("joining (scripted)".into())
    }

    async fn reform(
        &self,
        node: &str,
        _grpc: SocketAddr,
        view: &str,
    ) -> Result<String, AgentError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Reform(node.to_string()));
        // the real agent checks its own gvwstate.dat: a forged view is not on disk
        Err(AgentError::new(
            node,
            ErrorKind::Refused,
            format!("this node saved no Primary view (no readable gvwstate.dat), not {view}"),
        ))
    }
}

/// Gossip of a Galera core node: `state`, the given seqno and safe_to_bootstrap, and
/// "Primary" with `size` when synced.
fn galera_claim(index: u8, state: GaleraState, seqno: i64, safe: bool, size: u32) -> NodeKeys {
    let grpc = SocketAddr::new(node_ip(index), triad_proto::ports::AGENT_GRPC);
    let mut keys = NodeKeys::initial(Role::Core, grpc, "forged");
    let synced = state == GaleraState::Synced;
    keys.galera = GaleraKeys {
        state,
        cluster_status: synced.then(|| "Primary".to_string()),
        size: synced.then_some(size),
        uuid: Some(UUID.into()),
        seqno: Some(seqno),
        safe_to_bootstrap: Some(safe),
        ..GaleraKeys::default()
    };
    keys
}

struct RecoveryUnderTest {
    coordinator: Arc<Coordinator>,
    agents: Arc<ScriptedAgents>,
    status: triad_coordinator::recovery::RecoveryHandle,
    stop: tokio::sync::watch::Sender<bool>,
    state_dir: tempfile::TempDir,
}

impl RecoveryUnderTest {
    /// The observer and the real recovery loop (grace 2 s, tick 250 ms), with the Galera
    /// members configured (`[galera] nodes = n1, n2, n3`, as the shipped config asks):
    /// gossip can add members to an election, never remove a configured one.
    async fn start(transport: &ChannelTransport) -> RecoveryUnderTest {
        let coordinator = Arc::new(
            Coordinator::start(&coordinator_config(), 1, transport)
                .await
                .expect("coordinator starts"),
        );
        let agents = Arc::new(ScriptedAgents::default());
        let state_dir = tempfile::tempdir().expect("tempdir");
        let recovery = Recovery::new(
            RecoverySettings {
                state_dir: state_dir.path().to_path_buf(),
                grace: Duration::from_secs(2),
                tick: Duration::from_millis(250),
                expected_nodes: vec!["n1".into(), "n2".into(), "n3".into()],
            },
            agents.clone(),
        )
        .expect("empty state dir loads");
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let status = recovery.spawn(coordinator.clone(), stop_rx);
        RecoveryUnderTest {
            coordinator,
            agents,
            status,
            stop,
            state_dir,
        }
    }

    /// Waits until every one of `nodes` was asked for its position `count` times since
    /// call number `since`, or any bootstrap was called (which the caller then judges).
    async fn wait_positions(&self, nodes: &[&str], since: usize, count: usize) {
        wait_for(
            &format!("the recovery loop to ask {nodes:?} for their positions {count} times each (or to bootstrap)"),
            VIRTUAL_BOUND,
            POLL,
            || {
                let calls = self.agents.calls_since(since);
                let status = self.status.status();
                async move {
                    if calls.iter().any(|c| matches!(c, Call::Bootstrap { .. })) {
                        return Ok(());
                    }
                    let asked = |node: &str| {
                        calls
                            .iter()
                            .filter(|c| **c == Call::Position(node.to_string()))
                            .count()
                    };
                    if nodes.iter().all(|n| asked(n) >= count) {
                        Ok(())
                    } else {
                        Err(format!("calls {calls:?}; galera status: {status}"))
                    }
                }
            },
        )
        .await
        .unwrap();
    }

    fn last_primary_view(&self) -> Vec<String> {
        Store::new(self.state_dir.path())
            .load()
            .expect("galera.json readable")
            .last_primary_view
    }
}

// ---------------------------------------------------------------------------------------
// Recovery tests
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn forged_galera_gossip_cannot_trigger_a_bootstrap() {
    let transport = ChannelTransport::with_mtu(65_507);
    // Forged gossip: every Galera node stopped, n3 the most advanced by far and
    // safe_to_bootstrap. None of it is true.
    let forgers = [
        forge(
            &transport,
            "n1",
            1,
            1,
            &galera_claim(1, GaleraState::Stopped, 100, false, 0),
        )
        .await,
        forge(
            &transport,
            "n2",
            1,
            2,
            &galera_claim(2, GaleraState::Stopped, 100, false, 0),
        )
        .await,
        forge(
            &transport,
            "n3",
            1,
            3,
            &galera_claim(3, GaleraState::Stopped, 9_000, true, 0),
        )
        .await,
    ];
    let control = RecoveryUnderTest::start(&transport).await;
    let nodes = ["n1", "n2", "n3"];
    wait_for_view(
        &control.coordinator,
        "the view to show n1, n2, n3 live with Galera stopped (a forged full outage)",
        VIRTUAL_BOUND,
        |view| {
            for id in nodes {
                match view.get(id) {
                    Some(m) if m.live && m.keys.galera.state == GaleraState::Stopped => {}
                    other => return Err(format!("{id}: {other:?}")),
                }
            }
            Ok(())
        },
    )
    .await;

    // 1. Over gRPC every agent says its node runs in a Primary component.
    control.agents.script(&[
        ("n1", Answer::Primary),
        ("n2", Answer::Primary),
        ("n3", Answer::Primary),
    ]);
    control.wait_positions(&nodes, 0, 2).await;
    let bootstraps = control.agents.bootstraps();
    assert!(
        bootstraps.is_empty(),
        "awaited: no bootstrap after two elections in which every agent answered Primary over gRPC; got {bootstraps:?}"
    );
    let status = control.status.status();
    assert!(
        status.contains("report a Primary component over gRPC"),
        "awaited: the loop to say the agents report a Primary component; status: {status}"
    );

    // 2. Over gRPC no agent answers.
    let mark = control.agents.len();
    control.agents.script(&[
        ("n1", Answer::Unreachable),
        ("n2", Answer::Unreachable),
        ("n3", Answer::Unreachable),
    ]);
    control.wait_positions(&nodes, mark, 2).await;
    let bootstraps = control.agents.bootstraps();
    assert!(
        bootstraps.is_empty(),
        "awaited: no bootstrap after two elections in which no agent answered over gRPC; got {bootstraps:?}"
    );
    let status = control.status.status();
    assert!(
        status.contains("waiting for the position of n1, n2, n3"),
        "awaited: the loop to wait for the positions of all three; status: {status}"
    );

    // 3. Positive control: the agents report a real full outage over gRPC. The loop
    // bootstraps exactly one node, the most advanced by gRPC (n2 at 20), not the one the
    // forged gossip promotes (n3 at 9000, safe_to_bootstrap).
    let mark = control.agents.len();
    control.agents.script(&[
        ("n1", Answer::Stopped { seqno: 10 }),
        ("n2", Answer::Stopped { seqno: 20 }),
        ("n3", Answer::Stopped { seqno: 15 }),
    ]);
    wait_for(
        "the recovery loop to call Bootstrap after a full outage reported over gRPC",
        VIRTUAL_BOUND,
        POLL,
        || {
            let bootstraps = control.agents.bootstraps();
            let status = control.status.status();
            async move {
                if bootstraps.is_empty() {
                    Err(format!("galera status: {status}"))
                } else {
                    Ok(())
                }
            }
        },
    )
    .await
    .unwrap();
    let _ = control.stop.send(true);
    let calls = control.agents.calls_since(mark);
    let first_bootstrap = calls
        .iter()
        .position(|c| matches!(c, Call::Bootstrap { .. }))
        .unwrap();
    let asked_before: BTreeSet<&Call> = calls[..first_bootstrap].iter().collect();
    for id in nodes {
        assert!(
            asked_before.contains(&Call::Position(id.to_string())),
            "awaited: {id}'s position asked over gRPC before the bootstrap; calls {calls:?}"
        );
    }
    let distinct: BTreeSet<Call> = control.agents.bootstraps().into_iter().collect();
    assert_eq!(
        distinct,
        BTreeSet::from([Call::Bootstrap {
            node: "n2".into(),
            epoch: 1,
            seqno: 20
        }]),
        "awaited: exactly one node bootstrapped (n2, most advanced over gRPC, epoch 1); calls {calls:?}"
    );
    for forger in forgers {
        forger.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn forged_primary_gossip_does_not_shrink_the_election_to_a_lagging_node() {
    let transport = ChannelTransport::with_mtu(65_507);
    // Genuine-looking gossip (the agents' own, generation 1): n1, n2, n3 synced in a
    // Primary component of 3.
    let genuine = [
        forge(
            &transport,
            "n1",
            1,
            1,
            &galera_claim(1, GaleraState::Synced, 5, false, 3),
        )
        .await,
        forge(
            &transport,
            "n2",
            1,
            2,
            &galera_claim(2, GaleraState::Synced, 5, false, 3),
        )
        .await,
        forge(
            &transport,
            "n3",
            1,
            3,
            &galera_claim(3, GaleraState::Synced, 5, false, 3),
        )
        .await,
    ];
    let control = RecoveryUnderTest::start(&transport).await;
    control.agents.script(&[
        ("n1", Answer::Primary),
        ("n2", Answer::Primary),
        ("n3", Answer::Primary),
    ]);
    wait_for(
        "the recovery loop to record the Primary view n1, n2, n3",
        VIRTUAL_BOUND,
        POLL,
        || {
            let view = control.last_primary_view();
            async move {
                if view == ["n1", "n2", "n3"] {
                    Ok(())
                } else {
                    Err(format!("last_primary_view {view:?}"))
                }
            }
        },
    )
    .await
    .unwrap();

    // The forger impersonates all three (higher generation): n1 alone Primary (size 1),
    // n2 and n3 stopped. Gossip agrees with itself, nobody was asked over gRPC.
    let forged_n1 = forge(
        &transport,
        "n1",
        FORGED_GENERATION,
        41,
        &galera_claim(1, GaleraState::Synced, 5, false, 1),
    )
    .await;
    let forged_rest = [
        forge(
            &transport,
            "n2",
            FORGED_GENERATION,
            42,
            &galera_claim(2, GaleraState::Stopped, 5, false, 0),
        )
        .await,
        forge(
            &transport,
            "n3",
            FORGED_GENERATION,
            43,
            &galera_claim(3, GaleraState::Stopped, 5, false, 0),
        )
        .await,
    ];
    wait_for(
        "the recovery loop to see the forged view (status `Primary: n1 synced; ...`)",
        VIRTUAL_BOUND,
        POLL,
        || {
            let status = control.status.status();
            async move {
                if status.starts_with("Primary: n1 synced;") {
                    Ok(())
                } else {
                    Err(format!("galera status: {status}"))
                }
            }
        },
    )
    .await
    .unwrap();
    let view_after_forgery = control.last_primary_view();

    // A real full outage follows: n2 committed more than n1 before it stopped (gRPC would
    // say so), n3's agent does not answer. The safe outcome is to wait for n3.
    control.agents.script(&[
        ("n1", Answer::Stopped { seqno: 10 }),
        ("n2", Answer::Stopped { seqno: 20 }),
        ("n3", Answer::Unreachable),
    ]);
    forged_n1
        .publish(&galera_claim(1, GaleraState::Stopped, 10, false, 0))
        .await;
    let mark = control.agents.len();
    control.wait_positions(&["n1"], mark, 2).await;
    let _ = control.stop.send(true);
    let bootstraps = control.agents.bootstraps();
    assert!(
        bootstraps.is_empty(),
        "awaited: no bootstrap while n2 (seqno 20 over gRPC) is not the source and n3 has not reported; \
         got {bootstraps:?}; last_primary_view after the forgery: {view_after_forgery:?}; calls {:?}",
        control.agents.calls_since(mark)
    );
    for forger in genuine.into_iter().chain(forged_rest).chain([forged_n1]) {
        forger.shutdown().await;
    }
}
