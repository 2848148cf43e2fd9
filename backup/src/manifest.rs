//! `manifest.json`: what a backup holds and how to check it, written last into a backup's
//! directory (its presence is what makes the backup complete). Readers check it before
//! trusting anything it names: the format version first (a newer layout is refused by name,
//! not misread), then the cluster, then its own consistency (the streams, the part names in
//! order, the sizes, the hashes' shape).
//!
//! Unknown fields are accepted: a later Triad may add information without a new format
//! version; a change that older readers would misread bumps [`FORMAT_VERSION`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::BackupId;
use crate::key::parse_recipient;

/// The manifest's file name in a backup's directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// `encryption.algorithm`: age, to one X25519 recipient.
pub const ENCRYPTION_ALGORITHM: &str = "age-x25519";
/// `compression`.
pub const COMPRESSION: &str = "zstd";
/// Part names carry five digits: `database.00000` to `database.99999`.
pub const MAX_PARTS: usize = 100_000;

/// A backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    pub id: BackupId,
    /// The `[cluster]` name of the cluster backed up; restoring into another is refused.
    pub cluster: String,
    pub created_unix_ms: u64,
    pub finished_unix_ms: u64,
    /// The version of the coordinator that made it.
    pub triad_version: String,
    /// The node the data was read from.
    pub node: String,
    /// Where in the cluster's write history the database copy stands, when the donor knew.
    pub galera: Option<GaleraPoint>,
    pub encryption: Encryption,
    /// [`COMPRESSION`].
    pub compression: String,
    pub streams: Vec<StreamEntry>,
}

/// A Galera position: the cluster state's uuid and the last transaction's seqno.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaleraPoint {
    pub uuid: String,
    pub seqno: i64,
    pub gtid: Option<String>,
}

/// How the streams are encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// [`ENCRYPTION_ALGORITHM`].
    pub algorithm: String,
    /// The age recipient (`age1...`) the streams are encrypted to.
    pub recipient: String,
}

impl Encryption {
    /// age to `recipient`.
    pub fn age_x25519(recipient: &age::x25519::Recipient) -> Encryption {
        Encryption {
            algorithm: ENCRYPTION_ALGORITHM.to_owned(),
            recipient: recipient.to_string(),
        }
    }
}

/// One stored stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEntry {
    pub name: StreamKind,
    pub format: StreamFormat,
    /// The plaintext's length and SHA-256 (lowercase hex), checked when read back.
    pub plain_bytes: u64,
    pub plain_sha256: String,
    /// The sum of the parts' lengths.
    pub stored_bytes: u64,
    /// In order: concatenated, one age file.
    pub parts: Vec<PartEntry>,
}

/// One part file of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartEntry {
    /// `{stream}.{seq:05}`.
    pub file: String,
    pub bytes: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// The streams of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// mariadb-backup's output.
    Database,
    /// The web docroot.
    Files,
}

/// What a stream's plaintext is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamFormat {
    /// `mbstream -x` unpacks it.
    Xbstream,
    /// `tar -x` unpacks it.
    Tar,
}

impl StreamKind {
    /// Every stream a backup holds, in the order they are written.
    pub const ALL: [StreamKind; 2] = [StreamKind::Database, StreamKind::Files];

    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Database => "database",
            StreamKind::Files => "files",
        }
    }

    pub fn format(self) -> StreamFormat {
        match self {
            StreamKind::Database => StreamFormat::Xbstream,
            StreamKind::Files => StreamFormat::Tar,
        }
    }

    /// The file name of part `seq`: `database.00003`.
    pub fn part_file(self, seq: usize) -> String {
        format!("{}.{seq:05}", self.name())
    }
}

impl std::str::FromStr for StreamKind {
    type Err = String;

    fn from_str(name: &str) -> Result<StreamKind, String> {
        StreamKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| format!("{name:?} is not a stream (database or files)"))
    }
}

impl PartialEq<str> for StreamKind {
    fn eq(&self, name: &str) -> bool {
        self.name() == name
    }
}

impl PartialEq<&str> for StreamKind {
    fn eq(&self, name: &&str) -> bool {
        self.name() == *name
    }
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for StreamFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamFormat::Xbstream => "xbstream",
            StreamFormat::Tar => "tar",
        })
    }
}

/// The stream and sequence number a part file name stands for; `None` for any other name
/// (which is how a target refuses names that could leave the backup's directory).
pub fn parse_part_file(file: &str) -> Option<(StreamKind, usize)> {
    let (stream, seq) = file.split_once('.')?;
    let stream: StreamKind = stream.parse().ok()?;
    if seq.len() != 5 || !seq.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some((stream, seq.parse().ok()?))
}

/// What is wrong with a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("not a Triad backup manifest: {source}")]
    Parse { source: serde_json::Error },
    #[error(
        "format {found} is not one this Triad reads (it reads format {FORMAT_VERSION}); use the Triad version that made it or a newer one"
    )]
    UnsupportedFormat { found: u32 },
    #[error("made by cluster {found:?}, not by this cluster {expected:?}: refusing another cluster's backup")]
    OtherCluster { found: String, expected: String },
    #[error("encryption.algorithm {found:?} is not {ENCRYPTION_ALGORITHM:?}")]
    Encryption { found: String },
    #[error("encryption.recipient: {reason}")]
    Recipient { reason: String },
    #[error("compression {found:?} is not {COMPRESSION:?}")]
    Compression { found: String },
    #[error("stream {stream} is listed twice")]
    DuplicateStream { stream: StreamKind },
    #[error("stream {stream} is missing")]
    MissingStream { stream: StreamKind },
    #[error("stream {stream} has format {found}; it must be {}", stream.format())]
    StreamFormat {
        stream: StreamKind,
        found: StreamFormat,
    },
    #[error("stream {stream} has no parts (even an empty stream has one, with the age header)")]
    NoParts { stream: StreamKind },
    #[error("stream {stream} has {count} parts; part names allow at most {MAX_PARTS}")]
    TooManyParts { stream: StreamKind, count: usize },
    #[error("stream {stream}: part {index} is named {found:?}; it must be {expected:?}")]
    PartName {
        stream: StreamKind,
        index: usize,
        found: String,
        expected: String,
    },
    #[error("stream {stream}: part {file} has 0 bytes")]
    EmptyPart { stream: StreamKind, file: String },
    #[error("stream {stream}: stored_bytes is {stored}, but its parts add up to {sum}")]
    StoredBytes {
        stream: StreamKind,
        stored: u64,
        sum: u64,
    },
    #[error("{field} {found:?} is not a SHA-256 (64 lowercase hexadecimal digits)")]
    Sha256 { field: String, found: String },
    #[error("finished_unix_ms {finished} is before created_unix_ms {created}")]
    Times { created: u64, finished: u64 },
}

impl Manifest {
    /// Pretty JSON with a final newline, as written to `manifest.json`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self)
            .expect("a manifest has string keys and plain values, so it always serialises");
        json.push(b'\n');
        json
    }

    /// Parses `manifest.json`. The format version is read first, so a manifest of a newer
    /// format is refused as such rather than as malformed JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            format: u32,
        }
        let version: VersionOnly =
            serde_json::from_slice(bytes).map_err(|source| ManifestError::Parse { source })?;
        if version.format != FORMAT_VERSION {
            return Err(ManifestError::UnsupportedFormat {
                found: version.format,
            });
        }
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Parse { source })
    }

    /// Everything [`Manifest::check_structure`] checks, and that the backup is of `cluster`.
    pub fn check(&self, cluster: &str) -> Result<(), ManifestError> {
        self.check_format()?;
        if self.cluster != cluster {
            return Err(ManifestError::OtherCluster {
                found: self.cluster.clone(),
                expected: cluster.to_owned(),
            });
        }
        self.check_structure()
    }

    /// The manifest's own consistency, whatever cluster it is of: the format, the
    /// encryption and compression, both streams once each with their format, part names
    /// `{stream}.{seq:05}` in order from 0, no empty part, the sizes adding up, the hashes'
    /// shape, the times in order.
    pub fn check_structure(&self) -> Result<(), ManifestError> {
        self.check_format()?;
        if self.encryption.algorithm != ENCRYPTION_ALGORITHM {
            return Err(ManifestError::Encryption {
                found: self.encryption.algorithm.clone(),
            });
        }
        parse_recipient(&self.encryption.recipient).map_err(|err| ManifestError::Recipient {
            reason: err.to_string(),
        })?;
        if self.compression != COMPRESSION {
            return Err(ManifestError::Compression {
                found: self.compression.clone(),
            });
        }
        if self.finished_unix_ms < self.created_unix_ms {
            return Err(ManifestError::Times {
                created: self.created_unix_ms,
                finished: self.finished_unix_ms,
            });
        }
        for (index, entry) in self.streams.iter().enumerate() {
            if self.streams[..index]
                .iter()
                .any(|earlier| earlier.name == entry.name)
            {
                return Err(ManifestError::DuplicateStream { stream: entry.name });
            }
            entry.check()?;
        }
        if let Some(stream) = StreamKind::ALL
            .into_iter()
            .find(|kind| self.stream(*kind).is_none())
        {
            return Err(ManifestError::MissingStream { stream });
        }
        Ok(())
    }

    /// The entry of `stream`, if the manifest has one.
    pub fn stream(&self, stream: StreamKind) -> Option<&StreamEntry> {
        self.streams.iter().find(|entry| entry.name == stream)
    }

    /// The bytes the backup takes at its target (without the manifest).
    pub fn stored_bytes(&self) -> u64 {
        self.streams.iter().map(|entry| entry.stored_bytes).sum()
    }

    fn check_format(&self) -> Result<(), ManifestError> {
        if self.format == FORMAT_VERSION {
            Ok(())
        } else {
            Err(ManifestError::UnsupportedFormat { found: self.format })
        }
    }
}

impl StreamEntry {
    fn check(&self) -> Result<(), ManifestError> {
        let stream = self.name;
        if self.format != stream.format() {
            return Err(ManifestError::StreamFormat {
                stream,
                found: self.format,
            });
        }
        check_sha256(
            &format!("stream {stream}: plain_sha256"),
            &self.plain_sha256,
        )?;
        if self.parts.is_empty() {
            return Err(ManifestError::NoParts { stream });
        }
        if self.parts.len() > MAX_PARTS {
            return Err(ManifestError::TooManyParts {
                stream,
                count: self.parts.len(),
            });
        }
        let mut sum: u64 = 0;
        for (index, part) in self.parts.iter().enumerate() {
            let expected = stream.part_file(index);
            if part.file != expected {
                return Err(ManifestError::PartName {
                    stream,
                    index,
                    found: part.file.clone(),
                    expected,
                });
            }
            if part.bytes == 0 {
                return Err(ManifestError::EmptyPart {
                    stream,
                    file: part.file.clone(),
                });
            }
            check_sha256(&format!("part {}: sha256", part.file), &part.sha256)?;
            sum = sum.saturating_add(part.bytes);
        }
        if sum != self.stored_bytes {
            return Err(ManifestError::StoredBytes {
                stream,
                stored: self.stored_bytes,
                sum,
            });
        }
        Ok(())
    }
}

fn check_sha256(field: &str, value: &str) -> Result<(), ManifestError> {
    let ok = value.len() == 64
        && value
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
    if ok {
        Ok(())
    } else {
        Err(ManifestError::Sha256 {
            field: field.to_owned(),
            found: value.to_owned(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    /// A valid manifest of cluster "prod" with two parts per stream.
    pub(crate) fn sample() -> Manifest {
        let recipient = age::x25519::Identity::generate().to_public();
        let stream = |kind: StreamKind| StreamEntry {
            name: kind,
            format: kind.format(),
            plain_bytes: 10,
            plain_sha256: SHA_A.to_owned(),
            stored_bytes: 300,
            parts: vec![
                PartEntry {
                    file: kind.part_file(0),
                    bytes: 200,
                    sha256: SHA_A.to_owned(),
                },
                PartEntry {
                    file: kind.part_file(1),
                    bytes: 100,
                    sha256: SHA_A.to_owned(),
                },
            ],
        };
        Manifest {
            format: FORMAT_VERSION,
            id: "20261206T083700Z".parse().unwrap(),
            cluster: "prod".to_owned(),
            created_unix_ms: 1_796_546_220_000,
            finished_unix_ms: 1_796_546_280_000,
            triad_version: "0.1.0".to_owned(),
            node: "node-1".to_owned(),
            galera: Some(GaleraPoint {
                uuid: "6a2f3b1c-0000-11ef-8000-000000000001".to_owned(),
                seqno: 1234,
                gtid: Some("0-1-1234".to_owned()),
            }),
            encryption: Encryption::age_x25519(&recipient),
            compression: COMPRESSION.to_owned(),
            streams: vec![stream(StreamKind::Database), stream(StreamKind::Files)],
        }
    }

    #[test]
    fn a_sample_round_trips_through_json_and_passes() {
        let manifest = sample();
        manifest.check("prod").unwrap();
        let json = manifest.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains("\"name\": \"database\""));
        assert!(text.contains("\"format\": \"xbstream\""));
        assert!(text.contains("\"id\": \"20261206T083700Z\""));
        assert_eq!(Manifest::from_json(&json).unwrap(), manifest);
        assert_eq!(manifest.stored_bytes(), 600);
    }

    #[test]
    fn another_clusters_manifest_is_refused_naming_both() {
        let message = sample().check("staging").unwrap_err().to_string();
        assert!(
            message.contains("\"prod\"") && message.contains("\"staging\""),
            "{message}"
        );
    }

    #[test]
    fn a_newer_format_is_refused_as_such() {
        let json = br#"{"format": 2, "id": 7, "anything": ["else"]}"#;
        assert!(matches!(
            Manifest::from_json(json),
            Err(ManifestError::UnsupportedFormat { found: 2 })
        ));
        assert!(matches!(
            Manifest::from_json(b"{\"format\": 1}"),
            Err(ManifestError::Parse { .. })
        ));
        let mut manifest = sample();
        manifest.format = 7;
        assert!(matches!(
            manifest.check("prod"),
            Err(ManifestError::UnsupportedFormat { found: 7 })
        ));
    }

    #[test]
    fn unknown_fields_are_accepted() {
        let mut value: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        value["added_later"] = serde_json::json!({"x": 1});
        let json = serde_json::to_vec(&value).unwrap();
        Manifest::from_json(&json).unwrap().check("prod").unwrap();
    }

    #[test]
    fn inconsistencies_are_named() {
        type Break = fn(&mut Manifest);
        let cases: &[(&str, Break, &str)] = &[
            (
                "algorithm",
                |m| m.encryption.algorithm = "gpg".into(),
                "encryption.algorithm",
            ),
            (
                "recipient",
                |m| m.encryption.recipient = "age1nope".into(),
                "encryption.recipient",
            ),
            (
                "compression",
                |m| m.compression = "gzip".into(),
                "compression",
            ),
            (
                "times",
                |m| m.finished_unix_ms = 0,
                "before created_unix_ms",
            ),
            (
                "duplicate",
                |m| m.streams[1] = m.streams[0].clone(),
                "database is listed twice",
            ),
            (
                "missing",
                |m| {
                    m.streams.pop();
                },
                "files is missing",
            ),
            (
                "format",
                |m| m.streams[0].format = StreamFormat::Tar,
                "database has format tar",
            ),
            ("no parts", |m| m.streams[0].parts.clear(), "no parts"),
            (
                "order",
                |m| m.streams[0].parts.swap(0, 1),
                "part 0 is named \"database.00001\"; it must be \"database.00000\"",
            ),
            (
                "traversal",
                |m| m.streams[1].parts[1].file = "../../etc/passwd".into(),
                "\"../../etc/passwd\"",
            ),
            (
                "empty part",
                |m| m.streams[1].parts[1].bytes = 0,
                "files.00001 has 0 bytes",
            ),
            ("sum", |m| m.streams[0].stored_bytes = 1, "add up to 300"),
            (
                "sha",
                |m| m.streams[0].parts[0].sha256 = "AB".into(),
                "part database.00000: sha256",
            ),
            (
                "plain sha",
                |m| m.streams[1].plain_sha256 = SHA_A.to_uppercase(),
                "plain_sha256",
            ),
        ];
        for (name, break_it, expected) in cases {
            let mut manifest = sample();
            break_it(&mut manifest);
            let message = manifest.check("prod").unwrap_err().to_string();
            assert!(message.contains(expected), "{name}: {message}");
        }
    }

    #[test]
    fn part_file_names() {
        assert_eq!(StreamKind::Database.part_file(3), "database.00003");
        assert_eq!("files".parse::<StreamKind>(), Ok(StreamKind::Files));
        assert!(StreamKind::Database == "database");
        assert!("Files".parse::<StreamKind>().is_err());
        assert_eq!(
            parse_part_file("files.00012"),
            Some((StreamKind::Files, 12))
        );
        assert_eq!(
            parse_part_file("database.99999"),
            Some((StreamKind::Database, 99_999))
        );
        for bad in [
            "manifest.json",
            "files.0001",
            "files.100000",
            "files.+0001",
            "../files.00001",
            "files.00001/",
            "x.00001",
            "",
        ] {
            assert_eq!(parse_part_file(bad), None, "{bad:?}");
        }
    }
}
