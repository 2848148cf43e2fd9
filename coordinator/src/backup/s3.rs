//! The S3 target (`[backup.s3]`, issue 19): the object-store target of
//! [`triad_backup::object`] in one bucket of any S3 API (Swift's s3api, Ceph RGW, MinIO,
//! AWS). Requests are signed with AWS Signature Version 4 by `rusty-s3` (presigned URLs, so
//! the body is not part of the signature) and sent with the coordinator's `reqwest`; every
//! put carries its `Content-MD5`, so the store refuses (400 BadDigest) a part damaged on the
//! way.
//!
//! The secret access key is read from a root-only file when the target is opened, never from
//! the configuration file (which the operator may show around).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use triad_backup::object::{Listing, ObjectStore, ObjectTarget, StoreError};

use super::config::S3Config;

/// How long a signed URL is valid: the request is sent at once, but a large part over a
/// slow link must not outlive its signature.
const SIGNED_FOR: Duration = Duration::from_secs(3600);
/// Listing pages followed at most (1000 keys each): a listing that never ends is an error.
const MAX_PAGES: usize = 10_000;

/// Backups in an S3 bucket.
pub type S3Target = ObjectTarget<S3Store>;

/// One bucket of one S3 API.
pub struct S3Store {
    bucket: Bucket,
    credentials: Credentials,
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    described: String,
}

/// The secret in `path`: the file's first line; refused when group or others may read it.
pub fn read_secret_file(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mode = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: mode {:04o} lets group or others read the secret key; `chmod 600` it",
            path.display(),
            mode & 0o7777
        ));
    }
    let text = std::io::read_to_string(file).map_err(|e| format!("{}: {e}", path.display()))?;
    let secret = text.lines().next().unwrap_or("").trim().to_string();
    if secret.is_empty() {
        return Err(format!(
            "{}: empty (it holds the secret access key on its first line)",
            path.display()
        ));
    }
    Ok(secret)
}

/// The S3 error document's code and message (`<Code>NoSuchBucket</Code>`), when the body is
/// one; else the start of the body.
fn error_detail(body: &str) -> String {
    let field = |name: &str| {
        let open = format!("<{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&format!("</{name}>"))? + start;
        Some(body[start..end].trim().to_string())
    };
    match (field("Code"), field("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => body
            .chars()
            .take(200)
            .collect::<String>()
            .trim()
            .to_string(),
    }
}

impl S3Store {
    /// The bucket of `config`, with the secret key read from its file; `runtime` runs the
    /// calls. Errors name the key or the file at fault.
    pub fn open(config: &S3Config, runtime: tokio::runtime::Handle) -> Result<S3Store, String> {
        let secret = read_secret_file(&config.secret_key_file)
            .map_err(|e| format!("[backup.s3] secret_key_file: {e}"))?;
        Self::new(config, secret, runtime)
    }

    /// As [`S3Store::open`], with the secret given.
    pub fn new(
        config: &S3Config,
        secret: String,
        runtime: tokio::runtime::Handle,
    ) -> Result<S3Store, String> {
        let style = if config.virtual_host {
            UrlStyle::VirtualHost
        } else {
            UrlStyle::Path
        };
        let bucket = Bucket::new(
            config.endpoint.clone(),
            style,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| format!("[backup.s3] endpoint {}: {e}", config.endpoint))?;
        let client = reqwest::Client::builder()
            // a part of 64 MiB over a slow link: minutes
            .timeout(Duration::from_secs(600))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("triad-coordinator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("[backup.s3]: an HTTP client: {e}"))?;
        Ok(S3Store {
            described: config.describe(),
            bucket,
            credentials: Credentials::new(config.access_key_id.clone(), secret),
            client,
            runtime,
        })
    }

    /// The target over this store.
    pub fn target(self) -> S3Target {
        ObjectTarget::new(self)
    }

    /// Sends one signed request from this (blocking) thread: the status and body.
    fn send(
        &self,
        method: Method,
        url: reqwest::Url,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Vec<u8>), StoreError> {
        let what = format!("{method} {}", url.path());
        let mut request = self.client.request(method, url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        self.runtime
            .block_on(async {
                let response = request.send().await?;
                let status = response.status();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, body.to_vec()))
            })
            .map_err(|e| StoreError(format!("{what}: {e}")))
    }

    /// `send`, with any status but 2xx an error carrying S3's code and message.
    fn expect_success(
        &self,
        method: Method,
        url: reqwest::Url,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, StoreError> {
        let path = url.path().to_string();
        let method_name = method.to_string();
        let (status, body) = self.send(method, url, headers, body)?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(failed(&method_name, &path, status, &body))
        }
    }
}

fn failed(method: &str, path: &str, status: StatusCode, body: &[u8]) -> StoreError {
    StoreError(format!(
        "{method} {path}: {status}: {}",
        error_detail(&String::from_utf8_lossy(body))
    ))
}

impl ObjectStore for S3Store {
    fn describe(&self) -> String {
        self.described.clone()
    }

    fn ensure_container(&self) -> Result<(), StoreError> {
        let head = self
            .bucket
            .head_bucket(Some(&self.credentials))
            .sign(SIGNED_FOR);
        let path = head.path().to_string();
        let (status, body) = self.send(Method::HEAD, head, &[], None)?;
        match status {
            status if status.is_success() => Ok(()),
            StatusCode::NOT_FOUND => {
                let create = self.bucket.create_bucket(&self.credentials);
                let config = create.body();
                let url = create.sign(SIGNED_FOR);
                let path = url.path().to_string();
                let (status, body) = self.send(Method::PUT, url, &[], Some(config.into_bytes()))?;
                // made by a racing call meanwhile: as good
                if status.is_success() || status == StatusCode::CONFLICT {
                    Ok(())
                } else {
                    Err(failed("PUT", &path, status, &body))
                }
            }
            status => Err(failed("HEAD", &path, status, &body)),
        }
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), name)
            .sign(SIGNED_FOR);
        let path = url.path().to_string();
        match self.send(Method::GET, url, &[], None)? {
            (status, body) if status.is_success() => Ok(Some(body)),
            (StatusCode::NOT_FOUND, _) => Ok(None),
            (status, body) => Err(failed("GET", &path, status, &body)),
        }
    }

    fn put(&self, name: &str, bytes: &[u8], content_type: &str) -> Result<(), StoreError> {
        use md5::Digest as _;
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(bytes));
        let url = self
            .bucket
            .put_object(Some(&self.credentials), name)
            .sign(SIGNED_FOR);
        let headers = [
            ("Content-MD5", md5),
            ("Content-Type", content_type.to_string()),
        ];
        self.expect_success(Method::PUT, url, &headers, Some(bytes.to_vec()))
            .map(drop)
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), name)
            .sign(SIGNED_FOR);
        let path = url.path().to_string();
        match self.send(Method::DELETE, url, &[], None)? {
            (status, _) if status.is_success() || status == StatusCode::NOT_FOUND => Ok(()),
            (status, body) => Err(failed("DELETE", &path, status, &body)),
        }
    }

    fn list(&self, prefix: &str, delimited: bool) -> Result<Listing, StoreError> {
        let mut listing = Listing::default();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            action.with_prefix(prefix);
            if delimited {
                action.with_delimiter("/");
            }
            if let Some(token) = &token {
                action.with_continuation_token(token.clone());
            }
            let url = action.sign(SIGNED_FOR);
            let path = url.path().to_string();
            let body = match self.send(Method::GET, url, &[], None)? {
                (status, body) if status.is_success() => body,
                // no bucket yet: nothing was ever stored
                (StatusCode::NOT_FOUND, body)
                    if String::from_utf8_lossy(&body).contains("NoSuchBucket") =>
                {
                    return Ok(listing)
                }
                (status, body) => return Err(failed("GET", &path, status, &body)),
            };
            let page =
                rusty_s3::actions::ListObjectsV2::parse_response(&String::from_utf8_lossy(&body))
                    .map_err(|e| {
                    StoreError(format!("GET {path}: a listing S3 should not send: {e}"))
                })?;
            listing
                .names
                .extend(page.contents.into_iter().map(|c| c.key));
            listing
                .prefixes
                .extend(page.common_prefixes.into_iter().map(|p| p.prefix));
            match page.next_continuation_token {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => return Ok(listing),
            }
        }
        Err(StoreError(format!(
            "listing {prefix:?} did not end after {MAX_PAGES} pages"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_documents_give_their_code_and_message() {
        let body = "<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>";
        assert_eq!(
            error_detail(body),
            "SignatureDoesNotMatch: The request signature we calculated does not match"
        );
        assert_eq!(error_detail("<Error><Code>X</Code></Error>"), "X");
        assert_eq!(error_detail("  plain words "), "plain words");
    }

    #[test]
    fn a_secret_file_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s3.secret");
        std::fs::write(&path, "s3cr3t\nignored\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = read_secret_file(&path).unwrap_err();
        assert!(
            error.contains("0644") && error.contains("s3.secret"),
            "{error}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret_file(&path).unwrap(), "s3cr3t");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_secret_file(&path).unwrap_err().contains("empty"));
        let missing = read_secret_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.contains("nope"), "{missing}");
    }
}
