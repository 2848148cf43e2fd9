//! `triad-lab bench-backup --db-mib N --files-mib M` (issue 19): on a fresh lab serving
//! WordPress, with the app's database filled to about N MiB and M MiB of incompressible
//! files (uploads) on the volume: a Triad backup (`triadctl backup now`: mariadb-backup
//! and tar on the node, zstd, age and the parts on the coordinator) beside the plain
//! commands on the same node in the same run (`mariadb-backup --backup --stream=xbstream |
//! zstd -3`, `tar -c docroot | zstd -3`, into /dev/null), and the app's latency through
//! the balancer (WordPress's home page, 5 requests a second) without and during a backup.
//!
//! Order: a first Triad backup (to learn the node Triad reads from, and so every run reads
//! a warm page cache), then the plain commands, the measured Triad backup, the plain
//! commands again; the ratio is against the mean of the two plain runs. Then the lab is torn
//! down, an empty one brought up, and the measured backup restored into it by `triadctl
//! backup restore` (timed, with each of its steps as triadctl reports them), until the app
//! serves its home page again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::bench_app::percentiles;
use crate::haproxy::LISTEN;
use crate::triad::DOCROOT;
use crate::wordpress::SITE_TITLE;
use crate::{backups, http, LabError, Node, Result, Testbed, TestbedOptions};

/// Requests a second while latency is measured.
const RATE: u32 = 5;
/// Bounds one backup or restore of the bench's gigabytes.
const LIMIT: Duration = Duration::from_secs(3600);

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / 1048576.0)
}

fn rate(bytes: u64, d: Duration) -> String {
    format!(
        "{:.0} MiB/s",
        bytes as f64 / 1048576.0 / d.as_secs_f64().max(0.001)
    )
}

/// GETs of the home page at [`RATE`] until `stop`: the answered latencies and failures.
fn latency_loop(stop: &AtomicBool) -> (Vec<Duration>, Vec<String>) {
    let (mut answered, mut failed) = (Vec::new(), Vec::new());
    let every = Duration::from_secs(1) / RATE;
    let start = Instant::now();
    let mut sent = 0u32;
    // bounded: at most an hour of requests
    while !stop.load(Ordering::Relaxed) && sent < RATE * 3600 {
        let due = start + every * sent;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        sent += 1;
        let t = Instant::now();
        match http::get(LISTEN, "/", Duration::from_secs(30)) {
            Ok(r) if r.status == 200 && r.body.contains(SITE_TITLE) => answered.push(t.elapsed()),
            Ok(r) => failed.push(format!("HTTP {}", r.status)),
            Err(e) => failed.push(e.to_string()),
        }
    }
    (answered, failed)
}

fn latency_line(answered: Vec<Duration>, failed: &[String]) -> String {
    let n = answered.len();
    match percentiles(answered) {
        Some((p50, p99)) => format!(
            "p50 {:.1} ms, p99 {:.1} ms ({n} answered, {} failed)",
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0,
            failed.len()
        ),
        None => format!("no answer ({} failed)", failed.len()),
    }
}

/// Writes `mib` MiB of random files (16 of them) under DOCROOT/bench on `node`.
fn fill_files(node: &Node, mib: u64) -> Result<()> {
    let each = (mib / 16).max(1);
    node.exec_limit(
        &[
            "sh",
            "-c",
            &format!(
                "set -e; mkdir -p {DOCROOT}/bench; for i in $(seq 1 16); do \
                 head -c {each}M /dev/urandom > {DOCROOT}/bench/upload-$i.bin; done"
            ),
        ],
        Duration::from_secs(1800),
    )?;
    Ok(())
}

/// The plain commands on `node`: (database, files) wall times.
fn plain(node: &Node) -> Result<(Duration, Duration)> {
    let t = Instant::now();
    node.exec_limit(
        &[
            "sh",
            "-c",
            "set -e; d=$(mktemp -d /var/tmp/bench-backup.XXXXXX); \
             mariadb-backup --backup --stream=xbstream --target-dir=$d --tmpdir=$d --user=root 2>/dev/null \
             | zstd -3 -q > /dev/null; rm -rf $d",
        ],
        Duration::from_secs(3600),
    )?;
    let db = t.elapsed();
    let t = Instant::now();
    node.exec_limit(
        &[
            "sh",
            "-c",
            &format!("set -e; tar -c -C {DOCROOT} . | zstd -3 -q > /dev/null"),
        ],
        Duration::from_secs(3600),
    )?;
    Ok((db, t.elapsed()))
}

/// A Triad backup through triadctl, timed; with its listing (node, sizes).
fn triad_backup() -> Result<(Duration, serde_json::Value)> {
    let t = Instant::now();
    let id = backups::now_within(LIMIT)?;
    let took = t.elapsed();
    let listed = backups::list()?;
    let entry = listed["backups"]
        .as_array()
        .and_then(|all| all.iter().find(|b| b["id"] == id.as_str()))
        .cloned()
        .ok_or_else(|| LabError::Other(format!("backup {id} is not listed")))?;
    Ok((took, entry))
}

pub fn run(db_mib: u64, files_mib: u64) -> Result<()> {
    let mut tb = Testbed::up(TestbedOptions::default())?;
    let outcome = measure(&mut tb, db_mib, files_mib);
    let teardown = tb.teardown();
    let id = outcome?;
    teardown?;
    let mut tb = Testbed::up(TestbedOptions::default())?;
    let outcome = restore(&mut tb, &id);
    let teardown = tb.teardown();
    outcome?;
    teardown
}

/// The coordinator users run: the release build, swapped in (the lab starts the newest of
/// the debug and release builds, and `make bench-backup` builds both).
fn release_coordinator(tb: &mut Testbed) -> Result<()> {
    let bin = crate::triad::release_bin("triad-coordinator")?;
    crate::triad::restart_coordinator_bin(tb, &bin)?;
    // a restore needs every core node in the restarted coordinator's view (gossip)
    crate::triad::wait_coordinator_live(tb.nodes.len(), Duration::from_secs(60))?;
    println!("bench-backup: coordinator {}", bin.display());
    Ok(())
}

/// Into an empty lab, backup `id` restored and the app serving: timed.
fn restore(tb: &mut Testbed, id: &str) -> Result<()> {
    crate::wordpress::empty_lab(tb)?;
    release_coordinator(tb)?;
    let t = Instant::now();
    let out = backups::restore_output_within(id, false, LIMIT)?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(LabError::Other(format!("backup restore {id}: {said}")));
    }
    let restored = t.elapsed();
    // bounded: the restore's answer means every node serves; a minute for the balancer
    let deadline = Instant::now() + Duration::from_secs(60);
    let serving = loop {
        match http::get(LISTEN, "/", Duration::from_secs(10)) {
            Ok(r) if r.status == 200 && r.body.contains(SITE_TITLE) => break t.elapsed(),
            answer if Instant::now() > deadline => {
                return Err(LabError::Other(format!(
                    "the app's home page after the restore of {id}: {answer:?}"
                )))
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    for line in said.lines().filter(|l| !l.trim().is_empty()) {
        println!("bench-backup: restore: {}", line.trim());
    }
    println!(
        "bench-backup: restore of {id} into an empty lab: {} (the home page served after {})",
        secs(restored),
        secs(serving)
    );
    Ok(())
}

/// Fills the lab, takes the backups and prints the figures; the measured backup's id.
fn measure(tb: &mut Testbed, db_mib: u64, files_mib: u64) -> Result<String> {
    // the parts users get (the default 64 MiB), not the lab's 1 MiB ones for tests
    let config = crate::triad::coordinator_config(tb);
    let config = config.replace("part_size = \"1MiB\"", "part_size = \"64MiB\"");
    if !config.contains("part_size = \"64MiB\"") {
        return Err(LabError::Other(
            "the lab's coordinator config has no part_size to set".into(),
        ));
    }
    crate::wordpress::lab_with(tb, &config)?;
    release_coordinator(tb)?;
    let t = Instant::now();
    let size = crate::bench_scaleout::fill(&tb.nodes[0], db_mib)?;
    fill_files(&tb.nodes[0], files_mib)?;
    println!(
        "bench-backup: database filled to {:.0} MiB (InnoDB's figure), {files_mib} MiB of files, in {}",
        size as f64 / 1048576.0,
        secs(t.elapsed())
    );
    let (first, entry) = triad_backup()?;
    let node_id = entry["node"].as_str().unwrap_or_default().to_string();
    let plain_bytes = entry["bytes"].as_u64().unwrap_or(0);
    println!(
        "bench-backup: first Triad backup (warm-up) from {node_id}: {} in {}",
        mib(plain_bytes),
        secs(first)
    );
    let node = tb.node(&node_id)?;
    let (db1, files1) = plain(node)?;
    // the measured Triad backup, with the latency loop running
    let stop = AtomicBool::new(false);
    let (made, (answered, failed)) = std::thread::scope(|scope| {
        let loop_ = scope.spawn(|| latency_loop(&stop));
        let made = triad_backup();
        stop.store(true, Ordering::Relaxed);
        (made, loop_.join().expect("the latency loop"))
    });
    let (took, entry) = made?;
    let during = latency_line(answered, &failed);
    let (db2, files2) = plain(node)?;
    // the same loop without a backup, as long as the backup took (at least 20 s)
    let stop = AtomicBool::new(false);
    let (answered, failed) = std::thread::scope(|scope| {
        let loop_ = scope.spawn(|| latency_loop(&stop));
        std::thread::sleep(took.max(Duration::from_secs(20)));
        stop.store(true, Ordering::Relaxed);
        loop_.join().expect("the latency loop")
    });
    let idle = latency_line(answered, &failed);
    let plain_total = (db1 + files1 + db2 + files2) / 2;
    let stored = entry["stored_bytes"].as_u64().unwrap_or(0);
    let bytes = entry["bytes"].as_u64().unwrap_or(0);
    println!(
        "bench-backup: plain on {node_id}: database {} and {}, files {} and {} (mariadb-backup | zstd -3; tar | zstd -3)",
        secs(db1),
        secs(db2),
        secs(files1),
        secs(files2)
    );
    println!(
        "bench-backup: Triad backup {} from {node_id}: {} ({}) in {}, stored {} in {} parts; plain mean {} ({}); time ratio Triad/plain {:.2}",
        entry["id"].as_str().unwrap_or(""),
        mib(bytes),
        rate(bytes, took),
        secs(took),
        mib(stored),
        entry["parts"],
        secs(plain_total),
        rate(bytes, plain_total),
        took.as_secs_f64() / plain_total.as_secs_f64().max(0.001)
    );
    println!("bench-backup: home page through the balancer at {RATE}/s without a backup: {idle}");
    println!(
        "bench-backup: home page through the balancer at {RATE}/s during the backup: {during}"
    );
    Ok(entry["id"].as_str().unwrap_or_default().to_string())
}
