use std::sync::Mutex as StdMutex;

use super::*;

/// systemd in memory: units by name with what `observe` answers; every start recorded.
#[derive(Debug, Default)]
struct FakeRunner {
    units: StdMutex<BTreeMap<String, Observed>>,
    started: StdMutex<Vec<(String, JobSpec)>>,
    collected: StdMutex<Vec<String>>,
    list_fails: StdMutex<bool>,
    /// `systemd-run` refuses starts with this message (an unknown user, say).
    start_refusal: StdMutex<Option<String>>,
    /// Each `observe` moves this clock (seconds) on by `observe_cost` (a slow systemctl).
    clock: std::sync::Arc<std::sync::atomic::AtomicU64>,
    observe_cost: u64,
}

impl FakeRunner {
    fn started_units(&self) -> Vec<String> {
        self.started
            .lock()
            .unwrap()
            .iter()
            .map(|(unit, _)| unit.clone())
            .collect()
    }

    fn set(&self, unit: &str, observed: Observed) {
        self.units
            .lock()
            .unwrap()
            .insert(unit.to_string(), observed);
    }

    fn end_all(&self, outcome: RunOutcome) {
        for observed in self.units.lock().unwrap().values_mut() {
            if *observed == Observed::Running {
                *observed = Observed::Ended {
                    outcome,
                    duration: Some(Duration::from_millis(1500)),
                };
            }
        }
    }
}

#[async_trait::async_trait]
impl JobRunner for FakeRunner {
    fn resolve(&self, _spec: &JobSpec) -> Result<(), String> {
        Ok(())
    }

    async fn start(&self, unit: &str, spec: &JobSpec) -> Result<(), crate::exec::HostError> {
        if let Some(refusal) = self.start_refusal.lock().unwrap().clone() {
            self.set(
                unit,
                Observed::Ended {
                    outcome: RunOutcome::Exit(217),
                    duration: None,
                },
            );
            return Err(crate::exec::HostError::new(
                format!("systemd-run --uid={} ...", spec.user),
                refusal,
            ));
        }
        self.started
            .lock()
            .unwrap()
            .push((unit.to_string(), spec.clone()));
        self.set(unit, Observed::Running);
        Ok(())
    }

    async fn observe(&self, unit: &str) -> Result<Observed, crate::exec::HostError> {
        self.clock
            .fetch_add(self.observe_cost, std::sync::atomic::Ordering::SeqCst);
        Ok(self
            .units
            .lock()
            .unwrap()
            .get(unit)
            .copied()
            .unwrap_or(Observed::Gone))
    }

    async fn collect(&self, unit: &str) -> Result<(), crate::exec::HostError> {
        self.units.lock().unwrap().remove(unit);
        self.collected.lock().unwrap().push(unit.to_string());
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>, crate::exec::HostError> {
        if *self.list_fails.lock().unwrap() {
            return Err(crate::exec::HostError::new(
                "systemctl list-units",
                "no bus",
            ));
        }
        Ok(self.units.lock().unwrap().keys().cloned().collect())
    }
}

/// A clock standing still at (`now`, `wall`).
fn at(now: Mono, wall: SystemTime) -> impl Fn() -> (Mono, SystemTime) + Send + Sync {
    move || (now, wall)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn t(n: u64) -> Mono {
    Mono::from_secs(n)
}

/// Wall time `n` seconds after a fixed instant.
fn wall(n: u64) -> SystemTime {
    UNIX_EPOCH + secs(1_772_445_600 + n)
}

/// Lease 30 s, margin 1 s, renewed every 10 s: a timeout of at most 20 s.
fn timing() -> v1::LeaseTiming {
    v1::LeaseTiming {
        length_ms: 30_000,
        margin_ms: 1_000,
        renew_every_ms: 10_000,
    }
}

fn spec(name: &str, timeout_secs: u64, schedule: &str) -> v1::JobSpec {
    v1::JobSpec {
        name: name.into(),
        argv: vec!["/usr/bin/php".into(), "cron.php".into()],
        user: "www-data".into(),
        timeout_ms: timeout_secs * 1000,
        schedule: schedule.into(),
    }
}

fn offer(
    job: v1::JobSpec,
    epoch: u64,
    serial: u64,
    last_run_start: Option<SystemTime>,
) -> v1::JobOfferRequest {
    v1::JobOfferRequest {
        job: Some(job),
        lease: Some(timing()),
        epoch,
        serial,
        last_run_start_unix_ms: last_run_start.map_or(0, unix_millis),
    }
}

/// Offer `job` as `epoch` at `at` and confirm it: held until `at` + 30 s.
fn hold(
    table: &mut JobTable,
    job: v1::JobSpec,
    epoch: u64,
    at: Mono,
    last_run_start: Option<SystemTime>,
) {
    let name = job.name.clone();
    let ack = table
        .offer(
            validate_offer(offer(job, epoch, 1, last_run_start)).unwrap(),
            at,
        )
        .unwrap();
    assert!(table.confirm(
        &name,
        Confirm {
            epoch: ack.epoch,
            serial: ack.serial
        }
    ));
}

#[tokio::test]
async fn a_run_starts_only_when_due_held_and_ending_before_the_lease() {
    struct Case {
        name: &'static str,
        confirmed: bool,
        /// mono seconds of the tick (the offer is received at 100)
        now: u64,
        timeout: u64,
        schedule: &'static str,
        /// seconds before the tick's wall time of the last start the coordinator knows
        last_run_ago: Option<u64>,
        previous_run_going: bool,
        starts: bool,
    }
    let case = |name, now, starts| Case {
        name,
        confirmed: true,
        now,
        timeout: 10,
        schedule: "1m",
        last_run_ago: None,
        previous_run_going: false,
        starts,
    };
    let cases = [
        case("never ran, held: due at once", 101, true),
        Case {
            last_run_ago: Some(30),
            ..case("ran 30 s ago, every minute: not due", 101, false)
        },
        Case {
            last_run_ago: Some(61),
            ..case("ran 61 s ago, every minute: due", 101, true)
        },
        Case {
            last_run_ago: Some(3600),
            ..case("many runs missed: caught up once", 101, true)
        },
        Case {
            confirmed: false,
            ..case("offered, never confirmed", 101, false)
        },
        case("lease expired (deadline 130)", 130, false),
        case("lease long expired", 500, false),
        // deadline 130: a 10 s run plus the 5 s start allowance must end before it
        case("timeout fits the remaining lease", 114, true),
        case("timeout longer than the remaining lease", 115, false),
        Case {
            timeout: 20,
            ..case("the longest timeout, just after the offer", 104, true)
        },
        Case {
            timeout: 20,
            ..case("the longest timeout, too late in the lease", 105, false)
        },
        Case {
            previous_run_going: true,
            ..case("a previous run still going", 101, false)
        },
        Case {
            schedule: "0 3 * * *",
            ..case("calendar, next occurrence later today", 101, false)
        },
    ];
    for c in cases {
        let runner = FakeRunner::default();
        let mut table = JobTable::default();
        let tick_wall = wall(1000);
        let last = c.last_run_ago.map(|ago| tick_wall - secs(ago));
        let job = spec("cron", c.timeout, c.schedule);
        if c.confirmed {
            hold(&mut table, job, 3, t(100), last);
        } else {
            table
                .offer(validate_offer(offer(job, 3, 1, last)).unwrap(), t(100))
                .unwrap();
        }
        if c.previous_run_going {
            runner.set(&unit_name("cron", Epoch(3), wall(990)), Observed::Running);
        }
        table.tick(&runner, &at(t(c.now), tick_wall)).await;
        let started = runner.started_units();
        assert_eq!(
            !started.is_empty(),
            c.starts,
            "{}: started {started:?}",
            c.name
        );
        if c.starts {
            assert_eq!(
                started,
                [unit_name("cron", Epoch(3), tick_wall)],
                "{}",
                c.name
            );
        }
    }
}

#[tokio::test]
async fn runs_follow_the_schedule_never_overlap_and_their_end_is_recorded() {
    let runner = FakeRunner::default();
    let mut table = JobTable::default();
    hold(&mut table, spec("cron", 10, "1m"), 3, t(0), None);
    table.tick(&runner, &at(t(1), wall(0))).await;
    assert_eq!(runner.started_units().len(), 1);
    let states = table.states(t(1));
    assert_eq!(
        states,
        [JobState {
            name: "cron".into(),
            epoch: Some(3),
            held: true,
            running: true,
            last_start: Some(1_772_445_600),
            last_duration_ms: None,
            last_outcome: None,
        }]
    );
    // still running a minute later (systemd has not timed it out in this fake): no second run
    hold(&mut table, spec("cron", 10, "1m"), 3, t(60), None);
    table.tick(&runner, &at(t(61), wall(61))).await;
    assert_eq!(runner.started_units().len(), 1, "overlapping run started");
    // it ends: recorded, its unit unloaded, and the due run starts in the same tick
    runner.end_all(RunOutcome::Exit(2));
    table.tick(&runner, &at(t(62), wall(62))).await;
    assert_eq!(
        *runner.collected.lock().unwrap(),
        [unit_name("cron", Epoch(3), wall(0))]
    );
    assert_eq!(runner.started_units().len(), 2);
    runner.end_all(RunOutcome::Exit(0));
    table.tick(&runner, &at(t(63), wall(63))).await;
    let state = &table.states(t(63))[0];
    assert_eq!(
        (
            state.running,
            state.last_start,
            state.last_duration_ms,
            state.last_outcome
        ),
        (
            false,
            Some(1_772_445_662),
            Some(1500),
            Some(RunOutcome::Exit(0))
        )
    );
    // the next one is a minute after the last start, not after its end
    table.tick(&runner, &at(t(80), wall(121))).await;
    assert_eq!(runner.started_units().len(), 2);
    hold(&mut table, spec("cron", 10, "1m"), 3, t(81), None);
    table.tick(&runner, &at(t(82), wall(122))).await;
    assert_eq!(runner.started_units().len(), 3);
}

#[tokio::test]
async fn a_restarted_agent_finds_the_run_still_going_and_does_not_start_it_again() {
    let runner = FakeRunner::default();
    let going = unit_name("cron", Epoch(3), wall(0));
    runner.set(&going, Observed::Running);
    // the new process: nothing offered yet, the run is adopted and published
    let mut table = JobTable::default();
    table.tick(&runner, &at(t(0), wall(5))).await;
    let state = &table.states(t(0))[0];
    assert_eq!(
        (
            state.name.as_str(),
            state.epoch,
            state.held,
            state.running,
            state.last_start
        ),
        ("cron", None, false, true, Some(1_772_445_600))
    );
    // the coordinator grants a fresh epoch to this node; the job is due, the run still goes
    hold(&mut table, spec("cron", 10, "1m"), 4, t(1), None);
    table.tick(&runner, &at(t(2), wall(70))).await;
    assert!(runner.started_units().is_empty(), "started twice");
    // once it ended, the next run starts (the old one's start counts for the schedule)
    runner.end_all(RunOutcome::Exit(0));
    table.tick(&runner, &at(t(3), wall(71))).await;
    assert_eq!(
        runner.started_units(),
        [unit_name("cron", Epoch(4), wall(71))]
    );
}

#[tokio::test]
async fn nothing_starts_until_systemd_lists_the_earlier_runs() {
    let runner = FakeRunner::default();
    *runner.list_fails.lock().unwrap() = true;
    let mut table = JobTable::default();
    hold(&mut table, spec("cron", 10, "1m"), 3, t(0), None);
    table.tick(&runner, &at(t(1), wall(0))).await;
    assert!(runner.started_units().is_empty());
    *runner.list_fails.lock().unwrap() = false;
    table.tick(&runner, &at(t(2), wall(1))).await;
    assert_eq!(runner.started_units().len(), 1);
}

#[tokio::test]
async fn an_old_epoch_is_refused_and_a_release_ends_the_lease() {
    let mut table = JobTable::default();
    hold(&mut table, spec("cron", 10, "1m"), 5, t(0), None);
    let stale = table
        .offer(
            validate_offer(offer(spec("cron", 10, "1m"), 4, 9, None)).unwrap(),
            t(1),
        )
        .unwrap_err();
    assert!(
        matches!(&stale, JobsError::Refused(m) if m.contains("job cron") && m.contains("epoch 4") && m.contains("epoch 5")),
        "{stale}"
    );
    // a new timing needs a new epoch
    let mut changed = offer(spec("cron", 10, "1m"), 5, 2, None);
    changed.lease = Some(v1::LeaseTiming {
        length_ms: 60_000,
        ..timing()
    });
    assert!(matches!(
        table.offer(validate_offer(changed.clone()).unwrap(), t(2)),
        Err(JobsError::Refused(m)) if m.contains("timing")
    ));
    changed.epoch = 6;
    assert!(table.offer(validate_offer(changed).unwrap(), t(2)).is_ok());
    assert!(!table.confirm(
        "cron",
        Confirm {
            epoch: Epoch(5),
            serial: 1
        }
    ));
    assert!(table.confirm(
        "cron",
        Confirm {
            epoch: Epoch(6),
            serial: 2
        }
    ));
    assert!(!table.confirm(
        "nosuchjob",
        Confirm {
            epoch: Epoch(6),
            serial: 2
        }
    ));
    // a run going refuses the release; the wrong epoch is not released
    let runner = FakeRunner::default();
    table.tick(&runner, &at(t(3), wall(0))).await;
    assert_eq!(runner.started_units().len(), 1);
    assert!(
        matches!(table.release("cron", Epoch(6)), Err(JobsError::Refused(m)) if m.contains("still going"))
    );
    runner.end_all(RunOutcome::Exit(0));
    table.tick(&runner, &at(t(4), wall(1))).await;
    assert_eq!(table.release("cron", Epoch(5)), Ok(false));
    assert_eq!(table.release("cron", Epoch(6)), Ok(true));
    assert!(!table.states(t(4))[0].held);
    assert!(table
        .offer(
            validate_offer(offer(spec("cron", 10, "1m"), 6, 3, None)).unwrap(),
            t(5)
        )
        .is_err());
    // the released lease starts nothing even when due
    table.tick(&runner, &at(t(5), wall(100))).await;
    assert_eq!(runner.started_units().len(), 1);
}

#[tokio::test]
async fn a_start_systemd_refuses_is_a_failed_run_naming_the_user() {
    let runner = FakeRunner::default();
    *runner.start_refusal.lock().unwrap() =
        Some("Failed to start transient service unit: user nosuchuser not found".into());
    let mut table = JobTable::default();
    let mut job = spec("cron", 10, "1m");
    job.user = "nosuchuser".into();
    hold(&mut table, job, 3, t(0), None);
    table.tick(&runner, &at(t(1), wall(0))).await;
    let error = table.last_error("cron").unwrap();
    assert!(error.contains("\"nosuchuser\""), "{error}");
    table.tick(&runner, &at(t(2), wall(1))).await;
    let state = &table.states(t(2))[0];
    assert_eq!(
        (state.running, state.last_outcome),
        (false, Some(RunOutcome::Exit(217)))
    );
    // not retried every second: the schedule counts from the failed start
    *runner.start_refusal.lock().unwrap() = None;
    table.tick(&runner, &at(t(3), wall(2))).await;
    assert!(runner.started_units().is_empty());
}

#[tokio::test]
async fn a_job_nobody_offers_any_more_is_forgotten() {
    let runner = FakeRunner::default();
    let mut table = JobTable::default();
    hold(&mut table, spec("cron", 10, "1h"), 3, t(0), None);
    table.tick(&runner, &at(t(1), wall(0))).await;
    runner.end_all(RunOutcome::Exit(0));
    table.tick(&runner, &at(t(2), wall(2))).await;
    table.tick(&runner, &at(t(3000), wall(3000))).await;
    assert_eq!(table.states(t(3000)).len(), 1);
    table.tick(&runner, &at(t(3603), wall(3603))).await;
    assert!(table.states(t(3603)).is_empty());
}

#[test]
fn offers_are_validated_naming_the_job_and_field() {
    let bad = |change: &dyn Fn(&mut v1::JobOfferRequest), expected: &str| {
        let mut request = offer(spec("cron", 10, "1m"), 3, 1, None);
        change(&mut request);
        let error = validate_offer(request).unwrap_err();
        assert!(matches!(error, JobsError::Invalid(_)), "{error}");
        assert!(
            error.to_string().contains(expected),
            "{error} lacks {expected:?}"
        );
    };
    bad(
        &|r| r.job.as_mut().unwrap().name = "Cron Job".into(),
        "job name \"Cron Job\"",
    );
    bad(
        &|r| r.job.as_mut().unwrap().name = "a/../b".into(),
        "job name",
    );
    bad(
        &|r| r.job.as_mut().unwrap().name = "x".repeat(41),
        "at most 40 bytes",
    );
    bad(
        &|r| r.job.as_mut().unwrap().argv.clear(),
        "job cron: argv: empty",
    );
    bad(
        &|r| r.job.as_mut().unwrap().argv = vec![String::new()],
        "job cron: argv",
    );
    bad(&|r| r.job.as_mut().unwrap().argv.push("a\0b".into()), "NUL");
    bad(
        &|r| r.job.as_mut().unwrap().user = String::new(),
        "job cron: user",
    );
    bad(
        &|r| r.job.as_mut().unwrap().user = "--uid=0".into(),
        "job cron: user",
    );
    bad(
        &|r| r.job.as_mut().unwrap().user = "www data".into(),
        "job cron: user",
    );
    bad(
        &|r| r.job.as_mut().unwrap().timeout_ms = 0,
        "job cron: timeout",
    );
    bad(
        &|r| r.job.as_mut().unwrap().timeout_ms = 21_000,
        "job cron: timeout",
    );
    bad(
        &|r| r.job.as_mut().unwrap().schedule = "sometimes".into(),
        "job cron: schedule",
    );
    bad(&|r| r.job = None, "no job");
    bad(&|r| r.lease = None, "timing");
    bad(
        &|r| r.lease.as_mut().unwrap().renew_every_ms = 20_000,
        "job cron: lease",
    );
    bad(&|r| r.epoch = 0, "epoch 0");
    // an unknown user is systemd's answer at the start, not the offer's
    let mut request = offer(spec("cron", 10, "1m"), 3, 1, Some(wall(7)));
    request.job.as_mut().unwrap().user = "nosuchuser".into();
    let valid = validate_offer(request).unwrap();
    assert_eq!(valid.spec.user, "nosuchuser");
    assert_eq!(valid.last_run_start, Some(wall(7)));
    assert_eq!(valid.spec.timeout, secs(10));
}

#[test]
fn unit_names_carry_job_epoch_and_start() {
    let unit = unit_name("wp-cron_2", Epoch(12), wall(0) + Duration::from_millis(345));
    assert_eq!(unit, "triad-job-wp-cron_2-12-1772445600345.service");
    assert_eq!(
        parse_unit_name(&unit),
        Some((
            "wp-cron_2".into(),
            Epoch(12),
            wall(0) + Duration::from_millis(345)
        ))
    );
    for other in [
        "triad-job-cron-3.service",
        "triad-job-cron-x-1.service",
        "triad-job--3-1.service",
        "triad-job-Cron-3-1.service",
        "triad-db-router.service",
        "triad-job-cron-3-1.timer",
    ] {
        assert_eq!(parse_unit_name(other), None, "{other}");
    }
}

#[test]
fn systemd_run_gets_the_user_timeout_and_argv_after_the_separator() {
    let valid = validate_offer(offer(spec("cron", 10, "1m"), 3, 1, None)).unwrap();
    let args = runner::systemd_run_args("triad-job-cron-3-1.service", &valid.spec);
    assert_eq!(
        args,
        [
            "--unit=triad-job-cron-3-1.service",
            "--uid=www-data",
            "--description=triad job cron",
            "--property=Type=exec",
            "--property=RemainAfterExit=yes",
            "--property=RuntimeMaxSec=10000ms",
            "--property=SyslogIdentifier=triad-job-cron",
            "--quiet",
            "--",
            "/usr/bin/php",
            "cron.php",
        ]
    );
}

#[tokio::test]
async fn the_lease_is_judged_at_the_start_not_at_the_start_of_a_slow_tick() {
    let runner = FakeRunner {
        observe_cost: 10,
        ..FakeRunner::default()
    };
    runner.clock.store(10, std::sync::atomic::Ordering::SeqCst);
    let mut table = JobTable::default();
    // "a" has a run going whose observation takes 10 s; "b" is due, held until 30
    runner.set(&unit_name("a", Epoch(1), wall(0)), Observed::Running);
    hold(&mut table, spec("a", 10, "1m"), 1, t(0), None);
    hold(&mut table, spec("b", 10, "1m"), 1, t(0), None);
    let clock_secs = runner.clock.clone();
    let clock = move || {
        let now = clock_secs.load(std::sync::atomic::Ordering::SeqCst);
        (t(now), wall(now))
    };
    table.tick(&runner, &clock).await;
    // at 10, b's 10 s run plus the allowance would end at 25; at 20, after a's
    // observation, at 35: past the deadline
    assert!(
        runner.started_units().is_empty(),
        "{:?}",
        runner.started_units()
    );
    assert!(table.states(t(20)).iter().all(|job| job.held));
}

#[tokio::test]
async fn the_driver_validates_offers_and_publishes_jobs_in_gossip() {
    use triad_proto::gossip::{NodeKeys, Role};
    let identity = crate::state::NodeIdentity {
        node_id: "n1".into(),
        role: Role::Core,
        address: "10.0.0.1".parse().unwrap(),
        gossip_addr: "10.0.0.1:7420".parse().unwrap(),
        grpc_addr: "10.0.0.1:7421".parse().unwrap(),
        generation: 1,
        version: "0".into(),
        started_at: Instant::now(),
    };
    let state = Arc::new(AgentState::new(identity, vec![], NodeKeys::default()));
    let driver = JobsDriver::new(Arc::new(FakeRunner::default()), state.clone());
    let mut bad = offer(spec("cron", 10, "1m"), 3, 1, None);
    bad.job.as_mut().unwrap().name = "cron;rm".into();
    assert!(matches!(
        driver.offer(bad).await,
        Err(JobsError::Invalid(_))
    ));
    assert!(
        state.keys().jobs.is_empty(),
        "a refused offer publishes nothing"
    );
    let ack = driver
        .offer(offer(spec("cron", 10, "1m"), 3, 1, None))
        .await
        .unwrap();
    assert_eq!((ack.epoch, ack.serial), (Epoch(3), 1));
    assert!(
        driver
            .confirm(
                "cron",
                Confirm {
                    epoch: Epoch(3),
                    serial: 1
                }
            )
            .await
    );
    let published = state.keys().jobs;
    assert_eq!(published.len(), 1);
    assert_eq!((published[0].epoch, published[0].held), (Some(3), true));
    assert!(state
        .keys()
        .encode()
        .iter()
        .any(|(key, value)| *key == "jobs" && value.starts_with("cron:3:1:0:")));
}

#[test]
fn a_job_resolves_only_with_a_user_and_a_program_of_this_host() {
    use super::runner::resolve_on_host;
    assert_eq!(resolve_on_host("root", "/bin/sh"), Ok(()));
    assert_eq!(resolve_on_host("root", "sh"), Ok(()));
    let error = resolve_on_host("triad-no-such-user", "/bin/sh").unwrap_err();
    assert!(error.starts_with("user: \"triad-no-such-user\""), "{error}");
    let error = resolve_on_host("root", "/nonexistent/php").unwrap_err();
    assert!(
        error.starts_with("argv: the program \"/nonexistent/php\""),
        "{error}"
    );
    let error = resolve_on_host("root", "triad-no-such-program").unwrap_err();
    assert!(error.contains("systemd's PATH"), "{error}");
    // a file that is not executable is not a program
    assert!(resolve_on_host("root", "/etc/passwd").is_err());
}
