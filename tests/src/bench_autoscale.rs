//! The autoscaling scenario on the lab (issue 8) and its figures: the coordinator's exec
//! provider runs `triad-lab add-node` / `remove-node`; a bounded load through HAProxy above
//! the target (about 90 req/s, 4.5 x the lab's 20 req/s per node) grows 3 → 4 nodes; the
//! load drops to 5 req/s and the autoscaled node is drained, leaves Galera and is removed.
//!
//! Used by `testbed_autoscale` (which asserts on the figures) and by `triad-lab
//! bench-autoscale` (`make bench-autoscale`), which prints them for a number of rounds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::haproxy::LISTEN;
use crate::wait::{self, Poll};
use crate::{http, triad, Result, Testbed, TestbedOptions};

/// The node the scale-out adds (the lab's autoscaled nodes are n4, n5, ...).
pub const NEW_NODE: &str = "n4";

/// Client counters of one load phase.
#[derive(Debug, Default)]
pub struct Load {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// Answers that came from the autoscaled node.
    pub from_new: AtomicU64,
}

/// GETs of /index.php through HAProxy at about `per_sec` (one thread), until `stop`, at
/// most `limit`.
fn drive(load: &Load, per_sec: u64, stop: &AtomicBool, limit: Duration) {
    let start = Instant::now();
    let period = Duration::from_micros(1_000_000 / per_sec.max(1));
    let mut next = start;
    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
        match http::get(LISTEN, crate::wordpress::NODE_PAGE, Duration::from_secs(5)) {
            Ok(r) if r.status == 200 => {
                load.ok.fetch_add(1, Ordering::Relaxed);
                if r.body.trim() == NEW_NODE {
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

/// Whether `id` is live and ready in the coordinator's view (None: not listed).
pub fn node_ready(id: &str) -> Option<bool> {
    let v = triad::status_json().ok()?;
    v["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"] == id)
        .map(|n| n["live"].as_bool() == Some(true) && n["ready"].as_bool() == Some(true))
}

/// A shell command inside a node the lab added (`triad-lab exec`): its output.
fn lab_exec(node: &str, script: &str) -> Result<String> {
    let lab = triad::find_bin("triad-lab")
        .ok_or_else(|| crate::LabError::Other("no triad-lab binary".into()))?;
    let out = crate::cmd::output_timeout(
        std::process::Command::new(lab).args(["exec", node, "--", "sh", "-c", script]),
        Duration::from_secs(30),
    )?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One round's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// From the load starting to the coordinator's scale-out decision.
    pub decided: Duration,
    /// From the load starting to the first answer from the new node through the balancer.
    pub serving: Duration,
    pub out_ok: u64,
    pub out_failed: u64,
    pub out_from_new: u64,
    /// The new node's mysqld processes while it served (a stateless web node runs none).
    pub new_node_mysqld: String,
    /// What the new node answered for the app's home page, asked directly (its database
    /// through its endpoint): `Ok` with the status, or why not.
    pub new_node_app: std::result::Result<u16, String>,
    /// From the load dropping to the autoscaled node being removed from the lab.
    pub removed: Duration,
    pub in_ok: u64,
    pub in_failed: u64,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "scale-out: decision {:.1}s, {NEW_NODE} serving {:.1}s after the load began; {} ok, \
             {} failed ({} answered by {NEW_NODE}; its mysqld: {}; WordPress from it: {}); scale-in: {NEW_NODE} \
             removed {:.1}s after the load dropped; {} ok, {} failed",
            self.decided.as_secs_f64(),
            self.serving.as_secs_f64(),
            self.out_ok,
            self.out_failed,
            self.out_from_new,
            if self.new_node_mysqld.is_empty() {
                "none"
            } else {
                &self.new_node_mysqld
            },
            match &self.new_node_app {
                Ok(status) => format!("HTTP {status}"),
                Err(e) => e.clone(),
            },
            self.removed.as_secs_f64(),
            self.in_ok,
            self.in_failed
        )
    }
}

/// The lab ready for the scenario: agents installed, the coordinator autoscaling through
/// the exec provider, the app published, HAProxy up, the autoscale line idle.
pub fn prepare(tb: &mut Testbed) -> Result<()> {
    triad::cargo_build()?;
    for n in &tb.nodes {
        triad::install_agent(tb, n)?;
    }
    triad::start_coordinator_with(tb, triad::Autoscale::Exec)?;
    triad::wait_docroot_mounted(&tb.nodes[0], Duration::from_secs(240))?;
    triad::publish_app(&tb.nodes[0])?;
    triad::wait_all_ready(tb, 3, Duration::from_secs(240))?;
    crate::wordpress::install(tb, &tb.nodes[0])?;
    tb.start_haproxy()?;
    tb.haproxy()?.wait_all_up(Duration::from_secs(30))?;
    wait_idle()
}

/// The autoscale line over 3 ready nodes holding.
fn wait_idle() -> Result<()> {
    let idle = wait::until(
        "an idle autoscale line over 3 ready nodes",
        Duration::from_secs(120),
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
    Ok(())
}

/// WordPress's home page asked of the new node directly (the balancer's URL, connected to
/// the node): its status when it carries the site's title.
fn new_node_home_page() -> std::result::Result<u16, String> {
    let jar = std::env::temp_dir().join(format!("triad-autoscale-{}.jar", std::process::id()));
    let browser = crate::wordpress::Browser::new(jar.clone())
        .via_node(&crate::node::node_addr(NEW_NODE[1..].parse().unwrap_or(4)));
    let answer = browser.get("/");
    let _ = std::fs::remove_file(&jar);
    match answer {
        Ok(a) if a.status == 200 && a.text().contains(crate::wordpress::SITE_TITLE) => Ok(a.status),
        Ok(a) => Err(format!(
            "HTTP {}: {}",
            a.status,
            crate::wordpress::excerpt(&a.text())
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// One round: scale out under load, then in once the load drops. Errors name what was
/// awaited; the counters are returned for the caller to judge.
pub fn scenario(tb: &Testbed) -> Result<Figures> {
    // 1. about 90 req/s through the balancer
    let heavy = Load::default();
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let mut new_node_mysqld = String::new();
    let mut new_node_app = Err("not asked".to_string());
    let (decided, serving) = std::thread::scope(|s| -> Result<(Duration, Duration)> {
        for _ in 0..3 {
            s.spawn(|| drive(&heavy, 30, &stop, Duration::from_secs(420)));
        }
        let result = (|| {
            let decided = wait::until(
                "the scale-out decision",
                Duration::from_secs(90),
                Duration::from_millis(250),
                || {
                    let line = autoscale_line();
                    Ok(
                        if line.contains("scaling out") || line.contains(&format!("{NEW_NODE} ")) {
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
                            "{}; {NEW_NODE} ready: {:?}",
                            autoscale_line(),
                            node_ready(NEW_NODE)
                        ))
                    })
                },
            )?;
            Ok((decided, serving))
        })();
        // while it serves: a stateless web node runs no mysqld
        new_node_mysqld = lab_exec(NEW_NODE, "pgrep -a -x mariadbd || true")
            .unwrap_or_else(|e| format!("(could not ask: {e})"));
        // and serves the app itself: WordPress's home page, its database through the endpoint
        if result.is_ok() {
            new_node_app = new_node_home_page();
        }
        stop.store(true, Ordering::Relaxed);
        result
    })?;

    // 2. the load drops to a trickle (5 req/s, under the target): after the stabilization
    // window the autoscaled node is drained and removed
    let light = Load::default();
    let stop = AtomicBool::new(false);
    let t1 = Instant::now();
    let removed = std::thread::scope(|s| -> Result<Duration> {
        s.spawn(|| drive(&light, 5, &stop, Duration::from_secs(420)));
        let result = wait::until(
            "the autoscaled node to be drained and removed",
            Duration::from_secs(400),
            Duration::from_millis(500),
            || {
                // gone from the lab (remove-node ran) and no longer serving in the view
                let gone = !tb.state.join(format!("nodes/{NEW_NODE}")).exists()
                    && node_ready(NEW_NODE) != Some(true);
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
    Ok(Figures {
        decided,
        serving,
        out_ok: heavy.ok.load(Ordering::Relaxed),
        out_failed: heavy.failed.load(Ordering::Relaxed),
        out_from_new: heavy.from_new.load(Ordering::Relaxed),
        new_node_mysqld,
        new_node_app,
        removed,
        in_ok: light.ok.load(Ordering::Relaxed),
        in_failed: light.failed.load(Ordering::Relaxed),
    })
}

/// `triad-lab bench-autoscale`: `rounds` rounds on one fresh lab, each printed, then the
/// medians.
pub fn run(rounds: u32) -> Result<()> {
    let mut tb = Testbed::up(TestbedOptions::default())?;
    let outcome = (|| -> Result<Vec<Figures>> {
        prepare(&mut tb)?;
        let mut all = Vec::new();
        for round in 1..=rounds {
            if round > 1 {
                // the cooldown and the balancer settle before the next load
                wait_idle()?;
            }
            let figures = scenario(&tb)?;
            println!("bench-autoscale round {round}: {figures}");
            all.push(figures);
        }
        Ok(all)
    })();
    let teardown = tb.teardown();
    let all = outcome?;
    teardown?;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    if !all.is_empty() {
        println!(
            "bench-autoscale: {} round(s); median decision {:.1}s, serving {:.1}s, removed {:.1}s \
             after the load dropped; failed requests: {} during scale-out, {} during scale-in",
            all.len(),
            median(all.iter().map(|f| f.decided.as_secs_f64()).collect()),
            median(all.iter().map(|f| f.serving.as_secs_f64()).collect()),
            median(all.iter().map(|f| f.removed.as_secs_f64()).collect()),
            all.iter().map(|f| f.out_failed).sum::<u64>(),
            all.iter().map(|f| f.in_failed).sum::<u64>()
        );
    }
    Ok(())
}
