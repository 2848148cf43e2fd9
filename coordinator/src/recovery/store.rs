//! The coordinator's persisted Galera state: the last epoch used, the decision in flight,
//! and the members of the last Primary view. Written atomically (temp file, fsync, rename,
//! fsync of the directory) before any action that depends on it, so a coordinator that
//! restarts resumes the same decision and never issues a second bootstrap for an epoch.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// The decision is persisted; the bootstrap call may or may not have been made.
    Bootstrapping,
    /// The chosen node is Primary; the others are being joined.
    Joining,
}

impl Phase {
    /// The word for the status and /metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Bootstrapping => "bootstrapping",
            Phase::Joining => "joining",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub epoch: u64,
    pub node: String,
    pub uuid: String,
    pub seqno: i64,
    pub formation: bool,
    /// Named by an operator (`triadctl recover --bootstrap`).
    pub operator: bool,
    pub phase: Phase,
    /// The members the decision was made for (the election's): it is finished once they
    /// are all Synced in one Primary component. Empty in records written before it existed
    /// (then every core member counts).
    #[serde(default)]
    pub members: Vec<String>,
    /// When the decision was persisted (seconds since the Unix epoch; 0 if unknown).
    #[serde(default)]
    pub decided_at: u64,
    /// A Primary component was seen after the decision: the bootstrap has done its part, so
    /// losing that component again is a new outage, not this decision's to resume.
    #[serde(default)]
    pub primary_seen: bool,
}

/// How an earlier decision ended, kept for the status and the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    pub epoch: u64,
    pub node: String,
    /// Seconds since the Unix epoch.
    pub closed_at: u64,
    pub how: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaleraRecord {
    pub last_epoch: u64,
    pub decision: Option<Decision>,
    /// Node ids of the last Primary component seen (all Synced).
    pub last_primary_view: Vec<String>,
    /// The last decision that was closed, and how.
    #[serde(default)]
    pub last_closed: Option<Closed>,
}

/// Seconds since the Unix epoch, for the persisted times.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Debug, thiserror::Error)]
#[error("coordinator state {path}: {detail}")]
pub struct StoreError {
    pub path: PathBuf,
    pub detail: String,
}

/// The store's file in the state directory.
pub const FILE: &str = "galera.json";

#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(state_dir: &Path) -> Store {
        Store {
            path: state_dir.join(FILE),
        }
    }

    fn error(&self, detail: impl ToString) -> StoreError {
        StoreError {
            path: self.path.clone(),
            detail: detail.to_string(),
        }
    }

    pub fn load(&self) -> Result<GaleraRecord, StoreError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| self.error(format!("unreadable ({e}); fix or remove it"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(GaleraRecord::default()),
            Err(e) => Err(self.error(e)),
        }
    }

    pub fn save(&self, record: &GaleraRecord) -> Result<(), StoreError> {
        let text = serde_json::to_string_pretty(record).map_err(|e| self.error(e))?;
        triad_daemon::fs::durable_write(&self.path, &text).map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_survives_a_reload_and_a_corrupt_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.load().unwrap(), GaleraRecord::default());
        let record = GaleraRecord {
            last_epoch: 3,
            decision: Some(Decision {
                epoch: 3,
                node: "n2".into(),
                uuid: "u".into(),
                seqno: 9,
                formation: false,
                operator: false,
                phase: Phase::Bootstrapping,
                members: vec!["n1".into(), "n2".into()],
                decided_at: 1_700_000_000,
                primary_seen: false,
            }),
            last_primary_view: vec!["n1".into(), "n2".into()],
            last_closed: None,
        };
        store.save(&record).unwrap();
        assert_eq!(Store::new(dir.path()).load().unwrap(), record);
        std::fs::write(dir.path().join("galera.json"), "{").unwrap();
        let error = store.load().unwrap_err().to_string();
        assert!(
            error.contains("galera.json") && error.contains("unreadable"),
            "{error}"
        );
    }

    #[test]
    fn a_record_of_an_earlier_version_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("galera.json"),
            r#"{"last_epoch":4,"decision":{"epoch":4,"node":"n1","uuid":"u","seqno":7,
               "formation":false,"operator":false,"phase":"Joining"},
               "last_primary_view":["n1","n2","n3"]}"#,
        )
        .unwrap();
        let record = Store::new(dir.path()).load().unwrap();
        let decision = record.decision.unwrap();
        assert!(decision.members.is_empty() && !decision.primary_seen);
        assert_eq!(record.last_closed, None);
    }
}
