//! Node maintenance (issue 21), the reference deployment's own first test: two of three
//! nodes taken away, the last one keeps serving and takes writes, and after the others come
//! back every write is on every node and every brick. Twice: with `triadctl maintenance`
//! first, then powered off at the same moment without a command (the agents' shutdown
//! leave). Real Galera, Gluster, Apache and HAProxy, driven by the agents and the
//! coordinator; the client is plain HTTP through HAProxy and SQL on n1.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use triad_tests::chaos::{losses, prepare_writer, write_through_balancer};
use triad_tests::formation::{sql, wsrep};
use triad_tests::haproxy::LISTEN;
use triad_tests::triad::{self, APP_DATABASE};
use triad_tests::wait::{self, Poll};
use triad_tests::{faults, http, Node, Testbed};

const POWEROFF_LIMIT: Duration = Duration::from_secs(150);

/// Reads through the balancer every 100 ms while `f` runs: (requests, failures as
/// "after Xs: why").
fn reading_while<T>(f: impl FnOnce() -> T) -> (T, usize, Vec<String>) {
    let stop = AtomicBool::new(false);
    let failures = Mutex::new(Vec::new());
    let started = Instant::now();
    let mut count = 0;
    /// Ends the reader also when `f` panics (the scope joins it before unwinding on).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let out = std::thread::scope(|s| {
        let stopper = Stop(&stop);
        let reader = s.spawn(|| {
            let mut n = 0;
            // bounded: a run of this test is minutes, not hours
            while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(900) {
                n += 1;
                match http::get(
                    LISTEN,
                    triad_tests::wordpress::NODE_PAGE,
                    Duration::from_secs(10),
                ) {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => failures.lock().unwrap().push(format!(
                        "after {:.1}s: HTTP {} {}",
                        started.elapsed().as_secs_f64(),
                        r.status,
                        r.body.trim()
                    )),
                    Err(e) => failures.lock().unwrap().push(format!(
                        "after {:.1}s: {e}",
                        started.elapsed().as_secs_f64()
                    )),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            n
        });
        let out = f();
        drop(stopper);
        count = reader.join().expect("the reader thread");
        out
    });
    (out, count, failures.into_inner().unwrap())
}

/// Both nodes powered off at the same moment (SIGTERM to nspawn: systemd shuts down);
/// answers each one's time to power off and whether it did so cleanly.
fn poweroff_at_once(a: &Node, b: &Node) -> anyhow::Result<Vec<(String, Duration, bool)>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = [a, b]
            .into_iter()
            .map(|n| {
                s.spawn(move || {
                    let t = Instant::now();
                    n.poweroff(POWEROFF_LIMIT)
                        .map(|clean| (n.name.clone(), t.elapsed(), clean))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a poweroff thread").map_err(Into::into))
            .collect()
    })
}

/// n1 alone serves: Galera Primary of size 1, live and ready, and takes a row and a file
/// through the balancer and a row by SQL.
fn last_node_takes_writes(
    n1: &Node,
    ids: std::ops::RangeInclusive<u64>,
    rows: &mut Vec<u64>,
    files: &mut Vec<u64>,
) -> anyhow::Result<()> {
    wait::until_default(
        "n1 Primary alone (wsrep_cluster_size 1)",
        Duration::from_secs(60),
        || {
            let w = wsrep(n1).unwrap_or_default();
            let (status, size) = (
                w.get("wsrep_cluster_status").cloned().unwrap_or_default(),
                w.get("wsrep_cluster_size").cloned().unwrap_or_default(),
            );
            Ok(if status == "Primary" && size == "1" {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("status {status:?}, size {size:?}"))
            })
        },
    )?;
    let (start, end) = (*ids.start(), *ids.end());
    for id in start..end {
        write_through_balancer("row", id)
            .map_err(|e| anyhow::anyhow!("a row through the balancer with n1 alone: {e}"))?;
        rows.push(id);
        write_through_balancer("file", id)
            .map_err(|e| anyhow::anyhow!("a file through the balancer with n1 alone: {e}"))?;
        files.push(id);
    }
    sql(
        n1,
        &format!("INSERT INTO {APP_DATABASE}.chaos_rows (id) VALUES ({end})"),
    )?;
    rows.push(end);
    Ok(())
}

/// Gossip's and the status's word on a node's maintenance.
fn maintenance_of(status: &serde_json::Value, node: &str) -> Option<String> {
    status["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"] == node)?["maintenance"]
        .as_str()
        .map(str::to_string)
}

/// The volume's quorum option `key` as n1's glusterd has it.
fn volume_option(n1: &Node, key: &str) -> String {
    n1.exec_limit(
        &["gluster", "volume", "get", triad::VOLUME, key],
        Duration::from_secs(30),
    )
    .unwrap_or_default()
    .lines()
    .find(|l| l.starts_with(key))
    .and_then(|l| l.split_whitespace().nth(1))
    .unwrap_or("")
    .to_string()
}

fn wait_quorum(n1: &Node, server: &str, client: &str, limit: Duration) -> anyhow::Result<Duration> {
    Ok(wait::until_default(
        &format!("the volume's quorum: server {server}, client {client}"),
        limit,
        || {
            let s = volume_option(n1, "cluster.server-quorum-type");
            let c = volume_option(n1, "cluster.quorum-type");
            Ok(if s == server && c == client {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("server {s:?}, client {c:?}"))
            })
        },
    )
    .map(|_| ())?)
    .map(|()| Duration::ZERO)
}

fn back_and_replicated(tb: &Testbed, rows: &[u64], files: &[u64]) -> anyhow::Result<()> {
    triad::wait_all_ready(tb, 3, Duration::from_secs(300))?;
    // every brick back and healed before the quorum is put back
    wait_quorum(&tb.nodes[0], "server", "auto", Duration::from_secs(180))?;
    let mut last = (Vec::new(), Vec::new());
    let found = wait::until_default(
        "every acknowledged row on every node and file on every brick",
        Duration::from_secs(120),
        || {
            last = losses(tb, rows, files)?;
            Ok(if last.0.is_empty() && last.1.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("missing: {:?} {:?}", last.0, last.1))
            })
        },
    );
    assert!(
        found.is_ok(),
        "acknowledged writes missing after the return: rows {:?}, files {:?}",
        last.0,
        last.1
    );
    Ok(())
}

#[test]
fn testbed_maintenance_two_nodes_away_leave_the_last_one_serving() -> anyhow::Result<()> {
    let mut tb = Testbed::for_test(3)?;
    prepare_writer(&mut tb)?;
    let (n1, n2, n3) = (&tb.nodes[0], &tb.nodes[1], &tb.nodes[2]);
    let mut rows = Vec::new();
    let mut files = Vec::new();

    // 1. Planned: n2 and n3 into maintenance, then powered off at once.
    let ((), requests, failed) = reading_while(|| {
        for node in ["n2", "n3"] {
            let t = Instant::now();
            let out = triad_tests::cmd::output_timeout(
                &mut triad::triadctl(&["maintenance", node, "on"]).expect("triadctl"),
                Duration::from_secs(150),
            )
            .expect("triadctl maintenance");
            let said = String::from_utf8_lossy(&out.stdout).into_owned();
            eprintln!(
                "[maintenance] {node} on in {:.1}s: {}",
                t.elapsed().as_secs_f64(),
                said.trim()
            );
            assert!(
                out.status.success() && said.contains("may be stopped"),
                "triadctl maintenance {node} on: {said} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
    eprintln!("[maintenance] reads through the balancer while n2 and n3 left: {requests}, failed {failed:?}");
    assert!(
        failed.is_empty(),
        "reads failed while n2 and n3 left for maintenance: {failed:?}"
    );
    let status = triad::status_json()?;
    assert_eq!(
        maintenance_of(&status, "n2")
            .as_deref()
            .map(|r| r.starts_with("operator")),
        Some(true),
        "{status}"
    );
    assert!(status["node_maintenance"].is_string(), "{status}");
    wait_quorum(n1, "none", "fixed", Duration::from_secs(30))?;
    let (offs, requests, failed) = reading_while(|| poweroff_at_once(n2, n3));
    eprintln!(
        "[maintenance] powered off in maintenance: {:?}; reads {requests}, failed {failed:?}",
        offs?
    );
    assert!(
        failed.is_empty(),
        "reads failed while n2 and n3 powered off: {failed:?}"
    );
    last_node_takes_writes(n1, 1..=3, &mut rows, &mut files)?;
    for n in [n2, n3] {
        faults::start(n)?;
    }
    // back in maintenance: the agents hold mysqld
    wait::until_default(
        "n2 and n3 live again, still in maintenance",
        Duration::from_secs(120),
        || {
            let s = triad::status_json()?;
            let live = |id: &str| {
                s["nodes"]
                    .as_array()
                    .is_some_and(|ns| ns.iter().any(|n| n["id"] == id && n["live"] == true))
            };
            Ok(
                if live("n2")
                    && live("n3")
                    && maintenance_of(&s, "n2").is_some()
                    && maintenance_of(&s, "n3").is_some()
                {
                    Poll::Ready(())
                } else {
                    Poll::Pending(s["degraded"].to_string())
                },
            )
        },
    )?;
    for n in [n2, n3] {
        // not started even once in this boot (0: never)
        let started = n.exec_limit(
            &[
                "systemctl",
                "show",
                "--value",
                "-p",
                "ExecMainStartTimestampMonotonic",
                "mariadb",
            ],
            Duration::from_secs(10),
        )?;
        assert_eq!(
            started.trim(),
            "0",
            "{}: mysqld must stay stopped while in maintenance, across the reboot ({})",
            n.name,
            n.unit_state("mariadb")?
        );
    }
    for node in ["n2", "n3"] {
        let out = triad_tests::cmd::output_timeout(
            &mut triad::triadctl(&["maintenance", node, "off"])?,
            Duration::from_secs(60),
        )?;
        assert!(
            out.status.success(),
            "triadctl maintenance {node} off: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    back_and_replicated(&tb, &rows, &files)?;
    eprintln!(
        "[maintenance] planned: back, quorum normal, {} rows and {} files on every node and brick",
        rows.len(),
        files.len()
    );

    // 2. Unplanned: n2 and n3 powered off at the same moment, no command.
    let (offs, requests, failed) = reading_while(|| poweroff_at_once(n2, n3));
    let offs = offs?;
    eprintln!("[maintenance] powered off at once: {offs:?}; reads {requests}, failed {failed:?}");
    // each left Galera on the coordinator's grant, one after the other
    let events = triad_tests::cmd::output_timeout(
        &mut triad::triadctl(&["events", "--output", "json"])?,
        Duration::from_secs(30),
    )?;
    let events = String::from_utf8_lossy(&events.stdout).into_owned();
    for node in ["n2", "n3"] {
        assert!(
            events.contains(&format!("{node} left Galera for maintenance (shutdown)")),
            "{node}'s shutdown leave is not in the timeline: {events}"
        );
    }
    assert!(
        offs.iter().all(|(_, _, clean)| *clean),
        "n2 and n3 must power off cleanly (the agent's leave within TimeoutStopSec): {offs:?}"
    );
    last_node_takes_writes(n1, 4..=6, &mut rows, &mut files)?;
    assert!(
        failed.len() <= 2,
        "reads through the balancer failed while n2 and n3 shut down: {failed:?}"
    );
    for n in [n2, n3] {
        faults::start(n)?;
    }
    back_and_replicated(&tb, &rows, &files)?;
    eprintln!("[maintenance] powered off: back, quorum normal, {} rows and {} files on every node and brick", rows.len(), files.len());
    tb.teardown_and_verify()?;
    Ok(())
}
