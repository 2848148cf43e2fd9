//! `triad-lab bench-scaleout --db-mib N` (issue 17): from the decision to add a web node to
//! that node answering through the balancer, with an app database of N MiB, on one fresh
//! lab: first a web node as before stateless web nodes (a Galera member, so it joins by a
//! full state transfer of the whole database), then a stateless one (no mysqld: the app's
//! database through its endpoint). The decision is the moment the node is asked for (what
//! the autoscaler's exec provider does with `triad-lab add-node`); the node's boot counts.

use std::time::{Duration, Instant};

use crate::bench_autoscale::node_ready;
use crate::triad::{self, APP_DATABASE};
use crate::wait::{self, Poll};
use crate::wordpress::NODE_PAGE;
use crate::{http, testbed, LabError, Result, Testbed, TestbedOptions};

/// How a web node reaches the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A Galera member (before issue 17): a full state transfer first.
    GaleraMember,
    /// No mysqld: the node's endpoint routes to the writer.
    Stateless,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::GaleraMember => "Galera member (state transfer)",
            Mode::Stateless => "stateless (endpoint)",
        })
    }
}

/// One scale-out's figures, from the decision.
#[derive(Debug, Clone)]
pub struct Figures {
    pub mode: Mode,
    pub booted: Duration,
    pub ready: Duration,
    pub serving: Duration,
    /// The node's mysqld processes while it served.
    pub mysqld: String,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: booted {:.1}s, ready {:.1}s, serving through the balancer {:.1}s after the decision; its mysqld: {}",
            self.mode,
            self.booted.as_secs_f64(),
            self.ready.as_secs_f64(),
            self.serving.as_secs_f64(),
            if self.mysqld.is_empty() { "none" } else { &self.mysqld }
        )
    }
}

/// Rows of about 4 KiB each, inserted in transactions of this many (64 MiB: Galera
/// replicates a transaction as one write set, which must stay well under its limits).
const CHUNK_ROWS: u64 = 16_384;

/// Fills `{APP_DATABASE}.bulk` through `node` with about `mib` MiB of rows (random hex
/// text, which InnoDB stores as it is), printing progress; returns the size InnoDB reports.
pub fn fill(node: &crate::Node, mib: u64) -> Result<u64> {
    let rows = mib * 256;
    node.sh(&format!(
        "mariadb -e 'CREATE TABLE IF NOT EXISTS {APP_DATABASE}.bulk (id BIGINT AUTO_INCREMENT PRIMARY KEY, pad VARCHAR(4000) NOT NULL) ENGINE=InnoDB; \
         INSERT INTO {APP_DATABASE}.bulk (pad) VALUES (REPEAT(MD5(RAND()), 125))'"
    ))?;
    let t = Instant::now();
    let mut have = 1u64;
    while have < rows {
        let n = have.min(CHUNK_ROWS).min(rows - have);
        node.exec_limit(
            &[
                "mariadb",
                "-e",
                &format!(
                    "INSERT INTO {APP_DATABASE}.bulk (pad) SELECT REPEAT(MD5(RAND()), 125) FROM {APP_DATABASE}.bulk LIMIT {n}"
                ),
            ],
            Duration::from_secs(300),
        )?;
        have += n;
        if have % (CHUNK_ROWS * 4) < n || have == rows {
            eprintln!(
                "[scaleout] {have} of {rows} rows ({} MiB) in {:.0}s",
                have / 256,
                t.elapsed().as_secs_f64()
            );
        }
    }
    let size = node.sh(&format!(
        "mariadb -N -B -e \"ANALYZE TABLE {APP_DATABASE}.bulk\" >/dev/null; mariadb -N -B -e \
         \"SELECT data_length + index_length FROM information_schema.tables WHERE table_schema = '{APP_DATABASE}' AND table_name = 'bulk'\""
    ))?;
    size.trim()
        .parse()
        .map_err(|_| LabError::Other(format!("bulk table size: {size:?}")))
}

/// Adds the next node in `mode` and waits until it is ready and answers through the
/// balancer.
pub fn add_and_serve(tb: &mut Testbed, mode: Mode, limit: Duration) -> Result<Figures> {
    let t0 = Instant::now();
    let name = tb.add_node(Duration::from_secs(90))?.name.clone();
    let booted = t0.elapsed();
    let tb: &Testbed = tb;
    let node = tb.node(&name)?;
    let config = match mode {
        Mode::Stateless => triad::stateless_web_node(tb, node)?,
        Mode::GaleraMember => triad::galera_web_agent_config(tb, node),
    };
    triad::install_agent_with(node, &config)?;
    let ready = wait::until(
        &format!("{name} ready in the coordinator's view"),
        limit,
        Duration::from_millis(500),
        || {
            Ok(if node_ready(&name) == Some(true) {
                Poll::Ready(t0.elapsed())
            } else {
                Poll::Pending(format!("ready: {:?}", node_ready(&name)))
            })
        },
    )?;
    let serving = wait::until(
        &format!("{name} answering through the balancer"),
        Duration::from_secs(120),
        Duration::from_millis(100),
        || {
            let r = http::get(crate::haproxy::LISTEN, NODE_PAGE, Duration::from_secs(5))?;
            Ok(if r.status == 200 && r.body.trim() == name {
                Poll::Ready(t0.elapsed())
            } else {
                Poll::Pending(format!("HTTP {} {}", r.status, r.body.trim()))
            })
        },
    )?;
    let mysqld = node
        .sh("pgrep -a -x mariadbd || true")
        .unwrap_or_else(|e| format!("(could not ask: {e})"))
        .trim()
        .to_string();
    Ok(Figures {
        mode,
        booted,
        ready,
        serving,
        mysqld,
    })
}

/// Removes the added node (clean poweroff: a Galera member leaves) and waits until the
/// core nodes are a Primary component of 3 again and the coordinator no longer counts it
/// ready.
fn remove_added(tb: &mut Testbed) -> Result<()> {
    let name = tb.nodes.last().map(|n| n.name.clone()).unwrap_or_default();
    tb.remove_last_node(testbed::REMOVE_STOP_LIMIT)?;
    wait::until(
        &format!("{name} gone: Galera of 3 and not ready in the view"),
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            let w = crate::formation::wsrep(&tb.nodes[0])?;
            let size = w.get("wsrep_cluster_size").cloned().unwrap_or_default();
            Ok(if size == "3" && node_ready(&name) != Some(true) {
                Poll::Ready(())
            } else {
                Poll::Pending(format!(
                    "cluster size {size}, {name} ready {:?}",
                    node_ready(&name)
                ))
            })
        },
    )
}

/// The bench: a fresh lab, the database filled, then one scale-out per mode.
pub fn run(db_mib: u64) -> Result<()> {
    let mut tb = Testbed::up(TestbedOptions::default())?;
    let outcome = (|| -> Result<()> {
        triad::cargo_build()?;
        for n in &tb.nodes {
            triad::install_agent(&tb, n)?;
        }
        triad::start_coordinator(&mut tb)?;
        triad::wait_docroot_mounted(&tb.nodes[0], Duration::from_secs(240))?;
        triad::publish_app(&tb.nodes[0])?;
        triad::wait_all_ready(&tb, 3, Duration::from_secs(240))?;
        tb.start_haproxy()?;
        tb.haproxy()?.wait_all_up(Duration::from_secs(30))?;
        triad::wait_balancer_members(Duration::from_secs(60))?;
        let t = Instant::now();
        let size = fill(&tb.nodes[0], db_mib)?;
        println!(
            "bench-scaleout: app database filled to {:.0} MiB (InnoDB's figure) in {:.0}s",
            size as f64 / 1048576.0,
            t.elapsed().as_secs_f64()
        );
        for mode in [Mode::GaleraMember, Mode::Stateless] {
            let f = add_and_serve(&mut tb, mode, Duration::from_secs(1200))?;
            println!("bench-scaleout, {db_mib} MiB: {f}");
            remove_added(&mut tb)?;
        }
        Ok(())
    })();
    let teardown = tb.teardown();
    outcome?;
    teardown
}
