//! Backups to OpenStack Swift (issue 19) against the in-process OpenStack fake
//! (tests/openstack-fake): a backup sealed into the Swift target is listed only once its
//! manifest is put, verifies, and reads back byte for byte; the real `openstack` CLI lists
//! its objects with the sizes the manifest names; an aborted upload and a crashed one
//! (parts without a manifest, swept at start) leave nothing listed; a part refused once
//! with 503 is put again; a part damaged in the store is named by verify; a manifest of
//! another cluster is refused.

use std::sync::Arc;
use std::time::Duration;

mod backup_support;

use backup_support::{blocking, id, noise};
use triad_backup::key::BackupKey;
use triad_coordinator::backup::swift::{SwiftStore, SwiftTarget};
use triad_coordinator::openstack::config::{load_cloud, CloudSources};
use triad_coordinator::openstack::session::Session;
use triad_openstack_fake::{FakeCloud, FakeOptions, Fault, FaultKind};

const CONTAINER: &str = "triad-backups";

struct Cloud {
    fake: FakeCloud,
    dir: tempfile::TempDir,
    target: SwiftTarget,
    key: Arc<BackupKey>,
}

async fn cloud() -> Cloud {
    let fake = FakeCloud::start(FakeOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clouds.yaml");
    std::fs::write(&file, fake.clouds_yaml("fake")).unwrap();
    let config = load_cloud(&CloudSources::file(&file), Some("fake")).expect("cloud loads");
    let session = Session::new(config, Duration::from_secs(10)).unwrap();
    let target = SwiftStore::new(
        Arc::new(session),
        CONTAINER.into(),
        tokio::runtime::Handle::current(),
    )
    .target();
    let key = Arc::new(BackupKey::generate_file(&dir.path().join("backup.key")).unwrap());
    Cloud {
        fake,
        dir,
        target,
        key,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_in_swift_is_listed_once_whole_and_reads_back() {
    let c = cloud().await;
    let (target, key) = (c.target.clone(), c.key.clone());
    let database = noise(300_000, 1);
    let files = noise(200_000, 2);
    let (db, fs) = (database.clone(), files.clone());
    let (manifest, read) =
        blocking(move || backup_support::made_listed_verified_read_back(&target, &key, &db, &fs))
            .await;
    assert!(read == files, "the files stream reads back byte for byte");
    assert!(
        manifest.streams[0].parts.len() >= 4,
        "several parts: {manifest:?}"
    );

    // the real CLI sees every part and the manifest, with the manifest's sizes
    let objects = triad_openstack_fake::cli::openstack_json(
        &c.fake,
        &["object", "list", CONTAINER, "--long"],
    )
    .await;
    let objects = objects.as_array().cloned().unwrap_or_default();
    for part in manifest.streams.iter().flat_map(|s| &s.parts) {
        let name = format!("20261206T100000Z/{}", part.file);
        let found = objects
            .iter()
            .find(|o| o["Name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} not in `openstack object list`: {objects:?}"));
        assert_eq!(found["Bytes"].as_u64(), Some(part.bytes), "{found}");
    }
    assert!(
        objects
            .iter()
            .any(|o| o["Name"] == "20261206T100000Z/manifest.json"),
        "{objects:?}"
    );
    drop(c.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_damaged_and_foreign_backups_are_never_trusted() {
    let c = cloud().await;
    let (target, key) = (c.target.clone(), c.key.clone());
    // a 503 on the first part put: the sealer's retry puts it again
    c.fake.inject(Fault {
        method: Some(reqwest::Method::PUT),
        path_contains: "20261206T110000Z/database.00000".into(),
        kind: FaultKind::Status(503),
        times: 1,
    });
    let target2 = target.clone();
    let key2 = key.clone();
    let made = blocking(move || {
        backup_support::crashed_aborted_swept_then_made(&target2, &key2)
            .expect("made, the refused part put again")
    })
    .await;
    assert!(
        c.fake
            .log()
            .iter()
            .any(|l| l.status == 503 && l.path.contains("20261206T110000Z/database.00000")),
        "the injected 503 was answered (and the part put again)"
    );
    assert_eq!(
        c.fake
            .swift_objects(CONTAINER)
            .iter()
            .filter(|(name, _)| !name.starts_with("20261206T110000Z/"))
            .count(),
        0,
        "only the complete backup's objects are left"
    );

    // one byte of a part flipped in the store: verify names the part
    let part = &made.streams[0].parts[1].file;
    let object = format!("20261206T110000Z/{part}");
    let mut bytes = c
        .fake
        .swift_objects(CONTAINER)
        .into_iter()
        .find(|(name, _)| *name == object)
        .map(|(_, bytes)| bytes)
        .unwrap();
    bytes[100] ^= 1;
    c.fake.swift_put(CONTAINER, &object, &bytes);
    let (target3, key3) = (target.clone(), key.clone());
    let error = blocking(move || {
        triad_backup::verify(&target3, id("20261206T110000Z"), &key3, "lab").unwrap_err()
    })
    .await
    .to_string();
    assert!(error.contains(part.as_str()), "{error}");

    // a backup of another cluster: refused before any part is read; deleting unlists first,
    // then removes every object
    let (target4, key4) = (target.clone(), key.clone());
    blocking(move || backup_support::foreign_refused_then_deleted(&target4, &key4)).await;
    assert!(c
        .fake
        .swift_objects(CONTAINER)
        .iter()
        .all(|(name, _)| !name.starts_with("20261206T120000Z/")));
}
