//! The directory target: backups as directories under a root (a local disk, or a mounted
//! NFS/CIFS share). `<root>/<id>/` is a complete backup; `<root>/<id>.partial/` one being
//! written (or left by a crashed run). Other entries under the root (`lost+found`, an
//! operator's notes) are left alone and not listed.
//!
//! Durability: each part is fsynced when put; commit writes and fsyncs `manifest.json`,
//! fsyncs the backup's directory (so every part's and the manifest's entry is on disk),
//! renames `<id>.partial` to `<id>` and fsyncs the root (so the rename is). A crash at any
//! point leaves either the complete backup or a `.partial` that is never listed.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::id::BackupId;
use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::target::{check_part_file, Listed, Target, Upload};

const PARTIAL_SUFFIX: &str = ".partial";

/// Backups in directories under `root`.
#[derive(Debug, Clone)]
pub struct DirTarget {
    root: PathBuf,
}

impl DirTarget {
    /// The target at `root`, created (mode 0700: backups are the whole site's data, even
    /// though encrypted) if it does not exist.
    pub fn new(root: impl Into<PathBuf>) -> Result<DirTarget, Error> {
        let root = root.into();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(|source| Error::io("create directory", &root, source))?;
        Ok(DirTarget { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn complete_dir(&self, id: BackupId) -> PathBuf {
        self.root.join(id.to_string())
    }

    fn partial_dir(&self, id: BackupId) -> PathBuf {
        self.root.join(format!("{id}{PARTIAL_SUFFIX}"))
    }

    fn read_manifest(&self, id: BackupId) -> Result<Manifest, Error> {
        let path = self.complete_dir(id).join(MANIFEST_FILE);
        let bytes = fs::read(&path).map_err(|source| Error::io("read", &path, source))?;
        let manifest = Manifest::from_json(&bytes).map_err(|source| Error::ManifestUnreadable {
            path: path.clone(),
            source,
        })?;
        if manifest.id != id {
            return Err(Error::ManifestIdMismatch {
                path,
                id,
                found: manifest.id,
            });
        }
        manifest
            .check_structure()
            .map_err(|source| Error::Manifest { id, source })?;
        Ok(manifest)
    }

    fn exists(&self, id: BackupId) -> Result<bool, Error> {
        let path = self.complete_dir(id);
        path.try_exists()
            .map_err(|source| Error::io("look at", &path, source))
    }
}

impl Target for DirTarget {
    fn describe(&self) -> String {
        format!("dir {}", self.root.display())
    }

    fn begin(&self, id: BackupId) -> Result<Box<dyn Upload>, Error> {
        if self.exists(id)? {
            return Err(Error::Exists {
                target: self.describe(),
                id,
            });
        }
        let dir = self.partial_dir(id);
        DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|source| match source.kind() {
                io::ErrorKind::AlreadyExists => Error::InProgress { path: dir.clone() },
                _ => Error::io("create directory", &dir, source),
            })?;
        Ok(Box::new(DirUpload {
            root: self.root.clone(),
            id,
            dir,
            written: BTreeMap::new(),
            finished: false,
        }))
    }

    fn list(&self) -> Result<Vec<Listed>, Error> {
        let entries =
            fs::read_dir(&self.root).map_err(|source| Error::io("list", &self.root, source))?;
        let mut listed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::io("list", &self.root, source))?;
            // Not an id (other files, `.partial` directories, non-UTF-8 names): not a backup.
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|name| BackupId::parse(name).ok())
            else {
                continue;
            };
            listed.push(Listed {
                id,
                manifest: self.read_manifest(id),
            });
        }
        listed.sort_by_key(|backup| backup.id);
        Ok(listed)
    }

    fn manifest(&self, id: BackupId) -> Result<Manifest, Error> {
        if !self.exists(id)? {
            return Err(Error::NotFound {
                target: self.describe(),
                id,
            });
        }
        self.read_manifest(id)
    }

    fn open_part(&self, id: BackupId, file: &str) -> Result<Box<dyn Read + Send>, Error> {
        check_part_file(file)?;
        let path = self.complete_dir(id).join(file);
        let opened = File::open(&path).map_err(|source| Error::io("open", &path, source))?;
        Ok(Box::new(opened))
    }

    fn delete(&self, id: BackupId) -> Result<(), Error> {
        let complete = self.complete_dir(id);
        if !self.exists(id)? {
            return Err(Error::NotFound {
                target: self.describe(),
                id,
            });
        }
        // Unlisted at once by the rename; a crash while removing leaves a `.partial` that
        // the next sweep removes, never a listed backup with missing parts.
        let doomed = self.partial_dir(id);
        remove_dir_if_present(&doomed)?;
        fs::rename(&complete, &doomed).map_err(|source| Error::io("rename", &complete, source))?;
        sync_dir(&self.root)?;
        fs::remove_dir_all(&doomed).map_err(|source| Error::io("remove", &doomed, source))?;
        sync_dir(&self.root)
    }

    fn sweep_partial(&self) -> Result<Vec<String>, Error> {
        let entries =
            fs::read_dir(&self.root).map_err(|source| Error::io("list", &self.root, source))?;
        let mut removed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::io("list", &self.root, source))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            // Only what this target names `<id>.partial`: nothing else under the root.
            let is_partial = name
                .strip_suffix(PARTIAL_SUFFIX)
                .is_some_and(|stem| BackupId::parse(stem).is_ok());
            if is_partial {
                remove_dir_if_present(&entry.path())?;
                removed.push(name);
            }
        }
        if !removed.is_empty() {
            sync_dir(&self.root)?;
        }
        removed.sort();
        Ok(removed)
    }
}

/// A backup being written into `<root>/<id>.partial/`.
struct DirUpload {
    root: PathBuf,
    id: BackupId,
    dir: PathBuf,
    /// The parts put so far and their sizes, to check the manifest against.
    written: BTreeMap<String, u64>,
    /// Committed or aborted: nothing left for `drop` to remove.
    finished: bool,
}

impl DirUpload {
    /// Refuses a manifest that would describe something other than what was written.
    fn check_matches(&self, manifest: &Manifest) -> Result<(), Error> {
        crate::target::check_commit(self.id, &self.written, manifest)
    }
}

impl Upload for DirUpload {
    fn id(&self) -> BackupId {
        self.id
    }

    fn put_part(&mut self, file: &str, bytes: &[u8]) -> Result<(), Error> {
        check_part_file(file)?;
        let path = self.dir.join(file);
        write_synced(&path, bytes, false)?;
        self.written.insert(file.to_owned(), bytes.len() as u64);
        Ok(())
    }

    fn commit(mut self: Box<Self>, manifest: &Manifest) -> Result<(), Error> {
        self.check_matches(manifest)?;
        write_synced(&self.dir.join(MANIFEST_FILE), &manifest.to_json(), true)?;
        sync_dir(&self.dir)?;
        let complete = self.root.join(self.id.to_string());
        // `rename` would replace an empty directory there; a backup is never replaced.
        if complete
            .try_exists()
            .map_err(|source| Error::io("look at", &complete, source))?
        {
            return Err(Error::Exists {
                target: format!("dir {}", self.root.display()),
                id: self.id,
            });
        }
        fs::rename(&self.dir, &complete)
            .map_err(|source| Error::io("rename", &self.dir, source))?;
        self.finished = true;
        sync_dir(&self.root)
    }

    fn abort(mut self: Box<Self>) -> Result<(), Error> {
        self.finished = true;
        remove_dir_if_present(&self.dir)?;
        sync_dir(&self.root)
    }
}

impl Drop for DirUpload {
    /// An upload dropped without commit (an error, a panic, a cancelled backup) removes what
    /// it wrote, as far as it can; whatever stays is a `.partial`, never listed, and swept.
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Writes `bytes` to `path` and fsyncs the file; `new_only` refuses an existing file.
fn write_synced(path: &Path, bytes: &[u8], new_only: bool) -> Result<(), Error> {
    let mut options = OpenOptions::new();
    options.write(true);
    if new_only {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    let mut file = options
        .open(path)
        .map_err(|source| Error::io("create", path, source))?;
    file.write_all(bytes)
        .map_err(|source| Error::io("write", path, source))?;
    file.sync_all()
        .map_err(|source| Error::io("fsync", path, source))
}

/// Makes a directory's entries (files created, renamed, removed in it) durable.
fn sync_dir(path: &Path) -> Result<(), Error> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| Error::io("fsync directory", path, source))
}

fn remove_dir_if_present(path: &Path) -> Result<(), Error> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(source) if source.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::io("remove", path, source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::sample;
    use std::os::unix::fs::PermissionsExt;

    fn put_sample_parts(upload: &mut dyn Upload, manifest: &Manifest) {
        for part in manifest.streams.iter().flat_map(|stream| &stream.parts) {
            upload
                .put_part(&part.file, &vec![7u8; part.bytes as usize])
                .unwrap();
        }
    }

    fn listed_ids(target: &DirTarget) -> Vec<String> {
        target
            .list()
            .unwrap()
            .into_iter()
            .map(|backup| backup.id.to_string())
            .collect()
    }

    #[test]
    fn the_root_is_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("backups/triad");
        let target = DirTarget::new(&root).unwrap();
        let mode = fs::metadata(&root).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(target.describe(), format!("dir {}", root.display()));
        assert!(target.list().unwrap().is_empty());
    }

    #[test]
    fn a_backup_is_listed_only_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirTarget::new(dir.path()).unwrap();
        let manifest = sample();
        let mut upload = target.begin(manifest.id).unwrap();
        put_sample_parts(upload.as_mut(), &manifest);
        assert!(dir
            .path()
            .join("20261206T083700Z.partial/database.00001")
            .exists());
        assert!(listed_ids(&target).is_empty(), "a .partial is never listed");
        assert!(matches!(
            target.manifest(manifest.id),
            Err(Error::NotFound { .. })
        ));

        upload.commit(&manifest).unwrap();
        assert_eq!(listed_ids(&target), ["20261206T083700Z"]);
        assert_eq!(target.manifest(manifest.id).unwrap(), manifest);
        assert!(!dir.path().join("20261206T083700Z.partial").exists());
        let mut part = Vec::new();
        target
            .open_part(manifest.id, "files.00001")
            .unwrap()
            .read_to_end(&mut part)
            .unwrap();
        assert_eq!(part.len(), 100);
        assert!(matches!(
            target.begin(manifest.id),
            Err(Error::Exists { .. })
        ));
    }

    #[test]
    fn dropped_and_aborted_uploads_leave_nothing_listed() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirTarget::new(dir.path()).unwrap();
        let manifest = sample();
        let mut upload = target.begin(manifest.id).unwrap();
        put_sample_parts(upload.as_mut(), &manifest);
        drop(upload);
        assert!(listed_ids(&target).is_empty());
        assert!(!dir.path().join("20261206T083700Z.partial").exists());

        let mut upload = target.begin(manifest.id).unwrap();
        put_sample_parts(upload.as_mut(), &manifest);
        upload.abort().unwrap();
        assert!(listed_ids(&target).is_empty());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_second_writer_of_the_same_id_is_refused_and_sweep_removes_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirTarget::new(dir.path()).unwrap();
        let manifest = sample();
        let first = target.begin(manifest.id).unwrap();
        assert!(matches!(
            target.begin(manifest.id),
            Err(Error::InProgress { .. })
        ));

        // What a crashed run leaves, and things that are not ours.
        fs::create_dir(dir.path().join("20250101T000000Z.partial")).unwrap();
        fs::write(
            dir.path().join("20250101T000000Z.partial/database.00000"),
            b"x",
        )
        .unwrap();
        fs::create_dir(dir.path().join("notes.partial")).unwrap();
        fs::create_dir(dir.path().join("lost+found")).unwrap();
        drop(first);
        assert_eq!(
            target.sweep_partial().unwrap(),
            ["20250101T000000Z.partial"]
        );
        assert!(dir.path().join("notes.partial").exists());
        assert!(dir.path().join("lost+found").exists());
        assert!(listed_ids(&target).is_empty());
    }

    #[test]
    fn commit_refuses_a_manifest_that_does_not_match_the_parts() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirTarget::new(dir.path()).unwrap();
        let manifest = sample();

        let mut upload = target.begin(manifest.id).unwrap();
        put_sample_parts(upload.as_mut(), &manifest);
        upload.put_part("files.00002", b"extra").unwrap();
        let err = upload.commit(&manifest).unwrap_err().to_string();
        assert!(
            err.contains("files.00002 was put but the manifest does not name it"),
            "{err}"
        );
        assert!(listed_ids(&target).is_empty());

        let mut upload = target.begin(manifest.id).unwrap();
        upload.put_part("database.00000", &[0; 200]).unwrap();
        let err = upload.commit(&manifest).unwrap_err().to_string();
        assert!(err.contains("database.00001 was never put"), "{err}");

        let mut upload = target.begin(manifest.id).unwrap();
        put_sample_parts(upload.as_mut(), &manifest);
        let mut other = manifest.clone();
        other.id = "20261206T083701Z".parse().unwrap();
        let err = upload.commit(&other).unwrap_err().to_string();
        assert!(err.contains("of backup 20261206T083701Z"), "{err}");
        assert!(listed_ids(&target).is_empty());
    }

    #[test]
    fn part_names_cannot_leave_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirTarget::new(dir.path()).unwrap();
        let id = sample().id;
        let mut upload = target.begin(id).unwrap();
        for bad in ["../escape", "manifest.json", "/etc/passwd", "database.0"] {
            assert!(
                matches!(upload.put_part(bad, b"x"), Err(Error::PartName { .. })),
                "{bad}"
            );
            assert!(target.open_part(id, bad).is_err());
        }
    }

    #[test]
    fn broken_complete_backups_are_listed_with_their_error() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirTarget::new(dir.path()).unwrap();
        let good = sample();
        let mut upload = target.begin(good.id).unwrap();
        put_sample_parts(upload.as_mut(), &good);
        upload.commit(&good).unwrap();

        fs::create_dir(dir.path().join("20250101T000000Z")).unwrap();
        fs::create_dir(dir.path().join("20250102T000000Z")).unwrap();
        fs::write(dir.path().join("20250102T000000Z/manifest.json"), b"{").unwrap();
        fs::create_dir(dir.path().join("20250103T000000Z")).unwrap();
        fs::write(
            dir.path().join("20250103T000000Z/manifest.json"),
            good.to_json(),
        )
        .unwrap();

        let listed = target.list().unwrap();
        let summary: Vec<(String, String)> = listed
            .iter()
            .map(|backup| {
                let state = match &backup.manifest {
                    Ok(_) => "ok".to_owned(),
                    Err(err) => err.to_string(),
                };
                (backup.id.to_string(), state)
            })
            .collect();
        assert_eq!(summary.len(), 4, "{summary:?}");
        assert!(
            summary[0].1.contains("20250101T000000Z/manifest.json"),
            "{summary:?}"
        );
        assert!(
            summary[1].1.contains("not a Triad backup manifest"),
            "{summary:?}"
        );
        assert!(
            summary[2].1.contains("is of backup 20261206T083700Z"),
            "{summary:?}"
        );
        assert_eq!(summary[3], ("20261206T083700Z".to_owned(), "ok".to_owned()));
    }

    #[test]
    fn delete_unlists_then_removes() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirTarget::new(dir.path()).unwrap();
        let manifest = sample();
        let mut upload = target.begin(manifest.id).unwrap();
        put_sample_parts(upload.as_mut(), &manifest);
        upload.commit(&manifest).unwrap();
        target.delete(manifest.id).unwrap();
        assert!(listed_ids(&target).is_empty());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(matches!(
            target.delete(manifest.id),
            Err(Error::NotFound { .. })
        ));
    }
}
