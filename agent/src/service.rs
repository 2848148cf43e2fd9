//! `ServiceManager`: the narrow trait over systemd that service modules use to keep their
//! unit running. Production uses `systemctl` (the path operators use, the same in the lab's
//! systemd containers); simulations use an in-memory fake.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::galera::host::{run, HostError};
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

#[async_trait::async_trait]
impl ServiceManager for Systemctl {
    async fn state(&self, unit: &str) -> UnitState {
        match tokio::process::Command::new("systemctl")
            .args(["is-active", unit])
            // is-active exits non-zero for inactive/failed; its stdout is what we want
            .env_remove("NOTIFY_SOCKET")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .await
        {
            Ok(output) => UnitState::parse(&String::from_utf8_lossy(&output.stdout)),
            Err(_) => UnitState::Unknown,
        }
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

/// In-memory units for simulations: `start` makes a unit active.
#[derive(Debug, Default)]
pub struct FakeServices {
    pub units: Mutex<BTreeMap<String, UnitState>>,
}

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
