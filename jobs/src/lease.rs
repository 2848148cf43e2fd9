//! The fenced lease that lets one node at a time run a job.
//!
//! The coordinator grants each job's lease to one ready node; only the holder starts runs.
//! Two runs of one job must never overlap, also under partitions, message delays and drops,
//! coordinator restarts and wall-clock steps. The protocol, per job:
//!
//! 1. The coordinator persists `Lease { node, epoch }` ([`plan`] says `Grant` with an epoch
//!    above every persisted one), then sends an [`Offer`] `(epoch, serial)` ([`JobLease::offer`]);
//!    renewals are further offers of the same epoch.
//! 2. The agent records when it *received* the offer on its monotonic clock and answers an
//!    [`Ack`] ([`HolderLease::accept`]; an epoch below one it has seen is refused).
//! 3. The coordinator, on the ack of its current lease, records when it *received* it and
//!    answers a [`Confirm`] ([`JobLease::on_ack`]). Only now does the agent's deadline move:
//!    `offer received + length` ([`HolderLease::confirm`]).
//!
//! Why the deadlines are safe: the agent received the offer before it sent the ack, and the
//! coordinator received the ack after that, so the agent's deadline starts earlier than the
//! coordinator's expiry `ack received + length + margin`. The margin covers the two
//! monotonic clocks' rates (NTP slews at most 500 ppm each; [`LeaseParams::new`] requires
//! `margin >= length / 999`). The confirm step is what makes arbitrary message delays
//! harmless: an offer delivered late (after a partition healed, to a node that holds
//! nothing) is acked, but the coordinator confirms only acks of the lease it currently has
//! persisted, so a stale offer never becomes a deadline; without the confirm, an agent
//! counting from an old grant's receipt could hold it past the coordinator's expiry.
//! Messages are delivered at most once (gRPC over one connection; a re-offer has a new
//! serial).
//!
//! A run is started only if its timeout ends before the holder's deadline
//! ([`HolderLease::may_start_run`]); the timeout is systemd's (`RuntimeMaxSec` on the run's
//! unit, on the same monotonic clock), so a run outlives neither a partitioned holder's
//! lease nor a dead agent. A job's timeout must therefore fit in a lease less one renewal
//! period ([`LeaseParams::check_timeout`]); long jobs take a long lease, and fail over
//! after it.
//!
//! The coordinator gives the lease to another node only once its expiry has passed: the
//! holder died, is not ready, or stopped acknowledging. A coordinator that starts with a
//! persisted, unreleased lease knows nothing of that lease's acks, so it counts the expiry
//! from its own start: `started + length + margin` on its monotonic clock. It never reads a
//! wall clock, so wall-clock steps cannot shorten a wait; wall time is only persisted for
//! `triadctl status` (`Lease::granted_at`). After a restart it grants a fresh epoch even to
//! the same holder (at once if that holder is live and ready), so the epochs of different
//! coordinator processes never share offers and a confirm from before the restart cannot
//! match an offer after it. A holder that gives the lease back (no run going) reports a
//! release, after which the lease is known expired and is granted again at once.
//!
//! Times are [`Mono`]: a duration since an origin of the caller's monotonic clock (the
//! coordinator's process start, the agent's boot), so tests are tables of numbers. The
//! coordinator's and each agent's `Mono` values are never compared with each other.

use std::fmt;
use std::ops::Add;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// A point on one process's monotonic clock, as the duration since that clock's origin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mono(pub Duration);

impl Mono {
    pub const ZERO: Mono = Mono(Duration::ZERO);

    pub const fn from_millis(millis: u64) -> Mono {
        Mono(Duration::from_millis(millis))
    }

    pub const fn from_secs(secs: u64) -> Mono {
        Mono(Duration::from_secs(secs))
    }
}

impl Add<Duration> for Mono {
    type Output = Mono;

    /// Saturating: a deadline past the end of time is "never".
    fn add(self, rhs: Duration) -> Mono {
        Mono(self.0.checked_add(rhs).unwrap_or(Duration::MAX))
    }
}

/// A lease's fencing number: every grant of one job has a greater epoch than any before it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl Epoch {
    pub fn next(self) -> Epoch {
        debug_assert!(self.0 < u64::MAX, "epoch space exhausted");
        Epoch(self.0.saturating_add(1))
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A node's id, as in the cluster config.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub String);

impl From<&str> for NodeId {
    fn from(id: &str) -> NodeId {
        NodeId(id.to_owned())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The largest rate error of a monotonic clock the margin must cover (NTP's slew limit).
pub const MAX_DRIFT_PPM: u32 = 500;

/// Time a holder keeps for starting a run (systemd-run's bound) on top of the job's timeout:
/// a run starts only if `timeout + START_ALLOWANCE` ends before the holder's deadline.
pub const START_ALLOWANCE: Duration = Duration::from_secs(5);

/// How often the coordinator renews a job's lease (two gRPC calls each: offer, confirm).
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// The default lease beyond `timeout + RENEW_EVERY + START_ALLOWANCE`: room for the
/// renewals' round trips, so a holder whose renewals flow can always start a run.
pub const LEASE_SLACK: Duration = Duration::from_secs(5);

/// A lease's timing, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseParams {
    length: Duration,
    margin: Duration,
    renew_every: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("a lease length of {length:?} is too short: at least 1s")]
    TooShort { length: Duration },
    #[error(
        "a drift margin of {margin:?} is below {required:?}, the most two clocks drifting {MAX_DRIFT_PPM} ppm each can differ over a {length:?} lease"
    )]
    MarginTooSmall {
        margin: Duration,
        required: Duration,
        length: Duration,
    },
    #[error(
        "renewing every {renew_every:?} is too rare for a {length:?} lease: renew at least twice per lease length"
    )]
    RenewTooRare {
        renew_every: Duration,
        length: Duration,
    },
    #[error(
        "a lease of {length:?} is too short for a {timeout:?} timeout: at least {needed:?} (the timeout, one renewal period and the {START_ALLOWANCE:?} a start may take, plus 1s)"
    )]
    LeaseTooShortForTimeout {
        timeout: Duration,
        length: Duration,
        needed: Duration,
    },
    #[error("renewing every {renew_every:?} is too often: at least 100ms")]
    RenewTooOften { renew_every: Duration },
    #[error(
        "a job timeout of {timeout:?} does not fit in a {length:?} lease renewed every {renew_every:?}: make the timeout at most {max:?} or the lease longer"
    )]
    TimeoutTooLong {
        timeout: Duration,
        length: Duration,
        renew_every: Duration,
        max: Duration,
    },
}

impl LeaseParams {
    /// `length`: how long a confirmed offer lets the holder start runs; `margin`: added to
    /// the coordinator's expiry for clock rates; `renew_every`: the renewal period.
    pub fn new(
        length: Duration,
        margin: Duration,
        renew_every: Duration,
    ) -> Result<LeaseParams, LeaseError> {
        if length < Duration::from_secs(1) {
            return Err(LeaseError::TooShort { length });
        }
        // 2ρ/(1-ρ) at ρ = 500 ppm is just over 1/1000; 1/999 covers it.
        let required = length / 999;
        if margin < required {
            return Err(LeaseError::MarginTooSmall {
                margin,
                required,
                length,
            });
        }
        if renew_every < Duration::from_millis(100) {
            return Err(LeaseError::RenewTooOften { renew_every });
        }
        if renew_every.saturating_mul(2) > length {
            return Err(LeaseError::RenewTooRare {
                renew_every,
                length,
            });
        }
        Ok(LeaseParams {
            length,
            margin,
            renew_every,
        })
    }

    pub fn length(&self) -> Duration {
        self.length
    }

    pub fn margin(&self) -> Duration {
        self.margin
    }

    pub fn renew_every(&self) -> Duration {
        self.renew_every
    }

    /// The timing of a job whose runs last at most `timeout`: `lease` when given (it must
    /// leave `timeout` startable between renewals), else `timeout + RENEW_EVERY +
    /// START_ALLOWANCE + LEASE_SLACK`; renewed every [`RENEW_EVERY`]; the margin covers
    /// [`MAX_DRIFT_PPM`] with at least 500 ms to spare. A holder's death costs a lease.
    pub fn for_job(timeout: Duration, lease: Option<Duration>) -> Result<LeaseParams, LeaseError> {
        // a run of `timeout` startable right after a renewal's confirm
        let startable = timeout
            .saturating_add(RENEW_EVERY)
            .saturating_add(START_ALLOWANCE);
        let needed = startable.saturating_add(Duration::from_secs(1));
        let length = match lease {
            Some(length) if length < needed => {
                return Err(LeaseError::LeaseTooShortForTimeout {
                    timeout,
                    length,
                    needed,
                })
            }
            Some(length) => length,
            None => startable.saturating_add(LEASE_SLACK),
        };
        let margin = (length / 999 + Duration::from_millis(1)).max(Duration::from_millis(500));
        let params = LeaseParams::new(length, margin, RENEW_EVERY)?;
        params.check_timeout(timeout)?;
        Ok(params)
    }

    /// A job's timeout must leave a run startable while renewals flow: at most the lease
    /// length less one renewal period.
    pub fn check_timeout(&self, timeout: Duration) -> Result<(), LeaseError> {
        let max = self.length.saturating_sub(self.renew_every);
        if timeout > max {
            return Err(LeaseError::TimeoutTooLong {
                timeout,
                length: self.length,
                renew_every: self.renew_every,
                max,
            });
        }
        Ok(())
    }

    /// The coordinator's expiry for a lease whose last ack it received at `acked_at`.
    pub fn expiry(&self, acked_at: Mono) -> Mono {
        acked_at + self.length + self.margin
    }
}

/// The persisted record of a job's lease, written (durably) before any offer is sent. It is
/// replaced, never deleted, so its epoch is the highest ever granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub node: NodeId,
    pub epoch: Epoch,
    /// The holder gave it back: known expired.
    pub released: bool,
    /// Wall-clock time of the grant, for status only; no decision reads it.
    pub granted_at: SystemTime,
}

/// Coordinator → holder: the lease `epoch`, offered (granted or renewed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub epoch: Epoch,
    pub serial: u64,
}

/// Holder → coordinator: the offer arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub epoch: Epoch,
    pub serial: u64,
}

/// Coordinator → holder: the ack arrived while the offer's lease was current; the holder
/// may count `length` from the offer's receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirm {
    pub epoch: Epoch,
    pub serial: u64,
}

/// A node as the coordinator sees it (gossip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub node: NodeId,
    pub live: bool,
    pub ready: bool,
}

impl Candidate {
    fn eligible(&self) -> bool {
        self.live && self.ready
    }
}

/// What the coordinator does next for a job's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Persist `Lease { node, epoch }`, then offer it.
    Grant { node: NodeId, epoch: Epoch },
    /// Offer the current lease again (a renewal, or a grant not yet acknowledged).
    Renew { node: NodeId, epoch: Epoch },
    /// Nothing before `until`.
    Wait { until: Mono, reason: WaitReason },
    /// Nothing until the view changes: no node is live and ready.
    Hold,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    /// The holder is fine; its next renewal is due at `until`.
    Renewal,
    /// The holder (dead, not ready or silent) may hold the lease until `until`.
    HolderExpiring { holder: NodeId },
    /// The lease persisted before this coordinator started may be held until `until`.
    CoordinatorStarted { holder: NodeId },
}

/// What this coordinator process knows of a job's lease beyond the persisted record: the
/// offers it made and the acks it received. Lost on restart, which [`plan`] accounts for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobLease {
    offered: Option<Offered>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offered {
    epoch: Epoch,
    first_offer_at: Mono,
    last_serial: u64,
    acked_at: Option<Mono>,
}

impl JobLease {
    /// The offer to send for `epoch`, after a `Grant` was persisted or for a `Renew`.
    pub fn offer(&mut self, epoch: Epoch, now: Mono) -> Offer {
        let offered = match self.offered {
            Some(mut offered) if offered.epoch == epoch => {
                offered.last_serial += 1;
                offered
            }
            _ => Offered {
                epoch,
                first_offer_at: now,
                last_serial: 1,
                acked_at: None,
            },
        };
        self.offered = Some(offered);
        Offer {
            epoch,
            serial: offered.last_serial,
        }
    }

    /// An ack from `from`, received at `now`: the confirm to send back, only for an offer
    /// this process made of the lease persisted now. Record before confirming.
    pub fn on_ack(
        &mut self,
        persisted: Option<&Lease>,
        from: &NodeId,
        ack: Ack,
        now: Mono,
    ) -> Option<Confirm> {
        let lease = persisted?;
        let offered = self.offered.as_mut()?;
        let current = !lease.released
            && lease.node == *from
            && lease.epoch == ack.epoch
            && offered.epoch == ack.epoch
            && (1..=offered.last_serial).contains(&ack.serial);
        if !current {
            return None;
        }
        offered.acked_at = Some(offered.acked_at.map_or(now, |at| at.max(now)));
        Some(Confirm {
            epoch: ack.epoch,
            serial: ack.serial,
        })
    }

    /// The coordinator's expiry of the lease it offered as `epoch`, if it offered it.
    pub fn expiry(&self, params: &LeaseParams, epoch: Epoch) -> Option<Mono> {
        let offered = self.offered.filter(|offered| offered.epoch == epoch)?;
        offered.acked_at.map(|at| params.expiry(at))
    }
}

/// The next step for a job's lease. `persisted`: the record on disk; `view`: the nodes as
/// gossip shows them; `now` and `started` (this process's start): the coordinator's
/// monotonic clock. Ties go to the lowest node id; a lost holder is given the lease again
/// only if no other node is live and ready.
pub fn plan(
    job: &JobLease,
    params: &LeaseParams,
    persisted: Option<&Lease>,
    view: &[Candidate],
    now: Mono,
    started: Mono,
) -> Decision {
    let Some(lease) = persisted else {
        return grant_or_hold(view, None, Epoch(1));
    };
    let next_epoch = lease.epoch.next();
    if lease.released {
        return grant_or_hold(view, None, next_epoch);
    }
    let holder = &lease.node;
    let holder_ok = view.iter().any(|c| c.node == *holder && c.eligible());
    // Whatever a process before this one granted is held until this bound at the latest.
    let restart_bound = params.expiry(started);
    let Some(offered) = job.offered.filter(|offered| offered.epoch == lease.epoch) else {
        // Persisted by an earlier coordinator process: only `holder` can hold it.
        if holder_ok {
            return Decision::Grant {
                node: holder.clone(),
                epoch: next_epoch,
            };
        }
        if now < restart_bound {
            return Decision::Wait {
                until: restart_bound,
                reason: WaitReason::CoordinatorStarted {
                    holder: holder.clone(),
                },
            };
        }
        return grant_or_hold(view, Some(holder), next_epoch);
    };
    // An offer never acked was never confirmed: nothing to wait out but the restart bound;
    // the holder gets one renewal period to answer before it counts as silent.
    let expiry = match offered.acked_at {
        Some(acked_at) => params.expiry(acked_at),
        None => offered.first_offer_at + params.renew_every,
    }
    .max(restart_bound);
    if now >= expiry {
        return grant_or_hold(view, Some(holder), next_epoch);
    }
    if !holder_ok {
        return Decision::Wait {
            until: expiry,
            reason: WaitReason::HolderExpiring {
                holder: holder.clone(),
            },
        };
    }
    match offered.acked_at {
        Some(acked_at) if now < acked_at + params.renew_every => Decision::Wait {
            until: acked_at + params.renew_every,
            reason: WaitReason::Renewal,
        },
        _ => Decision::Renew {
            node: holder.clone(),
            epoch: lease.epoch,
        },
    }
}

/// Grants to the lowest live and ready node other than `avoid`, else to `avoid` if it is
/// live and ready, else holds.
fn grant_or_hold(view: &[Candidate], avoid: Option<&NodeId>, epoch: Epoch) -> Decision {
    let eligible = || view.iter().filter(|c| c.eligible());
    let other = eligible()
        .filter(|c| Some(&c.node) != avoid)
        .min_by(|a, b| a.node.cmp(&b.node));
    match other.or_else(|| eligible().find(|c| Some(&c.node) == avoid)) {
        Some(candidate) => Decision::Grant {
            node: candidate.node.clone(),
            epoch,
        },
        None => Decision::Hold,
    }
}

/// Why a holder refused an offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("epoch {offered} is older than epoch {seen}, which this node has already seen")]
    Stale { offered: Epoch, seen: Epoch },
    #[error("epoch {offered} was released by this node")]
    Released { offered: Epoch },
}

/// The agent's side of one job's lease, on the agent's monotonic clock. A new agent
/// process starts with none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderLease {
    length: Duration,
    /// The highest epoch offered to this process.
    seen: Option<Epoch>,
    /// The highest epoch confirmed, and until when runs may start.
    held: Option<(Epoch, Mono)>,
    /// Offers of `seen` awaiting their confirm: (serial, received at).
    pending: Vec<(u64, Mono)>,
    released: Option<Epoch>,
}

/// How many unconfirmed offers a holder remembers (renewals overtaking each other).
const PENDING_OFFERS: usize = 8;

impl HolderLease {
    pub fn new(params: &LeaseParams) -> HolderLease {
        HolderLease {
            length: params.length,
            seen: None,
            held: None,
            pending: Vec::new(),
            released: None,
        }
    }

    /// An offer received at `received_at`: the ack to send, or why not (an epoch below
    /// one already seen, or one this node released).
    pub fn accept(&mut self, offer: Offer, received_at: Mono) -> Result<Ack, Refused> {
        if let Some(seen) = self.seen.filter(|seen| offer.epoch < *seen) {
            return Err(Refused::Stale {
                offered: offer.epoch,
                seen,
            });
        }
        if self
            .released
            .is_some_and(|released| offer.epoch <= released)
        {
            return Err(Refused::Released {
                offered: offer.epoch,
            });
        }
        if self.seen != Some(offer.epoch) {
            self.seen = Some(offer.epoch);
            self.pending.clear();
        }
        if self.pending.len() == PENDING_OFFERS {
            self.pending.remove(0);
        }
        self.pending.push((offer.serial, received_at));
        Ok(Ack {
            epoch: offer.epoch,
            serial: offer.serial,
        })
    }

    /// The coordinator confirmed an ack: the deadline moves to that offer's receipt plus
    /// the lease length. Returns whether it matched an offer this process acked.
    pub fn confirm(&mut self, confirm: Confirm) -> bool {
        if self.seen != Some(confirm.epoch) {
            return false;
        }
        let Some(index) = self
            .pending
            .iter()
            .position(|(serial, _)| *serial == confirm.serial)
        else {
            return false;
        };
        let (_, received_at) = self.pending[index];
        self.pending.drain(..=index);
        let deadline = received_at + self.length;
        let deadline = self
            .held
            .map_or(deadline, |(_, held_until)| held_until.max(deadline));
        self.held = Some((confirm.epoch, deadline));
        true
    }

    /// Whether this node holds the lease at `now`.
    pub fn may_start(&self, now: Mono) -> bool {
        self.deadline().is_some_and(|deadline| now < deadline)
    }

    /// Whether a run with this timeout may start at `now`: it must end before the lease.
    pub fn may_start_run(&self, now: Mono, timeout: Duration) -> bool {
        self.deadline()
            .is_some_and(|deadline| now + timeout < deadline)
    }

    /// Gives the lease back (call only with no run going): no run starts after this, and
    /// the epoch returned is what to report to the coordinator.
    pub fn release(&mut self) -> Option<Epoch> {
        let (epoch, _) = self.held.take()?;
        self.pending.clear();
        self.released = Some(epoch);
        Some(epoch)
    }

    /// The highest confirmed epoch.
    pub fn epoch(&self) -> Option<Epoch> {
        self.held.map(|(epoch, _)| epoch)
    }

    pub fn deadline(&self) -> Option<Mono> {
        self.held.map(|(_, deadline)| deadline)
    }
}

/// The coordinator's handling of a release report: the lease to persist (released), if
/// the report is about the lease persisted now.
pub fn on_release(persisted: Option<&Lease>, from: &NodeId, epoch: Epoch) -> Option<Lease> {
    let lease = persisted?;
    (lease.node == *from && lease.epoch == epoch && !lease.released).then(|| Lease {
        released: true,
        ..lease.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn params() -> LeaseParams {
        LeaseParams::new(secs(15), secs(1), secs(5)).unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn t(n: u64) -> Mono {
        Mono::from_secs(n)
    }

    fn node(id: &str) -> NodeId {
        NodeId::from(id)
    }

    #[test]
    fn a_jobs_lease_leaves_its_timeout_startable_between_renewals() {
        let params = LeaseParams::for_job(secs(10), None).unwrap();
        assert_eq!(params.length(), secs(25));
        assert_eq!(params.renew_every(), RENEW_EVERY);
        assert_eq!(params.margin(), Duration::from_millis(500));
        // right after a renewal's confirm, a run of timeout + START_ALLOWANCE fits with the
        // renewal's round trip to spare
        assert!(params.length() > secs(10) + START_ALLOWANCE + RENEW_EVERY);
        let long = LeaseParams::for_job(secs(3600), None).unwrap();
        assert!(long.margin() >= long.length() / 999, "{long:?}");
        assert_eq!(
            LeaseParams::for_job(secs(10), Some(secs(21)))
                .unwrap()
                .length(),
            secs(21)
        );
        let error = LeaseParams::for_job(secs(10), Some(secs(20))).unwrap_err();
        assert_eq!(
            error,
            LeaseError::LeaseTooShortForTimeout {
                timeout: secs(10),
                length: secs(20),
                needed: secs(21)
            }
        );
        assert!(error.to_string().contains("at least 21s"), "{error}");
    }

    fn lease(id: &str, epoch: u64) -> Lease {
        Lease {
            node: node(id),
            epoch: Epoch(epoch),
            released: false,
            granted_at: UNIX_EPOCH + secs(1_772_445_600),
        }
    }

    /// `spec`: "n1" live and ready, "n1-" live not ready, "n1x" dead.
    fn view(spec: &[&str]) -> Vec<Candidate> {
        spec.iter()
            .map(|s| {
                let id = s.trim_end_matches(['-', 'x']);
                Candidate {
                    node: node(id),
                    live: !s.ends_with('x'),
                    ready: !s.ends_with('-') && !s.ends_with('x'),
                }
            })
            .collect()
    }

    /// This process offered `lease` at `offered_at` and got its ack at `acked_at`.
    fn memory(lease: &Lease, offered_at: u64, acked_at: Option<u64>) -> JobLease {
        let mut job = JobLease::default();
        let offer = job.offer(lease.epoch, t(offered_at));
        if let Some(at) = acked_at {
            let ack = Ack {
                epoch: offer.epoch,
                serial: offer.serial,
            };
            assert!(job.on_ack(Some(lease), &lease.node, ack, t(at)).is_some());
        }
        job
    }

    fn grant(id: &str, epoch: u64) -> Decision {
        Decision::Grant {
            node: node(id),
            epoch: Epoch(epoch),
        }
    }

    fn renew(id: &str, epoch: u64) -> Decision {
        Decision::Renew {
            node: node(id),
            epoch: Epoch(epoch),
        }
    }

    fn wait(until: u64, reason: WaitReason) -> Decision {
        Decision::Wait {
            until: t(until),
            reason,
        }
    }

    fn expiring(id: &str) -> WaitReason {
        WaitReason::HolderExpiring { holder: node(id) }
    }

    /// (case, memory, persisted, view, now, started, expected)
    type PlanCase<'a> = (
        &'a str,
        &'a JobLease,
        Option<&'a Lease>,
        Vec<Candidate>,
        Mono,
        Mono,
        Decision,
    );

    #[test]
    fn planner_table() {
        let held = lease("n1", 3);
        let mut released = lease("n2", 3);
        released.released = true;
        let acked = memory(&held, 100, Some(100));
        let unacked = memory(&held, 100, None);
        let fresh = JobLease::default();
        let early = memory(&held, 3, None);
        let started = t(0);
        // (case, memory, persisted, view, now, started, expected). Expiry after the ack at
        // 100: 100 + 15 + 1 = 116; renewal due at 105.
        let cases: Vec<PlanCase> = vec![
            (
                "first grant: lowest ready node, epoch 1",
                &fresh,
                None,
                view(&["n2", "n1", "n3"]),
                t(5),
                started,
                grant("n1", 1),
            ),
            (
                "first grant skips not ready and dead",
                &fresh,
                None,
                view(&["n1-", "n2x", "n3"]),
                t(5),
                started,
                grant("n3", 1),
            ),
            (
                "no ready node: hold",
                &fresh,
                None,
                view(&["n1-", "n2x"]),
                t(5),
                started,
                Decision::Hold,
            ),
            (
                "holder fine: wait for the renewal",
                &acked,
                Some(&held),
                view(&["n1", "n2"]),
                t(103),
                started,
                wait(105, WaitReason::Renewal),
            ),
            (
                "holder fine: renewal due",
                &acked,
                Some(&held),
                view(&["n1", "n2"]),
                t(105),
                started,
                renew("n1", 3),
            ),
            (
                "holder dies: wait out its expiry",
                &acked,
                Some(&held),
                view(&["n1x", "n2"]),
                t(106),
                started,
                wait(116, expiring("n1")),
            ),
            (
                "holder dies: expiry passed, another node, epoch grows",
                &acked,
                Some(&held),
                view(&["n1x", "n2", "n3"]),
                t(116),
                started,
                grant("n2", 4),
            ),
            (
                "holder not ready: no renewal, wait out its expiry",
                &acked,
                Some(&held),
                view(&["n1-", "n2"]),
                t(110),
                started,
                wait(116, expiring("n1")),
            ),
            (
                "holder not ready: expiry passed",
                &acked,
                Some(&held),
                view(&["n1-", "n2"]),
                t(116),
                started,
                grant("n2", 4),
            ),
            (
                "holder partitioned (silent, gossip fine): renewals go on",
                &acked,
                Some(&held),
                view(&["n1", "n2"]),
                t(115),
                started,
                renew("n1", 3),
            ),
            (
                "holder partitioned: expiry passed, another node",
                &acked,
                Some(&held),
                view(&["n1", "n2"]),
                t(116),
                started,
                grant("n2", 4),
            ),
            (
                "holder partitioned, no other node: itself, a new epoch",
                &acked,
                Some(&held),
                view(&["n1", "n2x"]),
                t(116),
                started,
                grant("n1", 4),
            ),
            (
                "grant not acked yet: offer again",
                &unacked,
                Some(&held),
                view(&["n1", "n2"]),
                t(104),
                started,
                renew("n1", 3),
            ),
            (
                "grant never acked: after one renewal period, another node",
                &unacked,
                Some(&held),
                view(&["n1", "n2"]),
                t(105),
                started,
                grant("n2", 4),
            ),
            (
                "dead and nobody else: wait, then hold",
                &acked,
                Some(&held),
                view(&["n1x"]),
                t(116),
                started,
                Decision::Hold,
            ),
            (
                "coordinator restarted, holder dead: wait a lease from the start",
                &fresh,
                Some(&held),
                view(&["n1x", "n2"]),
                t(3),
                t(2),
                wait(18, WaitReason::CoordinatorStarted { holder: node("n1") }),
            ),
            (
                "coordinator restarted, holder dead: lease waited out",
                &fresh,
                Some(&held),
                view(&["n1x", "n2"]),
                t(18),
                t(2),
                grant("n2", 4),
            ),
            (
                "coordinator restarted, holder fine: a new epoch to it at once",
                &fresh,
                Some(&held),
                view(&["n1", "n2"]),
                t(3),
                t(2),
                grant("n1", 4),
            ),
            (
                "coordinator restarted, lease released: known expired",
                &fresh,
                Some(&released),
                view(&["n1", "n2"]),
                t(3),
                t(2),
                grant("n1", 4),
            ),
            (
                "offer unacked after a restart: the restart bound still holds",
                &early,
                Some(&held),
                view(&["n1x", "n2"]),
                t(10),
                t(2),
                wait(18, expiring("n1")),
            ),
        ];
        for (case, job, persisted, view, now, started, expected) in cases {
            let decision = plan(job, &params(), persisted, &view, now, started);
            assert_eq!(decision, expected, "{case}");
        }
    }

    #[test]
    fn wall_clock_steps_change_no_decision() {
        let base = lease("n1", 3);
        let job = memory(&base, 100, Some(100));
        let year = secs(365 * 24 * 3600);
        for (step, granted_at) in [
            ("none", base.granted_at),
            ("forward a year", base.granted_at + year),
            ("backward a year", base.granted_at - year),
            ("to the epoch", UNIX_EPOCH),
        ] {
            let stepped = Lease {
                granted_at,
                ..base.clone()
            };
            for (now, view_spec) in [
                (103, ["n1", "n2"]),
                (110, ["n1x", "n2"]),
                (116, ["n1x", "n2"]),
            ] {
                let v = view(&view_spec);
                assert_eq!(
                    plan(&job, &params(), Some(&stepped), &v, t(now), t(0)),
                    plan(&job, &params(), Some(&base), &v, t(now), t(0)),
                    "wall clock step {step}, now {now}"
                );
            }
            // After a restart too: the wait is counted on the monotonic clock from the start.
            let fresh = JobLease::default();
            let v = view(&["n1x", "n2"]);
            assert_eq!(
                plan(&fresh, &params(), Some(&stepped), &v, t(17), t(2)),
                wait(18, WaitReason::CoordinatorStarted { holder: node("n1") }),
                "restart, wall clock step {step}"
            );
        }
    }

    #[test]
    fn coordinator_confirms_only_acks_of_the_current_lease() {
        let held = lease("n1", 3);
        let mut job = JobLease::default();
        let first = job.offer(Epoch(3), t(100));
        let renewal = job.offer(Epoch(3), t(105));
        assert_eq!((first.serial, renewal.serial), (1, 2));
        let ack = |offer: Offer| Ack {
            epoch: offer.epoch,
            serial: offer.serial,
        };
        // The grant's ack at 101; the renewal's ack arrives late, at 115, still before the
        // expiry (117): confirmed, the expiry moves to 131.
        assert!(job
            .on_ack(Some(&held), &node("n1"), ack(first), t(101))
            .is_some());
        assert_eq!(job.expiry(&params(), Epoch(3)), Some(t(117)));
        assert!(job
            .on_ack(Some(&held), &node("n1"), ack(renewal), t(115))
            .is_some());
        assert_eq!(job.expiry(&params(), Epoch(3)), Some(t(131)));
        // An earlier ack arriving after a later one does not move the expiry back.
        assert!(job
            .on_ack(Some(&held), &node("n1"), ack(first), t(112))
            .is_some());
        assert_eq!(job.expiry(&params(), Epoch(3)), Some(t(131)));
        let cases: Vec<(&str, Lease, NodeId, Ack)> = vec![
            (
                "a renewal ack after the lease moved on",
                lease("n2", 4),
                node("n1"),
                ack(renewal),
            ),
            (
                "an ack from another node",
                held.clone(),
                node("n2"),
                ack(renewal),
            ),
            (
                "an ack of an older epoch",
                held.clone(),
                node("n1"),
                Ack {
                    epoch: Epoch(2),
                    serial: 1,
                },
            ),
            (
                "an ack of an offer never made",
                held.clone(),
                node("n1"),
                Ack {
                    epoch: Epoch(3),
                    serial: 9,
                },
            ),
            (
                "an ack of a released lease",
                Lease {
                    released: true,
                    ..held.clone()
                },
                node("n1"),
                ack(renewal),
            ),
        ];
        for (case, persisted, from, ack) in cases {
            let mut copy = job.clone();
            assert_eq!(
                copy.on_ack(Some(&persisted), &from, ack, t(116)),
                None,
                "{case}"
            );
            assert_eq!(copy, job, "{case}: nothing recorded");
        }
        // After a restart the process has made no offer: no ack is confirmed.
        let mut restarted = JobLease::default();
        assert_eq!(
            restarted.on_ack(Some(&held), &node("n1"), ack(renewal), t(1)),
            None
        );
    }

    #[test]
    fn holder_counts_from_the_offer_and_only_once_confirmed() {
        let mut holder = HolderLease::new(&params());
        let offer = Offer {
            epoch: Epoch(3),
            serial: 1,
        };
        let ack = holder.accept(offer, t(50)).unwrap();
        assert_eq!(
            ack,
            Ack {
                epoch: Epoch(3),
                serial: 1
            }
        );
        assert!(
            !holder.may_start(t(51)),
            "an unconfirmed offer lets no run start"
        );
        assert!(holder.confirm(Confirm {
            epoch: Epoch(3),
            serial: 1
        }));
        assert_eq!(
            holder.deadline(),
            Some(t(65)),
            "counted from the offer's receipt"
        );
        assert_eq!(holder.epoch(), Some(Epoch(3)));
        // (now, may_start, may_start_run with a 9 s timeout)
        for (now, starts, runs) in [
            (52, true, true),
            (55, true, true),
            (56, true, false),
            (64, true, false),
            (65, false, false),
        ] {
            assert_eq!(holder.may_start(t(now)), starts, "may_start at {now}");
            assert_eq!(
                holder.may_start_run(t(now), secs(9)),
                runs,
                "may_start_run at {now}"
            );
        }
        // Renewals overtaking each other: the later receipt wins, an earlier one never
        // shortens the deadline.
        holder
            .accept(
                Offer {
                    epoch: Epoch(3),
                    serial: 2,
                },
                t(55),
            )
            .unwrap();
        holder
            .accept(
                Offer {
                    epoch: Epoch(3),
                    serial: 3,
                },
                t(60),
            )
            .unwrap();
        assert!(holder.confirm(Confirm {
            epoch: Epoch(3),
            serial: 3
        }));
        assert_eq!(holder.deadline(), Some(t(75)));
        assert!(
            !holder.confirm(Confirm {
                epoch: Epoch(3),
                serial: 2
            }),
            "older than one confirmed"
        );
        assert_eq!(holder.deadline(), Some(t(75)));
        assert!(
            !holder.confirm(Confirm {
                epoch: Epoch(3),
                serial: 7
            }),
            "never offered"
        );
    }

    #[test]
    fn holder_refuses_an_old_epoch_delivered_after_a_new_one() {
        let mut holder = HolderLease::new(&params());
        holder
            .accept(
                Offer {
                    epoch: Epoch(5),
                    serial: 1,
                },
                t(10),
            )
            .unwrap();
        assert!(holder.confirm(Confirm {
            epoch: Epoch(5),
            serial: 1
        }));
        assert_eq!(
            holder.accept(
                Offer {
                    epoch: Epoch(4),
                    serial: 3
                },
                t(11)
            ),
            Err(Refused::Stale {
                offered: Epoch(4),
                seen: Epoch(5)
            })
        );
        assert!(!holder.confirm(Confirm {
            epoch: Epoch(4),
            serial: 3
        }));
        assert_eq!(holder.epoch(), Some(Epoch(5)));
        assert_eq!(holder.deadline(), Some(t(25)));
        // Also when the new epoch is only offered, not yet confirmed.
        let mut pending = HolderLease::new(&params());
        pending
            .accept(
                Offer {
                    epoch: Epoch(7),
                    serial: 1,
                },
                t(10),
            )
            .unwrap();
        assert!(pending
            .accept(
                Offer {
                    epoch: Epoch(6),
                    serial: 1
                },
                t(11)
            )
            .is_err());
    }

    #[test]
    fn release_ends_the_lease_on_both_sides() {
        let mut holder = HolderLease::new(&params());
        holder
            .accept(
                Offer {
                    epoch: Epoch(2),
                    serial: 1,
                },
                t(10),
            )
            .unwrap();
        holder
            .accept(
                Offer {
                    epoch: Epoch(2),
                    serial: 2,
                },
                t(12),
            )
            .unwrap();
        assert!(holder.confirm(Confirm {
            epoch: Epoch(2),
            serial: 1
        }));
        assert_eq!(holder.release(), Some(Epoch(2)));
        assert!(!holder.may_start(t(11)));
        assert!(
            !holder.confirm(Confirm {
                epoch: Epoch(2),
                serial: 2
            }),
            "a confirm after the release"
        );
        assert_eq!(
            holder.accept(
                Offer {
                    epoch: Epoch(2),
                    serial: 3
                },
                t(13)
            ),
            Err(Refused::Released { offered: Epoch(2) })
        );
        assert!(holder
            .accept(
                Offer {
                    epoch: Epoch(3),
                    serial: 1
                },
                t(14)
            )
            .is_ok());
        let held = lease("n1", 2);
        let released = on_release(Some(&held), &node("n1"), Epoch(2)).unwrap();
        assert!(released.released);
        assert_eq!(on_release(Some(&held), &node("n2"), Epoch(2)), None);
        assert_eq!(on_release(Some(&held), &node("n1"), Epoch(1)), None);
    }

    #[test]
    fn lease_params_are_validated() {
        assert!(LeaseParams::new(secs(15), secs(1), secs(5)).is_ok());
        let cases: &[(Duration, Duration, Duration, &str)] = &[
            (
                Duration::from_millis(500),
                secs(1),
                Duration::from_millis(200),
                "too short",
            ),
            (secs(15), Duration::from_millis(10), secs(5), "drift margin"),
            (secs(15), secs(1), secs(8), "too rare"),
            (secs(15), secs(1), Duration::from_millis(10), "too often"),
        ];
        for (length, margin, renew_every, expected) in cases {
            let error = LeaseParams::new(*length, *margin, *renew_every)
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
        assert!(params().check_timeout(secs(10)).is_ok());
        let error = params().check_timeout(secs(11)).unwrap_err().to_string();
        assert!(error.contains("at most 10s"), "{error}");
    }

    #[test]
    fn lease_record_round_trips() {
        let held = lease("n1", 3);
        let json = serde_json::to_string(&held).unwrap();
        assert!(json.contains("\"node\":\"n1\",\"epoch\":3"), "{json}");
        assert_eq!(serde_json::from_str::<Lease>(&json).unwrap(), held);
    }
}
