//! One node cut off the network (issue 26) must cost no more than a crash: each of n1, n2,
//! n3 in turn loses its link (`ip link set vb-NAME down`: packets dropped, no reset) for
//! 20 s under a steady client through HAProxy and writers through the other two nodes.
//! Real Galera, Gluster (replica 3, ping-timeout 5 s), Apache and HAProxy, driven by the
//! agents and the coordinator.
//!
//! Checked for each cut: requests fail only around the cut (those the isolated node held
//! when its link went down); the other two nodes stay live and ready in the coordinator's
//! view throughout; the isolated node leaves the balancer; after the heal it is back and
//! ready; no acknowledged row or file is lost. The figures (failed requests, the longest
//! gap without an answer, heal to ready) are printed for the closing note.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use triad_tests::formation::sql;
use triad_tests::haproxy::LISTEN;
use triad_tests::node::HOST_ADDR;
use triad_tests::triad::{self, DOCROOT};
use triad_tests::wait::{self, Poll};
use triad_tests::{faults, http, LabError, Node, Testbed};

type Result<T> = std::result::Result<T, LabError>;

/// How long each node stays cut off.
const CUT_FOR: Duration = Duration::from_secs(20);
/// A client's bound on one request (longer than the volume's ping-timeout, which every
/// node waits out once when a replica vanishes).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Failed requests are allowed only when sent this close to the cut.
const AROUND_THE_CUT: Duration = Duration::from_secs(1);
/// Upper bound on heal → ready; the measured time is printed.
const READY_AFTER_HEAL: Duration = Duration::from_secs(60);

/// One client request: when it was sent (since the round began), whether it answered 200,
/// and how long it took.
#[derive(Debug, Clone, Copy)]
struct Sample {
    sent: Duration,
    ok: bool,
    took: Duration,
}

/// What one round saw.
#[derive(Debug, Default)]
struct Round {
    samples: Mutex<Vec<Sample>>,
    /// (since the round began, what was wrong) for a survivor not live and ready.
    survivor_problems: Mutex<Vec<(Duration, String)>>,
    /// When the isolated node was first seen out of the balancer's active members.
    out_of_balancer: Mutex<Option<Duration>>,
    rows: Mutex<Vec<u64>>,
    files: Mutex<Vec<u64>>,
}

fn row(v: &serde_json::Value, id: &str) -> Option<serde_json::Value> {
    v["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"] == id)
        .cloned()
}

fn live_and_ready(v: &serde_json::Value, id: &str) -> std::result::Result<(), String> {
    let Some(n) = row(v, id) else {
        return Err(format!("{id} not listed"));
    };
    if n["live"].as_bool() == Some(true) && n["ready"].as_bool() == Some(true) {
        Ok(())
    } else {
        Err(format!(
            "{id} live={} ready={} reason={}",
            n["live"], n["ready"], n["not_ready_reason"]
        ))
    }
}

fn active_in_balancer(v: &serde_json::Value, id: &str) -> bool {
    v["balancer"]["members"].as_array().is_some_and(|m| {
        m.iter()
            .any(|m| m.as_str() == Some(&format!("{id} active")))
    })
}

/// An insert through `node`'s SQL port from the host; acknowledged only when the server
/// answered within the bound.
fn insert_through(node: &Node, id: u64) -> bool {
    let mut client = Command::new("mariadb");
    client
        .args([
            "-h",
            &node.addr,
            "-u",
            "triad_test",
            "-ptriad-test",
            "--connect-timeout=2",
            "-e",
        ])
        .arg(format!("INSERT INTO lab.acked (id) VALUES ({id})"));
    triad_tests::cmd::output_timeout(&mut client, Duration::from_secs(10))
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A file written through `node`'s mount (written to a temporary name, then renamed, as
/// an app would); acknowledged when the command succeeded within the bound.
fn write_file_through(node: &Node, id: u64) -> bool {
    let script = format!(
        "printf '{id}\\n' > {DOCROOT}/partition/.{id}.tmp && mv {DOCROOT}/partition/.{id}.tmp {DOCROOT}/partition/{id}"
    );
    node.exec_output(&["sh", "-c", &script], Duration::from_secs(10))
        .is_ok_and(|o| o.status.success())
}

fn prepare(tb: &mut Testbed) -> Result<()> {
    triad::cargo_build()?;
    for n in &tb.nodes {
        triad::install_agent(tb, n)?;
    }
    triad::start_coordinator(tb)?;
    triad::wait_docroot_mounted(&tb.nodes[0], Duration::from_secs(240))?;
    triad::publish_app(&tb.nodes[0])?;
    tb.nodes[0].sh(&format!("mkdir -p {DOCROOT}/partition"))?;
    triad::wait_all_ready(3, Duration::from_secs(240))?;
    sql(
        &tb.nodes[0],
        &format!(
            "CREATE DATABASE IF NOT EXISTS lab; CREATE TABLE IF NOT EXISTS lab.acked (id BIGINT PRIMARY KEY); \
             CREATE USER IF NOT EXISTS 'triad_test'@'{HOST_ADDR}' IDENTIFIED BY 'triad-test'; \
             GRANT ALL ON lab.* TO 'triad_test'@'{HOST_ADDR}'"
        ),
    )?;
    tb.start_haproxy()?;
    tb.haproxy()?.wait_all_up(Duration::from_secs(30))?;
    triad::wait_balancer_members(Duration::from_secs(60))?;
    Ok(())
}

/// Cuts `victim` off for [`CUT_FOR`] under load; returns the round's figures line.
fn round(tb: &Testbed, victim: &Node, next_id: &mut u64) -> Result<String> {
    let survivors: Vec<&Node> = tb.nodes.iter().filter(|n| n.name != victim.name).collect();
    let seen = Round::default();
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let first_id = *next_id;
    let (cut_at, healed_at, ready_after) = std::thread::scope(|scope| -> Result<_> {
        // the steady client: 4 threads, about 5 requests a second each
        for _ in 0..4 {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(180) {
                    let sent = start.elapsed();
                    let t = Instant::now();
                    let ok = http::get(LISTEN, "/index.php", CLIENT_TIMEOUT)
                        .is_ok_and(|r| r.status == 200);
                    seen.samples.lock().unwrap().push(Sample {
                        sent,
                        ok,
                        took: t.elapsed(),
                    });
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        }
        // writers through the survivors: rows and files, alternating nodes
        scope.spawn(|| {
            let mut id = first_id;
            while !stop.load(Ordering::Relaxed) && id < first_id + 10_000 {
                let node = survivors[(id % 2) as usize];
                if insert_through(node, id) {
                    seen.rows.lock().unwrap().push(id);
                }
                if write_file_through(node, id) {
                    seen.files.lock().unwrap().push(id);
                }
                id += 1;
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        // the coordinator's view, twice a second
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(180) {
                if let Ok(v) = triad::status_json() {
                    for s in &survivors {
                        if let Err(problem) = live_and_ready(&v, &s.name) {
                            seen.survivor_problems
                                .lock()
                                .unwrap()
                                .push((start.elapsed(), problem));
                        }
                    }
                    let mut out = seen.out_of_balancer.lock().unwrap();
                    if out.is_none() && !active_in_balancer(&v, &victim.name) {
                        *out = Some(start.elapsed());
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        let result = (|| -> Result<_> {
            // steady state first (the round's own traffic reaches every node)
            wait::until(
                "the client's first answers",
                Duration::from_secs(30),
                Duration::from_millis(100),
                || {
                    let n = seen.samples.lock().unwrap().iter().filter(|s| s.ok).count();
                    Ok(if n >= 10 {
                        Poll::Ready(())
                    } else {
                        Poll::Pending(format!("{n} answers"))
                    })
                },
            )?;
            *seen.out_of_balancer.lock().unwrap() = None;
            let cut_at = start.elapsed();
            faults::isolate(victim)?;
            eprintln!(
                "[partition] {} cut off at {:.1}s",
                victim.name,
                cut_at.as_secs_f64()
            );
            // the cut's length IS the fault being injected (not a wait for a condition);
            // the client, writers and monitor run meanwhile
            std::thread::sleep(CUT_FOR);
            faults::heal(victim)?;
            let healed_at = start.elapsed();
            let t = Instant::now();
            wait::until(
                &format!("{} live and ready after the heal", victim.name),
                READY_AFTER_HEAL,
                Duration::from_millis(250),
                || {
                    let v = triad::status_json()?;
                    Ok(match live_and_ready(&v, &victim.name) {
                        Ok(()) => Poll::Ready(()),
                        Err(problem) => Poll::Pending(problem),
                    })
                },
            )?;
            let ready_after = t.elapsed();
            // a few seconds of steady state after it, for the client's figures
            let settle = Instant::now();
            wait::until(
                "answers after the heal",
                Duration::from_secs(30),
                Duration::from_millis(100),
                || {
                    let n = seen
                        .samples
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|s| s.ok && s.sent > healed_at + ready_after)
                        .count();
                    Ok(if n >= 20 && settle.elapsed() > Duration::from_secs(3) {
                        Poll::Ready(())
                    } else {
                        Poll::Pending(format!("{n} answers"))
                    })
                },
            )?;
            Ok((cut_at, healed_at, ready_after))
        })();
        stop.store(true, Ordering::Relaxed);
        if result.is_err() {
            // the link must come back even when the round failed
            let _ = faults::heal(victim);
        }
        result
    })?;
    *next_id = first_id + 10_000;

    let samples = seen.samples.lock().unwrap().clone();
    let failed: Vec<Sample> = samples.iter().filter(|s| !s.ok).copied().collect();
    let outside: Vec<String> = failed
        .iter()
        .filter(|s| s.sent + AROUND_THE_CUT < cut_at || s.sent > cut_at + AROUND_THE_CUT)
        .map(|s| {
            format!(
                "sent at {:.1}s ({:.1}s)",
                s.sent.as_secs_f64(),
                s.took.as_secs_f64()
            )
        })
        .collect();
    let longest_wait = samples
        .iter()
        .filter(|s| s.ok)
        .map(|s| s.took)
        .max()
        .unwrap_or_default();
    let out = *seen.out_of_balancer.lock().unwrap();
    let problems = seen.survivor_problems.lock().unwrap().clone();
    let figures = format!(
        "{} cut off {:?}: {} requests, {} failed ({} outside ±{AROUND_THE_CUT:?} of the cut), \
         slowest answer {:.1}s; out of the balancer {} after the cut; ready {:.1}s after the \
         heal; {} rows and {} files acknowledged",
        victim.name,
        CUT_FOR,
        samples.len(),
        failed.len(),
        outside.len(),
        longest_wait.as_secs_f64(),
        out.map_or("never".to_string(), |o| format!(
            "{:.1}s",
            o.saturating_sub(cut_at).as_secs_f64()
        )),
        ready_after.as_secs_f64(),
        seen.rows.lock().unwrap().len(),
        seen.files.lock().unwrap().len(),
    );
    eprintln!("[partition] {figures}");

    assert!(
        problems.is_empty(),
        "{}: the other nodes must stay live and ready while it is cut off: {:?}",
        victim.name,
        problems
            .iter()
            .map(|(t, p)| format!("{:.1}s {p}", t.as_secs_f64()))
            .collect::<Vec<_>>()
    );
    assert!(
        outside.is_empty(),
        "{}: failed requests away from the cut (at {:.1}s, healed at {:.1}s): {outside:?}",
        victim.name,
        cut_at.as_secs_f64(),
        healed_at.as_secs_f64()
    );
    assert!(
        out.is_some_and(|o| o > cut_at && o < healed_at),
        "{}: not seen out of the balancer while cut off ({out:?})",
        victim.name
    );
    // nothing acknowledged is lost, on any node (the isolated one included, once healed)
    let rows = seen.rows.lock().unwrap().clone();
    let files = seen.files.lock().unwrap().clone();
    assert!(
        !rows.is_empty() && !files.is_empty(),
        "no write was acknowledged"
    );
    for node in &tb.nodes {
        let present: BTreeSet<u64> = sql(node, "SELECT id FROM lab.acked")?
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        let lost: Vec<u64> = rows
            .iter()
            .filter(|id| !present.contains(id))
            .copied()
            .collect();
        assert!(
            lost.is_empty(),
            "{}: acknowledged rows missing: {lost:?}",
            node.name
        );
        let listed: BTreeSet<u64> = node
            .sh(&format!("ls {DOCROOT}/partition"))?
            .split_whitespace()
            .filter_map(|l| l.parse().ok())
            .collect();
        let lost: Vec<u64> = files
            .iter()
            .filter(|id| !listed.contains(id))
            .copied()
            .collect();
        assert!(
            lost.is_empty(),
            "{}: acknowledged files missing: {lost:?}",
            node.name
        );
    }
    Ok(figures)
}

#[test]
fn testbed_partition_one_node_cut_off_costs_no_more_than_a_crash() -> anyhow::Result<()> {
    let mut tb = Testbed::for_test(3)?;
    prepare(&mut tb)?;
    let mut next_id = 1;
    let mut figures = Vec::new();
    for i in 0..tb.nodes.len() {
        let victim = &tb.nodes[i];
        figures.push(round(&tb, victim, &mut next_id)?);
        // the next cut starts from a whole cluster
        triad::wait_all_ready(3, Duration::from_secs(120))?;
    }
    for line in &figures {
        eprintln!("[partition] {line}");
    }
    tb.teardown_and_verify()?;
    Ok(())
}
