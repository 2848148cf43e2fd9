//! Where backups are stored: the [`Target`] and [`Upload`] traits, the only way the rest of
//! the crate (and the coordinator) touches storage. The directory target is [`DirTarget`];
//! an object store can follow behind the same traits.
//!
//! What every target guarantees: a backup becomes visible to [`Target::list`] only when
//! [`Upload::commit`] has succeeded, all at once; an upload dropped or aborted leaves
//! nothing listed; everything written is durable before it is reported done.
//!
//! [`DirTarget`]: crate::dir::DirTarget

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use crate::error::Error;
use crate::id::BackupId;
use crate::manifest::{parse_part_file, Manifest};

/// A place backups are stored. Synchronous and blocking: call it from a blocking thread.
pub trait Target: Send + Sync {
    /// For logs and messages: `dir /var/backups/triad`.
    fn describe(&self) -> String;

    /// Starts writing backup `id`; refused if it exists or is being written.
    fn begin(&self, id: BackupId) -> Result<Box<dyn Upload>, Error>;

    /// Every complete backup, oldest first. A backup that is there but broken (its manifest
    /// unreadable, invalid, or of another id) is listed with its error rather than left out,
    /// so that it is reported and not silently lost from sight; backups being written are
    /// not listed. Only an error reading the target itself fails the whole call.
    fn list(&self) -> Result<Vec<Listed>, Error>;

    /// Backup `id`'s manifest, checked for consistency (not for the cluster: see
    /// [`Manifest::check`]).
    fn manifest(&self, id: BackupId) -> Result<Manifest, Error>;

    /// Reads part `file` (a name like `database.00000`) of backup `id`.
    fn open_part(&self, id: BackupId, file: &str) -> Result<Box<dyn Read + Send>, Error>;

    /// Deletes backup `id`: first it stops being listed, then its files go.
    fn delete(&self, id: BackupId) -> Result<(), Error>;

    /// Removes what crashed runs left half-written; returns what it removed. Call it when no
    /// upload is under way (the coordinator's start).
    fn sweep_partial(&self) -> Result<Vec<String>, Error>;
}

/// One backup found by [`Target::list`].
#[derive(Debug)]
pub struct Listed {
    pub id: BackupId,
    /// Its manifest, or why it cannot be used.
    pub manifest: Result<Manifest, Error>,
}

/// A backup being written. Parts first, then [`Upload::commit`] with the manifest that
/// names them; dropped without a commit, it leaves nothing listed.
pub trait Upload: Send {
    /// The backup being written.
    fn id(&self) -> BackupId;

    /// Stores part `file` (`database.00000`, ...), durably; writing the same part again
    /// replaces it (so a failed put can be retried).
    fn put_part(&mut self, file: &str, bytes: &[u8]) -> Result<(), Error>;

    /// Stores `manifest` and makes the backup complete and listed, atomically. Refused if the
    /// manifest is not of this backup, is inconsistent, or names other parts (or other sizes)
    /// than were put.
    fn commit(self: Box<Self>, manifest: &Manifest) -> Result<(), Error>;

    /// Removes everything written so far.
    fn abort(self: Box<Self>) -> Result<(), Error>;
}

/// Refuses a part name other than `{stream}.{seq:05}`, so that no name given to a target
/// can reach outside a backup's directory or over its manifest.
pub fn check_part_file(file: &str) -> Result<(), Error> {
    match parse_part_file(file) {
        Some(_) => Ok(()),
        None => Err(Error::PartName {
            file: file.to_owned(),
        }),
    }
}

/// Refuses a manifest that would describe something other than what an upload wrote:
/// another backup, an inconsistent one, a part never put or put with another size, or a
/// part put that it does not name. Every target's `commit` runs it first.
pub fn check_commit(
    id: BackupId,
    written: &BTreeMap<String, u64>,
    manifest: &Manifest,
) -> Result<(), Error> {
    let mismatch = |detail: String| Error::CommitMismatch { id, detail };
    if manifest.id != id {
        return Err(mismatch(format!(
            "the manifest is of backup {}",
            manifest.id
        )));
    }
    manifest
        .check_structure()
        .map_err(|source| Error::Manifest { id, source })?;
    let mut named = BTreeSet::new();
    for part in manifest.streams.iter().flat_map(|stream| &stream.parts) {
        match written.get(&part.file) {
            None => return Err(mismatch(format!("part {} was never put", part.file))),
            Some(&bytes) if bytes != part.bytes => {
                return Err(mismatch(format!(
                    "part {} was put with {bytes} bytes, the manifest says {}",
                    part.file, part.bytes
                )));
            }
            Some(_) => {
                named.insert(part.file.as_str());
            }
        }
    }
    if let Some(extra) = written.keys().find(|file| !named.contains(file.as_str())) {
        return Err(mismatch(format!(
            "part {extra} was put but the manifest does not name it"
        )));
    }
    Ok(())
}
