//! `triad-lab bench-recovery`: full-outage recovery of the three-node Galera cluster, Galera
//! on its own (mariadb.service started at boot, `pc.recovery` restoring the last Primary
//! view from gvwstate.dat) beside Triad (agents + coordinator), on the same kind of lab
//! nodes, for both crash shapes: every node at once, and staggered (6 s apart, so the last
//! Primary view is the last node alone and pc.recovery cannot help). The clock starts when
//! the last node is running again; done = every node Synced in a Primary component of 3.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::formation::{self, each_node, wait_galera};
use crate::testbed::{Testbed, TestbedOptions};
use crate::{faults, triad};

#[derive(Debug, Clone, Copy)]
enum Shape {
    AllAtOnce,
    Staggered,
}

impl Shape {
    fn gap(self) -> Option<Duration> {
        match self {
            Shape::AllAtOnce => None,
            Shape::Staggered => Some(Duration::from_secs(6)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Shape::AllAtOnce => "all at once",
            Shape::Staggered => "staggered 6 s",
        }
    }
}

/// Crash every node in `shape`, start them all in parallel, and time from the last node
/// running to every node Synced/Primary/3; `None` when that did not happen within `limit`.
fn outage(tb: &Testbed, shape: Shape, limit: Duration) -> Result<Option<Duration>> {
    faults::full_outage(tb, shape.gap())?;
    each_node(&tb.nodes, |n| faults::start(n).map(|_| ()))?;
    let t = Instant::now();
    for n in &tb.nodes {
        let left = limit.saturating_sub(t.elapsed());
        if wait_galera(n, tb.nodes.len(), left).is_err() {
            report_stuck(tb);
            return Ok(None);
        }
    }
    Ok(Some(t.elapsed()))
}

/// A round that did not recover: each node's wsrep state and the end of its mysqld log,
/// for whoever reads the bench's output (the lab is gone afterwards).
fn report_stuck(tb: &Testbed) {
    for n in &tb.nodes {
        let state = formation::wsrep(n)
            .map(|w| {
                format!(
                    "{} {} size {}",
                    w.get("wsrep_local_state_comment")
                        .map_or("?", String::as_str),
                    w.get("wsrep_cluster_status").map_or("?", String::as_str),
                    w.get("wsrep_cluster_size").map_or("?", String::as_str)
                )
            })
            .unwrap_or_else(|e| format!("no wsrep status ({e})"));
        let log = triad::journal_tail(n, "mariadb", 40);
        println!("--- {} not recovered: {state}\n{log}", n.name);
    }
}

fn show(what: &str, shape: Shape, r: Option<Duration>, limit: Duration) {
    match r {
        Some(d) => println!(
            "{what:28} {:14} all Synced {:.1}s after the last node was running",
            shape.name(),
            d.as_secs_f64()
        ),
        None => println!(
            "{what:28} {:14} NOT recovered within {}s (an operator must bootstrap by hand)",
            shape.name(),
            limit.as_secs()
        ),
    }
}

pub fn run(rounds: u32, limit: Duration, with_pacemaker: bool, with_galera: bool) -> Result<()> {
    if with_pacemaker {
        let state = pacemaker::prepare(&crate::host::state_dir())?;
        let mut tb = pacemaker::up(&state)?;
        for shape in [Shape::AllAtOnce, Shape::Staggered] {
            contender("pacemaker", shape, rounds, limit, || {
                pacemaker::outage(&tb, shape.gap(), limit)
            })?;
        }
        tb.teardown()?;
    }
    if with_galera {
        for shape in [Shape::AllAtOnce, Shape::Staggered] {
            contender("galera alone (pc.recovery)", shape, rounds, limit, || {
                // a fresh cluster formed by hand (the recipe), mariadb.service enabled as
                // Debian ships it
                let mut tb = Testbed::up(TestbedOptions::default())?;
                formation::galera_form(&tb)?;
                let r = outage(&tb, shape, limit)?;
                tb.teardown()?;
                Ok(r)
            })?;
        }
    }
    triad::cargo_build()?;
    let mut tb = Testbed::up(TestbedOptions::default())?;
    let mut source = None;
    for n in &tb.nodes {
        source = Some(triad::install_agent(&tb, n)?);
    }
    match source {
        Some(triad::AgentSource::Deb(deb)) => {
            println!("triad's rounds run triad-agent from {}", deb.display())
        }
        Some(triad::AgentSource::Binary(bin)) => println!(
            "triad's rounds run triad-agent from {} (no newer .deb: `make deb` first to measure the release build)",
            bin.display()
        ),
        None => {}
    }
    triad::start_coordinator(&mut tb)?;
    for n in &tb.nodes {
        wait_galera(n, 3, Duration::from_secs(240))?;
    }
    for shape in [Shape::AllAtOnce, Shape::Staggered] {
        contender("triad", shape, rounds, limit, || outage(&tb, shape, limit))?;
    }
    tb.teardown()?;
    Ok(())
}

/// `rounds` outages of one shape for one contender: each round's line, then the median and
/// worst (a round that did not recover counts as the worst).
fn contender(
    what: &str,
    shape: Shape,
    rounds: u32,
    limit: Duration,
    mut round: impl FnMut() -> Result<Option<Duration>>,
) -> Result<()> {
    let mut times = Vec::new();
    for _ in 0..rounds {
        let r = round()?;
        show(what, shape, r, limit);
        times.push(r);
    }
    let mut recovered: Vec<Duration> = times.iter().flatten().copied().collect();
    recovered.sort();
    let Some(worst) = recovered.last() else {
        println!(
            "{what:28} {:14} none of {} rounds recovered",
            shape.name(),
            times.len()
        );
        return Ok(());
    };
    println!(
        "{what:28} {:14} median {:.1}s, worst {:.1}s, {} of {} rounds recovered",
        shape.name(),
        recovered[recovered.len() / 2].as_secs_f64(),
        worst.as_secs_f64(),
        recovered.len(),
        times.len()
    );
    Ok(())
}

/// Pacemaker + Corosync + ocf:heartbeat:galera on the same kind of nodes, set up as
/// ../shared/reference/pacemaker-anchor.md describes (the baseline the issue names). Its
/// nodes run from a copy of the lab image with the cluster stack added, under their own
/// state dir (the bridge and addresses are the lab's: the lab must be down).
pub mod pacemaker {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::{Duration, Instant};

    use crate::cmd::run;
    use crate::error::{IoContext, LabError, Result};
    use crate::node::Node;
    use crate::testbed::{Testbed, TestbedOptions};
    use crate::wait::{self, Poll};

    const PACKAGES: &str = "pacemaker corosync resource-agents pcs pacemaker-cli-utils";

    fn corosync_conf(nodes: &[(String, String)]) -> String {
        let mut s = String::from(
            "totem {\n    version: 2\n    cluster_name: triadpcmk\n    transport: knet\n    crypto_cipher: none\n    crypto_hash: none\n}\n\nnodelist {\n",
        );
        for (i, (name, addr)) in nodes.iter().enumerate() {
            s.push_str(&format!(
                "    node {{\n        ring0_addr: {addr}\n        name: {name}\n        nodeid: {}\n    }}\n",
                i + 1
            ));
        }
        s.push_str("}\n\nquorum {\n    provider: corosync_votequorum\n    two_node: 0\n}\n\nlogging {\n    to_logfile: yes\n    logfile: /var/log/corosync/corosync.log\n    to_syslog: yes\n    timestamp: on\n}\n");
        s
    }

    /// The Pacemaker state dir: a copy of the lab image plus the cluster stack (built once).
    pub fn prepare(lab_state: &Path) -> Result<PathBuf> {
        let state = lab_state.with_file_name(format!(
            "{}-pcmk",
            lab_state
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("triad-lab")
        ));
        let image = state.join("image");
        let hash = state.join("image.hash");
        let lab_image = crate::image::Image::new(lab_state);
        lab_image.ensure(false)?;
        let want = crate::image::image_hash();
        let current = image.join("usr/sbin/pacemakerd").exists()
            && std::fs::read_to_string(&hash)
                .map(|h| h.trim() == want)
                .unwrap_or(false);
        if current {
            return Ok(state);
        }
        let t = Instant::now();
        std::fs::create_dir_all(&state).io("mkdir", &state)?;
        let building = state.join("image.new");
        let _ = crate::image::remove_tree(&building);
        run(Command::new("cp")
            .arg("-a")
            .arg(&lab_image.root)
            .arg(&building))?;
        let policy = building.join("usr/sbin/policy-rc.d");
        std::fs::write(&policy, "#!/bin/sh\nexit 101\n").io("write", &policy)?;
        run(Command::new("chmod").arg("755").arg(&policy))?;
        run(Command::new("systemd-nspawn")
            .arg("-D")
            .arg(&building)
            .args(["--register=no", "--keep-unit", "--pipe", "-E", "DEBIAN_FRONTEND=noninteractive", "sh", "-c"])
            .arg(format!(
                "apt-get update -q && apt-get install -y -q --no-install-recommends {PACKAGES} && apt-get clean"
            )))?;
        std::fs::remove_file(&policy).io("remove", &policy)?;
        run(Command::new("chroot").arg(&building).args([
            "systemctl",
            "disable",
            "mariadb.service",
            "pcsd.service",
            "pcsd-ruby.service",
            "corosync.service",
            "pacemaker.service",
        ]))?;
        // the ocf agent starts mysqld_safe with --log-error=/var/log/mysql/error.log
        run(Command::new("chroot").arg(&building).args([
            "sh",
            "-c",
            "mkdir -p /var/log/mysql && chown mysql:mysql /var/log/mysql",
        ]))?;
        let _ = crate::image::remove_tree(&image);
        std::fs::rename(&building, &image).io("rename", &building)?;
        std::fs::write(&hash, want).io("write", &hash)?;
        eprintln!(
            "[pcmk] image with {PACKAGES} built in {:.1}s",
            t.elapsed().as_secs_f64()
        );
        Ok(state)
    }

    fn galera_cnf(node: &Node, names: &[String]) -> String {
        format!(
            "[mysqld]\nbind-address=0.0.0.0\nbinlog_format=ROW\ndefault_storage_engine=InnoDB\n\
innodb_autoinc_lock_mode=2\ninnodb_buffer_pool_size=64M\ninnodb_flush_log_at_trx_commit=1\n\
wsrep_on=ON\nwsrep_provider=/usr/lib/galera/libgalera_smm.so\n\
wsrep_provider_options=\"gcache.size=32M\"\nwsrep_cluster_name=triad-pcmk\n\
wsrep_cluster_address=gcomm://{}\nwsrep_node_name={}\nwsrep_sst_method=rsync\n",
            names.join(","),
            node.name
        )
    }

    fn crm(node: &Node) -> String {
        node.exec_output(&["crm_mon", "-1"], Duration::from_secs(15))
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Done: Pacemaker shows every node promoted and every mysqld Synced in a Primary of N.
    fn wait_done(tb: &Testbed, limit: Duration) -> Result<Duration> {
        let t = Instant::now();
        let names: Vec<String> = tb.nodes.iter().map(|n| n.name.clone()).collect();
        let promoted = format!("Promoted: [ {} ]", names.join(" "));
        wait::until(
            "pacemaker: every node promoted and Synced",
            limit,
            Duration::from_millis(500),
            || {
                let c = crm(&tb.nodes[0]);
                if !c.contains(&promoted) {
                    let line = c
                        .lines()
                        .find(|l| {
                            l.contains("Promoted")
                                || l.contains("Unpromoted")
                                || l.contains("Stopped")
                        })
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    return Ok(Poll::Pending(format!("crm_mon: {line}")));
                }
                for n in &tb.nodes {
                    if crate::formation::wait_galera(n, names.len(), Duration::from_millis(1))
                        .is_err()
                    {
                        return Ok(Poll::Pending(format!("{} not Synced/3", n.name)));
                    }
                }
                Ok(Poll::Ready(t.elapsed()))
            },
        )
    }

    /// Boots the nodes, starts corosync + pacemaker, creates the galera resource, waits for
    /// the cluster to form. Returns the testbed.
    pub fn up(state: &Path) -> Result<Testbed> {
        let tb = Testbed::up(TestbedOptions {
            state_dir: state.to_path_buf(),
            ..TestbedOptions::default()
        })?;
        let pairs: Vec<(String, String)> = tb
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.addr.clone()))
            .collect();
        let names: Vec<String> = pairs.iter().map(|p| p.0.clone()).collect();
        let t = Instant::now();
        crate::formation::each_node(&tb.nodes, |n| {
            n.write_file("/etc/corosync/corosync.conf", &corosync_conf(&pairs))?;
            n.write_file(
                "/etc/mysql/mariadb.conf.d/99-galera.cnf",
                &galera_cnf(n, &names),
            )?;
            n.exec(&["systemctl", "stop", "mariadb"])?;
            n.exec(&["systemctl", "enable", "--now", "corosync", "pacemaker"])?;
            Ok(())
        })?;
        let n1 = &tb.nodes[0];
        let online = format!("Online: [ {} ]", names.join(" "));
        wait::until(
            "pacemaker: every node online",
            Duration::from_secs(120),
            Duration::from_millis(500),
            || {
                let c = crm(n1);
                Ok(if c.contains(&online) {
                    Poll::Ready(())
                } else {
                    Poll::Pending(c.lines().take(3).collect::<Vec<_>>().join(" | "))
                })
            },
        )?;
        n1.exec(&[
            "pcs",
            "property",
            "set",
            "stonith-enabled=false",
            "no-quorum-policy=stop",
        ])?;
        n1.exec_limit(
            &[
                "pcs",
                "resource",
                "create",
                "galera",
                "ocf:heartbeat:galera",
                &format!("wsrep_cluster_address=gcomm://{}", names.join(",")),
                "enable_creation=true",
                "check_user=root",
                "promotable",
                "promoted-max=3",
            ],
            Duration::from_secs(60),
        )?;
        let formed = wait_done(&tb, Duration::from_secs(240))?;
        eprintln!("[pcmk] formed: pacemaker online + galera promoted on all in {:.1}s ({:.1}s after the resource)", t.elapsed().as_secs_f64(), formed.as_secs_f64());
        Ok(tb)
    }

    /// Crash every node (all at once, or staggered), start them, time from the last node
    /// running until Pacemaker has promoted all and every node is Synced; None on timeout.
    pub fn outage(
        tb: &Testbed,
        gap: Option<Duration>,
        limit: Duration,
    ) -> Result<Option<Duration>> {
        crate::faults::full_outage(tb, gap)?;
        crate::formation::each_node(&tb.nodes, |n| crate::faults::start(n).map(|_| ()))?;
        match wait_done(tb, limit) {
            Ok(d) => Ok(Some(d)),
            Err(LabError::Timeout { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
