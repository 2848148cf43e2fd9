//! Failover bench (issue 6, design section 11): with a bounded client load through HAProxy
//! on loopback, kill one backend and measure, side by side in one run,
//! - Triad: the time from the kill to the member leaving HAProxy (the agent's own probe
//!   sees the failure, gossip carries it, the coordinator confirms over gRPC and deletes
//!   the server), and the client requests that failed;
//! - HAProxy's own checks alone at the reference's monitor settings (delay 10 s, timeout
//!   20 s, 3 retries: `inter 10s fall 3`, `timeout check 20s`): the time until HAProxy marks
//!   the server DOWN, and the failed requests.
//!
//! Both HAProxy instances use the same three backends (separate processes on 127.0.3.1-3,
//! SIGKILLed), the same check settings as a second line, and plain `retries 3` (no
//! redispatch; set TRIAD_BENCH_REDISPATCH=1 to add `option redispatch` + `retry-on`).
//! The load comes from two client processes (this binary re-executed), each sending
//! `RATE` requests/s for TRIAD_BENCH_LOAD_SECS (default 45) to one frontend. Run on demand:
//! `cargo bench -p triad-coordinator --bench failover`. Target: removal ≤ 2 s.

#[path = "../tests/balancer_support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::ChannelTransport;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use triad_coordinator::balancer::haproxy::{HaproxyBalancer, HaproxySettings};
use triad_coordinator::balancer::plan::Spec;
use triad_coordinator::balancer::MemberState;

const RATE: u64 = 100;
const LOAD_SECS_DEFAULT: u64 = 45;
const KILL_AFTER: Duration = Duration::from_secs(5);
const REFERENCE_CHECK: &str = "check inter 10s fall 3 rise 2";

/// Seconds of client load (TRIAD_BENCH_LOAD_SECS, default 45: longer than the reference
/// checks need to mark a server down).
fn load_secs() -> u64 {
    std::env::var("TRIAD_BENCH_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(LOAD_SECS_DEFAULT)
}

/// A child process killed by PID when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_self(env: &[(&str, String)]) -> ChildGuard {
    let exe = std::env::current_exe().expect("own path");
    let mut command = Command::new(exe);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (key, value) in env {
        command.env(key, value);
    }
    ChildGuard(command.spawn().expect("re-exec the bench binary"))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(spec) = std::env::var("TRIAD_BENCH_BACKEND") {
        runtime.block_on(backend_process(spec));
        return;
    }
    if let Ok(target) = std::env::var("TRIAD_BENCH_CLIENT") {
        runtime.block_on(client_process(target.parse().expect("client target")));
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return; // cargo's bench harness protocol: nothing to list
    }
    runtime.block_on(bench());
}

/// Child mode: one HTTP backend until killed.
async fn backend_process(spec: String) {
    let (addr, name) = spec.split_once(' ').expect("addr name");
    let _backend = HttpBackend::start(addr.parse().expect("backend addr"), name).await;
    std::future::pending::<()>().await;
}

/// Child mode: `RATE` GET/s for `load_secs()` against `target`; prints
/// "ok failed first_failure_ms last_failure_ms".
async fn client_process(target: SocketAddr) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first = Arc::new(AtomicU64::new(u64::MAX));
    let last = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..RATE * load_secs() {
        ticker.tick().await;
        let (ok, failed, first, last) = (ok.clone(), failed.clone(), first.clone(), last.clone());
        tasks.spawn(async move {
            let sent = start.elapsed().as_millis() as u64;
            let result = tokio::time::timeout(Duration::from_secs(5), one_request(target)).await;
            if matches!(result, Ok(Ok(()))) {
                ok.fetch_add(1, Ordering::Relaxed);
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
                first.fetch_min(sent, Ordering::Relaxed);
                last.fetch_max(sent, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    println!(
        "{} {} {} {}",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        first.load(Ordering::Relaxed),
        last.load(Ordering::Relaxed)
    );
}

async fn one_request(target: SocketAddr) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(target)
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    if response.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&response[..response.len().min(40)]).into_owned())
    }
}

/// The agent's own probe of its service: GET /health on the backend every 200 ms.
fn probe(node: Arc<FakeNode>, backend: SocketAddr) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut healthy = true;
        loop {
            let ok = tokio::time::timeout(Duration::from_millis(300), one_request(backend))
                .await
                .is_ok_and(|r| r.is_ok());
            if ok != healthy {
                healthy = ok;
                node.set_apache(ok).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

async fn bench() {
    let redispatch = std::env::var("TRIAD_BENCH_REDISPATCH").is_ok_and(|v| v == "1");
    let defaults = format!(
        "    timeout check 20s\n    retries 3\n{}",
        if redispatch {
            "    option redispatch 1\n    retry-on all-retryable-errors\n"
        } else {
            ""
        }
    );
    let port = free_port(node_ip(1));
    let mut backends = Vec::new();
    for index in 1..=3u8 {
        backends.push(Some(spawn_self(&[(
            "TRIAD_BENCH_BACKEND",
            format!("{}:{port} n{index}", node_ip(index)),
        )])));
    }
    let backend_addr = |index: u8| SocketAddr::new(node_ip(index), port);
    for index in 1..=3u8 {
        wait_for_ok(&format!("backend n{index}"), || {
            one_request(backend_addr(index))
        })
        .await;
    }

    // HAProxy with Triad's loop (servers added dynamically, reference checks as a second line).
    let triad_haproxy = HaproxyProcess::start_with(&defaults, "").await;
    let mut settings = HaproxySettings::new(triad_haproxy.socket.clone(), "be_web", port);
    settings.check = REFERENCE_CHECK.into();
    let triad_balancer = HaproxyBalancer::new(settings);
    // HAProxy with its own checks only, at the reference's settings.
    let servers: String = (1..=3u8)
        .map(|i| format!("    server n{i} {} {REFERENCE_CHECK}\n", backend_addr(i)))
        .collect();
    let checks_haproxy = HaproxyProcess::start_with(&defaults, &servers).await;

    let transport = ChannelTransport::with_mtu(65_507);
    let mut nodes = Vec::new();
    let mut probes = Vec::new();
    for index in 1..=3u8 {
        let node = Arc::new(FakeNode::start(&transport, index).await);
        node.set_apache(true).await;
        probes.push(probe(node.clone(), backend_addr(index)));
        nodes.push(node);
    }
    let control = Control::start(&transport, triad_balancer.clone(), Spec::default()).await;
    wait_active(
        &triad_balancer,
        &["n1", "n2", "n3"],
        Duration::from_secs(30),
    )
    .await;
    let checks_balancer = checks_haproxy.balancer(port);
    wait_active(
        &checks_balancer,
        &["n1", "n2", "n3"],
        Duration::from_secs(30),
    )
    .await;

    let load_secs = load_secs();
    println!(
        "failover bench: {RATE} req/s × {load_secs} s per frontend, kill n3 after {KILL_AFTER:?}; checks `{REFERENCE_CHECK}`, timeout check 20s; redispatch {}",
        if redispatch { "on" } else { "off" }
    );
    let triad_client = spawn_self(&[("TRIAD_BENCH_CLIENT", triad_haproxy.frontend.to_string())]);
    let checks_client = spawn_self(&[("TRIAD_BENCH_CLIENT", checks_haproxy.frontend.to_string())]);
    let load_started = Instant::now();
    tokio::time::sleep(KILL_AFTER).await;

    // SIGKILL backend n3.
    let killed_at = Instant::now();
    drop(backends[2].take());
    let mut triad_removed = None;
    let mut checks_down = None;
    while (triad_removed.is_none() || checks_down.is_none())
        && killed_at.elapsed() < Duration::from_secs(60)
    {
        if triad_removed.is_none() {
            let members = members(&triad_balancer).await.unwrap_or_default();
            if !members
                .iter()
                .any(|(n, s)| n == "n3" && *s == MemberState::Active)
            {
                triad_removed = Some(killed_at.elapsed());
            }
        }
        if checks_down.is_none() {
            let state = checks_balancer
                .api()
                .servers_state("be_web")
                .await
                .unwrap_or_default();
            if state.iter().any(|s| s.name == "n3" && s.op_state == 0) {
                checks_down = Some(killed_at.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let triad_result = client_result(triad_client);
    let checks_result = client_result(checks_client);
    let kill_ms = (killed_at - load_started).as_millis() as i64;
    let show = |d: Option<Duration>| {
        d.map(|d| format!("{:.2} s", d.as_secs_f64()))
            .unwrap_or_else(|| "not within 60 s".into())
    };
    let failures = |(ok, failed, first, last): (u64, u64, u64, u64)| {
        if failed == 0 {
            format!("{failed} of {} failed", ok + failed)
        } else {
            format!(
                "{failed} of {} failed (from {:+} ms to {:+} ms after the kill)",
                ok + failed,
                first as i64 - kill_ms,
                last as i64 - kill_ms
            )
        }
    };
    println!("| setup | kill → member out | client requests |");
    println!("|---|---|---|");
    println!(
        "| Triad loop (agent probe 200 ms, gossip, gRPC confirm, maint) | {} | {} |",
        show(triad_removed),
        failures(triad_result)
    );
    println!(
        "| HAProxy checks only (inter 10s fall 3, timeout check 20s) | {} | {} |",
        show(checks_down),
        failures(checks_result)
    );
    let status = control.balancer_loop.as_ref().map(|l| l.status());
    println!(
        "after the run: triad members {:?}; checks-only members {:?}; loop changes {:?}, errors {:?} ({:?})",
        members(&triad_balancer).await,
        members(&checks_balancer).await,
        status.as_ref().map(|s| s.changes_total),
        status.as_ref().map(|s| s.errors_total),
        status.as_ref().and_then(|s| s.last_error.clone()),
    );
    if status.as_ref().is_some_and(|s| s.errors_total > 0) {
        let log = triad_haproxy.log();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        println!(
            "triad haproxy log (last lines, newest first):\n{}",
            tail.join("\n")
        );
    }
    for probe in probes {
        probe.abort();
    }
    control.stop().await;
    drop(nodes);
}

fn client_result(child: ChildGuard) -> (u64, u64, u64, u64) {
    let mut guard = child;
    let mut output = String::new();
    if let Some(mut stdout) = guard.0.stdout.take() {
        use std::io::Read;
        let _ = stdout.read_to_string(&mut output);
    }
    let numbers: Vec<u64> = output
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match numbers.as_slice() {
        [ok, failed, first, last] => (*ok, *failed, *first, *last),
        _ => panic!("client output not understood: {output:?}"),
    }
}

async fn wait_for_ok<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    triad_agent::testsuite::wait_for(what, Duration::from_secs(10), POLL, &mut check)
        .await
        .unwrap();
}
