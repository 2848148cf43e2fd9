//! HAProxy on the host at 127.0.0.1:8080 in front of the nodes' Apache, with an admin socket
//! under the state dir. Settings follow the measured failover config (testbed.md §7.3):
//! `inter 1s fall 2 rise 2` and `retry-on all-retryable-errors` gave 0 failed requests when a
//! backend died. `timeout check 8s`: the health file is on the Gluster volume, which makes
//! every node wait out its ping-timeout (5 s) when one replica is cut off without a reset;
//! a shorter check timeout took the survivors of a partition out too (issue 26). A node
//! cut off still leaves fast: its checks fail on `timeout connect` (2 s).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::{IoContext, LabError, Result};
use crate::hostproc::HostProc;
use crate::wait::{self, Poll};

/// Where the balancer listens.
pub const LISTEN: &str = "127.0.0.1:8080";
/// The backend name in the config.
pub const BACKEND: &str = "be_web";

/// The lab's health check, in one place: the page HAProxy's checks request (`option
/// httpchk`), which the agents probe too (`[apache] health_path` in their config) and the
/// lab puts in the docroot.
pub const HEALTH_PATH: &str = "/health.html";
/// The statuses that pass it: HAProxy's `http-check expect status` and the agents'
/// `[apache] health_codes` (one syntax: "200", "200,302" or "200-204").
pub const HEALTH_CODES: &str = "200";

/// A running HAProxy.
#[derive(Debug)]
pub struct Haproxy {
    /// Its dir under the state dir (config, admin socket, log).
    pub dir: PathBuf,
    /// The admin socket.
    pub sock: PathBuf,
    /// The process.
    pub proc: HostProc,
}

/// One server row of `show stat`.
#[derive(Debug, Clone)]
pub struct ServerStat {
    /// Server name (n1, ...).
    pub name: String,
    /// UP, DOWN, MAINT, DRAIN, "UP 1/2", ...
    pub status: String,
    /// Total sessions (stot).
    pub total: u64,
    /// Last check status (L7OK, L4CON, ...).
    pub check: String,
}

/// The cookie that keeps a client on one node.
pub const COOKIE: &str = "TRIADSRV";

/// Maintenance mode's runtime map and allow list (the coordinator's `[balancer.haproxy]
/// maintenance_map` and `maintenance_allow`), in `dir`.
pub fn maintenance_files(dir: &Path) -> (PathBuf, PathBuf) {
    (
        dir.join("triad-maintenance.map"),
        dir.join("triad-maintenance-allow.acl"),
    )
}

/// Creates the maintenance files empty (HAProxy loads them at start); kept when present.
fn create_maintenance_files(dir: &Path) -> Result<()> {
    let (map, allow) = maintenance_files(dir);
    for file in [map, allow] {
        if !file.exists() {
            std::fs::write(&file, "").io("write", &file)?;
        }
    }
    Ok(())
}

/// The last `lines` lines of the log of the HAProxy whose dir is `dir` (see
/// [`Haproxy::abnormal_log`]).
pub fn abnormal_log(dir: &Path, lines: usize) -> String {
    match std::fs::read_to_string(dir.join("haproxy.log")) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(no HAProxy log: {e})"),
    }
}

/// The HAProxy config for `servers` (name, addr).
pub fn config(dir: &Path, servers: &[(String, String)]) -> String {
    let (map, allow) = maintenance_files(dir);
    let mut s = format!(
        "global\n    stats socket {sock} mode 600 level admin\n    maxconn 2000\n    \
# abnormal requests only (dontlog-normal), to stderr = haproxy.log: a failed request's\n    \
# termination state, server and retries, for a test to print when it fails\n    \
log stderr format raw local0 info\n\n\
defaults\n    mode http\n    log global\n    option httplog\n    option dontlog-normal\n    timeout connect 2s\n    timeout client 15s\n    timeout server 15s\n    \
timeout check 8s\n    \
# no server up: 503 with Retry-After, not HAProxy's HTML page\n    {no_server}\n\n\
frontend fe_web\n    bind {LISTEN}\n    # maintenance mode (`triadctl app maintenance on`)\n    {maintenance}\n    default_backend {BACKEND}\n\n\
backend {BACKEND}\n    balance roundrobin\n    option httpchk GET {HEALTH_PATH}\n    \
http-check expect status {HEALTH_CODES}\n    \
# a request whose node just failed goes to another node (RETRY_LINES)\n    \
{retry}\n    \
# a client stays on the node that served it while that node is up (the coordinator adds\n    \
# servers at run time, which take no `cookie`: dynamic cookies from each server's address)\n    \
cookie {COOKIE} insert indirect nocache httponly dynamic\n    dynamic-cookie-key triad-lab\n    \
default-server inter 1s fall 2 rise 2\n",
        sock = dir.join("admin.sock").display(),
        maintenance = triad_coordinator::balancer::haproxy::maintenance_frontend_line(&map, &allow),
        no_server = triad_coordinator::balancer::haproxy::no_server_error_line(),
        retry = triad_coordinator::balancer::haproxy::RETRY_LINES.join("\n    "),
    );
    for (n, a) in servers {
        s.push_str(&format!("    server {n} {a}:80 check\n"));
    }
    s
}

impl Haproxy {
    /// Writes the config, checks it (`haproxy -c`) and runs HAProxy in the foreground in its
    /// own session, keeping its PID.
    pub fn start(state: &Path, servers: &[(String, String)]) -> Result<Self> {
        let dir = state.join("haproxy");
        std::fs::create_dir_all(&dir).io("mkdir", &dir)?;
        let cfg = dir.join("haproxy.cfg");
        create_maintenance_files(&dir)?;
        std::fs::write(&cfg, config(&dir, servers)).io("write", &cfg)?;
        crate::cmd::run(
            Command::new("haproxy")
                .arg("-c")
                .arg("-q")
                .arg("-f")
                .arg(&cfg),
        )?;
        let sock = dir.join("admin.sock");
        let _ = std::fs::remove_file(&sock);
        let mut c = Command::new("haproxy");
        c.arg("-f").arg(&cfg);
        let mut proc = HostProc::spawn("haproxy", &mut c, &dir.join("haproxy.log"))?;
        let hp_ref = &mut proc;
        wait::until(
            "HAProxy admin socket to answer",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                if !hp_ref.alive() {
                    return Err(LabError::Other(format!(
                        "haproxy exited at start; see {}",
                        dir.join("haproxy.log").display()
                    )));
                }
                Ok(match admin(&sock, "show info") {
                    Ok(s) if s.contains("Pid:") => Poll::Ready(()),
                    Ok(s) => Poll::Pending(s),
                    Err(e) => Poll::Pending(e.to_string()),
                })
            },
        )?;
        Ok(Self { dir, sock, proc })
    }

    /// HAProxy's log of abnormal requests (`option dontlog-normal`: errors, retries,
    /// redispatches) and its server state changes, the last `lines` of them: what a test
    /// prints when a client request failed.
    pub fn abnormal_log(&self, lines: usize) -> String {
        abnormal_log(&self.dir, lines)
    }

    /// Sends one command to the admin socket and returns the answer.
    pub fn admin(&self, command: &str) -> Result<String> {
        admin(&self.sock, command)
    }

    /// The backend's server rows of `show stat`.
    pub fn stats(&self) -> Result<Vec<ServerStat>> {
        parse_stat(&self.admin("show stat")?)
    }

    /// One server's status (UP/DOWN/...).
    pub fn server_status(&self, server: &str) -> Result<String> {
        self.stats()?
            .into_iter()
            .find(|s| s.name == server)
            .map(|s| s.status)
            .ok_or_else(|| LabError::Other(format!("haproxy: no server {server} in {BACKEND}")))
    }

    /// Waits until `server`'s status starts with `want` ("UP" or "DOWN"); returns the time taken.
    pub fn wait_status(&self, server: &str, want: &str, limit: Duration) -> Result<Duration> {
        let t = Instant::now();
        wait::until(
            &format!("HAProxy server {BACKEND}/{server} to be {want}"),
            limit,
            Duration::from_millis(100),
            || {
                let s = self.server_status(server)?;
                Ok(if s == want || s.starts_with(&format!("{want} ")) {
                    Poll::Ready(t.elapsed())
                } else {
                    Poll::Pending(s)
                })
            },
        )
    }

    /// Waits until every server is UP.
    pub fn wait_all_up(&self, limit: Duration) -> Result<()> {
        wait::until_default("all HAProxy servers UP", limit, || {
            let st = self.stats()?;
            let summary: Vec<String> = st
                .iter()
                .map(|s| format!("{}={}", s.name, s.status))
                .collect();
            Ok(if !st.is_empty() && st.iter().all(|s| s.status == "UP") {
                Poll::Ready(())
            } else {
                Poll::Pending(summary.join(" "))
            })
        })
    }

    /// Waits until every one of `names` is a server of the backend and UP: Triad put the
    /// node back after its return, not only called it ready (the coordinator re-adds a node
    /// some seconds after it is ready). A scenario that takes one node away needs the
    /// others serving first.
    pub fn wait_serving(&self, names: &[&str], limit: Duration) -> Result<Duration> {
        let t = std::time::Instant::now();
        wait::until_default(
            &format!("HAProxy serving through {}", names.join(", ")),
            limit,
            || {
                let st = self.stats()?;
                let up = |name: &&str| st.iter().any(|s| s.name == *name && s.status == "UP");
                Ok(if names.iter().all(up) {
                    Poll::Ready(t.elapsed())
                } else {
                    Poll::Pending(
                        st.iter()
                            .map(|s| format!("{}={}", s.name, s.status))
                            .collect::<Vec<_>>()
                            .join(" "),
                    )
                })
            },
        )
    }

    /// Stops HAProxy by PID.
    pub fn stop(&mut self) -> Result<()> {
        self.proc.stop(Duration::from_secs(5))?;
        let _ = std::fs::remove_file(&self.sock);
        Ok(())
    }
}

/// Talks to an HAProxy admin socket (one command per connection).
pub fn admin(sock: &Path, command: &str) -> Result<String> {
    let ctx = |e: std::io::Error| {
        LabError::Other(format!(
            "haproxy admin socket {}: {command}: {e}",
            sock.display()
        ))
    };
    let mut s = UnixStream::connect(sock).map_err(ctx)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(ctx)?;
    s.write_all(format!("{command}\n").as_bytes())
        .map_err(ctx)?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(ctx)?;
    Ok(out)
}

/// Parses `show stat` CSV: the header names the columns; keeps the backend's server rows.
pub fn parse_stat(csv: &str) -> Result<Vec<ServerStat>> {
    let mut lines = csv.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or_else(|| LabError::Other(format!("haproxy show stat: no header in {csv:?}")))?;
    let cols: Vec<&str> = header.split(',').collect();
    let idx = |n: &str| cols.iter().position(|c| *c == n);
    let (Some(px), Some(sv), Some(st), Some(stot), Some(chk)) = (
        idx("pxname"),
        idx("svname"),
        idx("status"),
        idx("stot"),
        idx("check_status"),
    ) else {
        return Err(LabError::Other(format!(
            "haproxy show stat: unexpected header {header}"
        )));
    };
    Ok(lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.len() > chk && f[px] == BACKEND && f[sv] != "BACKEND" && f[sv] != "FRONTEND")
        .map(|f| ServerStat {
            name: f[sv].to_string(),
            status: f[st].to_string(),
            total: f[stot].parse().unwrap_or(0),
            check: f[chk].to_string(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check requests the lab's health page and expects its codes, and HAProxy 2.6
    /// (Debian 12's) accepts the file.
    #[test]
    fn the_backend_checks_the_labs_health_page_and_codes() {
        let dir = tempfile::tempdir().unwrap();
        let text = config(dir.path(), &[("n1".into(), "127.0.0.1".into())]);
        assert!(
            text.contains(&format!("    option httpchk GET {HEALTH_PATH}\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("    http-check expect status {HEALTH_CODES}\n")),
            "{text}"
        );
        if Command::new("haproxy").arg("-v").output().is_err() {
            eprintln!("no haproxy on this host: the file is not checked with `haproxy -c`");
            return;
        }
        let cfg = dir.path().join("haproxy.cfg");
        create_maintenance_files(dir.path()).unwrap();
        std::fs::write(&cfg, &text).unwrap();
        let out = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "haproxy -c: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
