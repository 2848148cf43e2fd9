//! Daemons the lab runs on the host (HAProxy, the coordinator): started in their own session,
//! tracked by PID (HAProxy in the foreground writes no pidfile), stopped by PID.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cmd;
use crate::error::{IoContext, LabError, Result};
use crate::node::{pid_alive, pid_comm};
use crate::wait::{self, Poll};

/// A host daemon started by the lab.
#[derive(Debug)]
pub struct HostProc {
    /// What it is ("haproxy", "triad-coordinator").
    pub name: String,
    /// Its PID.
    pub pid: i32,
    child: Option<Child>,
}

impl HostProc {
    /// Spawns `c` detached (own process group), output appended to `log`.
    pub fn spawn(name: &str, c: &mut Command, log: &Path) -> Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .io("open", log)?;
        let f2 = f.try_clone().io("open", log)?;
        c.stdin(Stdio::null()).stdout(f).stderr(f2).process_group(0);
        let line = cmd::display(c);
        let child = c
            .spawn()
            .map_err(|source| LabError::Spawn { cmd: line, source })?;
        Ok(Self {
            name: name.to_string(),
            pid: child.id() as i32,
            child: Some(child),
        })
    }

    /// A handle for a PID recorded earlier (from the state file), if that process still runs
    /// and its comm starts with `comm_prefix` (guards against a recycled PID).
    pub fn attach(name: &str, pid: i32, comm_prefix: &str) -> Option<Self> {
        (pid_alive(pid) && pid_comm(pid).is_some_and(|c| c.starts_with(comm_prefix))).then(|| {
            Self {
                name: name.to_string(),
                pid,
                child: None,
            }
        })
    }

    /// Still running?
    ///
    /// Our own child is gone only once it is reaped: after a SIGKILL the leader of a
    /// multi-threaded process shows as a zombie while its other threads still exit and
    /// still hold its sockets (chaos restarted the coordinator in that window and its new
    /// one could not bind 127.0.0.1:7422: "Address already in use").
    pub fn alive(&mut self) -> bool {
        if let Some(c) = self.child.as_mut() {
            return !matches!(c.try_wait(), Ok(Some(_)));
        }
        pid_alive(self.pid)
    }

    /// SIGTERM, bounded wait, then SIGKILL; reaps the child if it is ours.
    pub fn stop(&mut self, limit: Duration) -> Result<()> {
        if !self.alive() {
            return Ok(());
        }
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        let what = format!("{} (pid {}) to exit", self.name, self.pid);
        if wait::until(&what, limit, Duration::from_millis(50), || {
            Ok(if self.alive() {
                Poll::Pending("running".into())
            } else {
                Poll::Ready(())
            })
        })
        .is_err()
        {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
            wait::until(
                &what,
                Duration::from_secs(5),
                Duration::from_millis(50),
                || {
                    Ok(if self.alive() {
                        Poll::Pending("running after SIGKILL".into())
                    } else {
                        Poll::Ready(())
                    })
                },
            )?;
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        Ok(())
    }
}
