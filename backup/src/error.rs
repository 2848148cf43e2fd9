//! The crate's error: every message names the backup, the stream, the part or the path at
//! fault, and what to do where there is something to do.

use std::io;
use std::path::PathBuf;

use crate::id::{BackupId, IdError};
use crate::key::KeyError;
use crate::manifest::{ManifestError, StreamKind};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Id(#[from] IdError),

    // The target.
    /// A file system operation at a target failed; `action` says which ("create", "fsync").
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("backup {id} already exists at {target}")]
    Exists { target: String, id: BackupId },
    #[error(
        "{}: already there: a backup with this id is being written, or a crashed run left it (the coordinator removes those when it starts)",
        path.display()
    )]
    InProgress { path: PathBuf },
    #[error("no backup {id} at {target}")]
    NotFound { target: String, id: BackupId },
    #[error("{}: {source}", path.display())]
    ManifestUnreadable {
        path: PathBuf,
        source: ManifestError,
    },
    #[error("{}: the manifest is of backup {found}, not of the directory's {id}", path.display())]
    ManifestIdMismatch {
        path: PathBuf,
        id: BackupId,
        found: BackupId,
    },
    #[error("backup {id}: manifest.json: {source}")]
    Manifest { id: BackupId, source: ManifestError },
    /// A call to a remote target (an object store) failed; `what` says which.
    #[error("{target}: {what}: {message}")]
    Remote {
        target: String,
        what: String,
        message: String,
    },
    #[error("{file:?} is not a part's file name (database.00000, files.00012, ...)")]
    PartName { file: String },
    #[error("backup {id}: not committed: the manifest does not match the parts written: {detail}")]
    CommitMismatch { id: BackupId, detail: String },

    // Sealing.
    #[error(
        "a part size of 0 bytes cannot hold anything; give at least 1 (64 MiB is the default)"
    )]
    PartSize,
    #[error("stream {stream}: more than 100000 parts of {part_size} bytes; use larger parts")]
    TooManyParts {
        stream: StreamKind,
        part_size: usize,
    },
    #[error("backup {id}: storing part {file} failed {attempts} times, giving up: {source}")]
    PutPart {
        id: BackupId,
        file: String,
        attempts: u32,
        source: Box<Error>,
    },
    #[error("stream {stream}: setting up age encryption: {source}")]
    Encrypt {
        stream: StreamKind,
        source: age::EncryptError,
    },
    #[error("stream {stream}: compressing or encrypting: {source}")]
    Seal {
        stream: StreamKind,
        source: io::Error,
    },
    #[error("stream {stream}: an earlier write failed; this stream cannot be finished")]
    SealFailed { stream: StreamKind },

    // Reading back.
    #[error(
        "backup {id}: stream {stream} is encrypted to {manifest_recipient}, but the key {} is {key_recipient}: give the identity file of {manifest_recipient}",
        key_path.display()
    )]
    WrongKey {
        id: BackupId,
        stream: StreamKind,
        key_path: PathBuf,
        key_recipient: String,
        manifest_recipient: String,
    },
    #[error(
        "backup {id}: stream {stream} does not open with the key {key_recipient}, although the manifest names it: the stream was encrypted to another key"
    )]
    KeyDoesNotOpen {
        id: BackupId,
        stream: StreamKind,
        key_recipient: String,
    },
    #[error("backup {id}: part {file} cannot be opened: {source}")]
    PartUnreadable {
        id: BackupId,
        file: String,
        source: Box<Error>,
    },
    #[error("backup {id}: reading part {file}: {source}")]
    PartRead {
        id: BackupId,
        file: String,
        source: io::Error,
    },
    #[error(
        "backup {id}: part {file} is {found} bytes, the manifest says {expected}: it is truncated"
    )]
    PartTruncated {
        id: BackupId,
        file: String,
        expected: u64,
        found: u64,
    },
    #[error("backup {id}: part {file} is longer than the {expected} bytes the manifest says")]
    PartTooLong {
        id: BackupId,
        file: String,
        expected: u64,
    },
    #[error(
        "backup {id}: part {file} is corrupted: its SHA-256 is {found}, the manifest says {expected}"
    )]
    PartCorrupt {
        id: BackupId,
        file: String,
        expected: String,
        found: String,
    },
    #[error("backup {id}: stream {stream}: decrypting: {source}")]
    Decrypt {
        id: BackupId,
        stream: StreamKind,
        source: age::DecryptError,
    },
    #[error("backup {id}: stream {stream}: decrypting or decompressing: {source}")]
    Decode {
        id: BackupId,
        stream: StreamKind,
        source: io::Error,
    },
    #[error("backup {id}: stream {stream}: writing the data read back: {source}")]
    Output {
        id: BackupId,
        stream: StreamKind,
        source: io::Error,
    },
    #[error(
        "backup {id}: stream {stream}: the data read back has {what} {found}, the manifest says {expected}"
    )]
    PlainMismatch {
        id: BackupId,
        stream: StreamKind,
        what: &'static str,
        expected: String,
        found: String,
    },
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_can_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Error>();
    }
}
