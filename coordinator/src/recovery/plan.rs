//! What one recovery pass does, decided from observed facts (pure): the gossip view of the
//! core members, the persisted record, what the loop remembers, and `now` in; the record
//! to persist, the status line and the one agent call to make out. The loop in `mod.rs`
//! persists, then calls; an election's second half (the positions gathered, then
//! [`elect`](super::election::elect)) is pure too, and [`decide`] turns its choice into
//! the persisted decision.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;
use triad_galera::join::{next_joiner, MemberGalera, JOIN_SETTLE};
use triad_galera::position::{Position, ZERO_UUID};
use triad_galera::view::{outlook, MemberView, Outlook, SavedView};
use triad_proto::gossip::{GaleraKeys, GaleraState, Role};

use super::finished::finished;
use super::store::{Closed, Decision, GaleraRecord, Phase};
use super::RecoverySettings;
use crate::runner::Now;
use crate::view::ClusterView;

/// A refused or failed bootstrap is retried after this long, not on every pass.
pub const BOOTSTRAP_RETRY: Duration = Duration::from_secs(5);

/// How long the fast path lets Galera's pc.recovery re-form the saved view before the
/// election takes over (the lab: 2.6-3.7 s from mysqld's start when it works; it waits
/// for good when it cannot).
pub const FAST_PATH_LIMIT: Duration = Duration::from_secs(10);

/// How long an outage waits for a live member's first Galera report before electing
/// without it (a just-started agent answers positions before it gossips its saved view,
/// and the election would then win the race against the fast path).
pub const FIRST_REPORT_WAIT: Duration = Duration::from_secs(10);

/// One core member as gossip shows it.
pub struct Core<'a> {
    pub id: &'a str,
    /// The agent's incarnation (a reboot or agent restart is a new one).
    pub generation: u64,
    pub live: bool,
    pub grpc: Option<SocketAddr>,
    pub state: GaleraState,
    /// Synced in a Primary component.
    pub primary: bool,
    /// Reports being in a Primary component, in any local state (Synced, a donor's
    /// `Donor/Desynced`, a joiner's `Joined`).
    pub in_component: bool,
    /// `wsrep_cluster_size` the node reports.
    pub size: Option<u32>,
    pub keys: &'a GaleraKeys,
    /// In node maintenance (issue 21): its agent holds mysqld stopped, so it is never
    /// asked to join (nor waited for as the next joiner).
    pub held: bool,
}

/// The core members of `view` that run Galera.
pub fn core_members(view: &ClusterView) -> Vec<Core<'_>> {
    view.members()
        .filter(|m| m.keys.role == Role::Core && m.keys.galera.state != GaleraState::NotManaged)
        .map(|m| {
            let mut core = core_of(&m.node_id, m.live, m.keys.grpc, &m.keys.galera);
            core.generation = m.generation;
            core.held = m.keys.maintenance.is_some();
            core
        })
        .collect()
}

/// One member's facts from its gossiped Galera keys.
pub fn core_of<'a>(
    id: &'a str,
    live: bool,
    grpc: Option<SocketAddr>,
    keys: &'a GaleraKeys,
) -> Core<'a> {
    let in_component = live && keys.cluster_status.as_deref() == Some("Primary");
    Core {
        id,
        generation: 0,
        live,
        grpc,
        state: keys.state,
        primary: in_component && keys.state == GaleraState::Synced,
        in_component,
        size: keys.size,
        keys,
        held: false,
    }
}

/// What the loop remembers between passes (memory only: a restarted coordinator starts
/// them afresh, which only makes it wait longer).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memory {
    /// Since when no member has been in a Primary component.
    pub outage_since: Option<Instant>,
    /// When a bootstrap last failed or was refused (bounds the retries).
    pub last_bootstrap_failure: Option<Instant>,
    /// The epoch, the member last asked to join in it, and since when (bounds the
    /// one-at-a-time wait; a join of an earlier epoch does not count).
    pub last_join: Option<(u64, String, Instant)>,
    /// This outage's fast path, once taken (cleared when a component is Primary again).
    pub fast_path: Option<FastPath>,
    /// Since when a live member of the election has not reported its Galera state yet.
    pub unreported_since: Option<Instant>,
}

/// The fast path of one outage: every member of the saved Primary view was asked to start
/// for Galera's pc.recovery; the election waits [`FAST_PATH_LIMIT`] for it.
#[derive(Debug, Clone, PartialEq)]
pub struct FastPath {
    /// `<view uuid>:<seq>`.
    pub view_id: String,
    pub view_seq: u64,
    pub members: Vec<String>,
    /// The members' incarnations when they were asked: a member that reboots meanwhile
    /// makes it a new outage, planned afresh.
    pub generations: Vec<(String, u64)>,
    pub since: Instant,
    /// Why the election took over (a refusal, or the bound passed).
    pub gave_up: Option<String>,
}

impl Memory {
    /// A failed bootstrap is still waiting out [`BOOTSTRAP_RETRY`].
    pub fn retry_pending(&self, now: Now) -> bool {
        self.last_bootstrap_failure
            .is_some_and(|failed| now.at.saturating_duration_since(failed) < BOOTSTRAP_RETRY)
    }
}

/// The one agent call a pass makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing to call: the status says what is awaited.
    Wait,
    /// Ask `node` to join the Primary component of `epoch`.
    Join {
        node: String,
        grpc: SocketAddr,
        epoch: u64,
    },
    /// Bootstrap the decided node; once it succeeds, ask `then_join` to join at once
    /// (gossip does not show the new Primary yet; the others go one at a time later).
    Bootstrap {
        decision: Decision,
        grpc: SocketAddr,
        then_join: Option<(String, SocketAddr)>,
    },
    /// The grace is over and nothing is decided: ask `members` for their positions and
    /// elect.
    Elect { members: BTreeSet<String> },
    /// The fast path: ask each of `members` (id, gRPC) to start mysqld for Galera's
    /// pc.recovery to re-form the saved Primary view `view` (`<view uuid>:<seq>`).
    Reform {
        view: String,
        members: Vec<(String, SocketAddr)>,
    },
}

/// One pass's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The record to persist before the step (the same record when nothing changed).
    pub record: GaleraRecord,
    pub memory: Memory,
    /// The new status line; `None` keeps the last one (a bootstrap waiting out its retry).
    pub status: Option<String>,
    pub step: Step,
}

/// Plans one pass:
/// - a decision whose work is done is closed ([`finished`]);
/// - while a component is Primary: record its members (the last Primary view) and, after a
///   bootstrap, join the stopped members one at a time;
/// - with a decision and no component: bootstrap the chosen node once it is live;
/// - with neither: the fast path when Galera's pc.recovery can re-form the last Primary
///   view by itself ([`fast_path`]), else, after the grace period, an election.
pub fn plan(
    record: &GaleraRecord,
    memory: &Memory,
    core: &[Core<'_>],
    settings: &RecoverySettings,
    now: Now,
) -> Plan {
    let mut plan = Plan {
        record: record.clone(),
        memory: memory.clone(),
        status: None,
        step: Step::Wait,
    };
    if core.is_empty() {
        plan.status = Some("no Galera member in the cluster view yet".into());
        return plan;
    }
    let synced: Vec<String> = core
        .iter()
        .filter(|c| c.primary)
        .map(|c| c.id.to_string())
        .collect();
    let component: Vec<String> = core
        .iter()
        .filter(|c| c.in_component)
        .map(|c| c.id.to_string())
        .collect();
    if close_if_finished(&mut plan.record, core, &synced, &component, now) {
        plan.memory.last_join = None;
    }
    if !component.is_empty() {
        // a component whose only Synced member became a donor is still Primary: it is
        // serving a joiner's state transfer, not down
        plan.memory.outage_since = None;
        plan.memory.unreported_since = None;
        if let Some(fast) = plan.memory.fast_path.take() {
            if fast.gave_up.is_none() {
                tracing::warn!(view = %fast.view_id, secs = now.at.saturating_duration_since(fast.since).as_secs_f64(), "full outage: Galera's pc.recovery re-formed the Primary component (view {}) without an election", fast.view_seq);
            }
        }
        let (status, step) = with_primary(&mut plan.record, memory, core, synced, now);
        plan.status = Some(status);
        plan.step = step;
        return plan;
    }
    if let Some(decision) = plan.record.decision.clone() {
        (plan.status, plan.step) = bootstrap_step(core, decision, memory, now);
        return plan;
    }
    let since = *plan.memory.outage_since.get_or_insert(now.at);
    let down_for = now.at.saturating_duration_since(since);
    let members = members_for_election(&plan.record, settings, core);
    if let Some((status, step)) = fast_path(&mut plan.memory, &members, core, now) {
        plan.status = Some(status);
        plan.step = step;
        return plan;
    }
    let unreported: Vec<&str> = core
        .iter()
        .filter(|c| c.live && c.state == GaleraState::Unknown && members.contains(c.id))
        .map(|c| c.id)
        .collect();
    if unreported.is_empty() {
        plan.memory.unreported_since = None;
    }
    if down_for < settings.grace {
        plan.status = Some(format!(
            "no Primary component for {:.1}s (grace {:?}); {}",
            down_for.as_secs_f64(),
            settings.grace,
            outage_note(&plan.memory, core)
        ));
        return plan;
    }
    if !unreported.is_empty() {
        let waiting = *plan.memory.unreported_since.get_or_insert(now.at);
        if now.at.saturating_duration_since(waiting) < FIRST_REPORT_WAIT {
            plan.status = Some(format!(
                "full outage: waiting for the first Galera report of {} (up to {:?}) before \
                 electing",
                unreported.join(", "),
                FIRST_REPORT_WAIT
            ));
            return plan;
        }
    }
    if !memory.retry_pending(now) {
        plan.step = Step::Elect { members };
    }
    plan
}

/// The outage's note for the status line: why the fast path gave up, else what Galera's
/// pc.recovery could do ([`pc_recovery_outlook`]).
pub fn outage_note(memory: &Memory, core: &[Core<'_>]) -> String {
    match memory.fast_path.as_ref().and_then(|f| f.gave_up.as_ref()) {
        Some(why) => format!("fast path given up: {why}"),
        None => pc_recovery_outlook(core).to_string(),
    }
}

/// The fast path of a full outage (issue 20): when every member of the last Primary view
/// is back, stopped, with that same view saved, ask them all to start plainly and let
/// Galera's pc.recovery re-form the component (it waits for every member of the view and
/// never forms one without them, so it cannot make a second Primary). The election waits
/// meanwhile — it would stop those mysqlds to read their positions, and a clean stop
/// deletes the saved view — up to [`FAST_PATH_LIMIT`], then takes over for the rest of
/// the outage. Not taken when a member the election would wait for is outside the saved
/// view and not known to be behind it (a later Primary the view does not know of, e.g. an
/// operator's bootstrap of that node, would be lost), or when a member runs or has not
/// reported. Returns the status and step while it holds the election.
pub fn fast_path(
    memory: &mut Memory,
    members: &BTreeSet<String>,
    core: &[Core<'_>],
    now: Now,
) -> Option<(String, Step)> {
    let outlook = pc_recovery_outlook(core);
    let rebooted = memory.fast_path.as_ref().is_some_and(|fast| {
        fast.generations.iter().any(|(id, generation)| {
            // a newer incarnation whose mysqld is stopped: a reboot, not the start asked
            // for (gossip may have shown the old one when the start was asked)
            core.iter().any(|c| {
                c.id == id
                    && c.live
                    && c.generation > *generation
                    && c.state == GaleraState::Stopped
            })
        })
    });
    if rebooted {
        tracing::info!("full outage: a member of the fast path's view came back as a new incarnation; planning afresh");
        memory.fast_path = None;
    }
    if let Some(fast) = &mut memory.fast_path {
        if fast.gave_up.is_some() {
            return None;
        }
        let waited = now.at.saturating_duration_since(fast.since);
        if waited < FAST_PATH_LIMIT {
            let status = format!(
                "full outage: Galera's pc.recovery re-forming view {} ({}) for {:.1}s (up to \
                 {:?}); no election meanwhile",
                fast.view_seq,
                fast.members.join(", "),
                waited.as_secs_f64(),
                FAST_PATH_LIMIT
            );
            return Some((status, Step::Wait));
        }
        let why = format!(
            "pc.recovery did not re-form view {} within {:?}",
            fast.view_seq, FAST_PATH_LIMIT
        );
        tracing::warn!(view = %fast.view_id, "full outage: {why}; electing");
        fast.gave_up = Some(why);
        return None;
    }
    let Outlook::Possible {
        view_id,
        view_seq,
        members: view_members,
        ..
    } = outlook
    else {
        return None;
    };
    let in_view: Vec<&Core<'_>> = core
        .iter()
        .filter(|c| view_members.iter().any(|m| m == c.id))
        .collect();
    let all_stopped = in_view
        .iter()
        .all(|c| c.live && c.state == GaleraState::Stopped && c.grpc.is_some());
    if !all_stopped || fast_path_blocker(members, &view_members, core).is_some() {
        return None;
    }
    let targets: Vec<(String, SocketAddr)> = in_view
        .iter()
        .filter_map(|c| Some((c.id.to_string(), c.grpc?)))
        .collect();
    let generations = in_view
        .iter()
        .map(|c| (c.id.to_string(), c.generation))
        .collect();
    let attempt = FastPath {
        view_id,
        view_seq,
        members: view_members,
        generations,
        since: now.at,
        gave_up: None,
    };
    Some(start_fast_path(memory, attempt, "is back", targets))
}

/// Records the fast path's `attempt` in `memory`: its status line (`how` the members
/// showed the view) and the step that starts `targets`.
fn start_fast_path(
    memory: &mut Memory,
    attempt: FastPath,
    how: &str,
    targets: Vec<(String, SocketAddr)>,
) -> (String, Step) {
    let status = format!(
        "full outage: every member of Primary view {} {how} with it saved; starting {} for \
         Galera's pc.recovery (up to {:?}, then an election)",
        attempt.view_seq,
        attempt.members.join(", "),
        FAST_PATH_LIMIT
    );
    let step = Step::Reform {
        view: attempt.view_id.clone(),
        members: targets,
    };
    memory.fast_path = Some(attempt);
    (status, step)
}

/// Why a member the election would wait for keeps the fast path from starting, when it
/// does: outside the saved view and not back, not reported, or not behind the view's
/// members (another history, or a higher seqno: a Primary formed after the saved view).
/// Positions as gossip shows them.
pub fn fast_path_blocker(
    members: &BTreeSet<String>,
    view_members: &[String],
    core: &[Core<'_>],
) -> Option<String> {
    blocker(members, view_members, |id| {
        let member = core.iter().find(|c| c.id == id).filter(|c| c.live)?;
        Some(member.keys.uuid.clone().zip(member.keys.seqno))
    })
}

/// [`fast_path_blocker`] over `position_of(id)`: `None` when the member is not back,
/// `Some(None)` when it is back without a position.
fn blocker(
    members: &BTreeSet<String>,
    view_members: &[String],
    position_of: impl Fn(&str) -> Option<Option<(String, i64)>>,
) -> Option<String> {
    let in_view = |id: &str| view_members.iter().any(|m| m == id);
    let view_positions: Vec<Option<(String, i64)>> = view_members
        .iter()
        .map(|id| position_of(id).flatten())
        .collect();
    for id in members.iter().filter(|id| !in_view(id)) {
        let Some(position) = position_of(id) else {
            return Some(format!("{id} is outside the saved view and not back"));
        };
        let Some((uuid, seqno)) = position else {
            return Some(format!(
                "{id} is outside the saved view and reported no position"
            ));
        };
        if uuid == ZERO_UUID && seqno == -1 {
            continue; // an empty datadir: it joins by a state transfer
        }
        let same_history = view_positions
            .iter()
            .all(|p| p.as_ref().is_some_and(|(u, _)| *u == uuid));
        let highest = view_positions.iter().flatten().map(|(_, s)| *s).max();
        let behind = same_history && matches!(highest, Some(h) if seqno >= 0 && seqno <= h);
        if !behind {
            return Some(format!(
                "{id} is outside the saved view at {uuid}:{seqno}, not known to be behind it"
            ));
        }
    }
    None
}

/// A member's answer to the election's position call, as the fast path reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    pub position: Position,
    /// Its saved Primary view (gvwstate.dat) as the agent read it, if any.
    pub saved_view: Option<String>,
    pub generation: u64,
}

/// The fast path decided from the agents' own answers to the election's first position
/// call (every member answered, none was running): gossip can lag a reboot by seconds,
/// and the election would then boot a node while pc.recovery could have re-formed the
/// view. Same rules as [`fast_path`]; not taken once this outage already tried it.
pub fn fast_path_from_answers(
    memory: &mut Memory,
    members: &BTreeSet<String>,
    answers: &BTreeMap<String, Answered>,
    core: &[Core<'_>],
    now: Now,
) -> Option<(String, Step)> {
    if memory.fast_path.is_some() || answers.len() != members.len() {
        return None;
    }
    let Outlook::Possible {
        view_id,
        view_seq,
        members: view_members,
        ..
    } = outlook_of(
        answers
            .iter()
            .map(|(id, a)| (id.as_str(), true, a.saved_view.as_deref())),
    )
    else {
        return None;
    };
    let position_of = |id: &str| {
        let answer = answers.get(id)?;
        Some(Some((answer.position.uuid.clone(), answer.position.seqno)))
    };
    if let Some(why) = blocker(members, &view_members, position_of) {
        tracing::info!(%why, "full outage: the fast path is not taken");
        return None;
    }
    let targets: Vec<(String, SocketAddr)> = view_members
        .iter()
        .filter_map(|id| Some((id.clone(), core.iter().find(|c| c.id == id)?.grpc?)))
        .collect();
    if targets.len() != view_members.len() {
        return None;
    }
    let generations = view_members
        .iter()
        .map(|id| {
            let answered = answers[id].generation;
            let gossiped = core.iter().find(|c| c.id == id).map_or(0, |c| c.generation);
            // an agent too old to say answers 0
            (id.clone(), if answered == 0 { gossiped } else { answered })
        })
        .collect();
    let attempt = FastPath {
        view_id,
        view_seq,
        members: view_members,
        generations,
        since: now.at,
        gave_up: None,
    };
    Some(start_fast_path(memory, attempt, "answered", targets))
}

/// Whether Galera's pc.recovery could re-form the last Primary view by itself, from the
/// views the core members gossip (the outage's status and [`fast_path`]). A view that
/// does not parse counts as none.
pub fn pc_recovery_outlook(core: &[Core<'_>]) -> Outlook {
    outlook_of(
        core.iter()
            .map(|c| (c.id, c.live, c.keys.saved_view.as_deref())),
    )
}

/// [`outlook`] over members as (id, live, saved view in its gossip form); a view that
/// does not parse counts as none.
fn outlook_of<'a>(members: impl Iterator<Item = (&'a str, bool, Option<&'a str>)>) -> Outlook {
    let parsed: Vec<(&str, bool, Option<SavedView>)> = members
        .map(|(id, live, raw)| {
            let saved = raw.and_then(|raw| SavedView::from_gossip(raw).ok());
            (id, live, saved)
        })
        .collect();
    let views: Vec<MemberView> = parsed
        .iter()
        .map(|(id, live, saved)| MemberView {
            id,
            live: *live,
            saved: saved.as_ref(),
        })
        .collect();
    outlook(&views)
}

/// With a Primary component: the status, and the member to join if a decision is open.
fn with_primary(
    record: &mut GaleraRecord,
    memory: &Memory,
    core: &[Core<'_>],
    mut synced: Vec<String>,
    now: Now,
) -> (String, Step) {
    synced.sort();
    // record a view only when gossip agrees with itself: every member reports the
    // component size we see (a stale "Primary" of a node that just lost its peers
    // would otherwise shrink the view)
    let consistent = core
        .iter()
        .filter(|c| c.primary)
        .all(|c| c.size == Some(synced.len() as u32));
    if consistent
        && !synced.is_empty()
        && record.last_primary_view != synced
        && record.decision.is_none()
    {
        record.last_primary_view = synced.clone();
    }
    let Some(decision) = record.decision.as_mut() else {
        let mut parts = vec![if synced.is_empty() {
            "Primary component: no member Synced (a state transfer)".to_string()
        } else {
            format!("Primary: {} synced", synced.join(", "))
        }];
        parts.extend(
            core.iter()
                .filter(|c| !c.primary)
                .map(|c| describe_outside(c, core)),
        );
        parts.extend(closed_note(record));
        return (parts.join("; "), Step::Wait);
    };
    decision.phase = Phase::Joining;
    decision.primary_seen = true;
    let waiting: Vec<String> = core
        .iter()
        .filter(|c| !c.primary)
        .map(|c| describe_outside(c, core))
        .collect();
    let status = format!(
        "epoch {}: {} bootstrapped; joining {}",
        decision.epoch,
        decision.node,
        waiting.join(", ")
    );
    let epoch = decision.epoch;
    let step = next_join(core, epoch, memory, now)
        .and_then(|node| {
            let grpc = core.iter().find(|c| c.id == node)?.grpc?;
            Some(Step::Join { node, grpc, epoch })
        })
        .unwrap_or(Step::Wait);
    (status, step)
}

/// With an open decision and no component: bootstrap the chosen node once it is live and
/// no failed bootstrap is waiting out [`BOOTSTRAP_RETRY`].
pub fn bootstrap_step(
    core: &[Core<'_>],
    decision: Decision,
    memory: &Memory,
    now: Now,
) -> (Option<String>, Step) {
    let target = core.iter().find(|c| c.id == decision.node);
    let Some(grpc) = target.filter(|c| c.live).and_then(|c| c.grpc) else {
        let status = format!(
            "epoch {}: waiting for {} (chosen at seqno {}) to come back",
            decision.epoch, decision.node, decision.seqno
        );
        return (Some(status), Step::Wait);
    };
    if memory.retry_pending(now) {
        return (None, Step::Wait);
    }
    let status = format!(
        "epoch {}: bootstrapping {} at {}",
        decision.epoch,
        decision.node,
        Position {
            uuid: decision.uuid.clone(),
            seqno: decision.seqno,
        }
    );
    // the first joiner: the lowest live member other than the chosen one
    let then_join = core
        .iter()
        .filter(|c| c.id != decision.node && c.live && !c.held)
        .min_by_key(|c| c.id)
        .and_then(|c| Some((c.id.to_string(), c.grpc?)));
    (
        Some(status),
        Step::Bootstrap {
            decision,
            grpc,
            then_join,
        },
    )
}

/// The member to ask to join now: [`next_joiner`] (one at a time into the component,
/// lowest id first); when the last joiner has not entered the component within
/// [`JOIN_SETTLE`], the lowest stopped member goes anyway.
fn next_join(core: &[Core<'_>], epoch: u64, memory: &Memory, now: Now) -> Option<String> {
    let galera: Vec<MemberGalera> = core
        .iter()
        .filter(|c| !c.held)
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
    let (last, since) = match &memory.last_join {
        Some((joined_in, last, since)) if *joined_in == epoch => (last, since),
        _ => return None,
    };
    if now.at.saturating_duration_since(*since) < JOIN_SETTLE {
        return None;
    }
    let next = core
        .iter()
        .filter(|c| c.live && !c.held && c.state == GaleraState::Stopped && c.id != last)
        .map(|c| c.id)
        .min()?;
    tracing::warn!(joiner = %last, next, "joiner not in the Primary component after {JOIN_SETTLE:?}; joining the next one anyway");
    Some(next.to_string())
}

/// Closes the open decision once [`finished`] says it has done its work; true when it did.
/// A close with every core member Synced also records them as the last Primary view.
pub fn close_if_finished(
    record: &mut GaleraRecord,
    core: &[Core<'_>],
    synced: &[String],
    component: &[String],
    now: Now,
) -> bool {
    let Some(decision) = &record.decision else {
        return false;
    };
    let ids: Vec<&str> = core.iter().map(|c| c.id).collect();
    let Some(how) = finished(decision, &ids, synced, component) else {
        return false;
    };
    close(record, how, now);
    if !synced.is_empty() && synced.len() == ids.len() {
        let mut view = synced.to_vec();
        view.sort();
        record.last_primary_view = view;
    }
    true
}

/// Takes the open decision off the record and keeps it as `last_closed` with `how` it
/// ended.
pub fn close(record: &mut GaleraRecord, how: String, now: Now) {
    let Some(decision) = record.decision.take() else {
        return;
    };
    tracing::info!(epoch = decision.epoch, node = %decision.node, %how, "galera decision closed");
    record.last_closed = Some(Closed {
        epoch: decision.epoch,
        node: decision.node,
        closed_at: now.unix_ms / 1000,
        how,
    });
}

/// A new decision for `node` at `position`, with the next epoch, put on the record.
pub fn decide(
    record: &mut GaleraRecord,
    node: String,
    position: Position,
    formation: bool,
    operator: bool,
    members: &BTreeSet<String>,
    now: Now,
) -> Decision {
    let decision = Decision {
        epoch: record.last_epoch + 1,
        node,
        uuid: position.uuid,
        seqno: position.seqno,
        formation,
        operator,
        phase: Phase::Bootstrapping,
        members: members.iter().cloned().collect(),
        decided_at: now.unix_ms / 1000,
        primary_seen: false,
    };
    record.last_epoch = decision.epoch;
    record.decision = Some(decision.clone());
    decision
}

/// Whose positions an election waits for: the last Primary view seen in gossip, and
/// always every configured `[galera] nodes` member — gossip can be forged, and a forged
/// small "Primary" must not shrink the election to a node that is behind.
pub fn members_for_election(
    record: &GaleraRecord,
    settings: &RecoverySettings,
    core: &[Core<'_>],
) -> BTreeSet<String> {
    if !record.last_primary_view.is_empty() {
        let mut members: BTreeSet<String> = record.last_primary_view.iter().cloned().collect();
        members.extend(settings.expected_nodes.iter().cloned());
        return members;
    }
    if !settings.expected_nodes.is_empty() {
        return settings.expected_nodes.iter().cloned().collect();
    }
    core.iter().map(|c| c.id.to_string()).collect()
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

/// The last closed decision, for the status line: "last recovery: epoch 4 (n1) closed at
/// 2026-12-04T20:41:03Z: …" (a time, not an age, so the line does not change every pass).
pub fn closed_note(record: &GaleraRecord) -> Option<String> {
    let closed = record.last_closed.as_ref()?;
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
pub fn describe_open(decision: &Decision, now: Now) -> String {
    let ago = if decision.decided_at == 0 {
        String::new()
    } else {
        format!(
            " {}s ago",
            (now.unix_ms / 1000).saturating_sub(decision.decided_at)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(state: GaleraState, primary: bool, size: u32) -> GaleraKeys {
        GaleraKeys {
            state,
            cluster_status: primary.then(|| "Primary".to_string()),
            size: primary.then_some(size),
            uuid: Some("u".into()),
            seqno: Some(7),
            safe_to_bootstrap: None,
            ..GaleraKeys::default()
        }
    }

    fn grpc(id: &str) -> SocketAddr {
        let n: u16 = id[1..].parse().unwrap();
        SocketAddr::from(([127, 0, 0, 1], 7000 + n))
    }

    /// The core members from (id, live, keys).
    fn cores<'a>(members: &'a [(&'a str, bool, GaleraKeys)]) -> Vec<Core<'a>> {
        members
            .iter()
            .map(|(id, live, keys)| core_of(id, *live, Some(grpc(id)), keys))
            .collect()
    }

    fn settings(expected: &[&str]) -> RecoverySettings {
        RecoverySettings {
            state_dir: "/nonexistent".into(),
            grace: Duration::from_secs(3),
            tick: Duration::from_millis(500),
            expected_nodes: expected.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn decision(node: &str, phase: Phase) -> Decision {
        Decision {
            epoch: 4,
            node: node.into(),
            uuid: "u".into(),
            seqno: 7,
            formation: false,
            operator: false,
            phase,
            members: vec!["n1".into(), "n2".into(), "n3".into()],
            decided_at: 0,
            primary_seen: false,
        }
    }

    #[test]
    fn the_outage_status_says_whether_galera_could_re_form_the_saved_view() {
        let uuid = |n: u8| format!("b6f3ff34-f202-11f1-baf6-3a9e48dd48{n:02x}");
        let all = format!("{},{},{}", uuid(1), uuid(2), uuid(3));
        let saved = |n: u8, seq: u32, members: &str| GaleraKeys {
            saved_view: Some(format!("{} {}:{seq} {members}", uuid(n), uuid(1))),
            ..keys(GaleraState::Stopped, false, 0)
        };
        let crashed = [
            ("n1", true, saved(1, 3, &all)),
            ("n2", true, saved(2, 3, &all)),
            ("n3", true, saved(3, 3, &all)),
        ];
        assert_eq!(
            pc_recovery_outlook(&cores(&crashed)).to_string(),
            "pc.recovery can re-form view 3 (n1, n2, n3)"
        );
        let n3_dead = [
            crashed[0].clone(),
            crashed[1].clone(),
            ("n3", false, crashed[2].2.clone()),
        ];
        assert_eq!(
            pc_recovery_outlook(&cores(&n3_dead)).to_string(),
            "pc.recovery cannot: member(s) of the saved view not back: n3"
        );
        let later = format!("{},{}", uuid(2), uuid(3));
        let staggered = [
            crashed[0].clone(),
            ("n2", true, saved(2, 4, &later)),
            ("n3", true, saved(3, 4, &later)),
        ];
        let plan = plan(
            &GaleraRecord::default(),
            &Memory::default(),
            &cores(&staggered),
            &settings(&[]),
            Now::current(),
        );
        assert_eq!(
            plan.status.as_deref(),
            Some(
                "no Primary component for 0.0s (grace 3s); pc.recovery cannot: saved views \
                 differ (n1 view 3, n2 view 4, n3 view 4)"
            )
        );
    }

    /// Keys of a crashed member that saved `members` (node numbers) as view `seq`.
    fn crashed(n: u8, seq: u32, members: &[u8], seqno: i64) -> GaleraKeys {
        let uuid = |n: u8| format!("b6f3ff34-f202-11f1-baf6-3a9e48dd48{n:02x}");
        let members: Vec<String> = members.iter().map(|m| uuid(*m)).collect();
        GaleraKeys {
            saved_view: Some(format!(
                "{} {}:{seq} {}",
                uuid(n),
                uuid(1),
                members.join(",")
            )),
            seqno: Some(seqno),
            ..keys(GaleraState::Stopped, false, 0)
        }
    }

    #[test]
    fn the_fast_path_starts_every_member_then_holds_the_election_until_its_bound() {
        let back = [
            ("n1", true, crashed(1, 3, &[1, 2, 3], 7)),
            ("n2", true, crashed(2, 3, &[1, 2, 3], 7)),
            ("n3", true, crashed(3, 3, &[1, 2, 3], 6)),
        ];
        let core = cores(&back);
        let record = GaleraRecord {
            last_primary_view: vec!["n1".into(), "n2".into(), "n3".into()],
            ..GaleraRecord::default()
        };
        let t0 = Now::current();
        let first = plan(
            &record,
            &Memory::default(),
            &core,
            &settings(&["n1", "n2", "n3"]),
            t0,
        );
        let view = "b6f3ff34-f202-11f1-baf6-3a9e48dd4801:3".to_string();
        assert_eq!(
            first.step,
            Step::Reform {
                view: view.clone(),
                members: ["n1", "n2", "n3"]
                    .map(|n| (n.to_string(), grpc(n)))
                    .to_vec(),
            },
            "no grace: a start cannot form a second component"
        );
        assert_eq!(first.record, record, "the fast path persists nothing");
        let fast = first.memory.fast_path.clone().unwrap();
        assert_eq!((fast.view_id, fast.gave_up), (view, None));
        // the mysqlds started and wait for each other: no election meanwhile
        let waiting = [
            (
                "n1",
                true,
                GaleraKeys {
                    state: GaleraState::Joining,
                    ..crashed(1, 3, &[1, 2, 3], 7)
                },
            ),
            (
                "n2",
                true,
                GaleraKeys {
                    state: GaleraState::Joining,
                    ..crashed(2, 3, &[1, 2, 3], 7)
                },
            ),
            ("n3", true, crashed(3, 3, &[1, 2, 3], 6)),
        ];
        let settings = settings(&["n1", "n2", "n3"]);
        let mid = plan(
            &record,
            &first.memory,
            &cores(&waiting),
            &settings,
            t0.later(Duration::from_secs(5)),
        );
        assert_eq!(mid.step, Step::Wait);
        assert_eq!(
            mid.status.as_deref(),
            Some(
                "full outage: Galera's pc.recovery re-forming view 3 (n1, n2, n3) for 5.0s (up \
                 to 10s); no election meanwhile"
            )
        );
        // past the bound the election takes over for the rest of the outage
        let over = plan(
            &record,
            &mid.memory,
            &cores(&waiting),
            &settings,
            t0.later(FAST_PATH_LIMIT),
        );
        assert!(matches!(over.step, Step::Elect { .. }), "{:?}", over.step);
        assert_eq!(
            outage_note(&over.memory, &cores(&waiting)),
            "fast path given up: pc.recovery did not re-form view 3 within 10s"
        );
        let again = plan(
            &record,
            &over.memory,
            &core,
            &settings,
            t0.later(FAST_PATH_LIMIT * 2),
        );
        assert!(
            matches!(again.step, Step::Elect { .. }),
            "not retried: {:?}",
            again.step
        );
        // ... unless the nodes went down again and came back (new incarnations): the
        // lab's bench crashed them again before gossip showed the re-formed component
        let mut rebooted = cores(&back);
        for member in &mut rebooted {
            member.generation += 1;
        }
        let fresh = plan(
            &record,
            &over.memory,
            &rebooted,
            &settings,
            t0.later(FAST_PATH_LIMIT * 2),
        );
        assert!(
            matches!(fresh.step, Step::Reform { .. }),
            "{:?}",
            fresh.step
        );
        let mid_rebooted = plan(
            &record,
            &first.memory,
            &rebooted,
            &settings,
            t0.later(Duration::from_secs(5)),
        );
        assert!(
            matches!(mid_rebooted.step, Step::Reform { .. }),
            "{:?}",
            mid_rebooted.step
        );
        // a Primary component ends the outage and forgets the fast path
        let formed = [
            ("n1", true, keys(GaleraState::Synced, true, 3)),
            ("n2", true, keys(GaleraState::Synced, true, 3)),
            ("n3", true, keys(GaleraState::Synced, true, 3)),
        ];
        let done = plan(
            &record,
            &mid.memory,
            &cores(&formed),
            &settings,
            t0.later(Duration::from_secs(6)),
        );
        assert_eq!(done.memory.fast_path, None);
    }

    #[test]
    fn the_fast_path_is_not_taken_past_a_member_it_cannot_vouch_for() {
        let settings = settings(&["n1", "n2", "n3", "n4"]);
        let t0 = Now::current();
        let past_grace = Memory {
            outage_since: Some(t0.at),
            ..Memory::default()
        };
        let now = t0.later(Duration::from_secs(3));
        let with_n4 = |n4: Option<GaleraKeys>| {
            let mut members = vec![
                ("n1", true, crashed(1, 3, &[1, 2, 3], 7)),
                ("n2", true, crashed(2, 3, &[1, 2, 3], 7)),
                ("n3", true, crashed(3, 3, &[1, 2, 3], 7)),
            ];
            if let Some(keys) = n4 {
                members.push(("n4", true, keys));
            }
            members
        };
        let step = |members: &[(&str, bool, GaleraKeys)]| {
            plan(
                &GaleraRecord::default(),
                &past_grace,
                &cores(members),
                &settings,
                now,
            )
            .step
        };
        // n4 (a configured member) away: its position is unknown, the election waits for it
        assert!(matches!(step(&with_n4(None)), Step::Elect { .. }));
        let n4_at = |uuid: &str, seqno: i64| GaleraKeys {
            uuid: Some(uuid.into()),
            seqno: Some(seqno),
            ..keys(GaleraState::Stopped, false, 0)
        };
        // behind the view's members, or an empty datadir: it joins after the re-form
        assert!(matches!(
            step(&with_n4(Some(n4_at("u", 6)))),
            Step::Reform { .. }
        ));
        assert!(matches!(
            step(&with_n4(Some(n4_at(ZERO_UUID, -1)))),
            Step::Reform { .. }
        ));
        // ahead of them (a Primary the saved view does not know of), or another history
        assert!(matches!(
            step(&with_n4(Some(n4_at("u", 8)))),
            Step::Elect { .. }
        ));
        assert!(matches!(
            step(&with_n4(Some(n4_at("other", 1)))),
            Step::Elect { .. }
        ));
        let members: BTreeSet<String> = ["n1", "n2", "n3", "n4"].map(String::from).into();
        let ahead = with_n4(Some(n4_at("u", 8)));
        assert_eq!(
            fast_path_blocker(
                &members,
                &["n1".into(), "n2".into(), "n3".into()],
                &cores(&ahead)
            ),
            Some("n4 is outside the saved view at u:8, not known to be behind it".into())
        );
        // a member of the view still running (not crashed): the election's way
        let running = [
            (
                "n1",
                true,
                GaleraKeys {
                    state: GaleraState::PrimaryLost,
                    ..crashed(1, 3, &[1, 2, 3], 7)
                },
            ),
            ("n2", true, crashed(2, 3, &[1, 2, 3], 7)),
            ("n3", true, crashed(3, 3, &[1, 2, 3], 7)),
        ];
        assert!(matches!(step(&running), Step::Elect { .. }));
    }

    #[test]
    fn the_fast_path_is_also_taken_from_the_agents_answers_when_gossip_lags() {
        let saved = |n: u8, seq: u32| crashed(n, seq, &[1, 2, 3], 7).saved_view;
        let answer = |n: u8, seq: u32, seqno: i64| Answered {
            position: Position {
                uuid: "u".into(),
                seqno,
            },
            saved_view: saved(n, seq),
            generation: 100 + n as u64,
        };
        // gossip still shows the old incarnations (running, from before the cut)
        let stale = [
            ("n1", true, keys(GaleraState::Joining, false, 0)),
            ("n2", true, keys(GaleraState::Joining, false, 0)),
            ("n3", true, keys(GaleraState::Joining, false, 0)),
        ];
        let core = cores(&stale);
        let members: BTreeSet<String> = ["n1", "n2", "n3"].map(String::from).into();
        let answers: BTreeMap<String, Answered> = [
            ("n1".to_string(), answer(1, 3, 7)),
            ("n2".to_string(), answer(2, 3, 7)),
            ("n3".to_string(), answer(3, 3, 6)),
        ]
        .into();
        let now = Now::current();
        let mut memory = Memory::default();
        let (status, step) =
            fast_path_from_answers(&mut memory, &members, &answers, &core, now).unwrap();
        assert!(
            status.contains("every member of Primary view 3 answered with it saved"),
            "{status}"
        );
        assert!(matches!(step, Step::Reform { ref members, .. } if members.len() == 3));
        let fast = memory.fast_path.clone().unwrap();
        assert_eq!(
            fast.generations,
            vec![("n1".into(), 101), ("n2".into(), 102), ("n3".into(), 103)],
            "the incarnations that answered, not gossip's"
        );
        // gossip catching up with those incarnations, running now, does not reset it
        let caught_up: Vec<Core<'_>> = cores(&stale)
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                c.generation = 101 + i as u64;
                c
            })
            .collect();
        let mut held = memory.clone();
        assert_eq!(
            fast_path(
                &mut held,
                &members,
                &caught_up,
                now.later(Duration::from_secs(2))
            )
            .map(|(_, s)| s),
            Some(Step::Wait)
        );
        // once per outage
        assert_eq!(
            fast_path_from_answers(&mut memory, &members, &answers, &core, now),
            None
        );
        // views unequal, an answer missing, or a member outside the view ahead: the election
        let mut unequal = answers.clone();
        unequal.insert("n1".into(), answer(1, 2, 7));
        let mut missing = answers.clone();
        missing.remove("n3");
        for (what, answers, members) in [
            ("views unequal", &unequal, members.clone()),
            ("an answer missing", &missing, members.clone()),
        ] {
            let mut memory = Memory::default();
            assert_eq!(
                fast_path_from_answers(&mut memory, &members, answers, &core, now),
                None,
                "{what}"
            );
        }
        let mut with_n4 = answers.clone();
        with_n4.insert(
            "n4".into(),
            Answered {
                position: Position {
                    uuid: "u".into(),
                    seqno: 9,
                },
                saved_view: None,
                generation: 104,
            },
        );
        let four: BTreeSet<String> = ["n1", "n2", "n3", "n4"].map(String::from).into();
        assert_eq!(
            fast_path_from_answers(&mut Memory::default(), &four, &with_n4, &core, now),
            None,
            "n4 answered seqno 9, ahead of the view's members"
        );
    }

    #[test]
    fn an_outage_waits_a_bound_for_a_live_member_s_first_galera_report() {
        let t0 = Now::current();
        let past_grace = Memory {
            outage_since: Some(t0.at),
            ..Memory::default()
        };
        let members = [
            ("n1", true, crashed(1, 3, &[1, 2, 3], 7)),
            ("n2", true, crashed(2, 3, &[1, 2, 3], 7)),
            ("n3", true, GaleraKeys::default()),
        ];
        let settings = settings(&[]);
        let now = t0.later(Duration::from_secs(3));
        let first = plan(
            &GaleraRecord::default(),
            &past_grace,
            &cores(&members),
            &settings,
            now,
        );
        assert_eq!(first.step, Step::Wait);
        assert_eq!(
            first.status.as_deref(),
            Some("full outage: waiting for the first Galera report of n3 (up to 10s) before electing")
        );
        let later = plan(
            &GaleraRecord::default(),
            &first.memory,
            &cores(&members),
            &settings,
            now.later(FIRST_REPORT_WAIT),
        );
        assert!(matches!(later.step, Step::Elect { .. }), "{:?}", later.step);
    }

    #[test]
    fn an_outage_waits_out_the_grace_then_elects_the_last_view_and_the_configured_nodes() {
        let down = [
            ("n1", true, keys(GaleraState::Stopped, false, 0)),
            ("n2", true, keys(GaleraState::Stopped, false, 0)),
            ("n3", false, keys(GaleraState::Stopped, false, 0)),
        ];
        let core = cores(&down);
        let record = GaleraRecord {
            last_primary_view: vec!["n1".into(), "n2".into()],
            ..GaleraRecord::default()
        };
        let settings = settings(&["n3"]);
        let t0 = Now::current();
        let first = plan(&record, &Memory::default(), &core, &settings, t0);
        assert_eq!(first.step, Step::Wait);
        assert_eq!(first.memory.outage_since, Some(t0.at));
        assert_eq!(
            first.status.as_deref(),
            Some(
                "no Primary component for 0.0s (grace 3s); pc.recovery cannot: no node saved \
                 a Primary view"
            )
        );
        let later = plan(
            &record,
            &first.memory,
            &core,
            &settings,
            t0.later(Duration::from_secs(3)),
        );
        let members = ["n1", "n2", "n3"].map(String::from).into();
        assert_eq!(later.step, Step::Elect { members });
        assert_eq!(
            later.record, record,
            "an election changes nothing before it decides"
        );
    }

    #[test]
    fn a_decided_node_is_bootstrapped_once_live_and_not_again_within_the_retry() {
        let record = GaleraRecord {
            last_epoch: 4,
            decision: Some(decision("n2", Phase::Bootstrapping)),
            ..GaleraRecord::default()
        };
        let now = Now::current();
        let away = [
            ("n1", true, keys(GaleraState::Stopped, false, 0)),
            ("n2", false, keys(GaleraState::Stopped, false, 0)),
        ];
        let waiting = plan(
            &record,
            &Memory::default(),
            &cores(&away),
            &settings(&[]),
            now,
        );
        assert_eq!(waiting.step, Step::Wait);
        assert_eq!(
            waiting.status.as_deref(),
            Some("epoch 4: waiting for n2 (chosen at seqno 7) to come back")
        );
        let back = [
            ("n1", true, keys(GaleraState::Stopped, false, 0)),
            ("n2", true, keys(GaleraState::Stopped, false, 0)),
            ("n3", true, keys(GaleraState::Stopped, false, 0)),
        ];
        let go = plan(
            &record,
            &Memory::default(),
            &cores(&back),
            &settings(&[]),
            now,
        );
        assert_eq!(
            go.step,
            Step::Bootstrap {
                decision: decision("n2", Phase::Bootstrapping),
                grpc: grpc("n2"),
                then_join: Some(("n1".into(), grpc("n1"))),
            }
        );
        let failed = Memory {
            last_bootstrap_failure: Some(now.at),
            ..Memory::default()
        };
        let soon = now.later(BOOTSTRAP_RETRY / 2);
        let held = plan(&record, &failed, &cores(&back), &settings(&[]), soon);
        assert_eq!((held.step, held.status), (Step::Wait, None));
        let retry = now.later(BOOTSTRAP_RETRY);
        let again = plan(&record, &failed, &cores(&back), &settings(&[]), retry);
        assert!(
            matches!(again.step, Step::Bootstrap { .. }),
            "{:?}",
            again.step
        );
    }

    #[test]
    fn after_a_bootstrap_the_others_join_one_at_a_time_and_a_stuck_joiner_is_waited_for_a_bound() {
        let record = GaleraRecord {
            last_epoch: 4,
            decision: Some(decision("n1", Phase::Bootstrapping)),
            ..GaleraRecord::default()
        };
        let now = Now::current();
        let bootstrapped = [
            ("n1", true, keys(GaleraState::Synced, true, 1)),
            ("n2", true, keys(GaleraState::Stopped, false, 0)),
            ("n3", true, keys(GaleraState::Stopped, false, 0)),
        ];
        let first = plan(
            &record,
            &Memory::default(),
            &cores(&bootstrapped),
            &settings(&[]),
            now,
        );
        let open = first.record.decision.clone().unwrap();
        assert_eq!((open.phase, open.primary_seen), (Phase::Joining, true));
        assert_eq!(
            first.step,
            Step::Join {
                node: "n2".into(),
                grpc: grpc("n2"),
                epoch: 4
            }
        );
        // n2 connecting: nobody else goes until it is inside or JOIN_SETTLE passed
        let connecting = [
            ("n1", true, keys(GaleraState::Synced, true, 1)),
            ("n2", true, keys(GaleraState::Joining, false, 0)),
            ("n3", true, keys(GaleraState::Stopped, false, 0)),
        ];
        let joined = Memory {
            last_join: Some((4, "n2".into(), now.at)),
            ..Memory::default()
        };
        let held = plan(
            &first.record,
            &joined,
            &cores(&connecting),
            &settings(&[]),
            now,
        );
        assert_eq!(held.step, Step::Wait);
        let settled = now.later(JOIN_SETTLE);
        let next = plan(
            &first.record,
            &joined,
            &cores(&connecting),
            &settings(&[]),
            settled,
        );
        assert!(
            matches!(&next.step, Step::Join { node, .. } if node == "n3"),
            "{:?}",
            next.step
        );
        // a join remembered from an earlier epoch does not end the wait
        let stale = Memory {
            last_join: Some((3, "n2".into(), now.at)),
            ..Memory::default()
        };
        let old = plan(
            &first.record,
            &stale,
            &cores(&connecting),
            &settings(&[]),
            settled,
        );
        assert_eq!(old.step, Step::Wait);
    }

    #[test]
    fn every_member_synced_closes_the_decision_and_records_the_view() {
        let mut open = decision("n1", Phase::Joining);
        open.primary_seen = true;
        let record = GaleraRecord {
            last_epoch: 4,
            decision: Some(open),
            ..GaleraRecord::default()
        };
        let memory = Memory {
            last_join: Some((4, "n3".into(), Now::current().at)),
            ..Memory::default()
        };
        let synced = [
            ("n1", true, keys(GaleraState::Synced, true, 3)),
            ("n2", true, keys(GaleraState::Synced, true, 3)),
            ("n3", true, keys(GaleraState::Synced, true, 3)),
        ];
        let now = Now::current();
        let done = plan(&record, &memory, &cores(&synced), &settings(&[]), now);
        assert_eq!(done.record.decision, None);
        assert_eq!(done.record.last_primary_view, vec!["n1", "n2", "n3"]);
        let closed = done.record.last_closed.clone().unwrap();
        assert_eq!((closed.epoch, closed.closed_at), (4, now.unix_ms / 1000));
        assert_eq!(done.memory.last_join, None);
        assert_eq!(done.step, Step::Wait);
        assert!(done
            .status
            .unwrap()
            .starts_with("Primary: n1, n2, n3 synced; last recovery: epoch 4 (n1)"));
    }
}
