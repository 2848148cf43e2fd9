//! `ServiceManager`: the narrow trait over systemd that service modules use to keep their
//! unit running. Production uses `systemctl` (the path operators use, the same in the lab's
//! systemd containers); simulations use an in-memory fake.

#[cfg(any(test, feature = "testsuite"))]
use std::collections::BTreeMap;
#[cfg(any(test, feature = "testsuite"))]
use std::sync::Mutex;
use std::time::Duration;

use crate::exec::{run, HostError};
use crate::galera::UnitState;

#[async_trait::async_trait]
pub trait ServiceManager: Send + Sync {
    async fn state(&self, unit: &str) -> UnitState;
    /// True while systemd waits out the unit's `RestartSec` after a crash (ActiveState
    /// activating, SubState auto-restart): glusterd.service waits 60 s there, so the
    /// agent starts it at once instead.
    async fn waiting_to_restart(&self, unit: &str) -> bool;
    async fn start(&self, unit: &str) -> Result<(), HostError>;
    async fn reset_failed(&self, unit: &str) -> Result<(), HostError>;
    /// Re-read configuration (a graceful reload; a start when the unit is not running).
    async fn reload_or_restart(&self, unit: &str) -> Result<(), HostError>;
    /// Stop and start (for changes a reload cannot take, like Apache's listeners).
    async fn restart(&self, unit: &str) -> Result<(), HostError>;
}

#[derive(Debug, Clone, Default)]
pub struct Systemctl;

/// Bound on `systemctl is-active`: a hung systemd bus must not stall a service loop.
const STATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Write a unit (or drop-in) file the agent owns, such as one under /run/systemd/system,
/// and `systemctl daemon-reload` when it changed: its directory is created first. True
/// when written.
pub async fn write_unit_file(
    path: &std::path::Path,
    text: &str,
    timeout: Duration,
) -> Result<bool, HostError> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| HostError::new(format!("creating {}", dir.display()), e.to_string()))?;
    }
    let written = crate::exec::write_if_changed(path, text).await?;
    if written {
        run("systemctl", &["daemon-reload"], timeout).await?;
    }
    Ok(written)
}

/// `PROGRAM is-active UNIT`, bounded by `timeout` (the child is killed past it). Its exit
/// code is non-zero for inactive and failed units; stdout says which. No answer within the
/// bound is `Unknown` (not healthy), logged with the command.
pub async fn unit_state(program: &str, unit: &str, timeout: Duration) -> UnitState {
    let output = tokio::process::Command::new(program)
        .args(["is-active", unit])
        .env_remove("NOTIFY_SOCKET")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(timeout, output).await {
        Ok(Ok(output)) => UnitState::parse(&String::from_utf8_lossy(&output.stdout)),
        Ok(Err(error)) => {
            tracing::warn!("{program} is-active {unit}: {error}");
            UnitState::Unknown
        }
        Err(_) => {
            tracing::warn!("{program} is-active {unit}: no answer within {timeout:?}");
            UnitState::Unknown
        }
    }
}

#[async_trait::async_trait]
impl ServiceManager for Systemctl {
    async fn state(&self, unit: &str) -> UnitState {
        unit_state("systemctl", unit, STATE_TIMEOUT).await
    }

    async fn waiting_to_restart(&self, unit: &str) -> bool {
        run(
            "systemctl",
            &["show", "-P", "SubState", unit],
            Duration::from_secs(10),
        )
        .await
        .is_ok_and(|sub| sub.trim() == "auto-restart")
    }

    async fn start(&self, unit: &str) -> Result<(), HostError> {
        run(
            "systemctl",
            &["start", "--no-block", unit],
            Duration::from_secs(30),
        )
        .await
        .map(|_| ())
    }

    async fn reset_failed(&self, unit: &str) -> Result<(), HostError> {
        run(
            "systemctl",
            &["reset-failed", unit],
            Duration::from_secs(30),
        )
        .await
        .map(|_| ())
    }

    async fn reload_or_restart(&self, unit: &str) -> Result<(), HostError> {
        run(
            "systemctl",
            &["reload-or-restart", unit],
            Duration::from_secs(60),
        )
        .await
        .map(|_| ())
    }

    async fn restart(&self, unit: &str) -> Result<(), HostError> {
        run("systemctl", &["restart", unit], Duration::from_secs(60))
            .await
            .map(|_| ())
    }
}

/// In-memory units for simulations: `start` makes a unit active. Not in the product.
#[cfg(any(test, feature = "testsuite"))]
#[derive(Debug, Default)]
pub struct FakeServices {
    pub units: Mutex<BTreeMap<String, UnitState>>,
}

#[cfg(any(test, feature = "testsuite"))]
#[async_trait::async_trait]
impl ServiceManager for FakeServices {
    async fn state(&self, unit: &str) -> UnitState {
        self.units
            .lock()
            .unwrap()
            .get(unit)
            .copied()
            .unwrap_or(UnitState::Inactive)
    }

    async fn waiting_to_restart(&self, _unit: &str) -> bool {
        false
    }

    async fn start(&self, unit: &str) -> Result<(), HostError> {
        self.units
            .lock()
            .unwrap()
            .insert(unit.to_string(), UnitState::Active);
        Ok(())
    }

    async fn reset_failed(&self, unit: &str) -> Result<(), HostError> {
        self.units
            .lock()
            .unwrap()
            .insert(unit.to_string(), UnitState::Inactive);
        Ok(())
    }

    async fn reload_or_restart(&self, unit: &str) -> Result<(), HostError> {
        self.start(unit).await
    }

    async fn restart(&self, unit: &str) -> Result<(), HostError> {
        self.start(unit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &std::path::Path, body: &str) -> String {
        let path = dir.join("systemctl");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    #[tokio::test]
    async fn a_hung_systemctl_is_bounded_and_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let hung = script(dir.path(), "exec sleep 30");
        let started = std::time::Instant::now();
        let state = unit_state(&hung, "glusterd.service", Duration::from_millis(300)).await;
        assert_eq!(state, UnitState::Unknown);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waited {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn is_active_output_is_read_whatever_the_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let failed = script(dir.path(), "echo failed; exit 3");
        assert_eq!(
            unit_state(&failed, "x.service", Duration::from_secs(5)).await,
            UnitState::Failed
        );
        assert_eq!(
            unit_state(
                "/nonexistent/systemctl",
                "x.service",
                Duration::from_secs(5)
            )
            .await,
            UnitState::Unknown
        );
    }
}
