//! The files half driven by Triad only (issue 5), on real Debian nodes with systemd,
//! glusterd, FUSE, apache2 and mod_php: the agents keep glusterd, the brick, the docroot
//! mount and Apache; the coordinator forms the pool and the replica volume. The test runs
//! no Gluster or Apache command to form anything; it injects faults (SIGKILL), writes
//! through a node's mount, reads through another node's Apache, and checks readiness as
//! the coordinator reports it.

use std::time::{Duration, Instant};

use triad_tests::formation::gluster;
use triad_tests::http;
use triad_tests::triad::{self, BRICK, DOCROOT, MOUNT_LOG, VOLUME};
use triad_tests::wait::{self, Poll};
use triad_tests::{LabError, Node, Testbed};

type Result<T> = std::result::Result<T, LabError>;

/// The coordinator's view of one node: (live, ready, not-ready reason, services).
fn node_row(id: &str) -> Result<(bool, bool, String, serde_json::Value)> {
    let v = triad::status_json()?;
    let row = v["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["id"] == id).cloned())
        .ok_or_else(|| LabError::Other(format!("{id} not in triadctl status: {v}")))?;
    Ok((
        row["live"].as_bool().unwrap_or(false),
        row["ready"].as_bool().unwrap_or(false),
        row["not_ready_reason"].as_str().unwrap_or("").to_string(),
        row["services"].clone(),
    ))
}

/// Waits until the coordinator reports `id` ready (`true`) or not ready (`false`); returns
/// the time taken.
fn wait_ready(id: &str, want: bool, limit: Duration) -> Result<Duration> {
    let t = Instant::now();
    wait::until(
        &format!("{id} to be {}", if want { "ready" } else { "not ready" }),
        limit,
        Duration::from_millis(100),
        || {
            let (live, ready, reason, services) = node_row(id)?;
            Ok(if live && ready == want {
                Poll::Ready(t.elapsed())
            } else {
                Poll::Pending(format!(
                    "live={live} ready={ready} reason={reason:?} services={services}"
                ))
            })
        },
    )
}

fn volume_status_line() -> String {
    triad::status_json()
        .map(|v| v["volume"]["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

fn install_triad(tb: &mut Testbed, config: impl Fn(&Testbed, &Node) -> String) -> Result<()> {
    triad::cargo_build()?;
    for n in &tb.nodes {
        triad::install_agent(tb, n)?;
        // the lab helper writes the full config; a test may narrow it
        n.write_file("/etc/triad/agent.toml", &config(tb, n))?;
        n.exec(&["systemctl", "restart", "triad-agent"])?;
    }
    triad::start_coordinator(tb)
}

/// Waits for the coordinator's autoscale line to satisfy `done`; returns it.
fn wait_autoscale(what: &str, limit: Duration, done: impl Fn(&str) -> bool) -> Result<String> {
    wait::until(what, limit, Duration::from_millis(500), || {
        let line = triad::autoscale_line()?;
        Ok(if done(&line) {
            Poll::Ready(line)
        } else {
            Poll::Pending(line)
        })
    })
}

/// `gluster volume get VOL KEY` value on `node`.
fn volume_option(node: &Node, key: &str) -> Result<String> {
    let out = gluster(node, &["volume", "get", VOLUME, key])?;
    out.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
        .ok_or_else(|| LabError::Other(format!("volume get {key}: {out}")))
}

/// Pending heal entries over all bricks (heal info on `node`); `None` if a brick could not
/// be counted.
fn heal_pending(node: &Node) -> Result<Option<u64>> {
    let mut total = 0;
    for (_, status, entries) in triad_tests::formation::heal_info(node)? {
        match (status.as_str(), entries) {
            ("Connected", Some(n)) => total += n,
            _ => return Ok(None),
        }
    }
    Ok(Some(total))
}

#[test]
fn testbed_volume_triad_formation_and_faults() -> anyhow::Result<()> {
    let mut tb = Testbed::for_test(3)?;
    // the default state transfer (mariabackup), whose TLS the test checks below
    install_triad(&mut tb, triad::agent_config_mariabackup)?;
    let t0 = Instant::now();
    let (n1, n2, n3) = (&tb.nodes[0], &tb.nodes[1], &tb.nodes[2]);

    // 1. from nothing: pool, replica-3 volume with the quorum options, mounted everywhere
    let formed = wait::until(
        "the coordinator to report the volume started",
        Duration::from_secs(180),
        Duration::from_millis(200),
        || {
            let line = volume_status_line();
            Ok(if line.contains("started") {
                Poll::Ready(t0.elapsed())
            } else {
                Poll::Pending(line)
            })
        },
    )?;
    eprintln!(
        "[volume] formed {:.1}s after the coordinator started (agents already running)",
        formed.as_secs_f64()
    );
    for n in &tb.nodes {
        let t = triad::wait_docroot_mounted(n, Duration::from_secs(60))?;
        eprintln!(
            "[volume] {}: docroot mounted ({:.1}s more)",
            n.name,
            t.as_secs_f64()
        );
    }
    let info = gluster(n1, &["volume", "info", VOLUME])?;
    assert!(info.contains("Number of Bricks: 1 x 3 = 3"), "{info}");
    for n in &tb.nodes {
        assert!(
            info.contains(&format!("{}:{}", n.addr, triad::BRICK)),
            "{info}"
        );
    }
    assert_eq!(volume_option(n1, "cluster.quorum-type")?, "auto");
    assert_eq!(volume_option(n1, "cluster.server-quorum-type")?, "server");
    assert_eq!(volume_option(n1, "network.ping-timeout")?, "5");
    let allow = volume_option(n1, "auth.allow")?;
    for n in &tb.nodes {
        assert!(
            allow.split(',').any(|a| a == n.addr),
            "auth.allow {allow:?} lacks {}",
            n.addr
        );
    }
    triad::publish_app(n1)?;
    let ready = triad::wait_all_ready(&tb, 3, Duration::from_secs(120))?;
    eprintln!(
        "[volume] all 3 ready {:.1}s after the app was published",
        ready.as_secs_f64()
    );
    // a file written through n1's mount is served by n3's Apache (PHP from the volume too)
    let stamp = format!("written through n1 at {:?}", t0.elapsed());
    // through the node (its mount namespace holds the FUSE mount), not the host's view of
    // its root directory
    n1.sh(&format!("printf '%s' '{stamp}' > {DOCROOT}/probe.txt"))?;
    let body = triad_tests::formation::wait_http(
        &format!("{}:80", n3.addr),
        "/probe.txt",
        Duration::from_secs(10),
    )?;
    assert_eq!(body, stamp);
    let php = triad_tests::formation::wait_http(
        &format!("{}:80", n3.addr),
        triad_tests::wordpress::NODE_PAGE,
        Duration::from_secs(10),
    )?;
    assert_eq!(php.trim(), "n3");
    // Apache listens on the node address only and mod_status answers only the node itself
    let listen = n2.sh("ss -Hltn '( sport = :80 )' | awk '{print $4}'")?;
    assert_eq!(
        listen.trim(),
        format!("{}:80", n2.addr),
        "listeners: {listen}"
    );
    let status_from_host = http::get(
        &format!("{}:80", n2.addr),
        "/server-status?auto",
        Duration::from_secs(3),
    )?;
    assert_eq!(
        status_from_host.status, 403,
        "mod_status must refuse other hosts"
    );

    // 1b. autoscaling (observe-only): the agents' Apache counters reach the coordinator's
    // request-rate metric; the lab's policy targets 20 req/s per node, so ~90 req/s over
    // the 3 nodes asks for 5 (max 5), and the line says why
    let idle = wait_autoscale(
        "an autoscale line with a rate",
        Duration::from_secs(60),
        |l| l.contains("req/s over 3 ready"),
    )?;
    eprintln!("[autoscale] idle: {idle}");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let busy = std::thread::scope(|scope| -> Result<String> {
        let load: Vec<_> = tb
            .nodes
            .iter()
            .map(|n| {
                let (addr, stop) = (format!("{}:80", n.addr), &stop);
                // 30 GETs/s on each node until stopped, at most 90 s
                scope.spawn(move || {
                    let (mut ok, mut failed) = (0u64, 0u64);
                    let start = Instant::now();
                    let mut next = start;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed)
                        && start.elapsed() < Duration::from_secs(90)
                    {
                        match http::get(
                            &addr,
                            triad_tests::wordpress::NODE_PAGE,
                            Duration::from_secs(5),
                        ) {
                            Ok(r) if r.status == 200 => ok += 1,
                            _ => failed += 1,
                        }
                        next += Duration::from_millis(33);
                        if let Some(d) = next.checked_duration_since(Instant::now()) {
                            std::thread::sleep(d);
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        let line = wait_autoscale(
            "a scale-out recommendation under ~90 req/s",
            Duration::from_secs(75),
            |l| l.contains("recommend 5") && l.contains("would add 2"),
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let counts: Vec<(u64, u64)> = load.into_iter().map(|h| h.join().unwrap()).collect();
        eprintln!("[autoscale] load (ok, failed) per node: {counts:?}");
        line
    })?;
    eprintln!("[autoscale] under load: {busy}");
    let rate: f64 = busy
        .split(" req/s")
        .next()
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(rate > 45.0, "the metric missed the load: {busy}");

    // 2. kill n3's glusterd and brick: the others keep taking writes; n3 is ready again
    // only once self-heal has caught up
    // the writes follow the kill at once, before glusterd is back, so n3's brick misses them
    n3.sh("pkill -9 -x glusterd; pkill -9 -x glusterfsd; true")?;
    let w = Instant::now();
    n1.sh(&format!(
        "mkdir -p {DOCROOT}/heal && for i in $(seq 1 200); do echo $i > {DOCROOT}/heal/f$i; done"
    ))?;
    eprintln!(
        "[brick] 200 files written through n1 in {:.2}s right after n3's glusterd and brick were killed",
        w.elapsed().as_secs_f64()
    );
    // the coordinator's view may still hold n3's state from before the kill: wait until
    // n3's agent has published its brick as not online
    let t = wait::until(
        "n3's brick reported not online",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            let (_, _, reason, services) = node_row("n3")?;
            Ok(if services["gluster.brick"] != "online" {
                Poll::Ready(w.elapsed())
            } else {
                Poll::Pending(format!("reason={reason:?} services={services}"))
            })
        },
    )?;
    eprintln!(
        "[brick] n3's brick reported not online {:.2}s after the kill",
        t.as_secs_f64()
    );
    let back = Instant::now();
    let mut not_ready_while_pending = false;
    let mut healing_seen: Option<Duration> = None;
    let mut polls = 0u32;
    wait::until(
        "n3 ready again after its brick is back and healed",
        Duration::from_secs(240),
        Duration::from_millis(250),
        || {
            polls += 1;
            let (_, ready, reason, services) = node_row("n3")?;
            if healing_seen.is_none() && services["gluster.brick"] == "healing" {
                healing_seen = Some(back.elapsed());
            }
            if ready {
                // heal info read after the readiness: entries pending now were pending then
                match heal_pending(n1)? {
                    Some(0) => {}
                    other => {
                        return Err(LabError::Other(format!(
                            "n3 ready while heal info shows {other:?} entries pending (None: a brick not counted)"
                        )))
                    }
                }
                return Ok(Poll::Ready(()));
            }
            // heal info runs a gfapi client: not on every poll, it would slow the heal
            if polls.is_multiple_of(8) && heal_pending(n1)?.is_some_and(|p| p > 0) {
                not_ready_while_pending = true;
            }
            Ok(Poll::Pending(format!(
                "reason={reason:?} services={services}"
            )))
        },
    )?;
    eprintln!(
        "[brick] n3 brick back and healing {:.1}s after the writes",
        healing_seen.unwrap_or_default().as_secs_f64()
    );
    eprintln!(
        "[brick] n3 ready {:.1}s after the writes (not ready while heal was pending: {not_ready_while_pending})",
        back.elapsed().as_secs_f64()
    );
    assert_eq!(heal_pending(n1)?, Some(0));
    let healed = n3.sh("ls /bricks/www/heal | wc -l")?;
    assert_eq!(
        healed.trim(),
        "200",
        "n3's brick holds every file after heal"
    );

    // 3. kill n2's FUSE client: the mount goes ENOTCONN; not ready within the probe bound,
    // lazily unmounted, mounted again, ready again
    // the bracket keeps pkill from matching this shell's own command line
    n2.sh("pkill -9 -f '[g]lusterfs.*process-name fuse'")?;
    let killed = Instant::now();
    // the mount as n2's agent publishes it: not ok (stale, then absent while remounting)
    let t_down = wait::until(
        "n2's mount reported not ok",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let (_, ready, reason, services) = node_row("n2")?;
            Ok(if services["mount"] != "ok" && !ready {
                Poll::Ready(killed.elapsed())
            } else {
                Poll::Pending(format!(
                    "ready={ready} reason={reason:?} services={services}"
                ))
            })
        },
    )?;
    wait_ready("n2", true, Duration::from_secs(60))?;
    eprintln!(
        "[fuse] n2 not ready (mount not ok) {:.2}s after its FUSE client was killed, ready again {:.2}s after the kill",
        t_down.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(n2.exec(&["cat", &format!("{DOCROOT}/probe.txt")])?, stamp);

    // 4. apache2 on n2: killed (systemd's own Restart= brings it back at once), then
    // stopped cleanly (nothing but the agent starts it again); readiness follows both
    let main_pid = || n2.exec(&["systemctl", "show", "-P", "MainPID", "apache2"]);
    let pid_before = main_pid()?;
    n2.exec(&["systemctl", "kill", "-s", "KILL", "apache2"])?;
    let killed = Instant::now();
    wait::until(
        "apache2 on n2 running again with a new PID",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let pid = main_pid()?;
            Ok(if pid.trim() != pid_before.trim() && pid.trim() != "0" {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("MainPID {pid}"))
            })
        },
    )?;
    triad_tests::formation::wait_http(
        &format!("{}:80", n2.addr),
        "/health.html",
        Duration::from_secs(30),
    )?;
    wait_ready("n2", true, Duration::from_secs(60))?;
    eprintln!(
        "[apache] SIGKILL: n2 serving and ready {:.2}s after the kill",
        killed.elapsed().as_secs_f64()
    );
    n2.exec(&["systemctl", "stop", "apache2"])?;
    let stopped = Instant::now();
    let seen_down = wait_ready("n2", false, Duration::from_secs(3)).is_ok();
    n2.wait_unit("apache2", "active", Duration::from_secs(30))?;
    triad_tests::formation::wait_http(
        &format!("{}:80", n2.addr),
        "/health.html",
        Duration::from_secs(30),
    )?;
    wait_ready("n2", true, Duration::from_secs(60))?;
    eprintln!(
        "[apache] stop: started again by the agent, n2 ready {:.2}s after the stop (not-ready seen by the coordinator: {seen_down})",
        stopped.elapsed().as_secs_f64()
    );
    eprintln!("{}", triad::triadctl_status(false)?);
    // no private key of the lab's PKI in any log or command line, key files root-only
    let tls = triad::status_json()?["tls"]["status"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        tls.starts_with("mutual TLS as coordinator (coordinator), certificate valid"),
        "the lab's gRPC is mutual TLS, with no certificate near expiry: {tls}"
    );
    // Galera replicates over TLS and the formation's SSTs (mariabackup) went through socat's OpenSSL
    let galera_tls = triad::galera_tls_problems(&tb, "Using openssl based encryption with socat")?;
    assert!(galera_tls.is_empty(), "Galera TLS: {galera_tls:#?}");
    eprintln!("[galera tls] every node replicates with its cluster-CA certificate; the SSTs went over TLS");
    let refusals = triad::galera_tls_refusals(&tb)?;
    assert!(refusals.is_empty(), "Galera let in: {refusals:#?}");
    eprintln!("[galera tls] another CA's certificate refused (unknown ca), no certificate refused (certificate required)");
    // a renewed certificate reaches the running Galera without a restart of mysqld
    let n1 = &tb.nodes[0];
    let before = triad::galera_port_serial(n1)?;
    let renewed = Instant::now();
    triad::install_node_cert(n1)?;
    let after = wait::until(
        "n1's Galera port to present the renewed certificate",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let serial = triad::galera_port_serial(n1)?;
            Ok(if serial != before {
                Poll::Ready(serial)
            } else {
                Poll::Pending(format!("still serial {serial}"))
            })
        },
    )?;
    let synced = triad_tests::formation::wsrep(n1)?;
    assert_eq!(
        (
            synced.get("wsrep_local_state_comment").map(String::as_str),
            synced.get("wsrep_cluster_size").map(String::as_str)
        ),
        (Some("Synced"), Some("3")),
        "n1 after the reload"
    );
    let journal = triad::journal_tail(n1, "triad-agent", 200);
    assert!(
        journal.contains("reloaded by Galera"),
        "the agent says it reloaded Galera's certificate: {journal}"
    );
    eprintln!(
        "[galera tls] n1's renewed certificate (serial {before} -> {after}) served by the running Galera {:.1}s after it was written; still Synced in 3",
        renewed.elapsed().as_secs_f64()
    );
    // the same expiry in the coordinator's /metrics, read by curl
    let metrics = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("http://{}/metrics", triad::COORDINATOR_METRICS))
        .output()?;
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    for line in [
        "triad_tls_plaintext 0",
        "triad_tls_certificate_expiry_timestamp_seconds{holder=\"coordinator\",role=\"coordinator\"} ",
        "triad_tls_certificate_expiry_timestamp_seconds{holder=\"n1\",role=\"node\"} ",
        "triad_tls_certificate_expiry_timestamp_seconds{holder=\"n3\",role=\"node\"} ",
        "triad_node_ready{node=\"n2\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with(line)),
            "{line:?} in /metrics:\n{metrics}"
        );
    }
    eprintln!("[metrics] certificate expiry of the coordinator and n1-n3 in /metrics");
    let exposed = triad::exposed_secrets(&tb)?;
    assert!(exposed.is_empty(), "secrets exposed: {exposed:?}");
    eprintln!("[secrets] no private key material in the coordinator's log, the nodes' journals or any process's command line");
    split_brain_detected_and_resolved(&mut tb)?;
    tb.teardown_and_verify()?;
    Ok(())
}

/// `triadctl ARGS`: (exit success, stdout + stderr).
fn triadctl(args: &[&str]) -> anyhow::Result<(bool, String)> {
    let out = triad::triadctl(args)?.output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// The files the coordinator lists in split-brain.
fn split_brain_files() -> Result<Vec<String>> {
    Ok(triad::status_json()?["volume"]["split_brain_files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect())
}

/// Scenario (issue 20): a split-brain made on purpose (client quorum relaxed while the
/// coordinator is stopped) is detected (status, DEGRADED, /metrics), the app gets an error,
/// the coordinator puts the quorum back, and the operator's command resolves it: the same
/// copy on every brick, the app reads it, the status clears, the timeline says who did it.
fn split_brain_detected_and_resolved(tb: &mut Testbed) -> anyhow::Result<()> {
    let (file, copies) = (
        "split.txt",
        ["n1-alone-and-the-longest-copy", "n2-alone", "n3-alone-too"],
    );
    let ours = copies[0];
    let path = format!("/{file}");
    triad::stop_coordinator(tb)?;
    let made = triad_tests::splitbrain::make(tb, file, copies);
    let diagnosis = |tb: &Testbed, when: &str| {
        for n in &tb.nodes {
            eprintln!(
                "[split-brain] {when}, {}: {:?}",
                n.name,
                n.sh(&format!(
                    "cat {BRICK}/{file}; echo; getfattr -d -m trusted.afr -e hex {BRICK}/{file} 2>&1 | grep client; \
                     grep -E 'www-client-[0-9]+: (Connected|disconnected from)' {MOUNT_LOG} | tail -4 | cut -c1-120"
                ))
            );
        }
        eprintln!(
            "[split-brain] {when}: {:?}",
            tb.nodes[0].sh(&format!("gluster volume heal {VOLUME} info split-brain"))
        );
    };
    diagnosis(tb, "made");
    triad::resume_coordinator(tb)?;
    made?;
    let made_at = Instant::now();
    let listed = wait::until(
        "the split-brain in triadctl status",
        Duration::from_secs(180),
        Duration::from_millis(500),
        || {
            let files = split_brain_files()?;
            Ok(if files.contains(&path) {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{files:?}; {}", volume_status_line()))
            })
        },
    );
    if listed.is_err() {
        diagnosis(tb, "not listed");
    }
    listed?;
    let detected = made_at.elapsed();
    let status = triad::status_json()?;
    assert_eq!(status["healthy"], false, "{status}");
    assert!(
        status["degraded"].to_string().contains("split-brain"),
        "{status}"
    );
    assert!(volume_status_line().contains("SPLIT-BRAIN 1"), "{status}");
    // the app on n2, once its client is back on every brick, gets an error and no copy:
    // glusterfs 10.3 fails the lookup itself ("no read subvols for /split.txt" in the
    // client's log, ENOTCONN to the app); a client that had it open would get EIO
    triad_tests::splitbrain::wait_connected(&tb.nodes[1], tb.nodes.len())?;
    let read = tb.nodes[1].sh(&format!("cat {DOCROOT}/{file}"));
    let refused = read.as_ref().is_err_and(|e| {
        let e = e.to_string();
        e.contains("Input/output error") || e.contains("Transport endpoint is not connected")
    });
    if !refused {
        eprintln!(
            "[split-brain] n2's client log: {:?}",
            tb.nodes[1].sh(&format!("tail -30 {MOUNT_LOG} | cut -c1-300"))
        );
    }
    assert!(refused, "the app reads a file in split-brain: {read:?}");
    let metrics = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("http://{}/metrics", triad::COORDINATOR_METRICS))
        .output()?;
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("triad_volume_split_brain_entries{") && l.ends_with(" 1")),
        "/metrics counts it:\n{metrics}"
    );
    eprintln!(
        "[split-brain] {path} detected {:.1}s after it was made; the app gets an error ({}); /metrics counts it",
        detected.as_secs_f64(),
        read.as_ref().err().map(|e| e.to_string()).unwrap_or_default().lines().last().unwrap_or_default()
    );
    // the coordinator put client quorum back
    let n1 = &tb.nodes[0];
    wait::until(
        "cluster.quorum-type back to auto",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let value = volume_option(n1, "cluster.quorum-type")?;
            Ok(if value == "auto" {
                Poll::Ready(())
            } else {
                Poll::Pending(value)
            })
        },
    )?;
    // bad input is refused with gluster's own words, and nothing changes
    let (ok, said) = triadctl(&[
        "volume",
        "resolve",
        "/not-there.txt",
        "--policy",
        "bigger-file",
    ])?;
    assert!(!ok && said.contains("/not-there.txt"), "{said}");
    let (ok, said) = triadctl(&[
        "volume",
        "resolve",
        "../etc/passwd",
        "--policy",
        "bigger-file",
    ])?;
    assert!(
        !ok && said.contains("is not a file of the volume"),
        "{said}"
    );
    let (ok, said) = triadctl(&["volume", "resolve", &path, "--policy", "source-brick"])?;
    assert!(!ok && said.contains("needs the brick"), "{said}");
    // the operator picks the bigger copy
    let t = Instant::now();
    let (ok, said) = triadctl(&["volume", "resolve", &path, "--policy", "bigger-file"])?;
    assert!(ok && said.contains(&format!("Healed {path}")), "{said}");
    let resolved = t.elapsed();
    let sums: Vec<String> = tb
        .nodes
        .iter()
        .map(|n| n.sh(&format!("sha256sum < {BRICK}/{file}")))
        .collect::<std::result::Result<_, _>>()?;
    assert!(
        sums.iter().all(|s| s == &sums[0]),
        "the same copy on every brick: {sums:?}"
    );
    for n in &tb.nodes[1..] {
        assert_eq!(n.sh(&format!("cat {DOCROOT}/{file}"))?, ours, "{}", n.name);
    }
    wait::until(
        "the split-brain gone from triadctl status",
        Duration::from_secs(180),
        Duration::from_millis(500),
        || {
            let files = split_brain_files()?;
            Ok(if files.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{files:?}"))
            })
        },
    )?;
    let (_, events) = triadctl(&["events", "--output", "json"])?;
    assert!(
        events.contains("volume resolve") && events.contains("bigger-file"),
        "{events}"
    );
    eprintln!(
        "[split-brain] resolved by `triadctl volume resolve {path} --policy bigger-file` in {:.2}s: one copy on every brick, the app reads it, the status clears, the timeline names the operator",
        resolved.as_secs_f64()
    );
    Ok(())
}

/// Scenario 5: a docroot that already holds files: the agent refuses to mount over it, says why,
/// deletes nothing; once the operator moves the files away it mounts.
#[test]
fn testbed_volume_triad_refuses_a_non_empty_docroot() -> anyhow::Result<()> {
    let mut tb = Testbed::for_test(3)?;
    let n3 = &tb.nodes[2];
    n3.sh(&format!(
        "mkdir -p {DOCROOT}/old && echo 'old site' > {DOCROOT}/index.html && echo keep > {DOCROOT}/old/data.txt"
    ))?;
    let before = n3.sh(&format!(
        "cd {DOCROOT} && find . -type f | sort | xargs sha256sum"
    ))?;
    // Galera is not what this test is about: not managed, not required
    install_triad(&mut tb, |tb, n| {
        format!(
            "{}\n[readiness]\nrequire = [\"gluster\", \"mount\"]\n",
            triad::agent_config(tb, n).replace("[galera]\n", "[galera]\nmanaged = false\n")
        )
    })?;
    let n3 = &tb.nodes[2];
    for n in &tb.nodes[..2] {
        triad::wait_docroot_mounted(n, Duration::from_secs(180))?;
        wait_ready(&n.name, true, Duration::from_secs(60))?;
    }
    let (_, ready, reason, _) = node_row("n3")?;
    assert!(
        !ready && reason.contains("mount absent"),
        "n3: ready={ready} reason={reason:?}"
    );
    let journal = wait::until(
        "n3's agent to log the refusal",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let j = triad::journal_tail(n3, "triad-agent", 200);
            Ok(
                if j.contains("refusing to mount the volume over /var/www/triad") {
                    Poll::Ready(j)
                } else {
                    Poll::Pending("no refusal in the journal yet".into())
                },
            )
        },
    )?;
    let line = journal
        .lines()
        .find(|l| l.contains("refusing to mount"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("index.html") && line.contains("allow_non_empty"),
        "{line}"
    );
    eprintln!("[refuse] n3: {line}");
    let fstype = n3.sh(&format!("findmnt -n -o FSTYPE {DOCROOT} || true"))?;
    assert!(
        fstype.trim().is_empty(),
        "nothing mounted over the files: {fstype}"
    );
    let after = n3.sh(&format!(
        "cd {DOCROOT} && find . -type f | sort | xargs sha256sum"
    ))?;
    assert_eq!(before, after, "the files are untouched");
    // the operator moves them away: the agent mounts
    n3.sh(&format!(
        "mkdir -p /root/old-docroot && mv {DOCROOT}/* /root/old-docroot/"
    ))?;
    triad::wait_docroot_mounted(n3, Duration::from_secs(60))?;
    wait_ready("n3", true, Duration::from_secs(60))?;
    tb.teardown_and_verify()?;
    Ok(())
}
