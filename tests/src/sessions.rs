//! PHP sessions through the balancer (issue 17): a client with a cookie jar (curl) counts
//! its requests in a PHP session; the session lives on the volume, so it continues on another
//! node when its node crashes. The raw mechanism under apps that keep logins in PHP sessions
//! (ownCloud); WordPress (tests/src/wordpress.rs) signs its own cookies instead.

use std::time::Duration;

use crate::haproxy::LISTEN;
use crate::triad::DOCROOT;
use crate::wordpress::NODE_PAGE;
use crate::{http, Testbed};

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

/// HAProxy's abnormal requests and server changes, printed when a client request failed.
pub fn print_haproxy_log(tb: &Testbed) {
    match tb.haproxy() {
        Ok(h) => eprintln!("[haproxy] its log's last lines:\n{}", h.abnormal_log(40)),
        Err(e) => eprintln!("[haproxy] no log: {e}"),
    }
}

/// PHP sessions (issue 17): a client stays on one node (the balancer's cookie), its
/// session lives on the volume, and when that node crashes the next request, on another
/// node, continues the same session; a client loop meanwhile sees no failed request.
/// Returns the crashed node's name (the caller starts it again).
pub fn survive_their_node(tb: &Testbed) -> anyhow::Result<String> {
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
                match http::get(LISTEN, NODE_PAGE, Duration::from_secs(30)) {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => failed.push(format!(
                        "HTTP {} {}",
                        r.status,
                        crate::wordpress::excerpt(&r.body)
                    )),
                    Err(e) => failed.push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            failed
        });
        let result = (|| -> anyhow::Result<(u64, String)> {
            crate::faults::crash(victim)?;
            eprintln!("[session] {home} crashed");
            session_request(&jar)
        })();
        // a few more seconds of the loop after the session moved
        if result.is_ok() {
            crate::wait::pace(
                Duration::from_secs(5),
                "the client loop after the session moved",
            )?;
        }
        stop.store(true, Ordering::Relaxed);
        let failed = loop_.join().expect("the client loop");
        if result.is_err() || !failed.is_empty() {
            print_haproxy_log(tb);
        }
        Ok((failed, result?))
    })?;
    eprintln!(
        "[session] after the crash: count {} on {}; the client loop's failures: {failed:?}",
        after.0, after.1
    );
    if !failed.is_empty() {
        // what the survivors' Apache said about it (a 403 is Apache's answer to a path it
        // could not stat: AH00035, with the file system's error)
        for n in tb.nodes.iter().filter(|n| n.name != home) {
            let log = n
                .sh(&format!(
                    "tail -n 8 /var/log/apache2/error.log; tail -n 15 {} 2>/dev/null",
                    crate::triad::MOUNT_LOG
                ))
                .unwrap_or_else(|e| e.to_string());
            eprintln!(
                "[session] {}: Apache's and the mount's logs:\n{log}",
                n.name
            );
        }
    }
    assert_eq!(after.0, 6, "the session continued after its node crashed");
    assert_ne!(after.1, home, "served by another node");
    assert!(
        failed.is_empty(),
        "requests failed while {home} crashed: {failed:?}"
    );
    Ok(home)
}
