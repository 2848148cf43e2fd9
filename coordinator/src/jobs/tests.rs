//! The jobs loop against fake agents that keep the holder's half of the lease
//! (`HolderLease`) on the test's clock: grants are persisted before they are offered, a
//! dead holder's lease is waited out, a restarted coordinator resumes from the record, a
//! node that refuses a job is passed over, and at no step do two nodes hold one job.

use std::sync::Mutex;

use triad_cluster::membership::ObservedMember;
use triad_jobs::lease::{HolderLease, LeaseParams};
use triad_proto::errors::ErrorKind;
use triad_proto::gossip::{JobState, RunOutcome};

use super::*;

const JOB: &str = "cron";

fn job() -> JobConfig {
    JobConfig {
        name: JOB.into(),
        argv: vec!["/usr/bin/php".into(), "cron.php".into()],
        user: "www-data".into(),
        schedule: triad_jobs::schedule::Schedule::parse("1m").unwrap(),
        timeout: Duration::from_secs(10),
        lease: LeaseParams::for_job(Duration::from_secs(10), None).unwrap(),
    }
}

/// The agents: per node, the holder's lease on the test clock (`Instant`s given by the
/// test), whether the node answers, and whether it refuses the job.
struct FakeAgents {
    origin: Instant,
    now: Mutex<Instant>,
    record: PathBuf,
    holders: Mutex<BTreeMap<String, HolderLease>>,
    down: Mutex<Vec<String>>,
    refuse: Mutex<Vec<String>>,
    offers: Mutex<Vec<(String, v1::JobOfferRequest)>>,
}

impl FakeAgents {
    fn new(origin: Instant, record: PathBuf) -> Arc<FakeAgents> {
        Arc::new(FakeAgents {
            origin,
            now: Mutex::new(origin),
            record,
            holders: Mutex::new(BTreeMap::new()),
            down: Mutex::new(Vec::new()),
            refuse: Mutex::new(Vec::new()),
            offers: Mutex::new(Vec::new()),
        })
    }

    fn mono(&self) -> Mono {
        Mono(
            self.now
                .lock()
                .unwrap()
                .saturating_duration_since(self.origin),
        )
    }

    fn set_now(&self, now: Instant) {
        *self.now.lock().unwrap() = now;
    }

    /// The nodes whose lease lets them start a run now.
    fn holding(&self) -> Vec<String> {
        let now = self.mono();
        self.holders
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, lease)| lease.may_start(now))
            .map(|(node, _)| node.clone())
            .collect()
    }

    fn unreachable(&self, node: &str) -> Option<AgentError> {
        self.down
            .lock()
            .unwrap()
            .iter()
            .any(|n| n == node)
            .then(|| AgentError::new(node, ErrorKind::Unavailable, format!("{node} is down")))
    }
}

#[async_trait::async_trait]
impl JobAgents for FakeAgents {
    async fn offer(
        &self,
        node: &str,
        _grpc: SocketAddr,
        request: v1::JobOfferRequest,
    ) -> Result<Ack, AgentError> {
        if let Some(error) = self.unreachable(node) {
            return Err(error);
        }
        // the grant is on disk before any offer of its epoch
        let record = JobsRecord::load(&self.record).unwrap();
        let lease = record.jobs[JOB].lease.clone().expect("a persisted lease");
        assert_eq!(
            (lease.node.0.as_str(), lease.epoch.0),
            (node, request.epoch),
            "offered an epoch that is not the persisted one"
        );
        self.offers
            .lock()
            .unwrap()
            .push((node.to_string(), request.clone()));
        if self.refuse.lock().unwrap().iter().any(|n| n == node) {
            return Err(AgentError::new(
                node,
                ErrorKind::Invalid,
                format!("job {JOB}: user: \"www-data\" is not a user of this node"),
            ));
        }
        let timing = request.lease.unwrap();
        let params = LeaseParams::new(
            Duration::from_millis(timing.length_ms),
            Duration::from_millis(timing.margin_ms),
            Duration::from_millis(timing.renew_every_ms),
        )
        .unwrap();
        let now = self.mono();
        let mut holders = self.holders.lock().unwrap();
        let holder = holders
            .entry(node.to_string())
            .or_insert_with(|| HolderLease::new(&params));
        holder
            .accept(
                Offer {
                    epoch: Epoch(request.epoch),
                    serial: request.serial,
                },
                now,
            )
            .map_err(|e| AgentError::new(node, ErrorKind::Refused, e.to_string()))
    }

    async fn confirm(
        &self,
        node: &str,
        _grpc: SocketAddr,
        _job: &str,
        confirm: Confirm,
    ) -> Result<bool, AgentError> {
        if let Some(error) = self.unreachable(node) {
            return Err(error);
        }
        Ok(self
            .holders
            .lock()
            .unwrap()
            .get_mut(node)
            .is_some_and(|holder| holder.confirm(confirm)))
    }

    async fn release(
        &self,
        node: &str,
        _grpc: SocketAddr,
        _job: &str,
        epoch: Epoch,
    ) -> Result<bool, AgentError> {
        if let Some(error) = self.unreachable(node) {
            return Err(error);
        }
        let mut holders = self.holders.lock().unwrap();
        let Some(holder) = holders.get_mut(node) else {
            return Ok(false);
        };
        if holder.epoch() != Some(epoch) {
            return Ok(false);
        }
        Ok(holder.release().is_some())
    }
}

fn member(id: &str, live: bool, ready: bool, jobs: Vec<JobState>) -> ObservedMember {
    let mut member = crate::view::testing::observed(id, live, ready);
    member.keys.jobs = jobs;
    member
}

fn view(members: &[ObservedMember]) -> ClusterView {
    crate::view::testing::view_of(members)
}

fn all_ready() -> ClusterView {
    view(&[
        member("n1", true, true, vec![]),
        member("n2", true, true, vec![]),
        member("n3", true, true, vec![]),
    ])
}

struct Harness {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    origin: Instant,
    agents: Arc<FakeAgents>,
    jobs: JobsLoop,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let origin = Instant::now();
        let agents = FakeAgents::new(origin, path.join(RECORD_FILE));
        let mut jobs = JobsLoop::new(vec![job()], &path, agents.clone());
        jobs.origin = origin;
        Harness {
            _dir: dir,
            dir: path,
            origin,
            agents,
            jobs,
        }
    }

    /// A coordinator restart `at`: a new loop over the same state directory.
    fn restart(&mut self, at: Instant) {
        let mut jobs = JobsLoop::new(vec![job()], &self.dir, self.agents.clone());
        jobs.origin = at;
        self.jobs = jobs;
    }

    /// Passes every `step` from `from` to `to` over `view`, checking at each that at most
    /// one node holds the job; returns the holders seen, in order, without repeats.
    async fn run(&mut self, view: &ClusterView, from: u64, to: u64, step_ms: u64) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        let mut at = from;
        while at <= to {
            let now = self.origin + Duration::from_millis(at);
            self.agents.set_now(now);
            self.jobs.pass(view, now, SystemTime::now()).await;
            let holding = self.agents.holding();
            assert!(holding.len() <= 1, "two holders at {at} ms: {holding:?}");
            if let Some(node) = holding.first() {
                if seen.last() != Some(node) {
                    seen.push(node.clone());
                }
            }
            at += step_ms;
        }
        seen
    }

    fn status(&self) -> JobStatus {
        self.jobs.status.borrow()[0].clone()
    }
}

#[tokio::test]
async fn the_lowest_ready_node_holds_the_job_and_renewals_keep_it() {
    let mut h = Harness::new();
    let holders = h.run(&all_ready(), 0, 60_000, 500).await;
    assert_eq!(holders, ["n1"]);
    let offers = h.agents.offers.lock().unwrap().clone();
    assert!(offers.iter().all(|(node, o)| node == "n1" && o.epoch == 1));
    // renewed every 5 s: about 12 offers in 60 s, not one per pass
    assert!((11..=14).contains(&offers.len()), "{} offers", offers.len());
    let status = h.status();
    assert_eq!(status.holder.as_deref(), Some("n1"));
    assert_eq!((status.epoch, status.lease.as_str()), (1, "held by n1"));
    assert_eq!(
        status.calls,
        2 * offers.len() as u64,
        "an offer and a confirm per renewal"
    );
    assert!(
        status.next_run.is_some() && status.warning.is_none(),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_dead_holders_lease_is_waited_out_then_granted_elsewhere() {
    let mut h = Harness::new();
    h.run(&all_ready(), 0, 10_000, 500).await;
    // n1 dies at 10 s: gossip says so, its agent no longer answers
    h.agents.down.lock().unwrap().push("n1".into());
    let n1_dead = view(&[
        member("n1", false, false, vec![]),
        member("n2", true, true, vec![]),
        member("n3", true, true, vec![]),
    ]);
    let holders = h.run(&n1_dead, 10_500, 60_000, 500).await;
    assert_eq!(holders, ["n1", "n2"], "n1's lease runs out, then n2");
    let first_n2 = h
        .agents
        .offers
        .lock()
        .unwrap()
        .iter()
        .find(|(node, _)| node == "n2")
        .map(|(_, o)| o.epoch)
        .unwrap();
    assert_eq!(first_n2, 2, "a new epoch");
    let status = h.status();
    assert_eq!((status.holder.as_deref(), status.epoch), (Some("n2"), 2));
}

#[tokio::test]
async fn waiting_out_a_dead_holder_says_so() {
    let mut h = Harness::new();
    h.run(&all_ready(), 0, 5_000, 500).await;
    h.agents.down.lock().unwrap().push("n1".into());
    let n1_dead = view(&[
        member("n1", false, false, vec![]),
        member("n2", true, true, vec![]),
    ]);
    h.run(&n1_dead, 5_500, 6_000, 500).await;
    let status = h.status();
    assert!(
        status
            .lease
            .starts_with("n1 cannot hold it any more: waiting out its lease"),
        "{status:?}"
    );
    assert_eq!(status.holder.as_deref(), Some("n1"));
}

#[tokio::test]
async fn a_restarted_coordinator_keeps_a_live_holder_and_waits_out_a_dead_one() {
    let mut h = Harness::new();
    h.run(&all_ready(), 0, 10_000, 500).await;
    // restart with n1 live and ready: n1 again, at once, with a new epoch
    h.restart(h.origin + Duration::from_millis(10_100));
    let holders = h.run(&all_ready(), 10_100, 20_000, 500).await;
    assert_eq!(holders, ["n1"]);
    assert_eq!(h.status().epoch, 2);
    // restart again with n1 dead: nothing is granted until a lease from the restart
    h.agents.down.lock().unwrap().push("n1".into());
    let n1_dead = view(&[
        member("n1", false, false, vec![]),
        member("n2", true, true, vec![]),
    ]);
    let restart = 20_100;
    h.restart(h.origin + Duration::from_millis(restart));
    let holders = h.run(&n1_dead, restart, restart + 10_000, 500).await;
    assert_eq!(holders, ["n1"], "n1's lease still runs: {holders:?}");
    assert!(h
        .status()
        .lease
        .contains("from before this coordinator started"));
    let holders = h
        .run(&n1_dead, restart + 10_500, restart + 40_000, 500)
        .await;
    assert_eq!(holders.last().map(String::as_str), Some("n2"));
    assert_eq!(h.status().epoch, 3);
}

#[tokio::test]
async fn a_node_that_refuses_the_job_is_passed_over_and_named() {
    let mut h = Harness::new();
    h.agents.refuse.lock().unwrap().push("n1".into());
    // n1 got the grant first; a lease this process's start may have left is waited out
    // (one lease from the start) before the next node
    let holders = h.run(&all_ready(), 0, 40_000, 500).await;
    assert_eq!(holders, ["n2"]);
    let status = h.status();
    let warning = status.warning.unwrap();
    assert!(
        warning.contains("n1 refused it") && warning.contains("is not a user of this node"),
        "{warning}"
    );
}

#[tokio::test]
async fn no_ready_node_holds_and_says_so() {
    let mut h = Harness::new();
    let none = view(&[member("n1", true, false, vec![])]);
    assert!(h.run(&none, 0, 3_000, 500).await.is_empty());
    let status = h.status();
    assert_eq!(status.lease, "no node is live and ready to run it");
    assert_eq!(status.holder, None);
    assert!(h.agents.offers.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unreadable_record_grants_nothing_and_names_the_file() {
    let mut h = Harness::new();
    std::fs::write(h.dir.join(RECORD_FILE), "{ not json").unwrap();
    h.restart(h.origin);
    assert!(h.run(&all_ready(), 0, 3_000, 500).await.is_empty());
    let warning = h.status().warning.unwrap();
    assert!(
        warning.contains("jobs.json is not a jobs record"),
        "{warning}"
    );
    assert!(h.agents.offers.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_latest_run_in_gossip_is_kept_and_handed_to_the_next_holder() {
    let mut h = Harness::new();
    h.run(&all_ready(), 0, 1_000, 500).await;
    let ran = JobState {
        name: JOB.into(),
        epoch: Some(1),
        held: true,
        running: false,
        last_start: Some(1_772_445_600),
        last_duration_ms: Some(2100),
        last_outcome: Some(RunOutcome::Exit(3)),
    };
    let reported = view(&[
        member("n1", true, true, vec![ran]),
        member("n2", true, true, vec![]),
    ]);
    h.run(&reported, 1_500, 2_000, 500).await;
    let record = JobsRecord::load(&h.dir.join(RECORD_FILE)).unwrap();
    let run = record.jobs[JOB].last_run.clone().unwrap();
    assert_eq!((run.node.as_str(), run.start), ("n1", 1_772_445_600));
    assert_eq!(run.succeeded, Some(false));
    let warning = h.status().warning.unwrap();
    assert!(
        warning.contains("the last run on n1 ended: exit 3"),
        "{warning}"
    );
    // n1 dies; n2's offer carries that start
    h.agents.down.lock().unwrap().push("n1".into());
    let n1_dead = view(&[
        member("n1", false, false, vec![]),
        member("n2", true, true, vec![]),
    ]);
    h.run(&n1_dead, 2_500, 40_000, 500).await;
    let offers = h.agents.offers.lock().unwrap().clone();
    let (_, offer) = offers.iter().find(|(node, _)| node == "n2").unwrap();
    assert_eq!(offer.last_run_start_unix_ms, 1_772_445_600_000);
}

#[tokio::test]
async fn maintenance_mode_takes_the_lease_back_and_grants_again_after_it() {
    let mut h = Harness::new();
    let (maintenance, watch) = tokio::sync::watch::channel(None);
    h.jobs = JobsLoop::new(vec![job()], &h.dir, h.agents.clone()).with_maintenance(watch);
    h.jobs.origin = h.origin;
    assert_eq!(h.run(&all_ready(), 0, 5_000, 500).await, ["n1"]);
    maintenance.send_replace(Some(crate::maintenance::Maintenance {
        message: "upgrading".into(),
        retry_after_secs: 60,
        allow: vec![],
        since: 0,
        bypass: String::new(),
    }));
    let offers_before = h.agents.offers.lock().unwrap().len();
    assert!(
        h.run(&all_ready(), 5_500, 40_000, 500).await.is_empty(),
        "nobody holds it"
    );
    assert_eq!(
        h.agents.offers.lock().unwrap().len(),
        offers_before,
        "no offer while paused"
    );
    let status = h.status();
    assert!(
        status.lease.starts_with("paused (maintenance mode)"),
        "{status:?}"
    );
    assert_eq!(status.holder, None, "given back");
    maintenance.send_replace(None);
    let holders = h.run(&all_ready(), 40_500, 45_000, 500).await;
    assert_eq!(
        holders,
        ["n1"],
        "granted again at once: the lease was given back"
    );
    assert_eq!(h.status().epoch, 2);
}
