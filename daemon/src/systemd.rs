//! systemd integration: readiness notification and watchdog pings (sd_notify), both
//! no-ops when the agent does not run under systemd.

use std::time::Duration;

use sd_notify::NotifyState;

/// Tell systemd the agent is up (Type=notify).
pub fn notify_ready() {
    if let Err(error) = sd_notify::notify(false, &[NotifyState::Ready]) {
        tracing::warn!(%error, "sd_notify READY failed");
    }
}

/// Tell systemd the agent is stopping.
pub fn notify_stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

/// True when stderr is connected to the journal (systemd sets JOURNAL_STREAM).
pub fn under_journald() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}

/// Watchdog pinger: enabled only when systemd set WATCHDOG_USEC for this process.
#[derive(Debug, Clone, Copy)]
pub struct Watchdog {
    timeout: Option<Duration>,
}

impl Watchdog {
    pub fn from_env() -> Watchdog {
        let mut usec = 0;
        let timeout =
            sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec));
        Watchdog { timeout }
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    pub fn ping(&self) {
        if self.timeout.is_some() {
            let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
        }
    }
}
