//! `triad-lab bench-app` (issue 17): the app's figures on a fresh lab serving WordPress
//! (tests/src/wordpress.rs) through HAProxy on 127.0.0.1:8080.
//!
//! - Latency, p50/p99, of a WordPress post page and, in the same run, of the one-line page
//!   ([`NODE_PAGE`]): idle (requests one after another), and while an open-loop load sends
//!   `rate` requests per second to the post page (latency counted from each request's
//!   scheduled time, so a stalled server is not hidden by a slower sender).
//! - The serving node's death: a logged-in browser's node is crashed (SIGKILL of its PID 1)
//!   while a reader without cookies reads the post 10 times a second; failed reads, and
//!   whether the browser is still logged in on another node.
//! - The writer's death: a client inserts rows through the app's page `bench-insert.php`
//!   (PHP, the `[app]` account, the node's endpoint 127.0.0.1:3307) 10 times a second
//!   through the balancer; the database writer's node is crashed; the window in which the
//!   app answered with errors, and every acknowledged row checked on every core node after
//!   the node came back.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::haproxy::LISTEN;
use crate::triad::{self, APP_DATABASE, APP_PASSWORD_FILE, DOCROOT};
use crate::wait;
use crate::wordpress::{self, Browser, Post, NODE_PAGE};
use crate::{faults, http, Result, Testbed, TestbedOptions};

/// p50 and p99 of a set of latencies (None when empty).
pub fn percentiles(mut v: Vec<Duration>) -> Option<(Duration, Duration)> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    let at = |q: f64| v[(((v.len() - 1) as f64) * q).round() as usize];
    Some((at(0.50), at(0.99)))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// One latency series: answered requests, failures, p50/p99.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub answered: Vec<Duration>,
    pub failed: Vec<String>,
}

impl std::fmt::Display for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match percentiles(self.answered.clone()) {
            Some((p50, p99)) => write!(
                f,
                "p50 {} p99 {} ({} answered, {} failed)",
                ms(p50),
                ms(p99),
                self.answered.len(),
                self.failed.len()
            ),
            None => write!(f, "no answer ({} failed)", self.failed.len()),
        }
    }
}

/// One GET through the balancer, judged: 200 and containing `expect`.
fn timed_get(path: &str, expect: &str, from: Instant) -> std::result::Result<Duration, String> {
    match http::get(LISTEN, path, Duration::from_secs(30)) {
        Ok(r) if r.status == 200 && r.body.contains(expect) => Ok(from.elapsed()),
        Ok(r) => Err(format!("HTTP {} {}", r.status, wordpress::excerpt(&r.body))),
        Err(e) => Err(e.to_string()),
    }
}

/// Requests one after another, alternating the post page and the node page.
fn idle_latency(post: &Post, count: usize) -> (Series, Series) {
    let (mut app, mut one) = (Series::default(), Series::default());
    let path = format!("/?p={}", post.id);
    for _ in 0..count {
        let t = Instant::now();
        match timed_get(&path, &post.title, t) {
            Ok(d) => app.answered.push(d),
            Err(e) => app.failed.push(e),
        }
        let t = Instant::now();
        match timed_get(NODE_PAGE, "n", t) {
            Ok(d) => one.answered.push(d),
            Err(e) => one.failed.push(e),
        }
    }
    (app, one)
}

/// How long a scheduled request may wait for a free client before it counts as failed.
const QUEUE_LIMIT: Duration = Duration::from_secs(10);

/// An open-loop load of `rate` requests per second to the post page for `window`, with the
/// node page sampled 5 times a second beside it. Returns (post page, node page, achieved
/// rate of answers per second).
fn loaded_latency(post: &Post, rate: u32, window: Duration) -> (Series, Series, f64) {
    let path = format!("/?p={}", post.id);
    let (tx, rx) = mpsc::channel::<Instant>();
    let rx = Arc::new(Mutex::new(rx));
    let results = Arc::new(Mutex::new(Series::default()));
    let workers = 64;
    let start = Instant::now();
    let one = std::thread::scope(|scope| {
        for _ in 0..workers {
            let rx = Arc::clone(&rx);
            let results = Arc::clone(&results);
            let path = path.clone();
            let title = post.title.clone();
            scope.spawn(move || loop {
                let due = match rx.lock().expect("queue").recv() {
                    Ok(d) => d,
                    Err(_) => return,
                };
                // a request that waited this long for a free client is counted, not sent:
                // the window stays bounded when the offered rate exceeds what is served
                let r = if due.elapsed() > QUEUE_LIMIT {
                    Err(format!(
                        "not sent within {QUEUE_LIMIT:?} of its time (every client busy)"
                    ))
                } else {
                    timed_get(&path, &title, due)
                };
                let mut s = results.lock().expect("results");
                match r {
                    Ok(d) => s.answered.push(d),
                    Err(e) => s.failed.push(e),
                }
            });
        }
        let sampler = scope.spawn(|| {
            let mut one = Series::default();
            while start.elapsed() < window {
                let t = Instant::now();
                match timed_get(NODE_PAGE, "n", t) {
                    Ok(d) => one.answered.push(d),
                    Err(e) => one.failed.push(e),
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            one
        });
        let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let total = (window.as_secs_f64() * f64::from(rate)) as u64;
        for k in 0..total {
            let due = start + period.mul_f64(k as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if tx.send(due).is_err() {
                break;
            }
        }
        drop(tx);
        sampler.join().expect("the sampler")
    });
    let app = results.lock().expect("results").clone();
    let achieved = app.answered.len() as f64 / start.elapsed().as_secs_f64();
    (app, one, achieved)
}

/// What one serving-node crash cost.
#[derive(Debug, Clone)]
pub struct NodeDeath {
    pub node: String,
    pub reads: usize,
    pub failed: Vec<String>,
    pub still_logged_in: bool,
    pub moved_to: String,
}

fn serving_node_death(tb: &Testbed, browser: &Browser, post: &Post) -> Result<NodeDeath> {
    let home = browser.serving_node()?;
    let victim = tb.node(&home)?;
    let stop = AtomicBool::new(false);
    let reads = std::sync::atomic::AtomicUsize::new(0);
    let path = format!("/?p={}", post.id);
    let (failed, after) = std::thread::scope(|scope| -> Result<_> {
        let reader = scope.spawn(|| {
            let mut failed = Vec::new();
            let t = Instant::now();
            while !stop.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(120) {
                reads.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = timed_get(&path, &post.title, Instant::now()) {
                    failed.push(format!("+{:.1}s {e}", t.elapsed().as_secs_f64()));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            failed
        });
        let result = (|| -> Result<(bool, String)> {
            wait::pace(Duration::from_secs(3), "the client loops")?;
            faults::crash(victim)?;
            let logged_in = browser.logged_in()?;
            let node = browser.serving_node()?;
            wait::pace(Duration::from_secs(5), "the client loops")?;
            Ok((logged_in, node))
        })();
        stop.store(true, Ordering::Relaxed);
        let failed = reader.join().expect("the reader");
        Ok((failed, result?))
    })?;
    faults::start(victim)?;
    triad::wait_all_ready(tb, 3, Duration::from_secs(180))?;
    Ok(NodeDeath {
        node: home,
        reads: reads.load(Ordering::Relaxed),
        failed,
        still_logged_in: after.0,
        moved_to: after.1,
    })
}

/// The app's insert page: one row through the node's endpoint with the `[app]` account;
/// answers "ok ID" or HTTP 500 with the error.
const INSERT_PHP: &str = r#"<?php
header('Content-Type: text/plain');
mysqli_report(MYSQLI_REPORT_OFF);
$db = @mysqli_connect('127.0.0.1', 'APP_DB', rtrim((string) @file_get_contents('APP_PW')), 'APP_DB', 3307);
if (!$db) { http_response_code(500); echo 'connect: ', mysqli_connect_error(), "\n"; exit; }
$id = (int) ($_GET['id'] ?? 0);
if (!mysqli_query($db, "INSERT INTO bench_rows (id) VALUES ($id)")) {
    http_response_code(500); echo 'insert: ', mysqli_error($db), "\n"; exit;
}
echo "ok $id ", gethostname(), "\n";
"#;

/// What one writer crash cost, as the app saw it.
#[derive(Debug, Clone)]
pub struct WriterDeath {
    pub writer: String,
    pub acked: usize,
    /// Failed inserts: (sent, relative to the crash, error).
    pub failed: Vec<(f64, String)>,
    /// Acknowledged rows missing on some core node after it came back.
    pub lost: Vec<String>,
}

impl WriterDeath {
    /// From the first to the last failed insert (sent times), seconds.
    pub fn error_window(&self) -> f64 {
        match (self.failed.first(), self.failed.last()) {
            (Some(a), Some(b)) => b.0 - a.0,
            _ => 0.0,
        }
    }
}

fn endpoint_writer(tb: &Testbed) -> Result<String> {
    let node = &tb.nodes[0];
    let out = node.sh(&format!(
        "MYSQL_PWD=\"$(cat {APP_PASSWORD_FILE})\" mariadb -h 127.0.0.1 -P 3307 --connect-timeout=3 \
         -u {APP_DATABASE} -N -B -e 'SELECT @@hostname'"
    ))?;
    Ok(out.trim().to_string())
}

fn writer_death(tb: &Testbed, next_id: &mut u64) -> Result<WriterDeath> {
    let writer = endpoint_writer(tb)?;
    let victim = tb.node(&writer)?;
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let first = *next_id;
    let (acked, failed, crashed_at) = std::thread::scope(|scope| -> Result<_> {
        let client = scope.spawn(|| {
            let mut acked = Vec::new();
            let mut failed = Vec::new();
            let mut id = first;
            while !stop.load(Ordering::Relaxed) && id < first + 3_000 {
                let sent = start.elapsed();
                match http::get(
                    LISTEN,
                    &format!("/bench-insert.php?id={id}"),
                    Duration::from_secs(30),
                ) {
                    Ok(r) if r.status == 200 && r.body.starts_with("ok ") => acked.push(id),
                    Ok(r) => failed.push((sent, format!("HTTP {} {}", r.status, r.body.trim()))),
                    Err(e) => failed.push((sent, e.to_string())),
                }
                id += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            (acked, failed, id)
        });
        let crash = (|| -> Result<Duration> {
            wait::pace(Duration::from_secs(3), "the client loops")?;
            let at = start.elapsed();
            faults::crash(victim)?;
            wait::pace(Duration::from_secs(10), "the client loops")?;
            Ok(at)
        })();
        stop.store(true, Ordering::Relaxed);
        let (acked, failed, id) = client.join().expect("the client");
        *next_id = id;
        Ok((acked, failed, crash?))
    })?;
    faults::start(victim)?;
    triad::wait_all_ready(tb, 3, Duration::from_secs(180))?;
    let mut lost = Vec::new();
    for n in &tb.nodes {
        let out = n.sh(&format!(
            "mariadb -N -B -e 'SELECT id FROM {APP_DATABASE}.bench_rows WHERE id >= {first}'"
        ))?;
        let present: BTreeSet<u64> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
        let missing: Vec<u64> = acked
            .iter()
            .copied()
            .filter(|id| !present.contains(id))
            .collect();
        if !missing.is_empty() {
            lost.push(format!("{}: {missing:?}", n.name));
        }
    }
    let c = crashed_at.as_secs_f64();
    Ok(WriterDeath {
        writer,
        acked: acked.len(),
        failed: failed
            .into_iter()
            .map(|(sent, e)| (sent.as_secs_f64() - c, e))
            .collect(),
        lost,
    })
}

/// The bench: a fresh lab, WordPress, then the figures (see the module doc).
pub fn run(rounds: u32, rate: u32, window: Duration) -> Result<()> {
    let mut tb = Testbed::up(TestbedOptions::default())?;
    let outcome = (|| -> Result<()> {
        let site = wordpress::lab(&mut tb)?;
        let browser = Browser::new(tb.state.join("bench-app-cookies.txt"));
        browser.login(&site.user, &site.password)?;
        let post = browser.publish(
            "Triad bench post",
            &"<p>WordPress on Triad: a post of a few paragraphs.</p>".repeat(20),
        )?;
        // warm every node's opcache
        let _ = idle_latency(&post, 10);
        let (app, one) = idle_latency(&post, 200);
        println!("bench-app idle: post page {app}; one-line page {one}");
        let (app, one, achieved) = loaded_latency(&post, rate, window);
        println!(
            "bench-app at {rate} req/s offered to the post page for {window:?} ({achieved:.1} answered/s): post page {app}; one-line page {one}"
        );
        for e in app.failed.iter().chain(&one.failed).take(5) {
            println!("    {e}");
        }
        tb.nodes[0].sh(&format!(
            "cat > {DOCROOT}/bench-insert.php.tmp <<'EOF'\n{}EOF\nmv {DOCROOT}/bench-insert.php.tmp {DOCROOT}/bench-insert.php",
            INSERT_PHP
                .replace("APP_DB", APP_DATABASE)
                .replace("APP_PW", APP_PASSWORD_FILE)
        ))?;
        tb.nodes[0].sh(&format!(
            "mariadb -e 'CREATE TABLE IF NOT EXISTS {APP_DATABASE}.bench_rows (id BIGINT PRIMARY KEY)'"
        ))?;
        let mut next_id = 1;
        for round in 1..=rounds {
            let d = serving_node_death(&tb, &browser, &post)?;
            println!(
                "bench-app round {round}: serving node {} crashed: {} of {} reads failed; logged in afterwards: {} (on {})",
                d.node,
                d.failed.len(),
                d.reads,
                d.still_logged_in,
                d.moved_to
            );
            for f in d.failed.iter().take(5) {
                println!("    {f}");
            }
            let w = writer_death(&tb, &mut next_id)?;
            println!(
                "bench-app round {round}: writer {} crashed: {} inserts acknowledged, {} failed, errors within {:.1} s (first {:+.1} s, last {:+.1} s from the crash), lost {:?}",
                w.writer,
                w.acked,
                w.failed.len(),
                w.error_window(),
                w.failed.first().map_or(0.0, |f| f.0),
                w.failed.last().map_or(0.0, |f| f.0),
                w.lost
            );
            for (at, e) in w.failed.iter().take(5) {
                println!("    {at:+.1}s {e}");
            }
        }
        Ok(())
    })();
    let teardown = tb.teardown();
    outcome?;
    teardown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_hundred() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let (p50, p99) = percentiles(v).unwrap();
        assert_eq!(p50, Duration::from_millis(51));
        assert_eq!(p99, Duration::from_millis(99));
        assert_eq!(percentiles(Vec::new()), None);
    }
}
