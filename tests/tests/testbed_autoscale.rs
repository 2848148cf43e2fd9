//! Autoscaling driven by Triad only (issue 8), on real Debian nodes: the coordinator's exec
//! provider runs `triad-lab add-node` / `remove-node` (a new container from the same image,
//! the agent installed the same way, role web). A bounded load through HAProxy above the
//! target grows the cluster from 3 to 4 nodes; the new node joins Galera by SST, mounts the
//! volume as a client and serves requests through the balancer; when the load stops it is
//! drained, leaves Galera cleanly and is removed, with no failed client request meanwhile.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use triad_tests::formation::wsrep;
use triad_tests::haproxy::LISTEN;
use triad_tests::http;
use triad_tests::triad;
use triad_tests::wait::{self, Poll};
use triad_tests::{LabError, Testbed};

type Result<T> = std::result::Result<T, LabError>;

/// Client counters of one load phase.
#[derive(Default)]
struct Load {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Answers that came from the autoscaled node.
    from_new: AtomicU64,
}

/// GETs of /index.php through HAProxy at about `per_sec` (one thread), until `stop`, at
/// most `limit`.
fn drive(load: &Load, per_sec: u64, stop: &AtomicBool, limit: Duration, new_node: &str) {
    let start = Instant::now();
    let period = Duration::from_micros(1_000_000 / per_sec.max(1));
    let mut next = start;
    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
        match http::get(LISTEN, "/index.php", Duration::from_secs(5)) {
            Ok(r) if r.status == 200 => {
                load.ok.fetch_add(1, Ordering::Relaxed);
                if r.body.trim() == new_node {
                    load.from_new.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {
                load.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        next += period;
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
}

fn autoscale_line() -> String {
    triad::autoscale_line().unwrap_or_default()
}

fn node_ready(id: &str) -> Option<bool> {
    let v = triad::status_json().ok()?;
    v["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"] == id)
        .map(|n| n["live"].as_bool() == Some(true) && n["ready"].as_bool() == Some(true))
}

#[test]
fn testbed_autoscale_grows_under_load_and_shrinks_without_failed_requests() -> anyhow::Result<()> {
    let mut tb = Testbed::for_test(3)?;
    triad::cargo_build()?;
    for n in &tb.nodes {
        triad::install_agent(&tb, n)?;
    }
    triad::start_coordinator_with(&mut tb, triad::Autoscale::Exec)?;
    triad::wait_docroot_mounted(&tb.nodes[0], Duration::from_secs(240))?;
    triad::publish_app(&tb.nodes[0])?;
    triad::wait_all_ready(3, Duration::from_secs(240))?;
    tb.start_haproxy()?;
    tb.haproxy()?.wait_all_up(Duration::from_secs(30))?;
    let idle = wait::until(
        "an idle autoscale line",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let line = autoscale_line();
            Ok(
                if line.contains("req/s over 3 ready") && line.contains("hold") {
                    Poll::Ready(line)
                } else {
                    Poll::Pending(line)
                },
            )
        },
    )?;
    eprintln!("[autoscale] idle: {idle}");

    // 1. about 90 req/s through the balancer, 4.5 x the lab's 20 req/s per node
    let new_node = "n4";
    let heavy = Load::default();
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let (decided, serving) = std::thread::scope(|s| -> Result<(Duration, Duration)> {
        for _ in 0..3 {
            s.spawn(|| drive(&heavy, 30, &stop, Duration::from_secs(420), new_node));
        }
        let result = (|| {
            let decided = wait::until(
                "the scale-out decision",
                Duration::from_secs(90),
                Duration::from_millis(250),
                || {
                    let line = autoscale_line();
                    Ok(
                        if line.contains("scaling out") || line.contains(&format!("{new_node} ")) {
                            Poll::Ready(t0.elapsed())
                        } else {
                            Poll::Pending(line)
                        },
                    )
                },
            )?;
            eprintln!(
                "[autoscale] decision {:.1}s after the load began: {}",
                decided.as_secs_f64(),
                autoscale_line()
            );
            let serving = wait::until(
                "the new node to answer through the balancer",
                Duration::from_secs(300),
                Duration::from_millis(250),
                || {
                    Ok(if heavy.from_new.load(Ordering::Relaxed) > 0 {
                        Poll::Ready(t0.elapsed())
                    } else {
                        Poll::Pending(format!(
                            "{}; n4 ready: {:?}",
                            autoscale_line(),
                            node_ready(new_node)
                        ))
                    })
                },
            )?;
            Ok((decided, serving))
        })();
        stop.store(true, Ordering::Relaxed);
        result
    })?;
    eprintln!(
        "[autoscale] scale-out: decision {:.1}s, {new_node} serving {:.1}s after the load began; \
         load ok {} failed {} ({} answered by {new_node})",
        decided.as_secs_f64(),
        serving.as_secs_f64(),
        heavy.ok.load(Ordering::Relaxed),
        heavy.failed.load(Ordering::Relaxed),
        heavy.from_new.load(Ordering::Relaxed)
    );
    assert_eq!(
        node_ready(new_node),
        Some(true),
        "{new_node} ready in the coordinator's view"
    );
    let n4_dir = tb.state.join("nodes/n4");
    assert!(
        n4_dir.exists(),
        "{new_node} was created under {}",
        n4_dir.display()
    );

    // 2. the load drops to a trickle (5 req/s, under the target): after the stabilization
    // window the autoscaled node is drained and removed, and no request fails meanwhile
    let light = Load::default();
    let stop = AtomicBool::new(false);
    let t1 = Instant::now();
    let removed = std::thread::scope(|s| -> Result<Duration> {
        s.spawn(|| drive(&light, 5, &stop, Duration::from_secs(420), new_node));
        let result = wait::until(
            "the autoscaled node to be drained and removed",
            Duration::from_secs(400),
            Duration::from_millis(500),
            || {
                // gone from the lab (remove-node ran) and no longer serving in the view
                let gone =
                    !tb.state.join("nodes/n4").exists() && node_ready(new_node) != Some(true);
                Ok(if gone {
                    Poll::Ready(t1.elapsed())
                } else {
                    Poll::Pending(autoscale_line())
                })
            },
        );
        stop.store(true, Ordering::Relaxed);
        result
    })?;
    eprintln!(
        "[autoscale] scale-in: {new_node} removed {:.1}s after the load dropped; light load ok {} failed {}",
        removed.as_secs_f64(),
        light.ok.load(Ordering::Relaxed),
        light.failed.load(Ordering::Relaxed)
    );
    assert!(light.ok.load(Ordering::Relaxed) > 100, "the light load ran");
    assert_eq!(
        light.failed.load(Ordering::Relaxed),
        0,
        "failed requests during the scale-in"
    );
    // Galera: the three core nodes stay one Primary component of 3 (n4 left cleanly)
    for n in &tb.nodes {
        let w = wsrep(n)?;
        assert_eq!(
            w.get("wsrep_cluster_status").map(String::as_str),
            Some("Primary"),
            "{}",
            n.name
        );
        assert_eq!(
            w.get("wsrep_cluster_size").map(String::as_str),
            Some("3"),
            "{}",
            n.name
        );
    }
    tb.teardown_and_verify()?;
    Ok(())
}
