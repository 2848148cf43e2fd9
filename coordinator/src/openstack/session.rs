//! A Keystone v3 session: password or application-credential authentication, the service
//! catalog, and authenticated JSON requests.
//!
//! The token is cached with its expiry and catalog and renewed before it expires
//! (keystoneauth renews 120 s before; for short-lived tokens, at half their lifetime,
//! whichever comes first), and once more when a request answers 401, after which the
//! request is replayed once. Only one task re-authenticates at a time (a mutex around the
//! cached token). Keystone token-for-token exchange does not extend expiry, so renewal
//! always re-sends the configured credentials.

use std::time::{Duration, SystemTime};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::config::{AuthMethod, CloudConfig, NameOrId};
use super::{OpenStackError, Secret};

#[derive(Debug, Clone, Deserialize)]
pub struct CatalogEntry {
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Endpoint {
    pub interface: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub region_id: Option<String>,
    pub url: String,
}

#[derive(Debug, Clone)]
struct Token {
    value: Secret,
    renew_at: SystemTime,
    catalog: Vec<CatalogEntry>,
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    token: TokenInfo,
}

#[derive(Debug, Deserialize)]
struct TokenInfo {
    expires_at: String,
    #[serde(default)]
    issued_at: Option<String>,
    #[serde(default)]
    catalog: Vec<CatalogEntry>,
}

/// An authenticated session against one cloud.
#[derive(Debug)]
pub struct Session {
    cloud: CloudConfig,
    http: reqwest::Client,
    token: Mutex<Option<Token>>,
}

fn parse_time(text: &str) -> Option<SystemTime> {
    // Keystone writes "2018-01-15T22:14:05.000000Z"; tolerate a missing 'Z'.
    let normalized = if text.ends_with('Z') || text.contains('+') {
        text.to_string()
    } else {
        format!("{text}Z")
    };
    humantime::parse_rfc3339_weak(normalized.trim_end_matches('Z'))
        .ok()
        .or_else(|| humantime::parse_rfc3339(&normalized).ok())
}

impl Session {
    /// Certificates are checked against the system's roots (rustls-native-certs: the
    /// platform store, or `SSL_CERT_FILE`/`SSL_CERT_DIR` when set), so a private cloud's
    /// CA installed there needs no `cacert`; a `cacert` is trusted besides them.
    pub fn new(cloud: CloudConfig, timeout: Duration) -> Result<Session, OpenStackError> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("triad-coordinator/", env!("CARGO_PKG_VERSION")));
        if !cloud.verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if let Some(cacert) = &cloud.cacert {
            let pem = std::fs::read(cacert).map_err(|e| {
                OpenStackError::Config(format!(
                    "cloud {:?}: cannot read cacert {}: {e}",
                    cloud.name,
                    cacert.display()
                ))
            })?;
            let certificate = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                OpenStackError::Config(format!(
                    "cloud {:?}: cacert {} is not PEM: {e}",
                    cloud.name,
                    cacert.display()
                ))
            })?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder
            .build()
            .map_err(|e| OpenStackError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Session {
            cloud,
            http,
            token: Mutex::new(None),
        })
    }

    pub fn cloud(&self) -> &CloudConfig {
        &self.cloud
    }

    fn auth_error(&self, message: String) -> OpenStackError {
        OpenStackError::Auth {
            cloud: self.cloud.name.clone(),
            auth_url: self.cloud.auth_url.clone(),
            message,
        }
    }

    fn auth_body(&self) -> Value {
        let name_or_id = |value: &NameOrId| match value {
            NameOrId::Name(name) => json!({ "name": name }),
            NameOrId::Id(id) => json!({ "id": id }),
        };
        let with_domain = |value: &NameOrId, domain: &NameOrId| match value {
            NameOrId::Id(id) => json!({ "id": id }),
            NameOrId::Name(name) => json!({ "name": name, "domain": name_or_id(domain) }),
        };
        match &self.cloud.auth {
            AuthMethod::Password {
                user,
                user_domain,
                password,
                project,
                project_domain,
            } => {
                let mut user_json = with_domain(user, user_domain);
                user_json["password"] = json!(password.expose());
                let mut auth = json!({
                    "identity": { "methods": ["password"], "password": { "user": user_json } }
                });
                if let Some(project) = project {
                    auth["scope"] = json!({ "project": with_domain(project, project_domain) });
                }
                json!({ "auth": auth })
            }
            AuthMethod::ApplicationCredential {
                credential,
                user,
                secret,
            } => {
                // No scope: Keystone refuses a scope with application credentials.
                let mut credential_json = name_or_id(credential);
                credential_json["secret"] = json!(secret.expose());
                if let Some((user, domain)) = user {
                    credential_json["user"] = with_domain(user, domain);
                }
                json!({ "auth": { "identity": {
                    "methods": ["application_credential"],
                    "application_credential": credential_json
                } } })
            }
        }
    }

    fn tokens_url(&self) -> String {
        let base = self.cloud.auth_url.trim_end_matches('/');
        if base.ends_with("/v3") {
            format!("{base}/auth/tokens")
        } else {
            format!("{base}/v3/auth/tokens")
        }
    }

    async fn authenticate(&self) -> Result<Token, OpenStackError> {
        let url = self.tokens_url();
        let response = self
            .http
            .post(&url)
            .json(&self.auth_body())
            .send()
            .await
            .map_err(|e| self.auth_error(format!("cannot reach Keystone: {}", without_url(&e))))?;
        let status = response.status();
        let header = response
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.bytes().await.map_err(|e| {
            self.auth_error(format!(
                "cannot read Keystone's answer: {}",
                without_url(&e)
            ))
        })?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(self.auth_error(
                "401 Unauthorized: the credentials were refused (check the user, password or application credential, and the project)".into(),
            ));
        }
        if !status.is_success() {
            return Err(self.auth_error(format!("{status}: {}", excerpt(&body))));
        }
        let value = header
            .ok_or_else(|| self.auth_error("no X-Subject-Token header in the answer".into()))?;
        let info: TokenBody = serde_json::from_slice(&body).map_err(|e| {
            self.auth_error(format!("the token answer is not the expected JSON: {e}"))
        })?;
        let expires_at = parse_time(&info.token.expires_at).ok_or_else(|| {
            self.auth_error(format!(
                "token expires_at {:?} is not a time",
                info.token.expires_at
            ))
        })?;
        let issued_at = info
            .token
            .issued_at
            .as_deref()
            .and_then(parse_time)
            .unwrap_or_else(SystemTime::now);
        let lifetime = expires_at.duration_since(issued_at).unwrap_or_default();
        let margin = Duration::from_secs(120).min(lifetime / 2);
        tracing::debug!(cloud = %self.cloud.name, lifetime = ?lifetime, "authenticated to keystone");
        Ok(Token {
            value: Secret::new(value),
            renew_at: expires_at - margin,
            catalog: info.token.catalog,
        })
    }

    /// The cached token, renewed when close to expiry or when `invalidate` says so.
    async fn token(&self, invalidate: Option<&Secret>) -> Result<Token, OpenStackError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            let stale = invalidate.is_some_and(|bad| bad == &token.value);
            if !stale && SystemTime::now() < token.renew_at {
                return Ok(token.clone());
            }
        }
        let token = self.authenticate().await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Authenticate now (to fail early with a clear error at start).
    pub async fn check(&self) -> Result<(), OpenStackError> {
        self.token(None).await.map(|_| ())
    }

    /// The endpoint URL for `service_type` from the catalog (interface, then region).
    pub async fn endpoint(&self, service_type: &str) -> Result<String, OpenStackError> {
        let token = self.token(None).await?;
        self.endpoint_in(&token, service_type)
    }

    fn endpoint_in(&self, token: &Token, service_type: &str) -> Result<String, OpenStackError> {
        let region = self.cloud.region_name.as_deref();
        token
            .catalog
            .iter()
            .filter(|entry| entry.service_type == service_type)
            .flat_map(|entry| entry.endpoints.iter())
            .find(|endpoint| {
                endpoint.interface == self.cloud.interface
                    && region.is_none_or(|r| {
                        endpoint.region_id.as_deref() == Some(r)
                            || endpoint.region.as_deref() == Some(r)
                    })
            })
            .map(|endpoint| endpoint.url.trim_end_matches('/').to_string())
            .ok_or_else(|| OpenStackError::NoEndpoint {
                cloud: self.cloud.name.clone(),
                service_type: service_type.to_string(),
                interface: self.cloud.interface.clone(),
                region: region
                    .map(|r| format!(" in region {r}"))
                    .unwrap_or_default(),
            })
    }

    /// An authenticated request to `service_type` at `path` (appended to the catalog URL).
    /// Returns the status and the parsed JSON body (Null for empty bodies). Non-2xx
    /// answers are errors carrying Octavia's `faultstring` when there is one. On 401 the
    /// token is renewed and the request replayed once.
    pub async fn request(
        &self,
        method: Method,
        service_type: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, OpenStackError> {
        self.request_with(method, service_type, path, &[], body, &[])
            .await
    }

    /// [`Session::request`] with query parameters (escaped by reqwest) and extra headers
    /// (Nova's microversion).
    pub async fn request_with(
        &self,
        method: Method,
        service_type: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value, OpenStackError> {
        let body = body.map(Body::Json);
        let (_, url, bytes) = self
            .send(method.clone(), service_type, path, query, body, headers)
            .await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| OpenStackError::Decode {
            method: method.to_string(),
            url,
            message: format!("{e}; body starts {:?}", excerpt(&bytes)),
        })
    }

    /// An authenticated request whose body and answer are bytes, not JSON (Swift's
    /// objects): the answer's headers and body. Non-2xx answers are errors
    /// ([`OpenStackError::status`] gives the code: 404 for a missing object).
    pub async fn request_bytes(
        &self,
        method: Method,
        service_type: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<(reqwest::header::HeaderMap, Vec<u8>), OpenStackError> {
        let (headers, _, bytes) = self
            .send(
                method,
                service_type,
                path,
                query,
                body.map(Body::Bytes),
                headers,
            )
            .await?;
        Ok((headers, bytes))
    }

    /// The request, replayed once with a new token on 401; a non-2xx answer is an error.
    async fn send(
        &self,
        method: Method,
        service_type: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<Body<'_>>,
        headers: &[(&str, &str)],
    ) -> Result<(reqwest::header::HeaderMap, String, Vec<u8>), OpenStackError> {
        let mut token = self.token(None).await?;
        let mut replayed = false;
        loop {
            let base = format!("{}{}", self.endpoint_in(&token, service_type)?, path);
            let mut builder = self
                .http
                .request(method.clone(), &base)
                .header("X-Auth-Token", token.value.expose())
                .header("Accept", "application/json");
            if !query.is_empty() {
                builder = builder.query(query);
            }
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            match &body {
                Some(Body::Json(value)) => builder = builder.json(value),
                Some(Body::Bytes(bytes)) => builder = builder.body(bytes.clone()),
                None => {}
            }
            let request = builder.build().map_err(|e| OpenStackError::Transport {
                method: method.to_string(),
                url: base.clone(),
                timeout: false,
                message: without_url(&e),
            })?;
            let url = request.url().to_string();
            let transport = |e: reqwest::Error| OpenStackError::Transport {
                method: method.to_string(),
                url: url.clone(),
                timeout: e.is_timeout(),
                message: without_url(&e),
            };
            let response = self.http.execute(request).await.map_err(transport)?;
            let status = response.status();
            let answer_headers = response.headers().clone();
            let bytes = response.bytes().await.map_err(transport)?;
            if status == StatusCode::UNAUTHORIZED && !replayed {
                tracing::info!(cloud = %self.cloud.name, %url, "token refused; re-authenticating once");
                token = self.token(Some(&token.value)).await?;
                replayed = true;
                continue;
            }
            if !status.is_success() {
                return Err(OpenStackError::Http {
                    method: method.to_string(),
                    url,
                    status: status.as_u16(),
                    message: fault_message(&bytes),
                });
            }
            return Ok((answer_headers, url, bytes.to_vec()));
        }
    }

    /// Every object of a paginated list: the `key` array of each page, following the
    /// `{key}_links` `next` link until there is none. Only the link's query is taken (its
    /// host and path are the API's own view, wrong behind a proxy), laid over `query`
    /// (Octavia's links drop the filters). A link without a new marker, or more than
    /// [`MAX_PAGES`] pages, is an error rather than a loop.
    pub async fn list(
        &self,
        service_type: &str,
        path: &str,
        query: &[(String, String)],
        key: &str,
        headers: &[(&str, &str)],
    ) -> Result<Vec<Value>, OpenStackError> {
        let mut query = query.to_vec();
        let mut items = Vec::new();
        let mut markers = std::collections::BTreeSet::new();
        for _ in 0..MAX_PAGES {
            let mut page = self
                .request_with(Method::GET, service_type, path, &query, None, headers)
                .await?;
            let failure = |message: String| OpenStackError::Decode {
                method: "GET".into(),
                url: page_url(path, &query),
                message,
            };
            match page.get_mut(key).map(Value::take) {
                Some(Value::Array(found)) => items.extend(found),
                Some(_) => return Err(failure(format!("`{key}` is not a list"))),
                None => return Err(failure(format!("no `{key}` in the answer"))),
            }
            let Some(href) = next_link(&page, key) else {
                return Ok(items);
            };
            let link = reqwest::Url::parse("http://next.invalid/")
                .and_then(|base| base.join(&href))
                .map_err(|e| failure(format!("its next link {href:?} is not a URL: {e}")))?;
            let mut marker = None;
            for (name, value) in link.query_pairs() {
                if name == "marker" {
                    marker = Some(value.to_string());
                }
                query.retain(|(k, _)| *k != name);
            }
            query.extend(
                link.query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned())),
            );
            match marker {
                Some(marker) if markers.insert(marker.clone()) => {}
                _ => {
                    return Err(OpenStackError::Pagination {
                        url: page_url(path, &query),
                        message: format!("the next link {href:?} names no new marker"),
                    })
                }
            }
        }
        Err(OpenStackError::Pagination {
            url: page_url(path, &query),
            message: format!("more than {MAX_PAGES} pages; not following further"),
        })
    }
}

/// Pages [`Session::list`] follows before giving up (1000 objects a page by default in
/// Nova and Octavia: a million objects).
pub const MAX_PAGES: usize = 1000;

/// The `href` of the `next` link among `{key}_links`.
fn next_link(page: &Value, key: &str) -> Option<String> {
    page.get(format!("{key}_links"))?
        .as_array()?
        .iter()
        .find(|link| link.get("rel").and_then(Value::as_str) == Some("next"))?
        .get("href")?
        .as_str()
        .map(str::to_string)
}

/// `path?query` for errors (escaped as sent).
fn page_url(path: &str, query: &[(String, String)]) -> String {
    let mut url = reqwest::Url::parse("http://x.invalid/").expect("a constant URL");
    url.query_pairs_mut().extend_pairs(query);
    match url.query() {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    }
}

/// reqwest errors print their URL; ours already name it. A certificate refused gets
/// the ways to trust it.
fn without_url(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    if let Some(url) = error.url() {
        message = message.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    if message.contains("invalid peer certificate") {
        message.push_str(
            " (the server's certificate is not trusted: install its CA in the system store, or name it as cacert in clouds.yaml)",
        );
    }
    message
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Octavia's wsme fault `{"faultstring": ...}`, Keystone/Nova `{"error": {"message"}}` /
/// `{"badRequest": {"message"}}`, else a body excerpt.
fn fault_message(bytes: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        if let Some(fault) = value.get("faultstring").and_then(Value::as_str) {
            return fault.to_string();
        }
        if let Some(object) = value.as_object() {
            for inner in object.values() {
                if let Some(message) = inner.get("message").and_then(Value::as_str) {
                    return message.to_string();
                }
            }
        }
    }
    excerpt(bytes)
}

/// A request's body: JSON for the APIs, bytes for Swift's objects.
enum Body<'a> {
    Json(&'a Value),
    Bytes(Vec<u8>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystone_times_parse() {
        let t = parse_time("2018-01-15T22:14:05.000000Z").unwrap();
        let u = parse_time("2018-01-15T22:14:05Z").unwrap();
        assert_eq!(t, u);
        assert!(parse_time("not a time").is_none());
    }

    #[test]
    fn faults_are_extracted() {
        assert_eq!(
            fault_message(br#"{"faultcode":"Client","faultstring":"Load Balancer x is immutable and cannot be updated.","debuginfo":null}"#),
            "Load Balancer x is immutable and cannot be updated."
        );
        assert_eq!(
            fault_message(br#"{"itemNotFound":{"message":"no","code":404}}"#),
            "no"
        );
        assert_eq!(fault_message(b"<html>oops</html>"), "<html>oops</html>");
    }
}
