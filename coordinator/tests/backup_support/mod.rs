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
