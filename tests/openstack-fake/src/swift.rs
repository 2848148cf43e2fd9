//! Swift, the object store (v1 API), for the backups (issue 19): one account, the token's
//! project's (`AUTH_project-{project}`), its containers and their objects in memory.
//!
//! Modelled on Swift's own code (proxy, container and object servers, `swob`,
//! `listing_formats`): the status codes, the headers clients read, the listing semantics
//! (`prefix`, `delimiter`, `marker`, `end_marker`, `limit`, `reverse`), bare MD5 ETags,
//! single byte ranges. Not modelled: large objects (SLO/DLO manifests), server-side copy,
//! expiry, versioning, XML listings (406), multi-range GETs (answered whole, as a server
//! may), date preconditions, metadata limits, and the 100-continue handshake (the body is
//! read before the request is judged).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use md5::{Digest, Md5};
use serde_json::{json, Value};

use crate::{FakeCloud, Shared, Store};

/// Swift's `max_object_name_length`.
const MAX_OBJECT_NAME_LENGTH: usize = 1024;
/// Swift's `max_container_name_length`.
const MAX_CONTAINER_NAME_LENGTH: usize = 256;
/// The name of Swift's default storage policy, which every container here has.
const STORAGE_POLICY: &str = "Policy-0";
/// Where the API lives under the fake's base URL.
pub(crate) const PREFIX: &str = "/swift/v1/";

/// The project's account.
#[derive(Debug)]
pub(crate) struct Account {
    created: SystemTime,
    containers: BTreeMap<String, Container>,
}

impl Default for Account {
    fn default() -> Account {
        Account {
            created: swift_now(),
            containers: BTreeMap::new(),
        }
    }
}

#[derive(Debug)]
struct Container {
    created: SystemTime,
    /// `x-container-meta-*`, `x-container-read` and `x-container-write`.
    metadata: BTreeMap<String, String>,
    objects: BTreeMap<String, Object>,
}

impl Container {
    fn new() -> Container {
        Container {
            created: swift_now(),
            metadata: BTreeMap::new(),
            objects: BTreeMap::new(),
        }
    }

    fn bytes_used(&self) -> usize {
        self.objects.values().map(|o| o.body.len()).sum()
    }
}

#[derive(Debug)]
struct Object {
    body: Bytes,
    /// MD5 of the body, lower-case hex, as Swift's object server computes it.
    etag: String,
    content_type: String,
    modified: SystemTime,
    /// `x-object-meta-*` (a POST replaces them all, as in Swift).
    metadata: BTreeMap<String, String>,
}

impl Object {
    fn new(body: Bytes, content_type: String, metadata: BTreeMap<String, String>) -> Object {
        Object {
            etag: md5_hex(&body),
            body,
            content_type,
            modified: swift_now(),
            metadata,
        }
    }
}

/// One authenticated Swift request, as `route` hands it over (its body not parsed).
pub(crate) struct Request<'a> {
    pub method: &'a Method,
    /// The request's path as sent (percent-encoded, trailing slash kept: in Swift `o/` and
    /// `o` are two objects).
    pub path: &'a str,
    pub query: &'a BTreeMap<String, String>,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Now at Swift's timestamp precision (10 µs), so every rendering of it agrees.
fn swift_now() -> SystemTime {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    UNIX_EPOCH + Duration::new(since.as_secs(), since.subsec_micros() / 10 * 10_000)
}

/// `X-Timestamp`: seconds with five decimals (Swift's `Timestamp.normal`).
fn x_timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:05}", since.as_secs(), since.subsec_micros() / 10)
}

/// A listing's `last_modified`: UTC with microseconds and no zone (`Timestamp.isoformat`).
fn iso_time(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time)
        .to_string()
        .trim_end_matches('Z')
        .to_string()
}

/// `Last-Modified`: the HTTP date of the timestamp rounded up to the second, as Swift
/// rounds it (so a conditional GET with it never misses a sub-second change).
fn http_date(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Title and explanation of Swift's default bodies (`swob.RESPONSE_REASONS`).
fn reason(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        202 => ("Accepted", "The request is accepted for processing."),
        400 => ("Bad Request", "The server could not comply with the request since it is either malformed or otherwise incorrect."),
        401 => ("Unauthorized", "This server could not verify that you are authorized to access the document you requested."),
        403 => ("Forbidden", "Access was denied to this resource."),
        404 => ("Not Found", "The resource could not be found."),
        405 => ("Method Not Allowed", "The method is not allowed for this resource."),
        406 => ("Not Acceptable", "The resource is not available in a format acceptable to your browser."),
        409 => ("Conflict", "There was a conflict when trying to complete your request."),
        411 => ("Length Required", "Content-Length header required."),
        412 => ("Precondition Failed", "A precondition for this request was not met."),
        413 => ("Request Entity Too Large", "The body of your request was too large for this server."),
        416 => ("Requested Range Not Satisfiable", "The Range requested is not available."),
        422 => ("Unprocessable Entity", "Unable to process the contained instructions"),
        500 => ("Internal Error", "The server has either erred or is incapable of performing the requested operation."),
        502 => ("Bad Gateway", "Bad gateway."),
        503 => ("Service Unavailable", "The server is currently unavailable. Please try again at a later time."),
        504 => ("Gateway Timeout", "A timeout has occurred speaking to a backend server."),
        _ => (status.canonical_reason().unwrap_or("Error"), ""),
    }
}

/// Swift's answer for `status` with its default body: HTML when the status has an
/// explanation (errors, 202), empty otherwise (201, 204). Injected faults use it too.
pub(crate) fn answer(status: StatusCode) -> Response {
    let (title, explanation) = reason(status);
    let body = if explanation.is_empty() {
        String::new()
    } else {
        format!("<html><h1>{title}</h1><p>{explanation}</p></html>")
    };
    (status, [("content-type", "text/html; charset=UTF-8")], body).into_response()
}

/// Swift's answer for `status` with a specific message.
fn text(status: StatusCode, message: &str) -> Response {
    (
        status,
        [("content-type", "text/plain")],
        message.to_string(),
    )
        .into_response()
}

/// The 401 of Swift's keystoneauth: a missing, unknown or expired token.
pub(crate) fn unauthorized(auth_url: &str) -> Response {
    let mut response = answer(StatusCode::UNAUTHORIZED);
    set(
        response.headers_mut(),
        "www-authenticate",
        &format!("Keystone uri='{auth_url}'"),
    );
    response
}

/// `GET /swift/info` (no token needed): the constraints clients adapt to.
pub(crate) fn info(shared: &Shared) -> Response {
    crate::json_response(
        StatusCode::OK,
        json!({"swift": {
            "version": "2.35.0",
            "max_file_size": shared.options.swift_max_file_size,
            "container_listing_limit": shared.options.swift_listing_limit,
            "account_listing_limit": shared.options.swift_listing_limit,
            "max_object_name_length": MAX_OBJECT_NAME_LENGTH,
            "max_container_name_length": MAX_CONTAINER_NAME_LENGTH,
            "max_meta_count": 90, "max_meta_name_length": 128, "max_meta_value_length": 256,
            "policies": [{"name": STORAGE_POLICY, "default": true}],
        }}),
    )
}

fn set(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        headers.insert(name, value);
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The token's project's account, the only one the fake has.
fn account_name(shared: &Shared) -> String {
    format!("AUTH_project-{}", shared.options.project)
}

/// A path, percent-decoded ('+' stays '+': it is a path, not a query). Swift refuses
/// names that are not UTF-8 or hold a NUL (412).
fn decode_path(text: &str) -> Result<String, Response> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|hex| bytes[i] == b'%' && hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(name) if !name.contains('\0') => Ok(name),
        _ => Err(text_412("Invalid UTF8 or contains NULL")),
    }
}

fn text_412(message: &str) -> Response {
    text(StatusCode::PRECONDITION_FAILED, message)
}

/// Answer one authenticated Swift request; every answer carries a transaction id.
pub(crate) fn route(shared: &Shared, store: &mut Store, request: &Request<'_>) -> Response {
    let mut response = dispatch(shared, store, request).unwrap_or_else(|response| response);
    store.next_id += 1;
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let trans_id = format!("tx{:021x}-{:010x}", store.next_id, since.as_secs());
    set(response.headers_mut(), "x-trans-id", &trans_id);
    set(response.headers_mut(), "x-openstack-request-id", &trans_id);
    response
}

fn dispatch(
    shared: &Shared,
    store: &mut Store,
    request: &Request<'_>,
) -> Result<Response, Response> {
    let Some(rest) = request.path.strip_prefix(PREFIX) else {
        return Err(answer(StatusCode::NOT_FOUND));
    };
    // Swift splits the decoded path (so "%2F" separates too) as split_path(path, 1, 4,
    // rest_with_last=True) does: an empty object name is the container itself ("c/"),
    // an empty container name with an object is a bad URL.
    let decoded = decode_path(rest)?;
    let mut parts = decoded.splitn(3, '/');
    let account_in_path = parts.next().unwrap_or("");
    let container = parts.next().filter(|c| !c.is_empty());
    let object = parts.next().filter(|o| !o.is_empty());
    if container.is_none() && object.is_some() {
        return Err(text_412("Bad URL"));
    }
    // keystoneauth: a token grants its own project's account only
    if account_in_path != account_name(shared) {
        return Err(answer(StatusCode::FORBIDDEN));
    }
    let method = request.method;
    match (container, object) {
        (None, _) if method == Method::GET || method == Method::HEAD => {
            get_account(shared, &store.swift, request)
        }
        (None, _) => Err(answer(StatusCode::METHOD_NOT_ALLOWED)),
        (Some(container), None) => match *method {
            Method::GET | Method::HEAD => get_container(shared, &store.swift, request, container),
            Method::PUT => put_container(&mut store.swift, request, container),
            Method::POST => post_container(&mut store.swift, request, container),
            Method::DELETE => delete_container(&mut store.swift, container),
            _ => Err(answer(StatusCode::METHOD_NOT_ALLOWED)),
        },
        (Some(container), Some(object)) => {
            let account = &mut store.swift;
            match *method {
                Method::GET | Method::HEAD => get_object(account, request, container, object),
                Method::PUT => put_object(shared, account, request, container, object),
                Method::POST => post_object(account, request, container, object),
                Method::DELETE => delete_object(account, container, object),
                _ => Err(answer(StatusCode::METHOD_NOT_ALLOWED)),
            }
        }
    }
}

/// How a listing is answered: `format` first, else the `Accept` header, else plain text.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ListingFormat {
    Json,
    Plain,
}

impl ListingFormat {
    fn of(request: &Request<'_>) -> Result<ListingFormat, Response> {
        let wanted = match request.query.get("format").filter(|f| !f.is_empty()) {
            Some(format) => format.to_ascii_lowercase(),
            None => {
                let accept = header_text(request.headers, "accept").unwrap_or("");
                if accept.contains("application/json") {
                    "json".to_string()
                } else if accept.contains("xml") && !accept.contains("text/plain") {
                    "xml".to_string()
                } else {
                    "plain".to_string()
                }
            }
        };
        match wanted.as_str() {
            "json" => Ok(ListingFormat::Json),
            // Swift renders XML listings; nothing here asks for them
            "xml" => Err(answer(StatusCode::NOT_ACCEPTABLE)),
            _ => Ok(ListingFormat::Plain),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            ListingFormat::Json => "application/json; charset=utf-8",
            ListingFormat::Plain => "text/plain; charset=utf-8",
        }
    }
}

/// A listing's query, as Swift's container server reads it (an empty marker is none).
#[derive(Debug)]
struct ListingQuery {
    prefix: String,
    delimiter: Option<String>,
    marker: Option<String>,
    end_marker: Option<String>,
    limit: usize,
    reverse: bool,
}

impl ListingQuery {
    /// `limit` above the listing limit is a 412; one that is not a number is ignored.
    fn parse(query: &BTreeMap<String, String>, listing_limit: usize) -> Result<Self, Response> {
        let given = |key: &str| query.get(key).filter(|v| !v.is_empty()).cloned();
        let limit = match query.get("limit") {
            Some(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                match text.parse::<usize>() {
                    Ok(limit) if limit <= listing_limit => limit,
                    _ => return Err(text_412(&format!("Maximum limit is {listing_limit}"))),
                }
            }
            _ => listing_limit,
        };
        let reverse = query.get("reverse").is_some_and(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "true" | "1" | "yes" | "on" | "t" | "y"
            )
        });
        Ok(ListingQuery {
            prefix: given("prefix").unwrap_or_default(),
            delimiter: given("delimiter"),
            marker: given("marker"),
            end_marker: given("end_marker"),
            limit,
            reverse,
        })
    }
}

/// One line of a listing.
#[derive(Debug)]
enum Entry<'a, T> {
    Item(&'a str, &'a T),
    /// Names rolled up at the delimiter: the prefix up to and including it.
    Subdir(String),
}

/// The entries of a listing, as Swift's `list_objects_iter` picks them: names after
/// `marker` and before `end_marker` (swapped when `reverse`) that start with `prefix`;
/// with a delimiter, names holding it past the prefix roll up into one `subdir` (not
/// repeated when it is the marker, so paging on subdirs moves on); at most `limit`
/// entries, subdirs counted.
fn list_entries<'a, T>(items: &'a BTreeMap<String, T>, query: &ListingQuery) -> Vec<Entry<'a, T>> {
    let (low, high) = if query.reverse {
        (query.end_marker.as_deref(), query.marker.as_deref())
    } else {
        (query.marker.as_deref(), query.end_marker.as_deref())
    };
    let in_range = |name: &str| {
        low.is_none_or(|m| name > m)
            && high.is_none_or(|m| name < m)
            && name.starts_with(&query.prefix)
    };
    let ordered: Box<dyn Iterator<Item = (&'a String, &'a T)> + 'a> = if query.reverse {
        Box::new(items.iter().rev())
    } else {
        Box::new(items.iter())
    };
    let mut entries: Vec<Entry<'a, T>> = Vec::new();
    for (name, item) in ordered.filter(|(name, _)| in_range(name.as_str())) {
        if entries.len() >= query.limit {
            break;
        }
        let rolled_up = query.delimiter.as_deref().and_then(|delimiter| {
            name[query.prefix.len()..]
                .find(delimiter)
                .map(|at| &name[..query.prefix.len() + at + delimiter.len()])
        });
        match rolled_up {
            Some(subdir) => {
                let repeated =
                    matches!(entries.last(), Some(Entry::Subdir(last)) if last == subdir);
                if !repeated && low != Some(subdir) {
                    entries.push(Entry::Subdir(subdir.to_string()));
                }
            }
            None => entries.push(Entry::Item(name.as_str(), item)),
        }
    }
    entries
}

/// A listing answer: JSON records, or names one a line (and an empty plain listing is a
/// 204, as Swift's `listing_formats` answers it; an empty JSON one is `[]`).
fn listing_response<T>(
    format: ListingFormat,
    head: bool,
    entries: &[Entry<'_, T>],
    record: impl Fn(&str, &T) -> Value,
    mut headers: HeaderMap,
) -> Response {
    set(&mut headers, "content-type", format.content_type());
    if head {
        return (StatusCode::NO_CONTENT, headers).into_response();
    }
    let body = match format {
        ListingFormat::Json => Value::Array(
            entries
                .iter()
                .map(|entry| match entry {
                    Entry::Item(name, item) => record(name, *item),
                    Entry::Subdir(subdir) => json!({ "subdir": subdir }),
                })
                .collect(),
        )
        .to_string(),
        ListingFormat::Plain => entries
            .iter()
            .map(|entry| match entry {
                Entry::Item(name, _) => format!("{name}\n"),
                Entry::Subdir(subdir) => format!("{subdir}\n"),
            })
            .collect(),
    };
    let status = if body.is_empty() {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::OK
    };
    (status, headers, body).into_response()
}

fn get_account(
    shared: &Shared,
    account: &Account,
    request: &Request<'_>,
) -> Result<Response, Response> {
    let format = ListingFormat::of(request)?;
    let query = ListingQuery::parse(request.query, shared.options.swift_listing_limit)?;
    let mut headers = HeaderMap::new();
    let objects: usize = account.containers.values().map(|c| c.objects.len()).sum();
    let bytes: usize = account.containers.values().map(Container::bytes_used).sum();
    set(
        &mut headers,
        "x-account-container-count",
        &account.containers.len().to_string(),
    );
    set(&mut headers, "x-account-object-count", &objects.to_string());
    set(&mut headers, "x-account-bytes-used", &bytes.to_string());
    set(&mut headers, "x-timestamp", &x_timestamp(account.created));
    let entries = list_entries(&account.containers, &query);
    Ok(listing_response(
        format,
        request.method == Method::HEAD,
        &entries,
        |name, container| {
            json!({"name": name, "count": container.objects.len(), "bytes": container.bytes_used(),
                   "last_modified": iso_time(container.created)})
        },
        headers,
    ))
}

fn container_headers(container: &Container) -> HeaderMap {
    let mut headers = HeaderMap::new();
    set(
        &mut headers,
        "x-container-object-count",
        &container.objects.len().to_string(),
    );
    set(
        &mut headers,
        "x-container-bytes-used",
        &container.bytes_used().to_string(),
    );
    set(&mut headers, "x-timestamp", &x_timestamp(container.created));
    set(
        &mut headers,
        "x-put-timestamp",
        &x_timestamp(container.created),
    );
    set(&mut headers, "x-storage-policy", STORAGE_POLICY);
    set(&mut headers, "last-modified", &http_date(container.created));
    for (name, value) in &container.metadata {
        set(&mut headers, name, value);
    }
    headers
}

fn get_container(
    shared: &Shared,
    account: &Account,
    request: &Request<'_>,
    name: &str,
) -> Result<Response, Response> {
    let format = ListingFormat::of(request)?;
    let query = ListingQuery::parse(request.query, shared.options.swift_listing_limit)?;
    let container = account
        .containers
        .get(name)
        .ok_or_else(|| answer(StatusCode::NOT_FOUND))?;
    let entries = list_entries(&container.objects, &query);
    Ok(listing_response(
        format,
        request.method == Method::HEAD,
        &entries,
        |object_name, object| {
            json!({"name": object_name, "bytes": object.body.len(), "hash": object.etag,
                   "content_type": object.content_type, "last_modified": iso_time(object.modified)})
        },
        container_headers(container),
    ))
}

/// Apply a request's metadata headers to `metadata`: `x-{kind}-meta-*` set (an empty value
/// removes), `x-remove-{kind}-meta-*` remove; `extra` names are set and removed the same way.
fn update_metadata(
    metadata: &mut BTreeMap<String, String>,
    headers: &HeaderMap,
    kind: &str,
    extra: &[&str],
) {
    let set_prefix = format!("x-{kind}-meta-");
    let remove_prefix = format!("x-remove-{kind}-meta-");
    for (header_name, header_value) in headers {
        let name = header_name.as_str();
        let value = header_value.to_str().unwrap_or("").trim();
        if let Some(key) = name.strip_prefix(&remove_prefix) {
            metadata.remove(&format!("{set_prefix}{key}"));
        } else if name.starts_with(&set_prefix) || extra.contains(&name) {
            if value.is_empty() {
                metadata.remove(name);
            } else {
                metadata.insert(name.to_string(), value.to_string());
            }
        }
    }
}

const CONTAINER_ACL_HEADERS: [&str; 2] = ["x-container-read", "x-container-write"];

/// 201 for a new container, 202 for one that exists (its metadata updated).
fn put_container(
    account: &mut Account,
    request: &Request<'_>,
    name: &str,
) -> Result<Response, Response> {
    if name.len() > MAX_CONTAINER_NAME_LENGTH {
        return Err(text(
            StatusCode::BAD_REQUEST,
            &format!(
                "Container name length of {} longer than {MAX_CONTAINER_NAME_LENGTH}",
                name.len()
            ),
        ));
    }
    let status = if account.containers.contains_key(name) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    let container = account
        .containers
        .entry(name.to_string())
        .or_insert_with(Container::new);
    update_metadata(
        &mut container.metadata,
        request.headers,
        "container",
        &CONTAINER_ACL_HEADERS,
    );
    Ok(answer(status))
}

fn post_container(
    account: &mut Account,
    request: &Request<'_>,
    name: &str,
) -> Result<Response, Response> {
    let container = account
        .containers
        .get_mut(name)
        .ok_or_else(|| answer(StatusCode::NOT_FOUND))?;
    update_metadata(
        &mut container.metadata,
        request.headers,
        "container",
        &CONTAINER_ACL_HEADERS,
    );
    Ok(answer(StatusCode::NO_CONTENT))
}

/// 204; 409 while it holds objects; 404.
fn delete_container(account: &mut Account, name: &str) -> Result<Response, Response> {
    let container = account
        .containers
        .get(name)
        .ok_or_else(|| answer(StatusCode::NOT_FOUND))?;
    if !container.objects.is_empty() {
        return Err(answer(StatusCode::CONFLICT));
    }
    account.containers.remove(name);
    Ok(answer(StatusCode::NO_CONTENT))
}

fn container_mut<'a>(account: &'a mut Account, name: &str) -> Result<&'a mut Container, Response> {
    account
        .containers
        .get_mut(name)
        .ok_or_else(|| answer(StatusCode::NOT_FOUND))
}

/// An ETag as a request gives it (`If-Match`, `ETag`): quotes dropped, case ignored.
fn normalize_etag(text: &str) -> String {
    text.trim().trim_matches('"').to_ascii_lowercase()
}

/// Whether an `If-Match`/`If-None-Match` list names `etag` (or is `*`).
fn etag_listed(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(normalize_etag)
        .any(|listed| listed == "*" || listed == etag)
}

/// What Swift's proxy does without a Content-Type (or with `X-Detect-Content-Type:
/// true`): Python's `mimetypes.guess_type` of the name, here for a few common
/// extensions (Python strips a compression suffix first: `a.tar.gz` is a tar), else
/// `application/octet-stream`.
fn guess_content_type(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    let stem = [".gz", ".bz2", ".xz", ".br", ".z"]
        .iter()
        .find_map(|suffix| lower.strip_suffix(suffix))
        .unwrap_or(&lower);
    let extension = stem.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match extension {
        "txt" => "text/plain",
        "json" => "application/json",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "tar" => "application/x-tar",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        _ => "application/octet-stream",
    }
}

/// 201 with the body's MD5 as ETag. Refused, nothing stored: 404 without the container,
/// 400 for a name over 1024 bytes, 411 without Content-Length or chunking, 413 over
/// `swift_max_file_size`, 412 for `If-None-Match: *` when the object exists, 422 when
/// an `ETag` header differs from the body's MD5.
fn put_object(
    shared: &Shared,
    account: &mut Account,
    request: &Request<'_>,
    container_name: &str,
    name: &str,
) -> Result<Response, Response> {
    let headers = request.headers;
    let container = container_mut(account, container_name)?;
    let chunked = header_text(headers, "transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if !headers.contains_key("content-length") && !chunked {
        return Err(text(
            StatusCode::LENGTH_REQUIRED,
            "Missing Content-Length header.",
        ));
    }
    if request.body.len() as u64 > shared.options.swift_max_file_size {
        return Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Your request is too large.",
        ));
    }
    if name.len() > MAX_OBJECT_NAME_LENGTH {
        return Err(text(
            StatusCode::BAD_REQUEST,
            &format!(
                "Object name length of {} longer than {MAX_OBJECT_NAME_LENGTH}",
                name.len()
            ),
        ));
    }
    if let Some(condition) = header_text(headers, "if-none-match") {
        if condition.trim() != "*" {
            return Err(text(
                StatusCode::BAD_REQUEST,
                "If-None-Match only supports *",
            ));
        }
        if container.objects.contains_key(name) {
            return Err(answer(StatusCode::PRECONDITION_FAILED));
        }
    }
    let detect = header_text(headers, "x-detect-content-type")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on"));
    let content_type = match header_text(headers, "content-type").filter(|t| !t.is_empty()) {
        Some(given) if !detect => given.to_string(),
        _ => guess_content_type(name).to_string(),
    };
    let mut metadata = BTreeMap::new();
    update_metadata(&mut metadata, headers, "object", &[]);
    let object = Object::new(request.body.clone(), content_type, metadata);
    if let Some(expected) = header_text(headers, "etag").filter(|e| !e.is_empty()) {
        if normalize_etag(expected) != object.etag {
            return Err(answer(StatusCode::UNPROCESSABLE_ENTITY));
        }
    }
    let mut response = answer(StatusCode::CREATED);
    set(response.headers_mut(), "etag", &object.etag);
    set(
        response.headers_mut(),
        "last-modified",
        &http_date(object.modified),
    );
    container.objects.insert(name.to_string(), object);
    Ok(response)
}

fn object_headers(object: &Object) -> HeaderMap {
    let mut headers = HeaderMap::new();
    set(&mut headers, "etag", &object.etag);
    set(&mut headers, "content-type", &object.content_type);
    set(&mut headers, "last-modified", &http_date(object.modified));
    set(&mut headers, "x-timestamp", &x_timestamp(object.modified));
    set(&mut headers, "accept-ranges", "bytes");
    for (name, value) in &object.metadata {
        set(&mut headers, name, value);
    }
    headers
}

/// What a GET answers for its `Range` header.
#[derive(Debug, PartialEq)]
enum RangeAnswer {
    /// The whole body, 200: no `Range`, not `bytes=`, malformed, or several ranges
    /// (which Swift answers as multipart/byteranges; the fake, as a server may, whole).
    Whole,
    /// These bytes (half-open), 206.
    Part(usize, usize),
    /// No byte of it exists, 416.
    Unsatisfiable,
}

/// A `Range` header read as swob reads it, for a body of `length` bytes.
fn byte_range(spec: Option<&str>, length: usize) -> RangeAnswer {
    let Some(ranges) = spec.and_then(|s| s.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Whole;
    };
    if ranges.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = ranges.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    // Some(None) for an empty side, None for one that is not a number
    let number = |text: &str| -> Option<Option<usize>> {
        if text.is_empty() {
            Some(None)
        } else if text.bytes().all(|b| b.is_ascii_digit()) {
            text.parse().ok().map(Some)
        } else {
            None
        }
    };
    let (Some(first), Some(last)) = (number(first.trim()), number(last.trim())) else {
        return RangeAnswer::Whole;
    };
    match (first, last) {
        (None, None) => RangeAnswer::Whole,
        (Some(begin), Some(end)) if end < begin => RangeAnswer::Whole,
        // bytes=-0 asks for nothing
        (None, Some(0)) => RangeAnswer::Unsatisfiable,
        // a suffix of an empty object: Swift answers the whole (no byte to name)
        (None, Some(_)) if length == 0 => RangeAnswer::Whole,
        (None, Some(suffix)) => RangeAnswer::Part(length.saturating_sub(suffix), length),
        (Some(begin), _) if begin >= length => RangeAnswer::Unsatisfiable,
        (Some(begin), None) => RangeAnswer::Part(begin, length),
        (Some(begin), Some(end)) => RangeAnswer::Part(begin, (end + 1).min(length)),
    }
}

/// GET or HEAD: the bytes (none for HEAD, with the Content-Length a GET would have),
/// `If-Match` (412) and `If-None-Match` (304) against the ETag, one byte range (206,
/// 416 past the end; a suffix range of an empty object is the whole of it, 200).
fn get_object(
    account: &Account,
    request: &Request<'_>,
    container: &str,
    name: &str,
) -> Result<Response, Response> {
    let object = account
        .containers
        .get(container)
        .and_then(|c| c.objects.get(name))
        .ok_or_else(|| answer(StatusCode::NOT_FOUND))?;
    let mut headers = object_headers(object);
    if let Some(wanted) = header_text(request.headers, "if-match") {
        if !etag_listed(wanted, &object.etag) {
            return Err(answer(StatusCode::PRECONDITION_FAILED));
        }
    }
    if let Some(unwanted) = header_text(request.headers, "if-none-match") {
        if etag_listed(unwanted, &object.etag) {
            return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
        }
    }
    let length = object.body.len();
    if request.method == Method::HEAD {
        set(&mut headers, "content-length", &length.to_string());
        return Ok((StatusCode::OK, headers).into_response());
    }
    match byte_range(header_text(request.headers, "range"), length) {
        RangeAnswer::Unsatisfiable => {
            let mut response = answer(StatusCode::RANGE_NOT_SATISFIABLE);
            set(
                response.headers_mut(),
                "content-range",
                &format!("bytes */{length}"),
            );
            Err(response)
        }
        RangeAnswer::Part(begin, end) => {
            set(
                &mut headers,
                "content-range",
                &format!("bytes {begin}-{}/{length}", end - 1),
            );
            let part = object.body.slice(begin..end);
            Ok((StatusCode::PARTIAL_CONTENT, headers, part).into_response())
        }
        RangeAnswer::Whole => Ok((StatusCode::OK, headers, object.body.clone()).into_response()),
    }
}

/// 202: the object's metadata replaced (all of it, as a Swift POST does), its
/// Content-Type changed when one is given.
fn post_object(
    account: &mut Account,
    request: &Request<'_>,
    container: &str,
    name: &str,
) -> Result<Response, Response> {
    let object = container_mut(account, container)?
        .objects
        .get_mut(name)
        .ok_or_else(|| answer(StatusCode::NOT_FOUND))?;
    let mut metadata = BTreeMap::new();
    update_metadata(&mut metadata, request.headers, "object", &[]);
    object.metadata = metadata;
    if let Some(content_type) =
        header_text(request.headers, "content-type").filter(|t| !t.is_empty())
    {
        object.content_type = content_type.to_string();
    }
    object.modified = swift_now();
    Ok(answer(StatusCode::ACCEPTED))
}

fn delete_object(account: &mut Account, container: &str, name: &str) -> Result<Response, Response> {
    container_mut(account, container)?
        .objects
        .remove(name)
        .ok_or_else(|| answer(StatusCode::NOT_FOUND))?;
    Ok(answer(StatusCode::NO_CONTENT))
}

/// Swift in tests: seed objects and read back what a client stored.
impl FakeCloud {
    /// The Swift endpoint as the catalog gives it (`.../swift/v1/AUTH_project-{project}`).
    pub fn swift_url(&self) -> String {
        format!("{}{PREFIX}{}", self.shared.base, account_name(&self.shared))
    }

    /// Store `body` as object `name` of `container` (the container created if missing),
    /// as a PUT without a Content-Type would: to seed a test, or to damage an object.
    pub fn swift_put(&self, container: &str, name: &str, body: impl AsRef<[u8]>) {
        let object = Object::new(
            Bytes::copy_from_slice(body.as_ref()),
            guess_content_type(name).to_string(),
            BTreeMap::new(),
        );
        self.store()
            .swift
            .containers
            .entry(container.to_string())
            .or_insert_with(Container::new)
            .objects
            .insert(name.to_string(), object);
    }

    /// The objects of `container` in name order, with their bytes (none when the
    /// container does not exist: see [`FakeCloud::swift_containers`]).
    pub fn swift_objects(&self, container: &str) -> Vec<(String, Vec<u8>)> {
        self.store()
            .swift
            .containers
            .get(container)
            .map(|c| {
                c.objects
                    .iter()
                    .map(|(name, object)| (name.clone(), object.body.to_vec()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One object's bytes.
    pub fn swift_object(&self, container: &str, name: &str) -> Option<Vec<u8>> {
        self.store()
            .swift
            .containers
            .get(container)
            .and_then(|c| c.objects.get(name))
            .map(|object| object.body.to_vec())
    }

    /// The account's containers in name order.
    pub fn swift_containers(&self) -> Vec<String> {
        self.store().swift.containers.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names<T>(entries: &[Entry<'_, T>]) -> Vec<String> {
        entries
            .iter()
            .map(|entry| match entry {
                Entry::Item(name, _) => name.to_string(),
                Entry::Subdir(subdir) => format!("{subdir} (subdir)"),
            })
            .collect()
    }

    #[test]
    fn listings_follow_swift_prefix_delimiter_markers_and_limit() {
        let items: BTreeMap<String, ()> = ["a", "b/1", "b/2", "b/3/x", "c", "c/1", "d.json"]
            .iter()
            .map(|n| (n.to_string(), ()))
            .collect();
        let query = |text: &str| {
            let pairs: BTreeMap<String, String> = text
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect();
            ListingQuery::parse(&pairs, 10_000).unwrap()
        };
        let cases: [(&str, &[&str]); 11] = [
            ("", &["a", "b/1", "b/2", "b/3/x", "c", "c/1", "d.json"]),
            ("prefix=b/", &["b/1", "b/2", "b/3/x"]),
            (
                "delimiter=/",
                &["a", "b/ (subdir)", "c", "c/ (subdir)", "d.json"],
            ),
            ("prefix=b/&delimiter=/", &["b/1", "b/2", "b/3/ (subdir)"]),
            ("marker=b/2", &["b/3/x", "c", "c/1", "d.json"]),
            ("marker=b/&delimiter=/", &["c", "c/ (subdir)", "d.json"]),
            ("end_marker=c", &["a", "b/1", "b/2", "b/3/x"]),
            ("marker=a&end_marker=b/3", &["b/1", "b/2"]),
            ("limit=2&delimiter=/", &["a", "b/ (subdir)"]),
            ("limit=0", &[]),
            (
                "reverse=true&marker=c&end_marker=a",
                &["b/3/x", "b/2", "b/1"],
            ),
        ];
        for (text, expected) in cases {
            let got = names(&list_entries(&items, &query(text)));
            assert_eq!(got, expected, "listing with {text:?}");
        }
    }

    #[test]
    fn listing_limit_above_the_maximum_is_refused_and_a_non_number_ignored() {
        let over: BTreeMap<String, String> = [("limit".to_string(), "10001".to_string())].into();
        let refused = ListingQuery::parse(&over, 10_000).unwrap_err();
        assert_eq!(refused.status(), StatusCode::PRECONDITION_FAILED);
        let junk: BTreeMap<String, String> = [("limit".to_string(), "-3".to_string())].into();
        assert_eq!(ListingQuery::parse(&junk, 10_000).unwrap().limit, 10_000);
    }

    #[test]
    fn byte_ranges_are_read_as_swob_reads_them() {
        use RangeAnswer::{Part, Unsatisfiable, Whole};
        let cases = [
            ("bytes=0-9", Part(0, 10)),
            ("bytes=90-200", Part(90, 100)),
            ("bytes=95-", Part(95, 100)),
            ("bytes=-5", Part(95, 100)),
            ("bytes=-500", Part(0, 100)),
            ("bytes=100-", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=9-3", Whole),
            ("bytes=0-1,5-6", Whole),
            ("items=0-1", Whole),
        ];
        for (spec, expected) in cases {
            assert_eq!(byte_range(Some(spec), 100), expected, "{spec}");
        }
        assert_eq!(byte_range(Some("bytes=-5"), 0), Whole, "suffix of nothing");
        assert_eq!(byte_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(byte_range(None, 100), Whole);
    }

    #[test]
    fn paths_are_percent_decoded_as_paths_and_must_be_utf8() {
        assert_eq!(decode_path("a%2Fb+c%20d").unwrap(), "a/b+c d");
        assert_eq!(decode_path("100%").unwrap(), "100%");
        assert_eq!(decode_path("%+1").unwrap(), "%+1");
        assert_eq!(
            decode_path("%FF").unwrap_err().status(),
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(
            decode_path("a%00").unwrap_err().status(),
            StatusCode::PRECONDITION_FAILED
        );
    }

    #[test]
    fn etags_are_md5_hex_and_compared_without_quotes_or_case() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"hello"), "5d41402abc4b2a76b9719d911017c592");
        assert!(etag_listed(
            "\"5D41402ABC4B2A76B9719D911017C592\"",
            "5d41402abc4b2a76b9719d911017c592"
        ));
        assert!(etag_listed(
            "\"other\", *",
            "5d41402abc4b2a76b9719d911017c592"
        ));
        assert!(!etag_listed(
            "\"other\"",
            "5d41402abc4b2a76b9719d911017c592"
        ));
    }

    #[test]
    fn content_types_are_guessed_from_the_name_as_python_does() {
        assert_eq!(guess_content_type("base/manifest.json"), "application/json");
        assert_eq!(guess_content_type("docroot.tar.gz"), "application/x-tar");
        assert_eq!(
            guess_content_type("part-0001.zst"),
            "application/octet-stream"
        );
        assert_eq!(guess_content_type("dump.gz"), "application/octet-stream");
    }
}
