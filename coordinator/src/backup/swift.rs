//! The OpenStack Swift target (`[backup.swift]`, issue 19): a backup is the objects
//! `<id>/<part>` and `<id>/manifest.json` in one container of the cluster's cloud (the
//! clouds.yaml credentials the balancer and the autoscaler use).
//!
//! Swift has no rename, so the manifest object is what makes a backup complete: it is put
//! last, after every part; `list` shows only ids whose manifest exists, and the parts of an
//! upload that never got its manifest are removed by `abort`, or by `sweep_partial` at the
//! coordinator's start. Every part is put with its MD5 as `ETag`, so Swift refuses (422) a
//! part damaged on the way; the manifest's SHA-256 checks it again when read back.
//! `delete` removes the manifest first, so a backup stops being listed before its parts go.
//!
//! The `Target` traits are synchronous (the coordinator runs them on blocking threads):
//! each call runs the async OpenStack session on the runtime's handle.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::sync::Arc;

use reqwest::Method;
use triad_backup::manifest::{Manifest, MANIFEST_FILE};
use triad_backup::target::{check_commit, check_part_file, Listed, Target, Upload};
use triad_backup::{BackupId, Error};

use crate::openstack::session::Session;
use crate::openstack::OpenStackError;

/// Swift's largest listing page.
const PAGE: usize = 10_000;

/// A container of one cloud.
#[derive(Clone)]
pub struct SwiftTarget {
    session: Arc<Session>,
    container: String,
    runtime: tokio::runtime::Handle,
    described: String,
}

impl std::fmt::Debug for SwiftTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.described)
    }
}

/// Object and container names in a Swift path: percent-encoded but for '/'.
fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The MD5 of `bytes`, hex: Swift's ETag.
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest as _;
    let digest = md5::Md5::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl SwiftTarget {
    /// Backups in `container` of the cloud `session` speaks to; `runtime` runs its calls.
    pub fn new(
        session: Arc<Session>,
        container: String,
        runtime: tokio::runtime::Handle,
    ) -> SwiftTarget {
        let described = format!("swift {}/{container}", session.cloud().name);
        SwiftTarget {
            session,
            container,
            runtime,
            described,
        }
    }

    fn remote(&self, what: String, error: OpenStackError) -> Error {
        Error::Remote {
            target: self.described.clone(),
            what,
            message: error.to_string(),
        }
    }

    fn path(&self, object: &str) -> String {
        format!("/{}/{}", encode(&self.container), encode(object))
    }

    /// One call to the object store, run on the runtime from this (blocking) thread: the
    /// answer's body.
    fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<Vec<u8>, OpenStackError> {
        self.runtime
            .block_on(self.session.request_bytes(
                method,
                "object-store",
                path,
                query,
                body,
                headers,
            ))
            .map(|(_, body)| body)
    }

    fn get(&self, object: &str) -> Result<Option<Vec<u8>>, OpenStackError> {
        match self.call(Method::GET, &self.path(object), &[], None, &[]) {
            Ok(body) => Ok(Some(body)),
            Err(error) if error.status() == Some(404) => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn put(&self, object: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), OpenStackError> {
        let etag = md5_hex(&bytes);
        let headers = [("ETag", etag.as_str()), ("Content-Type", content_type)];
        self.call(Method::PUT, &self.path(object), &[], Some(bytes), &headers)
            .map(drop)
    }

    /// Deletes `object`; one already gone is fine (a delete retried, a sweep racing).
    fn delete_object(&self, object: &str) -> Result<(), OpenStackError> {
        match self.call(Method::DELETE, &self.path(object), &[], None, &[]) {
            Ok(_) => Ok(()),
            Err(error) if error.status() == Some(404) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The container, made if missing (PUT is idempotent in Swift).
    fn ensure_container(&self) -> Result<(), OpenStackError> {
        let path = format!("/{}", encode(&self.container));
        self.call(Method::PUT, &path, &[], Some(Vec::new()), &[])
            .map(drop)
    }

    /// Every listing entry under `prefix` (with `delimiter`, the "subdir" entries), page
    /// after page by marker. A missing container lists nothing.
    fn listing(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<Vec<serde_json::Value>, OpenStackError> {
        let path = format!("/{}", encode(&self.container));
        let mut entries: Vec<serde_json::Value> = Vec::new();
        let mut marker = String::new();
        // bounded: a listing that never ends is an error, not a loop
        for _ in 0..10_000 {
            let mut query = vec![
                ("format".to_string(), "json".to_string()),
                ("limit".to_string(), PAGE.to_string()),
                ("prefix".to_string(), prefix.to_string()),
            ];
            if let Some(delimiter) = delimiter {
                query.push(("delimiter".to_string(), delimiter.to_string()));
            }
            if !marker.is_empty() {
                query.push(("marker".to_string(), marker.clone()));
            }
            let page = match self.call(Method::GET, &path, &query, None, &[]) {
                Ok(body) => body,
                Err(error) if error.status() == Some(404) => return Ok(entries),
                Err(error) => return Err(error),
            };
            let page: Vec<serde_json::Value> = if page.iter().all(u8::is_ascii_whitespace) {
                Vec::new()
            } else {
                serde_json::from_slice(&page).map_err(|e| OpenStackError::Decode {
                    method: "GET".into(),
                    url: path.clone(),
                    message: format!("a container listing that is not a JSON list: {e}"),
                })?
            };
            let full = page.len() >= PAGE;
            let last = page
                .last()
                .and_then(|e| e.get("name").or_else(|| e.get("subdir")))
                .and_then(|v| v.as_str())
                .map(str::to_string);
            entries.extend(page);
            match (full, last) {
                (true, Some(last)) if last != marker => marker = last,
                _ => return Ok(entries),
            }
        }
        Err(OpenStackError::Decode {
            method: "GET".into(),
            url: path,
            message: "the container listing did not end after 10000 pages".into(),
        })
    }

    /// The ids with objects in the container (complete or not), oldest first.
    fn ids(&self) -> Result<Vec<BackupId>, OpenStackError> {
        let mut ids: Vec<BackupId> = self
            .listing("", Some("/"))?
            .iter()
            .filter_map(|e| e.get("subdir").and_then(|v| v.as_str()))
            .filter_map(|dir| BackupId::parse(dir.trim_end_matches('/')).ok())
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// The object names under `<id>/`.
    fn objects_of(&self, id: BackupId) -> Result<Vec<String>, OpenStackError> {
        Ok(self
            .listing(&format!("{id}/"), None)?
            .iter()
            .filter_map(|e| e.get("name").and_then(|v| v.as_str()).map(str::to_string))
            .collect())
    }

    fn read_manifest(&self, id: BackupId) -> Result<Manifest, Error> {
        let object = format!("{id}/{MANIFEST_FILE}");
        let bytes = self
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

impl Target for SwiftTarget {
    fn describe(&self) -> String {
        self.described.clone()
    }

    fn begin(&self, id: BackupId) -> Result<Box<dyn Upload>, Error> {
        self.ensure_container()
            .map_err(|e| self.remote(format!("creating container {}", self.container), e))?;
        let existing = self
            .objects_of(id)
            .map_err(|e| self.remote(format!("listing {id}/"), e))?;
        if existing
            .iter()
            .any(|o| o.ends_with(&format!("/{MANIFEST_FILE}")))
        {
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
        Ok(Box::new(SwiftUpload {
            target: self.clone(),
            id,
            written: BTreeMap::new(),
        }))
    }

    fn list(&self) -> Result<Vec<Listed>, Error> {
        let ids = self
            .ids()
            .map_err(|e| self.remote(format!("listing container {}", self.container), e))?;
        let mut listed = Vec::new();
        for id in ids {
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
        let manifest = format!("{id}/{MANIFEST_FILE}");
        self.delete_object(&manifest)
            .map_err(|e| self.remote(format!("deleting {manifest}"), e))?;
        for object in self
            .objects_of(id)
            .map_err(|e| self.remote(format!("listing {id}/"), e))?
        {
            self.delete_object(&object)
                .map_err(|e| self.remote(format!("deleting {object}"), e))?;
        }
        Ok(())
    }

    fn sweep_partial(&self) -> Result<Vec<String>, Error> {
        let ids = self
            .ids()
            .map_err(|e| self.remote(format!("listing container {}", self.container), e))?;
        let mut removed = Vec::new();
        for id in ids {
            let objects = self
                .objects_of(id)
                .map_err(|e| self.remote(format!("listing {id}/"), e))?;
            if objects
                .iter()
                .any(|o| o.ends_with(&format!("/{MANIFEST_FILE}")))
            {
                continue;
            }
            for object in &objects {
                self.delete_object(object)
                    .map_err(|e| self.remote(format!("deleting {object}"), e))?;
            }
            removed.push(format!("{id}/"));
        }
        Ok(removed)
    }
}

/// A backup being written to Swift: its parts so far.
struct SwiftUpload {
    target: SwiftTarget,
    id: BackupId,
    written: BTreeMap<String, u64>,
}

impl Upload for SwiftUpload {
    fn id(&self) -> BackupId {
        self.id
    }

    fn put_part(&mut self, file: &str, bytes: &[u8]) -> Result<(), Error> {
        check_part_file(file)?;
        let object = format!("{}/{file}", self.id);
        self.target
            .put(&object, bytes.to_vec(), "application/octet-stream")
            .map_err(|e| self.target.remote(format!("putting {object}"), e))?;
        self.written.insert(file.to_string(), bytes.len() as u64);
        Ok(())
    }

    fn commit(self: Box<Self>, manifest: &Manifest) -> Result<(), Error> {
        check_commit(self.id, &self.written, manifest)?;
        let object = format!("{}/{MANIFEST_FILE}", self.id);
        self.target
            .put(&object, manifest.to_json(), "application/json")
            .map_err(|e| self.target.remote(format!("putting {object}"), e))
    }

    fn abort(self: Box<Self>) -> Result<(), Error> {
        for file in self.written.keys() {
            let object = format!("{}/{file}", self.id);
            self.target
                .delete_object(&object)
                .map_err(|e| self.target.remote(format!("deleting {object}"), e))?;
        }
        Ok(())
    }
}
