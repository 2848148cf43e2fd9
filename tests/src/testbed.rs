//! A testbed: N nodes on the bridge, optionally HAProxy and the coordinator on the host.
//!
//! Teardown always runs: [`Testbed`] tears down on drop (also when a test panics), and a state
//! file (`lab.json`) plus the per-node dirs let [`cleanup_leftovers`] — called by the next
//! setup and by `triad-lab down` — remove what a crashed or killed run left behind.
//!
//! A running testbed can gain a node ([`Testbed::add_node`], n<k+1>) and lose its
//! highest-numbered one ([`Testbed::remove_last_node`], never a core node n1..n3); both keep
//! lab.json's node count and every node's /etc/hosts current. Cleanup goes by the node dirs as
//! well as lab.json, so a node added by a run that died before recording it is removed too.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, LabError, Result};
use crate::haproxy::Haproxy;
use crate::host;
use crate::hostproc::HostProc;
use crate::image::Image;
use crate::net;
use crate::node::{self, Node};
use crate::wait::{self, Poll};

/// How long teardown lets a node power off cleanly before killing it through its cgroup.
/// A clean stop takes 2–7 s; a mariadb stuck joining (SST) can hold poweroff much longer, and a
/// teardown does not need a clean shutdown.
pub const TEARDOWN_STOP_LIMIT: Duration = Duration::from_secs(15);

/// How long `remove-node` lets a node power off cleanly before killing it. A clean poweroff
/// lets mariadb leave the Galera view gracefully (the others stay Primary without a
/// suspect timeout); it takes a few seconds unless mysqld is stuck (a joiner in SST).
pub const REMOVE_STOP_LIMIT: Duration = Duration::from_secs(60);

/// The lab's core nodes are n1..n`CORE_NODES`: they hold the Galera quorum and the volume's
/// bricks, and [`Testbed::remove_last_node`] refuses them.
pub const CORE_NODES: usize = 3;

/// Most nodes a lab may have (as `triad-lab up --nodes`).
pub const MAX_NODES: usize = 9;

/// How to build a testbed.
#[derive(Debug, Clone)]
pub struct TestbedOptions {
    /// Number of nodes (n1..nN).
    pub nodes: usize,
    /// State dir (image, nodes, HAProxy).
    pub state_dir: PathBuf,
    /// Limit for all nodes to reach `running`.
    pub boot_timeout: Duration,
}

impl Default for TestbedOptions {
    fn default() -> Self {
        Self {
            nodes: 3,
            state_dir: host::state_dir(),
            boot_timeout: Duration::from_secs(90),
        }
    }
}

/// What is recorded on disk about a running testbed.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LabState {
    /// Number of nodes.
    pub nodes: usize,
    /// HAProxy's PID when started.
    pub haproxy_pid: Option<i32>,
    /// The coordinator's PID when started.
    pub coordinator_pid: Option<i32>,
    /// PID of the process that created the testbed.
    pub owner_pid: u32,
}

fn state_file(state: &Path) -> PathBuf {
    state.join("lab.json")
}

/// Reads the state file, if any.
pub fn read_state(state: &Path) -> Option<LabState> {
    serde_json::from_str(&std::fs::read_to_string(state_file(state)).ok()?).ok()
}

/// Held while a node is added or removed (`add-node`/`remove-node`, which an autoscaler may
/// run close together): one change of the node set at a time per state dir. Released on drop.
#[derive(Debug)]
pub struct ScaleLock {
    _lock: Flock<std::fs::File>,
}

/// Takes the scaling lock of `state`, waiting (bounded) while another process holds it.
pub fn scale_lock(state: &Path, limit: Duration) -> Result<ScaleLock> {
    let p = state.join("scale.lock");
    wait::until_default(
        &format!("the lab's scaling lock {}", p.display()),
        limit,
        || {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p)
                .io("open", &p)?;
            match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => Ok(Poll::Ready(ScaleLock { _lock: lock })),
                Err((_, Errno::EWOULDBLOCK)) => Ok(Poll::Pending(
                    "held by another add-node or remove-node".into(),
                )),
                Err((_, e)) => Err(LabError::Io {
                    op: "flock",
                    path: p.clone(),
                    source: e.into(),
                }),
            }
        },
    )
}

fn write_state(state: &Path, s: &LabState) -> Result<()> {
    let p = state_file(state);
    let tmp = p.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(s).unwrap_or_default()).io("write", &tmp)?;
    std::fs::rename(&tmp, &p).io("rename", &tmp)
}

/// A running testbed.
#[derive(Debug)]
pub struct Testbed {
    /// The state dir.
    pub state: PathBuf,
    /// The image.
    pub image: Image,
    /// The nodes, n1 first.
    pub nodes: Vec<Node>,
    /// HAProxy, once started.
    pub haproxy: Option<Haproxy>,
    /// The coordinator, once started.
    pub coordinator: Option<HostProc>,
    detached: bool,
    torn_down: bool,
}

impl Testbed {
    /// Builds and boots a testbed: preflight, image (built if missing, with progress), cleanup of
    /// leftovers, bridge, N overlay nodes booted together and awaited until `running`.
    pub fn up(opts: TestbedOptions) -> Result<Self> {
        host::preflight()?;
        let t0 = Instant::now();
        let state = opts.state_dir.clone();
        std::fs::create_dir_all(&state).io("mkdir", &state)?;
        let image = Image::new(&state);
        image.ensure(false)?;
        cleanup_leftovers(&state)?;
        net::bridge_up()?;
        let nodes: Vec<Node> = (1..=opts.nodes)
            .map(|i| Node::new(&state, &image.root, i, opts.nodes))
            .collect();
        let tb = Self {
            state: state.clone(),
            image,
            nodes,
            haproxy: None,
            coordinator: None,
            detached: false,
            torn_down: false,
        };
        tb.save()?;
        for n in &tb.nodes {
            n.start()?;
        }
        for n in &tb.nodes {
            n.wait_running(
                opts.boot_timeout
                    .saturating_sub(t0.elapsed())
                    .max(Duration::from_secs(5)),
            )?;
        }
        Ok(tb)
    }

    /// A handle on the testbed recorded in `state` (for the CLI). It is not torn down on drop.
    pub fn attach(state: &Path) -> Result<Self> {
        let st = read_state(state).ok_or_else(|| {
            LabError::Other(format!(
                "no lab running (no {})",
                state_file(state).display()
            ))
        })?;
        let image = Image::new(state);
        let nodes = (1..=st.nodes)
            .map(|i| Node::new(state, &image.root, i, st.nodes))
            .collect();
        Ok(Self {
            state: state.to_path_buf(),
            image,
            nodes,
            haproxy: None,
            coordinator: st
                .coordinator_pid
                .and_then(|p| HostProc::attach("triad-coordinator", p, "triad-coord")),
            detached: true,
            torn_down: false,
        })
    }

    /// Keep everything running when this handle is dropped (the CLI's `up`).
    pub fn detach(mut self) {
        self.detached = true;
    }

    /// Records the testbed in the state file.
    pub fn save(&self) -> Result<()> {
        let prev = read_state(&self.state).unwrap_or_default();
        write_state(
            &self.state,
            &LabState {
                nodes: self.nodes.len(),
                haproxy_pid: self
                    .haproxy
                    .as_ref()
                    .map(|h| h.proc.pid)
                    .or(if self.detached {
                        prev.haproxy_pid
                    } else {
                        None
                    }),
                coordinator_pid: self.coordinator.as_ref().map(|c| c.pid),
                owner_pid: std::process::id(),
            },
        )
    }

    /// Records the node count in the state file, keeping the rest of what it holds (the
    /// HAProxy and coordinator PIDs, the owner).
    fn save_node_count(&self) -> Result<()> {
        let mut st = read_state(&self.state).unwrap_or_default();
        st.nodes = self.nodes.len();
        if st.owner_pid == 0 {
            st.owner_pid = std::process::id();
        }
        write_state(&self.state, &st)
    }

    /// Gives every node the current node list and rewrites the /etc/hosts of those that
    /// have a dir (a node not started yet gets its file from [`Node::prepare`]).
    fn update_hosts(&mut self) -> Result<()> {
        let peers: Vec<(String, String)> = self.members();
        for n in &mut self.nodes {
            n.peers = peers.clone();
            if n.dir.is_dir() {
                n.write_hosts()?;
            }
        }
        Ok(())
    }

    /// Boots one more node, n<k+1> for a testbed of k nodes: an overlay over the same image,
    /// on the bridge, recorded in the state file before it starts (so that a teardown finds
    /// it whatever happens next), listed in every node's /etc/hosts, and awaited (bounded by
    /// `limit`) until `running`. What a failed earlier attempt left in its dir is removed
    /// first. On error the node stays recorded: [`Testbed::remove_last_node`] undoes it.
    pub fn add_node(&mut self, limit: Duration) -> Result<&Node> {
        let index = self.nodes.len() + 1;
        if index > MAX_NODES {
            return Err(LabError::Other(format!(
                "cannot add {}: the lab has {} nodes, the most it may have is {MAX_NODES}",
                node::node_name(index),
                self.nodes.len()
            )));
        }
        if !self.image.root.join("usr/bin").is_dir() {
            return Err(LabError::Other(format!(
                "cannot add {}: no image at {} (`triad-lab up` builds it)",
                node::node_name(index),
                self.image.root.display()
            )));
        }
        if !net::link_exists(node::BRIDGE) {
            return Err(LabError::Other(format!(
                "cannot add {}: bridge {} is missing (is the lab up?)",
                node::node_name(index),
                node::BRIDGE
            )));
        }
        let new = Node::new(&self.state, &self.image.root, index, index);
        if new.dir.exists() || new.is_running() {
            eprintln!(
                "triad-lab: removing what an earlier attempt left of {} in {}",
                new.name,
                new.dir.display()
            );
            dispose(&new, TEARDOWN_STOP_LIMIT)?;
        }
        self.nodes.push(new);
        self.save_node_count()?;
        self.update_hosts()?;
        let new = self
            .nodes
            .last()
            .ok_or_else(|| LabError::Other("node list empty after a push".into()))?;
        new.start()?;
        new.wait_running(limit)?;
        Ok(new)
    }

    /// Removes the highest-numbered node, never a core node (n1..n[`CORE_NODES`]): a clean
    /// poweroff (mariadb stops and leaves the Galera view gracefully) bounded by `limit`,
    /// then a kill through its cgroup; its overlay, cgroups, link and dir removed; the state
    /// file and the other nodes' /etc/hosts updated. `Ok(true)` when it powered off cleanly
    /// (or was not running), `Ok(false)` when it had to be killed.
    pub fn remove_last_node(&mut self, limit: Duration) -> Result<bool> {
        let last = self
            .nodes
            .last()
            .ok_or_else(|| LabError::Other("the lab has no node to remove".into()))?;
        if last.index <= CORE_NODES {
            return Err(LabError::Node {
                node: last.name.clone(),
                msg: format!(
                    "refusing to remove a core node (n1..n{CORE_NODES} hold the Galera quorum and the volume's bricks)"
                ),
            });
        }
        let clean = dispose(last, limit)?;
        self.nodes.pop();
        self.save_node_count()?;
        self.update_hosts()?;
        Ok(clean)
    }

    /// Node by name (n1, ...).
    pub fn node(&self, name: &str) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| LabError::Other(format!("no node {name} in this testbed")))
    }

    /// (name, addr) of all nodes.
    pub fn members(&self) -> Vec<(String, String)> {
        self.nodes
            .iter()
            .map(|n| (n.name.clone(), n.addr.clone()))
            .collect()
    }

    /// Starts HAProxy in front of all nodes and records its PID.
    pub fn start_haproxy(&mut self) -> Result<&Haproxy> {
        let hp = Haproxy::start(&self.state, &self.members())?;
        self.haproxy = Some(hp);
        self.save()?;
        self.haproxy
            .as_ref()
            .ok_or_else(|| LabError::Other("haproxy vanished".into()))
    }

    /// The running HAProxy.
    pub fn haproxy(&self) -> Result<&Haproxy> {
        self.haproxy
            .as_ref()
            .ok_or_else(|| LabError::Other("HAProxy not started in this testbed".into()))
    }

    /// Stops everything and removes every trace: HAProxy and coordinator by PID, nodes (clean
    /// poweroff, bounded, then SIGKILL through the cgroup), overlays, cgroups, links, bridge,
    /// node dirs and the state file. Idempotent.
    pub fn teardown(&mut self) -> Result<()> {
        self.torn_down = true;
        let mut errors = Vec::new();
        if let Some(mut h) = self.haproxy.take() {
            if let Err(e) = h.stop() {
                errors.push(e.to_string());
            }
        }
        if let Some(mut c) = self.coordinator.take() {
            if let Err(e) = c.stop(Duration::from_secs(10)) {
                errors.push(e.to_string());
            }
        }
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let hs: Vec<_> = self
                .nodes
                .iter()
                .map(|n| s.spawn(move || n.stop(TEARDOWN_STOP_LIMIT)))
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(LabError::Other("stop panicked".into())))
                })
                .collect()
        });
        errors.extend(
            results
                .into_iter()
                .filter_map(|r| r.err())
                .map(|e| e.to_string()),
        );
        if let Err(e) = cleanup_leftovers(&self.state) {
            errors.push(e.to_string());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LabError::Other(format!("teardown: {}", errors.join("; "))))
        }
    }
}

impl Testbed {
    /// Boots a testbed for a test: like [`Testbed::up`], but an unsuitable host (not root, no
    /// overlayfs, ...) is reported in one clear line before the error is returned.
    pub fn for_test(nodes: usize) -> Result<Self> {
        if let Err(e) = host::preflight() {
            eprintln!("TESTBED UNAVAILABLE: {e}");
            return Err(e);
        }
        Self::up(TestbedOptions {
            nodes,
            ..TestbedOptions::default()
        })
    }

    /// Tears down and then checks explicitly that nothing is left: no nspawn process, no mount
    /// under the state dir, no `nsp-*` cgroup, no `triadbr0`/`vb-*` link, and the HAProxy and
    /// coordinator PIDs gone.
    pub fn teardown_and_verify(mut self) -> Result<()> {
        let pids: Vec<(String, i32)> = self
            .haproxy
            .as_ref()
            .map(|h| ("haproxy".to_string(), h.proc.pid))
            .into_iter()
            .chain(
                self.coordinator
                    .as_ref()
                    .map(|c| ("coordinator".to_string(), c.pid)),
            )
            .collect();
        let state = self.state.clone();
        self.teardown()?;
        let mut left = leftovers(&state);
        for (what, pid) in pids {
            if node::pid_alive(pid) {
                left.push(format!("{what} pid {pid} still alive"));
            }
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(LabError::Other(format!(
                "teardown left behind: {}",
                left.join(", ")
            )))
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if self.detached || self.torn_down {
            return;
        }
        eprintln!("triad-lab: tearing down the testbed (drop guard)");
        if let Err(e) = self.teardown() {
            eprintln!("triad-lab: {e}");
        }
    }
}

/// Node names that have state under `state/nodes`.
fn node_dirs(state: &Path) -> Vec<(usize, String)> {
    let mut v: Vec<(usize, String)> = std::fs::read_dir(state.join("nodes"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_str()?.to_string();
                    Some((n.strip_prefix('n')?.parse().ok()?, n))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Stops a node (clean poweroff bounded by `limit`, then killed) or, when it is not running,
/// releases what it left (processes in its cgroups, overlay, cgroups); then deletes its dir
/// and its host link. `Ok(true)` when it powered off cleanly or was not running.
fn dispose(n: &Node, limit: Duration) -> Result<bool> {
    let r = if n.is_running() {
        n.poweroff(limit)
    } else {
        if !n.cgroup_procs().is_empty() {
            let _ = n.kill_all();
        }
        n.release().map(|_| true)
    };
    let r = r.and_then(|clean| n.destroy().map(|_| clean));
    let _ = net::delete_link(&n.host_link());
    r
}

/// HAProxy processes started from this state dir's config.
fn our_haproxies(state: &Path) -> Vec<i32> {
    let cfg = state.join("haproxy/haproxy.cfg");
    let cfg = cfg.to_string_lossy();
    node::all_pids()
        .into_iter()
        .filter(|p| node::pid_alive(*p) && node::pid_comm(*p).as_deref() == Some("haproxy"))
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(cfg.as_ref()))
                .unwrap_or(false)
        })
        .collect()
}

/// Removes whatever a previous (possibly crashed) run left in `state`: host daemons by recorded
/// PID, nodes (stopped, overlays unmounted, cgroups removed, dirs deleted), links and the bridge.
/// The image stays.
pub fn cleanup_leftovers(state: &Path) -> Result<()> {
    let st = read_state(state);
    if let Some(st) = &st {
        if let Some(mut c) = st
            .coordinator_pid
            .and_then(|p| HostProc::attach("triad-coordinator", p, "triad-coord"))
        {
            c.stop(Duration::from_secs(10))?;
        }
    }
    for p in our_haproxies(state) {
        if let Some(mut h) = HostProc::attach("haproxy", p, "haproxy") {
            h.stop(Duration::from_secs(5))?;
        }
    }
    let image = Image::new(state);
    let dirs = node_dirs(state);
    let count = dirs.len().max(st.as_ref().map(|s| s.nodes).unwrap_or(0));
    let mut names: Vec<(usize, String)> = dirs;
    for i in 1..=st.as_ref().map(|s| s.nodes).unwrap_or(0) {
        if !names.iter().any(|(j, _)| *j == i) {
            names.push((i, node::node_name(i)));
        }
    }
    let mut errors = Vec::new();
    for (i, _) in &names {
        let n = Node::new(state, &image.root, *i, count);
        if let Err(e) = dispose(&n, TEARDOWN_STOP_LIMIT) {
            errors.push(e.to_string());
        }
    }
    // stray overlay mounts under the state dir (e.g. a node dir removed by hand)
    for m in node::mounts_under(&state.join("nodes")).iter().rev() {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    net::bridge_down()?;
    let _ = std::fs::remove_file(state_file(state));
    let _ = std::fs::remove_dir(state.join("nodes"));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(LabError::Other(format!("cleanup: {}", errors.join("; "))))
    }
}

/// Everything of the lab still present on the host (empty after a good teardown): nspawn
/// processes, overlay mounts under the state dir, `nsp-*` cgroups, `triadbr0`/`vb-*` links,
/// our HAProxy, the recorded coordinator.
pub fn leftovers(state: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for p in node::all_pids() {
        if node::pid_alive(p) && node::pid_comm(p).as_deref() == Some("systemd-nspawn") {
            out.push(format!("systemd-nspawn process {p}"));
        }
    }
    for m in node::mounts_under(state) {
        out.push(format!("mount {m}"));
    }
    for r in host::CGROUP_ROOTS {
        if let Ok(rd) = std::fs::read_dir(r) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("nsp-") {
                    out.push(format!("cgroup {}", e.path().display()));
                }
            }
        }
    }
    if let Ok(links) = net::links() {
        for l in links {
            if l == node::BRIDGE || l.starts_with("vb-") {
                out.push(format!("link {l}"));
            }
        }
    }
    for p in our_haproxies(state) {
        out.push(format!("haproxy process {p}"));
    }
    if let Some(st) = read_state(state) {
        out.push(format!("state file {}", state_file(state).display()));
        if let Some(p) = st.coordinator_pid.filter(|p| node::pid_alive(*p)) {
            out.push(format!("coordinator process {p}"));
        }
    }
    out
}
