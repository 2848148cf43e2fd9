//! `triad-lab bench-volume`: the figures issue 5 asks for, on a fresh lab driven by Triad:
//! the three-node volume formed from nothing, a dead FUSE mount to not-ready and to ready
//! again (several rounds), and the agent's CPU and RSS while idle and while Apache serves a
//! bounded load, beside one prometheus-node-exporter (Debian's) measured in the same run as
//! a footprint reference.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};
use crate::hostproc::HostProc;
use crate::node::Node;
use crate::testbed::{Testbed, TestbedOptions};
use crate::wait::{self, Poll};
use crate::{http, triad};

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// utime+stime (self), cutime+cstime (waited-for children), in clock ticks, and RSS in KiB,
/// from a /proc/PID/stat and /proc/PID/status text.
fn parse_proc(stat: &str, status: &str) -> Option<(u64, u64, u64)> {
    // fields after the ")" of comm: state is field 3; utime 14, stime 15, cutime 16, cstime 17
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some((n(14)? + n(15)?, n(16)? + n(17)?, rss))
}

/// A process to sample: inside a node (by unit) or on the host (by PID).
enum Target<'a> {
    Unit(&'a Node, &'a str),
    Host(u32),
}

fn sample(t: &Target) -> Result<(u64, u64, u64)> {
    let (stat, status) = match t {
        Target::Unit(node, unit) => {
            let pid = node.exec(&["systemctl", "show", "-P", "MainPID", unit])?;
            let pid = pid.trim();
            (
                node.exec(&["cat", &format!("/proc/{pid}/stat")])?,
                node.exec(&["cat", &format!("/proc/{pid}/status")])?,
            )
        }
        Target::Host(pid) => (
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_err(|e| LabError::Other(format!("/proc/{pid}/stat: {e}")))?,
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .map_err(|e| LabError::Other(format!("/proc/{pid}/status: {e}")))?,
        ),
    };
    parse_proc(&stat, &status).ok_or_else(|| LabError::Other("unparsable /proc stat".into()))
}

/// CPU % of one core (self, children) and RSS MiB at the end, over `window`.
struct Usage {
    cpu_self: f64,
    cpu_children: f64,
    rss_mib: f64,
}

fn measure(targets: &[Target], window: Duration, during: impl FnOnce()) -> Result<Vec<Usage>> {
    let before: Vec<_> = targets.iter().map(sample).collect::<Result<_>>()?;
    let t = Instant::now();
    during();
    let elapsed = t.elapsed().max(window);
    let after: Vec<_> = targets.iter().map(sample).collect::<Result<_>>()?;
    // CLK_TCK is 100 on Linux x86_64
    let pct = |ticks: u64| ticks as f64 / 100.0 / elapsed.as_secs_f64() * 100.0;
    Ok(before
        .iter()
        .zip(&after)
        .map(|(b, a)| Usage {
            cpu_self: pct(a.0.saturating_sub(b.0)),
            cpu_children: pct(a.1.saturating_sub(b.1)),
            rss_mib: a.2 as f64 / 1024.0,
        })
        .collect())
}

/// `rate` GETs per second of /index.php on `addr` for `window` from `threads` threads;
/// (ok, failed).
fn load(addr: &str, rate: u64, threads: u64, window: Duration) -> (u64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let per_thread = Duration::from_secs_f64(threads as f64 / rate as f64);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
            s.spawn(move || {
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    match http::get(addr, crate::wordpress::NODE_PAGE, Duration::from_secs(5)) {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    next += per_thread;
                    if let Some(d) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(d);
                    }
                }
            });
        }
        std::thread::sleep(window);
        stop.store(true, Ordering::Relaxed);
    });
    (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

/// Scrape node_exporter once a second (what a Prometheus at a 1 s interval would do) while
/// `window` runs.
fn scrape_for(addr: &str, window: Duration) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        let _ = http::get(addr, "/metrics", Duration::from_secs(2));
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn status_row(id: &str) -> Result<(bool, String)> {
    let v = triad::status_json()?;
    let row = v["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["id"] == id).cloned())
        .ok_or_else(|| LabError::Other(format!("{id} not in status")))?;
    Ok((
        row["live"].as_bool().unwrap_or(false) && row["ready"].as_bool().unwrap_or(false),
        row["services"]["mount"].as_str().unwrap_or("?").to_string(),
    ))
}

/// The agent's .deb, refused when it is older than the release binary it should hold or
/// than any source file of the agent (a stale package would measure old code).
fn release_agent_deb() -> Result<std::path::PathBuf> {
    let deb = triad::find_agent_deb().ok_or_else(|| {
        LabError::Other(
            "no target/debian/triad-agent_*.deb: `make deb` builds it (`make bench-volume` does)"
                .into(),
        )
    })?;
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let deb_time = modified(&deb);
    let root = crate::host::workspace_dir();
    let mut newer = Vec::new();
    let release = root.join("target/release/triad-agent");
    if modified(&release) > deb_time {
        newer.push(release.display().to_string());
    }
    let mut dirs = vec![root.join("agent/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if modified(&p) > deb_time {
                newer.push(p.display().to_string());
            }
        }
    }
    if !newer.is_empty() {
        return Err(LabError::Other(format!(
            "{} is older than {} (and {} more): `make deb` rebuilds it",
            deb.display(),
            newer[0],
            newer.len() - 1
        )));
    }
    Ok(deb)
}

pub fn run(rounds: u32, window: Duration, nodes: usize) -> Result<()> {
    let exporter_bin = "/usr/bin/prometheus-node-exporter";
    if !std::path::Path::new(exporter_bin).exists() {
        return Err(LabError::Other(format!(
            "{exporter_bin} missing: apt-get install prometheus-node-exporter (the footprint reference)"
        )));
    }
    triad::cargo_build()?;
    // the agent as users run it: the release build, from the package (`make bench-volume`
    // builds it first with `make deb`)
    let deb = release_agent_deb()?;
    println!(
        "bench-volume measures triad-agent from {} (release build)",
        deb.display()
    );
    let mut tb = Testbed::up(TestbedOptions::default())?;
    for n in &tb.nodes {
        triad::install_agent_from(n, &triad::agent_config(&tb, n), Some(deb.clone()))?;
    }
    // the coordinator as users run it too: the release build `make deb` packaged
    let coordinator_bin = crate::host::workspace_dir().join("target/release/triad-coordinator");
    if !coordinator_bin.exists() {
        return Err(LabError::Other(format!(
            "{} missing: `make deb` builds it",
            coordinator_bin.display()
        )));
    }
    triad::start_coordinator_bin(&mut tb, &coordinator_bin)?;
    let t0 = Instant::now();
    let formed = wait::until(
        "the volume started",
        Duration::from_secs(240),
        Duration::from_millis(100),
        || {
            let v = triad::status_json()?;
            let line = v["volume"]["status"].as_str().unwrap_or("").to_string();
            Ok(if line.contains("started") {
                Poll::Ready(t0.elapsed())
            } else {
                Poll::Pending(line)
            })
        },
    )?;
    let mut mounted = Duration::ZERO;
    for n in &tb.nodes {
        triad::wait_docroot_mounted(n, Duration::from_secs(60))?;
        mounted = t0.elapsed();
    }
    println!(
        "volume formation from nothing (coordinator start -> volume started): {}",
        secs(formed)
    );
    println!("  -> docroot mounted on all 3 nodes: {}", secs(mounted));
    triad::publish_app(&tb.nodes[0])?;
    triad::wait_all_ready(&tb, 3, Duration::from_secs(180))?;
    println!(
        "  -> all 3 ready (app published at once): {}",
        secs(t0.elapsed())
    );

    let n2 = &tb.nodes[1];
    let mut downs = Vec::new();
    let mut ups = Vec::new();
    for round in 1..=rounds {
        n2.sh("pkill -9 -f '[g]lusterfs.*process-name fuse'")?;
        let killed = Instant::now();
        let down = wait::until(
            "n2 not ready",
            Duration::from_secs(30),
            Duration::from_millis(25),
            || {
                let (ready, mount) = status_row("n2")?;
                Ok(if !ready && mount != "ok" {
                    Poll::Ready(killed.elapsed())
                } else {
                    Poll::Pending(mount)
                })
            },
        )?;
        let up = wait::until(
            "n2 ready",
            Duration::from_secs(60),
            Duration::from_millis(25),
            || {
                let (ready, mount) = status_row("n2")?;
                Ok(if ready {
                    Poll::Ready(killed.elapsed())
                } else {
                    Poll::Pending(mount)
                })
            },
        )?;
        println!(
            "dead FUSE mount round {round}: not ready after {}, ready again after {}",
            secs(down),
            secs(up)
        );
        downs.push(down);
        ups.push(up);
        std::thread::sleep(Duration::from_secs(2));
    }
    downs.sort();
    ups.sort();
    if !downs.is_empty() {
        println!(
            "dead FUSE mount (median of {rounds}, seen by the coordinator): not ready {}, ready again {}",
            secs(downs[downs.len() / 2]),
            secs(ups[ups.len() / 2])
        );
    }

    // footprint: the agent on n1 beside one node_exporter on the host (loopback)
    let dir = tb.state.join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| LabError::Other(format!("mkdir: {e}")))?;
    let mut c = Command::new(exporter_bin);
    c.arg("--web.listen-address=127.0.0.1:19100");
    let mut exporter = HostProc::spawn(
        "prometheus-node-exporter",
        &mut c,
        &dir.join("node-exporter.log"),
    )?;
    let exporter_pid = exporter.pid as u32;
    wait::until(
        "node_exporter to answer",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || {
            Ok(
                match http::get("127.0.0.1:19100", "/metrics", Duration::from_secs(2)) {
                    Ok(r) if r.status == 200 => Poll::Ready(()),
                    other => Poll::Pending(format!("{:?}", other.map(|r| r.status))),
                },
            )
        },
    )?;
    let coordinator = coordinator_target(&tb)?;
    let n1 = &tb.nodes[0];
    let targets = [
        Target::Unit(n1, "triad-agent"),
        Target::Host(exporter_pid),
        Target::Unit(n1, "apache2"),
        coordinator,
    ];
    let idle = measure(&targets, window, || scrape_for("127.0.0.1:19100", window))?;
    let n1_addr = format!("{}:80", n1.addr);
    let mut served = (0, 0);
    let busy = measure(&targets, window, || {
        std::thread::scope(|s| {
            s.spawn(|| scrape_for("127.0.0.1:19100", window));
            served = load(&n1_addr, 100, 4, window);
        })
    })?;
    println!(
        "footprint over {}s windows (CPU % of one core: process + its children; RSS at the end):",
        window.as_secs()
    );
    let names = [
        "triad-agent (n1)",
        "prometheus-node-exporter (host, scraped 1/s)",
        "apache2 main (n1)",
        "triad-coordinator (host, 3 nodes)",
    ];
    for (label, usage) in [("idle", &idle), ("under load", &busy)] {
        for (name, u) in names.iter().zip(usage.iter()) {
            println!(
                "  {label:10} {name:46} cpu {:5.2}% + children {:5.2}%  rss {:6.1} MiB",
                u.cpu_self, u.cpu_children, u.rss_mib
            );
        }
    }
    println!(
        "  load: {} GET /index.php on n1 at 100/s from 4 threads, {} failed",
        served.0, served.1
    );
    let ratio = |a: &Usage, b: &Usage| {
        let total = |u: &Usage| u.cpu_self + u.cpu_children;
        if total(b) > 0.0 {
            format!("{:.2}", total(a) / total(b))
        } else {
            "n/a".to_string()
        }
    };
    println!(
        "  agent/node_exporter CPU ratio (process + children): idle {}, under load {}",
        ratio(&idle[0], &idle[1]),
        ratio(&busy[0], &busy[1])
    );
    if idle[1].rss_mib > 0.0 {
        println!(
            "  agent/node_exporter RSS ratio: idle {:.2}, under load {:.2}",
            idle[0].rss_mib / idle[1].rss_mib,
            busy[0].rss_mib / busy[1].rss_mib
        );
    }
    // the coordinator's cost grows with the nodes it watches: grow the lab with web nodes
    // (stateless, what autoscaling adds) and measure it idle again
    if nodes > tb.nodes.len() {
        let from = tb.nodes.len();
        let t = Instant::now();
        for _ in from..nodes {
            tb.add_node(Duration::from_secs(120))?;
            let Some(n) = tb.nodes.last() else {
                return Err(LabError::Other(
                    "the node just added is not recorded".into(),
                ));
            };
            let config = triad::stateless_web_node(&tb, n)?;
            triad::install_agent_from(n, &config, Some(deb.clone()))?;
        }
        triad::wait_all_ready(&tb, nodes, Duration::from_secs(300))?;
        println!(
            "grown from {from} to {nodes} nodes (web), all ready after {}",
            secs(t.elapsed())
        );
        let targets = [coordinator_target(&tb)?];
        let grown = measure(&targets, window, || std::thread::sleep(window))?;
        println!(
            "  idle       {:46} cpu {:5.2}% + children {:5.2}%  rss {:6.1} MiB",
            format!("triad-coordinator (host, {nodes} nodes)"),
            grown[0].cpu_self,
            grown[0].cpu_children,
            grown[0].rss_mib
        );
    }
    exporter.stop(Duration::from_secs(5))?;
    tb.teardown()?;
    Ok(())
}

/// The coordinator on the host, and which build it is (the bench says what it measured).
fn coordinator_target<'a>(tb: &Testbed) -> Result<Target<'a>> {
    let pid = tb
        .coordinator
        .as_ref()
        .map(|c| c.pid as u32)
        .ok_or_else(|| LabError::Other("no triad-coordinator running".into()))?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"));
    println!("triad-coordinator measured: pid {pid}, {exe}");
    Ok(Target::Host(pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields_are_read_after_the_command_name() {
        let stat =
            "123 (triad agent) S 1 123 123 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 9 0 100 1000 500";
        let status = "Name:\ttriad-agent\nVmRSS:\t   6912 kB\n";
        assert_eq!(parse_proc(stat, status), Some((300, 10, 6912)));
    }
}
