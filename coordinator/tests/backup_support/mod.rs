//! What the backup target tests share: a backup sealed from deterministic bytes into any
//! target, and the target's listing.

use triad_backup::key::BackupKey;
use triad_backup::manifest::{Encryption, Manifest, StreamKind, COMPRESSION, FORMAT_VERSION};
use triad_backup::target::Target;
use triad_backup::{BackupId, SealOptions, Sealer};

/// Deterministic bytes that do not compress away (a small xorshift).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Seals `database` and `files` as backup `id` of cluster `cluster` into `target` with
/// parts of 64 KiB; commits unless `commit` is false (then the upload is dropped).
pub fn make(
    target: &dyn Target,
    key: &BackupKey,
    id: BackupId,
    cluster: &str,
    database: &[u8],
    files: &[u8],
    commit: bool,
) -> Result<Manifest, triad_backup::Error> {
    let mut upload = target.begin(id)?;
    let options = SealOptions {
        part_size: 64 * 1024,
        ..SealOptions::default()
    };
    let mut streams = Vec::new();
    for (stream, bytes) in [(StreamKind::Database, database), (StreamKind::Files, files)] {
        let mut sealer = Sealer::new(upload.as_mut(), stream, key.recipient(), options)?;
        for chunk in bytes.chunks(10_000) {
            sealer.write_chunk(chunk)?;
        }
        streams.push(sealer.finish()?);
    }
    let manifest = Manifest {
        format: FORMAT_VERSION,
        id,
        cluster: cluster.into(),
        created_unix_ms: id.unix_seconds() as u64 * 1000,
        finished_unix_ms: id.unix_seconds() as u64 * 1000 + 1500,
        triad_version: "test".into(),
        node: "n2".into(),
        galera: Some(triad_backup::manifest::GaleraPoint {
            uuid: "efbc70e8-f154-11f1-826c-574c104bd573".into(),
            seqno: 232,
            gtid: None,
        }),
        encryption: Encryption::age_x25519(key.recipient()),
        compression: COMPRESSION.into(),
        streams,
    };
    if commit {
        upload.commit(&manifest)?;
    }
    Ok(manifest)
}

pub fn id(text: &str) -> BackupId {
    BackupId::parse(text).unwrap()
}

pub fn listed(target: &dyn Target) -> Vec<String> {
    target
        .list()
        .unwrap()
        .into_iter()
        .map(|l| {
            l.manifest.expect("a readable manifest");
            l.id.to_string()
        })
        .collect()
}

/// The target's calls block on the runtime: run them off its threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// On an empty target: nothing listed (the container may not exist yet), then a backup
/// made, listed, verified and its files stream read back; (its manifest, what was read).
pub fn made_listed_verified_read_back(
    target: &dyn Target,
    key: &BackupKey,
    database: &[u8],
    files: &[u8],
) -> (Manifest, Vec<u8>) {
    assert!(listed(target).is_empty());
    let manifest = make(
        target,
        key,
        id("20261206T100000Z"),
        "lab",
        database,
        files,
        true,
    )
    .expect("the backup is made");
    assert_eq!(listed(target), ["20261206T100000Z"]);
    let verified = triad_backup::verify(target, manifest.id, key, "lab").expect("it verifies");
    assert_eq!(verified, manifest);
    let mut read = Vec::new();
    triad_backup::read_stream(
        target,
        &manifest,
        StreamKind::Files,
        key,
        &mut read,
        &mut |_| {},
    )
    .unwrap();
    (manifest, read)
}

/// A backup dropped before its commit (a coordinator crash) is not listed, an aborted one
/// leaves nothing, the coordinator's start sweeps the crashed one's parts; then backup
/// 20261206T110000Z is made (its manifest returned, or the error making it).
pub fn crashed_aborted_swept_then_made(
    target: &dyn Target,
    key: &BackupKey,
) -> Result<Manifest, triad_backup::Error> {
    make(
        target,
        key,
        id("20261206T105000Z"),
        "lab",
        &noise(100_000, 3),
        &noise(10, 4),
        false,
    )
    .unwrap();
    assert!(
        listed(target).is_empty(),
        "parts without a manifest are not listed"
    );
    let mut upload = target.begin(id("20261206T105500Z")).unwrap();
    upload.put_part("database.00000", b"half").unwrap();
    upload.abort().unwrap();
    let swept = target.sweep_partial().unwrap();
    assert_eq!(swept, ["20261206T105000Z/"]);
    make(
        target,
        key,
        id("20261206T110000Z"),
        "lab",
        &noise(150_000, 5),
        &noise(20_000, 6),
        true,
    )
}

/// A backup of another cluster (20261206T120000Z) is refused by verify, naming the cluster;
/// deleting it unlists it, leaving 20261206T110000Z.
pub fn foreign_refused_then_deleted(target: &dyn Target, key: &BackupKey) {
    make(
        target,
        key,
        id("20261206T120000Z"),
        "other",
        &noise(1000, 7),
        &noise(10, 8),
        true,
    )
    .unwrap();
    let error = triad_backup::verify(target, id("20261206T120000Z"), key, "lab")
        .unwrap_err()
        .to_string();
    assert!(error.contains("other"), "{error}");
    target.delete(id("20261206T120000Z")).unwrap();
    assert_eq!(listed(target), ["20261206T110000Z"]);
}
