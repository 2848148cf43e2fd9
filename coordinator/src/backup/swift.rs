//! The OpenStack Swift target (`[backup.swift]`, issue 19): the object-store target of
//! [`triad_backup::object`] in one container of the cluster's cloud (the clouds.yaml
//! credentials the balancer and the autoscaler use). Every part is put with its MD5 as
//! `ETag`, so Swift refuses (422) a part damaged on the way.
//!
//! The store's calls are synchronous (the coordinator runs targets on blocking threads):
//! each runs the async OpenStack session on the runtime's handle.

use std::sync::Arc;

use reqwest::Method;
use triad_backup::object::{Listing, ObjectStore, ObjectTarget, StoreError};

use crate::openstack::session::Session;
use crate::openstack::OpenStackError;

/// Swift's largest listing page.
const PAGE: usize = 10_000;

/// Backups in a Swift container.
pub type SwiftTarget = ObjectTarget<SwiftStore>;

/// One container of one cloud.
pub struct SwiftStore {
    session: Arc<Session>,
    container: String,
    runtime: tokio::runtime::Handle,
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

impl SwiftStore {
    /// Backups in `container` of the cloud `session` speaks to; `runtime` runs its calls.
    pub fn new(
        session: Arc<Session>,
        container: String,
        runtime: tokio::runtime::Handle,
    ) -> SwiftStore {
        SwiftStore {
            session,
            container,
            runtime,
        }
    }

    /// The target over this store.
    pub fn target(self) -> SwiftTarget {
        ObjectTarget::new(self)
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
}

fn store_error(error: OpenStackError) -> StoreError {
    StoreError(error.to_string())
}

impl ObjectStore for SwiftStore {
    fn describe(&self) -> String {
        format!("swift {}/{}", self.session.cloud().name, self.container)
    }

    /// PUT is idempotent in Swift.
    fn ensure_container(&self) -> Result<(), StoreError> {
        let path = format!("/{}", encode(&self.container));
        self.call(Method::PUT, &path, &[], Some(Vec::new()), &[])
            .map(drop)
            .map_err(store_error)
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.call(Method::GET, &self.path(name), &[], None, &[]) {
            Ok(body) => Ok(Some(body)),
            Err(error) if error.status() == Some(404) => Ok(None),
            Err(error) => Err(store_error(error)),
        }
    }

    fn put(&self, name: &str, bytes: &[u8], content_type: &str) -> Result<(), StoreError> {
        let etag = md5_hex(bytes);
        let headers = [("ETag", etag.as_str()), ("Content-Type", content_type)];
        self.call(
            Method::PUT,
            &self.path(name),
            &[],
            Some(bytes.to_vec()),
            &headers,
        )
        .map(drop)
        .map_err(store_error)
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        match self.call(Method::DELETE, &self.path(name), &[], None, &[]) {
            Ok(_) => Ok(()),
            Err(error) if error.status() == Some(404) => Ok(()),
            Err(error) => Err(store_error(error)),
        }
    }

    fn list(&self, prefix: &str, delimited: bool) -> Result<Listing, StoreError> {
        let entries = self
            .listing(prefix, delimited.then_some("/"))
            .map_err(store_error)?;
        let field = |entry: &serde_json::Value, key: &str| {
            entry.get(key).and_then(|v| v.as_str()).map(str::to_string)
        };
        Ok(Listing {
            names: entries.iter().filter_map(|e| field(e, "name")).collect(),
            prefixes: entries.iter().filter_map(|e| field(e, "subdir")).collect(),
        })
    }
}
