//! This node's brick judged from the node itself: the brick process (a `glusterfsd` whose
//! command line names this volume and this brick path) alive, and its port listening.
//!
//! No cluster-wide call: `gluster volume status` takes glusterd's cluster lock, which a
//! peer cut off the network holds for the whole ping-timeout; while it did, every healthy
//! node's agent read "Another transaction is in progress", called its own brick offline
//! and left the balancer (issue 26: one node cut off took the service down).

use std::path::{Path, PathBuf};

use crate::exec::split_cmdline;

/// How this node's brick is named in the volume: `HOST:PATH` with HOST its address or id.
#[derive(Debug, Clone)]
pub struct BrickId {
    pub hosts: Vec<String>,
    pub path: String,
}

impl BrickId {
    pub fn matches(&self, host: &str, path: &str) -> bool {
        path == self.path && self.hosts.iter().any(|h| h == host)
    }

    pub fn matches_name(&self, name: &str) -> bool {
        name.rsplit_once(':')
            .is_some_and(|(host, path)| self.matches(host, path))
    }
}

/// This node's brick process as seen locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalBrick {
    pub pid: i64,
    /// `--brick-port` from its command line.
    pub port: Option<u16>,
    /// The port is in LISTEN state in this node's network namespace.
    pub listening: bool,
}

impl LocalBrick {
    /// Serving: alive with its port listening.
    pub fn serving(&self) -> bool {
        self.listening
    }
}

/// Where the local evidence comes from; `/proc` in production, fixed answers in tests.
pub trait LocalBricks: Send + Sync + std::fmt::Debug {
    /// The brick process of `volume` at `me`, if one runs.
    fn find(&self, volume: &str, me: &BrickId) -> Option<LocalBrick>;
    /// Whether process `pid` still runs (the cheap check between full looks).
    fn alive(&self, pid: i64) -> bool;
}

/// Production: `/proc/*/cmdline` and `/proc/net/tcp{,6}` (the agent shares the node's PID
/// and network namespaces with glusterd's bricks).
#[derive(Debug, Clone)]
pub struct ProcBricks {
    pub proc_dir: PathBuf,
}

impl Default for ProcBricks {
    fn default() -> Self {
        ProcBricks {
            proc_dir: PathBuf::from("/proc"),
        }
    }
}

impl LocalBricks for ProcBricks {
    fn find(&self, volume: &str, me: &BrickId) -> Option<LocalBrick> {
        let entries = std::fs::read_dir(&self.proc_dir).ok()?;
        let (pid, argv) = entries.flatten().find_map(|entry| {
            let pid: i64 = entry.file_name().to_str()?.parse().ok()?;
            let raw = std::fs::read(entry.path().join("cmdline")).ok()?;
            let argv = split_cmdline(&raw);
            is_brick_of(&argv, volume, &me.path).then_some((pid, argv))
        })?;
        let port = brick_port(&argv);
        let listening = port.is_some_and(|port| listening_on(&self.proc_dir, port));
        Some(LocalBrick {
            pid,
            port,
            listening,
        })
    }

    fn alive(&self, pid: i64) -> bool {
        pid > 0 && Path::new(&self.proc_dir).join(pid.to_string()).exists()
    }
}

fn value_of<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    argv.iter()
        .position(|a| a == flag)
        .and_then(|i| argv.get(i + 1))
        .map(String::as_str)
}

/// Pure: is this the brick process of `volume` at `path`? glusterd starts it as
/// `glusterfsd -s HOST --volfile-id VOL.HOST.PATH -p PIDFILE … --brick-name PATH …
/// --brick-port N`.
pub fn is_brick_of(argv: &[String], volume: &str, path: &str) -> bool {
    let program = argv.first().map(String::as_str).unwrap_or("");
    program.rsplit('/').next() == Some("glusterfsd")
        && value_of(argv, "--brick-name") == Some(path)
        && value_of(argv, "--volfile-id").is_some_and(|id| id.starts_with(&format!("{volume}.")))
}

/// Pure: the port from `--brick-port N`.
pub fn brick_port(argv: &[String]) -> Option<u16> {
    value_of(argv, "--brick-port")?.parse().ok()
}

fn is_listener(socket: &super::stalled::TcpSocket, port: u16) -> bool {
    socket.state == super::stalled::TcpState::Listen && socket.local.port() == port
}

/// A socket listening on `port` in `PROC/net/tcp{,6}`, found without reading the tables
/// whole (the listeners come first).
pub fn listening_on(proc_dir: &Path, port: u16) -> bool {
    let mut found = false;
    super::stalled::scan_tables(proc_dir, |socket| {
        found = is_listener(&socket, port);
        if found {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A brick's command line as glusterd 10.3 starts it (Debian 12).
    const ARGV: &[u8] = b"/usr/sbin/glusterfsd\0-s\x0010.214.0.11\0--volfile-id\0www.10.214.0.11.bricks-www\0-p\0/var/run/gluster/vols/www/10.214.0.11-bricks-www.pid\0-S\0/var/run/gluster/1d2c.socket\0--brick-name\0/bricks/www\0-l\0/var/log/glusterfs/bricks/bricks-www.log\0--xlator-option\0*-posix.glusterd-uuid=88ef\0--process-name\0brick\0--brick-port\x0049152\0--xlator-option\0www-server.listen-port=49152\0";

    #[test]
    fn the_brick_process_is_found_by_volume_and_path() {
        let argv = split_cmdline(ARGV);
        assert!(is_brick_of(&argv, "www", "/bricks/www"));
        assert!(!is_brick_of(&argv, "data", "/bricks/www"));
        assert!(!is_brick_of(&argv, "www", "/bricks/data"));
        assert_eq!(brick_port(&argv), Some(49152));
        // the gluster CLI or a shell naming the path is not the brick
        let shell = split_cmdline(b"/bin/sh\0-c\0ls --brick-name /bricks/www\0");
        assert!(!is_brick_of(&shell, "www", "/bricks/www"));
    }

    /// A `proc` directory holding only `net/tcp` and `net/tcp6` with these texts.
    fn proc_with(tcp: &str, tcp6: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("net")).unwrap();
        std::fs::write(dir.path().join("net/tcp"), tcp).unwrap();
        std::fs::write(dir.path().join("net/tcp6"), tcp6).unwrap();
        dir
    }

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    #[test]
    fn a_listening_port_is_read_from_proc_net_tcp() {
        let rows = "   0: 00000000:C000 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n   \
            1: 0B00D60A:C000 0C00D60A:03FF 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n";
        let proc = proc_with(&format!("{HEADER}{rows}"), HEADER);
        assert!(listening_on(proc.path(), 49152));
        assert!(!listening_on(proc.path(), 49153));
        // an established connection on the port is not a listener
        let proc = proc_with(&format!("{HEADER}{}", rows.replace(" 0A ", " 06 ")), HEADER);
        assert!(!listening_on(proc.path(), 49152));
        // a listener on IPv6 (the second table) counts
        let v6 = "   0: 00000000000000000000000000000000:C000 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0\n";
        let proc = proc_with(HEADER, &format!("{HEADER}{v6}"));
        assert!(listening_on(proc.path(), 49152));
        // no tables at all
        let empty = tempfile::tempdir().unwrap();
        assert!(!listening_on(empty.path(), 49152));
    }

    #[test]
    fn the_agents_own_process_table_has_no_brick() {
        let me = BrickId {
            hosts: vec!["n1".into()],
            path: "/bricks/triad-test-none".into(),
        };
        assert_eq!(ProcBricks::default().find("www", &me), None);
        assert!(ProcBricks::default().alive(std::process::id() as i64));
        assert!(!ProcBricks::default().alive(0));
    }
}
