//! Cluster jobs (issue 18) on the lab: WordPress's cron and a probe job declared in
//! `[[app.jobs]]`, run by the agents as systemd units on exactly one ready node at a time.
//! The probe appends a start and an end line per run to a file on the volume; through a
//! crash of its holder, the holder cut off the network, and a coordinator restart, no two
//! runs overlap, the job moves within a lease and the status names the new holder. A job
//! whose user exists on no node is refused by every node, and the status says so. Real
//! Galera, Gluster, Apache, HAProxy and systemd, driven by the agents and the coordinator.

use std::time::{Duration, Instant};

use triad_tests::jobs::{self, PROBE_INTERVAL, PROBE_LEASE, PROBE_TIMEOUT};
use triad_tests::{faults, triad, wait, wordpress, Testbed};

/// The longest a holder's loss may keep the probe from running: its lease (waited out by
/// the coordinator), gossip noticing the loss, one schedule interval, and the ticks.
fn failover_bound() -> Duration {
    PROBE_LEASE + PROBE_INTERVAL + Duration::from_secs(10)
}

/// A real client from another address than the operator's: `curl --interface 127.0.0.2`;
/// (status, Retry-After, body).
fn client_get(path: &str) -> anyhow::Result<(u16, Option<String>, String)> {
    let out = std::process::Command::new("curl")
        .args(["-s", "-i", "--max-time", "10", "--interface", "127.0.0.2"])
        .arg(format!("http://{}{path}", triad_tests::haproxy::LISTEN))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("curl: no HTTP status in {text:?}"))?;
    let retry_after = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("retry-after: ")
            .map(str::to_string)
    });
    Ok((status, retry_after, body.to_string()))
}

fn maintenance(tb: &Testbed) -> anyhow::Result<()> {
    let mut on = triad::triadctl(&[
        "app",
        "maintenance",
        "on",
        "--message",
        "Upgrading, back soon",
        "--retry-after",
        "120",
    ])?;
    let out = triad_tests::cmd::output_timeout(&mut on, Duration::from_secs(60))?;
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "maintenance on: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("[jobs] {said}");
    // at once: the coordinator answered once HAProxy had it
    let (status, retry_after, body) = client_get(triad_tests::wordpress::NODE_PAGE)?;
    assert_eq!(
        (status, retry_after.as_deref()),
        (503, Some("120")),
        "{body}"
    );
    assert_eq!(body.trim(), "Upgrading, back soon");
    let operator = triad_tests::http::get(
        triad_tests::haproxy::LISTEN,
        triad_tests::wordpress::NODE_PAGE,
        Duration::from_secs(10),
    )?;
    assert_eq!(
        operator.status, 200,
        "the operator's own address reaches the app"
    );
    // the upgrade runs meanwhile, once
    let mut upgrade = triad::triadctl(&[
        "app",
        "run",
        "upgrade",
        "--",
        "/bin/sh",
        "-c",
        "sleep 2; echo upgraded on $(hostname)",
    ])?;
    let out = triad_tests::cmd::output_timeout(&mut upgrade, Duration::from_secs(60))?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("upgraded on n"));
    assert_eq!(
        client_get("/")?.0,
        503,
        "still in maintenance after the upgrade"
    );
    // jobs pause: the probe's lease is given back (a run going finishes first)
    let paused = wait::until(
        "job probe to pause",
        Duration::from_secs(PROBE_LEASE.as_secs() + 15),
        Duration::from_millis(500),
        || {
            let job = jobs::job_status("probe")?;
            let lease = job["lease"].as_str().unwrap_or("").to_string();
            Ok(
                // given back: no holder and no run going (a holder that could not be asked
                // keeps its lease until it runs out)
                if lease.starts_with("paused")
                    && job["holder"].is_null()
                    && job["running_on"].is_null()
                {
                    wait::Poll::Ready(jobs::now_ns())
                } else {
                    wait::Poll::Pending(lease)
                },
            )
        },
    )?;
    let text = triad::triadctl_status(false)?;
    assert!(text.contains("maintenance: ON since "), "{text}");
    // a whole interval and more without a run
    wait::pace(PROBE_INTERVAL + Duration::from_secs(3), "the probe paused")?;
    let during = jobs::probe_runs(reader(tb, ""))?;
    let started: Vec<&jobs::Run> = during.iter().filter(|r| r.start > paused).collect();
    assert!(
        started.is_empty(),
        "probe runs started in maintenance mode: {started:?}"
    );
    // off: clients are served again, every node still a member, jobs resume
    let mut off = triad::triadctl(&["app", "maintenance", "off"])?;
    let out = triad_tests::cmd::output_timeout(&mut off, Duration::from_secs(60))?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, _, body) = client_get(triad_tests::wordpress::NODE_PAGE)?;
    assert_eq!(status, 200, "{body}");
    let members = triad::status_json()?["balancer"]["members"].clone();
    assert_eq!(
        members,
        serde_json::json!(["n1 active", "n2 active", "n3 active"]),
        "no node left drained"
    );
    let resumed = jobs::wait_run_after(
        reader(tb, ""),
        paused,
        None,
        PROBE_INTERVAL + Duration::from_secs(15),
    )?;
    eprintln!(
        "[jobs] maintenance off: the probe ran again on {}",
        resumed.node
    );
    Ok(())
}

/// A node other than `not` to read the probe file through.
fn reader<'a>(tb: &'a Testbed, not: &str) -> &'a triad_tests::node::Node {
    tb.nodes
        .iter()
        .find(|n| n.name != not)
        .expect("three nodes")
}

#[test]
fn testbed_jobs_run_on_exactly_one_node_through_a_crash_a_cut_and_a_coordinator_restart(
) -> anyhow::Result<()> {
    let mut tb = Testbed::for_test(3)?;
    let mut config = triad::coordinator_config(&tb);
    config.push_str(wordpress::CRON_JOB);
    config.push_str(jobs::PROBE_JOB);
    config.push_str(jobs::BAD_USER_JOB);
    wordpress::lab_with(&mut tb, &config)?;
    let began = jobs::now_ns();

    // 1. steady: one holder, runs every interval, WordPress's cron succeeds, the bad job
    //    is refused by name
    let holder = jobs::wait_holder("probe", None, Duration::from_secs(60))?;
    let calls_from = (
        Instant::now(),
        jobs::job_status("probe")?["calls"].as_u64().unwrap_or(0),
    );
    let first = jobs::wait_run_after(reader(&tb, ""), 0, None, Duration::from_secs(60))?;
    jobs::wait_run_after(
        reader(&tb, ""),
        first.start,
        None,
        PROBE_INTERVAL + Duration::from_secs(15),
    )?;
    eprintln!("[jobs] probe held by {holder}, running every {PROBE_INTERVAL:?}");
    let cron = wait::until(
        "wp-cron to have run successfully",
        Duration::from_secs(120),
        Duration::from_secs(1),
        || {
            let job = jobs::job_status("wp-cron")?;
            Ok(match job["last_run"]["outcome"].as_str() {
                Some("exit 0") => wait::Poll::Ready(job),
                _ => wait::Poll::Pending(job.to_string()),
            })
        },
    )?;
    eprintln!("[jobs] wp-cron: {cron}");
    let bad = wait::until(
        "the status to say that the nodes refuse job bad-user",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            let job = jobs::job_status("bad-user")?;
            let warning = job["warning"].as_str().unwrap_or("").to_string();
            Ok(
                if warning.contains("refused it") && warning.contains("\"triad-nobody\"") {
                    wait::Poll::Ready(warning)
                } else {
                    wait::Poll::Pending(job.to_string())
                },
            )
        },
    )?;
    eprintln!("[jobs] bad-user: {bad}");
    let text = triad::triadctl_status(false)?;
    assert!(
        text.contains("job probe (every 10s): held by ")
            && text.contains("job bad-user: WARNING: "),
        "{text}"
    );

    // a one-off operation: once, on one node, its output and exit status back to the
    // operator, recorded by the coordinator; a user missing on the node is refused
    let mut run = triad::triadctl(&[
        "app",
        "run",
        "hello",
        "--user",
        "www-data",
        "--",
        "/bin/sh",
        "-c",
        "echo out; echo err >&2; echo \"as $(id -un) on $(hostname)\"; exit 3",
    ])?;
    let out = triad_tests::cmd::output_timeout(&mut run, Duration::from_secs(60))?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("[jobs] app run: {:?}\n{stdout}{stderr}", out.status.code());
    assert_eq!(
        out.status.code(),
        Some(3),
        "the command's exit status: {stderr}"
    );
    assert!(stdout.starts_with("out\nas www-data on n"), "{stdout}");
    assert!(
        stderr.contains("err\n") && stderr.contains("running on n"),
        "{stderr}"
    );
    let record = std::fs::read_to_string(tb.state.join("coordinator/state/runs.jsonl"))?;
    assert!(
        record.contains("\"name\":\"hello\"") && record.contains("\"exit_status\":3"),
        "{record}"
    );
    let mut refused = triad::triadctl(&[
        "app",
        "run",
        "hello",
        "--user",
        "triad-nobody",
        "--",
        "/bin/true",
    ])?;
    let out = triad_tests::cmd::output_timeout(&mut refused, Duration::from_secs(60))?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("user: \"triad-nobody\" is not a user of this node"),
        "{stderr}"
    );

    // the lease's cost in steady state: gRPC calls per minute for the probe job
    let calls = jobs::job_status("probe")?["calls"].as_u64().unwrap_or(0) - calls_from.1;
    let per_minute = calls as f64 * 60.0 / calls_from.0.elapsed().as_secs_f64();
    eprintln!(
        "[jobs] the probe's lease: {calls} gRPC calls in {:.0?}, {per_minute:.1} per minute",
        calls_from.0.elapsed()
    );
    assert!(calls > 0, "renewals are counted");

    // maintenance mode: clients get 503 with Retry-After while an upgrade runs once; the
    // operator's own address (127.0.0.1, triadctl's) still reaches the app; jobs pause
    maintenance(&tb)?;

    // 2. the holder crashes: the job moves once its lease has run out (maintenance mode
    //    gave the lease back: the holder may have changed)
    let holder = jobs::wait_holder("probe", None, Duration::from_secs(60))?;
    let first_holder = holder.clone();
    let mut failovers = Vec::new();
    let victim = tb.node(&holder)?;
    let crashed_at = jobs::now_ns();
    let t = Instant::now();
    faults::crash(victim)?;
    let moved = jobs::wait_run_after(
        reader(&tb, &holder),
        crashed_at,
        Some(&holder),
        failover_bound(),
    )?;
    let failover = Duration::from_nanos((moved.start - crashed_at) as u64);
    let new_holder = jobs::wait_holder("probe", Some(&holder), Duration::from_secs(30))?;
    assert_eq!(
        new_holder, moved.node,
        "the status names the node that runs it"
    );
    eprintln!(
        "[jobs] {holder} crashed: the next run on {} {failover:.1?} after the crash (lease {PROBE_LEASE:?})",
        moved.node
    );
    failovers.push(("crash", failover));
    faults::start(victim)?;
    triad::wait_all_ready(&tb, 3, Duration::from_secs(180))?;
    eprintln!(
        "[jobs] {holder} back and ready {:.1?} after the crash",
        t.elapsed()
    );

    // 3. the holder is cut off the network: it starts nothing after its lease, the others
    //    take over after the coordinator's expiry
    let holder = new_holder;
    let victim = tb.node(&holder)?;
    let cut_at = jobs::now_ns();
    faults::isolate(victim)?;
    let moved = jobs::wait_run_after(
        reader(&tb, &holder),
        cut_at,
        Some(&holder),
        failover_bound(),
    );
    let new_holder = jobs::wait_holder("probe", Some(&holder), Duration::from_secs(30));
    faults::heal(victim)?;
    let moved = moved?;
    let new_holder = new_holder?;
    let failover = Duration::from_nanos((moved.start - cut_at) as u64);
    assert_eq!(
        new_holder, moved.node,
        "the status names the node that runs it"
    );
    eprintln!(
        "[jobs] {holder} cut off: the next run on {} {failover:.1?} after the cut",
        moved.node
    );
    failovers.push(("cut", failover));
    triad::wait_all_ready(&tb, 3, Duration::from_secs(180))?;

    // 4. the coordinator restarts: a live holder keeps the job under a new epoch, at once
    let before = jobs::job_status("probe")?;
    let epoch_before = before["epoch"].as_u64().unwrap_or(0);
    let restarted_at = jobs::now_ns();
    triad::restart_coordinator(&mut tb)?;
    let after = wait::until(
        "a new epoch of job probe after the coordinator's restart",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let job = jobs::job_status("probe")?;
            Ok(if job["epoch"].as_u64().unwrap_or(0) > epoch_before {
                wait::Poll::Ready(job)
            } else {
                wait::Poll::Pending(job.to_string())
            })
        },
    )?;
    eprintln!("[jobs] coordinator restarted: {after}");
    let next = jobs::wait_run_after(reader(&tb, ""), restarted_at, None, failover_bound())?;
    failovers.push((
        "coordinator restart",
        Duration::from_nanos((next.start - restarted_at) as u64),
    ));
    // one more interval, so the last fault's gap is closed by a run
    jobs::wait_run_after(
        reader(&tb, ""),
        next.start,
        None,
        PROBE_INTERVAL + Duration::from_secs(15),
    )?;

    // 5. the probe file: never two runs at once; no gap longer than a failover
    let runs = jobs::probe_runs(reader(&tb, ""))?;
    let overlapping = jobs::overlaps(&runs, PROBE_TIMEOUT);
    let (gap, a, b) = jobs::longest_gap(&runs, began, jobs::now_ns()).expect("runs");
    let nodes: std::collections::BTreeSet<&str> = runs.iter().map(|r| r.node.as_str()).collect();
    eprintln!(
        "[jobs] {} runs on {nodes:?}; longest gap {gap:.1?} ({} -> {}); failovers {failovers:?}",
        runs.len(),
        a.node,
        b.node
    );
    assert!(overlapping.is_empty(), "runs overlapped: {overlapping:?}");
    assert!(
        gap <= failover_bound(),
        "a gap of {gap:.1?} between runs ({a:?} -> {b:?}), more than {:?}",
        failover_bound()
    );
    assert!(nodes.len() >= 2, "the job moved: {nodes:?}");

    // 6. the timeline kept it all, across the coordinator's restart: who asked for what,
    //    and what happened to the nodes and the job
    let mut events = triad::triadctl(&["events", "-o", "json"])?;
    let out = triad_tests::cmd::output_timeout(&mut events, Duration::from_secs(30))?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let has = |kind: &str, text: &str| {
        lines
            .iter()
            .any(|e| e["kind"] == kind && e["text"].as_str().is_some_and(|t| t.contains(text)))
    };
    let operator = format!("{} (operator)", triad::OPERATOR);
    for (kind, text) in [
        ("operator", "app maintenance on"),
        ("operator", "app maintenance off"),
        ("operator", "app run upgrade"),
        ("node", &format!("{first_holder} unreachable")),
        ("node", &format!("{first_holder} live again")),
        ("job", "job probe held by"),
    ] {
        assert!(
            has(kind, text),
            "no {kind} event {text:?} in {} events",
            lines.len()
        );
    }
    assert!(
        lines
            .iter()
            .filter(|e| e["kind"] == "operator")
            .all(|e| e["who"] == operator.as_str()),
        "every operator event names {operator}"
    );
    eprintln!(
        "[jobs] the timeline: {} events, the crash's from before the restart kept",
        lines.len()
    );
    tb.teardown_and_verify()?;
    Ok(())
}
