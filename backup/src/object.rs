//! Backups in an object store (OpenStack Swift, an S3 API): the [`Target`] logic written once
//! over the few calls every store has, [`ObjectStore`]. A backup is the objects
//! `<id>/<part>` and `<id>/manifest.json` in one container (a bucket in S3's words).
//!
//! Object stores have no rename, so the manifest object is what makes a backup complete: it
//! is put last, after every part; `list` shows only ids whose manifest exists, and the parts
//! of an upload that never got its manifest are removed by `abort`, or by `sweep_partial` at
//! the coordinator's start. Every store checks each part on arrival with its MD5 (Swift's
//! `ETag`, S3's `Content-MD5`), so a part damaged on the way is refused; the manifest's
//! SHA-256 checks it again when read back. `delete` removes the manifest first, so a backup
//! stops being listed before its parts go.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::sync::Arc;

use crate::error::Error;
use crate::id::BackupId;
use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::target::{check_commit, check_part_file, Listed, Target, Upload};

/// A failed call to an object store: the store's own words (status, code, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One listing of the container under a prefix.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Object names.
    pub names: Vec<String>,
    /// With a delimiter, the names' common prefixes up to it ("20261206T083700Z/").
    pub prefixes: Vec<String>,
}

/// The calls an object store must answer, blocking. Names are object names in the one
/// container the store was made for.
pub trait ObjectStore: Send + Sync + 'static {
    /// For logs and messages: `swift mycloud/triad-backups`, `s3 https://s3.example/bucket`.
    fn describe(&self) -> String;

    /// The container, made if missing; one that exists is fine.
    fn ensure_container(&self) -> Result<(), StoreError>;

    /// The object's bytes, `None` when there is no such object.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores `bytes` as `name`, replacing it, durably, with the MD5 given to the store so
    /// that it refuses bytes damaged on the way.
    fn put(&self, name: &str, bytes: &[u8], content_type: &str) -> Result<(), StoreError>;

    /// Deletes `name`; one already gone is fine (a delete retried, a sweep racing).
    fn delete(&self, name: &str) -> Result<(), StoreError>;

    /// Every object under `prefix`, all pages; with `delimited`, names holding a '/' after
    /// the prefix come back as prefixes instead. A missing container lists nothing.
    fn list(&self, prefix: &str, delimited: bool) -> Result<Listing, StoreError>;
}

/// The [`Target`] over an object store.
pub struct ObjectTarget<S> {
    store: Arc<S>,
    described: String,
}

impl<S> Clone for ObjectTarget<S> {
    fn clone(&self) -> Self {
        ObjectTarget {
            store: self.store.clone(),
            described: self.described.clone(),
        }
    }
}

impl<S> std::fmt::Debug for ObjectTarget<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.described)
    }
}

fn is_manifest(name: &str) -> bool {
    name.ends_with(&format!("/{MANIFEST_FILE}"))
}

impl<S: ObjectStore> ObjectTarget<S> {
    pub fn new(store: S) -> ObjectTarget<S> {
        let described = store.describe();
        ObjectTarget {
            store: Arc::new(store),
            described,
        }
    }

    /// The store underneath (tests reach its objects through it).
    pub fn store(&self) -> &S {
        &self.store
    }

    fn remote(&self, what: String, error: StoreError) -> Error {
        Error::Remote {
            target: self.described.clone(),
            what,
            message: error.0,
        }
    }

    /// The ids with objects in the container (complete or not), oldest first.
    fn ids(&self) -> Result<Vec<BackupId>, Error> {
        let listing = self
            .store
            .list("", true)
            .map_err(|e| self.remote("listing the container".into(), e))?;
        let mut ids: Vec<BackupId> = listing
            .prefixes
            .iter()
            .filter_map(|dir| BackupId::parse(dir.trim_end_matches('/')).ok())
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// The object names under `<id>/`.
    fn objects_of(&self, id: BackupId) -> Result<Vec<String>, Error> {
        self.store
            .list(&format!("{id}/"), false)
            .map(|listing| listing.names)
            .map_err(|e| self.remote(format!("listing {id}/"), e))
    }

    fn delete_object(&self, name: &str) -> Result<(), Error> {
        self.store
            .delete(name)
            .map_err(|e| self.remote(format!("deleting {name}"), e))
    }

    fn read_manifest(&self, id: BackupId) -> Result<Manifest, Error> {
        let object = format!("{id}/{MANIFEST_FILE}");
        let bytes = self
            .store
            .get(&object)
            .map_err(|e| self.remote(format!("reading {object}"), e))?
            .ok_or_else(|| Error::NotFound {
                target: self.described.clone(),
                id,
            })?;
        let manifest =
            Manifest::from_json(&bytes).map_err(|source| Error::Manifest { id, source })?;
        if manifest.id != id {
            return Err(Error::Remote {
                target: self.described.clone(),
                what: object,
                message: format!("the manifest is of backup {}", manifest.id),
            });
        }
        manifest
            .check_structure()
            .map_err(|source| Error::Manifest { id, source })?;
        Ok(manifest)
    }
}

impl<S: ObjectStore> Target for ObjectTarget<S> {
    fn describe(&self) -> String {
        self.described.clone()
    }

    fn begin(&self, id: BackupId) -> Result<Box<dyn Upload>, Error> {
        self.store
            .ensure_container()
            .map_err(|e| self.remote("making the container".into(), e))?;
        let existing = self.objects_of(id)?;
        if existing.iter().any(|o| is_manifest(o)) {
            return Err(Error::Exists {
                target: self.described.clone(),
                id,
            });
        }
        if !existing.is_empty() {
            return Err(Error::Remote {
                target: self.described.clone(),
                what: format!("{id}/"),
                message: "parts of an unfinished backup with this id are there (the coordinator removes those when it starts)".into(),
            });
        }
        Ok(Box::new(ObjectUpload {
            target: self.clone(),
            id,
            written: BTreeMap::new(),
        }))
    }

    fn list(&self) -> Result<Vec<Listed>, Error> {
        let mut listed = Vec::new();
        for id in self.ids()? {
            match self.read_manifest(id) {
                // parts without a manifest: a backup being written or abandoned, never listed
                Err(Error::NotFound { .. }) => {}
                manifest => listed.push(Listed { id, manifest }),
            }
        }
        Ok(listed)
    }

    fn manifest(&self, id: BackupId) -> Result<Manifest, Error> {
        self.read_manifest(id)
    }

    fn open_part(&self, id: BackupId, file: &str) -> Result<Box<dyn Read + Send>, Error> {
        check_part_file(file)?;
        let object = format!("{id}/{file}");
        let bytes = self
            .store
            .get(&object)
            .map_err(|e| self.remote(format!("reading {object}"), e))?
            .ok_or_else(|| Error::Remote {
                target: self.described.clone(),
                what: object.clone(),
                message: "no such object".into(),
            })?;
        Ok(Box::new(Cursor::new(bytes)))
    }

    fn delete(&self, id: BackupId) -> Result<(), Error> {
        self.delete_object(&format!("{id}/{MANIFEST_FILE}"))?;
        for object in self.objects_of(id)? {
            self.delete_object(&object)?;
        }
        Ok(())
    }

    fn sweep_partial(&self) -> Result<Vec<String>, Error> {
        let mut removed = Vec::new();
        for id in self.ids()? {
            let objects = self.objects_of(id)?;
            if objects.iter().any(|o| is_manifest(o)) {
                continue;
            }
            for object in &objects {
                self.delete_object(object)?;
            }
            removed.push(format!("{id}/"));
        }
        Ok(removed)
    }
}

/// A backup being written to an object store: its parts so far.
struct ObjectUpload<S> {
    target: ObjectTarget<S>,
    id: BackupId,
    written: BTreeMap<String, u64>,
}

impl<S: ObjectStore> Upload for ObjectUpload<S> {
    fn id(&self) -> BackupId {
        self.id
    }

    fn put_part(&mut self, file: &str, bytes: &[u8]) -> Result<(), Error> {
        check_part_file(file)?;
        let object = format!("{}/{file}", self.id);
        self.target
            .store
            .put(&object, bytes, "application/octet-stream")
            .map_err(|e| self.target.remote(format!("putting {object}"), e))?;
        self.written.insert(file.to_string(), bytes.len() as u64);
        Ok(())
    }

    fn commit(self: Box<Self>, manifest: &Manifest) -> Result<(), Error> {
        check_commit(self.id, &self.written, manifest)?;
        let object = format!("{}/{MANIFEST_FILE}", self.id);
        self.target
            .store
            .put(&object, &manifest.to_json(), "application/json")
            .map_err(|e| self.target.remote(format!("putting {object}"), e))
    }

    fn abort(self: Box<Self>) -> Result<(), Error> {
        for file in self.written.keys() {
            self.target.delete_object(&format!("{}/{file}", self.id))?;
        }
        Ok(())
    }
}
