//! Cluster jobs (issue 18), the coordinator's half: each `[[app.jobs]]` runs on exactly one
//! ready node at a time. Per job, the lease planner of `triad_jobs::lease` says whom to
//! grant, when to renew and what to wait out; this loop persists every grant before it
//! offers it, sends the offers and confirms, and reports each job for `triadctl status`.
//!
//! The persisted record (`jobs.json` in the state directory) holds each job's lease (its
//! epoch is the highest ever granted) and the latest run any node reported. It is written
//! durably before an offer of a new epoch; a record that cannot be read stops the loop
//! (granting epoch 1 again while an old holder may still hold a lease would let two runs
//! overlap), and the status names the file. What happens inside an epoch (offers, acks)
//! is memory only: a restarted coordinator waits out one lease length from its start
//! unless the holder is live and ready, which `lease::plan` accounts for.
//!
//! Runs are the agents' (systemd transient units); the coordinator learns of them from
//! gossip (`jobs` key) and passes the latest start to a new holder, so a job that moved
//! does not run again at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use triad_jobs::lease::{
    plan, Ack, Candidate, Confirm, Decision, Epoch, JobLease, Lease, Mono, NodeId, Offer,
    WaitReason,
};
use triad_proto::v1;
use triad_proto::v1::agent_service_client::AgentServiceClient;

use crate::agent_client::{answer, AgentError};
use crate::config::JobConfig;
use crate::observer::Coordinator;
use crate::runner;
use crate::view::ClusterView;

/// The record's file in the coordinator's state directory.
pub const RECORD_FILE: &str = "jobs.json";

/// How often the loop looks (renewals are due every `RENEW_EVERY`; a lease that ran out is
/// granted again within this).
pub const TICK: Duration = Duration::from_secs(1);

/// A node that refused a job's offer (its user or program missing there) is not offered
/// that job again for this long.
pub const REFUSAL_HOLD: Duration = Duration::from_secs(60);

/// The latest run of a job that some node reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub node: String,
    /// Unix seconds.
    pub start: u64,
    pub duration_ms: Option<u64>,
    /// "exit 0", "timeout", ...; `None` while it runs.
    pub outcome: Option<String>,
    pub succeeded: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub lease: Option<Lease>,
    #[serde(default)]
    pub last_run: Option<RunRecord>,
}

/// `jobs.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobsRecord {
    pub jobs: BTreeMap<String, JobRecord>,
}

impl JobsRecord {
    /// The record at `path`: empty when the file does not exist (the first start), an error
    /// naming the file when it cannot be read or parsed.
    pub fn load(path: &Path) -> Result<JobsRecord, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{} is not a jobs record ({e}); the epochs in it keep two nodes from running a job at once: restore it, or remove it only when no node runs any job",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(JobsRecord::default()),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        triad_daemon::fs::durable_write(path, &text)
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

/// The agents' job calls, behind a trait so the loop is tested without gRPC.
#[async_trait::async_trait]
pub trait JobAgents: Send + Sync {
    async fn offer(
        &self,
        node: &str,
        grpc: SocketAddr,
        request: v1::JobOfferRequest,
    ) -> Result<Ack, AgentError>;
    async fn confirm(
        &self,
        node: &str,
        grpc: SocketAddr,
        job: &str,
        confirm: Confirm,
    ) -> Result<bool, AgentError>;
    /// Asks the holder to give `epoch` back: `Ok(true)` once it did (it starts no run under
    /// it any more); a run going is a refusal (FAILED_PRECONDITION).
    async fn release(
        &self,
        node: &str,
        grpc: SocketAddr,
        job: &str,
        epoch: Epoch,
    ) -> Result<bool, AgentError>;
}

/// Agents over gRPC; every call bounded by `timeout` (a renewal must not wait long on a
/// node that just died: the lease's expiry counts from the acks received).
#[derive(Debug, Clone)]
pub struct GrpcJobAgents {
    pub timeout: Duration,
}

impl GrpcJobAgents {
    async fn client(
        &self,
        node: &str,
        grpc: SocketAddr,
    ) -> Result<AgentServiceClient<tonic::transport::Channel>, AgentError> {
        crate::agent_client::connect(node, grpc, self.timeout, self.timeout).await
    }
}

#[async_trait::async_trait]
impl JobAgents for GrpcJobAgents {
    async fn offer(
        &self,
        node: &str,
        grpc: SocketAddr,
        request: v1::JobOfferRequest,
    ) -> Result<Ack, AgentError> {
        let mut client = self.client(node, grpc).await?;
        let reply = answer(node, client.job_offer(request).await)?;
        Ok(Ack {
            epoch: Epoch(reply.epoch),
            serial: reply.serial,
        })
    }

    async fn confirm(
        &self,
        node: &str,
        grpc: SocketAddr,
        job: &str,
        confirm: Confirm,
    ) -> Result<bool, AgentError> {
        let mut client = self.client(node, grpc).await?;
        let reply = answer(
            node,
            client
                .job_confirm(v1::JobConfirmRequest {
                    name: job.to_string(),
                    epoch: confirm.epoch.0,
                    serial: confirm.serial,
                })
                .await,
        )?;
        Ok(reply.confirmed)
    }

    async fn release(
        &self,
        node: &str,
        grpc: SocketAddr,
        job: &str,
        epoch: Epoch,
    ) -> Result<bool, AgentError> {
        let mut client = self.client(node, grpc).await?;
        let reply = answer(
            node,
            client
                .job_release(v1::JobReleaseRequest {
                    name: job.to_string(),
                    epoch: epoch.0,
                })
                .await,
        )?;
        Ok(reply.released)
    }
}

/// One job as `triadctl status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    pub name: String,
    pub schedule: String,
    /// The node holding the lease now (granted and not released); `None` when none.
    pub holder: Option<String>,
    pub epoch: u64,
    /// The lease in a few words: "held by n1", "waiting for n2's lease to run out (12s)".
    pub lease: String,
    pub running_on: Option<String>,
    pub last_run: Option<RunRecord>,
    /// Unix seconds; `None` until a node holds it.
    pub next_run: Option<u64>,
    /// What needs an operator: the last run failed, a node refused the job, the record
    /// cannot be written.
    pub warning: Option<String>,
    /// gRPC calls to agents for this job since the coordinator started.
    pub calls: u64,
}

impl JobStatus {
    /// As `ClusterStatus` carries it.
    pub fn fact(&self) -> v1::JobFact {
        v1::JobFact {
            name: self.name.clone(),
            schedule: self.schedule.clone(),
            holder: self.holder.clone().unwrap_or_default(),
            epoch: self.epoch,
            lease: self.lease.clone(),
            running_on: self.running_on.clone().unwrap_or_default(),
            last_run: self.last_run.as_ref().map(|run| v1::JobRun {
                node: run.node.clone(),
                start: run.start,
                duration_ms: run.duration_ms,
                outcome: run.outcome.clone().unwrap_or_default(),
            }),
            next_run: self.next_run,
            warning: self.warning.clone().unwrap_or_default(),
            calls: self.calls,
        }
    }
}

/// The calls and the clock of one pass.
pub struct JobsLoop {
    jobs: Vec<JobConfig>,
    record_path: PathBuf,
    /// `None`: the record could not be read; the loop grants nothing.
    record: Result<JobsRecord, String>,
    leases: BTreeMap<String, JobLease>,
    /// (job, node) → when and why the node refused the job's offer.
    refusals: BTreeMap<(String, String), (Instant, String)>,
    /// A failed write of the record, per job (shown until a write succeeds).
    write_errors: BTreeMap<String, String>,
    /// The origin of the lease planner's [`Mono`] clock: this loop's creation, no earlier
    /// than the process's start (so a predecessor's leases are waited out from here).
    origin: Instant,
    agents: Arc<dyn JobAgents>,
    status: watch::Sender<Vec<JobStatus>>,
    /// Maintenance mode: while on, no lease is granted or renewed and holders are asked to
    /// give theirs back (runs going finish).
    maintenance: Option<watch::Receiver<Option<crate::maintenance::Maintenance>>>,
    /// gRPC calls made to agents per job since this process started (the lease's cost).
    calls: BTreeMap<String, u64>,
}

impl std::fmt::Debug for JobsLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobsLoop")
            .field("jobs", &self.jobs)
            .finish_non_exhaustive()
    }
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Pure: the latest run of `job` that the live or dead nodes' gossip reports, as a record.
pub fn latest_run(view: &ClusterView, job: &str) -> Option<RunRecord> {
    view.members()
        .flat_map(|m| {
            m.keys
                .jobs
                .iter()
                .filter(move |j| j.name == job)
                .filter_map(move |j| {
                    let start = j.last_start?;
                    let running = j.running;
                    Some(RunRecord {
                        node: m.node_id.clone(),
                        start,
                        duration_ms: if running { None } else { j.last_duration_ms },
                        outcome: if running {
                            None
                        } else {
                            j.last_outcome.map(|o| o.to_string())
                        },
                        succeeded: if running {
                            None
                        } else {
                            j.last_outcome.map(|o| o.succeeded())
                        },
                    })
                })
        })
        .max_by(|a, b| (a.start, a.outcome.is_some()).cmp(&(b.start, b.outcome.is_some())))
}

/// Pure: the nodes a job may be granted to (live, ready, reachable over gRPC, and not
/// refusing it), as the planner's candidates.
pub fn candidates(view: &ClusterView, refusing: &[String]) -> Vec<Candidate> {
    view.members()
        .filter(|m| m.keys.role != triad_proto::gossip::Role::Coordinator)
        .map(|m| Candidate {
            node: NodeId(m.node_id.clone()),
            live: m.live && m.keys.grpc.is_some(),
            ready: m.keys.ready && !refusing.contains(&m.node_id),
        })
        .collect()
}

impl JobsLoop {
    pub fn new(jobs: Vec<JobConfig>, state_dir: &Path, agents: Arc<dyn JobAgents>) -> JobsLoop {
        let record_path = state_dir.join(RECORD_FILE);
        let record = JobsRecord::load(&record_path);
        if let Err(error) = &record {
            tracing::error!("jobs: {error}");
        }
        JobsLoop {
            jobs,
            record_path,
            record,
            leases: BTreeMap::new(),
            refusals: BTreeMap::new(),
            write_errors: BTreeMap::new(),
            origin: Instant::now(),
            agents,
            status: watch::channel(Vec::new()).0,
            maintenance: None,
            calls: BTreeMap::new(),
        }
    }

    fn count_call(&mut self, job: &str) {
        *self.calls.entry(job.to_string()).or_default() += 1;
    }

    /// Pause every job while `maintenance` is on.
    pub fn with_maintenance(
        mut self,
        maintenance: watch::Receiver<Option<crate::maintenance::Maintenance>>,
    ) -> JobsLoop {
        self.maintenance = Some(maintenance);
        self
    }

    pub fn status(&self) -> watch::Receiver<Vec<JobStatus>> {
        self.status.subscribe()
    }

    fn mono(&self, at: Instant) -> Mono {
        Mono(at.saturating_duration_since(self.origin))
    }

    /// One pass over every job at `now` (`wall`: for the record and the schedule only).
    pub async fn pass(&mut self, view: &ClusterView, now: Instant, wall: SystemTime) {
        let record = match &self.record {
            Ok(record) => record.clone(),
            Err(error) => {
                let statuses = self
                    .jobs
                    .iter()
                    .map(|job| JobStatus {
                        name: job.name.clone(),
                        schedule: job.schedule.to_string(),
                        holder: None,
                        epoch: 0,
                        lease: "not granted: the jobs record is unreadable".into(),
                        running_on: None,
                        last_run: None,
                        next_run: None,
                        warning: Some(error.clone()),
                        calls: 0,
                    })
                    .collect();
                self.status.send_replace(statuses);
                return;
            }
        };
        let mut record = record;
        self.refusals
            .retain(|_, (at, _)| now.saturating_duration_since(*at) < REFUSAL_HOLD);
        let mut statuses = Vec::new();
        for job in self.jobs.clone() {
            let mut entry = record.jobs.get(&job.name).cloned().unwrap_or_default();
            // the latest run gossip shows, kept in the record so a new holder (or a
            // restarted coordinator) schedules from it
            if let Some(run) = latest_run(view, &job.name) {
                if entry.last_run.as_ref() != Some(&run)
                    && entry.last_run.as_ref().is_none_or(|known| {
                        (run.start, run.outcome.is_some()) >= (known.start, known.outcome.is_some())
                    })
                {
                    entry.last_run = Some(run);
                    record.jobs.insert(job.name.clone(), entry.clone());
                    self.persist(&record, &job.name);
                }
            }
            let lease_words = self.step(&job, &mut record, view, now, wall).await;
            let entry = record.jobs.get(&job.name).cloned().unwrap_or_default();
            statuses.push(self.job_status(&job, &entry, view, lease_words, wall));
        }
        self.record = Ok(record);
        self.status.send_replace(statuses);
    }

    fn persist(&mut self, record: &JobsRecord, job: &str) -> bool {
        match record.save(&self.record_path) {
            Ok(()) => {
                self.write_errors.remove(job);
                true
            }
            Err(error) => {
                tracing::error!(job, "jobs: {error}");
                self.write_errors.insert(job.to_string(), error);
                false
            }
        }
    }

    /// The planner's decision for `job`, carried out; the lease in a few words.
    async fn step(
        &mut self,
        job: &JobConfig,
        record: &mut JobsRecord,
        view: &ClusterView,
        now: Instant,
        wall: SystemTime,
    ) -> String {
        let started = Instant::now();
        if self
            .maintenance
            .as_ref()
            .is_some_and(|m| m.borrow().is_some())
        {
            return self.pause(job, record, view).await;
        }
        let refusing: Vec<String> = self
            .refusals
            .keys()
            .filter(|(name, _)| *name == job.name)
            .map(|(_, node)| node.clone())
            .collect();
        let view_candidates = candidates(view, &refusing);
        let persisted = record.jobs.get(&job.name).and_then(|e| e.lease.clone());
        let lease_memory = self.leases.entry(job.name.clone()).or_default().clone();
        let decision = plan(
            &lease_memory,
            &job.lease,
            persisted.as_ref(),
            &view_candidates,
            self.mono(now),
            Mono::ZERO,
        );
        let (node, epoch) = match decision {
            Decision::Grant { node, epoch } => {
                let entry = record.jobs.entry(job.name.clone()).or_default();
                let before = entry.lease.replace(Lease {
                    node: node.clone(),
                    epoch,
                    released: false,
                    granted_at: wall,
                });
                if !self.persist(record, &job.name) {
                    // not offered, and not kept: the record in memory stays what is on disk
                    // (an epoch not on disk could be granted twice)
                    if let Some(entry) = record.jobs.get_mut(&job.name) {
                        entry.lease = before;
                    }
                    return format!("granting to {node} failed: the record cannot be written");
                }
                tracing::info!(job = %job.name, %node, %epoch, "jobs: lease granted");
                (node, epoch)
            }
            Decision::Renew { node, epoch } => (node, epoch),
            Decision::Wait { until, reason } => {
                let left = until.0.saturating_sub(self.mono(now).0);
                return match reason {
                    WaitReason::Renewal => format!(
                        "held by {}",
                        persisted.map_or_else(|| "?".into(), |l| l.node.0)
                    ),
                    WaitReason::HolderExpiring { holder } => format!(
                        "{holder} cannot hold it any more: waiting out its lease ({}s left)",
                        left.as_secs() + 1
                    ),
                    WaitReason::CoordinatorStarted { holder } => format!(
                        "waiting out the lease {holder} may still hold from before this coordinator started ({}s left)",
                        left.as_secs() + 1
                    ),
                };
            }
            Decision::Hold => {
                return "no node is live and ready to run it".into();
            }
        };
        let Some(grpc) = view.get(&node.0).and_then(|m| m.keys.grpc) else {
            return format!("{node} has no gRPC address in gossip");
        };
        let lease = self.leases.entry(job.name.clone()).or_default();
        let offer: Offer = lease.offer(epoch, Mono(now.saturating_duration_since(self.origin)));
        let last_run_start_unix_ms = record
            .jobs
            .get(&job.name)
            .and_then(|e| e.last_run.as_ref())
            .map_or(0, |run| run.start.saturating_mul(1000));
        let request = v1::JobOfferRequest {
            job: Some(v1::JobSpec {
                name: job.name.clone(),
                argv: job.argv.clone(),
                user: job.user.clone(),
                timeout_ms: job.timeout.as_millis() as u64,
                schedule: job.schedule.to_string(),
            }),
            lease: Some(v1::LeaseTiming {
                length_ms: job.lease.length().as_millis() as u64,
                margin_ms: job.lease.margin().as_millis() as u64,
                renew_every_ms: job.lease.renew_every().as_millis() as u64,
            }),
            epoch: offer.epoch.0,
            serial: offer.serial,
            last_run_start_unix_ms,
        };
        self.count_call(&job.name);
        let ack = match self.agents.offer(&node.0, grpc, request).await {
            Ok(ack) => ack,
            Err(error) => {
                // INVALID_ARGUMENT: its user or program is missing there; FAILED_PRECONDITION:
                // it has seen a higher epoch (a record restored from an old copy)
                if error.kind == triad_proto::errors::ErrorKind::Invalid || error.is_refused() {
                    tracing::warn!(job = %job.name, %node, "jobs: {node} refused the job: {error}");
                    self.refusals.insert(
                        (job.name.clone(), node.0.clone()),
                        (now, error.message.clone()),
                    );
                } else {
                    tracing::info!(job = %job.name, %node, "jobs: offer to {node} failed: {error}");
                }
                return format!("offered to {node} (epoch {epoch}), no answer: {error}");
            }
        };
        // received now: the pass's moment plus the time the calls took (a later ack time
        // only lengthens the coordinator's wait)
        let acked_at = self.mono(now + started.elapsed());
        let persisted = record.jobs.get(&job.name).and_then(|e| e.lease.clone());
        let lease = self.leases.entry(job.name.clone()).or_default();
        let Some(confirm) = lease.on_ack(persisted.as_ref(), &node, ack, acked_at) else {
            return format!("{node} acked an offer that is no longer current");
        };
        self.count_call(&job.name);
        match self.agents.confirm(&node.0, grpc, &job.name, confirm).await {
            Ok(_) => format!("held by {node}"),
            Err(error) => format!("held by {node}; the last confirm failed: {error}"),
        }
    }

    /// Maintenance mode: the holder is asked to give the lease back (refused while a run
    /// goes on); nothing is granted or renewed, so an unreachable holder's lease runs out.
    async fn pause(
        &mut self,
        job: &JobConfig,
        record: &mut JobsRecord,
        view: &ClusterView,
    ) -> String {
        let Some(lease) = record
            .jobs
            .get(&job.name)
            .and_then(|e| e.lease.clone())
            .filter(|l| !l.released)
        else {
            return "paused (maintenance mode)".into();
        };
        let node = lease.node.0.clone();
        let Some(grpc) = view.get(&node).filter(|m| m.live).and_then(|m| m.keys.grpc) else {
            return format!(
                "paused (maintenance mode); {node} is unreachable: its lease runs out by itself"
            );
        };
        self.count_call(&job.name);
        match self.agents.release(&node, grpc, &job.name, lease.epoch).await {
            Ok(true) => {
                if let Some(entry) = record.jobs.get_mut(&job.name) {
                    if let Some(lease) = entry.lease.as_mut() {
                        lease.released = true;
                    }
                }
                self.persist(record, &job.name);
                tracing::info!(job = %job.name, %node, "jobs: lease given back for maintenance mode");
                format!("paused (maintenance mode); {node} gave its lease back")
            }
            Ok(false) => format!("paused (maintenance mode); {node} did not hold epoch {}: its lease runs out by itself", lease.epoch),
            Err(error) if error.is_refused() => {
                format!("pausing (maintenance mode): waiting for the run on {node} to end ({error})")
            }
            Err(error) => format!("paused (maintenance mode); asking {node} to give its lease back failed: {error}"),
        }
    }

    fn job_status(
        &self,
        job: &JobConfig,
        entry: &JobRecord,
        view: &ClusterView,
        lease_words: String,
        wall: SystemTime,
    ) -> JobStatus {
        let holder = entry
            .lease
            .as_ref()
            .filter(|l| !l.released)
            .map(|l| l.node.0.clone());
        let running_on = view
            .members()
            .filter(|m| m.live)
            .find(|m| m.keys.jobs.iter().any(|j| j.name == job.name && j.running))
            .map(|m| m.node_id.clone());
        let last_start = entry
            .last_run
            .as_ref()
            .map(|run| UNIX_EPOCH + Duration::from_secs(run.start));
        let next_run = holder
            .as_ref()
            .map(|_| unix_secs(job.schedule.next_after(last_start, wall)));
        let mut warnings: Vec<String> = Vec::new();
        if let Some(run) = &entry.last_run {
            if run.succeeded == Some(false) {
                warnings.push(format!(
                    "the last run on {} ended: {} (journalctl -u 'triad-job-{}-*' on {})",
                    run.node,
                    run.outcome.as_deref().unwrap_or("?"),
                    job.name,
                    run.node
                ));
            }
        }
        for ((name, node), (_, why)) in &self.refusals {
            if *name == job.name {
                warnings.push(format!("{node} refused it: {why}"));
            }
        }
        if let Some(error) = self.write_errors.get(&job.name) {
            warnings.push(error.clone());
        }
        JobStatus {
            name: job.name.clone(),
            schedule: job.schedule.to_string(),
            holder,
            epoch: entry.lease.as_ref().map_or(0, |l| l.epoch.0),
            lease: lease_words,
            running_on,
            last_run: entry.last_run.clone(),
            next_run,
            warning: (!warnings.is_empty()).then(|| warnings.join("; ")),
            calls: self.calls.get(&job.name).copied().unwrap_or(0),
        }
    }

    pub fn spawn(
        self,
        coordinator: Arc<Coordinator>,
        stop: watch::Receiver<bool>,
    ) -> watch::Receiver<Vec<JobStatus>> {
        let status = self.status();
        tokio::spawn(runner::run(
            "jobs",
            JobsPass {
                jobs: self,
                coordinator,
            },
            runner::Backoff::NEVER_USED,
            runner::Inputs::default(),
            stop,
        ));
        status
    }
}

struct JobsPass {
    jobs: JobsLoop,
    coordinator: Arc<Coordinator>,
}

#[async_trait::async_trait]
impl runner::Reconciler for JobsPass {
    type Command = ();

    async fn pass(&mut self) -> runner::Next {
        let view = self.coordinator.view();
        self.jobs
            .pass(&view, Instant::now(), SystemTime::now())
            .await;
        runner::Next::After(TICK)
    }
}

#[cfg(test)]
mod tests;
