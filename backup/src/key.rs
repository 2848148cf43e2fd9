//! The backup key: an age identity file, in the format `age-keygen` writes (comment lines
//! starting with `#`, one `AGE-SECRET-KEY-1...` line). Whoever reads it can read every
//! backup, so a file that group or others may read is refused, as is a file with no identity
//! or with several (which one the backups are encrypted to would be a guess).
//!
//! Making backups needs only the recipient (`age1...`, [`parse_recipient`]); verifying and
//! restoring need the identity.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use age::secrecy::{ExposeSecret, SecretString};
use age::x25519::{Identity, Recipient};

const SECRET_KEY_PREFIX: &str = "AGE-SECRET-KEY-1";

/// Why a key file or a recipient was refused; names the file (never its secret).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "backup key {}: not found (create one with `age-keygen -o FILE`, keep it mode 0600 and a copy off the cluster)",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("backup key {}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "backup key {}: mode {mode:04o} lets group or others read it; `chmod 600` it",
        path.display()
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("backup key {}: no age identity in it (a line AGE-SECRET-KEY-1...)", path.display())]
    NoIdentity { path: PathBuf },
    #[error(
        "backup key {}: {count} identities in it; give a file with exactly one",
        path.display()
    )]
    ManyIdentities { path: PathBuf, count: usize },
    #[error("backup key {}:{line}: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error(
        "backup key {}: already exists; refusing to overwrite a key (the backups made with it need it)",
        path.display()
    )]
    Exists { path: PathBuf },
    #[error("backup key {}: cannot write: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{text:?} is not an age X25519 recipient (age1...): {reason}")]
    Recipient { text: String, reason: &'static str },
}

/// A loaded identity and its recipient.
pub struct BackupKey {
    path: PathBuf,
    identity: Identity,
    recipient: Recipient,
}

impl fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupKey")
            .field("path", &self.path)
            .field("recipient", &self.recipient.to_string())
            .finish_non_exhaustive()
    }
}

impl BackupKey {
    /// Reads the identity file at `path`: mode 0600 or stricter, exactly one X25519
    /// identity, comments and blank lines allowed.
    pub fn load(path: &Path) -> Result<BackupKey, KeyError> {
        let read_error = |source: io::Error| KeyError::Read {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => KeyError::Missing {
                path: path.to_owned(),
            },
            _ => read_error(source),
        })?;
        // The mode of what was opened, not of what the path names a moment later.
        let mode = file.metadata().map_err(read_error)?.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::TooOpen {
                path: path.to_owned(),
                mode,
            });
        }
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(read_error)?;
        let text = SecretString::from(text);
        let identity = parse_identity_file(path, text.expose_secret())?;
        let recipient = identity.to_public();
        Ok(BackupKey {
            path: path.to_owned(),
            identity,
            recipient,
        })
    }

    /// Writes a new identity file at `path` (mode 0600, `age-keygen`'s layout), refusing to
    /// replace an existing file; for tests and `triadctl backup keygen`.
    pub fn generate_file(path: &Path) -> Result<BackupKey, KeyError> {
        let identity = Identity::generate();
        let recipient = identity.to_public();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| i64::try_from(since.as_secs()).unwrap_or(0))
            .unwrap_or(0);
        let created = crate::id::rfc3339(now).unwrap_or_default();
        let secret = identity.to_string();
        let text = SecretString::from(format!(
            "# created: {created}\n# public key: {recipient}\n{}\n",
            secret.expose_secret()
        ));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| match source.kind() {
                io::ErrorKind::AlreadyExists => KeyError::Exists {
                    path: path.to_owned(),
                },
                _ => KeyError::Write {
                    path: path.to_owned(),
                    source,
                },
            })?;
        let written = file
            .write_all(text.expose_secret().as_bytes())
            .and_then(|()| file.sync_all());
        if let Err(source) = written {
            // Leave no half-written key behind to be mistaken for a good one.
            let _ = std::fs::remove_file(path);
            return Err(KeyError::Write {
                path: path.to_owned(),
                source,
            });
        }
        Ok(BackupKey {
            path: path.to_owned(),
            identity,
            recipient,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The public half: what backups are encrypted to.
    pub fn recipient(&self) -> &Recipient {
        &self.recipient
    }

    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }
}

/// Parses an age X25519 recipient (`age1...`), e.g. from the coordinator's config.
pub fn parse_recipient(text: &str) -> Result<Recipient, KeyError> {
    Recipient::from_str(text.trim()).map_err(|reason| KeyError::Recipient {
        text: text.to_owned(),
        reason,
    })
}

fn parse_identity_file(path: &Path, text: &str) -> Result<Identity, KeyError> {
    let invalid = |line: usize, reason: &str| KeyError::Invalid {
        path: path.to_owned(),
        line,
        reason: reason.to_owned(),
    };
    let mut identities = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("AGE-PLUGIN-") {
            return Err(invalid(
                line_number,
                "a plugin identity; Triad needs a native X25519 identity (age-keygen makes one)",
            ));
        }
        if !line.starts_with(SECRET_KEY_PREFIX) {
            return Err(invalid(
                line_number,
                "neither a comment (#...) nor an identity (AGE-SECRET-KEY-1...)",
            ));
        }
        let identity = Identity::from_str(line).map_err(|reason| {
            invalid(
                line_number,
                &format!("not a valid age X25519 identity: {reason}"),
            )
        })?;
        identities.push(identity);
    }
    match identities.len() {
        0 => Err(KeyError::NoIdentity {
            path: path.to_owned(),
        }),
        1 => Ok(identities.remove(0)),
        count => Err(KeyError::ManyIdentities {
            path: path.to_owned(),
            count,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write_with_mode(path: &Path, text: &str, mode: u32) {
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_generated_key_loads_with_the_same_recipient() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup.key");
        let generated = BackupKey::generate_file(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# created: "), "{text}");
        assert!(text.contains(&format!("# public key: {}", generated.recipient())));
        let loaded = BackupKey::load(&path).unwrap();
        assert_eq!(
            loaded.recipient().to_string(),
            generated.recipient().to_string()
        );
        assert!(loaded.recipient().to_string().starts_with("age1"));
        assert!(!format!("{loaded:?}").contains("AGE-SECRET-KEY"));
    }

    #[test]
    fn generating_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup.key");
        fs::write(&path, "precious").unwrap();
        let err = BackupKey::generate_file(&path).unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
    }

    #[test]
    fn a_key_readable_by_others_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup.key");
        let identity = Identity::generate();
        write_with_mode(
            &path,
            &format!("{}\n", identity.to_string().expose_secret()),
            0o644,
        );
        let err = BackupKey::load(&path).unwrap_err();
        assert!(
            matches!(err, KeyError::TooOpen { mode: 0o644, .. }),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(
            message.contains("0644") && message.contains("chmod 600"),
            "{message}"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            BackupKey::load(&path),
            Err(KeyError::TooOpen { mode: 0o640, .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        BackupKey::load(&path).unwrap();
    }

    #[test]
    fn missing_empty_several_and_malformed_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup.key");
        let err = BackupKey::load(&path).unwrap_err();
        assert!(matches!(err, KeyError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("backup.key"));

        write_with_mode(&path, "# only a comment\n\n", 0o600);
        assert!(matches!(
            BackupKey::load(&path),
            Err(KeyError::NoIdentity { .. })
        ));

        let one = Identity::generate().to_string();
        let two = Identity::generate().to_string();
        write_with_mode(
            &path,
            &format!(
                "{}\n# another\n{}\n",
                one.expose_secret(),
                two.expose_secret()
            ),
            0o600,
        );
        assert!(matches!(
            BackupKey::load(&path),
            Err(KeyError::ManyIdentities { count: 2, .. })
        ));

        write_with_mode(&path, "# key\nAGE-SECRET-KEY-1NOTBECH32\n", 0o600);
        let err = BackupKey::load(&path).unwrap_err();
        assert!(matches!(err, KeyError::Invalid { line: 2, .. }), "{err}");
        assert!(
            !err.to_string().contains("NOTBECH32"),
            "no secret in messages"
        );

        write_with_mode(&path, "hello\n", 0o600);
        assert!(matches!(
            BackupKey::load(&path),
            Err(KeyError::Invalid { line: 1, .. })
        ));
    }

    #[test]
    fn recipients_parse_or_are_refused_by_name() {
        let recipient = Identity::generate().to_public().to_string();
        assert_eq!(parse_recipient(&recipient).unwrap().to_string(), recipient);
        let err = parse_recipient("age1xyz").unwrap_err().to_string();
        assert!(err.contains("\"age1xyz\""), "{err}");
    }
}
