//! triad-backup: how a backup of the cluster is stored, read back and verified (issue 19).
//!
//! The coordinator receives two plaintext byte streams from one node over gRPC, `database`
//! (mariadb-backup's xbstream output) and `files` (a tar of the web docroot), and stores them
//! at a target through a [`Sealer`] each, then commits a [`Manifest`]. Everything here is
//! synchronous `std::io`: the coordinator runs it on a blocking thread.
//!
//! # Format, version 1
//!
//! A backup is one directory at the target, named by its id: the UTC second it started,
//! `YYYYMMDDTHHMMSSZ` (so ids sort by time).
//!
//! ```text
//! <root>/20261206T083700Z/
//!     database.00000 database.00001 ...   the database stream, in parts
//!     files.00000 ...                     the files stream, in parts
//!     manifest.json                       written last: it is what makes a backup complete
//! ```
//!
//! Each stream is: plaintext → zstd (level 3) → age (the age-encryption.org/v1 format, to
//! one X25519 recipient `age1...`) → that ciphertext cut into parts of at most `part_size`
//! bytes (64 MiB by default), named `{stream}.{seq:05}` (at most 100 000 parts). A stream's
//! parts concatenated in order are one age file; even an empty stream has one part (the age
//! header).
//!
//! `manifest.json` (JSON, [`Manifest`]) records the format version, the id, the cluster, when
//! the backup started and finished, the Triad version, the node the data was read from, the
//! Galera position, the recipient, and per stream its plaintext's length and SHA-256 and
//! every part's name, length and SHA-256.
//!
//! While being written a backup is `<root>/<id>.partial/`. Commit: write `manifest.json`
//! (fsync it), fsync the directory, rename it to `<root>/<id>`, fsync the root. So a backup
//! is either complete or not listed at all; a `.partial` directory is never listed, and one
//! left by a crashed run is removed by [`Target::sweep_partial`] (the coordinator's start).
//!
//! Making a backup needs only the recipient (the public key); verifying and restoring need
//! the identity file (the secret key, [`BackupKey`]): keep a copy of it off the cluster.
//!
//! # Restoring by hand
//!
//! With the identity file of the manifest's `encryption.recipient` (`age-keygen`'s format):
//!
//! ```text
//! cd <root>/<id>
//! sha256sum database.* files.*      # compare with the parts in manifest.json
//! cat database.* | age -d -i KEYFILE | zstd -d | mbstream -x -C DIR
//! cat files.* | age -d -i KEYFILE | zstd -d | tar -x -C DIR
//! ```
//!
//! (the shell sorts the five-digit part names in order), then `mariadb-backup --prepare
//! --target-dir=DIR` on the database before it is used. age authenticates every 64 KiB of
//! its stream, so damaged or reordered parts make `age -d` fail rather than yield wrong data.
//!
//! # Modules
//!
//! `id` (backup ids), `manifest` (the manifest and its checks), `key` (the identity file),
//! `seal` (plaintext in, parts out), `open` (parts in, checked plaintext out; `verify`),
//! `target` (the `Target` and `Upload` traits) with `dir` (the directory target), `retry`
//! (a put retried a few times), `retention` (which backups a policy deletes, pure).

#![forbid(unsafe_code)]

pub mod dir;
pub mod error;
pub mod id;
pub mod key;
pub mod manifest;
pub mod object;
pub mod open;
pub mod retention;
pub mod retry;
pub mod seal;
pub mod target;

#[cfg(test)]
mod tests;

pub use age::x25519::Recipient;
pub use dir::DirTarget;
pub use error::Error;
pub use id::{BackupId, IdError};
pub use key::{parse_recipient, BackupKey, KeyError};
pub use manifest::{
    Encryption, GaleraPoint, Manifest, ManifestError, PartEntry, StreamEntry, StreamFormat,
    StreamKind,
};
pub use open::{read_stream, verify, verify_with_progress};
pub use retention::Policy;
pub use retry::{retry, Retry};
pub use seal::{SealOptions, Sealer};
pub use target::{Listed, Target, Upload};
