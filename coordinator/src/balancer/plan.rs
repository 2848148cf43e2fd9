//! The membership planner: pure (`plan(&Spec, &Observed, now) -> Vec<Action>`, no I/O, no
//! clock, no RNG), idempotent and blind to what triggered it.
//!
//! Rules, each ensured on its own, per node id in sorted order:
//! - Desired members = nodes that are ready and not draining. Gossip only *triggers*: a
//!   change of membership needs a fresh gRPC confirmation from the agent
//!   ([`Action::Confirm`] asks the loop for one; design principle 2, a node that gossip
//!   calls dead and that answers gRPC is not dead). A fresh confirmation decides.
//! - Removal is fast (the safe direction); re-adding waits until the node has been
//!   serving continuously for `rise_hold` (hysteresis: a node whose readiness blinks goes
//!   out once and stays out until it is stable, so membership does not flap).
//! - A node that drains itself (agent `draining`) is drained in the balancer, disabled
//!   when its connections have ended or after `drain_timeout`; a node that stops serving
//!   without draining is disabled at once (no traffic at all). A disabled entry is deleted
//!   after `delete_after` (HAProxy 2.6 crashed when a server was deleted right after a
//!   failure, with streams still waiting to retry on it).
//! - Never remove or drain the last active member: a cluster where every node looks bad
//!   is more likely a coordinator-side problem, and the balancer's own checks remain.
//! - Members whose node the view does not know are swept once the view has settled.
//! - Balancer state unknown (socket or API down) = no action.
//!
//! Ordering inside one plan: confirmations, then additions, then drains and removals, so
//! a backend that stops at its first error never removes before it has added.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::{Member, MemberChange, MemberState};

/// Tuning of the planner; validated by [`Spec::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// A node must have been serving this long before it is (re)added.
    pub rise_hold: Duration,
    /// The longest a planned removal waits for connections to end.
    pub drain_timeout: Duration,
    /// How long a gRPC confirmation counts as fresh.
    pub confirm_ttl: Duration,
    /// How long the loop watches gossip before sweeping members of unknown nodes.
    pub settle: Duration,
    /// How long a disabled member stays (in maint, no traffic) before its entry is deleted.
    pub delete_after: Duration,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            rise_hold: Duration::from_secs(3),
            drain_timeout: Duration::from_secs(30),
            confirm_ttl: Duration::from_secs(1),
            settle: Duration::from_secs(10),
            delete_after: Duration::from_secs(5),
        }
    }
}

impl Spec {
    /// Rejects settings that would make the loop act on stale facts.
    pub fn new(
        rise_hold: Duration,
        drain_timeout: Duration,
        confirm_ttl: Duration,
        settle: Duration,
    ) -> Result<Spec, String> {
        if confirm_ttl.is_zero() {
            return Err("confirm_ttl must be positive".into());
        }
        if confirm_ttl > Duration::from_secs(30) {
            return Err("confirm_ttl above 30 s would act on stale confirmations".into());
        }
        Ok(Spec {
            rise_hold,
            drain_timeout,
            confirm_ttl,
            settle,
            ..Spec::default()
        })
    }
}

/// A fact that may be unknown (the balancer could not be asked).
#[derive(Debug, Clone, PartialEq)]
pub enum Fact<T> {
    Known(T),
    Unknown,
}

/// What the agent answered over gRPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Ready and not draining.
    Serving,
    /// Answered, not ready; `draining` = a planned departure.
    NotServing { draining: bool },
    /// Did not answer (connection refused, timeout).
    Unreachable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmation {
    pub at: Instant,
    pub verdict: Verdict,
}

/// One node as gossip shows it, plus the loop's memory about it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFacts {
    /// The address members of this node use (the IP of its gRPC address).
    pub address: Option<IpAddr>,
    pub live: bool,
    pub ready: bool,
    pub draining: bool,
    /// Since when gossip has shown this node serving without interruption.
    pub serving_since: Option<Instant>,
    pub confirmed: Option<Confirmation>,
}

impl NodeFacts {
    pub fn gossip_serving(&self) -> bool {
        self.live && self.ready && !self.draining
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub nodes: BTreeMap<String, NodeFacts>,
    pub members: Fact<Vec<Member>>,
    /// When each draining member was first seen draining (loop memory).
    pub drain_started: BTreeMap<String, Instant>,
    /// When each disabled (maint) member was first seen disabled (loop memory).
    pub maint_started: BTreeMap<String, Instant>,
    /// When the loop started watching gossip.
    pub watching_since: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Ask the node's agent over gRPC, then plan again.
    Confirm {
        node: String,
    },
    Change(MemberChange),
}

/// What to do about one node, before the last-member rule is applied.
enum Intent {
    Nothing,
    Confirm,
    Add(IpAddr),
    SetActive,
    Drain,
    Disable { active: bool },
    Remove,
}

/// Pure: the next step towards desired membership.
pub fn plan(spec: &Spec, observed: &Observed, port: u16, now: Instant) -> Vec<Action> {
    let Fact::Known(members) = &observed.members else {
        return Vec::new();
    };
    let by_name: BTreeMap<&str, &Member> = members.iter().map(|m| (m.name.as_str(), m)).collect();
    let names: BTreeSet<&str> = by_name
        .keys()
        .copied()
        .chain(observed.nodes.keys().map(String::as_str))
        .collect();
    let settled = now.saturating_duration_since(observed.watching_since) >= spec.settle;

    let mut confirms = Vec::new();
    let mut additions = Vec::new();
    let mut departures = Vec::new();
    for name in names {
        let intent = intent_for(
            spec,
            observed,
            observed.nodes.get(name),
            by_name.get(name).copied(),
            port,
            settled,
            now,
        );
        match intent {
            Intent::Nothing => {}
            Intent::Confirm => confirms.push(Action::Confirm {
                node: name.to_string(),
            }),
            Intent::Add(address) => additions.push(MemberChange::Add {
                name: name.to_string(),
                address,
                port,
            }),
            Intent::SetActive => additions.push(MemberChange::SetActive {
                name: name.to_string(),
            }),
            Intent::Drain => departures.push((
                true,
                MemberChange::Drain {
                    name: name.to_string(),
                },
            )),
            Intent::Disable { active } => departures.push((
                active,
                MemberChange::Disable {
                    name: name.to_string(),
                    // an active member stopped serving unplanned; a draining one ended
                    shut_sessions: !active,
                },
            )),
            Intent::Remove => departures.push((
                false,
                MemberChange::Remove {
                    name: name.to_string(),
                },
            )),
        }
    }

    // Never take away the last active member: count what is active after the additions.
    let mut active_after = members
        .iter()
        .filter(|m| m.state == MemberState::Active)
        .count()
        + additions
            .iter()
            .filter(|c| matches!(c, MemberChange::Add { .. } | MemberChange::SetActive { .. }))
            .count();
    let mut actions = confirms;
    actions.extend(additions.into_iter().map(Action::Change));
    for (takes_an_active_member, change) in departures {
        if takes_an_active_member {
            if active_after <= 1 {
                continue;
            }
            active_after -= 1;
        }
        actions.push(Action::Change(change));
    }
    actions
}

fn intent_for(
    spec: &Spec,
    observed: &Observed,
    node: Option<&NodeFacts>,
    member: Option<&Member>,
    port: u16,
    settled: bool,
    now: Instant,
) -> Intent {
    let Some(node) = node else {
        // A member of ours whose node the view does not know (gone for longer than gossip
        // remembers dead nodes, or never seen): swept once the view has settled.
        return match member {
            Some(member) if settled => take_out(spec, observed, member, now),
            _ => Intent::Nothing,
        };
    };
    let fresh = node
        .confirmed
        .filter(|c| now.saturating_duration_since(c.at) < spec.confirm_ttl)
        .map(|c| c.verdict);
    let held = node
        .serving_since
        .is_some_and(|since| now.saturating_duration_since(since) >= spec.rise_hold);
    let gossip_serving = node.gossip_serving();

    let Some(member) = member else {
        if !gossip_serving || !held {
            return Intent::Nothing;
        }
        return match (fresh, node.address) {
            (Some(Verdict::Serving), Some(address)) => Intent::Add(address),
            (None, Some(_)) => Intent::Confirm,
            _ => Intent::Nothing,
        };
    };

    if let Some(address) = node.address {
        if address != member.address || member.port != port {
            // The node moved: the old entry goes once the node is confirmed serving at its
            // new address over gRPC (it is added again there). Gossip alone, which anyone
            // on the network can forge, never takes a member out; meanwhile the balancer's
            // own health checks still guard the old address.
            return match fresh {
                Some(Verdict::Serving) => take_out(spec, observed, member, now),
                None => Intent::Confirm,
                Some(_) => Intent::Nothing,
            };
        }
    }

    match member.state {
        MemberState::Active => match fresh {
            Some(Verdict::Serving) => Intent::Nothing,
            Some(Verdict::NotServing { draining: true }) => Intent::Drain,
            Some(Verdict::NotServing { draining: false }) | Some(Verdict::Unreachable) => {
                Intent::Disable { active: true }
            }
            None if gossip_serving => Intent::Nothing,
            None => Intent::Confirm,
        },
        MemberState::Draining | MemberState::Maint => {
            if gossip_serving {
                return match fresh {
                    Some(Verdict::Serving) if held => Intent::SetActive,
                    None if held => Intent::Confirm,
                    // Serving again but not yet stable, or the agent disagrees: wait.
                    _ => Intent::Nothing,
                };
            }
            if member.state == MemberState::Maint {
                return take_out(spec, observed, member, now);
            }
            let drained = member.connections == Some(0);
            let started = observed
                .drain_started
                .get(&member.name)
                .copied()
                .unwrap_or(now);
            let timed_out = now.saturating_duration_since(started) >= spec.drain_timeout;
            if drained || timed_out {
                Intent::Disable { active: false }
            } else {
                Intent::Nothing
            }
        }
    }
}

/// Out of rotation now (Disable), the entry deleted once it has been disabled for
/// `delete_after` with no connections left (or four times that, whatever remains).
fn take_out(spec: &Spec, observed: &Observed, member: &Member, now: Instant) -> Intent {
    match member.state {
        MemberState::Active => Intent::Disable { active: true },
        MemberState::Draining => Intent::Disable { active: false },
        MemberState::Maint => {
            let since = observed
                .maint_started
                .get(&member.name)
                .copied()
                .unwrap_or(now);
            let in_maint = now.saturating_duration_since(since);
            let idle = member.connections.is_none_or(|c| c == 0);
            if (idle && in_maint >= spec.delete_after) || in_maint >= spec.delete_after * 4 {
                Intent::Remove
            } else {
                Intent::Nothing
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: u16 = 80;

    fn addr(i: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, i])
    }

    /// A small world: nodes' true state, what gossip shows (the truth), and an in-memory
    /// balancer; the loop of plan → apply runs until the plan is empty.
    struct World {
        spec: Spec,
        now: Instant,
        truth: BTreeMap<String, Verdict>,
        observed: Observed,
        changes: Vec<MemberChange>,
    }

    impl World {
        fn new(nodes: &[(&str, u8)]) -> World {
            let now = Instant::now();
            let mut observed = Observed {
                nodes: BTreeMap::new(),
                members: Fact::Known(Vec::new()),
                drain_started: BTreeMap::new(),
                maint_started: BTreeMap::new(),
                watching_since: now,
            };
            let mut truth = BTreeMap::new();
            for (name, i) in nodes {
                observed.nodes.insert(
                    name.to_string(),
                    NodeFacts {
                        address: Some(addr(*i)),
                        live: true,
                        ready: true,
                        draining: false,
                        serving_since: Some(now),
                        confirmed: None,
                    },
                );
                truth.insert(name.to_string(), Verdict::Serving);
            }
            World {
                spec: Spec::default(),
                now,
                truth,
                observed,
                changes: Vec::new(),
            }
        }

        /// Gossip and the agent both report `verdict` for `node` from now on.
        fn set(&mut self, node: &str, verdict: Verdict) {
            self.truth.insert(node.into(), verdict);
            let facts = self.observed.nodes.get_mut(node).unwrap();
            let was_serving = facts.gossip_serving();
            facts.live = verdict != Verdict::Unreachable;
            facts.ready = verdict == Verdict::Serving;
            facts.draining = verdict == (Verdict::NotServing { draining: true });
            if facts.gossip_serving() && !was_serving {
                facts.serving_since = Some(self.now);
            } else if !facts.gossip_serving() {
                facts.serving_since = None;
            }
        }

        fn members(&mut self) -> &mut Vec<Member> {
            match &mut self.observed.members {
                Fact::Known(members) => members,
                Fact::Unknown => panic!("unknown members in the simulation"),
            }
        }

        fn active(&self) -> Vec<String> {
            match &self.observed.members {
                Fact::Known(members) => members
                    .iter()
                    .filter(|m| m.state == MemberState::Active)
                    .map(|m| m.name.clone())
                    .collect(),
                Fact::Unknown => vec![],
            }
        }

        /// One round: plan, confirm, plan again, apply; time advances by `step`.
        fn step(&mut self, step: Duration) -> usize {
            let mut applied = 0;
            for _ in 0..2 {
                let actions = plan(&self.spec, &self.observed, PORT, self.now);
                let mut confirmed_any = false;
                for action in &actions {
                    if let Action::Confirm { node } = action {
                        let verdict = self.truth[node];
                        self.observed.nodes.get_mut(node).unwrap().confirmed = Some(Confirmation {
                            at: self.now,
                            verdict,
                        });
                        confirmed_any = true;
                    }
                }
                if confirmed_any {
                    continue;
                }
                for action in actions {
                    if let Action::Change(change) = action {
                        self.apply(change);
                        applied += 1;
                    }
                }
                break;
            }
            self.now += step;
            applied
        }

        fn apply(&mut self, change: MemberChange) {
            let now = self.now;
            self.changes.push(change.clone());
            match change {
                MemberChange::Add {
                    name,
                    address,
                    port,
                } => self.members().push(Member {
                    name,
                    address,
                    port,
                    state: MemberState::Active,
                    connections: Some(3),
                    health: None,
                }),
                MemberChange::SetActive { name } => {
                    self.observed.drain_started.remove(&name);
                    self.observed.maint_started.remove(&name);
                    let member = self.members().iter_mut().find(|m| m.name == name).unwrap();
                    member.state = MemberState::Active;
                }
                MemberChange::Drain { name } => {
                    self.observed.drain_started.insert(name.clone(), now);
                    let member = self.members().iter_mut().find(|m| m.name == name).unwrap();
                    member.state = MemberState::Draining;
                }
                MemberChange::Disable { name, .. } => {
                    self.observed.drain_started.remove(&name);
                    self.observed.maint_started.insert(name.clone(), now);
                    let member = self.members().iter_mut().find(|m| m.name == name).unwrap();
                    member.state = MemberState::Maint;
                    member.connections = Some(0);
                }
                MemberChange::Remove { name } => {
                    let member = self
                        .members()
                        .iter()
                        .find(|m| m.name == name)
                        .unwrap()
                        .clone();
                    assert_eq!(
                        member.state,
                        MemberState::Maint,
                        "only disabled members are deleted"
                    );
                    self.observed.maint_started.remove(&name);
                    self.members().retain(|m| m.name != name);
                }
            }
        }

        /// Runs rounds until nothing changes for a whole `rise_hold` and drain timeout;
        /// panics if that does not happen within `max_rounds`.
        fn run_to_quiescence(&mut self, max_rounds: usize) -> usize {
            let step = Duration::from_millis(100);
            let quiet_needed =
                ((self.spec.rise_hold + self.spec.drain_timeout + self.spec.delete_after * 4)
                    .as_millis()
                    / 100) as usize
                    + 2;
            let mut quiet = 0;
            for round in 0..max_rounds {
                if self.step(step) == 0 {
                    quiet += 1;
                    if quiet >= quiet_needed {
                        return round;
                    }
                } else {
                    quiet = 0;
                }
            }
            panic!(
                "no quiescence after {max_rounds} rounds; changes: {:?}",
                self.changes
            );
        }
    }

    #[test]
    fn empty_balancer_converges_to_all_ready_nodes_after_the_hold() {
        let mut world = World::new(&[("n1", 1), ("n2", 2), ("n3", 3)]);
        assert!(
            world.step(Duration::from_millis(100)) == 0,
            "nothing before rise_hold"
        );
        world.run_to_quiescence(1000);
        assert_eq!(world.active(), ["n1", "n2", "n3"]);
        assert_eq!(world.changes.len(), 3);
    }

    #[test]
    fn nothing_happens_without_a_known_member_list() {
        let mut world = World::new(&[("n1", 1)]);
        world.observed.members = Fact::Unknown;
        let later = world.now + Duration::from_secs(60);
        assert!(plan(&world.spec, &world.observed, PORT, later).is_empty());
    }

    #[test]
    fn a_node_that_stops_being_ready_leaves_and_returns_after_the_hold() {
        let mut world = World::new(&[("n1", 1), ("n2", 2), ("n3", 3)]);
        world.run_to_quiescence(1000);
        world.set("n2", Verdict::NotServing { draining: false });
        world.step(Duration::from_millis(100));
        assert_eq!(world.active(), ["n1", "n3"], "removed in one round");
        world.set("n2", Verdict::Serving);
        world.step(Duration::from_millis(100));
        assert_eq!(world.active(), ["n1", "n3"], "not back before the hold");
        world.run_to_quiescence(1000);
        assert_eq!(
            world.active(),
            ["n1", "n2", "n3"],
            "back in, same entry re-enabled"
        );
    }

    #[test]
    fn gossip_calling_a_node_dead_does_not_remove_it_when_the_agent_answers() {
        let mut world = World::new(&[("n1", 1), ("n2", 2)]);
        world.run_to_quiescence(1000);
        // gossip says dead, the agent still answers Serving
        world.observed.nodes.get_mut("n2").unwrap().live = false;
        for _ in 0..50 {
            world.step(Duration::from_millis(100));
        }
        assert_eq!(world.active(), ["n1", "n2"]);
    }

    #[test]
    fn planned_removal_drains_then_removes_when_connections_end() {
        let mut world = World::new(&[("n1", 1), ("n2", 2)]);
        world.run_to_quiescence(1000);
        world.set("n2", Verdict::NotServing { draining: true });
        world.step(Duration::from_millis(100));
        let members = world.members().clone();
        let n2 = members.iter().find(|m| m.name == "n2").unwrap();
        assert_eq!(n2.state, MemberState::Draining);
        world.step(Duration::from_millis(100));
        assert!(
            world.members().iter().any(|m| m.name == "n2"),
            "waits while connections remain"
        );
        world
            .members()
            .iter_mut()
            .find(|m| m.name == "n2")
            .unwrap()
            .connections = Some(0);
        world.step(Duration::from_millis(100));
        let state = world
            .members()
            .iter()
            .find(|m| m.name == "n2")
            .map(|m| m.state);
        assert_eq!(state, Some(MemberState::Maint), "disabled once drained");
        world.run_to_quiescence(1000);
        assert!(
            !world.members().iter().any(|m| m.name == "n2"),
            "deleted after delete_after"
        );
    }

    #[test]
    fn planned_removal_is_bounded_by_the_drain_timeout() {
        let mut world = World::new(&[("n1", 1), ("n2", 2)]);
        world.run_to_quiescence(1000);
        world.set("n2", Verdict::NotServing { draining: true });
        world.step(Duration::from_millis(100));
        world.now += world.spec.drain_timeout;
        world.step(Duration::from_millis(100));
        let state = world
            .members()
            .iter()
            .find(|m| m.name == "n2")
            .map(|m| m.state);
        assert_eq!(
            state,
            Some(MemberState::Maint),
            "disabled at the drain timeout"
        );
    }

    #[test]
    fn the_last_member_is_never_removed() {
        let mut world = World::new(&[("n1", 1), ("n2", 2)]);
        world.run_to_quiescence(1000);
        world.set("n1", Verdict::Unreachable);
        world.set("n2", Verdict::NotServing { draining: false });
        world.run_to_quiescence(1000);
        assert_eq!(
            world.active().len(),
            1,
            "one member kept: {:?}",
            world.active()
        );
        world.set("n2", Verdict::NotServing { draining: true });
        world.run_to_quiescence(1000);
        assert_eq!(world.active().len(), 1);
    }

    #[test]
    fn existing_members_are_adopted_without_changes() {
        let mut world = World::new(&[("n1", 1), ("n2", 2)]);
        for (name, i) in [("n1", 1), ("n2", 2)] {
            world.members().push(Member {
                name: name.into(),
                address: addr(i),
                port: PORT,
                state: MemberState::Active,
                connections: Some(0),
                health: None,
            });
        }
        world.run_to_quiescence(1000);
        assert!(world.changes.is_empty(), "{:?}", world.changes);
    }

    #[test]
    fn members_of_unknown_nodes_are_swept_only_after_the_view_settles() {
        let mut world = World::new(&[("n1", 1)]);
        world.members().push(Member {
            name: "gone".into(),
            address: addr(9),
            port: PORT,
            state: MemberState::Active,
            connections: Some(0),
            health: None,
        });
        let early = plan(&world.spec, &world.observed, PORT, world.now);
        assert!(early.is_empty(), "{early:?}");
        world.run_to_quiescence(1000);
        assert_eq!(world.active(), ["n1"]);
    }

    #[test]
    fn blinking_readiness_does_not_flap_membership() {
        let mut world = World::new(&[("n1", 1), ("n2", 2), ("n3", 3)]);
        world.run_to_quiescence(1000);
        world.changes.clear();
        // n3 blinks every 400 ms for 20 s
        for round in 0..200 {
            let verdict = if (round / 4) % 2 == 0 {
                Verdict::NotServing { draining: false }
            } else {
                Verdict::Serving
            };
            if world.truth["n3"] != verdict {
                world.set("n3", verdict);
            }
            world.step(Duration::from_millis(100));
        }
        let n3_changes: Vec<&MemberChange> =
            world.changes.iter().filter(|c| c.name() == "n3").collect();
        assert!(
            matches!(n3_changes.first(), Some(MemberChange::Disable { .. }))
                && n3_changes.len() <= 2,
            "out once, maybe deleted, no re-add while blinking: {n3_changes:?}"
        );
        assert!(!n3_changes
            .iter()
            .any(|c| matches!(c, MemberChange::Add { .. } | MemberChange::SetActive { .. })));
        world.set("n3", Verdict::Serving);
        world.run_to_quiescence(1000);
        assert_eq!(world.active(), ["n1", "n2", "n3"]);
    }

    #[test]
    fn plans_converge_from_random_states() {
        // A deterministic sweep over start states: every combination of member state and
        // node verdict for three nodes converges, and the active set then matches.
        let verdicts = [
            Verdict::Serving,
            Verdict::NotServing { draining: false },
            Verdict::NotServing { draining: true },
            Verdict::Unreachable,
        ];
        let states = [
            None,
            Some(MemberState::Active),
            Some(MemberState::Draining),
            Some(MemberState::Maint),
        ];
        let mut cases = 0;
        for a in 0..16usize {
            for b in 0..16usize {
                for c in [0usize, 5, 10, 15] {
                    let mut world = World::new(&[("n1", 1), ("n2", 2), ("n3", 3)]);
                    for (i, code) in [a, b, c].into_iter().enumerate() {
                        let name = format!("n{}", i + 1);
                        world.set(&name, verdicts[code % 4]);
                        if let Some(state) = states[code / 4] {
                            world.members().push(Member {
                                name,
                                address: addr(i as u8 + 1),
                                port: PORT,
                                state,
                                connections: Some(0),
                                health: None,
                            });
                        }
                    }
                    let active_before = world.active().len();
                    world.run_to_quiescence(2000);
                    let serving: Vec<String> = world
                        .truth
                        .iter()
                        .filter(|(_, v)| **v == Verdict::Serving)
                        .map(|(n, _)| n.clone())
                        .collect();
                    let mut active = world.active();
                    active.sort();
                    if serving.is_empty() {
                        assert!(
                            active.len() <= 1 && (active_before == 0 || active.len() == 1),
                            "case {a},{b},{c}: {active:?}"
                        );
                    } else {
                        assert_eq!(active, serving, "case {a},{b},{c}");
                    }
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 1024);
    }
}
