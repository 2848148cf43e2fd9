//! Galera driven by Triad only (issue 4), on real Debian nodes with systemd, mariadb.service
//! and galera-4: the agents manage mysqld, the coordinator forms the cluster and recovers it
//! after full outages. No Galera command is run by hand here; the test only injects faults,
//! writes through a real `mariadb` client, and checks the data.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use triad_tests::formation::{insert_during, prepare_schema, present_ids, sql, wsrep};
use triad_tests::hostproc::HostProc;
use triad_tests::node::HOST_ADDR;
use triad_tests::triad::{find_bin, COORDINATOR_GRPC, GOSSIP_PORT, GRPC_PORT};
use triad_tests::wait::{self, Poll};
use triad_tests::{faults, LabError, Node, Testbed};

type Result<T> = std::result::Result<T, LabError>;

fn seeds(tb: &Testbed) -> String {
    let list: Vec<String> = tb
        .nodes
        .iter()
        .map(|n| format!("\"{}:{GOSSIP_PORT}\"", n.addr))
        .collect();
    format!("[{}]", list.join(", "))
}

fn agent_config(tb: &Testbed, node: &Node) -> String {
    format!(
        r#"[node]
id = "{name}"
role = "core"
address = "{addr}"

[cluster]
name = "triad-lab"
seeds = {seeds}

[gossip]
listen = "{addr}:{GOSSIP_PORT}"

[grpc]
listen = "{addr}:{GRPC_PORT}"

[readiness]
require = ["galera"]

[galera]
sst_method = "rsync"
gcache_size = "32M"
innodb_buffer_pool_size = "64M"
start_backoff = "3s"
tls = true

[tls]
ca = "{pki}/ca.pem"
cert = "{pki}/{name}.pem"
key = "{pki}/{name}.key"
"#,
        pki = triad_tests::triad::NODE_PKI,
        name = node.name,
        addr = node.addr,
        seeds = seeds(tb)
    )
}

/// Installs the freshly built agent binary and its unit into every node, with Galera managed.
fn install_agents(tb: &Testbed) -> Result<()> {
    let bin = find_bin("triad-agent")
        .ok_or_else(|| LabError::Other("no triad-agent binary; run make build".into()))?;
    let unit = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/agent/triad-agent.service");
    for node in &tb.nodes {
        triad_tests::triad::install_node_cert(node)?;
        node.write_file("/etc/triad/agent.toml", &agent_config(tb, node))?;
        let tmp = node.root().join("usr/bin/.triad-agent.new");
        std::fs::copy(&bin, &tmp)
            .map_err(|e| LabError::Other(format!("copy {}: {e}", bin.display())))?;
        std::fs::rename(&tmp, node.root().join("usr/bin/triad-agent"))
            .map_err(|e| LabError::Other(format!("install agent: {e}")))?;
        std::fs::copy(
            &unit,
            node.root().join("etc/systemd/system/triad-agent.service"),
        )
        .map_err(|e| LabError::Other(format!("copy {}: {e}", unit.display())))?;
        triad_tests::triad::install_sysusers(node)?;
        node.sh("systemctl daemon-reload && systemctl enable --now triad-agent")?;
    }
    Ok(())
}

fn start_coordinator(tb: &mut Testbed) -> Result<()> {
    let bin = find_bin("triad-coordinator")
        .ok_or_else(|| LabError::Other("no triad-coordinator binary".into()))?;
    let dir = tb.state.join("coordinator");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| LabError::Other(format!("mkdir {}: {e}", dir.display())))?;
    let nodes: Vec<String> = tb.nodes.iter().map(|n| format!("\"{}\"", n.name)).collect();
    let config = format!(
        "[coordinator]\nstate_dir = \"{state}\"\n\n[cluster]\nname = \"triad-lab\"\nseeds = {seeds}\n\n\
         [gossip]\nlisten = \"{HOST_ADDR}:{GOSSIP_PORT}\"\n\n[grpc]\nlisten = \"{COORDINATOR_GRPC}\"\n\n\
         [galera]\ngrace = \"3s\"\nnodes = [{nodes}]\n\n\
         [tls]\nca = \"{pki}/ca.pem\"\ncert = \"{pki}/coordinator.pem\"\nkey = \"{pki}/coordinator.key\"\n",
        pki = triad_tests::triad::lab_pki()?.display(),
        state = dir.join("state").display(),
        seeds = seeds(tb),
        nodes = nodes.join(", ")
    );
    let path = dir.join("coordinator.toml");
    std::fs::write(&path, config)
        .map_err(|e| LabError::Other(format!("write {}: {e}", path.display())))?;
    let mut command = Command::new(bin);
    command
        .arg("--config")
        .arg(&path)
        .arg("run")
        .env("TRIAD_LOG", "info");
    tb.coordinator = Some(HostProc::spawn(
        "triad-coordinator",
        &mut command,
        &dir.join("coordinator.log"),
    )?);
    tb.save()
}

fn coordinator_log(tb: &Testbed) -> String {
    let text =
        std::fs::read_to_string(tb.state.join("coordinator/coordinator.log")).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("galera") || l.contains("bootstrap"))
        .collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn state_of(node: &Node) -> String {
    match wsrep(node) {
        Ok(w) => format!(
            "{}/{}/{}",
            w.get("wsrep_local_state_comment")
                .map(String::as_str)
                .unwrap_or("?"),
            w.get("wsrep_cluster_status")
                .map(String::as_str)
                .unwrap_or("?"),
            w.get("wsrep_cluster_size")
                .map(String::as_str)
                .unwrap_or("?")
        ),
        Err(_) => "down".into(),
    }
}

/// Waits until every node in `nodes` is Synced in a Primary component of `size`.
fn wait_synced(
    tb: &Testbed,
    nodes: &[&Node],
    size: usize,
    limit: Duration,
    what: &str,
) -> Result<Duration> {
    let start = Instant::now();
    wait::until(what, limit, Duration::from_millis(250), || {
        let states: Vec<String> = nodes
            .iter()
            .map(|n| format!("{}={}", n.name, state_of(n)))
            .collect();
        let done = states
            .iter()
            .all(|s| s.ends_with(&format!("=Synced/Primary/{size}")));
        Ok(if done {
            Poll::Ready(start.elapsed())
        } else {
            Poll::Pending(format!(
                "{}; coordinator:\n{}",
                states.join(" "),
                coordinator_log(tb)
            ))
        })
    })
    .map_err(|error| {
        let journals: Vec<String> = tb
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "--- {} triad-agent:\n{}\n--- {} mariadb:\n{}\n--- grastate.dat:\n{}",
                    n.name,
                    triad_tests::triad::journal_tail(n, "triad-agent", 25),
                    n.name,
                    triad_tests::triad::journal_tail(n, "mariadb", 15),
                    n.sh("cat /var/lib/mysql/grastate.dat").unwrap_or_default()
                )
            })
            .collect();
        LabError::Other(format!("{error}\n{}", journals.join("\n")))
    })
}

fn all(tb: &Testbed) -> Vec<&Node> {
    tb.nodes.iter().collect()
}

/// One lab for both scenarios (formation, rejoins and a partition first, then the full
/// outages): the second starts from the cluster the first leaves, Synced everywhere.
#[test]
fn testbed_galera_triad_forms_rejoins_and_recovers_full_outages() -> anyhow::Result<()> {
    let mut tb = Testbed::for_test(3)?;
    install_agents(&tb)?;
    start_coordinator(&mut tb)?;
    forms_keeps_and_rejoins_nodes(&mut tb)?;
    full_outage_loses_no_acknowledged_write(&mut tb)?;
    tb.teardown_and_verify()?;
    Ok(())
}

fn forms_keeps_and_rejoins_nodes(tb: &mut Testbed) -> anyhow::Result<()> {
    // 1. formation from empty datadirs, by the coordinator and the agents only
    let took = wait_synced(
        tb,
        &all(tb),
        3,
        Duration::from_secs(180),
        "formation: 3 nodes Synced/Primary",
    )?;
    eprintln!("formation from nothing: {took:.1?}");
    // replication over TLS from the lab CA; the joiners' rsync SSTs went through stunnel
    let galera_tls =
        triad_tests::triad::galera_tls_problems(tb, "Using stunnel for SSL encryption")?;
    assert!(galera_tls.is_empty(), "Galera TLS: {galera_tls:#?}");
    // status is read through a MariaDB account with no privileges (unix_socket), created by
    // the agents once Primary and replicated to every node
    for node in &tb.nodes {
        let grants = wait::until(
            &format!("the monitoring account on {}", node.name),
            Duration::from_secs(30),
            Duration::from_millis(500),
            || {
                Ok(
                    match sql(node, "SHOW GRANTS FOR 'triad-monitor'@'localhost'") {
                        Ok(g) => Poll::Ready(g),
                        Err(e) => Poll::Pending(e.to_string()),
                    },
                )
            },
        )?;
        assert!(
            grants.contains("GRANT USAGE ON *.*")
                && grants.contains("unix_socket")
                && grants.lines().count() == 1,
            "{}: {grants}",
            node.name
        );
        let as_monitor = node.sh("setpriv --reuid=triad-monitor --regid=triad-monitor --clear-groups mariadb -NB -e \"SHOW GLOBAL STATUS LIKE 'wsrep_cluster_size'\"")?;
        assert!(
            as_monitor.contains("wsrep_cluster_size\t3"),
            "{}: {as_monitor}",
            node.name
        );
        let journal = triad_tests::triad::journal_tail(node, "triad-agent", 300);
        assert!(
            !journal.contains("reading wsrep status as root"),
            "{}: the agent fell back to root",
            node.name
        );
    }
    let (n1, n2, n3) = (&tb.nodes[0], &tb.nodes[1], &tb.nodes[2]);
    prepare_schema(n1)?;
    sql(n1, "INSERT INTO lab.acked (id) VALUES (1)")?;
    for node in [n2, n3] {
        assert_eq!(
            present_ids(node)?,
            BTreeSet::from([1]),
            "row written on n1 read on {}",
            node.name
        );
    }

    // 2. SIGKILL of mysqld: brought back and Synced again
    faults::kill_unit(n2, "mariadb")?;
    let took = wait_synced(
        tb,
        &all(tb),
        3,
        Duration::from_secs(120),
        "n2 back after SIGKILL of mysqld",
    )?;
    eprintln!("mysqld SIGKILL to Synced again: {took:.1?}");

    // 3. crash one node: the other two stay Primary and take writes; start it: it rejoins
    faults::crash(n3)?;
    wait_synced(
        tb,
        &[n1, n2],
        2,
        Duration::from_secs(60),
        "n1, n2 Primary with size 2",
    )?;
    sql(n2, "INSERT INTO lab.acked (id) VALUES (2)")?;
    faults::start(n3)?;
    let took = wait_synced(
        tb,
        &all(tb),
        3,
        Duration::from_secs(180),
        "n3 rejoined after its crash",
    )?;
    eprintln!("crashed node boot to Synced: {took:.1?}");
    assert_eq!(present_ids(n3)?, BTreeSet::from([1, 2]));

    // 6. isolate one node: it goes non-Primary, nobody bootstraps, it rejoins on heal
    let epoch_before =
        std::fs::read_to_string(tb.state.join("coordinator/state/galera.json")).unwrap_or_default();
    faults::isolate(n3)?;
    wait_synced(
        tb,
        &[n1, n2],
        2,
        Duration::from_secs(60),
        "majority Primary while n3 is cut off",
    )?;
    wait::until(
        "n3 non-Primary while isolated",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let state = state_of(n3);
            Ok(if state.contains("non-Primary") || state == "down" {
                Poll::Ready(())
            } else {
                Poll::Pending(state)
            })
        },
    )?;
    sql(n1, "INSERT INTO lab.acked (id) VALUES (3)")?;
    faults::heal(n3)?;
    wait_synced(
        tb,
        &all(tb),
        3,
        Duration::from_secs(120),
        "n3 rejoined after heal",
    )?;
    let epoch_after =
        std::fs::read_to_string(tb.state.join("coordinator/state/galera.json")).unwrap_or_default();
    let epoch = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .map(|v| v["last_epoch"].clone())
    };
    assert_eq!(
        epoch(&epoch_before),
        epoch(&epoch_after),
        "a partition must not cause a bootstrap"
    );
    assert_eq!(present_ids(n3)?, BTreeSet::from([1, 2, 3]));
    Ok(())
}

/// One full outage while a client inserts: crash every node (`gap` apart, or at once), start
/// them, wait for all Synced, print the timings and the coordinator's phases; returns the
/// acknowledged ids.
fn full_outage_round(
    tb: &Testbed,
    first_id: u64,
    gap: Option<Duration>,
    shape: &str,
) -> Result<Vec<u64>> {
    let crash_at = std::time::SystemTime::now();
    let (acked, ()) = insert_during(tb, first_id, || {
        std::thread::sleep(Duration::from_millis(1500)); // let the client commit some rows first
        faults::full_outage(tb, gap).map(|_| ())
    })?;
    let up = Instant::now();
    for node in &tb.nodes {
        faults::start(node)?;
    }
    let last_up = std::time::SystemTime::now();
    let took = wait_synced(
        tb,
        &all(tb),
        3,
        Duration::from_secs(240),
        &format!("recovery after a {shape} crash"),
    )?;
    eprintln!(
        "{shape} full outage: all Synced {took:.1?} after the starts ({:.1?} incl. boots)",
        up.elapsed()
    );
    let log = tb.state.join("coordinator/coordinator.log");
    eprintln!(
        "{shape} full outage, after the last node was running: {}",
        triad_tests::triad::wait_recovery_breakdown(&log, crash_at, last_up)
            .unwrap_or_else(|e| format!("{e}\n{}", coordinator_log(tb)))
    );
    Ok(acked)
}

/// 4c. pc.recovery that cannot finish: every node crashes at once (one saved view), but n1
/// and n2 drop n3's traffic on Galera's group port (4567) once they are back, so the fast
/// path starts three mysqlds that wait for a member they never hear from. The coordinator
/// gives pc.recovery its bound (`FAST_PATH_LIMIT`), then elects: it stops the waiting
/// mysqlds and boots the most advanced node. Never a Primary component on both sides of
/// the cut; once a node is Primary the port is opened and the others join.
fn hung_pc_recovery_round(tb: &Testbed, first_id: u64) -> Result<Vec<u64>> {
    use triad_coordinator::recovery::plan::FAST_PATH_LIMIT;
    let (acked, ()) = insert_during(tb, first_id, || {
        std::thread::sleep(Duration::from_millis(1500)); // let the client commit some rows first
        faults::full_outage(tb, None).map(|_| ())
    })?;
    let (n1, n2, n3) = (&tb.nodes[0], &tb.nodes[1], &tb.nodes[2]);
    let log_path = tb.state.join("coordinator/coordinator.log");
    let seen = std::fs::read(&log_path).map(|l| l.len()).unwrap_or(0);
    let new_log = || {
        std::fs::read(&log_path)
            .map(|l| String::from_utf8_lossy(l.get(seen..).unwrap_or_default()).into_owned())
            .unwrap_or_default()
    };
    faults::start(n1)?;
    faults::start(n2)?;
    let blocks = [
        faults::PortBlock::new(n1, &n3.addr, 4567)?,
        faults::PortBlock::new(n2, &n3.addr, 4567)?,
    ];
    let up = Instant::now();
    faults::start(n3)?;
    let gave_up = wait::until(
        "the coordinator to give pc.recovery up and elect a Primary node",
        Duration::from_secs(180),
        Duration::from_millis(500),
        || {
            let log = new_log();
            let primary: Vec<&str> = tb
                .nodes
                .iter()
                .filter(|n| state_of(n).contains("/Primary/"))
                .map(|n| n.name.as_str())
                .collect();
            let across = primary.contains(&"n3") && primary.len() > 1;
            assert!(
                !across,
                "a Primary component on both sides of the cut: {primary:?}"
            );
            let given_up = log.contains("did not re-form view");
            Ok(if given_up && !primary.is_empty() {
                Poll::Ready(up.elapsed())
            } else {
                Poll::Pending(format!(
                    "given up: {given_up}; Primary on {primary:?}; fast path started: {}",
                    log.contains("fast path start")
                ))
            })
        },
    )?;
    let log = new_log();
    assert!(
        log.contains("fast path start"),
        "the fast path was not tried:\n{log}"
    );
    assert!(
        gave_up >= FAST_PATH_LIMIT,
        "gave up {gave_up:.1?} after n3 started, before the bound {FAST_PATH_LIMIT:?}"
    );
    for block in blocks {
        block.lift()?;
    }
    let took = wait_synced(
        tb,
        &all(tb),
        3,
        Duration::from_secs(240),
        "every node Synced once Galera's port is open again",
    )?;
    eprintln!(
        "hung pc.recovery: given up and a node Primary {gave_up:.1?} after n3 started (bound {FAST_PATH_LIMIT:?}); all Synced {took:.1?} after the port was opened"
    );
    Ok(acked)
}

fn full_outage_loses_no_acknowledged_write(tb: &mut Testbed) -> anyhow::Result<()> {
    wait_synced(
        tb,
        &all(tb),
        3,
        Duration::from_secs(180),
        "every node Synced",
    )?;
    prepare_schema(&tb.nodes[0])?;
    let mut acked: Vec<u64> = Vec::new();

    // 4a. all nodes at once, while a client inserts
    acked.extend(full_outage_round(tb, 1_000, None, "simultaneous")?);
    // 4b. staggered: each node's last Primary view differs
    acked.extend(full_outage_round(
        tb,
        100_000,
        Some(Duration::from_secs(6)),
        "staggered",
    )?);
    // 4c. one view saved everywhere, but pc.recovery cannot finish
    acked.extend(hung_pc_recovery_round(tb, 200_000)?);

    let present = present_ids(&tb.nodes[0])?;
    let lost: Vec<&u64> = acked.iter().filter(|id| !present.contains(id)).collect();
    eprintln!("{} acknowledged inserts, {} lost", acked.len(), lost.len());
    assert!(
        acked.len() > 20,
        "the client committed too little to prove anything: {}",
        acked.len()
    );
    assert!(lost.is_empty(), "acknowledged inserts lost: {lost:?}");

    // 5. the most advanced node comes back last: recovery waits for it
    let (n1, n2, n3) = (&tb.nodes[0], &tb.nodes[1], &tb.nodes[2]);
    faults::crash(n1)?;
    faults::crash(n2)?;
    wait::until(
        "n3 alone, non-Primary",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let state = state_of(n3);
            Ok(if !state.contains("/Primary/") {
                Poll::Ready(())
            } else {
                Poll::Pending(state)
            })
        },
    )?;
    faults::crash(n3)?;
    faults::start(n1)?;
    faults::start(n2)?;
    // nothing may bootstrap while n3 (which may hold the last writes) is missing
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(20) {
        for node in [n1, n2] {
            let state = state_of(node);
            assert!(
                !state.contains("/Primary/"),
                "{} became Primary without n3: {state}",
                node.name
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    faults::start(n3)?;
    wait_synced(
        tb,
        &all(tb),
        3,
        Duration::from_secs(240),
        "recovery once n3 is back",
    )?;
    let present_after = present_ids(n1)?;
    assert!(
        acked.iter().all(|id| present_after.contains(id)),
        "acknowledged rows lost after the last recovery"
    );

    // 7. an operator bootstraps a stale node by hand (n1, while n2 and n3, which hold later
    // writes, are down): when they come back Galera refuses them ("Reversing history"); the
    // agents must stop them (mariadb.service would restart into the same abort), keep their
    // data, never SST them, and the coordinator must say so
    faults::crash(n1)?;
    wait_synced(tb, &[n2, n3], 2, Duration::from_secs(60), "n2, n3 Primary")?;
    for id in 900_001..=900_005 {
        sql(n2, &format!("INSERT INTO lab.acked (id) VALUES ({id})"))?;
    }
    faults::crash(n2)?;
    faults::crash(n3)?;
    faults::start(n1)?;
    // as an operator would, look first: the coordinator refuses a bootstrap while gossip
    // still shows a Primary member, and while the chosen node's agent cannot report its
    // position (CI, session 12: refused "n1 did not report a position" when asked before
    // n1's agent was up after its start); wait until the crashed n2, n3 are seen down, n1's
    // agent is live and the status shows the outage with no recovery decision open
    wait::until(
        "the coordinator to see n1 live, n2 and n3 down and a full outage with no open decision",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let v = triad_tests::triad::status_json()?;
            let live = |id: &str| {
                v["nodes"]
                    .as_array()
                    .and_then(|a| a.iter().find(|n| n["id"] == id))
                    .is_some_and(|n| n["live"].as_bool() == Some(true))
            };
            let galera = v["galera"]["status"].as_str().unwrap_or("").to_string();
            let outage =
                galera.starts_with("full outage") || galera.starts_with("no Primary component");
            Ok(if live("n1") && !live("n2") && !live("n3") && outage {
                Poll::Ready(())
            } else {
                Poll::Pending(format!(
                    "n1 live: {}, n2 live: {}, n3 live: {}, galera: {galera}",
                    live("n1"),
                    live("n2"),
                    live("n3")
                ))
            })
        },
    )?;
    let stale = operator_bootstrap(n1)?;
    eprintln!("operator bootstrap of the stale n1: {stale}");
    wait_synced(tb, &[n1], 1, Duration::from_secs(60), "n1 Primary alone")?;
    faults::start(n2)?;
    faults::start(n3)?;
    let status = wait::until(
        "n2 and n3 reported ahead of the Primary component, with their recovered seqnos",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            let v = triad_tests::triad::status_json()?;
            let galera = |id: &str| -> String {
                v["nodes"]
                    .as_array()
                    .and_then(|a| a.iter().find(|n| n["id"] == id))
                    .map(|n| n["services"]["galera"].as_str().unwrap_or("").to_string())
                    .unwrap_or_default()
            };
            let line = v["galera"]["status"].as_str().unwrap_or("").to_string();
            Ok(
                if galera("n2") == "ahead"
                    && galera("n3") == "ahead"
                    // the seqno is -1 until the agent has run --wsrep-recover on the
                    // stopped node
                    && ahead_seqnos(&line, "n2").is_some_and(|(own, _)| own >= 0)
                    && ahead_seqnos(&line, "n3").is_some_and(|(own, _)| own >= 0)
                {
                    Poll::Ready(line)
                } else {
                    Poll::Pending(format!("n2 {}, n3 {}; {line}", galera("n2"), galera("n3")))
                },
            )
        },
    )?;
    eprintln!("coordinator: {status}");
    // each node still holds its later position (published from its own data): not wiped
    for node in [n2, n3] {
        let (own, primary) = ahead_seqnos(&status, &node.name)
            .ok_or_else(|| LabError::Other(format!("no seqnos for {} in: {status}", node.name)))?;
        assert!(
            own > primary,
            "{}: seqno {own} vs Primary {primary}",
            node.name
        );
    }
    let aborts = |node: &Node| -> Result<usize> {
        Ok(node
            .sh("journalctl -b -u mariadb -o cat --no-pager | grep -c 'Reversing history' || true")?
            .trim()
            .parse()
            .unwrap_or(0))
    };
    let seen = [aborts(n2)?, aborts(n3)?];
    assert!(
        seen.iter().all(|&n| n >= 1),
        "Reversing history not in the journals: {seen:?}"
    );
    // watch for longer than mariadb.service's RestartSec=5s: no new start, no SST
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(8) {
        for (node, before) in [n2, n3].into_iter().zip(seen) {
            let unit = node.sh("systemctl is-active mariadb || true")?;
            assert!(
                matches!(unit.trim(), "inactive" | "failed"),
                "{}: mariadb.service is {} (the restart loop was not stopped)",
                node.name,
                unit.trim()
            );
            assert_eq!(
                aborts(node)?,
                before,
                "{}: started again into the abort",
                node.name
            );
            let sst = node.sh(
                "journalctl -b -u mariadb -o cat --no-pager | grep -c 'SST received' || true",
            )?;
            assert_eq!(
                sst.trim(),
                "0",
                "{}: received an SST (data wiped)",
                node.name
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// From the coordinator's line "n2 ahead of the Primary component (seqno 45 vs 40; …":
/// (the node's seqno, the Primary's).
fn ahead_seqnos(line: &str, node: &str) -> Option<(i64, i64)> {
    let rest = line
        .split(&format!("{node} ahead of the Primary component (seqno "))
        .nth(1)?;
    let (own, rest) = rest.split_once(" vs ")?;
    let primary: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((own.parse().ok()?, primary.parse().ok()?))
}

/// `triadctl recover --bootstrap NODE` (the operator's override), returning its output.
fn operator_bootstrap(node: &Node) -> Result<String> {
    let mut c =
        triad_tests::triad::triadctl(&["--timeout", "90s", "recover", "--bootstrap", &node.name])?;
    let o = triad_tests::cmd::output_timeout(&mut c, Duration::from_secs(120))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if !o.status.success() {
        return Err(LabError::Other(format!("triadctl recover failed: {text}")));
    }
    Ok(text.trim().to_string())
}
