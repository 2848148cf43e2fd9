//! `triad-lab chaos` (issue 20): a nemesis on a fresh lab. Faults are drawn from a seed
//! ([`plan`], pure: the same seed gives the same sequence) and applied one at a time: node
//! crash, reboot, link cut, SIGKILL of mysqld, glusterd, the brick, the FUSE client or
//! Apache, full outage at once and staggered, coordinator kill and restart. After each the
//! nemesis waits until every node is ready and the volume steady again (the recovery, timed)
//! and pauses. Meanwhile real clients run through HAProxy: a reader of the node page, and
//! a writer that inserts unique rows through the app's database endpoint and writes unique
//! files on the volume, both by a PHP page on the nodes. At the end every acknowledged row
//! must be on every core node and every acknowledged file, with its content, on every
//! brick. Printed: each fault and recovery, the longest time without an answer, failed
//! requests, lost rows and files; written beside it: a timeline picture (SVG, no external
//! assets). It is also an operator's rehearsal tool (README, "Chaos").

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::haproxy::LISTEN;
use crate::triad::{self, APP_DATABASE, APP_PASSWORD_FILE, BRICK, DOCROOT};
use crate::wait::{self, Poll};
use crate::{faults, http, LabError, Result, Testbed, TestbedOptions};

/// A small deterministic generator (xorshift64*): the fault sequence is a function of the
/// seed alone.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // never zero (xorshift's fixed point); the seed mixed so 1, 2, 3 differ at once
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform whole seconds in `lo..=hi`.
    pub fn secs(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_secs(lo + self.below(hi - lo + 1))
    }
}

/// A process the nemesis kills with SIGKILL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Mysqld,
    Glusterd,
    Brick,
    Fuse,
    Apache,
}

impl Process {
    fn name(self) -> &'static str {
        match self {
            Process::Mysqld => "mysqld",
            Process::Glusterd => "glusterd",
            Process::Brick => "the brick (glusterfsd)",
            Process::Fuse => "the FUSE client",
            Process::Apache => "apache2",
        }
    }
}

/// One fault, with its parameters; nodes by index (n1 = 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Crash {
        node: usize,
        down: Duration,
    },
    Reboot {
        node: usize,
    },
    Cut {
        node: usize,
        down: Duration,
    },
    Kill {
        node: usize,
        process: Process,
    },
    Outage {
        stagger: Option<Duration>,
        down: Duration,
    },
    CoordinatorRestart,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Crash { node, down } => write!(f, "crash n{} for {}s", node + 1, down.as_secs()),
            Fault::Reboot { node } => write!(f, "reboot n{}", node + 1),
            Fault::Cut { node, down } => {
                write!(f, "cut n{}'s link for {}s", node + 1, down.as_secs())
            }
            Fault::Kill { node, process } => write!(f, "kill {} on n{}", process.name(), node + 1),
            Fault::Outage {
                stagger: None,
                down,
            } => write!(f, "full outage, all at once, for {}s", down.as_secs()),
            Fault::Outage {
                stagger: Some(s),
                down,
            } => write!(
                f,
                "full outage, staggered by {} ms, for {}s",
                s.as_millis(),
                down.as_secs()
            ),
            Fault::CoordinatorRestart => write!(f, "kill the coordinator and start it again"),
        }
    }
}

/// Pure: `count` faults drawn from `seed` for `nodes` nodes, each with the pause after its
/// recovery. Weights: node crash and link cut 3 each, a process kill 1 per process, reboot,
/// each full-outage shape and the coordinator 1 each.
pub fn plan(seed: u64, nodes: usize, count: usize) -> Vec<(Fault, Duration)> {
    let mut rng = Rng::new(seed);
    let nodes = nodes as u64;
    (0..count)
        .map(|_| {
            let node = rng.below(nodes) as usize;
            let fault = match rng.below(15) {
                0..=2 => Fault::Crash {
                    node,
                    down: rng.secs(5, 30),
                },
                3..=5 => Fault::Cut {
                    node,
                    down: rng.secs(5, 30),
                },
                6 => Fault::Reboot { node },
                7 => Fault::Kill {
                    node,
                    process: Process::Mysqld,
                },
                8 => Fault::Kill {
                    node,
                    process: Process::Glusterd,
                },
                9 => Fault::Kill {
                    node,
                    process: Process::Brick,
                },
                10 => Fault::Kill {
                    node,
                    process: Process::Fuse,
                },
                11 => Fault::Kill {
                    node,
                    process: Process::Apache,
                },
                12 => Fault::Outage {
                    stagger: None,
                    down: rng.secs(5, 20),
                },
                13 => Fault::Outage {
                    stagger: Some(Duration::from_millis(500 + rng.below(2500))),
                    down: rng.secs(5, 20),
                },
                _ => Fault::CoordinatorRestart,
            };
            (fault, rng.secs(5, 20))
        })
        .collect()
}

/// How long one recovery may take before the run gives up on it (and says so).
const RECOVERY_BOUND: Duration = Duration::from_secs(300);
/// A client's bound on one request (HAProxy's `timeout server`).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// The writer's page: `?op=row&id=N` inserts row N through the node's database endpoint,
/// `?op=file&id=N` writes file N (its content N) on the volume; "ok" only when done.
const CHAOS_PHP: &str = r#"<?php
header('Content-Type: text/plain');
$id = (int) ($_GET['id'] ?? 0);
if (($_GET['op'] ?? '') === 'file') {
    $dir = __DIR__ . '/chaos';
    $tmp = "$dir/.$id.tmp";
    if (@file_put_contents($tmp, "$id\n") === false || !@rename($tmp, "$dir/$id")) {
        http_response_code(500); echo "file $id: ", error_get_last()['message'] ?? '?', "\n"; exit;
    }
    echo "ok $id ", gethostname(), "\n"; exit;
}
mysqli_report(MYSQLI_REPORT_OFF);
$db = @mysqli_connect('127.0.0.1', 'APP_DB', rtrim((string) @file_get_contents('APP_PW')), 'APP_DB', 3307);
if (!$db) { http_response_code(500); echo 'connect: ', mysqli_connect_error(), "\n"; exit; }
if (!mysqli_query($db, "INSERT INTO chaos_rows (id) VALUES ($id)")) {
    http_response_code(500); echo 'insert: ', mysqli_error($db), "\n"; exit;
}
echo "ok $id ", gethostname(), "\n";
"#;

/// A node's state as the coordinator reported it at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeState {
    Ready,
    NotReady,
    Dead,
}

/// What the run saw, shared by the clients, the monitor and the nemesis.
#[derive(Debug, Default)]
struct Seen {
    /// Reader requests: (sent, since the start; answered 200).
    reads: Mutex<Vec<(Duration, bool)>>,
    /// Failed client requests, reader and writer: (when, what).
    failures: Mutex<Vec<(Duration, String)>>,
    rows: Mutex<Vec<u64>>,
    files: Mutex<Vec<u64>>,
    /// The coordinator's view once a second: (when, each node's state).
    states: Mutex<Vec<(Duration, Vec<NodeState>)>>,
}

/// One applied fault: when it began and ended, and how long until healthy again (None:
/// not within [`RECOVERY_BOUND`]).
#[derive(Debug, Clone)]
struct Applied {
    fault: Fault,
    began: Duration,
    undone: Duration,
    recovered: Option<Duration>,
}

/// The run's figures.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub faults: usize,
    pub recoveries_timed_out: usize,
    pub longest_recovery: Duration,
    pub longest_unavailable: Duration,
    pub requests: usize,
    pub failed_requests: usize,
    pub rows_acked: usize,
    pub files_acked: usize,
    pub lost_rows: Vec<String>,
    pub lost_files: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chaos seed {}: {} faults, longest recovery {:.1}s ({} not recovered within {}s); \
             longest time without an answer {:.1}s; {} of {} client requests failed; \
             {} rows and {} files acknowledged: ",
            self.seed,
            self.faults,
            self.longest_recovery.as_secs_f64(),
            self.recoveries_timed_out,
            RECOVERY_BOUND.as_secs(),
            self.longest_unavailable.as_secs_f64(),
            self.failed_requests,
            self.requests,
            self.rows_acked,
            self.files_acked,
        )?;
        // a lab left unrecovered is not read back: its losses are unknown, not one each
        if self.recoveries_timed_out > 0 {
            write!(f, "losses not checked (a recovery did not finish)")
        } else {
            write!(
                f,
                "lost {} rows, {} files",
                self.lost_rows.len(),
                self.lost_files.len()
            )
        }
    }
}

fn node_states(v: &serde_json::Value, names: &[String]) -> Vec<NodeState> {
    names
        .iter()
        .map(|name| {
            let row = v["nodes"]
                .as_array()
                .and_then(|a| a.iter().find(|n| n["id"] == name.as_str()));
            match row {
                Some(n) if n["ready"].as_bool() == Some(true) => NodeState::Ready,
                Some(n) if n["live"].as_bool() == Some(true) => NodeState::NotReady,
                _ => NodeState::Dead,
            }
        })
        .collect()
}

/// Every node ready and the volume steady, by the coordinator's status.
fn healthy(tb: &Testbed, nodes: usize) -> std::result::Result<(), String> {
    let v = triad::status_json().map_err(|e| e.to_string())?;
    let ready = v["summary"]["ready"].as_u64().unwrap_or(0) as usize;
    if ready < nodes {
        // name who is not ready and why, so a red CI run says where to look
        let not_ready: Vec<String> = v["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["ready"].as_bool() != Some(true))
            .map(|n| {
                format!(
                    "{} (live {}, {})",
                    n["id"].as_str().unwrap_or("?"),
                    n["live"],
                    n["not_ready_reason"]
                        .as_str()
                        .unwrap_or("no reason published")
                )
            })
            .collect();
        return Err(format!(
            "{ready} of {nodes} ready; not ready: {}; galera: {}; volume: {}",
            not_ready.join(", "),
            v["galera"]["status"],
            v["volume"]["status"]
        ));
    }
    if v["volume"]["state"] != "steady" {
        return Err(format!("volume: {}", v["volume"]["status"]));
    }
    // ground truth beside Triad's own "does not see" in the volume status: every
    // glusterd's peer list, read on the nodes
    let down = triad::glusterd_peers_down(tb);
    if !down.is_empty() {
        return Err(down.join("; "));
    }
    Ok(())
}

/// What a recovery that timed out leaves to read before the lab is torn down: the status
/// as the operator sees it, and each node's mounts and agent, glusterd and Apache journals.
fn dump_not_ready(tb: &Testbed) {
    if let Ok(status) = triad::triadctl_status(false) {
        println!("--- triadctl status:\n{status}");
    }
    for node in &tb.nodes {
        let mounts = node
            .sh("findmnt -t fuse.glusterfs -n -o TARGET,SOURCE; systemctl is-active apache2 glusterd")
            .unwrap_or_else(|e| format!("unreadable: {e}"));
        println!("--- {} mounts and units:\n{mounts}", node.name);
        for unit in ["triad-agent", "glusterd", "apache2"] {
            println!(
                "--- {} {unit}:\n{}",
                node.name,
                triad::journal_tail(node, unit, 25)
            );
        }
    }
}

fn apply(tb: &mut Testbed, fault: &Fault) -> Result<()> {
    match fault {
        Fault::Crash { node, down } => {
            faults::crash(&tb.nodes[*node])?;
            // the time the node stays down IS the fault being injected
            std::thread::sleep(*down);
            faults::start(&tb.nodes[*node])?;
        }
        Fault::Reboot { node } => {
            faults::reboot(&tb.nodes[*node])?;
        }
        Fault::Cut { node, down } => {
            faults::isolate(&tb.nodes[*node])?;
            std::thread::sleep(*down);
            faults::heal(&tb.nodes[*node])?;
        }
        Fault::Kill { node, process } => {
            let n = &tb.nodes[*node];
            match process {
                Process::Mysqld => faults::kill_unit(n, "mariadb").map(|_| ())?,
                Process::Glusterd => faults::kill_unit(n, "glusterd").map(|_| ())?,
                Process::Apache => faults::kill_unit(n, "apache2").map(|_| ())?,
                Process::Brick => {
                    n.sh("pkill -KILL -x glusterfsd || true")?;
                }
                Process::Fuse => {
                    // `[g]`: the pattern must not match the `sh -c` that runs pkill (a
                    // 30-minute run killed its own shell: "failed (signal: 9)")
                    n.sh("pkill -KILL -f -- '[g]lusterfs.*--process-name fuse' || true")?;
                }
            }
        }
        Fault::Outage { stagger, down } => {
            faults::full_outage(tb, *stagger)?;
            std::thread::sleep(*down);
            for n in &tb.nodes {
                faults::start(n)?;
            }
        }
        Fault::CoordinatorRestart => {
            if let Some(c) = tb.coordinator.as_ref() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            triad::restart_coordinator(tb)?;
        }
    }
    Ok(())
}

/// The lab ready for chaos: the serving lab of the partition bench, the writer's page and
/// its table and directory.
fn prepare(tb: &mut Testbed) -> Result<()> {
    prepare_writer(tb)
}

/// One write through the balancer with the writer's page ([`prepare_writer`]): `op` is
/// `row` (an insert through the app's database endpoint) or `file` (on the volume).
pub fn write_through_balancer(op: &str, id: u64) -> std::result::Result<(), String> {
    match http::get(
        LISTEN,
        &format!("/chaos.php?op={op}&id={id}"),
        CLIENT_TIMEOUT,
    ) {
        Ok(r) if r.status == 200 => Ok(()),
        Ok(r) => Err(format!("{op} {id}: HTTP {} {}", r.status, r.body.trim())),
        Err(e) => Err(format!("{op} {id}: {e}")),
    }
}

/// The serving lab of the partition bench with the writer's page, its table and
/// directory ([`write_through_balancer`], [`losses`]).
pub fn prepare_writer(tb: &mut Testbed) -> Result<()> {
    crate::bench_partition::prepare(tb)?;
    let page = CHAOS_PHP
        .replace("APP_DB", APP_DATABASE)
        .replace("APP_PW", APP_PASSWORD_FILE);
    tb.nodes[0].sh(&format!(
        "mkdir -p {DOCROOT}/chaos && chown www-data: {DOCROOT}/chaos && \
         cat > {DOCROOT}/chaos.php.tmp <<'EOF'\n{page}EOF\nmv {DOCROOT}/chaos.php.tmp {DOCROOT}/chaos.php"
    ))?;
    tb.nodes[0].sh(&format!(
        "mariadb -e 'CREATE TABLE IF NOT EXISTS {APP_DATABASE}.chaos_rows (id BIGINT PRIMARY KEY)'"
    ))?;
    let check = http::get(LISTEN, "/chaos.php?op=row&id=0", CLIENT_TIMEOUT)?;
    if check.status != 200 {
        return Err(LabError::Other(format!(
            "the writer's page answered HTTP {}: {}",
            check.status,
            check.body.trim()
        )));
    }
    Ok(())
}

/// Acknowledged rows missing on some core node, and acknowledged files missing or
/// different on some brick.
/// The acknowledged rows missing on some node and files missing on some brick, named.
pub fn losses(tb: &Testbed, rows: &[u64], files: &[u64]) -> Result<(Vec<String>, Vec<String>)> {
    let mut lost_rows = Vec::new();
    let mut lost_files = Vec::new();
    for n in &tb.nodes {
        let have: BTreeSet<u64> =
            crate::formation::sql(n, &format!("SELECT id FROM {APP_DATABASE}.chaos_rows"))?
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
        lost_rows.extend(
            rows.iter()
                .filter(|id| !have.contains(id))
                .map(|id| format!("row {id} on {}", n.name)),
        );
        let listing = n.exec_limit(
            &[
                "sh",
                "-c",
                &format!("cd {BRICK}/chaos && for f in [0-9]*; do printf '%s %s\\n' \"$f\" \"$(cat \"$f\")\"; done"),
            ],
            Duration::from_secs(60),
        )?;
        let have: BTreeSet<(u64, u64)> = listing
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(f, c)| Some((f.parse().ok()?, c.trim().parse().ok()?)))
            .collect();
        lost_files.extend(
            files
                .iter()
                .filter(|id| !have.contains(&(**id, **id)))
                .map(|id| format!("file {id} on {}'s brick", n.name)),
        );
    }
    Ok((lost_rows, lost_files))
}

fn longest_gap(reads: &[(Duration, bool)], end: Duration) -> Duration {
    let mut answered: Vec<Duration> = reads.iter().filter(|r| r.1).map(|r| r.0).collect();
    answered.sort();
    answered.push(end);
    answered
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or_default()
}

/// Runs chaos for `duration` on a fresh lab of three nodes, prints every fault and
/// recovery and the report, writes the timeline to `svg`, and returns the report.
pub fn run(duration: Duration, seed: u64, svg: &Path) -> Result<Report> {
    let mut tb = Testbed::up(TestbedOptions::default())?;
    let outcome = (|| -> Result<Report> {
        prepare(&mut tb)?;
        chaos(&mut tb, duration, seed, svg)
    })();
    let teardown = tb.teardown();
    let report = outcome?;
    teardown?;
    Ok(report)
}

/// The chaos itself, on a prepared lab.
pub fn chaos(tb: &mut Testbed, duration: Duration, seed: u64, svg: &Path) -> Result<Report> {
    let names: Vec<String> = tb.nodes.iter().map(|n| n.name.clone()).collect();
    let nodes = names.len();
    // more faults than can fit: the run stops at `duration`
    let planned = plan(seed, nodes, 1000);
    let seen = Seen::default();
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let mut applied: Vec<Applied> = Vec::new();
    println!("chaos: seed {seed}, {duration:?}, {nodes} nodes");
    let tb_ref = &mut *tb;
    let result = std::thread::scope(|scope| -> Result<()> {
        for _ in 0..2 {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let sent = start.elapsed();
                    let result = http::get(LISTEN, crate::wordpress::NODE_PAGE, CLIENT_TIMEOUT);
                    let ok = result.as_ref().is_ok_and(|r| r.status == 200);
                    seen.reads.lock().unwrap().push((sent, ok));
                    if !ok {
                        let what = match result {
                            Ok(r) => format!("read: HTTP {} {}", r.status, r.body.trim()),
                            Err(e) => format!("read: {e}"),
                        };
                        seen.failures.lock().unwrap().push((sent, what));
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            });
        }
        scope.spawn(|| {
            let mut id = 1u64;
            while !stop.load(Ordering::Relaxed) && id < 1_000_000 {
                for (op, acked) in [("row", &seen.rows), ("file", &seen.files)] {
                    let sent = start.elapsed();
                    match http::get(
                        LISTEN,
                        &format!("/chaos.php?op={op}&id={id}"),
                        CLIENT_TIMEOUT,
                    ) {
                        Ok(r) if r.status == 200 && r.body.starts_with(&format!("ok {id} ")) => {
                            acked.lock().unwrap().push(id)
                        }
                        Ok(r) => seen.failures.lock().unwrap().push((
                            sent,
                            format!("{op} {id}: HTTP {} {}", r.status, r.body.trim()),
                        )),
                        Err(e) => seen
                            .failures
                            .lock()
                            .unwrap()
                            .push((sent, format!("{op} {id}: {e}"))),
                    }
                }
                id += 1;
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(v) = triad::status_json() {
                    seen.states
                        .lock()
                        .unwrap()
                        .push((start.elapsed(), node_states(&v, &names)));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        let nemesis = (|| -> Result<()> {
            for (fault, pause) in &planned {
                if start.elapsed() >= duration {
                    break;
                }
                let began = start.elapsed();
                println!("[{:7.1}s] fault: {fault}", began.as_secs_f64());
                apply(tb_ref, fault)?;
                let undone = start.elapsed();
                let recovered = wait::until(
                    "every node ready and the volume steady",
                    RECOVERY_BOUND,
                    Duration::from_millis(500),
                    || {
                        Ok(match healthy(tb_ref, nodes) {
                            Ok(()) => Poll::Ready(()),
                            Err(why) => Poll::Pending(why),
                        })
                    },
                )
                .map(|()| start.elapsed() - began);
                match &recovered {
                    Ok(took) => println!(
                        "[{:7.1}s] recovered {:.1}s after the fault began",
                        start.elapsed().as_secs_f64(),
                        took.as_secs_f64()
                    ),
                    Err(e) => {
                        println!(
                            "[{:7.1}s] NOT RECOVERED: {e}",
                            start.elapsed().as_secs_f64()
                        );
                        dump_not_ready(tb_ref);
                    }
                }
                let ok = recovered.is_ok();
                applied.push(Applied {
                    fault: fault.clone(),
                    began,
                    undone,
                    recovered: recovered.ok(),
                });
                if !ok {
                    // the lab is broken: stop drawing faults, keep the evidence
                    break;
                }
                // the pause between faults is part of the drawn sequence
                std::thread::sleep(*pause);
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        nemesis
    });
    let end = start.elapsed();
    result?;
    let rows = seen.rows.lock().unwrap().clone();
    let files = seen.files.lock().unwrap().clone();
    let (lost_rows, lost_files) = if applied.iter().all(|a| a.recovered.is_some()) {
        losses(tb, &rows, &files)?
    } else {
        (
            vec!["not checked: a recovery did not finish".into()],
            vec!["not checked: a recovery did not finish".into()],
        )
    };
    let reads = seen.reads.lock().unwrap().clone();
    let failures = seen.failures.lock().unwrap().clone();
    let report = Report {
        seed,
        faults: applied.len(),
        recoveries_timed_out: applied.iter().filter(|a| a.recovered.is_none()).count(),
        longest_recovery: applied
            .iter()
            .filter_map(|a| a.recovered)
            .max()
            .unwrap_or_default(),
        longest_unavailable: longest_gap(&reads, end),
        requests: reads.len() + 2 * rows.len().max(files.len()),
        failed_requests: failures.len(),
        rows_acked: rows.len(),
        files_acked: files.len(),
        lost_rows,
        lost_files,
    };
    for (at, what) in failures.iter().take(20) {
        println!("    failed at {:.1}s: {what}", at.as_secs_f64());
    }
    for lost in report.lost_rows.iter().chain(&report.lost_files).take(20) {
        println!("    LOST: {lost}");
    }
    println!("{report}");
    let picture = timeline_svg(&names, &applied, &seen.states.lock().unwrap(), &reads, end);
    std::fs::write(svg, picture).map_err(|e| LabError::Other(format!("{}: {e}", svg.display())))?;
    println!("timeline: {}", svg.display());
    Ok(report)
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The run at a glance: one band per fault (its label), one row per node coloured by its
/// state (ready green, not ready amber, dead red), and the reader's success rate per 5 s.
fn timeline_svg(
    names: &[String],
    applied: &[Applied],
    states: &[(Duration, Vec<NodeState>)],
    reads: &[(Duration, bool)],
    end: Duration,
) -> String {
    let width = 1200.0;
    let left = 60.0;
    let span = end.as_secs_f64().max(1.0);
    let x = |t: Duration| left + (width - left - 10.0) * t.as_secs_f64() / span;
    let row_h = 24.0;
    let top = 40.0;
    let rate_top = top + row_h * names.len() as f64 + 30.0;
    let rate_h = 100.0;
    let height = rate_top + rate_h + 40.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for a in applied {
        let x0 = x(a.began);
        let x1 = x(a.began + a.recovered.unwrap_or(end - a.began));
        s.push_str(&format!(
            "<rect x=\"{x0:.1}\" y=\"20\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" opacity=\"0.15\"/>\n\
             <line x1=\"{x0:.1}\" y1=\"20\" x2=\"{x0:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
             <text x=\"{:.1}\" y=\"16\" transform=\"rotate(-20 {x0:.1} 16)\">{}</text>\n\
             <line x1=\"{:.1}\" y1=\"20\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"grey\" stroke-dasharray=\"2,2\"/>\n",
            (x1 - x0).max(1.0),
            rate_top + rate_h - 20.0,
            if a.recovered.is_some() { "steelblue" } else { "red" },
            rate_top + rate_h,
            x0 + 2.0,
            esc(&a.fault.to_string()),
            x(a.undone),
            x(a.undone),
            rate_top + rate_h,
        ));
    }
    for (i, name) in names.iter().enumerate() {
        let y = top + row_h * i as f64;
        s.push_str(&format!(
            "<text x=\"8\" y=\"{:.1}\">{}</text>\n",
            y + row_h * 0.65,
            esc(name)
        ));
        for w in states.windows(2) {
            let colour = match w[0].1.get(i) {
                Some(NodeState::Ready) => "#2e7d32",
                Some(NodeState::NotReady) => "#f9a825",
                _ => "#c62828",
            };
            s.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>\n",
                x(w[0].0),
                y + 2.0,
                (x(w[1].0) - x(w[0].0)).max(0.5),
                row_h - 4.0
            ));
        }
    }
    s.push_str(&format!(
        "<text x=\"8\" y=\"{:.1}\">reads ok</text>\n<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ccc\"/>\n",
        rate_top + rate_h / 2.0,
        rate_top,
        width - 10.0,
        rate_top
    ));
    let bucket = Duration::from_secs(5);
    let buckets = (end.as_secs_f64() / bucket.as_secs_f64()).ceil() as usize;
    let mut points = Vec::new();
    for b in 0..buckets.max(1) {
        let from = bucket * b as u32;
        let to = from + bucket;
        let in_bucket: Vec<bool> = reads
            .iter()
            .filter(|r| r.0 >= from && r.0 < to)
            .map(|r| r.1)
            .collect();
        if in_bucket.is_empty() {
            continue;
        }
        let rate = in_bucket.iter().filter(|ok| **ok).count() as f64 / in_bucket.len() as f64;
        points.push(format!(
            "{:.1},{:.1}",
            x(from + bucket / 2),
            rate_top + rate_h * (1.0 - rate)
        ));
    }
    s.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"navy\" stroke-width=\"1.5\" points=\"{}\"/>\n",
        points.join(" ")
    ));
    s.push_str(&format!(
        "<text x=\"{left}\" y=\"{:.1}\">0 s</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.0} s</text>\n</svg>\n",
        height - 10.0,
        width - 10.0,
        height - 10.0,
        span
    ));
    s
}

/// Where the timeline goes unless told: beside the lab's state.
pub fn default_svg(state: &Path, seed: u64) -> PathBuf {
    state.join(format!("chaos-{seed}.svg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_faults_and_another_seed_others() {
        assert_eq!(plan(7, 3, 50), plan(7, 3, 50));
        assert_ne!(plan(7, 3, 50), plan(8, 3, 50));
        // every kind of fault is drawn, on every node
        let faults: Vec<Fault> = plan(1, 3, 400).into_iter().map(|(f, _)| f).collect();
        let kinds: BTreeSet<String> = faults
            .iter()
            .map(|f| {
                format!("{f:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "Crash",
                "Cut",
                "Reboot",
                "Kill",
                "Outage",
                "CoordinatorRestart"
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        );
        for process in [
            Process::Mysqld,
            Process::Glusterd,
            Process::Brick,
            Process::Fuse,
            Process::Apache,
        ] {
            assert!(faults
                .iter()
                .any(|f| matches!(f, Fault::Kill { process: p, .. } if *p == process)));
        }
        for node in 0..3 {
            assert!(faults
                .iter()
                .any(|f| matches!(f, Fault::Crash { node: n, .. } if *n == node)));
        }
        assert!(plan(1, 3, 400)
            .iter()
            .all(|(_, pause)| (5..=20).contains(&pause.as_secs())));
    }

    #[test]
    fn the_longest_gap_counts_the_end_of_the_run() {
        let s = Duration::from_secs;
        let reads = [(s(0), true), (s(1), false), (s(4), true), (s(5), true)];
        assert_eq!(longest_gap(&reads, s(6)), s(4));
        assert_eq!(longest_gap(&reads, s(12)), s(7));
    }

    #[test]
    fn the_timeline_is_one_svg_with_a_band_per_fault() {
        let s = Duration::from_secs;
        let applied = vec![Applied {
            fault: Fault::Crash {
                node: 1,
                down: s(10),
            },
            began: s(5),
            undone: s(15),
            recovered: Some(s(30)),
        }];
        let states = vec![
            (s(0), vec![NodeState::Ready; 3]),
            (
                s(6),
                vec![NodeState::Ready, NodeState::Dead, NodeState::Ready],
            ),
            (s(40), vec![NodeState::Ready; 3]),
        ];
        let reads = vec![(s(1), true), (s(7), false), (s(20), true)];
        let names: Vec<String> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
        let svg = timeline_svg(&names, &applied, &states, &reads, s(45));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("crash n2 for 10s"));
        assert!(svg.contains("#c62828"), "n2 dead for a while");
        assert!(!svg.contains("href"), "no external assets");
    }
}
