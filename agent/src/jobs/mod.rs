//! Cluster jobs on this node (issue 18): the holder's half of the fenced lease of
//! `triad_jobs::lease`, and the runs it allows.
//!
//! Inputs: the coordinator's offers, confirms and releases (gRPC `JobOffer`, `JobConfirm`,
//! `JobRelease`, coordinator certificates only), each carrying or naming a job; systemd's
//! view of the runs' units ([`runner::JobRunner`]); the agent's monotonic clock (a
//! [`Mono`] counted from the driver's start) and the wall clock (schedules are wall time).
//! Nothing happens until the coordinator offers a job: without offers the table is empty
//! and the tick only looks for runs left by an earlier agent process.
//!
//! Per job the agent keeps a [`HolderLease`] (the offer's receipt time is taken before
//! anything else in the handler), the spec of the latest offer, its runs and the last one
//! that ended. Every second the tick ([`JobTable::tick`]):
//! 1. once per process, before any start, lists the `triad-job-*` units systemd still has
//!    loaded and adopts them as runs of their job (the unit name carries the job, the epoch
//!    and the start), so a run still going across an agent restart is never started twice;
//!    until that list succeeds, nothing starts;
//! 2. asks systemd about every run: one going blocks new runs of its job; one that ended is
//!    recorded (outcome, duration) and its unit unloaded;
//! 3. starts a run of each job with no run going whose schedule is due
//!    (`Schedule::next_after` from the latest start this node or the coordinator knows) and
//!    whose lease lets a run of `timeout` plus [`START_ALLOWANCE`] start now
//!    (`HolderLease::may_start_run`): the run ends, by systemd's `RuntimeMaxSec`, before the
//!    holder's deadline, which ends before the coordinator's expiry;
//! 4. publishes every job in the `jobs` gossip key.
//!
//! A holder learns it lost a lease only by its deadline passing without confirmed renewals
//! (a partition, a coordinator that granted it elsewhere after the expiry): from then on no
//! run starts, and a run already going ends within its timeout. A start that `systemd-run`
//! refuses (an unknown user, a missing program) counts as a failed run at that time, so the
//! schedule goes on instead of retrying every second; the error, naming the user and the
//! command, is logged and kept for the job. A job not held, with no run, and not offered for
//! [`FORGET_AFTER`] is dropped (the coordinator stopped offering it).

pub mod once;
pub mod runner;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, Mutex};
use tokio::time::Instant;
use triad_jobs::lease::{Ack, Confirm, Epoch, HolderLease, LeaseParams, Mono, Offer};
use triad_jobs::schedule::Schedule;
use triad_proto::gossip::{check_job_name, valid_job_name, JobState, RunOutcome, MAX_JOBS};
use triad_proto::v1;

use crate::state::AgentState;
use runner::{JobRunner, Observed, UNIT_PREFIX};

/// Time kept for `systemd-run` between the decision to start and the unit's activation
/// (where its `RuntimeMaxSec` starts counting): a run starts only if `timeout` plus this
/// ends before the lease's deadline.
pub const START_ALLOWANCE: Duration = triad_jobs::lease::START_ALLOWANCE;

/// How long a job nobody offers any more stays in the table (and in gossip).
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// The tick's period.
pub const TICK: Duration = Duration::from_secs(1);

/// A job as the coordinator declared it, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    pub name: String,
    pub argv: Vec<String>,
    pub user: String,
    pub timeout: Duration,
    pub schedule: Schedule,
}

/// Why a job request was not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobsError {
    /// The request is malformed (INVALID_ARGUMENT).
    #[error("{0}")]
    Invalid(String),
    /// The lease rules refuse it now (FAILED_PRECONDITION).
    #[error("{0}")]
    Refused(String),
}

/// A validated `JobOffer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidOffer {
    pub spec: JobSpec,
    pub params: LeaseParams,
    pub offer: Offer,
    pub last_run_start: Option<SystemTime>,
}

/// Checks a job's fields; every message names the job and the field. The user is only
/// checked for shape: whether it exists is systemd's answer at the run's start.
pub fn validate_spec(spec: v1::JobSpec, params: &LeaseParams) -> Result<JobSpec, JobsError> {
    let name = spec.name;
    check_job_name(&name)
        .map_err(|rule| JobsError::Invalid(format!("job name {name:?}: {rule}")))?;
    let invalid =
        |field: &str, why: String| JobsError::Invalid(format!("job {name}: {field}: {why}"));
    triad_jobs::spec::check_argv(&spec.argv).map_err(|why| invalid("argv", why))?;
    let user = spec.user;
    triad_jobs::spec::check_user(&user).map_err(|why| invalid("user", why))?;
    let timeout = Duration::from_millis(spec.timeout_ms);
    if timeout < Duration::from_secs(1) {
        return Err(invalid("timeout", format!("{timeout:?}: at least 1s")));
    }
    params
        .check_timeout(timeout)
        .map_err(|e| invalid("timeout", e.to_string()))?;
    let schedule =
        Schedule::parse(&spec.schedule).map_err(|e| invalid("schedule", e.to_string()))?;
    Ok(JobSpec {
        name,
        argv: spec.argv,
        user,
        timeout,
        schedule,
    })
}

/// Checks a whole `JobOffer`.
pub fn validate_offer(request: v1::JobOfferRequest) -> Result<ValidOffer, JobsError> {
    let spec = request
        .job
        .ok_or_else(|| JobsError::Invalid("job offer: no job given".into()))?;
    let timing = request.lease.ok_or_else(|| {
        JobsError::Invalid(format!(
            "job {}: offer without the lease's timing",
            spec.name
        ))
    })?;
    let params = LeaseParams::new(
        Duration::from_millis(timing.length_ms),
        Duration::from_millis(timing.margin_ms),
        Duration::from_millis(timing.renew_every_ms),
    )
    .map_err(|e| JobsError::Invalid(format!("job {}: lease: {e}", spec.name)))?;
    if request.epoch == 0 {
        return Err(JobsError::Invalid(format!(
            "job {}: epoch 0 (epochs start at 1)",
            spec.name
        )));
    }
    let spec = validate_spec(spec, &params)?;
    let last_run_start = (request.last_run_start_unix_ms > 0)
        .then(|| UNIX_EPOCH + Duration::from_millis(request.last_run_start_unix_ms));
    Ok(ValidOffer {
        spec,
        params,
        offer: Offer {
            epoch: Epoch(request.epoch),
            serial: request.serial,
        },
        last_run_start,
    })
}

/// `triad-job-NAME-EPOCH-STARTMS.service`: unique per start, and enough to adopt the run
/// after an agent restart.
pub fn unit_name(job: &str, epoch: Epoch, start: SystemTime) -> String {
    format!("{UNIT_PREFIX}{job}-{epoch}-{}.service", unix_millis(start))
}

/// The job, epoch and start a run's unit name carries; `None` for any other name.
pub fn parse_unit_name(unit: &str) -> Option<(String, Epoch, SystemTime)> {
    let stem = unit.strip_prefix(UNIT_PREFIX)?.strip_suffix(".service")?;
    let mut parts = stem.rsplitn(3, '-');
    let start_ms: u64 = parts.next()?.parse().ok()?;
    let epoch: u64 = parts.next()?.parse().ok()?;
    let job = parts.next()?;
    valid_job_name(job).then(|| {
        (
            job.to_string(),
            Epoch(epoch),
            UNIX_EPOCH + Duration::from_millis(start_ms),
        )
    })
}

fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A run whose unit systemd has (or had at the last look).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ActiveRun {
    unit: String,
    start: SystemTime,
    /// `systemd-run` failed for it: if the unit is gone, the run failed to start.
    start_error: Option<String>,
}

/// The latest run that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LastRun {
    start: SystemTime,
    duration: Option<Duration>,
    outcome: RunOutcome,
}

/// What the coordinator offered this process for the job.
#[derive(Debug, Clone)]
struct Offered {
    spec: JobSpec,
    params: LeaseParams,
    holder: HolderLease,
    /// The highest epoch accepted (a new `HolderLease` is made when the timing changes
    /// with a higher epoch; this keeps refusing the older ones).
    seen: Epoch,
    last_offer_at: Mono,
}

#[derive(Debug, Clone, Default)]
struct Job {
    offered: Option<Offered>,
    runs: Vec<ActiveRun>,
    last: Option<LastRun>,
    /// The latest start this node or the coordinator knows of: the schedule counts from it.
    schedule_from: Option<SystemTime>,
    /// The last start or observation error, for the log and the tests.
    last_error: Option<String>,
    /// When the job was last offered or last seen running (for [`FORGET_AFTER`]).
    touched: Mono,
}

impl Job {
    fn note_start(&mut self, start: SystemTime) {
        self.schedule_from = Some(self.schedule_from.map_or(start, |known| known.max(start)));
    }
}

/// The agent's monotonic time and the wall time, read when called.
pub type Clock<'a> = dyn Fn() -> (Mono, SystemTime) + Send + Sync + 'a;

/// Every job this agent process knows, and whether it has looked for earlier runs yet.
#[derive(Debug, Default)]
pub struct JobTable {
    jobs: BTreeMap<String, Job>,
    resumed: bool,
}

impl JobTable {
    /// An offer received at `now`: the ack, or why not.
    pub fn offer(&mut self, valid: ValidOffer, now: Mono) -> Result<Ack, JobsError> {
        let ValidOffer {
            spec,
            params,
            offer,
            last_run_start,
        } = valid;
        let name = spec.name.clone();
        if !self.jobs.contains_key(&name) && self.jobs.len() >= MAX_JOBS {
            return Err(JobsError::Refused(format!(
                "job {name}: this agent already has {MAX_JOBS} jobs, the most its gossip carries"
            )));
        }
        let job = self.jobs.entry(name.clone()).or_default();
        let refused =
            |e: triad_jobs::lease::Refused| JobsError::Refused(format!("job {name}: {e}"));
        let ack = match job.offered.as_mut() {
            Some(offered) if offered.params == params => {
                let ack = offered.holder.accept(offer, now).map_err(refused)?;
                offered.spec = spec;
                offered.seen = offered.seen.max(offer.epoch);
                offered.last_offer_at = now;
                ack
            }
            Some(offered) if offer.epoch <= offered.seen => {
                return Err(JobsError::Refused(format!(
                    "job {name}: epoch {} changes the lease's timing, but epoch {} was already seen; a new timing needs a new epoch",
                    offer.epoch, offered.seen
                )));
            }
            _ => {
                // A first offer, or a new timing with a higher epoch: a fresh holder.
                let mut holder = HolderLease::new(&params);
                let ack = holder.accept(offer, now).map_err(refused)?;
                job.offered = Some(Offered {
                    spec,
                    params,
                    holder,
                    seen: offer.epoch,
                    last_offer_at: now,
                });
                ack
            }
        };
        if let Some(start) = last_run_start {
            job.note_start(start);
        }
        job.touched = now;
        Ok(ack)
    }

    /// The coordinator's confirm: whether it moved the job's deadline.
    pub fn confirm(&mut self, name: &str, confirm: Confirm) -> bool {
        self.jobs
            .get_mut(name)
            .and_then(|job| job.offered.as_mut())
            .is_some_and(|offered| offered.holder.confirm(confirm))
    }

    /// Give the lease `epoch` back: true when this node held it and gave it back; refused
    /// while a run is going.
    pub fn release(&mut self, name: &str, epoch: Epoch) -> Result<bool, JobsError> {
        let Some(job) = self.jobs.get_mut(name) else {
            return Ok(false);
        };
        let Some(offered) = job.offered.as_mut() else {
            return Ok(false);
        };
        if offered.holder.epoch() != Some(epoch) {
            return Ok(false);
        }
        if let Some(run) = job.runs.first() {
            return Err(JobsError::Refused(format!(
                "job {name}: run {} is still going; the lease can be given back once it ends",
                run.unit
            )));
        }
        Ok(offered.holder.release() == Some(epoch))
    }

    /// One pass: adopt earlier runs (once), observe runs, start the due ones. `clock` gives
    /// the agent's monotonic time and the wall time (for schedules and unit names); it is
    /// read again right before each start decision, since systemd's answers take time.
    pub async fn tick(&mut self, runner: &dyn JobRunner, clock: &Clock<'_>) {
        let (now, _) = clock();
        if !self.resumed {
            match runner.list().await {
                Ok(units) => {
                    self.adopt(&units, now);
                    self.resumed = true;
                }
                Err(error) => {
                    tracing::warn!(%error, "jobs: cannot list earlier runs; no run starts until systemd answers");
                    return;
                }
            }
        }
        for (name, job) in self.jobs.iter_mut() {
            observe_runs(name, job, runner, now).await;
            if job.runs.is_empty() {
                let (now, wall) = clock();
                start_if_due(name, job, runner, now, wall).await;
            }
        }
        let (now, _) = clock();
        self.jobs.retain(|name, job| {
            let held = job
                .offered
                .as_ref()
                .is_some_and(|offered| offered.holder.may_start(now));
            let keep = held || !job.runs.is_empty() || now < job.touched + FORGET_AFTER;
            if !keep {
                tracing::info!(job = %name, "jobs: not offered for {FORGET_AFTER:?}; forgotten");
            }
            keep
        });
    }

    fn adopt(&mut self, units: &[String], now: Mono) {
        for unit in units {
            let Some((name, epoch, start)) = parse_unit_name(unit) else {
                tracing::warn!(%unit, "jobs: a unit named like a run that is none; left alone");
                continue;
            };
            if !self.jobs.contains_key(&name) && self.jobs.len() >= MAX_JOBS {
                continue;
            }
            let job = self.jobs.entry(name.clone()).or_default();
            if job.runs.iter().any(|run| run.unit == *unit) {
                continue;
            }
            tracing::info!(job = %name, %unit, %epoch, "jobs: found a run of an earlier agent process; it is not started again");
            job.runs.push(ActiveRun {
                unit: unit.clone(),
                start,
                start_error: None,
            });
            job.note_start(start);
            job.touched = now;
        }
    }

    /// Every job as gossip shows it, by name.
    pub fn states(&self, now: Mono) -> Vec<JobState> {
        self.jobs
            .iter()
            .map(|(name, job)| {
                let holder = job.offered.as_ref().map(|offered| &offered.holder);
                let running = job.runs.iter().map(|run| run.start).max();
                let unix_secs = |time: SystemTime| unix_millis(time) / 1000;
                let (last_start, last_duration_ms, last_outcome) = match (running, &job.last) {
                    (Some(start), _) => (Some(unix_secs(start)), None, None),
                    (None, Some(last)) => (
                        Some(unix_secs(last.start)),
                        last.duration
                            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                        Some(last.outcome),
                    ),
                    (None, None) => (None, None, None),
                };
                JobState {
                    name: name.clone(),
                    epoch: holder.and_then(|h| h.epoch()).map(|epoch| epoch.0),
                    held: holder.is_some_and(|h| h.may_start(now)),
                    running: running.is_some(),
                    last_start,
                    last_duration_ms,
                    last_outcome,
                }
            })
            .collect()
    }

    /// The job's last start or observation error, if any.
    pub fn last_error(&self, name: &str) -> Option<&str> {
        self.jobs.get(name)?.last_error.as_deref()
    }
}

async fn observe_runs(name: &str, job: &mut Job, runner: &dyn JobRunner, now: Mono) {
    let mut still_going = Vec::new();
    for run in std::mem::take(&mut job.runs) {
        let (outcome, duration) = match runner.observe(&run.unit).await {
            Ok(Observed::Running) => {
                job.touched = now;
                still_going.push(run);
                continue;
            }
            Ok(Observed::Ended { outcome, duration }) => {
                if let Err(error) = runner.collect(&run.unit).await {
                    tracing::warn!(job = %name, unit = %run.unit, %error, "jobs: cannot unload an ended run's unit");
                }
                (outcome, duration)
            }
            Ok(Observed::Gone) if run.start_error.is_some() => {
                (RunOutcome::Failed, Some(Duration::ZERO))
            }
            Ok(Observed::Gone) => (RunOutcome::Lost, None),
            Err(error) => {
                // unknown is not ended: the run keeps blocking new ones
                tracing::warn!(job = %name, unit = %run.unit, %error, "jobs: cannot read a run's state");
                job.last_error = Some(error.to_string());
                still_going.push(run);
                continue;
            }
        };
        if outcome.succeeded() {
            tracing::info!(job = %name, unit = %run.unit, ?duration, "jobs: run ended");
        } else {
            tracing::warn!(job = %name, unit = %run.unit, %outcome, ?duration, "jobs: run failed");
        }
        job.touched = now;
        let newer = job.last.as_ref().is_none_or(|last| last.start <= run.start);
        if newer {
            job.last = Some(LastRun {
                start: run.start,
                duration,
                outcome,
            });
        }
    }
    job.runs = still_going;
}

async fn start_if_due(
    name: &str,
    job: &mut Job,
    runner: &dyn JobRunner,
    now: Mono,
    wall: SystemTime,
) {
    let Some(offered) = job.offered.as_ref() else {
        return;
    };
    let spec = &offered.spec;
    if spec.schedule.next_after(job.schedule_from, wall) > wall {
        return;
    }
    let Some(epoch) = offered.holder.epoch() else {
        return;
    };
    if !offered
        .holder
        .may_start_run(now, spec.timeout.saturating_add(START_ALLOWANCE))
    {
        return;
    }
    let unit = unit_name(name, epoch, wall);
    let spec = spec.clone();
    job.note_start(wall);
    let start_error = match runner.start(&unit, &spec).await {
        Ok(()) => {
            tracing::info!(job = %name, %unit, %epoch, user = %spec.user, "jobs: run started");
            None
        }
        Err(error) => {
            let message = format!("starting job {name} as user {:?}: {error}", spec.user);
            tracing::warn!(job = %name, %unit, %epoch, user = %spec.user, "jobs: {message}");
            job.last_error = Some(message.clone());
            Some(message)
        }
    };
    // Tracked either way: a start that timed out may still activate, and a refused one
    // leaves a failed unit to read and unload.
    job.runs.push(ActiveRun {
        unit,
        start: wall,
        start_error,
    });
}

/// The jobs of this agent: the table behind a lock, the runner, the clock.
pub struct JobsDriver {
    runner: Arc<dyn JobRunner>,
    state: Arc<AgentState>,
    origin: Instant,
    table: Mutex<JobTable>,
}

impl std::fmt::Debug for JobsDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobsDriver").finish_non_exhaustive()
    }
}

impl JobsDriver {
    pub fn new(runner: Arc<dyn JobRunner>, state: Arc<AgentState>) -> JobsDriver {
        JobsDriver {
            runner,
            state,
            origin: Instant::now(),
            table: Mutex::new(JobTable::default()),
        }
    }

    fn now(&self) -> Mono {
        Mono(self.origin.elapsed())
    }

    /// `JobOffer`: the receipt time is taken first, before validation and the lock.
    pub async fn offer(&self, request: v1::JobOfferRequest) -> Result<Ack, JobsError> {
        let received_at = self.now();
        let valid = validate_offer(request)?;
        // what only this node can tell: does the user exist here, is the program here
        self.runner
            .resolve(&valid.spec)
            .map_err(|why| JobsError::Invalid(format!("job {}: {why}", valid.spec.name)))?;
        let name = valid.spec.name.clone();
        let epoch = valid.offer.epoch;
        let mut table = self.table.lock().await;
        let result = table.offer(valid, received_at);
        match &result {
            Ok(_) => tracing::debug!(job = %name, %epoch, "jobs: offer acked"),
            Err(error) => tracing::info!(job = %name, %epoch, "jobs: offer refused: {error}"),
        }
        self.publish(&table);
        result
    }

    /// `JobConfirm`.
    pub async fn confirm(&self, name: &str, confirm: Confirm) -> bool {
        let mut table = self.table.lock().await;
        let confirmed = table.confirm(name, confirm);
        self.publish(&table);
        confirmed
    }

    /// `JobRelease`.
    pub async fn release(&self, name: &str, epoch: Epoch) -> Result<bool, JobsError> {
        let mut table = self.table.lock().await;
        let released = table.release(name, epoch);
        if released == Ok(true) {
            tracing::info!(job = %name, %epoch, "jobs: lease given back");
        }
        self.publish(&table);
        released
    }

    async fn tick(&self) {
        let mut table = self.table.lock().await;
        let clock = || (self.now(), SystemTime::now());
        table.tick(self.runner.as_ref(), &clock).await;
        self.publish(&table);
    }

    fn publish(&self, table: &JobTable) {
        let jobs = table.states(self.now());
        self.state.update(|keys| keys.jobs = jobs);
    }

    /// The tick every [`TICK`] until `stop`.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        crate::state::every(TICK, stop, || self.tick()).await;
    }
}

#[cfg(test)]
mod tests;
