//! The coordinator's gRPC server (CoordinatorService): cluster status and the membership
//! event stream, and the operator's `Recover`.

use std::pin::Pin;
use std::sync::Arc;

use tokio::time::Instant;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};
use tonic::codegen::http;
use tonic::{Request, Response, Status};
use triad_proto::errors::ErrorKind;
use triad_proto::v1;
use triad_proto::v1::coordinator_service_server::{CoordinatorService, CoordinatorServiceServer};

use crate::balancer::reconcile::BalancerStatus;
use crate::observer::Coordinator;
use crate::recovery::RecoveryHandle;
use crate::status::cluster_status;
use crate::view::ClusterEvent;
use crate::volume::run::VolumeStatus;
use triad_daemon::tls::PeerRole;

#[derive(Debug, Clone)]
pub struct CoordinatorGrpc {
    coordinator: Arc<Coordinator>,
    recovery: Option<RecoveryHandle>,
    balancer: Option<tokio::sync::watch::Receiver<BalancerStatus>>,
    volume: Option<tokio::sync::watch::Receiver<VolumeStatus>>,
    autoscale: Option<crate::autoscale::AutoscaleHandle>,
    app: Option<(
        crate::app::AppSpec,
        tokio::sync::watch::Receiver<crate::app::AppStatus>,
    )>,
    /// Maintenance mode's wanted state (persisted) and the balancer loop that applies it.
    maintenance: Option<Arc<crate::maintenance::MaintenanceStore>>,
    /// Split-brain resolution through the volume's agents.
    volume_resolver: Option<crate::volume::run::VolumeResolver>,
    /// The timeline: operator commands are recorded in it, `Timeline` reads it.
    events: Option<Arc<crate::events::EventLog>>,
    /// Where one-off runs are recorded (`triadctl app run`); `None`: not offered.
    state_dir: Option<std::path::PathBuf>,
    /// The jobs loop's statuses (`[[app.jobs]]`).
    jobs: Option<tokio::sync::watch::Receiver<Vec<crate::jobs::JobStatus>>>,
    /// The server runs mutual TLS with these files: callers are checked by their
    /// certificate's role (None: plaintext, asked for).
    tls: Option<triad_daemon::tls::TlsFiles>,
    /// Backups (`[backup]`); `None`: not configured.
    backups: Option<Arc<crate::backup::Backups>>,
    /// The node maintenance loop's status line.
    node_maintenance: Option<tokio::sync::watch::Receiver<String>>,
}

/// The nodes whose certificate (from their gossip) expires within 30 days, soonest first:
/// (days left, negative once expired; node; not_after in Unix seconds). The one rule the
/// status line and the status's TLS section both show.
pub fn expiring_nodes<'a>(
    nodes: impl Iterator<Item = (&'a str, Option<u64>)>,
    now: i64,
) -> Vec<(i64, &'a str, i64)> {
    let mut expiring: Vec<(i64, &str, i64)> = nodes
        .filter_map(|(node, not_after)| {
            let not_after = i64::try_from(not_after?).ok()?;
            let days = (not_after - now).div_euclid(86_400);
            (days <= 30).then_some((days, node, not_after))
        })
        .collect();
    expiring.sort();
    expiring
}

/// "n2 in 12 day(s), n3 EXPIRED 2 day(s) ago" for [`expiring_nodes`]; empty when none.
pub fn expiring_certificates(expiring: &[(i64, &str, i64)]) -> String {
    expiring
        .iter()
        .map(|(days, node, _)| {
            if *days < 0 {
                format!("{node} EXPIRED {} day(s) ago", -days)
            } else {
                format!("{node} in {days} day(s)")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How long `triadctl maintenance NODE on` waits for the node to have left Galera.
const MAINTENANCE_LEAVE_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// Who may call the coordinator at all: operators (triadctl) and viewers (status and events
/// only). Nodes never need to, and a node's certificate must not be enough to recover the
/// database or resize the cluster.
pub const COORDINATOR_CALLERS: &[PeerRole] = &[PeerRole::Operator, PeerRole::Viewer];

/// Who still reaches the app in maintenance mode, in words: the allowed addresses with
/// HAProxy; with Octavia, which cannot match addresses, whoever sends the bypass cookie.
fn who_passes(kind: &str, m: &crate::maintenance::Maintenance) -> String {
    if kind == "octavia" {
        format!(
            "the app answers requests with the cookie {}={} (e.g. curl -b {0}={1}); Octavia cannot match client addresses",
            crate::maintenance::BYPASS_COOKIE,
            m.bypass
        )
    } else {
        format!(
            "allowed: {}",
            m.allow
                .iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Who may change anything (Recover, Scale, AppRun, Maintenance): operators only. Every
/// call that is not a read checks this itself.
pub const OPERATOR_ONLY: &[PeerRole] = &[PeerRole::Operator];

/// What a coordinator RPC does with the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads state: operators and viewers.
    Read,
    /// Changes something: operators only.
    Change,
}

/// Every RPC of `CoordinatorService` and its access. The gate refuses a method missing
/// here, so a new RPC is unusable until it is classified (a test ties this list to the
/// proto), instead of open to viewers because its handler forgot a check.
pub const METHODS: &[(&str, Access)] = &[
    ("ClusterStatus", Access::Read),
    ("Events", Access::Read),
    ("Timeline", Access::Read),
    ("Recover", Access::Change),
    ("Scale", Access::Change),
    ("AppRun", Access::Change),
    ("Maintenance", Access::Change),
    ("NodeDrain", Access::Change),
    ("NodeMaintenance", Access::Change),
    ("VolumeResolve", Access::Change),
    ("BackupNow", Access::Change),
    ("BackupList", Access::Read),
    ("BackupVerify", Access::Change),
    ("BackupRestore", Access::Change),
];

/// The roles that may call `method` (its last path segment); `None` for an unknown one.
pub fn roles_for(method: &str) -> Option<&'static [PeerRole]> {
    METHODS
        .iter()
        .find(|(name, _)| *name == method)
        .map(|(_, access)| match access {
            Access::Read => COORDINATOR_CALLERS,
            Access::Change => OPERATOR_ONLY,
        })
}

/// Checks every call's client certificate against its method's access ([`METHODS`])
/// before it reaches the service: a per-method gate, one place for every RPC.
#[derive(Debug, Clone)]
pub struct MethodGate<S> {
    inner: S,
    tls: bool,
}

impl<S> MethodGate<S> {
    fn check<B>(&self, request: &http::Request<B>) -> Result<(), tonic::Status> {
        let method = request.uri().path().rsplit('/').next().unwrap_or_default();
        let Some(roles) = roles_for(method) else {
            return Err(tonic::Status::unimplemented(format!(
                "{method}: not a method of triad-coordinator"
            )));
        };
        // authorize reads the peer certificates from the request's extensions
        let mut probe = http::Request::new(());
        *probe.extensions_mut() = request.extensions().clone();
        triad_daemon::tls::authorize(&tonic::Request::from_http(probe), self.tls, roles, method)?;
        Ok(())
    }
}

impl<S, B> tonic::codegen::Service<http::Request<B>> for MethodGate<S>
where
    S: tonic::codegen::Service<
            http::Request<B>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + Send,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match self.check(&request) {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for MethodGate<S> {
    const NAME: &'static str = S::NAME;
}

impl CoordinatorGrpc {
    pub fn new(coordinator: Arc<Coordinator>) -> CoordinatorGrpc {
        CoordinatorGrpc {
            coordinator,
            recovery: None,
            balancer: None,
            volume: None,
            autoscale: None,
            app: None,
            jobs: None,
            state_dir: None,
            maintenance: None,
            volume_resolver: None,
            events: None,
            tls: None,
            backups: None,
            node_maintenance: None,
        }
    }

    /// Report the node maintenance loop's status line in ClusterStatus.
    pub fn with_node_maintenance(
        mut self,
        status: tokio::sync::watch::Receiver<String>,
    ) -> CoordinatorGrpc {
        self.node_maintenance = Some(status);
        self
    }

    /// Report the app loop's status in ClusterStatus.
    pub fn with_app(
        mut self,
        spec: crate::app::AppSpec,
        status: tokio::sync::watch::Receiver<crate::app::AppStatus>,
    ) -> CoordinatorGrpc {
        self.app = Some((spec, status));
        self
    }

    /// Record operator commands in `events` and serve it (`Timeline`).
    pub fn with_events(mut self, events: Arc<crate::events::EventLog>) -> CoordinatorGrpc {
        self.events = Some(events);
        self
    }

    /// Records the loops' decisions in the timeline until `stop` (see `events::watch`).
    pub fn spawn_timeline(
        &self,
        coordinator: Arc<Coordinator>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let Some(events) = self.events.clone() else {
            return;
        };
        tokio::spawn(crate::events::watch(
            events,
            Arc::new(move || coordinator.view()),
            self.balancer.clone(),
            self.jobs.clone(),
            self.recovery.clone(),
            self.autoscale.clone(),
            stop,
        ));
    }

    /// An operator command, with who asked, in the timeline.
    fn operator_event(
        &self,
        command: &str,
        text: String,
        who: &Option<triad_daemon::tls::PeerIdentity>,
    ) {
        if let Some(events) = &self.events {
            let who = who
                .as_ref()
                .map_or_else(|| "plaintext caller".to_string(), |id| id.to_string());
            events.record("operator", command, text, Some(who));
        }
    }

    /// Offer maintenance mode through `store` (applied by the balancer loop).
    pub fn with_maintenance(
        mut self,
        store: Arc<crate::maintenance::MaintenanceStore>,
    ) -> CoordinatorGrpc {
        self.maintenance = Some(store);
        self
    }

    /// Offer backups (`BackupNow`, `BackupList`, `BackupVerify`, `BackupRestore`) and their status.
    pub fn with_backups(mut self, backups: Arc<crate::backup::Backups>) -> CoordinatorGrpc {
        self.backups = Some(backups);
        self
    }

    /// Offer one-off runs (`AppRun`), recorded in `state_dir`.
    pub fn with_state_dir(mut self, state_dir: std::path::PathBuf) -> CoordinatorGrpc {
        self.state_dir = Some(state_dir);
        self
    }

    /// Report the jobs loop's statuses in ClusterStatus.
    pub fn with_jobs(
        mut self,
        status: tokio::sync::watch::Receiver<Vec<crate::jobs::JobStatus>>,
    ) -> CoordinatorGrpc {
        self.jobs = Some(status);
        self
    }

    /// The server runs mutual TLS with `files`: only operator certificates may call, and
    /// the status shows the certificate's expiry.
    pub fn with_tls(mut self, files: Option<triad_daemon::tls::TlsFiles>) -> CoordinatorGrpc {
        self.tls = files;
        self
    }

    /// The status line on gRPC security (read from the certificate file at each call, so a
    /// renewed certificate shows at once).
    fn tls_line(&self) -> String {
        let Some(files) = &self.tls else {
            return "PLAINTEXT gRPC ([tls] insecure = true): anyone who reaches the ports can call the agents and the coordinator".into();
        };
        match files.own_identity() {
            Ok(identity) => {
                let days = triad_daemon::tls::days_left(&identity);
                if days <= 30 {
                    format!("mutual TLS as {identity}; its certificate EXPIRES in {days} day(s): issue a new one (`triadctl pki issue`) and send SIGHUP")
                } else {
                    format!("mutual TLS as {identity}, certificate valid {days} more day(s)")
                }
            }
            Err(error) => format!("mutual TLS; cannot read the certificate: {error}"),
        }
    }

    /// Report the autoscaling loop's status line in ClusterStatus.
    pub fn with_autoscale(
        mut self,
        autoscale: crate::autoscale::AutoscaleHandle,
    ) -> CoordinatorGrpc {
        self.autoscale = Some(autoscale);
        self
    }

    /// Report the volume loop's status line in ClusterStatus.
    pub fn with_volume(
        mut self,
        status: tokio::sync::watch::Receiver<VolumeStatus>,
    ) -> CoordinatorGrpc {
        self.volume = Some(status);
        self
    }

    /// Offer split-brain resolution (`VolumeResolve`) through `resolver`.
    pub fn with_volume_resolver(
        mut self,
        resolver: crate::volume::run::VolumeResolver,
    ) -> CoordinatorGrpc {
        self.volume_resolver = Some(resolver);
        self
    }

    /// Report the balancer membership loop in ClusterStatus.
    pub fn with_balancer(
        mut self,
        status: tokio::sync::watch::Receiver<BalancerStatus>,
    ) -> CoordinatorGrpc {
        self.balancer = Some(status);
        self
    }

    /// Serve `Recover` and the galera status line from the recovery loop.
    pub fn with_recovery(mut self, recovery: RecoveryHandle) -> CoordinatorGrpc {
        self.recovery = Some(recovery);
        self
    }

    pub fn into_server(self) -> MethodGate<CoordinatorServiceServer<CoordinatorGrpc>> {
        MethodGate {
            tls: self.tls.is_some(),
            inner: CoordinatorServiceServer::new(self),
        }
    }

    /// What `/metrics` shows now, from the same view, certificate file, balancer status
    /// and autoscaler removals as the status.
    pub fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        let view = self.coordinator.view();
        let balancer = self.balancer.as_ref().map(|watch| watch.borrow().clone());
        let galera = self.recovery.as_ref().map(|r| r.galera_status());
        let volume = self.volume.as_ref().map(|watch| watch.borrow().clone());
        let autoscale = self.autoscale.as_ref().map(|a| a.autoscale_status());
        let removed = autoscale
            .as_ref()
            .map(|a| a.removed.clone())
            .unwrap_or_default();
        let events = self.events.as_ref().map(|e| e.counts());
        let backup = self.backups.as_ref().map(|b| b.sample());
        crate::metrics::snapshot(&crate::metrics::Sources {
            cluster: &self.coordinator.cluster_name,
            view: &view,
            tls: self.tls.as_ref(),
            balancer: balancer.as_ref(),
            removed: &removed,
            galera: galera.as_ref(),
            volume: volume.as_ref(),
            autoscale: autoscale.as_ref(),
            events: events.as_ref(),
            backup: backup.as_ref(),
        })
    }

    /// The app's account as this cluster has it (`[app]`), for a restore to set its
    /// password; `None` without `[app]`.
    fn app_account(&self) -> Result<Option<triad_galera::account::AppAccount>, Status> {
        let (Some((spec, _)), Some(state_dir)) = (&self.app, &self.state_dir) else {
            return Ok(None);
        };
        let password = crate::app::load_or_create_password(state_dir)
            .map_err(|why| ErrorKind::Failed.status(format!("the app's password: {why}")))?;
        Ok(Some(triad_galera::account::AppAccount {
            database: spec.database.clone(),
            user: spec.user.clone(),
            host: spec.client_host.clone(),
            password_hash: triad_galera::account::native_password_hash(&password),
        }))
    }

    fn backups(&self) -> Result<Arc<crate::backup::Backups>, Status> {
        self.backups.clone().ok_or_else(|| {
            ErrorKind::Refused.status("backups are not configured on this coordinator ([backup])")
        })
    }

    /// The `ClusterStatus` answer now (also the dashboard's source).
    pub fn status_now(&self) -> v1::ClusterStatus {
        let now = Instant::now();
        let observing = now
            .saturating_duration_since(self.coordinator.started_at)
            .as_secs();
        let galera = self
            .recovery
            .as_ref()
            .map(|r| r.status())
            .unwrap_or_default();
        let mut status = cluster_status(
            &galera,
            &self.coordinator.cluster_name,
            &self.coordinator.view(),
            observing,
            now,
        );
        status.balancer = self
            .balancer
            .as_ref()
            .map(|watch| balancer_status(&watch.borrow()));
        status.volume = self
            .volume
            .as_ref()
            .map(|watch| watch.borrow().line.clone())
            .unwrap_or_default();
        status.autoscale = self
            .autoscale
            .as_ref()
            .map(|handle| handle.status())
            .unwrap_or_default();
        status.tls = self.tls_line();
        status.node_maintenance = self
            .node_maintenance
            .as_ref()
            .map(|watch| watch.borrow().clone())
            .unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let view = self.coordinator.view();
        let expiring = expiring_nodes(
            view.members()
                .filter(|m| m.live)
                .map(|m| (m.node_id.as_str(), m.keys.tls_not_after)),
            now,
        );
        if !expiring.is_empty() {
            status.tls = format!(
                "{}; node certificates expiring: {}",
                status.tls,
                expiring_certificates(&expiring)
            );
        }
        status.tls_section = Some(v1::TlsSection {
            plaintext: self.tls.is_none(),
            certificate: self
                .tls
                .as_ref()
                .and_then(|files| files.own_identity().ok())
                .map(|identity| v1::CertificateFact {
                    holder: identity.name,
                    not_after: identity.not_after,
                }),
            expiring: expiring
                .iter()
                .map(|(_, node, not_after)| v1::CertificateFact {
                    holder: node.to_string(),
                    not_after: *not_after,
                })
                .collect(),
        });
        status.galera_section = self.recovery.as_ref().map(|r| {
            let galera = r.galera_status();
            v1::GaleraSection {
                last_epoch: galera.last_epoch,
                open_decision: galera.open.map(|open| v1::GaleraDecision {
                    epoch: open.epoch,
                    node: open.node,
                    phase: open.phase.as_str().to_string(),
                }),
            }
        });
        status.volume_section = self.volume.as_ref().map(|watch| v1::VolumeSection {
            state: watch.borrow().state.as_str().to_string(),
            split_brain_files: watch.borrow().split_brain_files.clone(),
        });
        if let Some((spec, watch)) = &self.app {
            let app = watch.borrow().clone();
            status.app = app.line;
            status.app_section = Some(v1::AppSection {
                state: app.state.as_str().to_string(),
                database: spec.database.clone(),
                user: spec.user.clone(),
            });
        }
        if let Some(m) = self.maintenance.as_ref().and_then(|store| store.wanted()) {
            let balancer = self.balancer.as_ref().map(|b| b.borrow().clone());
            let (applied, error) = match &balancer {
                None => (
                    false,
                    "no balancer is configured: only the jobs pause".to_string(),
                ),
                Some(b) if b.maintenance_in_place(Some(&m)) => (true, String::new()),
                Some(b) => (
                    false,
                    b.maintenance_error
                        .clone()
                        .unwrap_or_else(|| "not in place yet".into()),
                ),
            };
            status.maintenance = Some(v1::MaintenanceSection {
                message: m.message.clone(),
                retry_after_secs: m.retry_after_secs,
                allow: m.allow.iter().map(|ip| ip.to_string()).collect(),
                since: m.since,
                applied,
                error,
                bypass_cookie: match &balancer {
                    Some(b) if b.kind == "octavia" => {
                        format!("{}={}", crate::maintenance::BYPASS_COOKIE, m.bypass)
                    }
                    _ => String::new(),
                },
            });
        }
        if let Some(watch) = &self.jobs {
            status.jobs = watch
                .borrow()
                .iter()
                .map(crate::jobs::JobStatus::fact)
                .collect();
        }
        status.autoscale_section = self.autoscale.as_ref().map(|handle| {
            let autoscale = handle.autoscale_status();
            v1::AutoscaleSection {
                request_rate: autoscale.rate,
                ready: autoscale.ready as u32,
                recommended: autoscale.recommended.map(|n| n as u32),
                removed: autoscale.removed,
            }
        });
        if let Some(backups) = &self.backups {
            let (line, section) = backups.status();
            status.backup = line;
            status.backup_section = Some(section);
        }
        // nodes the autoscaler deleted linger in gossip as dead: not a degraded cluster
        if let Some(handle) = &self.autoscale {
            let removed = handle.removed();
            status
                .nodes
                .retain(|n| n.live || !removed.contains(&n.node_id));
        }
        status
    }
}

fn balancer_status(status: &BalancerStatus) -> v1::BalancerStatus {
    v1::BalancerStatus {
        kind: status.kind.to_string(),
        members: status
            .members
            .iter()
            .map(|m| format!("{} {}", m.name, format!("{:?}", m.state).to_lowercase()))
            .collect(),
        errors_total: status.errors_total,
        last_error: status.last_error.clone().unwrap_or_default(),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::ClusterEvent, Status>> + Send>>;
type BackupStream = Pin<Box<dyn Stream<Item = Result<v1::BackupProgress, Status>> + Send>>;

#[tonic::async_trait]
impl CoordinatorService for CoordinatorGrpc {
    async fn cluster_status(
        &self,
        _: Request<v1::ClusterStatusRequest>,
    ) -> Result<Response<v1::ClusterStatus>, Status> {
        Ok(Response::new(self.status_now()))
    }

    async fn recover(
        &self,
        request: Request<v1::RecoverRequest>,
    ) -> Result<Response<v1::RecoverReply>, Status> {
        let who =
            triad_daemon::tls::authorize(&request, self.tls.is_some(), OPERATOR_ONLY, "Recover")?;
        let r = request.get_ref();
        self.operator_event(
            "recover",
            match &r.bootstrap_node {
                Some(node) => format!(
                    "recover --bootstrap {node}{}",
                    if r.force { " --force" } else { "" }
                ),
                None => "recover (the election now)".to_string(),
            },
            &who,
        );
        let Some(recovery) = &self.recovery else {
            return Err(
                ErrorKind::Refused.status("galera recovery is not enabled on this coordinator")
            );
        };
        let request = request.into_inner();
        tracing::warn!(node = ?request.bootstrap_node, force = request.force, "operator recover request");
        match recovery
            .recover(request.bootstrap_node, request.force)
            .await
        {
            Ok((epoch, message)) => Ok(Response::new(v1::RecoverReply { epoch, message })),
            Err(message) => Err(ErrorKind::Refused.status(message)),
        }
    }

    async fn scale(
        &self,
        request: Request<v1::ScaleRequest>,
    ) -> Result<Response<v1::ScaleReply>, Status> {
        let who =
            triad_daemon::tls::authorize(&request, self.tls.is_some(), OPERATOR_ONLY, "Scale")?;
        self.operator_event(
            "scale",
            format!("scale --to {}", request.get_ref().to),
            &who,
        );
        let Some(autoscale) = &self.autoscale else {
            return Err(ErrorKind::Refused
                .status("autoscaling is not configured on this coordinator ([autoscale])"));
        };
        let to = request.into_inner().to as usize;
        tracing::warn!(to, "operator scale request");
        match autoscale.scale(to).await {
            Ok(message) => Ok(Response::new(v1::ScaleReply { message })),
            Err(message) => Err(ErrorKind::Refused.status(message)),
        }
    }

    type EventsStream = EventStream;
    async fn maintenance(
        &self,
        request: Request<v1::MaintenanceRequest>,
    ) -> Result<Response<v1::MaintenanceReply>, Status> {
        let who = triad_daemon::tls::authorize(
            &request,
            self.tls.is_some(),
            OPERATOR_ONLY,
            "Maintenance",
        )?;
        self.operator_event(
            "maintenance",
            if request.get_ref().on {
                format!("app maintenance on ({:?})", request.get_ref().message)
            } else {
                "app maintenance off".to_string()
            },
            &who,
        );
        use crate::maintenance::{Maintenance, DEFAULT_MESSAGE, DEFAULT_RETRY_AFTER};
        let store = self.maintenance.clone().ok_or_else(|| {
            ErrorKind::Refused.status("maintenance mode is not offered by this coordinator")
        })?;
        let caller = request.remote_addr().map(|a| a.ip());
        let r = request.into_inner();
        let wanted = if r.on {
            let message = if r.message.is_empty() {
                DEFAULT_MESSAGE.to_string()
            } else {
                r.message
            };
            Maintenance::check_message(&message).map_err(|why| ErrorKind::Invalid.status(why))?;
            let retry_after_secs = if r.retry_after_secs == 0 {
                DEFAULT_RETRY_AFTER
            } else {
                r.retry_after_secs
            };
            if retry_after_secs > 86_400 {
                return Err(ErrorKind::Invalid.status(format!(
                    "retry_after: {retry_after_secs}s, at most 86400 (a day)"
                )));
            }
            let mut allow: Vec<std::net::IpAddr> = Vec::new();
            for text in &r.allow {
                let ip = text.parse().map_err(|_| {
                    ErrorKind::Invalid.status(format!("allow: {text:?} is not an IP address"))
                })?;
                allow.push(ip);
            }
            // the operator's own address reaches the app, to check the upgrade
            allow.extend(caller);
            allow.sort();
            allow.dedup();
            // turning it on again keeps when it began
            let since = store.wanted().map_or_else(
                || {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs())
                },
                |m| m.since,
            );
            // the bypass cookie stays the same while maintenance stays on
            let bypass = match store.wanted() {
                Some(m) if !m.bypass.is_empty() => m.bypass,
                _ => crate::maintenance::new_bypass_token().map_err(|e| {
                    ErrorKind::Failed.status(format!("making the bypass token: {e}"))
                })?,
            };
            Some(Maintenance {
                message,
                retry_after_secs,
                allow,
                since,
                bypass,
            })
        } else {
            None
        };
        store
            .set(wanted.clone())
            .map_err(|why| ErrorKind::Failed.status(why))?;
        let word = if wanted.is_some() { "on" } else { "off" };
        let Some(balancer) = self.balancer.clone() else {
            return Ok(Response::new(v1::MaintenanceReply {
                message: format!("maintenance mode {word}: no balancer is configured, so only the cluster jobs pause"),
            }));
        };
        // answer once the balancer loop has it in place, or say why not
        let mut balancer = balancer;
        match crate::quiesce::wait_in_place(&mut balancer, wanted.as_ref()).await {
            Ok(()) => Ok(Response::new(v1::MaintenanceReply {
                message: match &wanted {
                    Some(m) => format!(
                        "maintenance mode on: clients get 503 with Retry-After {}s and {:?}; {}; cluster jobs pause",
                        m.retry_after_secs,
                        m.message,
                        who_passes(balancer.borrow().kind, m),
                    ),
                    None => "maintenance mode off: clients reach the app again; cluster jobs resume".into(),
                },
            })),
            Err(error) => {
                Err(ErrorKind::Unavailable.status(format!(
                    "maintenance mode {word} is recorded, but the balancer does not have it in place: {error}"
                )))
            }
        }
    }

    async fn volume_resolve(
        &self,
        request: Request<v1::VolumeResolveRequest>,
    ) -> Result<Response<v1::VolumeResolveReply>, Status> {
        let who = triad_daemon::tls::authorize(
            &request,
            self.tls.is_some(),
            OPERATOR_ONLY,
            "VolumeResolve",
        )?;
        let r = request.into_inner();
        let resolver = self.volume_resolver.clone().ok_or_else(|| {
            ErrorKind::Refused.status("this coordinator manages no volume ([volume] is not set)")
        })?;
        let how = if r.brick.is_empty() {
            r.policy.clone()
        } else {
            format!("{} {}", r.policy, r.brick)
        };
        let result = resolver
            .resolve(&self.coordinator.view(), &r.policy, &r.brick, &r.file)
            .await;
        let said = match &result {
            Ok(output) => format!("resolve {:?} by {how}: {output}", r.file),
            Err(error) => format!("resolve {:?} by {how} failed: {error}", r.file),
        };
        self.operator_event("volume resolve", said, &who);
        match result {
            Ok(message) => Ok(Response::new(v1::VolumeResolveReply { message })),
            Err(message) => Err(ErrorKind::Failed.status(message)),
        }
    }

    async fn node_drain(
        &self,
        request: Request<v1::NodeDrainRequest>,
    ) -> Result<Response<v1::NodeDrainReply>, Status> {
        let who =
            triad_daemon::tls::authorize(&request, self.tls.is_some(), OPERATOR_ONLY, "NodeDrain")?
                .map_or_else(
                    || "an operator (plaintext)".to_string(),
                    |id| id.to_string(),
                );
        let r = request.into_inner();
        let view = self.coordinator.view();
        let plan = crate::drain::check(&view, &r.node, r.drain)
            .map_err(|why| ErrorKind::Refused.status(why))?;
        let reason = format!("drained by {who} (triadctl drain)");
        let result = match plan {
            crate::drain::Plan::Nothing(message) => {
                return Ok(Response::new(v1::NodeDrainReply { message }))
            }
            crate::drain::Plan::Call { grpc } => {
                let mut client = crate::agent_client::connect(
                    &r.node,
                    grpc,
                    std::time::Duration::from_secs(5),
                    std::time::Duration::from_secs(10),
                )
                .await
                .map_err(|e| ErrorKind::Unavailable.status(e.message))?;
                if r.drain {
                    client.drain(v1::DrainRequest { reason }).await
                } else {
                    client.undrain(v1::UndrainRequest {}).await
                }
            }
        };
        result.map_err(|status| {
            ErrorKind::of(status.code()).status(format!("{}: {}", r.node, status.message()))
        })?;
        tracing::warn!(node = %r.node, drain = r.drain, %who, "node drain changed by an operator");
        Ok(Response::new(v1::NodeDrainReply {
            message: if r.drain {
                format!("{} draining: the balancer takes it out once its requests have finished; its services keep running (`triadctl undrain {}` brings it back)", r.node, r.node)
            } else {
                format!(
                    "{} takes traffic again once the balancer has seen it ready",
                    r.node
                )
            },
        }))
    }

    async fn node_maintenance(
        &self,
        request: Request<v1::NodeMaintenanceRequest>,
    ) -> Result<Response<v1::NodeMaintenanceReply>, Status> {
        let identity = triad_daemon::tls::authorize(
            &request,
            self.tls.is_some(),
            OPERATOR_ONLY,
            "NodeMaintenance",
        )?;
        let who = identity.as_ref().map_or_else(
            || "an operator (plaintext)".to_string(),
            |id| id.to_string(),
        );
        let r = request.into_inner();
        let view = self.coordinator.view();
        let grpc = crate::node_maintenance::check(&view, &r.node, r.on)
            .map_err(|why| ErrorKind::Refused.status(why))?;
        let mut client = crate::agent_client::connect(
            &r.node,
            grpc,
            std::time::Duration::from_secs(5),
            std::time::Duration::from_secs(10),
        )
        .await
        .map_err(|e| ErrorKind::Unavailable.status(e.message))?;
        client
            .maintenance(v1::AgentMaintenanceRequest {
                on: r.on,
                leave: false,
                reason: format!("operator {who}"),
            })
            .await
            .map_err(|status| {
                ErrorKind::of(status.code()).status(format!("{}: {}", r.node, status.message()))
            })?;
        let word = if r.on { "on" } else { "off" };
        self.operator_event(
            "node maintenance",
            format!("{} maintenance {word}", r.node),
            &identity,
        );
        if !r.on {
            return Ok(Response::new(v1::NodeMaintenanceReply {
                message: format!(
                    "{} out of maintenance: mysqld rejoins, and the node takes traffic once ready \
                     (the volume's quorum goes back to normal once every brick is back and healed)",
                    r.node
                ),
            }));
        }
        // the answer says when the node may be stopped: once it has left Galera
        let deadline = tokio::time::Instant::now() + MAINTENANCE_LEAVE_WAIT;
        loop {
            let view = self.coordinator.view();
            if view
                .get(&r.node)
                .is_none_or(|m| !crate::node_maintenance::mysqld_running(m))
            {
                return Ok(Response::new(v1::NodeMaintenanceReply {
                    message: format!(
                        "{node} in maintenance: drained and out of the Galera cluster; it may be \
                         stopped or rebooted now and stays out until `triadctl maintenance {node} off`",
                        node = r.node
                    ),
                }));
            }
            if tokio::time::Instant::now() >= deadline {
                let line = self
                    .node_maintenance
                    .as_ref()
                    .map(|w| w.borrow().clone())
                    .unwrap_or_default();
                return Ok(Response::new(v1::NodeMaintenanceReply {
                    message: format!(
                        "{} in maintenance and drained, but its mysqld still runs after {:?}                          (waiting: {line}); `triadctl status` shows when it has left",
                        r.node, MAINTENANCE_LEAVE_WAIT
                    ),
                }));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    type TimelineStream = Pin<Box<dyn Stream<Item = Result<v1::TimelineEvent, Status>> + Send>>;

    async fn timeline(
        &self,
        request: Request<v1::TimelineRequest>,
    ) -> Result<Response<Self::TimelineStream>, Status> {
        let events = self
            .events
            .clone()
            .ok_or_else(|| ErrorKind::Refused.status("this coordinator keeps no timeline"))?;
        let r = request.into_inner();
        let to_proto = |e: crate::events::Event| v1::TimelineEvent {
            at_unix_ms: e.at,
            kind: e.kind,
            subject: e.subject,
            text: e.text,
            who: e.who.unwrap_or_default(),
        };
        // subscribe first, so nothing falls between the kept events and the new ones; an
        // event both kept and broadcast is sent once
        let follow = events.subscribe();
        let kept_events = events.since(r.since_unix_ms);
        let last = kept_events.last().cloned();
        let kept = tokio_stream::iter(
            kept_events
                .into_iter()
                .map(to_proto)
                .map(Ok)
                .collect::<Vec<_>>(),
        );
        if !r.follow {
            return Ok(Response::new(Box::pin(kept)));
        }
        let new = BroadcastStream::new(follow).filter_map(move |event| match event {
            Ok(event) => {
                let seen = last
                    .as_ref()
                    .is_some_and(|last| event.at < last.at || event == *last);
                (!seen).then(|| Ok(to_proto(event)))
            }
            Err(_) => Some(Err(Status::data_loss(
                "the timeline stream lagged; read it again with --since",
            ))),
        });
        Ok(Response::new(Box::pin(kept.chain(new))))
    }

    type AppRunStream = Pin<Box<dyn Stream<Item = Result<v1::RunOnceEvent, Status>> + Send>>;

    async fn app_run(
        &self,
        request: Request<v1::AppRunRequest>,
    ) -> Result<Response<Self::AppRunStream>, Status> {
        let who =
            triad_daemon::tls::authorize(&request, self.tls.is_some(), OPERATOR_ONLY, "AppRun")?;
        self.operator_event(
            "app-run",
            format!(
                "app run {} -- {}",
                request.get_ref().name,
                request.get_ref().argv.join(" ")
            ),
            &who,
        );
        use crate::app_run;
        let state_dir = self.state_dir.clone().ok_or_else(|| {
            ErrorKind::Refused.status("one-off runs need the coordinator's state directory")
        })?;
        let r = request.into_inner();
        triad_proto::gossip::check_job_name(&r.name)
            .map_err(|rule| ErrorKind::Invalid.status(format!("name {:?}: {rule}", r.name)))?;
        triad_jobs::spec::check_argv(&r.argv)
            .map_err(|why| ErrorKind::Invalid.status(format!("argv: {why}")))?;
        let user = if r.user.is_empty() {
            app_run::DEFAULT_USER.to_string()
        } else {
            r.user
        };
        let timeout_ms = if r.timeout_ms == 0 {
            app_run::DEFAULT_TIMEOUT.as_millis() as u64
        } else {
            r.timeout_ms
        };
        let (node, grpc) = app_run::pick_node(&self.coordinator.view(), &r.node)
            .map_err(|why| ErrorKind::Refused.status(why))?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(app_run::run(
            node,
            grpc,
            v1::RunOnceRequest {
                name: r.name,
                argv: r.argv,
                user,
                timeout_ms,
            },
            state_dir,
            tx,
        ));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    type BackupNowStream = BackupStream;

    async fn backup_now(
        &self,
        request: Request<v1::BackupNowRequest>,
    ) -> Result<Response<Self::BackupNowStream>, Status> {
        let who =
            triad_daemon::tls::authorize(&request, self.tls.is_some(), OPERATOR_ONLY, "BackupNow")?;
        let quiesce = request.get_ref().quiesce;
        self.operator_event(
            "backup-now",
            format!("backup now{}", if quiesce { " --quiesce" } else { "" }),
            &who,
        );
        let backups = self.backups()?;
        let who = who.map(|id| id.to_string());
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        // the backup goes on if the operator goes away; its end is in the timeline
        tokio::spawn(async move {
            if let Err(error) = backups.take(who, Some(tx.clone()), quiesce).await {
                let _ = tx.send(Err(error.status())).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn backup_list(
        &self,
        _: Request<v1::BackupListRequest>,
    ) -> Result<Response<v1::BackupListReply>, Status> {
        let backups = self.backups()?;
        let listed = backups.list().await.map_err(|e| e.status())?;
        Ok(Response::new(v1::BackupListReply {
            backups: listed.iter().map(crate::backup::info).collect(),
            target: backups.describe_target(),
        }))
    }

    type BackupVerifyStream = BackupStream;
    type BackupRestoreStream = BackupStream;

    async fn backup_restore(
        &self,
        request: Request<v1::BackupRestoreRequest>,
    ) -> Result<Response<Self::BackupRestoreStream>, Status> {
        let who = triad_daemon::tls::authorize(
            &request,
            self.tls.is_some(),
            OPERATOR_ONLY,
            "BackupRestore",
        )?;
        let v1::BackupRestoreRequest { id, force } = request.into_inner();
        self.operator_event(
            "backup-restore",
            format!("backup restore {id}{}", if force { " --force" } else { "" }),
            &who,
        );
        let backups = self.backups()?;
        let recovery = self.recovery.clone().ok_or_else(|| {
            ErrorKind::Refused
                .status("galera is not managed by this coordinator: nothing to restore into")
        })?;
        let app = self.app_account()?;
        let who = who.map(|id| id.to_string());
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        // the restore goes on if the operator goes away; its end is in the timeline
        tokio::spawn(async move {
            if let Err(error) = backups
                .restore(&id, force, &recovery, app, who, Some(tx.clone()))
                .await
            {
                let _ = tx.send(Err(error.status())).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn backup_verify(
        &self,
        request: Request<v1::BackupVerifyRequest>,
    ) -> Result<Response<Self::BackupVerifyStream>, Status> {
        let who = triad_daemon::tls::authorize(
            &request,
            self.tls.is_some(),
            OPERATOR_ONLY,
            "BackupVerify",
        )?;
        let id = request.into_inner().id;
        self.operator_event("backup-verify", format!("backup verify {id}"), &who);
        let backups = self.backups()?;
        let who = who.map(|id| id.to_string());
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            if let Err(error) = backups.verify(&id, who, Some(tx.clone())).await {
                let _ = tx.send(Err(error.status())).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn events(
        &self,
        _: Request<v1::ClusterEventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let this = self.clone();
        let stream = BroadcastStream::new(self.coordinator.subscribe()).filter_map(move |event| {
            let event = match event {
                Ok(event) => event,
                // a slow reader missed events: tell it to resync from ClusterStatus
                Err(_) => {
                    return Some(Err(Status::data_loss(
                        "event stream lagged; re-read ClusterStatus",
                    )))
                }
            };
            let (kind, node_id) = match &event {
                ClusterEvent::Add(m) => (v1::ClusterEventKind::Add, m.node_id.clone()),
                ClusterEvent::Update(m) => (v1::ClusterEventKind::Update, m.node_id.clone()),
                ClusterEvent::Remove(m) => (v1::ClusterEventKind::Remove, m.node_id.clone()),
            };
            let node = this
                .status_now()
                .nodes
                .into_iter()
                .find(|n| n.node_id == node_id)
                .or_else(|| {
                    Some(v1::NodeView {
                        node_id,
                        ..Default::default()
                    })
                });
            Some(Ok(v1::ClusterEvent {
                kind: kind as i32,
                node,
                at_unix_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
            }))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every RPC the proto declares is classified in METHODS, and nothing else is.
    #[test]
    fn every_coordinator_rpc_has_an_access_and_only_those() {
        let proto = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../proto/proto/triad/v1/coordinator.proto"
        ));
        let service = &proto[proto
            .find("service CoordinatorService")
            .expect("the service")..];
        let service = &service[..service.find("\n}").expect("its end")];
        let declared: std::collections::BTreeSet<&str> = service
            .lines()
            .filter_map(|l| l.trim().strip_prefix("rpc "))
            .filter_map(|l| l.split('(').next())
            .map(str::trim)
            .collect();
        let classified: std::collections::BTreeSet<&str> =
            METHODS.iter().map(|(name, _)| *name).collect();
        assert_eq!(declared, classified);
        assert_eq!(classified.len(), METHODS.len(), "a method listed twice");
    }

    #[test]
    fn viewers_read_and_only_operators_change() {
        for (method, access) in METHODS {
            let roles = roles_for(method).unwrap();
            assert!(roles.contains(&PeerRole::Operator), "{method}");
            assert_eq!(
                roles.contains(&PeerRole::Viewer),
                *access == Access::Read,
                "{method}"
            );
            assert!(
                !roles.contains(&PeerRole::Node),
                "{method}: nodes never call"
            );
            assert!(!roles.contains(&PeerRole::Coordinator), "{method}");
        }
        assert_eq!(roles_for("Unknown"), None);
    }

    #[test]
    fn only_certificates_near_expiry_are_listed_soonest_first() {
        let now = 1_800_000_000i64;
        let day = 86_400u64;
        let nodes = [
            ("n1", Some(now as u64 + 200 * day)),
            ("n2", Some(now as u64 + 12 * day + 5)),
            ("n3", Some(now as u64 - 2 * day)),
            ("n4", None),
        ];
        assert_eq!(
            expiring_certificates(&expiring_nodes(nodes.into_iter(), now)),
            "n3 EXPIRED 2 day(s) ago, n2 in 12 day(s)"
        );
        assert_eq!(
            expiring_certificates(&expiring_nodes([("n1", None)].into_iter(), now)),
            ""
        );
    }
}
