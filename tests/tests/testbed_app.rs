//! The app on top (issue 17): WordPress 6.1 from Debian 12's archive on a Triad lab (code and
//! uploads on the volume, its database through each node's endpoint), used through the
//! lab's HAProxy by a real browser (curl with a cookie jar): a login and its content, with
//! an uploaded file, survive the crash of the node that served them and then a full outage
//! of every node, with nobody touching the app; a PHP session survives its node's crash; a
//! real Prometheus with the shipped alert rules fires TriadNodeDown for the crashed node; a
//! backup taken while a reader reads and a client writes (issue 19) is listed and verified,
//! a corrupted part of it is refused by name, and one whose command dies midway is failed
//! and never listed; at the end the lab is torn down, an empty one brought up, and the
//! backup restored into it: every row acknowledged before the backup began is on every
//! node, none written after it, every file is byte-identical, the login and the post are
//! served again; a second restore onto the now non-empty cluster is refused without
//! --force. Real Galera, Gluster, Apache and HAProxy, driven by the agents and the
//! coordinator.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use triad_tests::formation::{insert_acked, insert_during, prepare_schema, present_ids};
use triad_tests::haproxy::LISTEN;
use triad_tests::prometheus::Prometheus;
use triad_tests::wait::{self, Poll};
use triad_tests::wordpress::{self, Browser, Post, Upload};
use triad_tests::{backups, faults, http, triad, Testbed};

/// A client loop without cookies (the balancer spreads it over every node, the crashed one
/// too) reading the post; returns the failed requests.
fn reader_loop(stop: &AtomicBool, post: &Post) -> Vec<String> {
    let mut failed = Vec::new();
    let path = format!("/?p={}", post.id);
    let t = Instant::now();
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) && sent < 3_000 && t.elapsed() < Duration::from_secs(600) {
        sent += 1;
        let at = t.elapsed();
        match http::get(LISTEN, &path, Duration::from_secs(30)) {
            Ok(r) if r.status == 200 && r.body.contains(&post.title) => {}
            Ok(r) => failed.push(format!(
                "+{at:.1?}: HTTP {} {}",
                r.status,
                wordpress::excerpt(&r.body)
            )),
            Err(e) => failed.push(format!("+{at:.1?}: {e}")),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    failed
}

/// Waits (bounded) until `browser` is served the post and the upload.
fn wait_content(
    browser: &Browser,
    post: &Post,
    upload: &Upload,
    bytes: &[u8],
    limit: Duration,
    what: &str,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    Ok(wait::until(
        what,
        limit,
        Duration::from_millis(500),
        || {
            Ok(
                match wordpress::content_served(browser, post, upload, bytes)? {
                    None => Poll::Ready(t.elapsed()),
                    Some(why) => Poll::Pending(why),
                },
            )
        },
    )?)
}

/// The body of the 503 during a quiesced backup.
const QUIESCED: &str = triad_coordinator::backup::QUIESCE_MESSAGE;

/// A tar that stops after 3 MB and exits 2: a backup's files command dying midway.
const BROKEN_TAR: &str = "#!/bin/sh\n# testbed_app: a tar that dies midway\n/usr/bin/tar \"$@\" | head -c 3000000\nexit 2\n";

/// The ids `triadctl backup list` shows.
fn backup_ids() -> anyhow::Result<Vec<String>> {
    Ok(backups::list()?["backups"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|b| b["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// The backup directory's `.partial` entries (a backup being written, or left by a failure).
fn partial_dirs() -> anyhow::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(triad::lab_backup_dir())?
        .flatten()
        .map(|e| e.path())
        .filter(|path| path.to_string_lossy().ends_with(".partial"))
        .collect();
    found.sort();
    Ok(found)
}

#[test]
fn testbed_app_wordpress_keeps_a_login_and_its_content_through_a_crash_and_a_full_outage(
) -> anyhow::Result<()> {
    let mut tb = Testbed::for_test(3)?;
    let site = wordpress::lab(&mut tb)?;
    // a real Prometheus with the shipped alert rules watches the lab's coordinator (issue 21)
    let prometheus = Prometheus::start(&tb.state.join("prometheus"), triad::COORDINATOR_METRICS)?;

    // 1. log in through the balancer, upload a picture, publish a post that shows it
    let browser = Browser::new(tb.state.join("wp-cookies.txt"));
    assert!(!browser.logged_in()?, "a new browser is not logged in");
    browser.login(&site.user, &site.password)?;
    assert!(browser.logged_in()?, "logged in after the login form");
    let picture = tb.state.join("upload.png");
    std::fs::copy(
        tb.nodes[0]
            .root()
            .join("usr/share/wordpress/wp-admin/images/wordpress-logo.png"),
        &picture,
    )?;
    let bytes = std::fs::read(&picture)?;
    let upload = browser.upload(&picture, "triad-survives.png", "image/png")?;
    let post = browser.publish(
        "Triad keeps this post",
        &format!("<p>Uploaded:</p><img src=\"{}\" />", upload.path),
    )?;
    eprintln!(
        "[app] post {} with upload {} ({} bytes)",
        post.id,
        upload.path,
        bytes.len()
    );
    if let Some(why) = wordpress::content_served(&browser, &post, &upload, &bytes)? {
        anyhow::bail!("the content is not served right after it was made: {why}");
    }
    let home = browser.serving_node()?;
    for _ in 0..4 {
        assert_eq!(
            browser.serving_node()?,
            home,
            "the balancer keeps a browser on one node"
        );
    }

    // 1b. a backup while a reader loop reads and a client writes (issue 19): listed and
    // verified (its restore is step 5). First one whose files command dies midway (a tar first on the nodes' PATH that stops
    // after 3 MB): it fails naming the command, nothing of it is listed or left partial,
    // no node stays desynced, and the backup after it is whole
    let listed_before = backup_ids()?;
    for n in &tb.nodes {
        n.write_file("/usr/local/bin/tar", BROKEN_TAR)?;
        n.exec(&["chmod", "0755", "/usr/local/bin/tar"])?;
    }
    let broken = backups::now_output();
    for n in &tb.nodes {
        n.exec(&["rm", "-f", "/usr/local/bin/tar"])?;
    }
    let broken = broken?;
    let said = String::from_utf8_lossy(&broken.stderr).to_string();
    eprintln!("[app] a backup whose tar dies: {}", said.trim());
    assert!(
        !broken.status.success() && said.contains("tar") && said.contains("exit status 2"),
        "a backup whose tar dies midway: {} {said}",
        broken.status
    );
    assert_eq!(
        backup_ids()?,
        listed_before,
        "a failed backup is not listed"
    );
    let partial = partial_dirs()?;
    assert!(partial.is_empty(), "a failed backup left {partial:?}");
    for n in &tb.nodes {
        let desync = n.exec(&["mariadb", "-N", "-e", "SELECT @@GLOBAL.wsrep_desync"])?;
        assert_eq!(
            desync.trim(),
            "0",
            "{} desynced after a failed backup",
            n.name
        );
    }

    // rows acknowledged before the backup begins, and the files as they are then
    prepare_schema(&tb.nodes[0])?;
    let before: Vec<u64> = (1..=30)
        .filter(|id| insert_acked(&tb.nodes[*id as usize % 3], *id, Duration::from_secs(5)).is_ok())
        .collect();
    assert_eq!(before.len(), 30, "rows before the backup: {before:?}");
    let files_before = backups::docroot_sums(&tb.nodes[0])?;
    let stop = AtomicBool::new(false);
    let t = Instant::now();
    let (failed, made) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| reader_loop(&stop, &post));
        let made = insert_during(&tb, 1_000, backups::now);
        stop.store(true, Ordering::Relaxed);
        (reader.join().expect("the reader loop"), made)
    });
    let (during, id) = made?;
    eprintln!(
        "[app] backup {id} made in {:.1?} while {} rows were written",
        t.elapsed(),
        during.len()
    );
    assert!(
        failed.is_empty(),
        "reader requests failed during the backup: {failed:?}"
    );
    assert!(
        !during.is_empty(),
        "the writer committed nothing during the backup"
    );
    // written after the backup: must not come back with it
    let written_after: Vec<u64> = (900_000..900_010)
        .filter(|id| insert_acked(&tb.nodes[*id as usize % 3], *id, Duration::from_secs(5)).is_ok())
        .collect();
    assert!(!written_after.is_empty(), "rows after the backup");
    // the files present when the backup began and unchanged until it ended
    let files_after = backups::docroot_sums(&tb.nodes[0])?;
    let stable: std::collections::BTreeMap<String, String> = files_before
        .into_iter()
        .filter(|(path, sum)| files_after.get(path) == Some(sum))
        .collect();
    assert!(
        stable.contains_key(&format!(".{}", upload.path)),
        "the upload {} among the docroot's files",
        upload.path
    );
    let listed = backups::list()?;
    let entry = listed["backups"]
        .as_array()
        .and_then(|all| all.iter().find(|b| b["id"] == id.as_str()))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("backup {id} is not in `backup list`: {listed}"))?;
    eprintln!("[app] listed: {entry}");
    assert!(entry["galera_seqno"].as_i64() > Some(0), "{entry}");
    assert!(entry["parts"].as_u64() >= Some(3), "several parts: {entry}");
    let verified = backups::verify_output(&id)?;
    assert!(
        verified.status.success(),
        "backup verify {id}: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    // one byte of a part flipped: verify refuses, naming the part (then the byte is put back)
    let part = triad::lab_backup_dir().join(&id).join("files.00000");
    let original = std::fs::read(&part)?;
    let mut damaged = original.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x01;
    std::fs::write(&part, &damaged)?;
    let refused = backups::verify_output(&id);
    std::fs::write(&part, &original)?;
    let refused = refused?;
    let said = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(
        !refused.status.success() && said.contains("files.00000"),
        "verify of a damaged part: {} {said}",
        refused.status
    );
    eprintln!("[app] a damaged part is refused: {}", said.trim());

    // 2. crash the node that served the session while a reader loop runs
    let victim = tb.node(&home)?;
    let stop = AtomicBool::new(false);
    let mut crashed_at = Instant::now();
    let (failed, after) = std::thread::scope(|scope| -> anyhow::Result<_> {
        let reader = scope.spawn(|| reader_loop(&stop, &post));
        let result = (|| -> anyhow::Result<(bool, String, Option<String>)> {
            // the reader has run a while before the crash
            wait::pace(Duration::from_secs(3), "the reader loop before the crash")?;
            faults::crash(victim)?;
            crashed_at = Instant::now();
            eprintln!("[app] {home} crashed");
            let logged_in = browser.logged_in()?;
            let node = browser.serving_node()?;
            let content = wordpress::content_served(&browser, &post, &upload, &bytes)?;
            // the reader goes on 5 s after the browser moved
            wait::pace(Duration::from_secs(5), "the reader loop after the crash")?;
            Ok((logged_in, node, content))
        })();
        stop.store(true, Ordering::Relaxed);
        let failed = reader.join().expect("the reader loop");
        Ok((failed, result?))
    })?;
    if !failed.is_empty() {
        triad_tests::sessions::print_haproxy_log(&tb);
    }
    let (logged_in, node, content) = after;
    eprintln!(
        "[app] after {home}'s crash: logged in {logged_in} on {node}; reader failures {failed:?}"
    );
    assert!(logged_in, "the login survived the crash of {home}");
    assert_ne!(node, home, "served by another node after {home}'s crash");
    assert_eq!(content, None, "the content after {home}'s crash");
    assert!(
        failed.is_empty(),
        "reader requests failed while {home} crashed: {failed:?}"
    );

    // the crash fires the shipped rule an operator would get (TriadNodeDown: down for 30 s)
    let firing =
        prometheus.wait_firing("TriadNodeDown", ("node", &home), Duration::from_secs(120))?;
    eprintln!(
        "[app] alert TriadNodeDown{{node={home:?}}} firing {:.1?} after the crash",
        crashed_at.elapsed()
    );
    assert!(
        crashed_at.elapsed() >= Duration::from_secs(30),
        "TriadNodeDown fired before its 30 s ({firing:.1?})"
    );
    faults::start(victim)?;
    triad::wait_all_ready(&tb, 3, Duration::from_secs(180))?;
    prometheus.wait_resolved("TriadNodeDown", ("node", &home), Duration::from_secs(60))?;
    // the next crash claims no failed request with the two others serving: wait until the
    // coordinator has put the returned node back in HAProxy, not only called it ready
    tb.haproxy()?
        .wait_serving(&["n1", "n2", "n3"], Duration::from_secs(60))?;
    let waited = triad::wait_glusterd_connected(&tb, Duration::from_secs(180))?;
    eprintln!("[app] every glusterd sees every peer {waited:.1?} after the nodes were serving");

    // 3. a PHP session (where ownCloud keeps its logins) survives its node too
    let crashed = triad_tests::sessions::survive_their_node(&tb)?;
    faults::start(tb.node(&crashed)?)?;
    triad::wait_all_ready(&tb, 3, Duration::from_secs(180))?;
    tb.haproxy()?
        .wait_serving(&["n1", "n2", "n3"], Duration::from_secs(60))?;
    let waited = triad::wait_glusterd_connected(&tb, Duration::from_secs(180))?;
    eprintln!("[app] every glusterd sees every peer {waited:.1?} after the nodes were serving");

    // 4. every node down at once, then started: the app comes back by itself. The outage
    // comes while a backup streams from one of the nodes (issue 19: the node taking a
    // backup crashes midway): that backup fails, nothing of it is listed or left, and the
    // next one, once the app is back, is whole
    let listed_before = backup_ids()?;
    let outage_began_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let broken = std::thread::scope(|scope| -> anyhow::Result<_> {
        let backup = scope.spawn(backups::now_output);
        let streaming = wait::until(
            "a part of the backup written (its .partial directory holds a part)",
            Duration::from_secs(60),
            Duration::from_millis(100),
            || {
                let parts = partial_dirs()
                    .map_err(|e| triad_tests::LabError::Other(e.to_string()))?
                    .iter()
                    .flat_map(|dir| std::fs::read_dir(dir).into_iter().flatten().flatten())
                    .filter(|part| part.file_name().to_string_lossy().contains(".0"))
                    .count();
                Ok(if parts > 0 {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!("{parts} parts"))
                })
            },
        );
        let outage = streaming.and_then(|()| faults::full_outage(&tb, None));
        let broken = backup.join().expect("the backup's thread");
        outage?;
        Ok(broken?)
    })?;
    eprintln!("[app] full outage: every node crashed while a backup streamed");
    let said = String::from_utf8_lossy(&broken.stderr).to_string();
    eprintln!("[app] the backup the outage broke: {}", said.trim());
    assert!(
        !broken.status.success() && said.contains(" from n"),
        "a backup whose node crashed midway fails naming the node: {} {said}",
        broken.status
    );
    assert_eq!(
        backup_ids()?,
        listed_before,
        "a backup whose node crashed is not listed"
    );
    assert_eq!(
        partial_dirs()?,
        Vec::<PathBuf>::new(),
        "a backup whose node crashed left a partial directory"
    );
    let t = Instant::now();
    for n in &tb.nodes {
        faults::start(n)?;
    }
    triad::wait_all_ready(&tb, 3, Duration::from_secs(300))?;
    let back = wait_content(
        &browser,
        &post,
        &upload,
        &bytes,
        Duration::from_secs(120),
        "the post and its upload through the balancer after the full outage",
    )?;
    eprintln!(
        "[app] full outage: every node ready and the content served {:.1?} after the starts ({back:.1?} after ready)",
        t.elapsed()
    );
    assert!(browser.logged_in()?, "the login survived the full outage");
    // the timeline tells the outage's recovery (issue 21): what the coordinator decided
    let mut events = triad::triadctl(&["events", "-o", "json"])?;
    let out = triad_tests::cmd::output_timeout(&mut events, Duration::from_secs(30))?;
    let recovery: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|e| e["kind"] == "recovery" && e["at"].as_u64() >= Some(outage_began_ms))
        .filter_map(|e| e["text"].as_str().map(str::to_string))
        .collect();
    eprintln!("[app] the timeline's recovery of the outage: {recovery:?}");
    assert!(
        !recovery.is_empty(),
        "no recovery event in the timeline since the full outage: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the next backup, quiesced: while it runs, every client (the operator's address too)
    // gets the maintenance 503; after it, the app again and maintenance off
    let (next, answers) = std::thread::scope(|scope| {
        let backup = scope.spawn(backups::now_quiesced);
        let mut answers = Vec::new();
        // bounded by the backup's own limit
        while !backup.is_finished() {
            if let Ok(r) = http::get(LISTEN, "/", Duration::from_secs(5)) {
                answers.push((r.status, r.body.contains(QUIESCED)));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        (backup.join().expect("the backup thread"), answers)
    });
    let next = next?;
    eprintln!(
        "[app] the quiesced backup after the outage: {next}; {} of {} requests during it got the backup's 503",
        answers.iter().filter(|(status, said)| *status == 503 && *said).count(),
        answers.len()
    );
    assert!(
        answers.iter().any(|(status, said)| *status == 503 && *said),
        "clients got the backup's 503 while it ran: {answers:?}"
    );
    assert!(
        backup_ids()?.contains(&next),
        "the backup after the outage is listed"
    );
    wait_content(
        &browser,
        &post,
        &upload,
        &bytes,
        Duration::from_secs(30),
        "the post and its upload through the balancer after the quiesced backup",
    )?;
    let status = triad::status_json()?;
    assert!(
        status["maintenance"].is_null(),
        "maintenance mode is off after the quiesced backup: {}",
        status["maintenance"]
    );

    // 5. restore (issue 19): this lab torn down, an empty one brought up, the backup of
    // step 1b restored into it by `triadctl backup restore` alone
    let cookies = std::fs::read(tb.state.join("wp-cookies.txt"))?;
    drop(prometheus);
    tb.teardown_and_verify()?;
    let mut tb = Testbed::for_test(3)?;
    wordpress::empty_lab(&mut tb)?;
    let t = Instant::now();
    let restored = backups::restore_output(&id, false)?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&restored.stdout),
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(restored.status.success(), "backup restore {id}: {said}");
    eprintln!(
        "[app] restore of backup {id} into an empty lab: {:.1?}\n{said}",
        t.elapsed()
    );
    // every row acknowledged before the backup began, on every node; none written after it;
    // the same rows everywhere
    let mut sets = Vec::new();
    for node in &tb.nodes {
        let present = present_ids(node)?;
        let missing: Vec<&u64> = before.iter().filter(|id| !present.contains(id)).collect();
        assert!(
            missing.is_empty(),
            "{}: rows acknowledged before the backup missing: {missing:?}",
            node.name
        );
        let back: Vec<&u64> = written_after
            .iter()
            .filter(|id| present.contains(id))
            .collect();
        assert!(
            back.is_empty(),
            "{}: rows written after the backup came back: {back:?}",
            node.name
        );
        sets.push(present);
    }
    assert!(
        sets.windows(2).all(|w| w[0] == w[1]),
        "the nodes differ after the restore"
    );
    eprintln!(
        "[app] restored rows: {} ({} of the {} written during the backup)",
        sets[0].len(),
        during.iter().filter(|id| sets[0].contains(id)).count(),
        during.len()
    );
    // every file present at the backup, byte for byte
    let files = backups::docroot_sums(&tb.nodes[1])?;
    let differ: Vec<&String> = stable
        .iter()
        .filter(|(path, sum)| files.get(*path) != Some(sum))
        .map(|(path, _)| path)
        .collect();
    assert!(
        differ.is_empty(),
        "files missing or different after the restore: {differ:?}"
    );
    // the app serves the post, and the login made before the backup still holds
    triad::wait_all_ready(&tb, 3, Duration::from_secs(300))?;
    tb.haproxy()?.wait_all_up(Duration::from_secs(60))?;
    let browser = Browser::new(tb.state.join("wp-cookies.txt"));
    std::fs::write(tb.state.join("wp-cookies.txt"), cookies)?;
    wait_content(
        &browser,
        &post,
        &upload,
        &bytes,
        Duration::from_secs(120),
        "the post and its upload through the balancer after the restore",
    )?;
    assert!(
        browser.logged_in()?,
        "the login made before the backup holds after the restore"
    );
    // onto a cluster that now holds data: refused without --force, naming what it holds
    let again = backups::restore_output(&id, false)?;
    let said = String::from_utf8_lossy(&again.stderr).to_string();
    assert!(
        !again.status.success() && said.contains("not empty") && said.contains("--force"),
        "a restore onto a non-empty cluster: {} {said}",
        again.status
    );
    eprintln!(
        "[app] a restore onto the restored cluster is refused: {}",
        said.trim()
    );
    tb.teardown_and_verify()?;
    Ok(())
}
