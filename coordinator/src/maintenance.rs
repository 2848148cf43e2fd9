//! Maintenance mode (`triadctl app maintenance on|off`, issue 18): the balancer answers
//! clients 503 with Retry-After and a message, except the allowed addresses (the
//! operator's), while the nodes stay members and keep being health-checked; cluster jobs
//! pause; one-off runs (the app's upgrade) go on.
//!
//! The wanted state is persisted (`maintenance.json` in the state directory, written
//! durably before it is applied) and handed to the balancer loop, which converges the
//! balancer on it every round, so a restarted coordinator or a reloaded HAProxy (whose
//! runtime maps start empty again) is put back in maintenance by itself.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// The record's file in the state directory.
pub const RECORD_FILE: &str = "maintenance.json";
/// Retry-After unless given, in seconds.
pub const DEFAULT_RETRY_AFTER: u32 = 300;
/// The message unless given.
pub const DEFAULT_MESSAGE: &str = "Down for maintenance; back soon.";
/// The longest message (it is the whole body of every 503).
pub const MAX_MESSAGE: usize = 500;

/// Maintenance as wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    pub message: String,
    pub retry_after_secs: u32,
    /// Clients from these addresses still reach the app (the operator's).
    pub allow: Vec<IpAddr>,
    /// When it was turned on (Unix seconds).
    pub since: u64,
}

impl Maintenance {
    /// Checks an operator's message: printable text, at most [`MAX_MESSAGE`] bytes.
    pub fn check_message(message: &str) -> Result<(), String> {
        if message.len() > MAX_MESSAGE {
            return Err(format!(
                "message: {} bytes, at most {MAX_MESSAGE}",
                message.len()
            ));
        }
        if message.chars().any(|c| c.is_control()) {
            return Err("message: control characters (newlines, tabs) are not allowed".into());
        }
        Ok(())
    }
}

/// The persisted wanted state, and a watch every loop that cares reads.
#[derive(Debug)]
pub struct MaintenanceStore {
    path: PathBuf,
    wanted: watch::Sender<Option<Maintenance>>,
}

impl MaintenanceStore {
    /// Loads `maintenance.json` from `state_dir` (none: off). A record that cannot be read
    /// is an error naming the file: starting with maintenance off could show clients a half
    /// upgraded app.
    pub fn open(state_dir: &Path) -> Result<MaintenanceStore, String> {
        let path = state_dir.join(RECORD_FILE);
        let wanted = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<Option<Maintenance>>(&text).map_err(|e| {
                format!(
                    "{} is not a maintenance record ({e}): fix or remove it (removing it turns maintenance off)",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        if let Some(m) = &wanted {
            tracing::warn!(
                since = m.since,
                "maintenance mode is on (from {})",
                path.display()
            );
        }
        Ok(MaintenanceStore {
            path,
            wanted: watch::channel(wanted).0,
        })
    }

    pub fn wanted(&self) -> Option<Maintenance> {
        self.wanted.borrow().clone()
    }

    pub fn watch(&self) -> watch::Receiver<Option<Maintenance>> {
        self.wanted.subscribe()
    }

    /// Persists `wanted`, then hands it to the loops.
    pub fn set(&self, wanted: Option<Maintenance>) -> Result<(), String> {
        let text = serde_json::to_string_pretty(&wanted).map_err(|e| e.to_string())?;
        triad_daemon::fs::durable_write(&self.path, &text)
            .map_err(|e| format!("writing {}: {e}", self.path.display()))?;
        match &wanted {
            Some(m) => {
                tracing::warn!(message = %m.message, allow = ?m.allow, "maintenance mode on")
            }
            None => tracing::warn!("maintenance mode off"),
        }
        self.wanted.send_replace(wanted);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wanted_state_survives_a_restart_and_a_bad_record_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = MaintenanceStore::open(dir.path()).unwrap();
        assert_eq!(store.wanted(), None);
        let on = Maintenance {
            message: "Upgrading".into(),
            retry_after_secs: 120,
            allow: vec!["10.0.0.9".parse().unwrap()],
            since: 1,
        };
        let mut watch = store.watch();
        store.set(Some(on.clone())).unwrap();
        assert!(watch.has_changed().unwrap());
        assert_eq!(*watch.borrow_and_update(), Some(on.clone()));
        assert_eq!(
            MaintenanceStore::open(dir.path()).unwrap().wanted(),
            Some(on)
        );
        store.set(None).unwrap();
        assert_eq!(MaintenanceStore::open(dir.path()).unwrap().wanted(), None);
        std::fs::write(dir.path().join(RECORD_FILE), "{").unwrap();
        let error = MaintenanceStore::open(dir.path()).unwrap_err();
        assert!(
            error.contains("maintenance.json is not a maintenance record"),
            "{error}"
        );
    }

    #[test]
    fn a_message_is_one_printable_line() {
        assert!(Maintenance::check_message("Upgrading to 10.13, back at 14:00").is_ok());
        assert!(Maintenance::check_message("two\nlines").is_err());
        assert!(Maintenance::check_message(&"x".repeat(501)).is_err());
    }
}
