//! End-to-end tests: backups sealed into a directory target and read back, damaged in the
//! ways disks and people damage them, and read by the real `age` and `zstd` tools.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::manifest::{Manifest, StreamKind, COMPRESSION, FORMAT_VERSION};
use crate::{
    read_stream, verify, BackupId, BackupKey, DirTarget, Encryption, Error, Listed, ManifestError,
    SealOptions, Sealer, Target, Upload,
};

/// Incompressible bytes, the same for the same seed (xorshift64*).
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

struct Fixture {
    dir: tempfile::TempDir,
    target: DirTarget,
    key: BackupKey,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let target = DirTarget::new(dir.path().join("backups")).unwrap();
        let key = BackupKey::generate_file(&dir.path().join("backup.key")).unwrap();
        Fixture { dir, target, key }
    }

    fn backup_dir(&self, id: BackupId) -> PathBuf {
        self.target.root().join(id.to_string())
    }

    fn part(&self, id: BackupId, file: &str) -> PathBuf {
        self.backup_dir(id).join(file)
    }

    /// Stores a backup of cluster "prod" with these streams, written in odd-sized chunks.
    fn store(&self, id: &str, database: &[u8], files: &[u8], part_size: usize) -> Manifest {
        store(
            &self.target,
            self.key.recipient(),
            id,
            database,
            files,
            part_size,
        )
    }

    fn read(&self, manifest: &Manifest, stream: StreamKind) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        read_stream(
            &self.target,
            manifest,
            stream,
            &self.key,
            &mut out,
            &mut |_| {},
        )?;
        Ok(out)
    }
}

fn store(
    target: &dyn Target,
    recipient: &crate::Recipient,
    id: &str,
    database: &[u8],
    files: &[u8],
    part_size: usize,
) -> Manifest {
    let id: BackupId = id.parse().unwrap();
    let options = SealOptions {
        part_size,
        ..SealOptions::default()
    };
    let mut upload = target.begin(id).unwrap();
    let mut streams = Vec::new();
    for (stream, data) in [(StreamKind::Database, database), (StreamKind::Files, files)] {
        let mut sealer = Sealer::new(upload.as_mut(), stream, recipient, options).unwrap();
        for chunk in data.chunks(7777) {
            sealer.write_chunk(chunk).unwrap();
        }
        streams.push(sealer.finish().unwrap());
    }
    let created_unix_ms = id.unix_seconds() as u64 * 1000;
    let manifest = Manifest {
        format: FORMAT_VERSION,
        id,
        cluster: "prod".to_owned(),
        created_unix_ms,
        finished_unix_ms: created_unix_ms + 1500,
        triad_version: env!("CARGO_PKG_VERSION").to_owned(),
        node: "node-2".to_owned(),
        galera: None,
        encryption: Encryption::age_x25519(recipient),
        compression: COMPRESSION.to_owned(),
        streams,
    };
    upload.commit(&manifest).unwrap();
    manifest
}

/// A database-like stream: incompressible stretches and compressible ones.
fn database_like(len: usize) -> Vec<u8> {
    let mut data = noise(len / 2, 11);
    data.extend(
        b"INSERT INTO wp_posts VALUES (1, 'hello');\n"
            .iter()
            .cycle()
            .take(len - len / 2),
    );
    data
}

#[test]
fn both_streams_round_trip_through_several_parts() {
    let fixture = Fixture::new();
    let database = database_like(300_000);
    let files = noise(120_000, 5);
    let manifest = fixture.store("20261206T083700Z", &database, &files, 16_384);
    let database_entry = manifest.stream(StreamKind::Database).unwrap();
    assert!(database_entry.parts.len() > 5, "{database_entry:?}");
    assert!(
        database_entry.stored_bytes < database.len() as u64,
        "compressed"
    );
    assert!(manifest.stream(StreamKind::Files).unwrap().parts.len() > 5);

    let mut seen = Vec::new();
    let mut out = Vec::new();
    read_stream(
        &fixture.target,
        &manifest,
        StreamKind::Database,
        &fixture.key,
        &mut out,
        &mut |plain| seen.push(plain),
    )
    .unwrap();
    assert!(out == database, "database stream differs");
    assert!(seen.windows(2).all(|pair| pair[0] < pair[1]));
    assert_eq!(seen.last().copied(), Some(database.len() as u64));
    assert!(fixture.read(&manifest, StreamKind::Files).unwrap() == files);

    let verified = verify(&fixture.target, manifest.id, &fixture.key, "prod").unwrap();
    assert_eq!(verified, manifest);
    let listed: Vec<Listed> = fixture.target.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].manifest.as_ref().unwrap(), &manifest);
}

#[test]
fn an_empty_stream_round_trips() {
    let fixture = Fixture::new();
    let manifest = fixture.store("20261206T083700Z", b"", b"x", 1 << 20);
    let entry = manifest.stream(StreamKind::Database).unwrap();
    assert_eq!((entry.plain_bytes, entry.parts.len()), (0, 1));
    assert!(fixture
        .read(&manifest, StreamKind::Database)
        .unwrap()
        .is_empty());
    assert_eq!(fixture.read(&manifest, StreamKind::Files).unwrap(), b"x");
    verify(&fixture.target, manifest.id, &fixture.key, "prod").unwrap();
}

fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= 0x20;
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_byte_is_reported_naming_its_part() {
    // (part size, part, offset): within an age chunk that ends inside the same part, so age
    // fails mid-part; in a part that ends before its age chunk does; in the age header.
    let cases = [
        (50_000, "database.00002", 25_000),
        (4096, "database.00007", 100),
        (4096, "database.00000", 3),
        (4096, "files.00001", 4095),
    ];
    for (part_size, file, offset) in cases {
        let fixture = Fixture::new();
        let manifest = fixture.store(
            "20261206T083700Z",
            &noise(300_000, 3),
            &noise(9000, 4),
            part_size,
        );
        flip_byte(&fixture.part(manifest.id, file), offset);
        let stream = if file.starts_with("database") {
            StreamKind::Database
        } else {
            StreamKind::Files
        };
        let err = fixture.read(&manifest, stream).unwrap_err();
        assert!(
            matches!(&err, Error::PartCorrupt { file: named, .. } if named == file),
            "{file}@{offset}: {err}"
        );
        let message = err.to_string();
        assert!(
            message.contains("backup 20261206T083700Z") && message.contains(file),
            "{message}"
        );
        let err = verify(&fixture.target, manifest.id, &fixture.key, "prod").unwrap_err();
        assert!(matches!(err, Error::PartCorrupt { .. }), "{err}");
    }
}

#[test]
fn a_truncated_part_is_reported_naming_it() {
    // A part in the middle, and the last one (whose end is the age stream's end).
    for last in [false, true] {
        let fixture = Fixture::new();
        let manifest = fixture.store("20261206T083700Z", &noise(20_000, 8), b"", 4096);
        let entry = manifest.stream(StreamKind::Database).unwrap();
        assert!(entry.parts.len() > 2);
        let file = if last {
            entry.parts.last().unwrap().file.as_str()
        } else {
            "database.00001"
        };
        let path = fixture.part(manifest.id, file);
        let length = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(length - 1)
            .unwrap();
        let err = fixture.read(&manifest, StreamKind::Database).unwrap_err();
        assert!(
            matches!(&err, Error::PartTruncated { file: named, found, .. } if named == file && *found == length - 1),
            "{file}: {err}"
        );
    }
}

#[test]
fn a_part_longer_than_recorded_is_reported_naming_it() {
    let fixture = Fixture::new();
    let manifest = fixture.store("20261206T083700Z", &noise(20_000, 8), b"", 4096);
    let path = fixture.part(manifest.id, "database.00002");
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"!")
        .unwrap();
    let err = fixture.read(&manifest, StreamKind::Database).unwrap_err();
    assert!(
        matches!(&err, Error::PartTooLong { file, .. } if file == "database.00002"),
        "{err}"
    );
}

#[test]
fn a_missing_part_is_reported_naming_it() {
    let fixture = Fixture::new();
    let manifest = fixture.store("20261206T083700Z", b"db", &noise(20_000, 9), 4096);
    fs::remove_file(fixture.part(manifest.id, "files.00001")).unwrap();
    let err = fixture.read(&manifest, StreamKind::Files).unwrap_err();
    assert!(
        matches!(&err, Error::PartUnreadable { file, .. } if file == "files.00001"),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("backup 20261206T083700Z") && message.contains("files.00001"),
        "{message}"
    );
}

/// Counts the parts opened, to show what is refused before anything is read.
struct CountingTarget {
    inner: DirTarget,
    opened: AtomicUsize,
}

impl Target for CountingTarget {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn begin(&self, id: BackupId) -> Result<Box<dyn Upload>, Error> {
        self.inner.begin(id)
    }
    fn list(&self) -> Result<Vec<Listed>, Error> {
        self.inner.list()
    }
    fn manifest(&self, id: BackupId) -> Result<Manifest, Error> {
        self.inner.manifest(id)
    }
    fn open_part(&self, id: BackupId, file: &str) -> Result<Box<dyn Read + Send>, Error> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        self.inner.open_part(id, file)
    }
    fn delete(&self, id: BackupId) -> Result<(), Error> {
        self.inner.delete(id)
    }
    fn sweep_partial(&self) -> Result<Vec<String>, Error> {
        self.inner.sweep_partial()
    }
}

#[test]
fn a_wrong_key_is_refused_before_any_part_is_read() {
    let fixture = Fixture::new();
    let manifest = fixture.store("20261206T083700Z", b"db", b"files", 4096);
    let other_path = fixture.dir.path().join("other.key");
    let other = BackupKey::generate_file(&other_path).unwrap();
    let target = CountingTarget {
        inner: fixture.target.clone(),
        opened: AtomicUsize::new(0),
    };

    let err = verify(&target, manifest.id, &other, "prod").unwrap_err();
    assert!(matches!(err, Error::WrongKey { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&other.recipient().to_string())
            && message.contains(&manifest.encryption.recipient)
            && message.contains(&other_path.display().to_string()),
        "{message}"
    );
    let err = read_stream(
        &target,
        &manifest,
        StreamKind::Files,
        &other,
        &mut io::sink(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongKey {
                stream: StreamKind::Files,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(target.opened.load(Ordering::SeqCst), 0);

    // A manifest naming the key while the data is encrypted to another: said so too.
    let mut lying = manifest.clone();
    lying.encryption = Encryption::age_x25519(other.recipient());
    let err = read_stream(
        &target,
        &lying,
        StreamKind::Files,
        &other,
        &mut io::sink(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, Error::KeyDoesNotOpen { .. }), "{err}");
}

#[test]
fn another_clusters_backup_is_refused() {
    let fixture = Fixture::new();
    let manifest = fixture.store("20261206T083700Z", b"db", b"files", 4096);
    let err = verify(&fixture.target, manifest.id, &fixture.key, "staging").unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Manifest {
                source: ManifestError::OtherCluster { .. },
                ..
            }
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("20261206T083700Z")
            && message.contains("\"prod\"")
            && message.contains("\"staging\""),
        "{message}"
    );
}

#[test]
fn plaintext_that_differs_from_the_manifest_is_reported() {
    let fixture = Fixture::new();
    let mut manifest = fixture.store("20261206T083700Z", b"database", b"files", 4096);
    manifest.streams[0].plain_sha256 = "0".repeat(64);
    let err = fixture.read(&manifest, StreamKind::Database).unwrap_err();
    assert!(
        matches!(
            err,
            Error::PlainMismatch {
                what: "SHA-256",
                ..
            }
        ),
        "{err}"
    );
    manifest.streams[0].plain_bytes += 1;
    let err = fixture.read(&manifest, StreamKind::Database).unwrap_err();
    assert!(
        matches!(err, Error::PlainMismatch { what: "length", .. }),
        "{err}"
    );
}

#[test]
fn list_shows_committed_backups_oldest_first_and_never_partial_ones() {
    let fixture = Fixture::new();
    fixture.store("20261206T083700Z", b"a", b"b", 4096);
    fixture.store("20261205T083700Z", b"a", b"b", 4096);
    let id: BackupId = "20261207T000000Z".parse().unwrap();
    let mut upload = fixture.target.begin(id).unwrap();
    let sealer = Sealer::new(
        upload.as_mut(),
        StreamKind::Database,
        fixture.key.recipient(),
        SealOptions::default(),
    )
    .unwrap();
    sealer.finish().unwrap();
    let ids: Vec<String> = fixture
        .target
        .list()
        .unwrap()
        .iter()
        .map(|backup| backup.id.to_string())
        .collect();
    assert_eq!(ids, ["20261205T083700Z", "20261206T083700Z"]);
    drop(upload);
    assert_eq!(fixture.target.list().unwrap().len(), 2);
}

/// Runs `program` from PATH, or fails saying how to install it.
fn spawn(command: &mut Command, program: &str) -> std::process::Child {
    command.spawn().unwrap_or_else(|err| {
        panic!(
            "cannot run `{program}` ({err}): this test needs the real age and zstd tools; `make deps` (scripts/install-host-deps.sh) installs them"
        )
    })
}

#[test]
fn the_age_and_zstd_tools_read_what_was_sealed() {
    let fixture = Fixture::new();
    let key_path = fixture.dir.path().join("age-keygen.key");
    let keygen = Command::new("age-keygen")
        .arg("-o")
        .arg(&key_path)
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run `age-keygen` ({err}): `make deps` (scripts/install-host-deps.sh) installs age")
        });
    assert!(
        keygen.status.success(),
        "age-keygen: {}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    // A key file as age-keygen writes it loads, with the recipient age-keygen reports.
    let key = BackupKey::load(&key_path).unwrap();
    let public = Command::new("age-keygen")
        .arg("-y")
        .arg(&key_path)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&public.stdout).trim(),
        key.recipient().to_string()
    );

    let database = database_like(200_000);
    let files = noise(50_000, 21);
    let manifest = store(
        &fixture.target,
        key.recipient(),
        "20261206T083700Z",
        &database,
        &files,
        10_000,
    );
    for (stream, expected) in [
        (StreamKind::Database, &database),
        (StreamKind::Files, &files),
    ] {
        let parts: Vec<PathBuf> = manifest
            .stream(stream)
            .unwrap()
            .parts
            .iter()
            .map(|part| fixture.part(manifest.id, &part.file))
            .collect();
        assert!(parts.len() > 1);

        // cat parts | age -d -i KEYFILE | zstd -d
        let mut age = spawn(
            Command::new("age")
                .arg("-d")
                .arg("-i")
                .arg(&key_path)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
            "age",
        );
        let age_stdout = age.stdout.take().unwrap();
        let zstd = spawn(
            Command::new("zstd")
                .arg("-d")
                .arg("-c")
                .stdin(Stdio::from(age_stdout))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
            "zstd",
        );
        let mut age_stdin = age.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || -> io::Result<()> {
            for part in parts {
                age_stdin.write_all(&fs::read(part)?)?;
            }
            Ok(())
        });
        let zstd_output = zstd.wait_with_output().unwrap();
        let fed = feeder.join().unwrap();
        let age_output = age.wait_with_output().unwrap();
        assert!(
            age_output.status.success(),
            "age -d ({stream}): {}",
            String::from_utf8_lossy(&age_output.stderr)
        );
        fed.unwrap();
        assert!(
            zstd_output.status.success(),
            "zstd -d ({stream}): {}",
            String::from_utf8_lossy(&zstd_output.stderr)
        );
        assert!(
            &zstd_output.stdout == expected,
            "{stream}: the tools' output differs from what was sealed ({} bytes, expected {})",
            zstd_output.stdout.len(),
            expected.len()
        );
    }
}
