//! `triad-lab bench-dashboard` (issue 21's closing note): on a fresh lab (agents, the
//! coordinator and the app's health page), the time from a node's crash (SIGKILL of its PID 1) to its tile
//! turning red on a dashboard open in headless Chromium, per round; and the coordinator's
//! CPU and RSS over a window without the dashboard and then with one page open.

use std::time::{Duration, Instant};

use crate::dashboard::Page;
use crate::error::{IoContext, LabError, Result};
use crate::{faults, triad, Testbed, TestbedOptions};

/// A process's CPU time so far and its resident set, from /proc.
fn sample(pid: i32) -> Result<(Duration, u64)> {
    let stat_path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&stat_path).io("read", std::path::Path::new(&stat_path))?;
    // fields after the command's closing parenthesis: state is field 3, utime 14, stime 15
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| LabError::Other(format!("{stat_path}: no field {i}")))
    };
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    let cpu = Duration::from_millis((ticks(14)? + ticks(15)?) * 1000 / hz);
    let status_path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&status_path).io("read", std::path::Path::new(&status_path))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Ok((cpu, rss_kib))
}

/// CPU (percent of one core) and the largest RSS (MiB) of `pid` over `window`.
fn measure(pid: i32, window: Duration) -> Result<(f64, f64)> {
    let start = Instant::now();
    let (cpu_before, mut rss_max) = sample(pid)?;
    while start.elapsed() < window {
        std::thread::sleep(Duration::from_millis(500));
        rss_max = rss_max.max(sample(pid)?.1);
    }
    let (cpu_after, rss) = sample(pid)?;
    let cpu = (cpu_after - cpu_before).as_secs_f64() / start.elapsed().as_secs_f64() * 100.0;
    Ok((cpu, rss_max.max(rss) as f64 / 1024.0))
}

pub fn run(rounds: u32, window: Duration) -> Result<()> {
    let mut tb = Testbed::up(TestbedOptions::default())?;
    let outcome = (|| -> Result<()> {
        triad::cargo_build()?;
        for n in &tb.nodes {
            triad::install_agent(&tb, n)?;
        }
        triad::start_coordinator(&mut tb)?;
        triad::wait_coordinator_live(3, Duration::from_secs(60))?;
        let pid = tb
            .coordinator
            .as_ref()
            .map(|c| c.pid)
            .ok_or_else(|| LabError::Other("no coordinator process".into()))?;
        // settle: the agents form Galera and the volume; Apache is ready once the app's
        // health page is on the volume
        triad::wait_docroot_mounted(&tb.nodes[0], Duration::from_secs(240))?;
        triad::publish_app(&tb.nodes[0])?;
        triad::wait_all_ready(&tb, 3, Duration::from_secs(240))?;

        let (cpu_without, rss_without) = measure(pid, window)?;
        println!(
            "bench-dashboard: coordinator without the dashboard: CPU {cpu_without:.2} % of a core, RSS {rss_without:.1} MiB (max over {window:?})"
        );
        let mut page = Page::open(3)?;
        let (cpu_with, rss_with) = measure(pid, window)?;
        println!(
            "bench-dashboard: coordinator with the dashboard open: CPU {cpu_with:.2} % of a core, RSS {rss_with:.1} MiB (max over {window:?})"
        );
        page.screenshot("bench")?;

        let mut reds = Vec::new();
        for round in 1..=rounds {
            let victim = &tb.nodes[1 + (round as usize - 1) % (tb.nodes.len() - 1)];
            let killed = Instant::now();
            faults::crash(victim)?;
            let red = page.wait_tile(
                &victim.name,
                "red (down)",
                killed,
                Duration::from_secs(30),
                |s| s == "down",
            )?;
            println!(
                "bench-dashboard round {round}: {} crashed, its tile red after {:.2} s",
                victim.name,
                red.as_secs_f64()
            );
            reds.push(red);
            let started = Instant::now();
            faults::start(victim)?;
            let back = page.wait_tile(
                &victim.name,
                "no longer red",
                started,
                Duration::from_secs(120),
                |s| s != "down" && s != "absent",
            )?;
            println!(
                "bench-dashboard round {round}: {} started, its tile back after {:.1} s",
                victim.name,
                back.as_secs_f64()
            );
            triad::wait_all_ready(&tb, 3, Duration::from_secs(240))?;
        }
        reds.sort();
        if let (Some(first), Some(last)) = (reds.first(), reds.last()) {
            println!(
                "bench-dashboard: crash to red tile over {} round(s): min {:.2} s, median {:.2} s, max {:.2} s",
                reds.len(),
                first.as_secs_f64(),
                reds[reds.len() / 2].as_secs_f64(),
                last.as_secs_f64()
            );
        }
        Ok(())
    })();
    let teardown = tb.teardown();
    outcome?;
    teardown
}
