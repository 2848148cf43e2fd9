//! The lease protocol simulated end to end: a coordinator and 2-4 agents exchanging offers,
//! acks and confirms over a network that delays (beyond a lease length), drops and holds
//! messages across partitions; agents die and come back, the coordinator restarts (its
//! memory lost, the persisted lease kept), its wall clock steps, and every monotonic clock
//! runs up to 500 ppm fast or slow. Real time is the simulation's; each process sees only
//! its own clock. Checked at every step: at most one agent may start a run, no two runs
//! (each lasting its full timeout, also past its agent's death) overlap, and epochs only grow.

use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use triad_jobs::lease::{
    on_release, plan, Candidate, Confirm, Decision, Epoch, HolderLease, JobLease, Lease,
    LeaseParams, Mono, NodeId, Offer,
};

const LENGTH_MS: u64 = 3_000;
const MARGIN_MS: u64 = 50;
const RENEW_MS: u64 = 1_000;
const TIMEOUT_MS: u64 = 1_500;
const CASES: u32 = 256;

fn params() -> LeaseParams {
    LeaseParams::new(
        Duration::from_millis(LENGTH_MS),
        Duration::from_millis(MARGIN_MS),
        Duration::from_millis(RENEW_MS),
    )
    .unwrap()
}

/// A monotonic clock: `origin + real * (1 + ppm/10^6)`, in microseconds.
#[derive(Debug, Clone, Copy)]
struct Clock {
    origin_us: u64,
    started_real_us: u64,
    ppm: i64,
}

impl Clock {
    fn read(&self, real_us: u64) -> Mono {
        let elapsed = real_us - self.started_real_us;
        let skew = i64::try_from(elapsed).unwrap() * self.ppm / 1_000_000;
        let local = i64::try_from(self.origin_us + elapsed).unwrap() + skew;
        Mono(Duration::from_micros(u64::try_from(local).unwrap()))
    }

    /// The real time at which `local` more time has passed on this clock, rounded up.
    fn real_after(&self, real_us: u64, local: Duration) -> u64 {
        let local_us = u64::try_from(local.as_micros()).unwrap();
        let rate = u64::try_from(1_000_000 + self.ppm).unwrap();
        real_us + (local_us * 1_000_000).div_ceil(rate) + 1
    }
}

#[derive(Debug, Clone)]
enum Body {
    Offer(Offer),
    Ack(triad_jobs::lease::Ack),
    Confirm(Confirm),
    Release(Epoch),
}

#[derive(Debug, Clone)]
struct Message {
    deliver_at_us: u64,
    /// The agent it comes from or goes to.
    node: usize,
    to_coordinator: bool,
    body: Body,
}

#[derive(Debug, Clone)]
enum Event {
    Advance(u16),
    Kill(usize),
    Revive(usize),
    Partition(usize),
    Heal(usize),
    ToggleReady(usize),
    CoordinatorRestart(u16),
    WallStep(i32),
    Release(usize),
    TryRun(usize),
}

fn event(nodes: usize) -> impl Strategy<Value = Event> {
    prop_oneof![
        10 => (1u16..400).prop_map(Event::Advance),
        1 => (0..nodes).prop_map(Event::Kill),
        2 => (0..nodes).prop_map(Event::Revive),
        1 => (0..nodes).prop_map(Event::Partition),
        2 => (0..nodes).prop_map(Event::Heal),
        1 => (0..nodes).prop_map(Event::ToggleReady),
        1 => (0u16..3000).prop_map(Event::CoordinatorRestart),
        1 => (-7200i32..7200).prop_map(Event::WallStep),
        1 => (0..nodes).prop_map(Event::Release),
        6 => (0..nodes).prop_map(Event::TryRun),
    ]
}

struct Agent {
    id: NodeId,
    clock: Clock,
    holder: Option<HolderLease>,
    partitioned: bool,
    ready: bool,
    highest_epoch: Option<Epoch>,
}

struct Sim {
    real_us: u64,
    rng: u64,
    agents: Vec<Agent>,
    coordinator_clock: Clock,
    coordinator_up_at_us: u64,
    coordinator_started: Mono,
    job: JobLease,
    persisted: Option<Lease>,
    wall_offset_s: i64,
    queue: Vec<Message>,
    /// (node, real start, real end) of every run.
    runs: Vec<(usize, u64, u64)>,
    max_epoch_granted: Epoch,
    holder_observations: u64,
}

impl Sim {
    fn new(nodes: usize, seed: u64, ppms: &[i64]) -> Sim {
        let agents = (0..nodes)
            .map(|i| Agent {
                id: NodeId(format!("n{}", i + 1)),
                clock: Clock {
                    origin_us: 1_000_000 * (i as u64 + 1) * 7,
                    started_real_us: 0,
                    ppm: ppms[i],
                },
                holder: Some(HolderLease::new(&params())),
                partitioned: false,
                ready: true,
                highest_epoch: None,
            })
            .collect();
        Sim {
            real_us: 0,
            rng: seed | 1,
            agents,
            coordinator_clock: Clock {
                origin_us: 0,
                started_real_us: 0,
                ppm: ppms[nodes],
            },
            coordinator_up_at_us: 0,
            coordinator_started: Mono::ZERO,
            job: JobLease::default(),
            persisted: None,
            wall_offset_s: 1_772_445_600,
            queue: Vec::new(),
            runs: Vec::new(),
            max_epoch_granted: Epoch(0),
            holder_observations: 0,
        }
    }

    fn random(&mut self, below: u64) -> u64 {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % below
    }

    fn coordinator_up(&self) -> bool {
        self.real_us >= self.coordinator_up_at_us
    }

    fn send(&mut self, node: usize, to_coordinator: bool, body: Body) {
        let roll = self.random(100);
        let delay_ms = match roll {
            0..=4 => return, // dropped
            5..=79 => 1 + self.random(50),
            80..=92 => 50 + self.random(2_000),
            _ => 2_000 + self.random(8_000), // longer than a lease
        };
        self.queue.push(Message {
            deliver_at_us: self.real_us + delay_ms * 1_000,
            node,
            to_coordinator,
            body,
        });
    }

    fn deliver_due(&mut self) {
        loop {
            let Some(index) = self
                .queue
                .iter()
                .enumerate()
                .filter(|(_, m)| m.deliver_at_us <= self.real_us)
                .min_by_key(|(_, m)| m.deliver_at_us)
                .map(|(i, _)| i)
            else {
                return;
            };
            let mut message = self.queue.remove(index);
            if self.agents[message.node].partitioned {
                // Held by the network (TCP retransmits) until the partition heals, or lost.
                if self.random(3) > 0 {
                    message.deliver_at_us = self.real_us + 200_000;
                    self.queue.push(message);
                }
                continue;
            }
            if message.to_coordinator {
                self.coordinator_receives(message.node, message.body);
            } else {
                self.agent_receives(message.node, message.body);
            }
        }
    }

    fn coordinator_receives(&mut self, node: usize, body: Body) {
        if !self.coordinator_up() {
            return;
        }
        let now = self.coordinator_clock.read(self.real_us);
        let from = self.agents[node].id.clone();
        match body {
            Body::Ack(ack) => {
                if let Some(confirm) = self.job.on_ack(self.persisted.as_ref(), &from, ack, now) {
                    self.send(node, false, Body::Confirm(confirm));
                }
            }
            Body::Release(epoch) => {
                if let Some(lease) = on_release(self.persisted.as_ref(), &from, epoch) {
                    self.persisted = Some(lease);
                }
            }
            Body::Offer(_) | Body::Confirm(_) => unreachable!(),
        }
    }

    fn agent_receives(&mut self, node: usize, body: Body) {
        let now = self.agents[node].clock.read(self.real_us);
        let Some(holder) = self.agents[node].holder.as_mut() else {
            return; // the agent is dead: the connection is gone
        };
        let reply = match body {
            Body::Offer(offer) => holder.accept(offer, now).ok(),
            Body::Confirm(confirm) => {
                holder.confirm(confirm);
                None
            }
            Body::Ack(_) | Body::Release(_) => unreachable!(),
        };
        if let Some(ack) = reply {
            self.send(node, true, Body::Ack(ack));
        }
    }

    fn coordinator_tick(&mut self) {
        if !self.coordinator_up() {
            return;
        }
        let now = self.coordinator_clock.read(self.real_us);
        let view: Vec<Candidate> = self
            .agents
            .iter()
            .map(|agent| Candidate {
                node: agent.id.clone(),
                // Gossip reaches the coordinator around a partition sometimes.
                live: agent.holder.is_some() && (!agent.partitioned || agent.ready),
                ready: agent.ready,
            })
            .collect();
        let decision = plan(
            &self.job,
            &params(),
            self.persisted.as_ref(),
            &view,
            now,
            self.coordinator_started,
        );
        match decision {
            Decision::Grant { node, epoch } => {
                assert!(
                    epoch > self.max_epoch_granted,
                    "grant of epoch {epoch} after epoch {} was granted",
                    self.max_epoch_granted
                );
                if let Some(lease) = &self.persisted {
                    assert!(
                        epoch > lease.epoch,
                        "grant does not exceed the persisted epoch"
                    );
                }
                self.max_epoch_granted = epoch;
                let wall = UNIX_EPOCH
                    + Duration::from_secs(u64::try_from(self.wall_offset_s).unwrap())
                    + Duration::from_micros(self.real_us);
                self.persisted = Some(Lease {
                    node: node.clone(),
                    epoch,
                    released: false,
                    granted_at: wall,
                });
                let offer = self.job.offer(epoch, now);
                let index = self.index_of(&node);
                self.send(index, false, Body::Offer(offer));
            }
            Decision::Renew { node, epoch } => {
                let lease = self.persisted.as_ref().unwrap();
                assert_eq!((&lease.node, lease.epoch), (&node, epoch));
                let offer = self.job.offer(epoch, now);
                let index = self.index_of(&node);
                self.send(index, false, Body::Offer(offer));
            }
            Decision::Wait { .. } | Decision::Hold => {}
        }
    }

    fn index_of(&self, node: &NodeId) -> usize {
        self.agents.iter().position(|a| a.id == *node).unwrap()
    }

    fn apply(&mut self, event: &Event) {
        match *event {
            Event::Advance(ms) => {
                // Advance in 100 ms steps, the coordinator ticking at each.
                let end = self.real_us + u64::from(ms) * 1_000;
                while self.real_us < end {
                    self.real_us = (self.real_us + 100_000).min(end);
                    self.deliver_due();
                    self.coordinator_tick();
                    self.check();
                }
            }
            Event::Kill(node) => self.agents[node].holder = None,
            Event::Revive(node) => {
                if self.agents[node].holder.is_none() {
                    self.agents[node].holder = Some(HolderLease::new(&params()));
                    self.agents[node].highest_epoch = None;
                }
            }
            Event::Partition(node) => self.agents[node].partitioned = true,
            Event::Heal(node) => self.agents[node].partitioned = false,
            Event::ToggleReady(node) => self.agents[node].ready = !self.agents[node].ready,
            Event::CoordinatorRestart(down_ms) => {
                self.job = JobLease::default();
                self.coordinator_up_at_us = self.real_us + u64::from(down_ms) * 1_000;
                let ppm = i64::try_from(self.random(1_001)).unwrap() - 500;
                // A new process: a new monotonic origin (any value: never compared across).
                self.coordinator_clock = Clock {
                    origin_us: self.random(1_000_000_000),
                    started_real_us: self.coordinator_up_at_us,
                    ppm,
                };
                self.coordinator_started =
                    Mono(Duration::from_micros(self.coordinator_clock.origin_us));
            }
            Event::WallStep(seconds) => self.wall_offset_s += i64::from(seconds),
            Event::Release(node) => {
                let busy = self
                    .runs
                    .iter()
                    .any(|&(n, _, end)| n == node && end > self.real_us);
                if let (false, Some(holder)) = (busy, self.agents[node].holder.as_mut()) {
                    if let Some(epoch) = holder.release() {
                        self.send(node, true, Body::Release(epoch));
                    }
                }
            }
            Event::TryRun(node) => {
                let agent = &self.agents[node];
                let now = agent.clock.read(self.real_us);
                let timeout = Duration::from_millis(TIMEOUT_MS);
                if let Some(holder) = &agent.holder {
                    let busy = self
                        .runs
                        .iter()
                        .any(|&(n, _, end)| n == node && end > self.real_us);
                    if !busy && holder.may_start_run(now, timeout) {
                        let end = agent.clock.real_after(self.real_us, timeout);
                        for &(other, start, other_end) in &self.runs {
                            assert!(
                                other == node || other_end <= self.real_us,
                                "run on n{} at {}us overlaps a run on n{} ({start}..{other_end}us)",
                                node + 1,
                                self.real_us,
                                other + 1
                            );
                        }
                        self.runs.push((node, self.real_us, end));
                    }
                }
            }
        }
        self.check();
    }

    fn check(&mut self) {
        let mut holders = Vec::new();
        for (index, agent) in self.agents.iter_mut().enumerate() {
            let Some(holder) = &agent.holder else {
                continue;
            };
            let now = agent.clock.read(self.real_us);
            if holder.may_start(now) {
                holders.push(index + 1);
            }
            if let Some(epoch) = holder.epoch() {
                assert!(
                    agent.highest_epoch.is_none_or(|seen| epoch >= seen),
                    "n{}'s epoch went back from {:?} to {epoch}",
                    index + 1,
                    agent.highest_epoch
                );
                agent.highest_epoch = Some(epoch);
            }
        }
        assert!(
            holders.len() <= 1,
            "at {}us nodes {holders:?} may all start a run",
            self.real_us
        );
        self.holder_observations += holders.len() as u64;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn no_two_nodes_may_run_a_job_at_once(
        nodes in 2usize..=4,
        seed in any::<u64>(),
        ppms in proptest::collection::vec(-500i64..=500, 5),
        events in proptest::collection::vec(event(4), 50..300),
    ) {
        let mut sim = Sim::new(nodes, seed, &ppms);
        for event in &events {
            let event = clamp(event, nodes);
            sim.apply(&event);
        }
    }
}

/// Maps node indices generated for 4 nodes onto `nodes`.
fn clamp(event: &Event, nodes: usize) -> Event {
    match *event {
        Event::Kill(n) => Event::Kill(n % nodes),
        Event::Revive(n) => Event::Revive(n % nodes),
        Event::Partition(n) => Event::Partition(n % nodes),
        Event::Heal(n) => Event::Heal(n % nodes),
        Event::ToggleReady(n) => Event::ToggleReady(n % nodes),
        Event::Release(n) => Event::Release(n % nodes),
        Event::TryRun(n) => Event::TryRun(n % nodes),
        ref other => other.clone(),
    }
}

/// Without faults the lease is held nearly all the time, and after the holder's death
/// another node holds it within a lease length, the margin and a few ticks: the safety
/// property above is not met by never granting.
#[test]
fn lease_moves_to_another_node_after_the_holder_dies() {
    let mut sim = Sim::new(3, 7, &[300, -300, 0, 200, -200]);
    // Calm network for this test: deliver everything in 1-50 ms.
    sim.rng = 1;
    for _ in 0..50 {
        sim.apply(&Event::Advance(100));
    }
    let holder = (0..3)
        .find(|&i| {
            let agent = &sim.agents[i];
            agent
                .holder
                .as_ref()
                .is_some_and(|h| h.may_start(agent.clock.read(sim.real_us)))
        })
        .expect("a node holds the lease after 5 s");
    let died_at = sim.real_us;
    let dead = &sim.agents[holder];
    let local_now = dead.clock.read(died_at);
    let deadline = dead
        .holder
        .as_ref()
        .and_then(HolderLease::deadline)
        .unwrap();
    let dead_deadline_us = dead.clock.real_after(died_at, deadline.0 - local_now.0);
    sim.apply(&Event::Kill(holder));
    let mut moved_after = None;
    for _ in 0..100 {
        sim.apply(&Event::Advance(100));
        let now = sim.real_us;
        let other = (0..3).filter(|&i| i != holder).any(|i| {
            let agent = &sim.agents[i];
            agent
                .holder
                .as_ref()
                .is_some_and(|h| h.may_start(agent.clock.read(now)))
        });
        if other {
            moved_after = Some(Duration::from_micros(now - died_at));
            break;
        }
    }
    let moved_after = moved_after.expect("another node holds the lease within 10 s");
    // Delays above 2 s and drops happen in this network too, hence the slack.
    assert!(
        moved_after <= Duration::from_millis(LENGTH_MS + MARGIN_MS + 6_000),
        "moved after {moved_after:?}"
    );
    assert!(
        died_at + u64::try_from(moved_after.as_micros()).unwrap() >= dead_deadline_us,
        "moved after {moved_after:?}, before the dead holder's deadline"
    );
    assert!(sim.holder_observations > 40, "{}", sim.holder_observations);
}
