//! `ServiceManager`: the narrow trait over systemd that service modules use to keep their
//! unit running. Production reads unit states over systemd's D-Bus (`systemd_bus`) and acts
//! through `systemctl` (the path operators use, the same in the lab's systemd containers);
//! simulations use an in-memory fake.

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
    let output = crate::exec::command(program)
        .args(["is-active", unit])
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

/// A look over D-Bus failed: said once at warn (then at debug), since every later look
/// tries the bus again and falls back the same way.
fn bus_fallback(error: &crate::systemd_bus::BusError) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::debug!("{error}; asking systemctl instead");
    } else {
        tracing::warn!("{error}; asking systemctl instead (a process per look)");
    }
}

/// How [`stop_or_kill`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The unit stopped within its grace.
    Gracefully,
    /// It did not; SIGKILL to every process of the unit ended it.
    Killed,
}

/// How long [`stop_or_kill`] waits for systemd to see the unit gone after SIGKILL.
const AFTER_KILL: Duration = Duration::from_secs(20);

/// Stop `unit`, and when it has not stopped within `grace`, SIGKILL every process of it.
///
/// For a service whose stop can hang for good: a mariadbd that joined a group which then
/// vanished ignores SIGTERM while gcomm retries its peers (measured on the lab: still in
/// `stop-sigterm` 9 minutes after the stop, under Debian's TimeoutStopSec of 15 min), and
/// a node that cannot stop cannot report its position to a full-outage recovery. The stop
/// job is queued without blocking and the state watched here, so no child waits on it.
pub async fn stop_or_kill(unit: &str, grace: Duration) -> Result<Stopped, HostError> {
    stop_or_kill_with("systemctl", unit, grace, AFTER_KILL).await
}

/// [`stop_or_kill`] without a stop job: SIGTERM to the unit's main process (`systemctl
/// kill`, which queues no job), for a stop while the system shuts down and this unit's
/// stop job waits behind the agent's.
pub async fn terminate_or_kill(unit: &str, grace: Duration) -> Result<Stopped, HostError> {
    run(
        "systemctl",
        &["kill", "--kill-whom=main", "--signal=SIGTERM", unit],
        STATE_TIMEOUT,
    )
    .await?;
    if wait_stopped("systemctl", unit, grace).await {
        return Ok(Stopped::Gracefully);
    }
    tracing::warn!(
        unit,
        "{unit} did not stop within {grace:?} of SIGTERM: sending SIGKILL"
    );
    run(
        "systemctl",
        &["kill", "--signal=SIGKILL", unit],
        STATE_TIMEOUT,
    )
    .await?;
    if wait_stopped("systemctl", unit, AFTER_KILL).await {
        return Ok(Stopped::Killed);
    }
    Err(HostError::new(
        format!("systemctl kill {unit}"),
        format!("still running {grace:?} after SIGTERM and {AFTER_KILL:?} after SIGKILL"),
    ))
}

/// [`stop_or_kill`] through `program` (systemctl; a script in the tests).
async fn stop_or_kill_with(
    program: &str,
    unit: &str,
    grace: Duration,
    after_kill: Duration,
) -> Result<Stopped, HostError> {
    run(program, &["stop", "--no-block", unit], STATE_TIMEOUT).await?;
    if wait_stopped(program, unit, grace).await {
        return Ok(Stopped::Gracefully);
    }
    tracing::warn!(
        unit,
        "{unit} did not stop within {grace:?}: sending SIGKILL to its processes"
    );
    run(program, &["kill", "--signal=SIGKILL", unit], STATE_TIMEOUT).await?;
    if wait_stopped(program, unit, after_kill).await {
        return Ok(Stopped::Killed);
    }
    Err(HostError::new(
        format!("systemctl stop {unit}"),
        format!("still running {grace:?} after the stop and {after_kill:?} after SIGKILL"),
    ))
}

/// True once `unit` is inactive or failed, polled until `limit`.
async fn wait_stopped(program: &str, unit: &str, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if matches!(
            unit_state(program, unit, STATE_TIMEOUT).await,
            UnitState::Inactive | UnitState::Failed
        ) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[async_trait::async_trait]
impl ServiceManager for Systemctl {
    /// Over systemd's D-Bus when it answers (no process per look), else `systemctl`.
    async fn state(&self, unit: &str) -> UnitState {
        match crate::systemd_bus::unit_property(unit, "ActiveState").await {
            Ok(state) => UnitState::parse(&state),
            Err(error) => {
                bus_fallback(&error);
                unit_state("systemctl", unit, STATE_TIMEOUT).await
            }
        }
    }

    async fn waiting_to_restart(&self, unit: &str) -> bool {
        match crate::systemd_bus::unit_property(unit, "SubState").await {
            Ok(sub) => return sub == "auto-restart",
            Err(error) => bus_fallback(&error),
        }
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

    /// A systemctl that models a unit's stop: `stop` moves it to `deactivating` (or, with
    /// `stops`, to `inactive`), `kill --signal=SIGKILL` to `failed` when `killable`;
    /// `is-active` prints the state; every call is logged.
    fn stubborn_systemctl(dir: &std::path::Path, stops: bool, killable: bool) -> String {
        let state = dir.join("state");
        let calls = dir.join("calls");
        std::fs::write(&state, "active\n").unwrap();
        script(
            dir,
            &format!(
                "echo \"$*\" >> {calls}\ncase \"$1\" in\n\
                 stop) echo {stop} > {state} ;;\n\
                 kill) {kill} ;;\n\
                 is-active) cat {state}; grep -qx active {state} ;;\n\
                 esac",
                calls = calls.display(),
                state = state.display(),
                stop = if stops { "inactive" } else { "deactivating" },
                kill = if killable {
                    format!("echo failed > {}", state.display())
                } else {
                    "true".into()
                },
            ),
        )
    }

    fn calls(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("calls"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[tokio::test]
    async fn a_unit_that_stops_is_not_killed() {
        let dir = tempfile::tempdir().unwrap();
        let systemctl = stubborn_systemctl(dir.path(), true, true);
        let how = stop_or_kill_with(
            &systemctl,
            "mariadb",
            Duration::from_secs(5),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        assert_eq!(how, Stopped::Gracefully);
        assert!(
            !calls(dir.path()).iter().any(|c| c.starts_with("kill")),
            "{:?}",
            calls(dir.path())
        );
    }

    #[tokio::test]
    async fn a_unit_that_ignores_its_stop_is_killed_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let systemctl = stubborn_systemctl(dir.path(), false, true);
        let started = std::time::Instant::now();
        let how = stop_or_kill_with(
            &systemctl,
            "mariadb",
            Duration::from_millis(600),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert_eq!(how, Stopped::Killed);
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "killed before its grace"
        );
        let calls = calls(dir.path());
        assert_eq!(
            calls.first().map(String::as_str),
            Some("stop --no-block mariadb")
        );
        assert!(
            calls.contains(&"kill --signal=SIGKILL mariadb".to_string()),
            "{calls:?}"
        );
    }

    #[tokio::test]
    async fn a_unit_that_outlives_the_kill_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let systemctl = stubborn_systemctl(dir.path(), false, false);
        let error = stop_or_kill_with(
            &systemctl,
            "mariadb",
            Duration::from_millis(300),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(
            error.to_string().contains("mariadb") && error.to_string().contains("SIGKILL"),
            "{error}"
        );
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
