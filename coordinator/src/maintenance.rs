//! Maintenance mode (`triadctl app maintenance on|off`, issue 18): the balancer answers
//! clients 503 with Retry-After and a message, except the allowed addresses (the
//! operator's), while the nodes stay members and keep being health-checked; cluster jobs
//! pause; one-off runs (the app's upgrade) go on.
//!
//! The wanted state is persisted (`maintenance.json` in the state directory, written
//! durably before it is applied) and handed to the balancer loop, which converges the
//! balancer on it every round, so a restarted coordinator or a reloaded HAProxy (whose
//! runtime maps start empty again) is put back in maintenance by itself.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// The record's file in the state directory.
pub const RECORD_FILE: &str = "maintenance.json";
/// Retry-After unless given, in seconds.
pub const DEFAULT_RETRY_AFTER: u32 = 300;
/// The message unless given.
pub const DEFAULT_MESSAGE: &str = "Down for maintenance; back soon.";
/// The longest message (it is the whole body of every 503).
pub const MAX_MESSAGE: usize = 500;

/// Maintenance as wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    pub message: String,
    pub retry_after_secs: u32,
    /// Clients from these addresses still reach the app (the operator's).
    pub allow: Vec<IpAddr>,
    /// When it was turned on (Unix seconds).
    pub since: u64,
    /// The value of [`BYPASS_COOKIE`] that still reaches the app where the balancer
    /// cannot match client addresses (Octavia); made when maintenance is turned on.
    #[serde(default)]
    pub bypass: String,
}

/// The cookie an operator sends to pass maintenance mode on Octavia.
pub const BYPASS_COOKIE: &str = "triad_maintenance_bypass";

/// A new bypass token: 128 random bits in hex, from the kernel's generator.
pub fn new_bypass_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Maintenance {
    /// Checks an operator's message: printable text, at most [`MAX_MESSAGE`] bytes.
    pub fn check_message(message: &str) -> Result<(), String> {
        if message.len() > MAX_MESSAGE {
            return Err(format!(
                "message: {} bytes, at most {MAX_MESSAGE}",
                message.len()
            ));
        }
        if message.chars().any(|c| c.is_control()) {
            return Err("message: control characters (newlines, tabs) are not allowed".into());
        }
        Ok(())
    }
}

/// The persisted wanted state, and a watch every loop that cares reads.
#[derive(Debug)]
pub struct MaintenanceStore {
    path: PathBuf,
    wanted: watch::Sender<Option<Maintenance>>,
}

impl MaintenanceStore {
    /// Loads `maintenance.json` from `state_dir` (none: off). A record that cannot be read
    /// is an error naming the file: starting with maintenance off could show clients a half
    /// upgraded app.
    pub fn open(state_dir: &Path) -> Result<MaintenanceStore, String> {
        let path = state_dir.join(RECORD_FILE);
        let wanted = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<Option<Maintenance>>(&text).map_err(|e| {
                format!(
                    "{} is not a maintenance record ({e}): fix or remove it (removing it turns maintenance off)",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        if let Some(m) = &wanted {
            tracing::warn!(
                since = m.since,
                "maintenance mode is on (from {})",
                path.display()
            );
        }
        Ok(MaintenanceStore {
            path,
            wanted: watch::channel(wanted).0,
        })
    }

    pub fn wanted(&self) -> Option<Maintenance> {
        self.wanted.borrow().clone()
    }

    pub fn watch(&self) -> watch::Receiver<Option<Maintenance>> {
        self.wanted.subscribe()
    }

    /// Persists `wanted`, then hands it to the loops.
    pub fn set(&self, wanted: Option<Maintenance>) -> Result<(), String> {
        let text = serde_json::to_string_pretty(&wanted).map_err(|e| e.to_string())?;
        triad_daemon::fs::durable_write(&self.path, &text)
            .map_err(|e| format!("writing {}: {e}", self.path.display()))?;
        match &wanted {
            Some(m) => {
                tracing::warn!(message = %m.message, allow = ?m.allow, "maintenance mode on")
            }
            None => tracing::warn!("maintenance mode off"),
        }
        self.wanted.send_replace(wanted);
        Ok(())
    }
}

/// The maintenance page's answer to any request: 503, Retry-After, the message as plain
/// text, never cached (a cached 503 would outlive maintenance). With maintenance off (a
/// request that raced the policy's removal) it says the same with the defaults.
pub fn page(wanted: Option<&Maintenance>) -> axum::response::Response {
    use axum::http::{header, HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    let (message, retry_after) = wanted.map_or((DEFAULT_MESSAGE, 30), |m| {
        (m.message.as_str(), m.retry_after_secs)
    });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, format!("{message}\n")).into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The maintenance page server (Octavia's maintenance pool has it as its one member);
/// [`PageServer::stop`] ends it.
#[derive(Debug)]
pub struct PageServer(crate::http_server::HttpServer);

impl PageServer {
    /// Bind `listen` and answer every request with [`page`] of the current wanted state.
    /// The error names the address and the key it came from.
    pub async fn start(
        listen: SocketAddr,
        wanted: watch::Receiver<Option<Maintenance>>,
    ) -> Result<PageServer, String> {
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            format!("cannot serve the maintenance page on {listen} (balancer.octavia.maintenance_page): {e}")
        })?;
        let app = axum::Router::new().fallback(move || {
            let wanted = wanted.clone();
            async move { page(wanted.borrow().as_ref()) }
        });
        crate::http_server::HttpServer::serve(listener, app, "the maintenance page")
            .map(PageServer)
            .map_err(|e| format!("the maintenance page's listener has no address: {e}"))
    }

    /// The bound address (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr()
    }

    pub async fn stop(self) {
        self.0.stop().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn the_wanted_state_survives_a_restart_and_a_bad_record_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = MaintenanceStore::open(dir.path()).unwrap();
        assert_eq!(store.wanted(), None);
        let on = Maintenance {
            message: "Upgrading".into(),
            retry_after_secs: 120,
            allow: vec!["10.0.0.9".parse().unwrap()],
            since: 1,
            bypass: "00ff".into(),
        };
        let mut watch = store.watch();
        store.set(Some(on.clone())).unwrap();
        assert!(watch.has_changed().unwrap());
        assert_eq!(*watch.borrow_and_update(), Some(on.clone()));
        assert_eq!(
            MaintenanceStore::open(dir.path()).unwrap().wanted(),
            Some(on)
        );
        store.set(None).unwrap();
        assert_eq!(MaintenanceStore::open(dir.path()).unwrap().wanted(), None);
        std::fs::write(dir.path().join(RECORD_FILE), "{").unwrap();
        let error = MaintenanceStore::open(dir.path()).unwrap_err();
        assert!(
            error.contains("maintenance.json is not a maintenance record"),
            "{error}"
        );
    }

    #[test]
    fn a_message_is_one_printable_line() {
        assert!(Maintenance::check_message("Upgrading to 10.13, back at 14:00").is_ok());
        assert!(Maintenance::check_message("two\nlines").is_err());
        assert!(Maintenance::check_message(&"x".repeat(501)).is_err());
    }
}
