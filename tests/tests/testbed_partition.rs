//! One node cut off the network (issue 26) must cost no more than a crash: each of n1, n2,
//! n3 in turn loses its link for 20 s under a steady client through HAProxy and writers
//! through the other two nodes (the scenario: `triad_tests::bench_partition`). Real
//! Galera, Gluster, Apache and HAProxy, driven by the agents and the coordinator. A PHP
//! session through the balancer survives the crash of its node (opt-in for now).

use std::time::Duration;

use triad_tests::bench_partition::{prepare, round, AROUND_THE_CUT};
use triad_tests::haproxy::LISTEN;
use triad_tests::triad::DOCROOT;
use triad_tests::{http, triad, Testbed};

/// Each cut waits for the volume to be healed before the next: a directory written during
/// a cut was left unhealed by Gluster's 600 s self-heal crawl, and the third cut then left
/// the two survivors accusing each other's copy (ENOTCONN on every write into it, 3 runs of
/// 7 before `cluster.heal-timeout` 5 s). The writes through the survivors must all be
/// acknowledged: that is the defect's signature.
#[test]
fn testbed_partition_one_node_cut_off_costs_no_more_than_a_crash() -> anyhow::Result<()> {
    let mut tb = Testbed::for_test(3)?;
    prepare(&mut tb)?;
    let mut next_id = 1;
    let mut all = Vec::new();
    for i in 0..tb.nodes.len() {
        let victim = &tb.nodes[i];
        let f = round(&tb, victim, &mut next_id)?;
        let name = &f.node;
        assert!(
            f.survivor_problems.is_empty(),
            "{name} cut off: the other nodes must stay live and ready: {:?}",
            f.survivor_problems
        );
        assert!(
            f.failed_away_from_the_cut.is_empty(),
            "{name} cut off: requests failed more than {AROUND_THE_CUT:?} away from the cut: {:?}",
            f.failed_away_from_the_cut
        );
        assert!(
            f.out_of_balancer.is_some(),
            "{name} was not seen out of the balancer while cut off"
        );
        assert!(
            f.ready_after_heal.is_some(),
            "{name} was not live and ready after the heal"
        );
        assert!(
            f.rows_acked > 0 && f.files_acked > 0,
            "{name} cut off: no write was acknowledged ({:?})",
            f.write_failures.iter().take(5).collect::<Vec<_>>()
        );
        assert!(
            f.volume_healed_after.is_some(),
            "{name}: the volume was not healed after the heal"
        );
        assert!(
            f.write_failures.is_empty(),
            "{name} cut off: writes through the survivors failed: {:?}",
            f.write_failures.iter().take(5).collect::<Vec<_>>()
        );
        assert!(
            f.lost.is_empty(),
            "{name} cut off: acknowledged writes lost: {:?}",
            f.lost
        );
        all.push(f);
        // the next cut starts from a whole cluster
        triad::wait_all_ready(&tb, 3, Duration::from_secs(120))?;
    }
    for f in &all {
        eprintln!("[partition] {f}");
        for line in f.mount_gaps.iter().chain(f.write_failures.iter().take(5)) {
            eprintln!("    {line}");
        }
    }
    tb.teardown_and_verify()?;
    Ok(())
}

/// Not in CI yet (`cargo nextest run -p triad-tests --test testbed_partition --run-ignored
/// all`): in 1 of 3 runs on 2026-12-05 the first request after the crash of the session's
/// node (n1, after the three cuts) answered something other than the counter (the text was
/// not captured then; the error now shows it); the two other runs (home n2) and a manual
/// run on a fresh lab (home n1) continued the session on another node, no request failed.
#[test]
#[ignore = "open: one run of three answered the session page with something else after n1's crash (issue 17)"]
fn testbed_partition_a_php_session_survives_its_node() -> anyhow::Result<()> {
    let mut tb = Testbed::for_test(3)?;
    prepare(&mut tb)?;
    session_survives_its_node(&tb)?;
    tb.teardown_and_verify()?;
    Ok(())
}

const SESSION_PHP: &str = "<?php session_start(); header('Content-Type: text/plain'); \
    $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1; echo $_SESSION['n'], ' ', gethostname(), \"\\n\";\n";

/// One request of a client with a cookie jar (curl), through the balancer: (count, node).
fn session_request(jar: &std::path::Path) -> anyhow::Result<(u64, String)> {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "30", "-c"])
        .arg(jar)
        .arg("-b")
        .arg(jar)
        .arg(format!("http://{LISTEN}/session.php"))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    anyhow::ensure!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (n, node) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| anyhow::anyhow!("session page answered {text:?}"))?;
    let n = n
        .parse()
        .map_err(|e| anyhow::anyhow!("session page answered {text:?}: {e}"))?;
    Ok((n, node.to_string()))
}

/// PHP sessions (issue 17): a client stays on one node (the balancer's cookie), its
/// session lives on the volume, and when that node crashes the next request, on another
/// node, continues the same session; a client loop meanwhile sees no failed request.
fn session_survives_its_node(tb: &Testbed) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    tb.nodes[0].sh(&format!(
        "cat > {DOCROOT}/session.php.tmp <<'EOF'\n{SESSION_PHP}EOF\nmv {DOCROOT}/session.php.tmp {DOCROOT}/session.php"
    ))?;
    let jar = tb.state.join("session-cookies.txt");
    let _ = std::fs::remove_file(&jar);
    let mut served = Vec::new();
    for i in 1..=5u64 {
        let (n, node) = session_request(&jar)?;
        assert_eq!(n, i, "the session counts every request");
        served.push(node);
    }
    assert!(
        served.iter().all(|n| n == &served[0]),
        "one client stays on one node: {served:?}"
    );
    let home = served[0].clone();
    eprintln!("[session] 5 requests, all on {home}");
    let victim = tb.node(&home)?;
    let stop = AtomicBool::new(false);
    let (failed, after) = std::thread::scope(|scope| -> anyhow::Result<_> {
        let loop_ = scope.spawn(|| {
            let mut failed = Vec::new();
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) && sent < 2_000 {
                sent += 1;
                match http::get(
                    LISTEN,
                    triad_tests::wordpress::NODE_PAGE,
                    Duration::from_secs(30),
                ) {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => failed.push(format!("HTTP {}", r.status)),
                    Err(e) => failed.push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            failed
        });
        let result = (|| -> anyhow::Result<(u64, String)> {
            triad_tests::faults::crash(victim)?;
            eprintln!("[session] {home} crashed");
            session_request(&jar)
        })();
        // a few more seconds of the loop after the session moved
        if result.is_ok() {
            let until = std::time::Instant::now() + Duration::from_secs(5);
            triad_tests::wait::until(
                "5 s of the client loop after the session moved",
                Duration::from_secs(10),
                Duration::from_millis(200),
                || {
                    Ok(if std::time::Instant::now() >= until {
                        triad_tests::wait::Poll::Ready(())
                    } else {
                        triad_tests::wait::Poll::Pending("running".into())
                    })
                },
            )?;
        }
        stop.store(true, Ordering::Relaxed);
        let failed = loop_.join().expect("the client loop");
        Ok((failed, result?))
    })?;
    eprintln!(
        "[session] after the crash: count {} on {}; the client loop's failures: {failed:?}",
        after.0, after.1
    );
    assert_eq!(after.0, 6, "the session continued after its node crashed");
    assert_ne!(after.1, home, "served by another node");
    assert!(
        failed.is_empty(),
        "requests failed while {home} crashed: {failed:?}"
    );
    Ok(())
}
