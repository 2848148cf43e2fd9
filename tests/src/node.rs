//! One node: a Debian 12 rootfs as an overlay over the image, booted by systemd-nspawn with
//! systemd as PID 1, in its own cgroup, with its own hostname, machine-id and address on the
//! lab bridge. Commands run inside it through `nsenter -t <leader> -a`.
//!
//! The launcher is a small detached `sh` loop (as in the measured `node.sh`): it first moves
//! itself into the node's own cgroups, then runs nspawn and restarts it while it exits with 133
//! (a reboot requested inside the container), since nspawn does not restart by itself under
//! `--keep-unit`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cmd::{self, check, output_timeout};
use crate::error::{IoContext, LabError, Result};
use crate::host::CGROUP_ROOTS;
use crate::wait::{self, Poll};

/// The lab bridge on the host.
pub const BRIDGE: &str = "triadbr0";
/// The host's address on the bridge.
pub const HOST_ADDR: &str = "10.214.0.1";
/// The bridge network (no route anywhere else inside the nodes).
pub const PREFIX_LEN: u8 = 24;

/// Units whose pending start may keep a (re)started node in `starting` without it counting
/// as not booted (see [`Node::wait_booted`]).
pub const BOOT_MAY_WAIT_FOR: &[&str] = &["mariadb.service"];

/// Default time limit of a command run inside a node.
pub const EXEC_LIMIT: Duration = Duration::from_secs(120);

/// Name of node `i` (1-based).
pub fn node_name(i: usize) -> String {
    format!("n{i}")
}

/// Address of node `i` (1-based): 10.214.0.(10+i).
pub fn node_addr(i: usize) -> String {
    format!("10.214.0.{}", 10 + i)
}

/// PATH and locale inside nodes; the host environment (cargo's variables) must not leak in.
const NODE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A node of a testbed.
#[derive(Debug)]
pub struct Node {
    /// 1-based index.
    pub index: usize,
    /// Hostname and machine name (n1, n2, ...).
    pub name: String,
    /// Address on the bridge.
    pub addr: String,
    /// Per-node state dir: upper, work, root (merged), brick, pid files, console.log.
    pub dir: PathBuf,
    /// The image (overlay lower dir).
    pub image: PathBuf,
    /// All nodes of the testbed as (name, addr), for /etc/hosts.
    pub peers: Vec<(String, String)>,
    /// The launcher loop when this process started it (reaped on stop; none after attach).
    launcher: Mutex<Option<Child>>,
}

impl Node {
    /// A handle for node `index` of `count` under `state`.
    pub fn new(state: &Path, image: &Path, index: usize, count: usize) -> Self {
        let name = node_name(index);
        Self {
            index,
            addr: node_addr(index),
            dir: state.join("nodes").join(&name),
            image: image.to_path_buf(),
            peers: (1..=count).map(|i| (node_name(i), node_addr(i))).collect(),
            name,
            launcher: Mutex::new(None),
        }
    }

    /// The merged root as the host sees it. Write files into the node through this path (or
    /// through exec), never into `upper/`.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// The host side of the node's veth pair.
    pub fn host_link(&self) -> String {
        format!("vb-{}", self.name)
    }

    /// The node's cgroup directories.
    pub fn cgroups(&self) -> Vec<PathBuf> {
        cgroup_dirs(&self.name)
    }

    fn err(&self, msg: impl Into<String>) -> LabError {
        LabError::Node {
            node: self.name.clone(),
            msg: msg.into(),
        }
    }

    /// Creates the node's dirs and files and mounts its overlay (idempotent).
    pub fn prepare(&self) -> Result<()> {
        for d in ["upper", "work", "root", "brick"] {
            let p = self.dir.join(d);
            std::fs::create_dir_all(&p).io("mkdir", &p)?;
        }
        let net = self.dir.join("10-host0.network");
        std::fs::write(
            &net,
            format!(
                "[Match]\nName=host0\n[Network]\nAddress={}/{PREFIX_LEN}\nLinkLocalAddressing=no\nLLDP=no\nIPv6AcceptRA=no\n",
                self.addr
            ),
        )
        .io("write", &net)?;
        self.write_hosts()?;
        let mid = self.dir.join("machine-id");
        if !mid.exists() {
            let id = cmd::run_stdout(Command::new("systemd-id128").arg("new"))?;
            std::fs::write(&mid, format!("{id}\n")).io("write", &mid)?;
        }
        let root = self.root();
        if !is_mountpoint(&root) {
            let opts = format!(
                "lowerdir={},upperdir={},workdir={}",
                self.image.display(),
                self.dir.join("upper").display(),
                self.dir.join("work").display()
            );
            cmd::run(
                Command::new("mount")
                    .args([
                        "-t",
                        "overlay",
                        &format!("triad-{}", self.name),
                        "-o",
                        &opts,
                    ])
                    .arg(&root),
            )?;
        }
        // Overlay nodes would share the image's machine-id; give each its own (not empty: an
        // empty one triggers first-boot preset-all, which enables glusterd and friends).
        let target = root.join("etc/machine-id");
        std::fs::copy(&mid, &target).io("copy", &target)?;
        Ok(())
    }

    /// Writes the node's /etc/hosts (every node of the testbed, from `peers`). The file is
    /// bind-mounted into the running container, so it is rewritten in place (same inode): a
    /// node added or removed later is seen at once by the nodes already running.
    pub fn write_hosts(&self) -> Result<()> {
        let mut hosts = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (n, a) in &self.peers {
            hosts.push_str(&format!("{a} {n}\n"));
        }
        let hp = self.dir.join("hosts");
        std::fs::write(&hp, hosts).io("write", &hp)
    }

    /// PID of the running systemd-nspawn, if any.
    pub fn nspawn_pid(&self) -> Option<i32> {
        read_pid(&self.dir.join("nspawn.pid")).filter(|p| pid_alive(*p))
    }

    /// PID of the launcher loop, if alive.
    pub fn launcher_pid(&self) -> Option<i32> {
        self.reap();
        read_pid(&self.dir.join("loop.pid")).filter(|p| pid_alive(*p))
    }

    /// The container's PID 1 (on the host): the child of the nspawn process.
    pub fn leader(&self) -> Option<i32> {
        let n = self.nspawn_pid()?;
        children(n).into_iter().find(|p| pid_alive(*p))
    }

    fn leader_or_err(&self) -> Result<i32> {
        self.leader()
            .ok_or_else(|| self.err("not running (no nspawn leader process)"))
    }

    /// Is the launcher (and so the container) up?
    pub fn is_running(&self) -> bool {
        self.launcher_pid().is_some() || self.nspawn_pid().is_some()
    }

    fn reap(&self) {
        if let Ok(mut g) = self.launcher.lock() {
            if let Some(c) = g.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    *g = None;
                }
            }
        }
    }

    /// Boots the node: overlay, own cgroups, detached launcher loop. Returns at once; use
    /// [`Node::wait_running`].
    pub fn start(&self) -> Result<()> {
        if self.is_running() {
            return Err(self.err("already running"));
        }
        self.prepare()?;
        let cgs = self.cgroups();
        for c in &cgs {
            std::fs::create_dir_all(c).io("mkdir", c)?;
        }
        let _ = std::fs::remove_file(self.dir.join("nspawn.pid"));
        let d = &self.dir;
        let script = format!(
            r#"for c in {cg}; do echo $$ > "$c/cgroup.procs" || exit 97; done
while :; do
  systemd-nspawn "$@" &
  echo $! > {d}/nspawn.pid
  rc=0; wait $! || rc=$?
  echo "== triad-lab: nspawn exited rc=$rc"
  [ "$rc" = 133 ] || break
done
rm -f {d}/nspawn.pid"#,
            cg = cgs
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            d = d.display()
        );
        let console = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("console.log"))
            .io("open", d.join("console.log"))?;
        let console2 = console.try_clone().io("open", d.join("console.log"))?;
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(script)
            .arg("triad-node-launcher")
            .arg("-D")
            .arg(self.root())
            .args(["-b", "-M", &self.name])
            .arg(format!("--hostname={}", self.name))
            .args([
                "--register=no",
                "--keep-unit",
                "--console=read-only",
                &format!("--network-bridge={BRIDGE}"),
                "--bind=/dev/fuse",
            ])
            .arg(format!("--bind={}:/bricks", d.join("brick").display()))
            .arg(format!(
                "--bind-ro={}:/etc/systemd/network/10-host0.network",
                d.join("10-host0.network").display()
            ))
            .arg(format!(
                "--bind-ro={}:/etc/hosts",
                d.join("hosts").display()
            ))
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(console2)
            .process_group(0);
        let line = cmd::display(&c);
        let child = c
            .spawn()
            .map_err(|source| LabError::Spawn { cmd: line, source })?;
        let lp = d.join("loop.pid");
        std::fs::write(&lp, format!("{}\n", child.id())).io("write", &lp)?;
        *self
            .launcher
            .lock()
            .map_err(|_| self.err("launcher lock poisoned"))? = Some(child);
        Ok(())
    }

    /// Waits until `systemctl is-system-running` says running (or degraded) inside the node.
    pub fn wait_running(&self, limit: Duration) -> Result<()> {
        self.wait_running_not(limit, None)
    }

    /// Like [`Node::wait_running`], but requires a leader other than `old_leader` (after a reboot).
    pub fn wait_running_not(&self, limit: Duration, old_leader: Option<i32>) -> Result<()> {
        self.wait_boot(limit, old_leader, false)
    }

    /// Waits until the node has booted: `running`/`degraded`, or still `starting` only because
    /// of jobs of units in [`BOOT_MAY_WAIT_FOR`]. A Galera node whose cluster is down blocks in
    /// mariadb's start job (Type=notify) until a Primary Component exists — after a full outage
    /// that is the state the next step of a test must be able to act on, not a boot failure.
    pub fn wait_booted(&self, limit: Duration, old_leader: Option<i32>) -> Result<()> {
        self.wait_boot(limit, old_leader, true)
    }

    fn wait_boot(&self, limit: Duration, old_leader: Option<i32>, lenient: bool) -> Result<()> {
        wait::until(
            &format!(
                "{} to reach systemctl is-system-running=running{}",
                self.name,
                if lenient {
                    " (or only waiting for mariadb)"
                } else {
                    ""
                }
            ),
            limit,
            Duration::from_millis(100),
            || {
                let Some(l) = self.leader() else {
                    return Ok(Poll::Pending("no leader process".into()));
                };
                if Some(l) == old_leader {
                    return Ok(Poll::Pending(format!("still the old leader {l}")));
                }
                let o = output_timeout(
                    &mut nsenter(l, &["systemctl", "is-system-running"]),
                    Duration::from_secs(10),
                )?;
                let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
                if s == "running" || s == "degraded" {
                    return Ok(Poll::Ready(()));
                }
                if lenient && s == "starting" {
                    let o = output_timeout(
                        &mut nsenter(l, &["systemctl", "list-jobs", "--no-legend", "--no-pager"]),
                        Duration::from_secs(10),
                    )?;
                    let jobs = String::from_utf8_lossy(&o.stdout).into_owned();
                    // "JOB UNIT TYPE STATE": every running job is an allowed unit, the rest wait
                    let running: Vec<&str> = jobs
                        .lines()
                        .filter_map(|l| {
                            let w: Vec<&str> = l.split_whitespace().collect();
                            (w.get(3) == Some(&"running")).then(|| w.get(1).copied().unwrap_or(""))
                        })
                        .collect();
                    if !running.is_empty() && running.iter().all(|u| BOOT_MAY_WAIT_FOR.contains(u))
                    {
                        return Ok(Poll::Ready(()));
                    }
                    return Ok(Poll::Pending(format!(
                        "starting; running jobs: {running:?}"
                    )));
                }
                Ok(Poll::Pending(s))
            },
        )
    }

    /// Runs a command inside the node and returns its output whatever the exit status.
    pub fn exec_output(&self, args: &[&str], limit: Duration) -> Result<Output> {
        let l = self.leader_or_err()?;
        let secs = limit.as_secs().max(1).to_string();
        let mut full: Vec<&str> = vec!["timeout", "-k", "2", &secs];
        full.extend_from_slice(args);
        output_timeout(&mut nsenter(l, &full), limit + Duration::from_secs(5))
    }

    /// Runs a command inside the node; non-zero exit is an error naming the node and command.
    pub fn exec(&self, args: &[&str]) -> Result<String> {
        self.exec_limit(args, EXEC_LIMIT)
    }

    /// [`Node::exec`] with an explicit time limit.
    pub fn exec_limit(&self, args: &[&str], limit: Duration) -> Result<String> {
        let o = self.exec_output(args, limit)?;
        let l = self.leader().unwrap_or(0);
        let out = check(&nsenter(l, args), o).map_err(|e| self.err(e.to_string()))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Runs a shell script inside the node (`sh -c`).
    pub fn sh(&self, script: &str) -> Result<String> {
        self.exec(&["sh", "-c", script])
    }

    /// Writes a file inside the node through the merged overlay root.
    pub fn write_file(&self, path: &str, content: &str) -> Result<()> {
        let p = self.root().join(path.trim_start_matches('/'));
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).io("mkdir", parent)?;
        }
        std::fs::write(&p, content).io("write", &p)
    }

    /// `systemctl is-active UNIT` inside the node.
    pub fn unit_state(&self, unit: &str) -> Result<String> {
        let o = self.exec_output(&["systemctl", "is-active", unit], Duration::from_secs(15))?;
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    }

    /// Waits until a unit reports `want` (e.g. "active", "inactive", "failed").
    pub fn wait_unit(&self, unit: &str, want: &str, limit: Duration) -> Result<()> {
        wait::until_value(
            &format!("{unit} on {} to be {want}", self.name),
            limit,
            || self.unit_state(unit),
            |s| s == want,
        )
        .map(|_| ())
    }

    /// Stops the node cleanly (SIGTERM to nspawn: systemd powers off), bounded by `limit`, then
    /// kills whatever is left through the cgroup. Unmounts the overlay and removes the cgroups.
    pub fn stop(&self, limit: Duration) -> Result<()> {
        self.poweroff(limit).map(|_| ())
    }

    /// [`Node::stop`], saying whether the node powered off cleanly within `limit` (`false`:
    /// it was killed through its cgroup).
    pub fn poweroff(&self, limit: Duration) -> Result<bool> {
        if let Some(p) = self.nspawn_pid() {
            let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
        }
        let clean = wait::until_default(&format!("{} to power off", self.name), limit, || {
            Ok(if self.is_running() {
                Poll::Pending(format!(
                    "launcher {:?}, nspawn {:?}",
                    self.launcher_pid(),
                    self.nspawn_pid()
                ))
            } else {
                Poll::Ready(())
            })
        });
        if clean.is_err() {
            self.kill_all()?;
        }
        self.release()?;
        Ok(clean.is_ok())
    }

    /// Kills the launcher, nspawn and everything in the node's cgroups, and waits for them.
    pub fn kill_all(&self) -> Result<()> {
        if let Some(p) = self.launcher_pid() {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        if let Some(l) = self.leader() {
            let _ = kill(Pid::from_raw(l), Signal::SIGKILL);
        }
        for c in self.cgroups() {
            let k = c.join("cgroup.kill");
            if k.exists() {
                let _ = std::fs::write(&k, "1");
            }
        }
        if let Some(p) = self.nspawn_pid() {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        wait::until_default(
            &format!("{}'s processes to die", self.name),
            Duration::from_secs(15),
            || {
                let procs = self.cgroup_procs();
                Ok(if procs.is_empty() && !self.is_running() {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!("pids left: {procs:?}"))
                })
            },
        )
    }

    /// PIDs still in the node's cgroups (all levels).
    pub fn cgroup_procs(&self) -> Vec<i32> {
        let mut out = Vec::new();
        for c in self.cgroups() {
            for d in subdirs_depth_first(&c) {
                if let Ok(s) = std::fs::read_to_string(d.join("cgroup.procs")) {
                    out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out.retain(|p| pid_alive(*p));
        out
    }

    /// After the node stopped: unmount the overlay and remove the cgroups (depth-first).
    pub fn release(&self) -> Result<()> {
        if self.is_running() {
            return Err(self.err("refusing to release a running node"));
        }
        self.reap();
        let root = self.root();
        if is_mountpoint(&root) && nix::mount::umount(&root).is_err() {
            nix::mount::umount2(&root, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| self.err(format!("umount {}: {e}", root.display())))?;
        }
        for c in self.cgroups() {
            remove_cgroup(&c)?;
        }
        Ok(())
    }

    /// Removes the node's state dir (only when stopped and released).
    pub fn destroy(&self) -> Result<()> {
        if self.is_running() || is_mountpoint(&self.root()) {
            return Err(self.err("refusing to delete the state of a running/mounted node"));
        }
        crate::image::remove_tree(&self.dir)
    }

    /// Sum of RSS and PSS (KiB) of all processes in the node's PID namespace.
    pub fn memory_kib(&self) -> Option<(u64, u64, usize)> {
        let l = self.leader()?;
        let ns = std::fs::read_link(format!("/proc/{l}/ns/pid")).ok()?;
        let (mut rss, mut pss, mut n) = (0u64, 0u64, 0usize);
        for p in all_pids() {
            if std::fs::read_link(format!("/proc/{p}/ns/pid"))
                .ok()
                .as_ref()
                != Some(&ns)
            {
                continue;
            }
            n += 1;
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")) {
                for line in s.lines() {
                    let mut w = line.split_whitespace();
                    let k = w.next();
                    let v: u64 = w.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                    match k {
                        Some("Rss:") => rss += v,
                        Some("Pss:") => pss += v,
                        _ => {}
                    }
                }
            }
        }
        Some((rss, pss, n))
    }
}

/// `nsenter -t PID -a ARGS` with a clean environment.
pub fn nsenter(leader: i32, args: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg("-t")
        .arg(leader.to_string())
        .arg("-a")
        .args(args)
        .env_clear()
        .env("PATH", NODE_PATH)
        .env("HOME", "/root")
        .env("LC_ALL", "C")
        .env("TERM", "dumb");
    c
}

/// The cgroup dirs of node `name`.
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    CGROUP_ROOTS
        .iter()
        .map(|r| Path::new(r).join(format!("nsp-{name}")))
        .collect()
}

/// Removes a cgroup tree with rmdir, deepest first (cgroup dirs cannot be removed recursively).
pub fn remove_cgroup(c: &Path) -> Result<()> {
    if !c.exists() {
        return Ok(());
    }
    let k = c.join("cgroup.kill");
    wait::until_default(
        &format!("cgroup {} to be removed", c.display()),
        Duration::from_secs(10),
        || {
            let mut last = String::new();
            for d in subdirs_depth_first(c) {
                if let Err(e) = std::fs::remove_dir(&d) {
                    last = format!("rmdir {}: {e}", d.display());
                }
            }
            if !c.exists() {
                return Ok(Poll::Ready(()));
            }
            if k.exists() {
                let _ = std::fs::write(&k, "1");
            }
            Ok(Poll::Pending(last))
        },
    )
}

/// A directory and all directories below it, deepest first.
fn subdirs_depth_first(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&e.path(), out);
                }
            }
        }
        out.push(d.to_path_buf());
    }
    if root.is_dir() {
        walk(root, &mut out);
    }
    out
}

/// Reads a PID file.
pub fn read_pid(p: &Path) -> Option<i32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// True if `pid` exists and is not a zombie (a zombie leader whose other threads still
/// exit counts as alive).
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // the state follows the last ')' (comm may contain spaces and parens)
            let st = s.rsplit_once(')').map(|(_, r)| r.trim_start());
            match st.and_then(|r| r.chars().next()) {
                Some('X') | None => false,
                // a zombie leader whose other threads still exit (and hold its files)
                Some('Z') => std::fs::read_dir(format!("/proc/{pid}/task"))
                    .map(|tasks| tasks.count() > 1)
                    .unwrap_or(false),
                Some(_) => true,
            }
        }
        Err(_) => false,
    }
}

/// The `comm` of a process.
pub fn pid_comm(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Direct children of `pid` (over all its threads).
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|x| x.parse::<i32>().ok()));
            }
        }
    }
    out
}

/// All PIDs on the host.
pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Mount points at or below `p` in the host's mount namespace, in mount order.
pub fn mounts_under(p: &Path) -> Vec<String> {
    let base = p.to_string_lossy().trim_end_matches('/').to_string();
    let Ok(s) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    s.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .filter(|m| *m == base || m.starts_with(&format!("{base}/")))
        .collect()
}

fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True if `p` is a mount point.
pub fn is_mountpoint(p: &Path) -> bool {
    let base = p.to_string_lossy().trim_end_matches('/').to_string();
    mounts_under(p).contains(&base)
}

/// Waits until `pid` is gone (or a zombie); returns how long it took.
pub fn wait_pid_gone(pid: i32, what: &str, limit: Duration) -> Result<Duration> {
    let t = Instant::now();
    wait::until(what, limit, Duration::from_millis(20), || {
        Ok(if pid_alive(pid) {
            Poll::Pending(format!("pid {pid} alive"))
        } else {
            Poll::Ready(t.elapsed())
        })
    })
}
