//! One error type for the whole harness. Every variant names what was at fault (node, command
//! line, path, awaited condition) so a failed CI run can be understood from the message alone.

use std::path::PathBuf;
use std::time::Duration;

/// Errors of the lab harness.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The host cannot run nspawn nodes (not root, no overlayfs, no /dev/fuse, ...).
    #[error("host cannot run the Triad lab: {0}")]
    Host(String),
    /// A command ran and exited unsuccessfully.
    #[error("command `{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The full command line.
        cmd: String,
        /// Exit status as text (code or signal).
        status: String,
        /// Trimmed standard error (or standard output if stderr was empty).
        stderr: String,
    },
    /// A command could not be started at all.
    #[error("could not run `{cmd}`: {source}")]
    Spawn {
        /// The full command line.
        cmd: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A command did not finish within its time limit (it was killed).
    #[error("command `{cmd}` did not finish within {limit:?}")]
    CommandTimeout {
        /// The full command line.
        cmd: String,
        /// The limit that was exceeded.
        limit: Duration,
    },
    /// A file-system operation on a path failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted (e.g. "write", "mkdir").
        op: &'static str,
        /// The path at fault.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A bounded wait expired.
    #[error("timed out after {waited:.1?} waiting for {what}; last observed: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it was awaited.
        waited: Duration,
        /// The last observed value of the condition.
        last: String,
    },
    /// A node-level problem that is not a single failed command.
    #[error("node {node}: {msg}")]
    Node {
        /// The node's name (n1, n2, ...).
        node: String,
        /// What went wrong.
        msg: String,
    },
    /// Anything else, with a message saying what.
    #[error("{0}")]
    Other(String),
}

/// Result alias for the harness.
pub type Result<T, E = LabError> = std::result::Result<T, E>;

/// Shorthand for building an [`LabError::Io`] from a `std::io::Result`.
pub(crate) trait IoContext<T> {
    fn io(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| LabError::Io {
            op,
            path: path.into(),
            source,
        })
    }
}
