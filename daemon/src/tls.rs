//! Mutual TLS on Triad's gRPC channels (issue 9; design section 9, principle 2: an agent
//! that can bootstrap a database or stop a node obeys only its coordinator and operators).
//!
//! One cluster CA (`triadctl pki init`) signs every certificate (`triadctl pki issue`). A
//! certificate says who it is in its subject: CN = the name (a node id, the coordinator's
//! id, an operator), OU = the role (`node`, `coordinator`, `operator`). Servers require a
//! certificate from the cluster CA for the handshake to succeed; a client that presents
//! none is let through the handshake only to be answered UNAUTHENTICATED with a clear
//! message, and a role that may not make a call gets PERMISSION_DENIED. Clients check the
//! server's name: the coordinator dials an agent by its node id, triadctl dials
//! `triad-coordinator`.
//!
//! The server's certificate and CA are re-read on [`TlsReloader::reload`] (SIGHUP); the
//! next handshake uses them. Clients read their files at every connect.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// The DNS name in the coordinator's certificate, which triadctl checks.
pub const COORDINATOR_SERVER_NAME: &str = "triad-coordinator";

/// What a certificate's OU says its holder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerRole {
    Node,
    Coordinator,
    Operator,
    /// Reads the coordinator's status and events, nothing else (a dashboard, monitoring).
    Viewer,
}

impl PeerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerRole::Node => "node",
            PeerRole::Coordinator => "coordinator",
            PeerRole::Operator => "operator",
            PeerRole::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<PeerRole> {
        match text {
            "node" => Some(PeerRole::Node),
            "coordinator" => Some(PeerRole::Coordinator),
            "operator" => Some(PeerRole::Operator),
            "viewer" => Some(PeerRole::Viewer),
            _ => None,
        }
    }
}

impl std::fmt::Display for PeerRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[tls]`: the cluster CA, this process's certificate and its key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("TLS: {0}")]
    Config(String),
}

fn file_error(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Who holds a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub name: String,
    pub role: PeerRole,
    /// Expiry, Unix seconds.
    pub not_after: i64,
}

impl std::fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.role)
    }
}

/// The name and role a DER certificate states (CN and OU of its subject).
pub fn identity_of(der: &[u8]) -> Result<PeerIdentity, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .ok_or("the certificate has no CN")?
        .to_string();
    let role_text = subject
        .iter_organizational_unit()
        .next()
        .and_then(|a| a.as_str().ok())
        .ok_or("the certificate has no OU (its role)")?;
    let role = PeerRole::parse(role_text).ok_or_else(|| {
        format!("the certificate's OU {role_text:?} is not node, coordinator or operator")
    })?;
    Ok(PeerIdentity {
        name,
        role,
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// Certificates of a PEM file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, format!("cannot read: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(path, "holds no certificate"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| file_error(path, format!("no usable private key: {e}")))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsFiles {
    /// The identity of this process's own certificate (its expiry for the status).
    pub fn own_identity(&self) -> Result<PeerIdentity, TlsError> {
        let certs = read_certs(&self.cert)?;
        identity_of(&certs[0]).map_err(|e| file_error(&self.cert, e))
    }

    /// A server config: our certificate, client certificates checked against the CA
    /// (a client without one passes the handshake and is refused per call, clearly).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_certs(&self.ca)? {
            roots
                .add(cert)
                .map_err(|e| file_error(&self.ca, format!("not a usable CA certificate: {e}")))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| file_error(&self.ca, e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(read_certs(&self.cert)?, read_key(&self.key)?)
            .map_err(|e| {
                file_error(
                    &self.cert,
                    format!("does not go with the key {}: {e}", self.key.display()),
                )
            })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// A client config for a server that must prove it is `server_name`.
    pub fn client_config(
        &self,
        server_name: &str,
    ) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| file_error(path, format!("cannot read: {e}")))
        };
        Ok(tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(read(&self.ca)?))
            .identity(tonic::transport::Identity::from_pem(
                read(&self.cert)?,
                read(&self.key)?,
            ))
            .domain_name(server_name))
    }
}

impl TlsFiles {
    /// A plain rustls client config (TLS 1.3, the cluster CA as the only root, our
    /// certificate) offering `alpn`: for HTTPS to the coordinator's dashboard, which
    /// tonic's config does not serve.
    pub fn rustls_client_config(
        &self,
        alpn: &[&[u8]],
    ) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_certs(&self.ca)? {
            roots
                .add(cert)
                .map_err(|e| file_error(&self.ca, format!("not a usable CA certificate: {e}")))?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(read_certs(&self.cert)?, read_key(&self.key)?)
            .map_err(|e| {
                file_error(
                    &self.cert,
                    format!("does not go with the key {}: {e}", self.key.display()),
                )
            })?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// The server side's current TLS config, swapped on reload.
#[derive(Debug, Clone)]
pub struct TlsReloader {
    files: TlsFiles,
    current: Arc<RwLock<Arc<rustls::ServerConfig>>>,
}

impl TlsReloader {
    pub fn new(files: TlsFiles) -> Result<TlsReloader, TlsError> {
        let config = files.server_config()?;
        Ok(TlsReloader {
            files,
            current: Arc::new(RwLock::new(config)),
        })
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Re-read the files; on error the running config stays.
    pub fn reload(&self) -> Result<PeerIdentity, TlsError> {
        let config = self.files.server_config()?;
        let identity = self.files.own_identity()?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(identity)
    }

    /// The current server config offering `alpn` instead of gRPC's h2 (the coordinator's
    /// HTTPS dashboard speaks HTTP/1.1 with the same certificate and client check).
    pub fn config_with_alpn(&self, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let mut config =
            rustls::ServerConfig::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        tokio_rustls::TlsAcceptor::from(config)
    }
}

/// Accepted TLS connections of `listener`, for `Server::serve_with_incoming*`. Each
/// handshake runs in its own task (bounded to 10 s), so a slow or hostile client does not
/// hold up others; failed handshakes are logged with the peer's address and dropped.
pub fn incoming(
    listener: TcpListener,
    tls: TlsReloader,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer): (TcpStream, SocketAddr) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "gRPC accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = tls.acceptor();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    // a connection closed before any TLS (a port probe, a health check)
                    Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                        tracing::debug!(%peer, "connection closed before the TLS handshake")
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%peer, %error, "TLS handshake refused: {error}")
                    }
                    Err(_) => tracing::warn!(%peer, "TLS handshake not finished within 10s"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Who made `request`, from its client certificate (None: plaintext, or no certificate).
pub fn caller<T>(request: &tonic::Request<T>) -> Option<Result<PeerIdentity, String>> {
    let certs = request.peer_certs()?;
    let first = certs.first()?;
    Some(identity_of(first))
}

/// Refuse `call` unless the caller's certificate has one of `allowed` roles. `tls`: the
/// server runs TLS (in plaintext mode there is no identity to check, and the server
/// warned at start).
pub fn authorize<T>(
    request: &tonic::Request<T>,
    tls: bool,
    allowed: &[PeerRole],
    call: &str,
) -> Result<Option<PeerIdentity>, tonic::Status> {
    if !tls {
        return Ok(None);
    }
    let roles: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
    match caller(request) {
        None => Err(tonic::Status::unauthenticated(format!(
            "{call}: no client certificate; this server accepts only certificates of the cluster CA with role {} (`triadctl pki issue`)",
            roles.join(" or ")
        ))),
        Some(Err(error)) => Err(tonic::Status::unauthenticated(format!(
            "{call}: unusable client certificate: {error}"
        ))),
        Some(Ok(identity)) if allowed.contains(&identity.role) => Ok(Some(identity)),
        Some(Ok(identity)) => Err(tonic::Status::permission_denied(format!(
            "{call}: {identity} may not call this; it needs role {}",
            roles.join(" or ")
        ))),
    }
}

/// Days until `identity`'s certificate expires (negative: expired).
pub fn days_left(identity: &PeerIdentity) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    (identity.not_after - now).div_euclid(86_400)
}

/// Log a certificate's holder and expiry; a warning within 30 days of it.
fn log_identity(daemon: &str, identity: &PeerIdentity, files: &TlsFiles) {
    let days = days_left(identity);
    if days <= 30 {
        tracing::warn!(cert = %files.cert.display(), "{daemon}: TLS certificate of {identity} expires in {days} day(s): issue a new one (`triadctl pki issue`) and send SIGHUP");
    } else {
        tracing::info!(cert = %files.cert.display(), "{daemon}: mutual TLS as {identity}, certificate valid for {days} more day(s)");
    }
}

/// The server side at start: the reloader with the files read and checked (errors name
/// the file), or `None` with a warning for plaintext.
pub fn start(files: Option<&TlsFiles>, daemon: &str) -> Result<Option<TlsReloader>, TlsError> {
    match files {
        None => {
            tracing::warn!("{daemon}: gRPC in PLAINTEXT: anyone who reaches its port can call it; set [tls] ca, cert and key (`triadctl pki`)");
            Ok(None)
        }
        Some(files) => {
            let reloader = TlsReloader::new(files.clone())?;
            log_identity(daemon, &files.own_identity()?, files);
            Ok(Some(reloader))
        }
    }
}

/// SIGHUP: re-read the certificate files (the running ones stay on error); the new
/// certificate's identity when it was taken.
pub fn reload(tls: Option<&TlsReloader>) -> Option<PeerIdentity> {
    let tls = tls?;
    match tls.reload() {
        Ok(identity) => {
            log_identity("SIGHUP", &identity, tls.files());
            Some(identity)
        }
        Err(error) => {
            tracing::error!(%error, "SIGHUP: TLS files unusable; keeping the running ones");
            None
        }
    }
}

/// Serve `router` on `listener`, through TLS when `tls` is set.
pub async fn serve(
    router: tonic::transport::server::Router,
    listener: TcpListener,
    tls: Option<TlsReloader>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    match tls {
        Some(tls) => {
            router
                .serve_with_incoming_shutdown(incoming(listener, tls), shutdown)
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    shutdown,
                )
                .await
        }
    }
}

/// A gRPC client endpoint for `url` (`http://` or `https://`), over mutual TLS with
/// `files` toward the server named `server_name` when given; connect bounded by
/// `connect_timeout`, each call by `call_timeout`. The one set-up for the coordinator's
/// calls to agents and triadctl's to the coordinator; errors are one line naming the URL.
pub fn client_endpoint(
    url: &str,
    files: Option<&TlsFiles>,
    server_name: &str,
    connect_timeout: Duration,
    call_timeout: Option<Duration>,
) -> Result<tonic::transport::Endpoint, String> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|error| format!("{url:?} is not a valid endpoint URL: {error}"))?
        .connect_timeout(connect_timeout);
    if let Some(timeout) = call_timeout {
        endpoint = endpoint.timeout(timeout);
    }
    if let Some(files) = files {
        let config = files
            .client_config(server_name)
            .map_err(|e| e.to_string())?;
        endpoint = endpoint
            .tls_config(config)
            .map_err(|error| format!("TLS toward {url}: {error}"))?;
    }
    Ok(endpoint)
}

/// tonic's transport errors say "transport error"; the cause (a refused certificate, a
/// wrong name) is in the source chain.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
