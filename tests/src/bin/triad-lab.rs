//! `triad-lab`: bring up, inspect, fault and tear down the Triad lab (systemd-nspawn nodes on
//! bridge triadbr0, HAProxy at 127.0.0.1:8080, the coordinator on the host).
//!
//! `add-node [--role web|core] n<k+1>` and `remove-node n<k>` change the node set of a running
//! lab (the commands an autoscaler's exec provider runs): one more node from the same image,
//! its agent installed and started (a web node: Galera member by SST, volume client, Apache),
//! recorded in lab.json; removal powers the highest-numbered node off cleanly (never n1..n3).
//! Both are idempotent and take a lock in the state dir, one change at a time.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use triad_tests::testbed::{self, Testbed, TestbedOptions};
use triad_tests::{faults, formation, host, image::Image, triad};

#[derive(Parser, Debug)]
#[command(
    name = "triad-lab",
    about = "Triad lab: Debian 12 nodes in systemd-nspawn containers"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Build the agent and coordinator, boot N nodes, form Galera/Gluster/Apache, start the
    /// agents, the coordinator and HAProxy.
    Up {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Do not run cargo build; use the binaries/packages already there.
        #[arg(long)]
        no_build: bool,
        /// Skip installing and starting the agents and the coordinator.
        #[arg(long)]
        no_triad: bool,
        /// Do not install the app (WordPress from Debian's archive, on the volume, its
        /// database through the nodes' endpoint); the lab then serves a one-line page.
        #[arg(long)]
        no_app: bool,
    },
    /// Show nodes, units, Galera and HAProxy state, and `triadctl status`.
    Status,
    /// Boot one more node, n<k+1> for a lab of k nodes, and install and start its agent
    /// (for autoscaling). A web node is stateless (no mysqld: the app's database through its
    /// endpoint), mounts the volume from the core nodes (no brick) and serves; the coordinator adds it to HAProxy once it
    /// is ready. Returns once the agent is started, without waiting for readiness. A node
    /// that already exists and runs is not an error.
    AddNode {
        /// The new node's role.
        #[arg(long, value_enum, default_value_t = NodeRole::Web)]
        role: NodeRole,
        /// The new node's name: n<k+1>.
        name: String,
    },
    /// Power off the highest-numbered node cleanly (killed after a bound) and remove it; the
    /// core nodes n1..n3 are never removed. A node that does not exist is not an error.
    RemoveNode {
        /// The node's name: the lab's highest-numbered node.
        name: String,
    },
    /// Tear everything down (also the leftovers of a crashed run).
    Down,
    /// Run a command inside a node.
    Exec {
        /// Node name (n1, ...).
        node: String,
        /// Command and arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        cmd: Vec<String>,
    },
    /// SIGKILL a unit's processes inside a node.
    Kill { node: String, unit: String },
    /// Stop a unit inside a node.
    Stop { node: String, unit: String },
    /// Hard-crash a node (SIGKILL its PID 1).
    Crash { node: String },
    /// Start a stopped or crashed node.
    Start { node: String },
    /// Reboot a node from inside (systemctl reboot).
    Reboot { node: String },
    /// Crash every node: all at once, or one after another with --stagger-ms between them.
    Outage {
        #[arg(long, default_value_t = 0)]
        stagger_ms: u64,
    },
    /// Cut a node's link.
    Isolate { node: String },
    /// Restore a node's link.
    Heal { node: String },
    /// Build the node image (only if missing or outdated, unless --force).
    Image {
        #[arg(long)]
        force: bool,
    },
    /// List what the lab left on the host (empty when clean).
    Leftovers,
    /// Measure image build, boot, teardown, memory and fault timings.
    Bench {
        /// Also time a cold image build (rebuilds the cached image).
        #[arg(long)]
        cold: bool,
    },
    /// The web dashboard (issue 21): crash to red tile in headless Chromium, and the
    /// coordinator's CPU and RSS with the dashboard open and without.
    BenchDashboard {
        /// Crashes (n2, n3 in turn).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Each CPU/RSS window, in seconds.
        #[arg(long, default_value_t = 30)]
        window_secs: u64,
    },
    /// Full-outage recovery (both crash shapes): Galera's own pc.recovery beside Triad.
    BenchRecovery {
        /// Runs per shape and contender.
        #[arg(long, default_value_t = 2)]
        rounds: u32,
        /// How long to wait for a recovery before calling it failed, in seconds.
        #[arg(long, default_value_t = 90)]
        limit_secs: u64,
        /// Also Pacemaker + Corosync + ocf:heartbeat:galera (builds its image variant once).
        #[arg(long)]
        pacemaker: bool,
        /// Triad's rounds only, without Galera's own pc.recovery beside them (to compare
        /// two builds of Triad; the baseline then comes from an earlier run).
        #[arg(long)]
        triad_only: bool,
    },
    /// Autoscaling on a fresh lab (issue 8): time from a load above the target to the
    /// scale-out decision and to the new node serving, time to scale in after the load
    /// drops, and failed client requests in both.
    BenchAutoscale {
        #[arg(long, default_value_t = 1)]
        rounds: u32,
    },
    /// Chaos (issue 20): on a fresh lab, faults drawn from a seed one at a time (node crash,
    /// reboot, link cut, kill of mysqld, glusterd, a brick, the FUSE client or Apache, full
    /// outage at once and staggered, coordinator kill and restart) while clients read and
    /// write through HAProxy; prints every fault and recovery, the longest time without an
    /// answer, failed requests and lost rows and files, and writes a timeline (SVG). Exits 1
    /// when something acknowledged was lost or a recovery did not finish.
    Chaos {
        /// How long to draw faults ("300s", "5m", "1h").
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// The seed: the same seed gives the same fault sequence.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where to write the timeline (default: chaos-SEED.svg in the lab's state dir).
        #[arg(long)]
        svg: Option<std::path::PathBuf>,
    },
    /// One node cut off the network (issue 26): each node's link down for 20 s in turn under
    /// a client through HAProxy and writers through the others; failed requests, the
    /// longest time without an answer, out of the balancer, heal to ready, writes lost.
    BenchPartition {
        #[arg(long, default_value_t = 1)]
        rounds: u32,
    },
    /// The app's figures on a fresh lab serving WordPress (issue 17): post-page latency
    /// p50/p99 idle and under an open-loop load beside the one-line page, requests failed
    /// while the serving node dies, the app's errors while the database writer dies.
    BenchApp {
        /// Rounds of crashing the serving node and the writer.
        #[arg(long, default_value_t = 1)]
        rounds: u32,
        /// Requests per second offered to the post page in the load window.
        #[arg(long, default_value_t = 100)]
        rate: u32,
        /// Length of the load window, in seconds.
        #[arg(long, default_value_t = 20)]
        window_secs: u64,
    },
    /// Scale-out with a large app database (issue 17): from the decision to a new web node
    /// serving through the balancer, as a Galera member (state transfer) and stateless.
    BenchScaleout {
        /// Size of the app database to fill first, in MiB.
        #[arg(long, default_value_t = 2048)]
        db_mib: u64,
    },
    /// Backups (issue 19) on a fresh lab serving WordPress with a filled database and
    /// files: a Triad backup beside the plain commands on the same node (time ratio), and
    /// the app's latency through the balancer without and during a backup.
    BenchBackup {
        /// Size of the app database to fill first, in MiB.
        #[arg(long, default_value_t = 512)]
        db_mib: u64,
        /// Incompressible files to write on the volume, in MiB.
        #[arg(long, default_value_t = 256)]
        files_mib: u64,
    },
    /// Measure volume formation, dead-mount detection and recovery, and the agent's CPU and
    /// RSS beside one prometheus-node-exporter (issue 5), on a fresh lab.
    BenchVolume {
        /// Rounds of killing a node's FUSE client.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        /// Length of the idle and the load windows, in seconds.
        #[arg(long, default_value_t = 30)]
        window_secs: u64,
        /// After the 3-node figures, grow the lab with web nodes to this many and measure
        /// the coordinator again (9: the second figure).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
    },
}

/// The role of a node added by `add-node`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum NodeRole {
    /// Galera member, volume client, Apache.
    Web,
    /// Like n1..n3: the agent's core config (glusterd and a brick). The coordinator's volume
    /// has bricks only on the nodes it was configured with, so such a node joins Galera but
    /// does not become ready (brick and mount absent).
    Core,
}

impl std::fmt::Display for NodeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeRole::Web => "web",
            NodeRole::Core => "core",
        })
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("triad-lab: error: {e:#}");
        std::process::exit(1);
    }
}

fn attach() -> Result<Testbed> {
    Ok(Testbed::attach(&host::state_dir())?)
}

fn run(cli: Cli) -> Result<()> {
    let state = host::state_dir();
    match cli.cmd {
        Cmd::Up {
            nodes,
            no_build,
            no_triad,
            no_app,
        } => up(nodes, no_build, no_triad, no_app),
        Cmd::Status => status(),
        Cmd::AddNode { role, name } => add_node(role, &name),
        Cmd::RemoveNode { name } => remove_node(&name),
        Cmd::Down => {
            let t = Instant::now();
            testbed::cleanup_leftovers(&state)?;
            let left = testbed::leftovers(&state);
            if !left.is_empty() {
                bail!("after down, still present: {}", left.join(", "));
            }
            println!(
                "lab down ({:.1}s), nothing left behind",
                t.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Cmd::Exec { node, cmd } => {
            let tb = attach()?;
            let n = tb.node(&node)?;
            let leader = n
                .leader()
                .with_context(|| format!("node {node} is not running"))?;
            let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
            // interactive use: the terminal's stdin/stdout/stderr go straight through
            let st = triad_tests::node::nsenter(leader, &args)
                .status()
                .context("running nsenter")?;
            std::process::exit(st.code().unwrap_or(1));
        }
        Cmd::Outage { stagger_ms } => {
            let tb = attach()?;
            let gap = (stagger_ms > 0).then(|| Duration::from_millis(stagger_ms));
            timed("full outage", faults::full_outage(&tb, gap))
        }
        Cmd::Kill { node, unit } => timed("kill", faults::kill_unit(attach()?.node(&node)?, &unit)),
        Cmd::Stop { node, unit } => timed("stop", faults::stop_unit(attach()?.node(&node)?, &unit)),
        Cmd::Crash { node } => timed("crash", faults::crash(attach()?.node(&node)?)),
        Cmd::Start { node } => timed("start", faults::start(attach()?.node(&node)?)),
        Cmd::Reboot { node } => timed("reboot", faults::reboot(attach()?.node(&node)?)),
        Cmd::Isolate { node } => timed("isolate", faults::isolate(attach()?.node(&node)?)),
        Cmd::Heal { node } => timed("heal", faults::heal(attach()?.node(&node)?)),
        Cmd::Image { force } => {
            host::preflight()?;
            let img = Image::new(&state);
            if !img.ensure(force)? {
                println!(
                    "image {} is current ({})",
                    img.root.display(),
                    triad_tests::image::image_hash()
                );
            }
            Ok(())
        }
        Cmd::Leftovers => {
            for l in testbed::leftovers(&state) {
                println!("{l}");
            }
            Ok(())
        }
        Cmd::Bench { cold } => bench::run(cold),
        Cmd::BenchRecovery {
            rounds,
            limit_secs,
            pacemaker,
            triad_only,
        } => {
            host::preflight()?;
            testbed::cleanup_leftovers(&state)?;
            Ok(triad_tests::bench_recovery::run(
                rounds,
                Duration::from_secs(limit_secs),
                pacemaker,
                !triad_only,
            )?)
        }
        Cmd::BenchBackup { db_mib, files_mib } => {
            host::preflight()?;
            testbed::cleanup_leftovers(&state)?;
            Ok(triad_tests::bench_backup::run(db_mib, files_mib)?)
        }
        Cmd::BenchAutoscale { rounds } => {
            host::preflight()?;
            testbed::cleanup_leftovers(&state)?;
            Ok(triad_tests::bench_autoscale::run(rounds)?)
        }
        Cmd::Chaos {
            duration,
            seed,
            svg,
        } => {
            host::preflight()?;
            testbed::cleanup_leftovers(&state)?;
            let svg = svg.unwrap_or_else(|| triad_tests::chaos::default_svg(&state, seed));
            let report = triad_tests::chaos::run(duration, seed, &svg)?;
            if report.recoveries_timed_out > 0
                || !report.lost_rows.is_empty()
                || !report.lost_files.is_empty()
            {
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::BenchDashboard {
            rounds,
            window_secs,
        } => {
            host::preflight()?;
            testbed::cleanup_leftovers(&state)?;
            Ok(triad_tests::bench_dashboard::run(
                rounds,
                Duration::from_secs(window_secs),
            )?)
        }
        Cmd::BenchPartition { rounds } => {
            host::preflight()?;
            testbed::cleanup_leftovers(&state)?;
            Ok(triad_tests::bench_partition::run(rounds)?)
        }
        Cmd::BenchApp {
            rounds,
            rate,
            window_secs,
        } => {
            host::preflight()?;
            testbed::cleanup_leftovers(&state)?;
            Ok(triad_tests::bench_app::run(
                rounds,
                rate,
                Duration::from_secs(window_secs),
            )?)
        }
        Cmd::BenchScaleout { db_mib } => {
            host::preflight()?;
            testbed::cleanup_leftovers(&state)?;
            Ok(triad_tests::bench_scaleout::run(db_mib)?)
        }
        Cmd::BenchVolume {
            rounds,
            window_secs,
            nodes,
        } => {
            host::preflight()?;
            testbed::cleanup_leftovers(&state)?;
            Ok(triad_tests::bench_volume::run(
                rounds,
                Duration::from_secs(window_secs),
                nodes,
            )?)
        }
    }
}

fn timed(what: &str, r: triad_tests::Result<Duration>) -> Result<()> {
    let d = r?;
    println!("{what}: took effect in {:.2}s", d.as_secs_f64());
    Ok(())
}

fn up(nodes: usize, no_build: bool, no_triad: bool, no_app: bool) -> Result<()> {
    let t0 = Instant::now();
    let lap = |m: &str| eprintln!("[up {:6.1}s] {m}", t0.elapsed().as_secs_f64());
    if nodes == 0 || nodes > 9 {
        bail!("--nodes must be between 1 and 9");
    }
    host::preflight()?;
    if !no_triad && !no_build {
        lap("cargo build --workspace --bins --tests");
        triad::cargo_build().context("building triad-agent and triad-coordinator")?;
    }
    let mut tb = Testbed::up(TestbedOptions {
        nodes,
        ..TestbedOptions::default()
    })?;
    lap(&format!("{nodes} nodes running"));
    let mut warnings = Vec::new();
    let mut site = None;
    if no_triad {
        formation::form_all(&tb)?;
        lap("services formed by hand (galera, gluster, apache)");
    } else {
        // Galera is formed by Triad: the agents manage mysqld, the coordinator bootstraps
        for n in &tb.nodes {
            match triad::install_agent(&tb, n) {
                Ok(src) => lap(&format!(
                    "{}: triad-agent installed from {src:?} and started",
                    n.name
                )),
                Err(e) => warnings.push(format!(
                    "{}: triad-agent not running: {e}\n{}",
                    n.name,
                    triad::journal_tail(n, "triad-agent", 15)
                )),
            }
        }
        // the embedded default autoscales through `triad-lab add-node` / `remove-node`
        let mut config = triad::coordinator_config_with(&tb, triad::Autoscale::Exec);
        if !no_app {
            // WordPress's cron, on exactly one ready node (issue 18)
            config.push_str(triad_tests::wordpress::CRON_JOB);
        }
        triad::start_coordinator_config(&mut tb, &config).context("starting triad-coordinator")?;
        lap("triad-coordinator running on the host");
        for n in &tb.nodes {
            formation::wait_galera(n, nodes, Duration::from_secs(180))
                .context("Galera formation by the coordinator")?;
        }
        lap("galera formed by triad-coordinator and the agents");
        let first = &tb.nodes[0];
        triad::wait_docroot_mounted(first, Duration::from_secs(180))
            .context("volume formation by the coordinator and the mount by the agent")?;
        lap(&format!(
            "volume {} formed by triad-coordinator, mounted on {} by the agents",
            triad::VOLUME,
            triad::DOCROOT
        ));
        triad::publish_app(first)?;
        triad::wait_all_ready(&tb, nodes, Duration::from_secs(120))?;
        lap("every node ready (galera synced, brick online, docroot mounted, apache healthy)");
        if !no_app {
            site = Some(
                triad_tests::wordpress::install(&tb, first)
                    .context("installing WordPress on the volume")?,
            );
            lap("WordPress 6.1 (Debian's package) on the volume, its database lab_app through 127.0.0.1:3307 on every node");
        }
    }
    tb.start_haproxy()?;
    tb.haproxy()?.wait_all_up(Duration::from_secs(30))?;
    lap("haproxy on 127.0.0.1:8080, all servers UP");
    tb.save()?;
    println!("Triad lab is up: http://{}/", triad_tests::haproxy::LISTEN);
    for n in &tb.nodes {
        println!("  {} {}", n.name, n.addr);
    }
    if !no_triad && tb.coordinator.is_some() {
        match triad::wait_coordinator_live(nodes, Duration::from_secs(30)) {
            Ok(d) => lap(&format!(
                "coordinator sees {nodes} live nodes after {:.1}s",
                d.as_secs_f64()
            )),
            Err(e) => warnings.push(e.to_string()),
        }
        match triad::wait_balancer_members(Duration::from_secs(30)) {
            Ok(d) => lap(&format!(
                "coordinator drives HAProxy's members after {:.1}s",
                d.as_secs_f64()
            )),
            Err(e) => warnings.push(e.to_string()),
        }
        match triad::triadctl_status(false) {
            Ok(s) => println!("triadctl status:\n{s}"),
            Err(e) => warnings.push(format!("triadctl status: {e}")),
        }
    }
    for w in &warnings {
        eprintln!("WARNING: {w}");
    }
    if let Some(site) = &site {
        println!(
            "WordPress: {}/ — log in at {}/wp-login.php as {} with the password in {} (`cat` it)",
            site.url,
            site.url,
            site.user,
            site.password_file.display()
        );
    }
    println!("(`triad-lab down` removes it)");
    tb.detach();
    Ok(())
}

/// How long `add-node` waits for the new node to boot.
const ADD_BOOT_LIMIT: Duration = Duration::from_secs(90);
/// How long `add-node`/`remove-node` wait for another one to finish.
const SCALE_LOCK_LIMIT: Duration = Duration::from_secs(300);

/// The index k of a node name `n<k>` (k >= 1, no leading zero).
fn node_index(name: &str) -> Result<usize> {
    name.strip_prefix('n')
        .and_then(|k| k.parse::<usize>().ok())
        .filter(|k| *k >= 1 && triad_tests::node::node_name(*k) == name)
        .with_context(|| format!("{name:?} is not a node name (n1, n2, ...)"))
}

fn add_node(role: NodeRole, name: &str) -> Result<()> {
    let t0 = Instant::now();
    let lap = |m: &str| eprintln!("[add-node {:6.1}s] {m}", t0.elapsed().as_secs_f64());
    let index = node_index(name)?;
    host::preflight()?;
    let state = host::state_dir();
    let _lock = testbed::scale_lock(&state, SCALE_LOCK_LIMIT)?;
    let mut tb = attach()?;
    let count = tb.nodes.len();
    if index <= count {
        let n = tb.node(name)?;
        if n.is_running() {
            println!(
                "{name} already exists and is running (triad-agent {}); nothing to do",
                n.unit_state("triad-agent")
                    .unwrap_or_else(|e| format!("state unknown: {e}"))
            );
            return Ok(());
        }
        bail!(
            "{name} exists but is not running: `triad-lab start {name}` boots it, \
             `triad-lab remove-node {name}` removes it"
        );
    }
    if index != count + 1 {
        bail!(
            "cannot add {name}: the lab has {count} nodes (lab.json), so the next node is n{}",
            count + 1
        );
    }
    if tb.coordinator.is_none() {
        eprintln!(
            "WARNING: no triad-coordinator running for this lab: {name} will not be put behind HAProxy"
        );
    }
    lap(&format!("adding {name} ({role}) to a lab of {count} nodes"));
    let added = tb
        .add_node(ADD_BOOT_LIMIT)
        .map(|n| format!("{} running ({})", n.name, n.addr))
        .and_then(|m| {
            lap(&m);
            let n = tb.node(name)?;
            let config = match role {
                NodeRole::Web => triad::stateless_web_node(&tb, n)?,
                NodeRole::Core => triad::agent_config(&tb, n),
            };
            triad::install_agent_with(n, &config).map_err(|e| {
                triad_tests::LabError::Other(format!(
                    "{name}: triad-agent not running: {e}\n{}",
                    triad::journal_tail(n, "triad-agent", 15)
                ))
            })
        });
    match added {
        Ok(src) => lap(&format!(
            "{name}: triad-agent installed from {src:?} and started ({role} config)"
        )),
        Err(e) => {
            // undo, so that the next add-node starts from a lab without it
            let undo = match tb.nodes.last() {
                Some(n) if n.name == name => tb
                    .remove_last_node(testbed::TEARDOWN_STOP_LIMIT)
                    .map(|_| format!("{name} removed again")),
                _ => Ok("nothing to undo".to_string()),
            };
            match undo {
                Ok(u) => bail!("adding {name} failed ({u}): {e}"),
                Err(u) => bail!(
                    "adding {name} failed: {e}; removing it again failed too: {u} (`triad-lab down` cleans up)"
                ),
            }
        }
    }
    println!(
        "{name} added as a {role} node in {:.1}s; the coordinator waits for it to be ready (`triadctl status`)",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn remove_node(name: &str) -> Result<()> {
    let t0 = Instant::now();
    let index = node_index(name)?;
    if index <= testbed::CORE_NODES {
        bail!(
            "refusing to remove {name}: n1..n{} are the lab's core nodes (Galera quorum, the volume's bricks)",
            testbed::CORE_NODES
        );
    }
    host::preflight()?;
    let state = host::state_dir();
    let _lock = testbed::scale_lock(&state, SCALE_LOCK_LIMIT)?;
    let mut tb = attach()?;
    let count = tb.nodes.len();
    if index > count {
        println!("{name} does not exist (the lab has {count} nodes); nothing to do");
        return Ok(());
    }
    if index != count {
        bail!("cannot remove {name}: only the highest-numbered node, n{count}, can be removed");
    }
    eprintln!(
        "[remove-node] powering off {name} (killed after {}s)",
        testbed::REMOVE_STOP_LIMIT.as_secs()
    );
    let clean = tb.remove_last_node(testbed::REMOVE_STOP_LIMIT)?;
    println!(
        "{name} removed in {:.1}s ({}); the lab has {} nodes",
        t0.elapsed().as_secs_f64(),
        if clean {
            "clean poweroff"
        } else {
            "did not power off in time: killed"
        },
        tb.nodes.len()
    );
    Ok(())
}

fn status() -> Result<()> {
    use std::fmt::Write as _;
    let state = host::state_dir();
    let tb = attach()?;
    // collected first: a closed pipe (`| head`) must not panic half-way
    let mut out = String::new();
    for n in &tb.nodes {
        let running = n.leader().is_some();
        let _ = write!(
            out,
            "{} {} {}",
            n.name,
            n.addr,
            if running { "up" } else { "down" }
        );
        if running {
            for u in ["mariadb", "glusterd", "apache2", "triad-agent"] {
                let _ = write!(
                    out,
                    " {u}={}",
                    n.unit_state(u).unwrap_or_else(|e| e.to_string())
                );
            }
            if let Ok(w) = formation::wsrep(n) {
                let g = |k: &str| w.get(k).cloned().unwrap_or_default();
                let _ = write!(
                    out,
                    " galera={}/{}/size={}",
                    g("wsrep_local_state_comment"),
                    g("wsrep_cluster_status"),
                    g("wsrep_cluster_size")
                );
            }
        }
        out.push('\n');
    }
    let sock = state.join("haproxy/admin.sock");
    if sock.exists() {
        match triad_tests::haproxy::admin(&sock, "show stat")
            .and_then(|s| triad_tests::haproxy::parse_stat(&s))
        {
            Ok(st) => {
                for s in st {
                    let _ = writeln!(
                        out,
                        "haproxy {} {} (check {}, sessions {})",
                        s.name, s.status, s.check, s.total
                    );
                }
            }
            Err(e) => out.push_str(&format!("haproxy: {e}\n")),
        }
    }
    match triad::triadctl_status(false) {
        Ok(s) => out.push_str(&format!("triadctl status:\n{s}\n")),
        Err(e) => out.push_str(&format!("triadctl status: {e}\n")),
    }
    use std::io::Write as _;
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(())
}

mod bench {
    //! `triad-lab bench`: the figures asked for in issue 3.
    use super::*;

    fn secs(d: Duration) -> String {
        format!("{:.2}s", d.as_secs_f64())
    }

    pub fn run(cold: bool) -> Result<()> {
        host::preflight()?;
        let state = host::state_dir();
        testbed::cleanup_leftovers(&state)?;
        let img = Image::new(&state);
        let t = Instant::now();
        let built = img.ensure(cold)?;
        println!(
            "image: {} in {}",
            if built {
                "built"
            } else {
                "cached (use --cold to rebuild)"
            },
            secs(t.elapsed())
        );
        let mem0 = host::mem_used_mib().unwrap_or(0);
        let t = Instant::now();
        let mut tb = Testbed::up(TestbedOptions::default())?;
        println!("boot 3 nodes to running: {}", secs(t.elapsed()));
        println!(
            "host memory used: {} MiB before, {} MiB after boot",
            mem0,
            host::mem_used_mib().unwrap_or(0)
        );
        let t = Instant::now();
        formation::galera_form(&tb)?;
        println!(
            "galera formation (bootstrap + 2 joins): {}",
            secs(t.elapsed())
        );
        let t = Instant::now();
        formation::gluster_form(&tb)?;
        println!(
            "gluster formation (3 glusterd, volume, 3 mounts): {}",
            secs(t.elapsed())
        );
        let t = Instant::now();
        formation::apache_form(&tb)?;
        tb.start_haproxy()?;
        tb.haproxy()?.wait_all_up(Duration::from_secs(30))?;
        println!("apache + haproxy all UP: {}", secs(t.elapsed()));
        println!(
            "host memory used with the full stack: {} MiB",
            host::mem_used_mib().unwrap_or(0)
        );
        for n in &tb.nodes {
            if let Some((rss, pss, procs)) = n.memory_kib() {
                println!(
                    "  {}: {} procs, RSS {} MiB, PSS {} MiB",
                    n.name,
                    procs,
                    rss / 1024,
                    pss / 1024
                );
            }
        }
        let (n1, n2, n3) = (&tb.nodes[0], &tb.nodes[1], &tb.nodes[2]);
        println!(
            "fault kill mariadb (n2) -> not active: {}",
            secs(faults::kill_unit(n2, "mariadb")?)
        );
        println!(
            "fault kill apache2 (n2) -> not active: {}",
            secs(faults::kill_unit(n2, "apache2")?)
        );
        // apache2.service has Restart=on-abort, so a SIGKILL is healed at once; stop it to
        // measure how fast HAProxy takes a dead backend out
        let t = Instant::now();
        faults::stop_unit(n2, "apache2")?;
        tb.haproxy()?
            .wait_status("n2", "DOWN", Duration::from_secs(15))?;
        println!(
            "stop apache2 (n2) -> haproxy marks n2 DOWN: {}",
            secs(t.elapsed())
        );
        faults::start_unit(n2, "apache2")?;
        let t = Instant::now();
        tb.haproxy()?
            .wait_status("n2", "UP", Duration::from_secs(15))?;
        println!(
            "start apache2 (n2) -> haproxy UP again: {}",
            secs(t.elapsed())
        );
        formation::wait_galera(n2, 3, Duration::from_secs(90))?;
        let t = Instant::now();
        faults::isolate(n3)?;
        println!("fault isolate n3 -> link down: {}", secs(t.elapsed()));
        println!(
            "  n1 sees galera size 2 after: {}",
            secs(formation::wait_galera(n1, 2, Duration::from_secs(30))?)
        );
        let t = Instant::now();
        faults::heal(n3)?;
        formation::wait_galera(n1, 3, Duration::from_secs(60))?;
        formation::wait_galera(n3, 3, Duration::from_secs(60))?;
        println!("heal n3 -> galera size 3, n3 Synced: {}", secs(t.elapsed()));
        println!(
            "fault crash n3 -> PID 1 and nspawn gone: {}",
            secs(faults::crash(n3)?)
        );
        println!(
            "  n1 sees galera size 2 after crash+{}",
            secs(formation::wait_galera(n1, 2, Duration::from_secs(30))?)
        );
        println!("start n3 -> running: {}", secs(faults::start(n3)?));
        println!(
            "  n3 Synced, size 3 after: {}",
            secs(formation::wait_galera(n3, 3, Duration::from_secs(90))?)
        );
        println!(
            "fault reboot n2 -> running again: {}",
            secs(faults::reboot(n2)?)
        );
        println!(
            "  n2 Synced, size 3 after: {}",
            secs(formation::wait_galera(n2, 3, Duration::from_secs(90))?)
        );
        let t = Instant::now();
        tb.teardown()?;
        println!("teardown of 3 nodes + haproxy: {}", secs(t.elapsed()));
        let left = testbed::leftovers(&state);
        println!(
            "leftovers after teardown: {}",
            if left.is_empty() {
                "none".into()
            } else {
                left.join(", ")
            }
        );
        println!(
            "host memory used after teardown: {} MiB",
            host::mem_used_mib().unwrap_or(0)
        );
        Ok(())
    }
}
