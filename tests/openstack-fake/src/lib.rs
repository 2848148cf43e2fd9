//! An in-process fake of the OpenStack APIs Triad uses: Keystone v3 tokens and catalog,
//! Octavia v2 (load balancers, listeners, pools, health monitors, members with the batch
//! update), the Nova calls autoscaling needs (servers create/get/list by tag/delete,
//! server groups) and Swift for the backups (containers and objects). HTTP on
//! 127.0.0.1:0 (axum), or HTTPS with a given certificate ([`FakeCloud::start_https`]),
//! one process-local state.
//!
//! It models the real APIs' behaviour, failures included (shared/reference/openstack.md):
//! - Keystone: 201 with the token in `X-Subject-Token`, `expires_at`, a catalog with
//!   public/internal/admin endpoints in RegionOne; 401 for bad credentials; an
//!   application credential with a scope is refused; tokens expire (configurable
//!   lifetime, or all at once with [`FakeCloud::expire_tokens`]).
//! - Octavia: every mutation moves the load balancer to PENDING_UPDATE (new objects
//!   PENDING_CREATE); it becomes ACTIVE after `pending_polls` GETs of the load balancer;
//!   any mutation meanwhile answers 409 "... is immutable and cannot be updated."; ERROR
//!   can be injected and is terminal. Batch member update matches on
//!   (address, protocol_port), creates, updates (even unchanged) and deletes, answers 202
//!   with no body, returns early only when there is nothing at all to do, and refuses a
//!   pair twice (400). Name filters on lists; one health monitor per pool (409). Health
//!   monitors are validated as Octavia's API validates them ([`check_health_monitor`]):
//!   `type` one of Octavia's, retries 1-10, `expected_codes` matching Octavia's pattern
//!   (one code, a comma list, or one range), `url_path` a path, and `http_method`,
//!   `url_path` and `expected_codes` refused for types other than HTTP and HTTPS (which
//!   get the defaults GET, "/" and "200"; the others null).
//! - Octavia L7: policies on a listener (action one of Octavia's; REDIRECT_TO_POOL needs a
//!   pool of the same load balancer and protocol; `position` from 1, inserting shifts the
//!   others, deleting closes the gap once the load balancer settles) with rules created
//!   inline or one by one and checked as Octavia checks them ([`check_l7rule`]: type and
//!   comparison type, a key for HEADER and COOKIE, cookie-value characters); every change
//!   locks the load balancer (409 while PENDING), new objects are PENDING_CREATE and a
//!   deleted policy PENDING_DELETE until the load balancer settles.
//! - Nova: `BUILD` → `ACTIVE` after a few GETs; tag filters only with microversion ≥ 2.26
//!   (an older or missing microversion silently ignores them, as Nova does); DELETE 204;
//!   server groups with `policy` (≥ 2.64) or `policies`; user data must be base64 of at
//!   most 65535 characters, networks must exist, tags follow Nova's rules (no '/' or
//!   ','; at most 60 characters); a build can be made to go to ERROR (with a fault) or to
//!   hang in BUILD ([`FakeCloud::fail_next_build`]).
//! - Pagination ([`FakeOptions::page_size`]): lists honour `limit` and `marker` (an unknown
//!   marker is a 400) and answer at most a page; a full page carries a `next` link with
//!   the last id as marker, so the last full page is followed by an empty one. Nova's
//!   `servers_links`/`flavors_links` keep the request's filters; Octavia's
//!   `<collection>_links` keep only `limit` and `marker` (and add `previous`), as
//!   Octavia's do. Server groups page by `limit`/`offset` without links, as in Nova.
//! - Swift (object-store v1, `swift.rs`) at `{base}/swift/v1/AUTH_project-{project}`;
//!   another account is 403, no valid token 401, bodies are bytes (never parsed).
//!   Account GET lists containers (`name`, `count`, `bytes`, `last_modified`), HEAD
//!   answers `X-Account-*` counts. Containers: PUT 201 (202 if it exists), HEAD 204 with
//!   `X-Container-Object-Count`/`-Bytes-Used`, DELETE 204 or 409 while not empty, 404
//!   when missing. Listings as Swift's: sorted by name, `prefix`, `delimiter` (`subdir`
//!   entries), `marker`, `end_marker`, `reverse`, `limit` at most
//!   [`FakeOptions::swift_listing_limit`] (more is a 412, none means that many);
//!   `format=json` records, else names one a line (an empty one a 204). Objects: PUT
//!   201 with the MD5 as a bare `ETag`, 422 (nothing stored) when the request's `ETag`
//!   differs, 404 without the container, 411 without a length, 413 over
//!   [`FakeOptions::swift_max_file_size`], `If-None-Match: *` (412 when it exists),
//!   Content-Type kept (guessed from the name when absent), `X-Object-Meta-*` kept;
//!   GET/HEAD with ETag, Content-Length, Content-Type, Last-Modified, one byte range
//!   (206, 416), `If-Match`/`If-None-Match`; POST replaces the metadata (202); DELETE
//!   204/404. Every answer has an `X-Trans-Id`. Not modelled: large-object manifests,
//!   copies, expiry, versioning, XML listings.
//! - Fault injection ([`Fault`]): a status code (5xx), a delay (client timeouts) or a body
//!   that is not JSON, for requests matching a method and path fragment, a given number
//!   of times (for Swift, e.g. method PUT and `"/triad-backups/"`; its status faults have
//!   Swift's HTML body).
//!
//! The wire format is checked against the real `openstack` CLI in
//! `tests/openstack_cli.rs` and `tests/swift.rs`.

// Handlers return an early `Response` as their error (the answer to send); its size does
// not matter in a test fake.
#![allow(clippy::result_large_err)]

pub mod cli;
mod swift;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// Credentials and behaviour of the fake cloud.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    pub username: String,
    pub password: String,
    pub project: String,
    pub app_credential_id: String,
    pub app_credential_secret: String,
    pub token_lifetime: Duration,
    /// GETs of a load balancer before a PENDING_* state turns ACTIVE.
    pub pending_polls: u32,
    /// GETs of a server before BUILD turns ACTIVE.
    pub build_polls: u32,
    /// Most objects a list answers at once (Nova's `[api] max_limit` and Octavia's
    /// `[api_settings] pagination_max_limit`, both 1000 by default); a smaller `limit`
    /// is honoured.
    pub page_size: usize,
    /// Most entries a Swift listing answers at once (Swift's `container_listing_limit`
    /// and `account_listing_limit`, 10000 by default); a larger `limit` is a 412.
    pub swift_listing_limit: usize,
    /// Largest Swift object a PUT may store (Swift's `max_file_size`, 5 GiB + 2 bytes by
    /// default); a larger one is a 413.
    pub swift_max_file_size: u64,
}

impl Default for FakeOptions {
    fn default() -> FakeOptions {
        FakeOptions {
            username: "triad".into(),
            password: "correct-horse".into(),
            project: "web".into(),
            app_credential_id: "appcred-1".into(),
            app_credential_secret: "app-secret".into(),
            token_lifetime: Duration::from_secs(3600),
            pending_polls: 2,
            build_polls: 2,
            page_size: 1000,
            swift_listing_limit: 10_000,
            swift_max_file_size: 5_368_709_122,
        }
    }
}

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Answer this status with a JSON fault body (409: Octavia's "immutable" fault).
    Status(u16),
    /// Wait this long, then handle the request normally (client timeouts).
    Delay(Duration),
    /// Answer 200 with an HTML body.
    NotJson,
}

/// What a server build does instead of becoming ACTIVE ([`FakeCloud::fail_next_build`]).
#[derive(Debug, Clone, PartialEq)]
pub enum BuildOutcome {
    /// The server goes to ERROR with this fault message (Nova: "No valid host was found.
    /// There are not enough hosts available.").
    Error(String),
    /// The server stays BUILD (a hung boot).
    Stall,
}

/// A fault applied to the next `times` requests whose method matches (None = any) and
/// whose path contains `path_contains`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: Option<Method>,
    pub path_contains: String,
    pub kind: FaultKind,
    pub times: u32,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: Method,
    pub path: String,
    pub status: u16,
}

#[derive(Debug, Default)]
struct Store {
    next_id: u64,
    tokens: BTreeMap<String, SystemTime>,
    load_balancers: BTreeMap<String, Value>,
    /// LB id → GETs left before PENDING_* turns ACTIVE.
    pending: BTreeMap<String, u32>,
    listeners: BTreeMap<String, Value>,
    pools: BTreeMap<String, Value>,
    monitors: BTreeMap<String, Value>,
    /// pool id → members
    members: BTreeMap<String, Vec<Value>>,
    /// L7 policies (their `rules` hold only the rules' ids, as Octavia answers).
    l7policies: BTreeMap<String, Value>,
    /// L7 policy id → its rules.
    l7rules: BTreeMap<String, Vec<Value>>,
    servers: BTreeMap<String, Value>,
    building: BTreeMap<String, u32>,
    server_groups: BTreeMap<String, Value>,
    /// What the next server builds do instead of becoming ACTIVE.
    build_outcomes: Vec<BuildOutcome>,
    /// server id → the user data it was created with (decoded).
    user_data: BTreeMap<String, Vec<u8>>,
    /// The project's Swift account.
    swift: swift::Account,
    faults: Vec<Fault>,
    log: Vec<Logged>,
}

struct Shared {
    options: FakeOptions,
    base: String,
    store: Mutex<Store>,
}

/// A running fake cloud; the server task ends when this is dropped.
pub struct FakeCloud {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCloud")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for FakeCloud {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now_text() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .trim_end_matches('Z')
        .to_string()
}

fn fault_body(status: StatusCode, message: &str) -> Response {
    let code = if status.is_client_error() {
        "Client"
    } else {
        "Server"
    };
    (
        status,
        [("content-type", "application/json")],
        json!({"faultcode": code, "faultstring": message, "debuginfo": null}).to_string(),
    )
        .into_response()
}

fn nova_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({ kind: {"code": status.as_u16(), "message": message} }).to_string(),
    )
        .into_response()
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn unauthorized() -> Response {
    nova_error(
        StatusCode::UNAUTHORIZED,
        "error",
        "The request you have made requires authentication.",
    )
}

/// TLS on the fake's listener: each accepted connection's handshake (bounded), failed
/// ones dropped (a client refusing the certificate).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let handshake = self.acceptor.accept(stream);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

impl FakeCloud {
    pub async fn start(options: FakeOptions) -> FakeCloud {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake cloud on 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let (shared, app) = FakeCloud::app(options, format!("http://{addr}"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeCloud { addr, shared, task }
    }

    /// The fake over HTTPS at `https://127.0.0.1:PORT` with this certificate chain and
    /// key (PEM; the certificate must name IP 127.0.0.1).
    pub async fn start_https(options: FakeOptions, chain_pem: &str, key_pem: &str) -> FakeCloud {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("a PEM certificate chain");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("a PEM private key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("the certificate and key match");
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake cloud on 127.0.0.1");
        let addr = tcp.local_addr().expect("local addr");
        let listener = TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        let (shared, app) = FakeCloud::app(options, format!("https://{addr}"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeCloud { addr, shared, task }
    }

    fn app(options: FakeOptions, base: String) -> (Arc<Shared>, axum::Router) {
        let shared = Arc::new(Shared {
            options,
            base,
            store: Mutex::new(Store::default()),
        });
        // Swift objects are larger than axum's default 2 MB body limit
        let app = axum::Router::new()
            .fallback(handle)
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(shared.clone());
        (shared, app)
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keystone's URL as clouds.yaml wants it.
    pub fn auth_url(&self) -> String {
        format!("{}/identity/v3", self.shared.base)
    }

    /// A clouds.yaml with a password cloud `name` and an application-credential cloud
    /// `{name}-appcred`.
    pub fn clouds_yaml(&self, name: &str) -> String {
        let o = &self.shared.options;
        format!(
            "clouds:\n  {name}:\n    auth:\n      auth_url: {url}\n      username: {user}\n      password: {password}\n      project_name: {project}\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    interface: public\n    identity_api_version: 3\n  {name}-appcred:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: {url}\n      application_credential_id: {id}\n      application_credential_secret: {secret}\n    region_name: RegionOne\n",
            url = self.auth_url(),
            user = o.username,
            password = o.password,
            project = o.project,
            id = o.app_credential_id,
            secret = o.app_credential_secret,
        )
    }

    pub fn inject(&self, fault: Fault) {
        self.store().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.store().faults.clear();
    }

    /// Every token issued so far is now expired (the next use answers 401).
    pub fn expire_tokens(&self) {
        let past = SystemTime::now() - Duration::from_secs(1);
        for expiry in self.store().tokens.values_mut() {
            *expiry = past;
        }
    }

    pub fn tokens_issued(&self) -> usize {
        self.store().tokens.len()
    }

    /// Force a load balancer's provisioning_status (e.g. "ERROR").
    pub fn set_lb_status(&self, lb_id: &str, status: &str) {
        let mut store = self.store();
        store.pending.remove(lb_id);
        if let Some(lb) = store.load_balancers.get_mut(lb_id) {
            lb["provisioning_status"] = json!(status);
        }
    }

    pub fn load_balancers(&self) -> Vec<Value> {
        self.store().load_balancers.values().cloned().collect()
    }

    pub fn pools(&self) -> Vec<Value> {
        self.store().pools.values().cloned().collect()
    }

    pub fn listeners(&self) -> Vec<Value> {
        self.store().listeners.values().cloned().collect()
    }

    pub fn monitors(&self) -> Vec<Value> {
        self.store().monitors.values().cloned().collect()
    }

    /// L7 policies as stored (PENDING_DELETE ones included).
    pub fn l7policies(&self) -> Vec<Value> {
        self.store().l7policies.values().cloned().collect()
    }

    /// The rules of an L7 policy as stored.
    pub fn l7rules(&self, policy_id: &str) -> Vec<Value> {
        self.store()
            .l7rules
            .get(policy_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Members of a pool as stored (PENDING_DELETE ones included).
    pub fn members(&self, pool_id: &str) -> Vec<Value> {
        self.store()
            .members
            .get(pool_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The next server created meets `outcome` (queued: one per create).
    pub fn fail_next_build(&self, outcome: BuildOutcome) {
        self.store().build_outcomes.push(outcome);
    }

    /// The user data server `id` was created with, decoded from base64.
    pub fn user_data(&self, id: &str) -> Option<Vec<u8>> {
        self.store().user_data.get(id).cloned()
    }

    /// Server groups as stored.
    pub fn server_groups(&self) -> Vec<Value> {
        self.store().server_groups.values().cloned().collect()
    }

    /// A server created directly in the fake (as another tool or a lost create would),
    /// already ACTIVE; returns its id.
    pub fn add_server(&self, name: &str, tags: &[&str]) -> String {
        let mut store = self.store();
        let id = new_id(&mut store, 6);
        let now = now_text();
        store.servers.insert(
            id.clone(),
            json!({"id": id, "name": name, "status": "ACTIVE", "tags": tags, "metadata": {},
                   "created": now, "updated": now, "addresses": {}, "OS-EXT-STS:task_state": null,
                   "image": "", "flavor": {"original_name": "m1.small", "vcpus": 2, "ram": 4096,
                   "disk": 20, "ephemeral": 0, "swap": 0, "extra_specs": {}},
                   "links": [], "fake:address": "10.0.1.250"}),
        );
        id
    }

    pub fn servers(&self) -> Vec<Value> {
        self.store().servers.values().cloned().collect()
    }

    pub fn log(&self) -> Vec<Logged> {
        self.store().log.clone()
    }

    /// Requests with `method` whose path contains `fragment` and that got a 2xx.
    pub fn successful(&self, method: &Method, fragment: &str) -> usize {
        self.store()
            .log
            .iter()
            .filter(|l| {
                l.method == method && l.path.contains(fragment) && (200..300).contains(&l.status)
            })
            .count()
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/').to_string();
    let query: BTreeMap<String, String> = uri
        .query()
        .map(|q| {
            q.split('&')
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (k.to_string(), percent_decode(v))
                })
                .collect()
        })
        .unwrap_or_default();
    let fault = {
        let mut store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
        let position = store.faults.iter().position(|f| {
            f.times > 0
                && f.method.as_ref().is_none_or(|m| m == method)
                && path.contains(&f.path_contains)
        });
        position.map(|i| {
            store.faults[i].times -= 1;
            let kind = store.faults[i].kind.clone();
            if store.faults[i].times == 0 {
                store.faults.remove(i);
            }
            kind
        })
    };
    let response = match fault {
        Some(FaultKind::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if path.starts_with("/swift/") {
                swift::answer(status)
            } else if code == 409 {
                // What a concurrent mutation by someone else looks like.
                fault_body(
                    status,
                    "Load Balancer (injected) is immutable and cannot be updated.",
                )
            } else {
                fault_body(status, "injected fault")
            }
        }
        Some(FaultKind::NotJson) => (
            StatusCode::OK,
            [("content-type", "text/html")],
            "<html><body>502 Bad Gateway (proxy)</body></html>",
        )
            .into_response(),
        Some(FaultKind::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            route(&shared, &method, uri.path(), &query, &headers, &body)
        }
        None => route(&shared, &method, uri.path(), &query, &headers, &body),
    };
    let mut store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
    store.log.push(Logged {
        method,
        path: uri.to_string(),
        status: response.status().as_u16(),
    });
    response
}

/// Percent-encoding of a query value in a link.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `uri_path` as sent: Swift object names may end in '/'.
fn route(
    shared: &Shared,
    method: &Method,
    uri_path: &str,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let path = uri_path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["identity"] => return json_response(StatusCode::OK, identity_versions(&shared.base)),
        ["identity", "v3"] => {
            return json_response(
                StatusCode::OK,
                json!({"version": identity_version(&shared.base)}),
            )
        }
        ["identity", "v3", "auth", "tokens"] if method == Method::POST => {
            return issue_token(shared, body)
        }
        ["load-balancer"] => return json_response(StatusCode::OK, octavia_versions(&shared.base)),
        ["network"] => {
            return json_response(
                StatusCode::OK,
                json!({"versions": [{"id": "v2.0", "status": "CURRENT",
                    "links": [{"rel": "self", "href": format!("{}/network/v2.0/", shared.base)}]}]}),
            )
        }
        ["compute"] => {
            return json_response(
                StatusCode::OK,
                json!({"versions": [nova_version(&shared.base)]}),
            )
        }
        ["compute", "v2.1"] => {
            return json_response(
                StatusCode::OK,
                json!({"version": nova_version(&shared.base)}),
            )
        }
        ["swift", "info"] if method == Method::GET => return swift::info(shared),
        _ => {}
    }
    let token = headers.get("x-auth-token").and_then(|v| v.to_str().ok());
    let mut store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
    let valid = token
        .and_then(|t| store.tokens.get(t))
        .is_some_and(|expiry| *expiry > SystemTime::now());
    let is_swift = segments.first() == Some(&"swift");
    if !valid {
        return if is_swift {
            swift::unauthorized(&format!("{}/identity/v3", shared.base))
        } else {
            unauthorized()
        };
    }
    // before the JSON parsing below: Swift's bodies are the objects' bytes
    if is_swift {
        let request = swift::Request {
            method,
            path: uri_path,
            query,
            headers,
            body,
        };
        return swift::route(shared, &mut store, &request);
    }
    let parsed: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(body) {
            Ok(value) => Some(value),
            Err(e) => return fault_body(StatusCode::BAD_REQUEST, &format!("Invalid input: {e}")),
        }
    };
    match segments.as_slice() {
        ["load-balancer", version, "lbaas", rest @ ..] if version.starts_with("v2") => {
            octavia(shared, &mut store, method, rest, query, parsed)
        }
        ["network", "v2.0", collection] if method == Method::GET => {
            neutron(&shared.options.project, collection, None, query)
        }
        ["network", "v2.0", collection, id] if method == Method::GET => {
            neutron(&shared.options.project, collection, Some(id), query)
        }
        ["compute", "v2.1", rest @ ..] => {
            let microversion = headers
                .get("openstack-api-version")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("compute "))
                .or_else(|| {
                    headers
                        .get("x-openstack-nova-api-version")
                        .and_then(|v| v.to_str().ok())
                })
                .map(parse_microversion)
                .unwrap_or((2, 1));
            let mut response = nova(
                shared,
                &mut store,
                method,
                rest,
                query,
                parsed,
                microversion,
            );
            if let Ok(value) =
                HeaderValue::from_str(&format!("compute {}.{}", microversion.0, microversion.1))
            {
                response
                    .headers_mut()
                    .insert("openstack-api-version", value);
            }
            response
        }
        _ => nova_error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            &format!("no route for {path}"),
        ),
    }
}

fn parse_microversion(text: &str) -> (u32, u32) {
    if text.trim() == "latest" {
        return (2, 96);
    }
    let mut parts = text.trim().split('.');
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(2);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(1);
    (major, minor)
}

fn identity_version(base: &str) -> Value {
    json!({
        "id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/identity/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
    })
}

fn identity_versions(base: &str) -> Value {
    json!({"versions": {"values": [identity_version(base)]}})
}

fn octavia_versions(base: &str) -> Value {
    json!({"versions": [
        {"id": "v2.0", "status": "SUPPORTED", "updated": "2016-12-11T00:00:00Z",
         "links": [{"rel": "self", "href": format!("{base}/load-balancer/v2.0/")}]},
        {"id": "v2.30", "status": "CURRENT", "updated": "2025-02-26T00:00:00Z",
         "links": [{"rel": "self", "href": format!("{base}/load-balancer/v2/")}]}
    ]})
}

fn nova_version(base: &str) -> Value {
    json!({
        "id": "v2.1", "status": "CURRENT", "version": "2.96", "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{base}/compute/v2.1/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}]
    })
}

fn catalog(base: &str, project_id: &str) -> Value {
    let entry = |service_type: &str, name: &str, id: &str, url: String| {
        let endpoints: Vec<Value> = ["public", "internal", "admin"]
            .iter()
            .enumerate()
            .map(|(i, interface)| {
                json!({"id": format!("{id}-{i}"), "interface": interface, "region": "RegionOne",
                       "region_id": "RegionOne", "url": url})
            })
            .collect();
        json!({"type": service_type, "name": name, "id": id, "endpoints": endpoints})
    };
    json!([
        entry(
            "identity",
            "keystone",
            "svc-identity",
            format!("{base}/identity")
        ),
        entry(
            "load-balancer",
            "octavia",
            "svc-octavia",
            format!("{base}/load-balancer")
        ),
        entry(
            "compute",
            "nova",
            "svc-nova",
            format!("{base}/compute/v2.1")
        ),
        // Every real cloud has Neutron, and octaviaclient resolves its objects through it
        // even for `loadbalancer list`; a read-only stub with one network and subnet.
        entry(
            "network",
            "neutron",
            "svc-neutron",
            format!("{base}/network")
        ),
        entry(
            "object-store",
            "swift",
            "svc-swift",
            format!("{base}{}AUTH_{project_id}", swift::PREFIX)
        ),
    ])
}

fn issue_token(shared: &Shared, body: &Bytes) -> Response {
    let o = &shared.options;
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return nova_error(
            StatusCode::BAD_REQUEST,
            "error",
            "Expecting to find auth in request body.",
        );
    };
    let identity = &request["auth"]["identity"];
    let methods: Vec<&str> = identity["methods"]
        .as_array()
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let method = methods.first().copied().unwrap_or("");
    let accepted = match method {
        "password" => {
            let user = &identity["password"]["user"];
            let name_ok = user["name"] == json!(o.username)
                || user["id"] == json!(format!("user-{}", o.username));
            name_ok && user["password"] == json!(o.password)
        }
        "application_credential" => {
            if !request["auth"]["scope"].is_null() {
                return nova_error(
                    StatusCode::UNAUTHORIZED,
                    "error",
                    "Application credentials cannot request a scope.",
                );
            }
            let credential = &identity["application_credential"];
            credential["id"] == json!(o.app_credential_id)
                && credential["secret"] == json!(o.app_credential_secret)
        }
        _ => false,
    };
    if !accepted {
        return unauthorized();
    }
    let issued = SystemTime::now();
    let expires = issued + o.token_lifetime;
    let mut store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
    store.next_id += 1;
    let token = format!("gAAAAAfake{:06}", store.next_id);
    store.tokens.insert(token.clone(), expires);
    let body = json!({"token": {
        "methods": [method],
        "issued_at": humantime::format_rfc3339_micros(issued).to_string(),
        "expires_at": humantime::format_rfc3339_micros(expires).to_string(),
        "user": {"id": format!("user-{}", o.username), "name": o.username,
                 "domain": {"id": "default", "name": "Default"}, "password_expires_at": null},
        "project": {"id": format!("project-{}", o.project), "name": o.project,
                    "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": "role-member", "name": "member"}, {"id": "role-lb", "name": "load-balancer_member"}],
        "is_domain": false,
        "catalog": catalog(&shared.base, &format!("project-{}", o.project)),
        "audit_ids": ["fake"],
    }});
    let mut response = json_response(StatusCode::CREATED, body);
    if let Ok(value) = HeaderValue::from_str(&token) {
        response.headers_mut().insert("x-subject-token", value);
    }
    response
}

fn new_id(store: &mut Store, kind: u8) -> String {
    store.next_id += 1;
    format!(
        "{:08x}-{kind:02x}00-4000-8000-{:012x}",
        store.next_id, store.next_id
    )
}

fn matches_query(object: &Value, query: &BTreeMap<String, String>) -> bool {
    query.iter().all(|(key, wanted)| match key.as_str() {
        "name"
        | "provisioning_status"
        | "operating_status"
        | "loadbalancer_id"
        | "pool_id"
        | "listener_id" => object.get(key).and_then(Value::as_str) == Some(wanted.as_str()),
        _ => true,
    })
}

const ACTIVE: &str = "ACTIVE";

/// A GET of a load balancer moves its PENDING countdown; at zero the LB and its
/// children become ACTIVE and members pending deletion disappear.
fn poll_lb(store: &mut Store, lb_id: &str) {
    let Some(left) = store.pending.get_mut(lb_id) else {
        return;
    };
    if *left > 1 {
        *left -= 1;
        return;
    }
    store.pending.remove(lb_id);
    let now = now_text();
    if let Some(lb) = store.load_balancers.get_mut(lb_id) {
        lb["provisioning_status"] = json!(ACTIVE);
        lb["operating_status"] = json!("ONLINE");
        lb["updated_at"] = json!(now);
    }
    let pools: Vec<String> = store
        .pools
        .iter()
        .filter(|(_, p)| p["loadbalancers"][0]["id"] == json!(lb_id))
        .map(|(id, _)| id.clone())
        .collect();
    for collection in [&mut store.listeners, &mut store.pools, &mut store.monitors] {
        for object in collection.values_mut() {
            let of_lb = object["loadbalancers"][0]["id"] == json!(lb_id);
            if of_lb
                && object["provisioning_status"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("PENDING"))
            {
                object["provisioning_status"] = json!(ACTIVE);
                object["operating_status"] = json!("ONLINE");
            }
        }
    }
    settle_l7policies(store, lb_id);
    for pool in pools {
        if let Some(members) = store.members.get_mut(&pool) {
            members.retain(|m| m["provisioning_status"] != json!("PENDING_DELETE"));
            for member in members.iter_mut() {
                member["provisioning_status"] = json!(ACTIVE);
                if member["operating_status"] == json!("OFFLINE")
                    && member["admin_state_up"] == json!(true)
                {
                    member["operating_status"] = json!("NO_MONITOR");
                }
            }
        }
    }
}

/// The load balancer's L7 policies settle with it: those pending deletion go (with their
/// rules, the positions after them move up), the others and their rules become ACTIVE.
fn settle_l7policies(store: &mut Store, lb_id: &str) {
    let listeners: Vec<String> = store
        .listeners
        .iter()
        .filter(|(_, l)| l["loadbalancers"][0]["id"] == json!(lb_id))
        .map(|(id, _)| id.clone())
        .collect();
    let of_lb = |p: &Value| {
        p["listener_id"]
            .as_str()
            .is_some_and(|l| listeners.iter().any(|x| x == l))
    };
    let gone: Vec<String> = store
        .l7policies
        .iter()
        .filter(|(_, p)| of_lb(p) && p["provisioning_status"] == json!("PENDING_DELETE"))
        .map(|(id, _)| id.clone())
        .collect();
    for id in gone {
        if let Some(policy) = store.l7policies.remove(&id) {
            store.l7rules.remove(&id);
            let listener = policy["listener_id"].clone();
            let position = policy["position"].as_u64().unwrap_or(0);
            for other in store.l7policies.values_mut() {
                let at = other["position"].as_u64().unwrap_or(0);
                if other["listener_id"] == listener && at > position {
                    other["position"] = json!(at - 1);
                }
            }
            if let Some(l) = listener.as_str().and_then(|l| store.listeners.get_mut(l)) {
                if let Some(list) = l["l7policies"].as_array_mut() {
                    list.retain(|p| p["id"] != json!(id));
                }
            }
        }
    }
    for (id, policy) in store.l7policies.iter_mut().filter(|(_, p)| of_lb(p)) {
        policy["provisioning_status"] = json!(ACTIVE);
        policy["operating_status"] = json!("ONLINE");
        for rule in store.l7rules.get_mut(id).into_iter().flatten() {
            rule["provisioning_status"] = json!(ACTIVE);
            rule["operating_status"] = json!("ONLINE");
        }
    }
}

/// Octavia's L7 policy actions.
const L7_ACTIONS: &[&str] = &[
    "REDIRECT_TO_POOL",
    "REDIRECT_TO_URL",
    "REDIRECT_PREFIX",
    "REJECT",
];
/// Octavia's L7 rule types and comparison types.
const L7_RULE_TYPES: &[&str] = &[
    "HOST_NAME",
    "PATH",
    "FILE_TYPE",
    "HEADER",
    "COOKIE",
    "SSL_CONN_HAS_CERT",
    "SSL_VERIFY_RESULT",
    "SSL_DN_FIELD",
];
const L7_COMPARE_TYPES: &[&str] = &["REGEX", "STARTS_WITH", "ENDS_WITH", "CONTAINS", "EQUAL_TO"];

/// Octavia's `HTTP_HEADER_NAME_REGEX` (also cookie names): token characters.
fn http_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Octavia's `HTTP_COOKIE_VALUE_REGEX`: printable ASCII except space, `"`, `,`, `;`, `\`.
fn cookie_value(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && !b"\",;\\".contains(&b))
}

/// An L7 rule checked as Octavia's `validate.l7rule_data` checks it (the types Triad
/// uses in full; the others on their type and comparison only). The error is the 400's
/// message.
pub fn check_l7rule(rule: &Value) -> Result<(), String> {
    let text = |key: &str| rule.get(key).and_then(Value::as_str).unwrap_or("");
    for key in ["type", "compare_type", "value"] {
        if rule.get(key).is_none_or(Value::is_null) {
            return Err(format!(
                "Invalid input for field/attribute {key}. Value: None. Mandatory field missing."
            ));
        }
    }
    let kind = text("type");
    let compare = text("compare_type");
    if !L7_RULE_TYPES.contains(&kind) {
        return Err(format!(
            "Invalid input for field/attribute type. Value: '{kind}'."
        ));
    }
    if !L7_COMPARE_TYPES.contains(&compare) {
        return Err(format!(
            "Invalid input for field/attribute compare_type. Value: '{compare}'."
        ));
    }
    if rule.get("invert").is_some_and(|v| !v.is_boolean()) {
        return Err("Invalid input for field/attribute invert.".into());
    }
    match kind {
        "HEADER" | "COOKIE" => {
            if text("key").is_empty() {
                return Err("Invalid L7 Rule: L7 rule type requires a key".into());
            }
            if !http_token(text("key")) {
                return Err("Invalid characters in key".into());
            }
            if kind == "COOKIE" && compare != "REGEX" && !cookie_value(text("value")) {
                return Err("Invalid characters in cookie value".into());
            }
        }
        "FILE_TYPE" if !matches!(compare, "REGEX" | "EQUAL_TO") => {
            return Err("Invalid L7 Rule: invalid comparison type for rule type".into())
        }
        _ => {}
    }
    Ok(())
}

/// A stored L7 rule from a checked request.
fn new_l7rule(store: &mut Store, request: &Value, project_id: &str, now: &str) -> Value {
    let id = new_id(store, 7);
    json!({
        "id": id, "type": request["type"], "compare_type": request["compare_type"],
        "key": request.get("key").cloned().unwrap_or(Value::Null), "value": request["value"],
        "invert": request.get("invert").cloned().unwrap_or(json!(false)),
        "admin_state_up": request.get("admin_state_up").cloned().unwrap_or(json!(true)),
        "project_id": project_id, "tenant_id": project_id,
        "provisioning_status": "PENDING_CREATE", "operating_status": "OFFLINE",
        "tags": request.get("tags").cloned().unwrap_or(json!([])), "created_at": now, "updated_at": null,
    })
}

/// The load balancer of an L7 policy (through its listener).
fn l7policy_lb(store: &Store, policy_id: &str) -> Result<String, Response> {
    let policy = store.l7policies.get(policy_id).ok_or_else(|| {
        fault_body(
            StatusCode::NOT_FOUND,
            &format!("L7 Policy {policy_id} could not be found."),
        )
    })?;
    let listener = policy["listener_id"].as_str().unwrap_or("");
    Ok(store
        .listeners
        .get(listener)
        .and_then(|l| l["loadbalancers"][0]["id"].as_str())
        .unwrap_or("")
        .to_string())
}

/// Lock the load balancer for a mutation: 409 unless ACTIVE.
fn lock_lb(shared: &Shared, store: &mut Store, lb_id: &str) -> Result<(), Response> {
    let Some(lb) = store.load_balancers.get_mut(lb_id) else {
        return Err(fault_body(
            StatusCode::NOT_FOUND,
            &format!("Load Balancer {lb_id} could not be found."),
        ));
    };
    if lb["provisioning_status"] != json!(ACTIVE) {
        return Err(fault_body(
            StatusCode::CONFLICT,
            &format!("Load Balancer {lb_id} is immutable and cannot be updated."),
        ));
    }
    lb["provisioning_status"] = json!("PENDING_UPDATE");
    store
        .pending
        .insert(lb_id.to_string(), shared.options.pending_polls.max(1));
    Ok(())
}

/// Octavia's health monitor types (`SUPPORTED_HEALTH_MONITOR_TYPES`).
const MONITOR_TYPES: &[&str] = &[
    "HTTP",
    "HTTPS",
    "PING",
    "TCP",
    "TLS-HELLO",
    "UDP-CONNECT",
    "SCTP",
];
/// Octavia's `HealthMonitorPOST.expected_codes` pattern, as its error quotes it.
const EXPECTED_CODES_PATTERN: &str = r"^(\d{3}(\s*,\s*\d{3})*)$|^(\d{3}-\d{3})$";

/// Octavia's `expected_codes` pattern, `^(\d{3}(\s*,\s*\d{3})*)$|^(\d{3}-\d{3})$`:
/// three-digit codes separated by commas with any white space around them, or one range
/// of two three-digit codes. (Any three digits: "000" and "999" pass, as in Octavia.)
pub fn octavia_expected_codes_valid(text: &str) -> bool {
    let three_digits = |part: &str| part.len() == 3 && part.bytes().all(|b| b.is_ascii_digit());
    if let Some((low, high)) = text.split_once('-') {
        return three_digits(low) && three_digits(high);
    }
    let parts: Vec<&str> = text.split(',').collect();
    let last = parts.len() - 1;
    parts.iter().enumerate().all(|(index, part)| {
        // white space only next to a comma: not before the first code, not after the last
        let inner = match (index == 0, index == last) {
            (true, true) => *part,
            (true, false) => part.trim_end(),
            (false, true) => part.trim_start(),
            (false, false) => part.trim(),
        };
        three_digits(inner)
    })
}

/// Octavia's `validate.url_path`: a relative reference with no scheme, user, host or
/// port, whose path starts with '/', and no white space.
fn octavia_url_path_valid(text: &str) -> bool {
    text.starts_with('/')
        && !text.starts_with("//")
        && !text.chars().any(char::is_whitespace)
        && !text.chars().any(char::is_control)
}

/// What Octavia's API checks on `POST /v2/lbaas/healthmonitors` before anything else
/// (wsme's types, then `_validate_create_hm`), with its messages; fills in the HTTP
/// defaults. `request` is the `healthmonitor` object.
pub fn check_health_monitor(request: &Value) -> Result<Map<String, Value>, String> {
    let invalid = |field: &str, value: &Value, why: &str| {
        let shown = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        format!("Invalid input for field/attribute {field}. Value: '{shown}'. {why}")
    };
    let kind = request.get("type").cloned().unwrap_or(Value::Null);
    let kind_text = kind.as_str().unwrap_or("");
    if !MONITOR_TYPES.contains(&kind_text) {
        return Err(invalid(
            "type",
            &kind,
            &format!("Value should be one of: {}", MONITOR_TYPES.join(", ")),
        ));
    }
    for field in ["max_retries", "max_retries_down"] {
        if let Some(value) = request.get(field).filter(|v| !v.is_null()) {
            match value.as_u64() {
                Some(1..=10) => {}
                _ => return Err(invalid(field, value, "Value should be between 1 and 10")),
            }
        }
    }
    let given = |field: &str| request.get(field).filter(|v| !v.is_null()).cloned();
    if let Some(codes) = given("expected_codes") {
        if !codes.as_str().is_some_and(octavia_expected_codes_valid) {
            return Err(invalid(
                "expected_codes",
                &codes,
                &format!("Value should match the pattern {EXPECTED_CODES_PATTERN}"),
            ));
        }
    }
    if let Some(path) = given("url_path") {
        if !path.as_str().is_some_and(octavia_url_path_valid) {
            return Err(invalid(
                "url_path",
                &path,
                "Value must be a valid URL Path string",
            ));
        }
    }
    if let Some(method) = given("http_method") {
        let methods = [
            "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
        ];
        if !methods.contains(&method.as_str().unwrap_or("")) {
            return Err(invalid(
                "http_method",
                &method,
                &format!("Value should be one of: {}", methods.join(", ")),
            ));
        }
    }
    let http = kind_text == "HTTP" || kind_text == "HTTPS";
    let mut fields = Map::new();
    for (field, default) in [
        ("http_method", "GET"),
        ("url_path", "/"),
        ("expected_codes", "200"),
    ] {
        let value = match (http, given(field)) {
            (true, value) => value.unwrap_or_else(|| json!(default)),
            (false, None) => Value::Null,
            (false, Some(_)) => {
                return Err(format!(
                    "{field} is not a valid option for health monitors of type {kind_text}"
                ))
            }
        };
        fields.insert(field.to_string(), value);
    }
    Ok(fields)
}

fn lb_ref(lb_id: &str) -> Value {
    json!([{"id": lb_id}])
}

fn required<'a>(body: &'a Value, key: &str) -> Result<&'a Value, Response> {
    match body.get(key) {
        Some(value) if !value.is_null() => Ok(value),
        _ => Err(fault_body(
            StatusCode::BAD_REQUEST,
            &format!(
                "Invalid input for field/attribute {key}. Value: None. Mandatory field missing."
            ),
        )),
    }
}

fn octavia(
    shared: &Shared,
    store: &mut Store,
    method: &Method,
    rest: &[&str],
    query: &BTreeMap<String, String>,
    body: Option<Value>,
) -> Response {
    let result = octavia_inner(
        shared,
        store,
        method,
        rest,
        query,
        body.unwrap_or(Value::Null),
    );
    result.unwrap_or_else(|response| response)
}

/// One page of a list: its objects and the `limit` it was cut at.
struct Page {
    items: Vec<Value>,
    limit: usize,
}

/// The page of `items` (filtered, in id order) that `limit` and `marker` ask for, at most
/// `page_size` long; `known` says whether a marker names an object of the collection.
/// The error is the message of the API's 400.
fn page_of(
    items: Vec<Value>,
    known: impl Fn(&str) -> bool,
    query: &BTreeMap<String, String>,
    page_size: usize,
) -> Result<Page, String> {
    let limit = match query.get("limit") {
        None => page_size,
        Some(text) => match text.parse::<usize>() {
            Ok(limit) => limit.min(page_size),
            Err(_) => {
                return Err(format!(
                    "Invalid input for field/attribute limit. Value: '{text}'."
                ))
            }
        },
    };
    let after = match query.get("marker") {
        Some(marker) if !known(marker) => return Err(format!("marker [{marker}] not found")),
        marker => marker.cloned(),
    };
    let items = items
        .into_iter()
        .filter(|o| {
            after
                .as_deref()
                .is_none_or(|m| o["id"].as_str().is_some_and(|id| id > m))
        })
        .take(limit)
        .collect();
    Ok(Page { items, limit })
}

/// An Octavia list answer: `{key: [...], "{key}_links": [...]}` with Octavia's links,
/// which carry only `limit` and `marker` (the request's filters are dropped).
fn octavia_page(
    shared: &Shared,
    rest: &[&str],
    items: Vec<Value>,
    known: impl Fn(&str) -> bool,
    key: &str,
    query: &BTreeMap<String, String>,
) -> Response {
    let page = match page_of(items, known, query, shared.options.page_size) {
        Ok(page) => page,
        Err(message) => return fault_body(StatusCode::BAD_REQUEST, &message),
    };
    let here = format!("{}/load-balancer/v2/lbaas/{}", shared.base, rest.join("/"));
    let mut links = Vec::new();
    if let (Some(first), Some(last)) = (page.items.first(), page.items.last()) {
        let limit = page.limit;
        if query.contains_key("marker") {
            let href = format!(
                "{here}?limit={limit}&marker={}&page_reverse=True",
                percent_encode(first["id"].as_str().unwrap_or_default())
            );
            links.push(json!({"rel": "previous", "href": href}));
        }
        if page.items.len() >= limit {
            let href = format!(
                "{here}?limit={limit}&marker={}",
                percent_encode(last["id"].as_str().unwrap_or_default())
            );
            links.push(json!({"rel": "next", "href": href}));
        }
    }
    json_response(
        StatusCode::OK,
        json!({ key: page.items, format!("{key}_links"): links }),
    )
}

fn list(
    shared: &Shared,
    rest: &[&str],
    collection: &BTreeMap<String, Value>,
    key: &str,
    query: &BTreeMap<String, String>,
) -> Response {
    let items: Vec<Value> = collection
        .values()
        .filter(|o| matches_query(o, query))
        .cloned()
        .collect();
    octavia_page(
        shared,
        rest,
        items,
        |id| collection.contains_key(id),
        key,
        query,
    )
}

/// A list of a parent's children (a pool's members, a policy's rules), filtered and paged.
fn child_list(
    shared: &Shared,
    rest: &[&str],
    children: &[Value],
    key: &str,
    query: &BTreeMap<String, String>,
) -> Response {
    let items: Vec<Value> = children
        .iter()
        .filter(|c| matches_query(c, query))
        .cloned()
        .collect();
    octavia_page(
        shared,
        rest,
        items,
        |id| children.iter().any(|c| c["id"] == json!(id)),
        key,
        query,
    )
}

/// A Nova list answer: `{key: [...]}` and, when the page is full, `{key}_links` with a
/// `next` link that keeps the request's parameters and sets `marker`.
fn nova_page(
    shared: &Shared,
    rest: &[&str],
    items: Vec<Value>,
    known: impl Fn(&str) -> bool,
    key: &str,
    query: &BTreeMap<String, String>,
) -> Response {
    let page = match page_of(items, known, query, shared.options.page_size) {
        Ok(page) => page,
        Err(message) => return nova_error(StatusCode::BAD_REQUEST, "badRequest", &message),
    };
    let mut body = json!({ key: page.items });
    if let Some(last) = page.items.last().filter(|_| page.items.len() == page.limit) {
        let mut params: Vec<String> = query
            .iter()
            .filter(|(k, _)| k.as_str() != "marker")
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        params.push(format!(
            "marker={}",
            percent_encode(last["id"].as_str().unwrap_or_default())
        ));
        let href = format!(
            "{}/compute/v2.1/{}?{}",
            shared.base,
            rest.join("/"),
            params.join("&")
        );
        body[format!("{key}_links")] = json!([{"rel": "next", "href": href}]);
    }
    json_response(StatusCode::OK, body)
}

fn octavia_inner(
    shared: &Shared,
    store: &mut Store,
    method: &Method,
    rest: &[&str],
    query: &BTreeMap<String, String>,
    body: Value,
) -> Result<Response, Response> {
    let project_id = format!("project-{}", shared.options.project);
    let now = now_text();
    let not_found = |what: &str, id: &str| {
        fault_body(
            StatusCode::NOT_FOUND,
            &format!("{what} {id} could not be found."),
        )
    };
    match (method.clone(), rest) {
        (Method::GET, ["loadbalancers"]) => {
            let ids: Vec<String> = store.load_balancers.keys().cloned().collect();
            for id in ids {
                poll_lb(store, &id);
            }
            Ok(list(
                shared,
                rest,
                &store.load_balancers,
                "loadbalancers",
                query,
            ))
        }
        (Method::GET, ["loadbalancers", id]) => {
            poll_lb(store, id);
            let lb = store
                .load_balancers
                .get(*id)
                .ok_or_else(|| not_found("Load Balancer", id))?;
            Ok(json_response(StatusCode::OK, json!({"loadbalancer": lb})))
        }
        (Method::POST, ["loadbalancers"]) => {
            let request = required(&body, "loadbalancer")?;
            if request.get("vip_subnet_id").is_none()
                && request.get("vip_network_id").is_none()
                && request.get("vip_port_id").is_none()
            {
                return Err(fault_body(
                    StatusCode::BAD_REQUEST,
                    "Validation failure: VIP must contain one of: vip_port_id, vip_network_id, vip_subnet_id.",
                ));
            }
            let id = new_id(store, 1);
            let octet = store.load_balancers.len() + 10;
            let lb = json!({
                "id": id, "name": request.get("name").cloned().unwrap_or(json!("")),
                "description": request.get("description").cloned().unwrap_or(json!("")),
                "project_id": project_id, "tenant_id": project_id,
                "provisioning_status": "PENDING_CREATE", "operating_status": "OFFLINE",
                "admin_state_up": request.get("admin_state_up").cloned().unwrap_or(json!(true)),
                "vip_address": format!("10.0.0.{octet}"), "vip_port_id": format!("port-{id}"),
                "vip_subnet_id": request.get("vip_subnet_id").cloned().unwrap_or(Value::Null),
                "vip_network_id": NETWORK_ID, "provider": request.get("provider").cloned().unwrap_or(json!("amphora")),
                "flavor_id": null, "availability_zone": null, "listeners": [], "pools": [],
                "tags": request.get("tags").cloned().unwrap_or(json!([])),
                "created_at": now, "updated_at": null,
            });
            store.load_balancers.insert(id.clone(), lb.clone());
            store
                .pending
                .insert(id, shared.options.pending_polls.max(1));
            Ok(json_response(
                StatusCode::CREATED,
                json!({"loadbalancer": lb}),
            ))
        }
        (Method::DELETE, ["loadbalancers", id]) => {
            let lb = store
                .load_balancers
                .get(*id)
                .ok_or_else(|| not_found("Load Balancer", id))?;
            if lb["provisioning_status"]
                .as_str()
                .is_some_and(|s| s.starts_with("PENDING"))
            {
                return Err(fault_body(
                    StatusCode::CONFLICT,
                    &format!("Load Balancer {id} is immutable and cannot be updated."),
                ));
            }
            let of_lb = |o: &Value| o["loadbalancers"][0]["id"] == json!(id);
            if query.get("cascade").map(String::as_str) != Some("true")
                && store.listeners.values().any(of_lb)
            {
                return Err(fault_body(
                    StatusCode::BAD_REQUEST,
                    &format!("Cannot delete Load Balancer {id} - it has children"),
                ));
            }
            let pools: Vec<String> = store
                .pools
                .iter()
                .filter(|(_, p)| of_lb(p))
                .map(|(k, _)| k.clone())
                .collect();
            for pool in pools {
                store.members.remove(&pool);
                store.pools.remove(&pool);
            }
            let listeners: Vec<Value> = store
                .listeners
                .iter()
                .filter(|(_, l)| of_lb(l))
                .map(|(id, _)| json!(id))
                .collect();
            let policies: Vec<String> = store
                .l7policies
                .iter()
                .filter(|(_, p)| listeners.contains(&p["listener_id"]))
                .map(|(id, _)| id.clone())
                .collect();
            for policy in policies {
                store.l7policies.remove(&policy);
                store.l7rules.remove(&policy);
            }
            store.listeners.retain(|_, l| !of_lb(l));
            store.monitors.retain(|_, m| !of_lb(m));
            store.load_balancers.remove(*id);
            store.pending.remove(*id);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Method::GET, ["listeners"]) => {
            Ok(list(shared, rest, &store.listeners, "listeners", query))
        }
        (Method::GET, ["listeners", id]) => {
            let listener = store
                .listeners
                .get(*id)
                .ok_or_else(|| not_found("Listener", id))?;
            Ok(json_response(StatusCode::OK, json!({"listener": listener})))
        }
        (Method::POST, ["listeners"]) => {
            let request = required(&body, "listener")?;
            let lb_id = required(request, "loadbalancer_id")?
                .as_str()
                .unwrap_or("")
                .to_string();
            let protocol = required(request, "protocol")?.clone();
            let port = required(request, "protocol_port")?.clone();
            if !store.load_balancers.contains_key(&lb_id) {
                return Err(not_found("Load Balancer", &lb_id));
            }
            if store
                .listeners
                .values()
                .any(|l| l["loadbalancers"][0]["id"] == json!(lb_id) && l["protocol_port"] == port)
            {
                return Err(fault_body(
                    StatusCode::CONFLICT,
                    &format!("Another Listener on this Load Balancer is already using protocol_port {port}"),
                ));
            }
            lock_lb(shared, store, &lb_id)?;
            let id = new_id(store, 2);
            let listener = json!({
                "id": id, "name": request.get("name").cloned().unwrap_or(json!("")), "description": "",
                "protocol": protocol, "protocol_port": port, "loadbalancers": lb_ref(&lb_id),
                "default_pool_id": request.get("default_pool_id").cloned().unwrap_or(Value::Null),
                "connection_limit": request.get("connection_limit").cloned().unwrap_or(json!(-1)),
                "admin_state_up": true, "project_id": project_id,
                "provisioning_status": "PENDING_CREATE", "operating_status": "OFFLINE",
                "timeout_client_data": 50000, "timeout_member_connect": 5000, "timeout_member_data": 50000,
                "insert_headers": request.get("insert_headers").cloned().unwrap_or(json!({})),
                "l7policies": [],
                "tags": request.get("tags").cloned().unwrap_or(json!([])), "created_at": now, "updated_at": null,
            });
            if let Some(lb) = store.load_balancers.get_mut(&lb_id) {
                if let Some(listeners) = lb["listeners"].as_array_mut() {
                    listeners.push(json!({"id": id}));
                }
            }
            store.listeners.insert(id, listener.clone());
            Ok(json_response(
                StatusCode::CREATED,
                json!({"listener": listener}),
            ))
        }
        (Method::GET, ["pools"]) => Ok(list(shared, rest, &store.pools, "pools", query)),
        (Method::GET, ["pools", id]) => {
            let pool = store.pools.get(*id).ok_or_else(|| not_found("Pool", id))?;
            Ok(json_response(StatusCode::OK, json!({"pool": pool})))
        }
        (Method::POST, ["pools"]) => {
            let request = required(&body, "pool")?;
            let protocol = required(request, "protocol")?.clone();
            let algorithm = required(request, "lb_algorithm")?.clone();
            let listener_id = request
                .get("listener_id")
                .and_then(Value::as_str)
                .map(str::to_string);
            let lb_id = match (
                &listener_id,
                request.get("loadbalancer_id").and_then(Value::as_str),
            ) {
                (Some(listener_id), _) => store
                    .listeners
                    .get(listener_id)
                    .ok_or_else(|| not_found("Listener", listener_id))?["loadbalancers"][0]["id"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                (None, Some(lb)) => lb.to_string(),
                (None, None) => return Err(fault_body(
                    StatusCode::BAD_REQUEST,
                    "Validation failure: Either listener_id or loadbalancer_id must be specified.",
                )),
            };
            if ![
                "ROUND_ROBIN",
                "LEAST_CONNECTIONS",
                "SOURCE_IP",
                "SOURCE_IP_PORT",
            ]
            .contains(&algorithm.as_str().unwrap_or(""))
            {
                return Err(fault_body(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "Invalid input for field/attribute lb_algorithm. Value: '{algorithm}'."
                    ),
                ));
            }
            lock_lb(shared, store, &lb_id)?;
            let id = new_id(store, 3);
            let pool = json!({
                "id": id, "name": request.get("name").cloned().unwrap_or(json!("")), "description": "",
                "protocol": protocol, "lb_algorithm": algorithm,
                "session_persistence": request.get("session_persistence").cloned().unwrap_or(Value::Null),
                "loadbalancers": lb_ref(&lb_id),
                "listeners": listener_id.as_ref().map(|l| json!([{"id": l}])).unwrap_or(json!([])),
                "members": [], "healthmonitor_id": null, "admin_state_up": true, "project_id": project_id,
                "provisioning_status": "PENDING_CREATE", "operating_status": "OFFLINE",
                "tags": request.get("tags").cloned().unwrap_or(json!([])), "created_at": now, "updated_at": null,
                "tls_enabled": false,
            });
            if let Some(listener_id) = &listener_id {
                if let Some(listener) = store.listeners.get_mut(listener_id) {
                    listener["default_pool_id"] = json!(id);
                }
            }
            if let Some(lb) = store.load_balancers.get_mut(&lb_id) {
                if let Some(pools) = lb["pools"].as_array_mut() {
                    pools.push(json!({"id": id}));
                }
            }
            store.pools.insert(id.clone(), pool.clone());
            store.members.insert(id, Vec::new());
            Ok(json_response(StatusCode::CREATED, json!({"pool": pool})))
        }
        (Method::GET, ["healthmonitors"]) => {
            Ok(list(shared, rest, &store.monitors, "healthmonitors", query))
        }
        (Method::GET, ["healthmonitors", id]) => {
            let monitor = store
                .monitors
                .get(*id)
                .ok_or_else(|| not_found("Health Monitor", id))?;
            Ok(json_response(
                StatusCode::OK,
                json!({"healthmonitor": monitor}),
            ))
        }
        (Method::POST, ["healthmonitors"]) => {
            let request = required(&body, "healthmonitor")?;
            let pool_id = required(request, "pool_id")?
                .as_str()
                .unwrap_or("")
                .to_string();
            let kind = required(request, "type")?.clone();
            let delay = required(request, "delay")?.as_u64().unwrap_or(0);
            let timeout = required(request, "timeout")?.as_u64().unwrap_or(0);
            let retries = required(request, "max_retries")?.clone();
            let http_fields = check_health_monitor(request)
                .map_err(|message| fault_body(StatusCode::BAD_REQUEST, &message))?;
            let pool = store
                .pools
                .get(&pool_id)
                .ok_or_else(|| not_found("Pool", &pool_id))?;
            if !pool["healthmonitor_id"].is_null() {
                return Err(fault_body(
                    StatusCode::CONFLICT,
                    "This pool already has a health monitor",
                ));
            }
            if timeout >= delay {
                return Err(fault_body(
                    StatusCode::BAD_REQUEST,
                    "Validation failure: The timeout value must be less than the delay value.",
                ));
            }
            let lb_id = pool["loadbalancers"][0]["id"]
                .as_str()
                .unwrap_or("")
                .to_string();
            lock_lb(shared, store, &lb_id)?;
            let id = new_id(store, 4);
            let mut monitor = json!({
                "id": id, "name": request.get("name").cloned().unwrap_or(json!("")), "type": kind,
                "delay": delay, "timeout": timeout, "max_retries": retries,
                "max_retries_down": request.get("max_retries_down").cloned().unwrap_or(json!(3)),
                "pools": [{"id": pool_id}], "loadbalancers": lb_ref(&lb_id), "admin_state_up": true,
                "project_id": project_id, "provisioning_status": "PENDING_CREATE", "operating_status": "OFFLINE",
                "tags": request.get("tags").cloned().unwrap_or(json!([])), "created_at": now, "updated_at": null,
            });
            if let Some(object) = monitor.as_object_mut() {
                object.extend(http_fields);
            }
            if let Some(pool) = store.pools.get_mut(&pool_id) {
                pool["healthmonitor_id"] = json!(id);
            }
            store.monitors.insert(id, monitor.clone());
            Ok(json_response(
                StatusCode::CREATED,
                json!({"healthmonitor": monitor}),
            ))
        }
        (Method::GET, ["pools", pool_id, "members"]) => {
            let members = store
                .members
                .get(*pool_id)
                .ok_or_else(|| not_found("Pool", pool_id))?;
            Ok(child_list(shared, rest, members, "members", query))
        }
        (Method::GET, ["pools", pool_id, "members", member_id]) => {
            let members = store
                .members
                .get(*pool_id)
                .ok_or_else(|| not_found("Pool", pool_id))?;
            let member = members
                .iter()
                .find(|m| m["id"] == json!(member_id))
                .ok_or_else(|| not_found("Member", member_id))?;
            Ok(json_response(StatusCode::OK, json!({"member": member})))
        }
        (Method::POST, ["pools", pool_id, "members"]) => {
            let request = required(&body, "member")?.clone();
            let lb_id = pool_lb(store, pool_id)?;
            let address = required(&request, "address")?.clone();
            let port = required(&request, "protocol_port")?.clone();
            let members = store.members.get(*pool_id).cloned().unwrap_or_default();
            if members
                .iter()
                .any(|m| m["address"] == address && m["protocol_port"] == port)
            {
                return Err(fault_body(
                    StatusCode::CONFLICT,
                    &format!("Another member on this pool is already using ip {} on protocol_port {port}", address.as_str().unwrap_or("")),
                ));
            }
            lock_lb(shared, store, &lb_id)?;
            let member = new_member(store, &request, &project_id, &now);
            store
                .members
                .entry(pool_id.to_string())
                .or_default()
                .push(member.clone());
            Ok(json_response(
                StatusCode::CREATED,
                json!({"member": member}),
            ))
        }
        (Method::DELETE, ["pools", pool_id, "members", member_id]) => {
            let lb_id = pool_lb(store, pool_id)?;
            if !store
                .members
                .get(*pool_id)
                .is_some_and(|m| m.iter().any(|m| m["id"] == json!(member_id)))
            {
                return Err(not_found("Member", member_id));
            }
            lock_lb(shared, store, &lb_id)?;
            for member in store.members.get_mut(*pool_id).into_iter().flatten() {
                if member["id"] == json!(member_id) {
                    member["provisioning_status"] = json!("PENDING_DELETE");
                }
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Method::PUT, ["pools", pool_id, "members"]) => {
            let lb_id = pool_lb(store, pool_id)?;
            let requested = body
                .get("members")
                .and_then(Value::as_array)
                .cloned()
                .ok_or_else(|| {
                    fault_body(
                        StatusCode::BAD_REQUEST,
                        "Invalid input for field/attribute members. Mandatory field missing.",
                    )
                })?;
            let additive_only = query.get("additive_only").map(String::as_str) == Some("true");
            let mut seen = std::collections::BTreeSet::new();
            for member in &requested {
                let address = required(member, "address")?.to_string();
                let port = required(member, "protocol_port")?.to_string();
                if !seen.insert((address, port)) {
                    return Err(fault_body(
                        StatusCode::BAD_REQUEST,
                        "Member must be updated only once in the same request.",
                    ));
                }
            }
            let current = store.members.get(*pool_id).cloned().unwrap_or_default();
            let key = |m: &Value| (m["address"].to_string(), m["protocol_port"].to_string());
            let updates = requested
                .iter()
                .filter(|r| current.iter().any(|c| key(c) == key(r)))
                .count();
            let creates = requested.len() - updates;
            let deletes = if additive_only {
                0
            } else {
                current
                    .iter()
                    .filter(|c| !requested.iter().any(|r| key(r) == key(c)))
                    .count()
            };
            if creates == 0 && updates == 0 && deletes == 0 {
                return Ok(StatusCode::ACCEPTED.into_response());
            }
            lock_lb(shared, store, &lb_id)?;
            let mut next = Vec::new();
            for existing in &current {
                match requested.iter().find(|r| key(r) == key(existing)) {
                    Some(update) => {
                        let mut member = existing.clone();
                        for field in [
                            "name",
                            "weight",
                            "admin_state_up",
                            "backup",
                            "monitor_address",
                            "monitor_port",
                            "tags",
                        ] {
                            if let Some(value) = update.get(field) {
                                member[field] = value.clone();
                            }
                        }
                        member["provisioning_status"] = json!("PENDING_UPDATE");
                        member["updated_at"] = json!(now);
                        next.push(member);
                    }
                    None if additive_only => next.push(existing.clone()),
                    None => {
                        let mut member = existing.clone();
                        member["provisioning_status"] = json!("PENDING_DELETE");
                        next.push(member);
                    }
                }
            }
            for request in requested
                .iter()
                .filter(|r| !current.iter().any(|c| key(c) == key(r)))
            {
                let member = new_member(store, request, &project_id, &now);
                next.push(member);
            }
            store.members.insert(pool_id.to_string(), next);
            Ok(StatusCode::ACCEPTED.into_response())
        }
        (Method::GET, ["l7policies"]) => {
            Ok(list(shared, rest, &store.l7policies, "l7policies", query))
        }
        (Method::GET, ["l7policies", id]) => {
            let policy = store
                .l7policies
                .get(*id)
                .ok_or_else(|| not_found("L7 Policy", id))?;
            Ok(json_response(StatusCode::OK, json!({"l7policy": policy})))
        }
        (Method::POST, ["l7policies"]) => {
            let request = required(&body, "l7policy")?;
            let listener_id = required(request, "listener_id")?
                .as_str()
                .unwrap_or("")
                .to_string();
            let action = required(request, "action")?
                .as_str()
                .unwrap_or("")
                .to_string();
            if !L7_ACTIONS.contains(&action.as_str()) {
                return Err(fault_body(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid input for field/attribute action. Value: '{action}'."),
                ));
            }
            let listener = store
                .listeners
                .get(&listener_id)
                .ok_or_else(|| not_found("Listener", &listener_id))?;
            let lb_id = listener["loadbalancers"][0]["id"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let redirect_pool = request
                .get("redirect_pool_id")
                .and_then(Value::as_str)
                .map(str::to_string);
            match (action.as_str(), &redirect_pool) {
                ("REDIRECT_TO_POOL", None) => {
                    return Err(fault_body(
                        StatusCode::BAD_REQUEST,
                        "Invalid L7 Policy arguments: redirect_pool_id or redirect_pool must not be None",
                    ))
                }
                ("REDIRECT_TO_POOL", Some(pool_id)) => {
                    let pool = store
                        .pools
                        .get(pool_id)
                        .ok_or_else(|| not_found("Pool", pool_id))?;
                    if pool["loadbalancers"][0]["id"] != json!(lb_id) {
                        return Err(fault_body(
                            StatusCode::BAD_REQUEST,
                            &format!("Pool {pool_id} is not on the load balancer of listener {listener_id}."),
                        ));
                    }
                    if pool["protocol"] != listener["protocol"] {
                        return Err(fault_body(
                            StatusCode::BAD_REQUEST,
                            &format!(
                                "The pool protocol '{}' is invalid while the listener protocol is '{}'.",
                                pool["protocol"].as_str().unwrap_or(""),
                                listener["protocol"].as_str().unwrap_or("")
                            ),
                        ));
                    }
                }
                _ => {}
            }
            let rules: Vec<Value> = request
                .get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for rule in &rules {
                check_l7rule(rule).map_err(|m| fault_body(StatusCode::BAD_REQUEST, &m))?;
            }
            let count = store
                .l7policies
                .values()
                .filter(|p| p["listener_id"] == json!(listener_id))
                .count() as u64;
            let position = match request.get("position") {
                None | Some(Value::Null) => count + 1,
                Some(value) => match value.as_u64() {
                    Some(p) if (1..=2_147_483_647).contains(&p) => p.min(count + 1),
                    _ => {
                        return Err(fault_body(
                            StatusCode::BAD_REQUEST,
                            &format!(
                                "Invalid input for field/attribute position. Value: '{value}'."
                            ),
                        ))
                    }
                },
            };
            lock_lb(shared, store, &lb_id)?;
            for other in store.l7policies.values_mut() {
                let at = other["position"].as_u64().unwrap_or(0);
                if other["listener_id"] == json!(listener_id) && at >= position {
                    other["position"] = json!(at + 1);
                }
            }
            let id = new_id(store, 6);
            let stored_rules: Vec<Value> = rules
                .iter()
                .map(|r| new_l7rule(store, r, &project_id, &now))
                .collect();
            let policy = json!({
                "id": id, "name": request.get("name").cloned().unwrap_or(json!("")),
                "description": request.get("description").cloned().unwrap_or(json!("")),
                "listener_id": listener_id, "action": action, "position": position,
                "redirect_pool_id": redirect_pool, "redirect_url": request.get("redirect_url").cloned().unwrap_or(Value::Null),
                "redirect_prefix": request.get("redirect_prefix").cloned().unwrap_or(Value::Null),
                "redirect_http_code": request.get("redirect_http_code").cloned().unwrap_or(Value::Null),
                "admin_state_up": request.get("admin_state_up").cloned().unwrap_or(json!(true)),
                "rules": stored_rules.iter().map(|r| json!({"id": r["id"]})).collect::<Vec<_>>(),
                "project_id": project_id, "tenant_id": project_id,
                "provisioning_status": "PENDING_CREATE", "operating_status": "OFFLINE",
                "tags": request.get("tags").cloned().unwrap_or(json!([])), "created_at": now, "updated_at": null,
            });
            if let Some(listener) = store.listeners.get_mut(&listener_id) {
                match listener["l7policies"].as_array_mut() {
                    Some(list) => list.push(json!({"id": id})),
                    None => listener["l7policies"] = json!([{"id": id}]),
                }
            }
            store.l7policies.insert(id.clone(), policy.clone());
            store.l7rules.insert(id, stored_rules);
            Ok(json_response(
                StatusCode::CREATED,
                json!({"l7policy": policy}),
            ))
        }
        (Method::DELETE, ["l7policies", id]) => {
            let lb_id = l7policy_lb(store, id)?;
            lock_lb(shared, store, &lb_id)?;
            if let Some(policy) = store.l7policies.get_mut(*id) {
                policy["provisioning_status"] = json!("PENDING_DELETE");
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Method::GET, ["l7policies", id, "rules"]) => {
            let rules = store
                .l7rules
                .get(*id)
                .ok_or_else(|| not_found("L7 Policy", id))?;
            Ok(child_list(shared, rest, rules, "rules", query))
        }
        (Method::GET, ["l7policies", id, "rules", rule_id]) => {
            let rule = store
                .l7rules
                .get(*id)
                .ok_or_else(|| not_found("L7 Policy", id))?
                .iter()
                .find(|r| r["id"] == json!(rule_id))
                .ok_or_else(|| not_found("L7 Rule", rule_id))?;
            Ok(json_response(StatusCode::OK, json!({"rule": rule})))
        }
        (Method::POST, ["l7policies", id, "rules"]) => {
            let request = required(&body, "rule")?.clone();
            let lb_id = l7policy_lb(store, id)?;
            check_l7rule(&request).map_err(|m| fault_body(StatusCode::BAD_REQUEST, &m))?;
            lock_lb(shared, store, &lb_id)?;
            let rule = new_l7rule(store, &request, &project_id, &now);
            if let Some(policy) = store.l7policies.get_mut(*id) {
                if let Some(list) = policy["rules"].as_array_mut() {
                    list.push(json!({"id": rule["id"]}));
                }
            }
            store
                .l7rules
                .entry(id.to_string())
                .or_default()
                .push(rule.clone());
            Ok(json_response(StatusCode::CREATED, json!({"rule": rule})))
        }
        (Method::DELETE, ["l7policies", id, "rules", rule_id]) => {
            let lb_id = l7policy_lb(store, id)?;
            if !store
                .l7rules
                .get(*id)
                .is_some_and(|rules| rules.iter().any(|r| r["id"] == json!(rule_id)))
            {
                return Err(not_found("L7 Rule", rule_id));
            }
            lock_lb(shared, store, &lb_id)?;
            // rules have no PENDING_DELETE of their own worth modelling: they go at once
            if let Some(rules) = store.l7rules.get_mut(*id) {
                rules.retain(|r| r["id"] != json!(rule_id));
            }
            if let Some(policy) = store.l7policies.get_mut(*id) {
                if let Some(list) = policy["rules"].as_array_mut() {
                    list.retain(|r| r["id"] != json!(rule_id));
                }
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(fault_body(
            StatusCode::NOT_FOUND,
            &format!("no Octavia route for {method} /{}", rest.join("/")),
        )),
    }
}

fn pool_lb(store: &Store, pool_id: &str) -> Result<String, Response> {
    let pool = store.pools.get(pool_id).ok_or_else(|| {
        fault_body(
            StatusCode::NOT_FOUND,
            &format!("Pool {pool_id} could not be found."),
        )
    })?;
    Ok(pool["loadbalancers"][0]["id"]
        .as_str()
        .unwrap_or("")
        .to_string())
}

fn new_member(store: &mut Store, request: &Value, project_id: &str, now: &str) -> Value {
    let id = new_id(store, 5);
    let admin = request
        .get("admin_state_up")
        .cloned()
        .unwrap_or(json!(true));
    json!({
        "id": id, "name": request.get("name").cloned().unwrap_or(json!("")),
        "address": request["address"], "protocol_port": request["protocol_port"],
        "weight": request.get("weight").cloned().unwrap_or(json!(1)),
        "admin_state_up": admin, "backup": request.get("backup").cloned().unwrap_or(json!(false)),
        "subnet_id": request.get("subnet_id").cloned().unwrap_or(Value::Null),
        "monitor_address": request.get("monitor_address").cloned().unwrap_or(Value::Null),
        "monitor_port": request.get("monitor_port").cloned().unwrap_or(Value::Null),
        "project_id": project_id, "tenant_id": project_id,
        "provisioning_status": "PENDING_CREATE", "operating_status": "OFFLINE",
        "tags": request.get("tags").cloned().unwrap_or(json!([])), "created_at": now, "updated_at": null,
    })
}

#[allow(clippy::too_many_arguments)]
fn nova(
    shared: &Shared,
    store: &mut Store,
    method: &Method,
    rest: &[&str],
    query: &BTreeMap<String, String>,
    body: Option<Value>,
    microversion: (u32, u32),
) -> Response {
    let project_id = format!("project-{}", shared.options.project);
    let now = now_text();
    let base = &shared.base;
    let not_found = |what: &str, id: &str| {
        nova_error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            &format!("{what} {id} could not be found."),
        )
    };
    let body = body.unwrap_or(Value::Null);
    let at_least =
        |minor: u32| microversion.0 > 2 || (microversion.0 == 2 && microversion.1 >= minor);
    match (method.clone(), rest) {
        (Method::POST, ["servers"]) => {
            let Some(request) = body.get("server") else {
                return nova_error(
                    StatusCode::BAD_REQUEST,
                    "badRequest",
                    "Invalid input for field/attribute server.",
                );
            };
            for field in ["name", "flavorRef"] {
                if request.get(field).is_none() {
                    return nova_error(
                        StatusCode::BAD_REQUEST,
                        "badRequest",
                        &format!("'{field}' is a required property"),
                    );
                }
            }
            if request.get("tags").is_some() && !at_least(52) {
                return nova_error(
                    StatusCode::BAD_REQUEST,
                    "badRequest",
                    "Additional properties are not allowed ('tags' was unexpected)",
                );
            }
            // novaclient sends `os:scheduler_hints`, the API reference
            // `OS-SCH-HNT:scheduler_hints`; Nova accepts both
            let group = body["OS-SCH-HNT:scheduler_hints"]["group"]
                .as_str()
                .or_else(|| body["os:scheduler_hints"]["group"].as_str())
                .map(str::to_string);
            if let Some(tags) = request.get("tags").and_then(Value::as_array) {
                let bad = tags.iter().find(|t| {
                    t.as_str().is_none_or(|t| {
                        t.is_empty() || t.len() > 60 || t.contains('/') || t.contains(',')
                    })
                });
                if let Some(bad) = bad {
                    return nova_error(
                        StatusCode::BAD_REQUEST,
                        "badRequest",
                        &format!("Invalid input for field/attribute tags. Value: {bad}"),
                    );
                }
            }
            let mut user_data = None;
            if let Some(text) = request.get("user_data") {
                let decoded = text.as_str().and_then(base64_decode);
                match decoded {
                    Some(bytes) if text.as_str().is_some_and(|t| t.len() <= 65535) => {
                        user_data = Some(bytes)
                    }
                    Some(_) => {
                        return nova_error(
                            StatusCode::BAD_REQUEST,
                            "badRequest",
                            "Invalid input for field/attribute user_data. Value: is too long",
                        )
                    }
                    None => {
                        return nova_error(
                            StatusCode::BAD_REQUEST,
                            "badRequest",
                            "User data needs to be valid base 64.",
                        )
                    }
                }
            }
            if let Some(networks) = request.get("networks").and_then(Value::as_array) {
                for network in networks {
                    let uuid = network["uuid"].as_str().unwrap_or_default();
                    if uuid != NETWORK_ID {
                        return nova_error(
                            StatusCode::BAD_REQUEST,
                            "badRequest",
                            &format!("Network {uuid} could not be found."),
                        );
                    }
                }
            }
            if let Some(group) = &group {
                if !store.server_groups.contains_key(group) {
                    return nova_error(
                        StatusCode::BAD_REQUEST,
                        "badRequest",
                        &format!("Invalid server group {group}"),
                    );
                }
            }
            store.next_id += 1;
            let octet = store.next_id % 250 + 2;
            let id = new_id(store, 6);
            let server = json!({
                "id": id, "name": request["name"], "status": "BUILD", "tenant_id": project_id,
                "user_id": format!("user-{}", shared.options.username),
                "metadata": request.get("metadata").cloned().unwrap_or(json!({})),
                "tags": request.get("tags").cloned().unwrap_or(json!([])),
                "image": request.get("imageRef").map(|i| json!({"id": i, "links": []})).unwrap_or(json!("")),
                "flavor": {"original_name": request["flavorRef"], "vcpus": 2, "ram": 4096, "disk": 20,
                           "ephemeral": 0, "swap": 0, "extra_specs": {}},
                "addresses": {}, "created": now, "updated": now, "hostId": "",
                "key_name": request.get("key_name").cloned().unwrap_or(Value::Null),
                "security_groups": [{"name": "default"}], "OS-EXT-STS:task_state": "spawning",
                "OS-EXT-STS:vm_state": "building", "OS-EXT-STS:power_state": 0,
                "OS-EXT-AZ:availability_zone": "nova", "accessIPv4": "", "accessIPv6": "",
                "config_drive": "", "progress": 0, "locked": false, "description": null,
                "links": [{"rel": "self", "href": format!("{base}/compute/v2.1/servers/{id}")}],
                "fake:address": format!("10.0.1.{octet}"),
            });
            store.servers.insert(id.clone(), server);
            if let Some(bytes) = user_data {
                store.user_data.insert(id.clone(), bytes);
            }
            let outcome = if store.build_outcomes.is_empty() {
                None
            } else {
                Some(store.build_outcomes.remove(0))
            };
            match outcome {
                None => {
                    store
                        .building
                        .insert(id.clone(), shared.options.build_polls.max(1));
                }
                Some(BuildOutcome::Stall) => {}
                Some(BuildOutcome::Error(message)) => {
                    if let Some(server) = store.servers.get_mut(&id) {
                        server["status"] = json!("ERROR");
                        server["OS-EXT-STS:vm_state"] = json!("error");
                        server["OS-EXT-STS:task_state"] = Value::Null;
                        server["fault"] = json!({"code": 500, "created": now, "message": message});
                    }
                }
            }
            if let Some(group) = group {
                if let Some(g) = store.server_groups.get_mut(&group) {
                    if let Some(members) = g["members"].as_array_mut() {
                        members.push(json!(id));
                    }
                }
            }
            json_response(
                StatusCode::ACCEPTED,
                json!({"server": {"id": id, "adminPass": "fake-admin-pass", "OS-DCF:diskConfig": "MANUAL",
                        "security_groups": [{"name": "default"}],
                        "links": [{"rel": "self", "href": format!("{base}/compute/v2.1/servers/{id}")}]}}),
            )
        }
        (Method::GET, ["servers", "detail"]) | (Method::GET, ["servers"]) => {
            let detail = rest.len() == 2;
            let ids: Vec<String> = store.servers.keys().cloned().collect();
            for id in &ids {
                poll_server(store, id);
            }
            let filter_tags = at_least(26);
            let servers: Vec<Value> = store
                .servers
                .values()
                .filter(|s| {
                    let name_ok = query.get("name").is_none_or(|n| {
                        s["name"].as_str().is_some_and(|v| name_regex_matches(n, v))
                    });
                    let tags_ok = !filter_tags
                        || query.get("tags").is_none_or(|wanted| {
                            wanted.split(',').all(|t| {
                                s["tags"].as_array().is_some_and(|a| a.contains(&json!(t)))
                            })
                        });
                    name_ok && tags_ok
                })
                .map(|s| {
                    if detail {
                        public_server(s)
                    } else {
                        json!({"id": s["id"], "name": s["name"], "links": s["links"]})
                    }
                })
                .collect();
            nova_page(
                shared,
                rest,
                servers,
                |id| store.servers.contains_key(id),
                "servers",
                query,
            )
        }
        (Method::GET, ["servers", id]) => {
            poll_server(store, id);
            match store.servers.get(*id) {
                Some(server) => {
                    json_response(StatusCode::OK, json!({"server": public_server(server)}))
                }
                None => not_found("Instance", id),
            }
        }
        (Method::DELETE, ["servers", id]) => {
            if store.servers.remove(*id).is_none() {
                return not_found("Instance", id);
            }
            store.building.remove(*id);
            store.user_data.remove(*id);
            for group in store.server_groups.values_mut() {
                if let Some(members) = group["members"].as_array_mut() {
                    members.retain(|m| m != &json!(id));
                }
            }
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::POST, ["os-server-groups"]) => {
            let Some(request) = body.get("server_group") else {
                return nova_error(
                    StatusCode::BAD_REQUEST,
                    "badRequest",
                    "Invalid input for field/attribute server_group.",
                );
            };
            let policy = if at_least(64) {
                request
                    .get("policy")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            } else {
                request["policies"][0].as_str().map(str::to_string)
            };
            let Some(policy) = policy else {
                return nova_error(
                    StatusCode::BAD_REQUEST,
                    "badRequest",
                    "'policy' is a required property",
                );
            };
            let soft = policy.starts_with("soft-");
            if soft && !at_least(15) {
                return nova_error(
                    StatusCode::BAD_REQUEST,
                    "badRequest",
                    &format!(
                        "Invalid input: '{policy}' is not one of ['anti-affinity', 'affinity']"
                    ),
                );
            }
            let id = new_id(store, 7);
            let mut group = json!({
                "id": id, "name": request["name"], "members": [], "project_id": project_id,
                "user_id": format!("user-{}", shared.options.username), "metadata": {},
            });
            if at_least(64) {
                group["policy"] = json!(policy);
                group["rules"] = request.get("rules").cloned().unwrap_or(json!({}));
            } else {
                group["policies"] = json!([policy]);
            }
            store.server_groups.insert(id, group.clone());
            json_response(StatusCode::OK, json!({"server_group": group}))
        }
        (Method::GET, ["os-server-groups"]) => {
            // Nova's `common.limited`: `offset`, then at most min(limit, max_limit); no links
            let number = |key: &str, default: usize| match query.get(key) {
                None => Ok(default),
                Some(text) => text.parse::<usize>().map_err(|_| {
                    nova_error(
                        StatusCode::BAD_REQUEST,
                        "badRequest",
                        &format!("Invalid input for query parameters {key}. Value: {text}."),
                    )
                }),
            };
            let page_size = shared.options.page_size;
            let (offset, limit) = match (number("offset", 0), number("limit", page_size)) {
                (Ok(offset), Ok(limit)) => (offset, limit.min(page_size)),
                (Err(response), _) | (_, Err(response)) => return response,
            };
            let groups: Vec<Value> = store
                .server_groups
                .values()
                .skip(offset)
                .take(limit)
                .cloned()
                .collect();
            json_response(StatusCode::OK, json!({"server_groups": groups}))
        }
        (Method::GET, ["os-server-groups", id]) => match store.server_groups.get(*id) {
            Some(group) => json_response(StatusCode::OK, json!({"server_group": group})),
            None => not_found("Server group", id),
        },
        (Method::DELETE, ["os-server-groups", id]) => {
            if store.server_groups.remove(*id).is_none() {
                return not_found("Server group", id);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::GET, ["flavors", "detail"]) | (Method::GET, ["flavors"]) => {
            let flavors = FLAVORS
                .iter()
                .map(|name| json!({"id": name, "name": name, "vcpus": 2, "ram": 4096, "disk": 20,
                                   "links": [], "OS-FLV-EXT-DATA:ephemeral": 0, "swap": "", "rxtx_factor": 1.0,
                                   "os-flavor-access:is_public": true, "OS-FLV-DISABLED:disabled": false}))
                .collect();
            nova_page(
                shared,
                rest,
                flavors,
                |id| FLAVORS.contains(&id),
                "flavors",
                query,
            )
        }
        _ => nova_error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            &format!("no Nova route for {method} /{}", rest.join("/")),
        ),
    }
}

/// Standard base64 (with padding), as Nova checks user data.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let last = i == bytes.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}

/// Nova's `name` filter is a regular expression searched anywhere in the name; the fake
/// understands the subset clients send: `^` and `$` anchors and backslash escapes.
fn name_regex_matches(pattern: &str, name: &str) -> bool {
    let anchored_start = pattern.starts_with('^');
    let body = pattern.strip_prefix('^').unwrap_or(pattern);
    let anchored_end = body.ends_with('$') && !body.ends_with("\\$");
    let body = if anchored_end {
        &body[..body.len() - 1]
    } else {
        body
    };
    let mut literal = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                literal.push(next);
            }
        } else {
            literal.push(c);
        }
    }
    match (anchored_start, anchored_end) {
        (true, true) => name == literal,
        (true, false) => name.starts_with(&literal),
        (false, true) => name.ends_with(&literal),
        (false, false) => name.contains(&literal),
    }
}

fn poll_server(store: &mut Store, id: &str) {
    let Some(left) = store.building.get_mut(id) else {
        return;
    };
    if *left > 1 {
        *left -= 1;
        return;
    }
    store.building.remove(id);
    if let Some(server) = store.servers.get_mut(id) {
        server["status"] = json!("ACTIVE");
        server["OS-EXT-STS:vm_state"] = json!("active");
        server["OS-EXT-STS:task_state"] = Value::Null;
        server["OS-EXT-STS:power_state"] = json!(1);
        let address = server["fake:address"].clone();
        server["addresses"] = json!({"private": [{"addr": address, "version": 4,
            "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"}]});
    }
}

fn public_server(server: &Value) -> Value {
    let mut map: Map<String, Value> = server.as_object().cloned().unwrap_or_default();
    map.remove("fake:address");
    Value::Object(map)
}

/// The fake cloud's flavors, in id order (m1.small last, so with a small page size a
/// client finds it only past the first page).
pub const FLAVORS: [&str; 4] = ["m1.large", "m1.medium", "m1.micro", "m1.small"];

/// The one Neutron network of the fake cloud.
pub const NETWORK_ID: &str = "9a4b5c6d-0000-4000-8000-000000000002";
/// Its subnet (10.0.0.0/24), usable as `vip_subnet_id` and member `subnet_id`.
pub const SUBNET_ID: &str = "9a4b5c6d-0000-4000-8000-000000000001";

/// Neutron, read-only: network [`NETWORK_ID`] with subnet [`SUBNET_ID`] (10.0.0.0/24).
fn neutron(
    project: &str,
    collection: &str,
    id: Option<&str>,
    query: &BTreeMap<String, String>,
) -> Response {
    let project_id = format!("project-{project}");
    let items = match collection {
        "networks" => vec![
            json!({"id": NETWORK_ID, "name": "private", "status": "ACTIVE",
            "subnets": [SUBNET_ID], "project_id": project_id, "admin_state_up": true, "shared": false}),
        ],
        "subnets" => vec![
            json!({"id": SUBNET_ID, "name": "private-subnet", "network_id": NETWORK_ID,
            "cidr": "10.0.0.0/24", "ip_version": 4, "project_id": project_id, "enable_dhcp": true}),
        ],
        "ports" | "security-groups" | "qos/policies" => vec![],
        _ => {
            return nova_error(
                StatusCode::NOT_FOUND,
                "NeutronError",
                &format!("no Neutron route for {collection}"),
            )
        }
    };
    let items: Vec<Value> = items
        .into_iter()
        .filter(|item| {
            ["id", "name"].iter().all(|key| {
                query
                    .get(*key)
                    .is_none_or(|wanted| item[*key] == json!(wanted))
            })
        })
        .collect();
    match id {
        None => json_response(StatusCode::OK, json!({ collection: items })),
        Some(id) => {
            let singular = collection.trim_end_matches('s');
            match items.into_iter().find(|item| item["id"] == json!(id)) {
                Some(item) => json_response(StatusCode::OK, json!({ singular: item })),
                None => nova_error(
                    StatusCode::NOT_FOUND,
                    "NeutronError",
                    &format!("{singular} {id} could not be found."),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l7_rules_are_checked_as_octavia_checks_them() {
        let ok = json!({"type": "COOKIE", "compare_type": "EQUAL_TO", "key": "triad_maintenance_bypass", "value": "00ff", "invert": true});
        assert_eq!(check_l7rule(&ok), Ok(()));
        let cases = [
            (
                json!({"type": "COOKIE", "compare_type": "EQUAL_TO", "value": "x"}),
                "requires a key",
            ),
            (
                json!({"type": "COOKIE", "compare_type": "EQUAL_TO", "key": "a b", "value": "x"}),
                "Invalid characters in key",
            ),
            (
                json!({"type": "COOKIE", "compare_type": "EQUAL_TO", "key": "k", "value": "a;b"}),
                "Invalid characters in cookie value",
            ),
            (
                json!({"type": "COOKIE", "compare_type": "EQUAL_TO", "key": "k", "value": "a b"}),
                "Invalid characters in cookie value",
            ),
            (
                json!({"type": "SOURCE_IP", "compare_type": "EQUAL_TO", "value": "10.0.0.1"}),
                "field/attribute type",
            ),
            (
                json!({"type": "PATH", "compare_type": "LIKE", "value": "/"}),
                "field/attribute compare_type",
            ),
            (
                json!({"type": "FILE_TYPE", "compare_type": "CONTAINS", "value": "jpg"}),
                "invalid comparison type",
            ),
            (
                json!({"type": "PATH", "compare_type": "STARTS_WITH"}),
                "value. Value: None",
            ),
            (
                json!({"type": "PATH", "compare_type": "STARTS_WITH", "value": "/", "invert": "yes"}),
                "invert",
            ),
        ];
        for (rule, expected) in cases {
            let error = check_l7rule(&rule).unwrap_err();
            assert!(error.contains(expected), "{rule}: {error}");
        }
    }
}
