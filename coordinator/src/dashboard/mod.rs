//! The web dashboard (issue 21): a read-only page served over HTTPS with the cluster's
//! PKI, showing the cluster's health, nodes × services with reasons, the balancer's
//! members, recovery and scaling, and the timeline, updated live.
//!
//! Inputs: the same status answer triadctl renders ([`Sources::status`]), the view's
//! change events and the timeline. Each open page holds one Server-Sent Events stream
//! (`/api/stream`); its task rebuilds the [`model::PageModel`] when the view changes (a
//! node's liveness flips within the observer's pass), when the timeline records an event,
//! and every [`REFRESH`] for the loops' lines, and sends it only when it differs. Nothing
//! runs while no page is open, and at most [`MAX_WATCHERS`] streams at once (more get 503).
//! Who may read: [`auth`]. The assets are built into the binary; the page loads nothing
//! from elsewhere (its Content-Security-Policy says so).

pub mod auth;
pub mod model;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, watch, Semaphore};
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use triad_daemon::tls::{PeerIdentity, TlsReloader};
use triad_proto::v1;

use crate::events::{Event, EventLog};
use crate::http_server::HttpServer;
use crate::view::ClusterEvent;
use auth::{Credentials, Decision, Sessions};

/// Open pages (event streams) at most; each costs a task and a status build per change.
pub const MAX_WATCHERS: usize = 16;

/// How often an open page's model is rebuilt without a view change (the loops' lines).
pub const REFRESH: Duration = Duration::from_secs(1);

/// TLS handshakes in progress at most; more connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 32;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// The page's own files only, no inline script, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Where the dashboard's data comes from.
#[derive(Clone)]
pub struct Sources {
    /// The status answer, as `ClusterStatus` gives it.
    pub status: Arc<dyn Fn() -> v1::ClusterStatus + Send + Sync>,
    /// The view's Add/Update/Remove events, to push a crashed node at once.
    pub view_changes: Arc<dyn Fn() -> broadcast::Receiver<ClusterEvent> + Send + Sync>,
    /// The timeline (none: the page shows no events).
    pub events: Option<Arc<EventLog>>,
}

#[derive(Clone)]
struct Dashboard {
    sources: Sources,
    sessions: Arc<Sessions>,
    watchers: Arc<Semaphore>,
    /// Turns true when the server stops: open streams end, so the graceful stop does not
    /// wait out its bound for pages that never close.
    closing: watch::Receiver<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("cannot listen for the dashboard on {addr} (dashboard.listen): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the dashboard listener has no local address: {0}")]
    LocalAddr(std::io::Error),
}

/// Bind `listen` and serve with the coordinator's certificate from `tls`.
pub async fn start(
    listen: SocketAddr,
    tls: TlsReloader,
    sources: Sources,
) -> Result<HttpServer, DashboardError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| DashboardError::Bind {
            addr: listen,
            source,
        })?;
    if listen.ip().is_unspecified() {
        tracing::info!(address = %listen, "dashboard on a wildcard address (it asks every caller for a viewer or operator certificate or a session)");
    }
    serve(listener, tls, sources)
}

/// Serve on a bound listener (tests bind 127.0.0.1:0).
pub fn serve(
    listener: TcpListener,
    tls: TlsReloader,
    sources: Sources,
) -> Result<HttpServer, DashboardError> {
    let addr = listener.local_addr().map_err(DashboardError::LocalAddr)?;
    let (closing_tx, closing) = watch::channel(false);
    let app = router(Dashboard {
        sources,
        sessions: Arc::new(Sessions::default()),
        watchers: Arc::new(Semaphore::new(MAX_WATCHERS)),
        closing,
    });
    let listener = TlsListener::spawn(listener, tls, addr);
    Ok(HttpServer::spawn(
        addr,
        "the dashboard",
        move |stopped| async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                    let _ = closing_tx.send(true);
                })
                .await
        },
    ))
}

fn router(dashboard: Dashboard) -> axum::Router {
    axum::Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/api/status", get(status_json))
        .route("/api/stream", get(stream))
        .route("/login", get(login))
        .route("/login-link", post(login_link))
        .with_state(dashboard)
}

/// The connection's peer: its address and its client certificate, read once after the
/// handshake.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub certificate: Option<Result<PeerIdentity, String>>,
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Peer {
        let (_, connection) = stream.io().get_ref();
        Peer {
            addr: *stream.remote_addr(),
            certificate: connection
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|cert| triad_daemon::tls::identity_of(cert)),
        }
    }
}

/// Accepted TLS connections: each handshake in its own task, bounded in time and number,
/// so a slow client holds up no one.
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    fn spawn(listener: TcpListener, tls: TlsReloader, local: SocketAddr) -> TlsListener {
        let (tx, accepted) = mpsc::channel(MAX_HANDSHAKES);
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = handshakes.clone().acquire_owned().await else {
                    return;
                };
                let accepted = tokio::select! {
                    _ = tx.closed() => return,
                    accepted = listener.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        tracing::warn!(%error, "dashboard accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // HTTP/1.1 only: the gRPC config offers h2, which this server does not speak
                let acceptor =
                    tokio_rustls::TlsAcceptor::from(tls.config_with_alpn(&[b"http/1.1"]));
                let tx = tx.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                            .await;
                    drop(permit);
                    match handshake {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "dashboard TLS handshake refused")
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "dashboard TLS handshake not finished within 10s")
                        }
                    }
                });
            }
        });
        TlsListener { accepted, local }
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // the accept task ended: serve what is open, accept nothing more
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    no_store(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The refusal page: the status and what to do, readable without the page's script.
fn refusal(status: StatusCode, why: &str) -> Response {
    let title = match status {
        StatusCode::UNAUTHORIZED => "401 Not logged in",
        StatusCode::FORBIDDEN => "403 Forbidden",
        _ => "Refused",
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Triad dashboard: {title}</title><link rel=\"stylesheet\" href=\"/style.css\"></head><body><main class=\"refused\"><h1>{title}</h1><p id=\"why\">{}</p></main></body></html>\n",
        escape_html(why)
    );
    no_store(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

impl Dashboard {
    fn credentials(&self, peer: &Peer, headers: &HeaderMap, now: Instant) -> Credentials {
        let session = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(auth::cookie_value)
            .find_map(|token| self.sessions.session(token, now));
        Credentials {
            certificate: peer.certificate.clone(),
            session,
        }
    }

    /// `Ok(who)` or the refusal's status and why.
    fn check(&self, peer: &Peer, headers: &HeaderMap) -> Result<String, (StatusCode, String)> {
        match auth::decide(&self.credentials(peer, headers, Instant::now())) {
            Decision::Allow(who) => Ok(who),
            Decision::Unauthenticated(why) => Err((StatusCode::UNAUTHORIZED, why)),
            Decision::Forbidden(why) => {
                tracing::info!(peer = %peer.addr, %why, "dashboard request refused");
                Err((StatusCode::FORBIDDEN, why))
            }
        }
    }

    fn recent_events(&self) -> Vec<Event> {
        let Some(events) = &self.sources.events else {
            return Vec::new();
        };
        let mut kept = events.since(0);
        let skip = kept.len().saturating_sub(model::EVENTS_SHOWN);
        kept.drain(..skip);
        kept
    }

    fn model_json(&self, events: &[Event]) -> String {
        let model = model::page_model(&(self.sources.status)(), events);
        serde_json::to_string(&model).unwrap_or_else(|error| {
            tracing::error!(%error, "dashboard model not serializable");
            "{}".to_string()
        })
    }
}

async fn index(
    State(dashboard): State<Dashboard>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Response {
    match dashboard.check(&peer, &headers) {
        Ok(_) => asset("text/html; charset=utf-8", INDEX_HTML),
        Err((status, why)) => refusal(status, &why),
    }
}

async fn status_json(
    State(dashboard): State<Dashboard>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Response {
    if let Err((status, why)) = dashboard.check(&peer, &headers) {
        return refusal(status, &why);
    }
    let json = dashboard.model_json(&dashboard.recent_events());
    no_store(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

async fn stream(
    State(dashboard): State<Dashboard>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Response {
    let who = match dashboard.check(&peer, &headers) {
        Ok(who) => who,
        Err((status, why)) => return refusal(status, &why),
    };
    let Ok(permit) = dashboard.watchers.clone().try_acquire_owned() else {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{MAX_WATCHERS} dashboards are open already; close one"),
        );
    };
    tracing::info!(peer = %peer.addr, %who, "dashboard opened");
    let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(4);
    tokio::spawn(async move {
        let _permit = permit;
        watch(dashboard, tx).await;
        tracing::info!(peer = %peer.addr, %who, "dashboard closed");
    });
    let body = Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    no_store(body.into_response())
}

/// One open page: send the model when it changes, until the page goes.
async fn watch(dashboard: Dashboard, tx: mpsc::Sender<Result<SseEvent, Infallible>>) {
    let mut view_changes = (dashboard.sources.view_changes)();
    let mut timeline = dashboard.sources.events.as_ref().map(|e| e.subscribe());
    let mut events = dashboard.recent_events();
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = dashboard.closing.clone();
    let mut last = String::new();
    loop {
        let json = dashboard.model_json(&events);
        if json != last {
            if tx.send(Ok(SseEvent::default().data(&json))).await.is_err() {
                return;
            }
            last = json;
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = closing.wait_for(|closing| *closing) => return,
            _ = refresh.tick() => {}
            changed = view_changes.recv() => {
                if let Err(broadcast::error::RecvError::Closed) = changed {
                    return;
                }
            }
            event = async {
                match timeline.as_mut() {
                    Some(timeline) => timeline.recv().await,
                    None => std::future::pending().await,
                }
            } => match event {
                Ok(event) => {
                    events.push(event);
                    let skip = events.len().saturating_sub(model::EVENTS_SHOWN);
                    events.drain(..skip);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => events = dashboard.recent_events(),
                Err(broadcast::error::RecvError::Closed) => timeline = None,
            },
        }
    }
}

fn query_param<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Open a login link: a session cookie, then the page.
async fn login(State(dashboard): State<Dashboard>, uri: Uri) -> Response {
    let token = query_param(&uri, "token").unwrap_or_default();
    match dashboard.sessions.redeem(token, Instant::now()) {
        Some((session, who)) => {
            tracing::info!(%who, "dashboard login");
            no_store(
                (
                    StatusCode::SEE_OTHER,
                    [
                        (header::SET_COOKIE, auth::set_cookie(&session)),
                        (header::LOCATION, "/".to_string()),
                    ],
                )
                    .into_response(),
            )
        }
        None => refusal(
            StatusCode::UNAUTHORIZED,
            "this login link is unknown, used or expired (links last 60 s and work once): run `triadctl dashboard url` again",
        ),
    }
}

/// Mint a login link for a certificate holder; the answer is the URL, one line.
async fn login_link(
    State(dashboard): State<Dashboard>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Response {
    let now = Instant::now();
    let who = match auth::decide_link(&dashboard.credentials(&peer, &headers, now)) {
        Decision::Allow(who) => who,
        Decision::Unauthenticated(why) => return refusal(StatusCode::UNAUTHORIZED, &why),
        Decision::Forbidden(why) => return refusal(StatusCode::FORBIDDEN, &why),
    };
    let Some(token) = dashboard.sessions.mint_link(&who, now) else {
        return refusal(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "{} login links are waiting to be opened; wait a minute",
                auth::MAX_LINKS
            ),
        );
    };
    tracing::info!(%who, peer = %peer.addr, "dashboard login link given");
    if let Some(events) = &dashboard.sources.events {
        events.record("operator", "dashboard", "dashboard login link", Some(who));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("triad-coordinator");
    no_store(format!("https://{host}/login?token={token}\n").into_response())
}
