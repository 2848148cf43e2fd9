//! The "unconfigured default" both daemons share.
//!
//! The packages ship `/etc/triad/agent.toml` and `/etc/triad/coordinator.toml` with every line
//! commented out: a fresh install names no cluster yet. Such a file is *unconfigured*, which is
//! valid (`validate-config` passes) and makes the daemon wait: it reports
//! `STATUS=waiting: edit <path>` to systemd, keeps the watchdog fed, joins no gossip and opens
//! no port, and starts for real on SIGHUP (`systemctl reload`) once the file is filled in.
//! A file with any key in it is parsed strictly as before.

use std::path::Path;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::config::ConfigError;

/// A configuration file as found on disk.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigState<T> {
    /// The file has settings and they are valid.
    Configured(T),
    /// The file holds no setting at all (only comments and blank lines): the shipped default.
    Unconfigured,
}

/// True when `text` is TOML without a single key or table: the shipped, all-commented default.
pub fn is_unconfigured(text: &str) -> bool {
    text.parse::<toml::Table>()
        .is_ok_and(|table| table.is_empty())
}

/// Reads `path`; an unconfigured file gives [`ConfigState::Unconfigured`], anything else goes
/// through `parse` (the strict parser of the agent's or the coordinator's config).
pub fn load_config<T>(
    path: &Path,
    parse: impl FnOnce(&Path, &str) -> Result<T, ConfigError>,
) -> Result<ConfigState<T>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if is_unconfigured(&text) {
        return Ok(ConfigState::Unconfigured);
    }
    parse(path, &text).map(ConfigState::Configured)
}

/// The status line systemd shows while a daemon waits for its configuration.
pub fn waiting_status(path: &Path) -> String {
    format!("waiting: edit {}", path.display())
}

/// `validate-config`'s line for an unconfigured file.
pub fn unconfigured_message(path: &Path, program: &str) -> String {
    format!(
        "{}: ok, not configured yet (every line is a comment); {program} waits until it is filled in",
        path.display()
    )
}

/// Sets the free-form status line `systemctl status` shows (no-op outside systemd).
pub fn notify_status(status: &str) {
    let _ = sd_notify::notify(false, &[NotifyState::Status(status)]);
}

/// Waits, up and idle, while `path` is unconfigured: tells systemd it is ready with a
/// `waiting: edit PATH` status, pings the watchdog, and re-reads the file on every SIGHUP.
/// Returns the configuration once a SIGHUP finds it filled in and valid, or `None` on
/// SIGTERM/SIGINT. An invalid edit is logged and the wait goes on (ExecReload's
/// `validate-config` has normally refused it already).
pub async fn wait_until_configured<T>(
    path: &Path,
    program: &str,
    parse: impl Fn(&Path, &str) -> Result<T, ConfigError>,
) -> std::io::Result<Option<T>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let status = waiting_status(path);
    tracing::warn!(
        path = %path.display(),
        "{program} is not configured yet (every line of its configuration is a comment); waiting: fill it in, then `systemctl reload {program}`"
    );
    let _ = sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(&status)]);
    let watchdog = crate::systemd::Watchdog::from_env();
    let mut tick = tokio::time::interval(
        watchdog
            .timeout()
            .map_or(Duration::from_secs(5), |timeout| timeout / 4),
    );
    loop {
        tokio::select! {
            _ = tick.tick() => watchdog.ping(),
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => match load_config(path, &parse) {
                Ok(ConfigState::Configured(config)) => {
                    tracing::info!(path = %path.display(), "SIGHUP: configuration filled in; starting");
                    notify_status("starting");
                    return Ok(Some(config));
                }
                Ok(ConfigState::Unconfigured) => {
                    tracing::info!(path = %path.display(), "SIGHUP: still not configured; waiting");
                }
                Err(error) => {
                    tracing::error!(%error, "SIGHUP: configuration invalid; still waiting");
                }
            },
        }
    }
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_and_comment_only_files_are_unconfigured_but_a_setting_is_not() {
        assert!(is_unconfigured(""));
        assert!(is_unconfigured("# only a comment\n\n   # another\n"));
        assert!(!is_unconfigured("[node]\n"));
        assert!(!is_unconfigured("id = \"n1\"\n"));
        // broken TOML is not "unconfigured": the strict parser reports it
        assert!(!is_unconfigured("[node\n"));
    }
}
