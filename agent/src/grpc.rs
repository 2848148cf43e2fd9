//! The agent's gRPC server (AgentService).
//!
//! Status, drain/undrain and the event stream are served here. Galera position,
//! bootstrap, join and service actions answer UNIMPLEMENTED naming the issue that brings
//! them, so a coordinator never mistakes a missing feature for a refusal. Backup streams
//! (issue 19) are [`crate::backup`]'s.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::wrappers::WatchStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use triad_proto::convert::{host_metrics, proto_role, service_states};
use triad_proto::errors::ErrorKind::{Failed, Invalid, Refused, Unavailable};
use triad_proto::gossip::NodeKeys;
use triad_proto::v1;
use triad_proto::v1::agent_service_server::{AgentService, AgentServiceServer};

use crate::galera::driver::{GaleraDriver, GaleraError};
use crate::gluster::cli::CliError;
use crate::gluster::driver::GlusterDriver;
use crate::gluster::steps::Step;
use crate::state::AgentState;
use triad_cluster::membership::Membership;
use triad_galera::position::Position;

#[derive(Debug, Clone)]
pub struct AgentGrpc {
    state: Arc<AgentState>,
    membership: Arc<Membership>,
    galera: Option<Arc<GaleraDriver>>,
    gluster: Option<Arc<GlusterDriver>>,
    app: Option<Arc<crate::app::AppDriver>>,
    db_router: Option<Arc<crate::dbrouter::DbRouter>>,
    jobs: Option<Arc<crate::jobs::JobsDriver>>,
    /// Backup streams (issue 19).
    backups: Option<Arc<crate::backup::Backups>>,
    /// Where the drain flag is kept across restarts (`None`: memory only, in tests).
    drain_file: Option<std::path::PathBuf>,
    /// Where node maintenance is kept across restarts (`None`: memory only, in tests).
    maintenance_file: Option<std::path::PathBuf>,
    /// The server runs mutual TLS: callers are checked by their certificate's role.
    tls: bool,
}

/// Who may call an agent (design principle 2): its coordinator and operators, never
/// another node.
pub const AGENT_CALLERS: &[triad_daemon::tls::PeerRole] = &[
    triad_daemon::tls::PeerRole::Coordinator,
    triad_daemon::tls::PeerRole::Operator,
];

/// The drain flag's file in the agent's state directory.
pub const DRAIN_FILE: &str = "drained";

pub use crate::state::MAINTENANCE_FILE;

/// The reason of a drain (or a maintenance) kept in `file` by an earlier agent process,
/// if any.
pub fn kept_drain(file: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(file)
        .ok()
        .map(|reason| reason.trim().to_string())
}

/// The maintenance reason an agent publishes for itself while the system shuts down.
pub const SHUTDOWN_REASON: &str = "shutdown";

/// Who may call the job lease RPCs: the coordinator only.
pub const JOB_CALLERS: &[triad_daemon::tls::PeerRole] = &[triad_daemon::tls::PeerRole::Coordinator];

/// Who may stream a backup: the coordinator only (it stores the parts and records the
/// backup; an operator asks it).
pub const BACKUP_CALLERS: &[triad_daemon::tls::PeerRole] =
    &[triad_daemon::tls::PeerRole::Coordinator];

/// Checks every call's client certificate before it reaches the service.
#[derive(Debug, Clone, Copy)]
pub struct CallerGate {
    tls: bool,
}

impl tonic::service::Interceptor for CallerGate {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        triad_daemon::tls::authorize(&request, self.tls, AGENT_CALLERS, "triad-agent")?;
        Ok(request)
    }
}

impl AgentGrpc {
    pub fn new(state: Arc<AgentState>, membership: Arc<Membership>) -> AgentGrpc {
        AgentGrpc {
            state,
            membership,
            galera: None,
            gluster: None,
            app: None,
            db_router: None,
            jobs: None,
            backups: None,
            drain_file: None,
            maintenance_file: None,
            tls: false,
        }
    }

    /// Keep the drain flag in `file` (its reason), so a drain outlives an agent restart.
    pub fn with_drain_file(mut self, file: std::path::PathBuf) -> AgentGrpc {
        self.drain_file = Some(file);
        self
    }

    /// Keep node maintenance in `file` (its reason), so it outlives a reboot: the node
    /// comes back drained with mysqld held until `triadctl maintenance NODE off`.
    pub fn with_maintenance_file(mut self, file: std::path::PathBuf) -> AgentGrpc {
        self.maintenance_file = Some(file);
        self
    }

    /// The server runs mutual TLS: only coordinator and operator certificates may call.
    pub fn with_tls(mut self, tls: bool) -> AgentGrpc {
        self.tls = tls;
        self
    }

    /// Serve the pool/volume state and formation steps through `driver`.
    pub fn with_gluster(mut self, driver: Option<Arc<GlusterDriver>>) -> AgentGrpc {
        self.gluster = driver;
        self
    }

    fn gluster(&self) -> Result<&GlusterDriver, Status> {
        self.gluster
            .as_deref()
            .ok_or_else(|| Refused.status("gluster is not managed on this node"))
    }

    /// Serve the app's database account and password file through `driver`.
    pub fn with_app(mut self, driver: Option<Arc<crate::app::AppDriver>>) -> AgentGrpc {
        self.app = driver;
        self
    }

    /// Serve the database endpoint's routing through `router`.
    pub fn with_db_router(mut self, router: Option<Arc<crate::dbrouter::DbRouter>>) -> AgentGrpc {
        self.db_router = router;
        self
    }

    /// Serve cluster jobs' leases through `driver`.
    pub fn with_jobs(mut self, driver: Option<Arc<crate::jobs::JobsDriver>>) -> AgentGrpc {
        self.jobs = driver;
        self
    }

    /// The jobs driver, for a caller with a coordinator certificate: a lease is only ever
    /// offered, confirmed or released by the coordinator that persisted it (an operator's
    /// certificate, which the gate lets through for other calls, is refused here).
    fn jobs<T>(
        &self,
        request: &Request<T>,
        call: &str,
    ) -> Result<&crate::jobs::JobsDriver, Status> {
        triad_daemon::tls::authorize(request, self.tls, JOB_CALLERS, call)?;
        self.jobs
            .as_deref()
            .ok_or_else(|| Refused.status("cluster jobs are not run on this node"))
    }

    /// Serve backup streams through `backups`.
    pub fn with_backups(mut self, backups: Option<Arc<crate::backup::Backups>>) -> AgentGrpc {
        self.backups = backups;
        self
    }

    /// The docroot is mounted and answering (the mount module's gossip key).
    fn mounted(&self) -> bool {
        self.state.keys().mount == triad_proto::gossip::MountState::Ok
    }

    /// A restore stream's answer, logged either way.
    fn restore_reply(
        &self,
        what: &str,
        header: &crate::backup::restore::Header,
        restored: Result<String, crate::backup::restore::RestoreError>,
    ) -> Result<Response<v1::RestoreReply>, Status> {
        let node = &self.state.identity.node_id;
        let message = restored.map_err(|error| {
            tracing::warn!(node = %node, backup = %header.backup_id, "restoring {what}: {error}");
            restore_status(error)
        })?;
        tracing::warn!(node = %node, "restore: {message}");
        Ok(Response::new(v1::RestoreReply {
            bytes: header.plain_bytes,
            message,
        }))
    }

    /// Restores go where backups are served (the same settings and callers).
    fn restores(&self) -> Result<&crate::backup::Backups, Status> {
        self.backups
            .as_deref()
            .ok_or_else(|| Refused.status("restores are not served by this agent"))
    }

    fn app(&self) -> Result<&crate::app::AppDriver, Status> {
        self.app
            .as_deref()
            .ok_or_else(|| Refused.status("the app is not managed on this node"))
    }

    /// Serve Galera position, bootstrap and join through `driver`.
    pub fn with_galera(mut self, driver: Option<Arc<GaleraDriver>>) -> AgentGrpc {
        self.galera = driver;
        self
    }

    fn galera(&self) -> Result<&GaleraDriver, Status> {
        self.galera
            .as_deref()
            .ok_or_else(|| Refused.status("galera is not managed on this node"))
    }

    pub fn into_server(
        self,
    ) -> tonic::service::interceptor::InterceptedService<AgentServiceServer<AgentGrpc>, CallerGate>
    {
        let gate = CallerGate { tls: self.tls };
        AgentServiceServer::with_interceptor(self, gate)
    }

    fn node_status(&self, keys: &NodeKeys, live_peers: u32) -> v1::NodeStatus {
        let identity = &self.state.identity;
        v1::NodeStatus {
            node_id: identity.node_id.clone(),
            role: proto_role(identity.role) as i32,
            address: identity.address.to_string(),
            gossip_addr: identity.gossip_addr.to_string(),
            grpc_addr: identity.grpc_addr.to_string(),
            generation: identity.generation,
            version: identity.version.clone(),
            services: service_states(keys),
            ready: keys.ready,
            draining: keys.draining,
            metrics: Some(host_metrics(&keys.metrics)),
            live_peers,
            uptime_secs: identity.started_at.elapsed().as_secs(),
        }
    }
}

fn galera_status(error: GaleraError) -> Status {
    match error {
        GaleraError::Refused(reason) => Refused.status(reason),
        GaleraError::NotManaged => Refused.status("galera is not managed on this node"),
        GaleraError::Host(error) => Failed.status(error.to_string()),
    }
}

fn gluster_status(error: CliError) -> Status {
    match error {
        CliError::Gluster(error) => Refused.status(error.to_string()),
        CliError::Host(error) => Unavailable.status(error.to_string()),
    }
}

fn app_status(error: crate::app::AppError) -> Status {
    match error {
        crate::app::AppError::Invalid(reason) => Invalid.status(reason),
        crate::app::AppError::Refused(reason) => Refused.status(reason),
        crate::app::AppError::Host(error) => Failed.status(error.to_string()),
    }
}

fn jobs_status(error: crate::jobs::JobsError) -> Status {
    match error {
        crate::jobs::JobsError::Invalid(reason) => Invalid.status(reason),
        crate::jobs::JobsError::Refused(reason) => Refused.status(reason),
    }
}

fn backup_status(error: crate::backup::BackupError) -> Status {
    use crate::backup::BackupError as E;
    match error {
        E::Busy | E::Refused(_) => Refused.status(error.to_string()),
        E::CallerLeft => Unavailable.status(error.to_string()),
        E::Host(_) | E::Command { .. } | E::Stream { .. } | E::Position { .. } => {
            Failed.status(error.to_string())
        }
    }
}

fn restore_status(error: crate::backup::restore::RestoreError) -> Status {
    use crate::backup::restore::RestoreError as E;
    match error {
        E::Refused(_) => Refused.status(error.to_string()),
        E::Invalid(_) => Invalid.status(error.to_string()),
        E::Host(_) | E::Command { .. } => Failed.status(error.to_string()),
    }
}

/// A restore's client stream: its header first, then data only.
struct RestoreStream(tonic::Streaming<v1::RestoreChunk>);

impl RestoreStream {
    async fn header(&mut self) -> Result<crate::backup::restore::Header, Status> {
        use v1::restore_chunk::Chunk;
        match self.0.message().await? {
            Some(v1::RestoreChunk {
                chunk: Some(Chunk::Header(h)),
            }) => Ok(crate::backup::restore::Header {
                backup_id: h.backup_id,
                galera_uuid: h.galera_uuid,
                galera_seqno: h.galera_seqno,
                plain_bytes: h.plain_bytes,
                force: h.force,
            }),
            _ => Err(Invalid.status("a restore stream begins with its header")),
        }
    }
}

#[async_trait::async_trait]
impl crate::backup::restore::Chunks for RestoreStream {
    async fn next(&mut self) -> Result<Option<Vec<u8>>, String> {
        use v1::restore_chunk::Chunk;
        match self.0.message().await {
            Ok(None) => Ok(None),
            Ok(Some(v1::RestoreChunk {
                chunk: Some(Chunk::Data(data)),
            })) => Ok(Some(data)),
            Ok(Some(_)) => Err("a second header or an empty message".into()),
            Err(status) => Err(status.message().to_string()),
        }
    }
}

fn backup_chunk(piece: crate::backup::Piece) -> v1::BackupChunk {
    use v1::backup_chunk::Chunk;
    let chunk = match piece {
        crate::backup::Piece::Data(bytes) => Chunk::Data(bytes),
        crate::backup::Piece::Done(done) => {
            let galera = done.galera.unwrap_or(crate::backup::xbstream::GaleraPoint {
                uuid: String::new(),
                seqno: -1,
                gtid: None,
                domain_id: None,
            });
            Chunk::Done(v1::BackupDone {
                bytes: done.bytes,
                galera_uuid: galera.uuid,
                galera_seqno: galera.seqno,
                gtid: galera.gtid.unwrap_or_default(),
            })
        }
    };
    v1::BackupChunk { chunk: Some(chunk) }
}

fn step_from_proto(request: v1::GlusterStepRequest) -> Result<Step, Status> {
    use v1::gluster_step_request::Step as P;
    let step = match request.step {
        Some(P::Probe(host)) => Step::Probe(host),
        Some(P::Create(c)) => Step::Create {
            volume: c.volume,
            replica: c.replica,
            bricks: c.bricks,
            force: c.force,
        },
        Some(P::Set(s)) => Step::Set {
            volume: s.volume,
            key: s.key,
            value: s.value,
        },
        Some(P::Start(volume)) => Step::Start(volume),
        Some(P::Heal(volume)) => Step::Heal(volume),
        Some(P::Resolve(r)) => Step::Resolve {
            volume: r.volume,
            policy: crate::gluster::steps::Resolution::parse(&r.policy, &r.brick)
                .map_err(|e| Invalid.status(format!("resolve: {e}")))?,
            file: r.file,
        },
        None => return Err(Invalid.status("gluster step: no step given")),
    };
    step.validate().map_err(|e| Invalid.status(e))?;
    Ok(step)
}

fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::NodeEvent, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for AgentGrpc {
    async fn status(
        &self,
        _: Request<v1::AgentStatusRequest>,
    ) -> Result<Response<v1::NodeStatus>, Status> {
        let live_peers = self.membership.live_peer_count().await as u32;
        Ok(Response::new(
            self.node_status(&self.state.keys(), live_peers),
        ))
    }

    async fn galera_position(
        &self,
        request: Request<v1::GaleraPositionRequest>,
    ) -> Result<Response<v1::GaleraPosition>, Status> {
        let report = self
            .galera()?
            .position(request.get_ref().stop_if_not_primary)
            .await
            .map_err(galera_status)?;
        Ok(Response::new(v1::GaleraPosition {
            uuid: report.position.uuid,
            seqno: report.position.seqno,
            safe_to_bootstrap: report.safe_to_bootstrap,
            source: report.source.to_string(),
            saved_view: report.saved_view.unwrap_or_default(),
            generation: report.generation,
        }))
    }

    async fn bootstrap(
        &self,
        request: Request<v1::BootstrapRequest>,
    ) -> Result<Response<v1::BootstrapReply>, Status> {
        let request = request.into_inner();
        let expected = request
            .expected
            .ok_or_else(|| Invalid.status("bootstrap needs the expected position"))?;
        let expected = Position {
            uuid: expected.uuid,
            seqno: expected.seqno,
        };
        let message = self
            .galera()?
            .bootstrap(request.epoch, &expected)
            .await
            .map_err(galera_status)?;
        Ok(Response::new(v1::BootstrapReply {
            started: true,
            message,
        }))
    }

    async fn join(
        &self,
        request: Request<v1::JoinRequest>,
    ) -> Result<Response<v1::JoinReply>, Status> {
        let request = request.get_ref();
        let galera = self.galera()?;
        let message = if request.pc_recovery_view.is_empty() {
            galera.join(request.epoch).await
        } else {
            galera.reform(&request.pc_recovery_view).await
        }
        .map_err(galera_status)?;
        Ok(Response::new(v1::JoinReply {
            started: true,
            message,
        }))
    }

    async fn drain(
        &self,
        request: Request<v1::DrainRequest>,
    ) -> Result<Response<v1::DrainReply>, Status> {
        let reason = request.get_ref().reason.clone();
        tracing::info!(%reason, "draining on request");
        if let Some(file) = &self.drain_file {
            triad_daemon::fs::durable_write(file, &format!("{reason}\n")).map_err(|e| {
                Unavailable.status(format!("cannot keep the drain in {}: {e}", file.display()))
            })?;
        }
        self.state.update(|keys| keys.draining = true);
        self.membership.publish(&self.state.keys()).await;
        Ok(Response::new(v1::DrainReply { draining: true }))
    }

    async fn undrain(
        &self,
        _: Request<v1::UndrainRequest>,
    ) -> Result<Response<v1::DrainReply>, Status> {
        tracing::info!("undraining on request");
        if let Some(file) = &self.drain_file {
            triad_daemon::fs::remove_if_present(file).map_err(|e| {
                Unavailable.status(format!("cannot remove {}: {e}", file.display()))
            })?;
        }
        self.state.update(|keys| keys.draining = false);
        self.membership.publish(&self.state.keys()).await;
        Ok(Response::new(v1::DrainReply { draining: false }))
    }

    async fn maintenance(
        &self,
        request: Request<v1::AgentMaintenanceRequest>,
    ) -> Result<Response<v1::AgentMaintenanceReply>, Status> {
        let r = request.into_inner();
        if !r.on {
            if r.leave {
                return Err(Refused.status("leave is only asked with maintenance on"));
            }
            if self.state.keys().maintenance.as_deref() == Some(SHUTDOWN_REASON) {
                return Err(Refused.status("this node is shutting down"));
            }
            if let Some(file) = &self.maintenance_file {
                triad_daemon::fs::remove_if_present(file).map_err(|e| {
                    Unavailable.status(format!("cannot remove {}: {e}", file.display()))
                })?;
            }
            if let Some(galera) = &self.galera {
                galera.set_maintenance(false).await;
            }
            let drained = self.drain_file.as_deref().and_then(kept_drain).is_some();
            self.state.update(|keys| {
                keys.maintenance = None;
                keys.draining = drained;
            });
            self.membership.publish(&self.state.keys()).await;
            tracing::warn!("maintenance off on request: the node rejoins");
            return Ok(Response::new(v1::AgentMaintenanceReply {
                message: "maintenance off: mysqld rejoins and the node takes traffic once ready"
                    .into(),
            }));
        }
        if r.leave {
            // a grant of a turn to leave is for a node in maintenance: one that has
            // restarted since it asked (a reboot) has nothing to leave for
            if self.state.keys().maintenance.is_none() {
                return Err(Refused.status(
                    "this node is not in maintenance (its agent restarted since it asked): nothing leaves",
                ));
            }
            return match &self.galera {
                Some(galera) => galera
                    .maintenance_leave()
                    .await
                    .map(|message| Response::new(v1::AgentMaintenanceReply { message }))
                    .map_err(galera_status),
                None => Ok(Response::new(v1::AgentMaintenanceReply {
                    message: "no mysqld on this node: nothing leaves".into(),
                })),
            };
        }
        let reason = if r.reason.trim().is_empty() {
            "maintenance".to_string()
        } else {
            r.reason.trim().to_string()
        };
        if self.state.keys().maintenance.is_none() {
            tracing::warn!(%reason, "maintenance on request: draining, mysqld held");
            if let Some(file) = &self.maintenance_file {
                triad_daemon::fs::durable_write(file, &format!("{reason}\n")).map_err(|e| {
                    Unavailable.status(format!(
                        "cannot keep the maintenance in {}: {e}",
                        file.display()
                    ))
                })?;
            }
            if let Some(galera) = &self.galera {
                galera.set_maintenance(true).await;
            }
            self.state.update(|keys| {
                keys.maintenance = Some(reason);
                keys.draining = true;
            });
            self.membership.publish(&self.state.keys()).await;
        }
        Ok(Response::new(v1::AgentMaintenanceReply {
            message: "in maintenance: drained; mysqld leaves when the coordinator gives its turn"
                .into(),
        }))
    }

    async fn service_action(
        &self,
        request: Request<v1::ServiceActionRequest>,
    ) -> Result<Response<v1::ServiceActionReply>, Status> {
        let request = request.into_inner();
        let action = v1::ServiceAction::try_from(request.action).ok();
        match (request.service.as_str(), action) {
            ("galera", Some(v1::ServiceAction::Stop)) => {
                let message = self.galera()?.leave().await.map_err(galera_status)?;
                Ok(Response::new(v1::ServiceActionReply {
                    state: "stopped".into(),
                    message,
                }))
            }
            (service, action) => Err(Invalid.status(format!(
                "{service} {action:?}: this agent implements only galera stop (a node \
                 leaving the cluster on scale-in)"
            ))),
        }
    }

    async fn gluster_state(
        &self,
        request: Request<v1::GlusterStateRequest>,
    ) -> Result<Response<v1::GlusterStateReply>, Status> {
        let request = request.into_inner();
        let driver = self.gluster()?;
        let volume_name = if request.volume.is_empty() {
            driver.settings.volume.clone()
        } else {
            request.volume
        };
        let cli = driver.cli.as_ref();
        let peers = crate::gluster::cli::peers(cli)
            .await
            .map_err(gluster_status)?;
        let volume = crate::gluster::cli::volume(cli, &volume_name)
            .await
            .map_err(gluster_status)?;
        let volume = match volume {
            None => None,
            Some(info) => {
                let status = if info.status == "Started" {
                    crate::gluster::cli::status(cli, &volume_name)
                        .await
                        .map_err(gluster_status)?
                        .unwrap_or_default()
                } else {
                    vec![]
                };
                let heal = if request.heal_info && info.status == "Started" {
                    match crate::gluster::cli::heal_info(cli, &volume_name).await {
                        Ok(heal) => heal,
                        Err(error) => {
                            tracing::warn!("heal info for status: {error}");
                            vec![]
                        }
                    }
                } else {
                    vec![]
                };
                // the split-brain entries, asked with heal info (another gfapi client)
                // an entry in split-brain is also in heal info's count: with every brick
                // counted at zero there is none, and the second gfapi client is spared
                let healed_everywhere = crate::gluster::xml::fully_healed(&heal);
                let split = if request.heal_info && info.status == "Started" && !healed_everywhere {
                    match crate::gluster::cli::split_brain(cli, &volume_name).await {
                        Ok(split) => split,
                        Err(error) => {
                            tracing::warn!("heal info split-brain for status: {error}");
                            vec![]
                        }
                    }
                } else {
                    vec![]
                };
                let split_brain_files = crate::gluster::xml::split_brain_names(&split, 100);
                let bricks = info
                    .bricks
                    .bricks
                    .iter()
                    .map(|brick| {
                        let online = status.iter().any(|n| {
                            n.is_brick()
                                && n.status == 1
                                && format!("{}:{}", n.hostname, n.path) == brick.name
                        });
                        let healed = heal.iter().find(|h| h.name == brick.name);
                        v1::GlusterBrick {
                            name: brick.name.clone(),
                            online,
                            heal_pending: healed.and_then(|h| h.entries),
                            heal_status: healed.map(|h| h.status.clone()).unwrap_or_default(),
                            split_brain: if healed_everywhere {
                                healed.and_then(|h| h.entries)
                            } else {
                                split
                                    .iter()
                                    .find(|h| h.name == brick.name)
                                    .and_then(|h| h.entries)
                            },
                        }
                    })
                    .collect();
                Some(v1::GlusterVolume {
                    name: info.name.clone(),
                    status: info.status.clone(),
                    replica: info.replica_count,
                    bricks,
                    options: info
                        .options
                        .options
                        .iter()
                        .map(|o| (o.name.clone(), o.value.clone()))
                        .collect(),
                    split_brain_files,
                })
            }
        };
        Ok(Response::new(v1::GlusterStateReply {
            address: self.state.identity.address.to_string(),
            peers: peers
                .into_iter()
                .map(|p| v1::GlusterPeer {
                    connected: p.connected == 1,
                    hostname: p.hostname,
                    uuid: p.uuid,
                    state: p.state,
                })
                .collect(),
            volume,
        }))
    }

    async fn gluster_step(
        &self,
        request: Request<v1::GlusterStepRequest>,
    ) -> Result<Response<v1::GlusterStepReply>, Status> {
        let driver = self.gluster()?;
        let step = step_from_proto(request.into_inner())?;
        tracing::info!(node = %self.state.identity.node_id, ?step, "gluster step requested by the coordinator");
        let output = step.run(driver.cli.as_ref()).await.map_err(|error| {
            tracing::warn!(node = %self.state.identity.node_id, ?step, "gluster step failed: {error}");
            gluster_status(error)
        })?;
        Ok(Response::new(v1::GlusterStepReply { output }))
    }

    async fn app_database(
        &self,
        request: Request<v1::AppDatabaseRequest>,
    ) -> Result<Response<v1::AppDatabaseReply>, Status> {
        use crate::app::Ensured;
        let r = request.into_inner();
        let account = triad_galera::account::AppAccount {
            database: r.database,
            user: r.user,
            host: r.host,
            password_hash: r.password_hash,
        };
        let reset = r.reset_password;
        let (outcome, detail) = match self.app()?.ensure_database(&account, reset).await {
            Ok(Ensured::Created) => (v1::AppDatabaseOutcome::Created, String::new()),
            Ok(Ensured::Present) => (v1::AppDatabaseOutcome::Present, String::new()),
            Ok(Ensured::Conflict(detail)) => (v1::AppDatabaseOutcome::Conflict, detail),
            Err(error) => {
                tracing::warn!(node = %self.state.identity.node_id, "app database: {error}");
                return Err(app_status(error));
            }
        };
        Ok(Response::new(v1::AppDatabaseReply {
            outcome: outcome as i32,
            detail,
        }))
    }

    async fn app_secret(
        &self,
        request: Request<v1::AppSecretRequest>,
    ) -> Result<Response<v1::AppSecretReply>, Status> {
        let r = request.into_inner();
        let written = self
            .app()?
            .keep_secret(std::path::Path::new(&r.path), &r.password, &r.group)
            .await
            .map_err(|error| {
                tracing::warn!(node = %self.state.identity.node_id, "app password file: {error}");
                app_status(error)
            })?;
        Ok(Response::new(v1::AppSecretReply { written }))
    }

    async fn db_route(
        &self,
        request: Request<v1::DbRouteRequest>,
    ) -> Result<Response<v1::DbRouteReply>, Status> {
        let router = self
            .db_router
            .as_deref()
            .ok_or_else(|| Refused.status("the database endpoint is not managed on this node"))?;
        let mut members = Vec::new();
        for m in request.into_inner().members {
            let address = m.address.parse().map_err(|_| {
                Invalid.status(format!("db route: {:?} is not an IP address", m.address))
            })?;
            members.push(crate::dbrouter::Member {
                node: m.node,
                address,
            });
        }
        let changed = router.route(&members).await.map_err(|error| {
            tracing::warn!(node = %self.state.identity.node_id, "database endpoint: {error}");
            Failed.status(error.to_string())
        })?;
        Ok(Response::new(v1::DbRouteReply { changed }))
    }

    async fn job_offer(
        &self,
        request: Request<v1::JobOfferRequest>,
    ) -> Result<Response<v1::JobOfferReply>, Status> {
        let jobs = self.jobs(&request, "JobOffer")?;
        let ack = jobs
            .offer(request.into_inner())
            .await
            .map_err(jobs_status)?;
        Ok(Response::new(v1::JobOfferReply {
            epoch: ack.epoch.0,
            serial: ack.serial,
        }))
    }

    async fn job_confirm(
        &self,
        request: Request<v1::JobConfirmRequest>,
    ) -> Result<Response<v1::JobConfirmReply>, Status> {
        let jobs = self.jobs(&request, "JobConfirm")?;
        let r = request.get_ref();
        let confirm = triad_jobs::lease::Confirm {
            epoch: triad_jobs::lease::Epoch(r.epoch),
            serial: r.serial,
        };
        let confirmed = jobs.confirm(&r.name, confirm).await;
        Ok(Response::new(v1::JobConfirmReply { confirmed }))
    }

    async fn job_release(
        &self,
        request: Request<v1::JobReleaseRequest>,
    ) -> Result<Response<v1::JobReleaseReply>, Status> {
        let jobs = self.jobs(&request, "JobRelease")?;
        let r = request.get_ref();
        let released = jobs
            .release(&r.name, triad_jobs::lease::Epoch(r.epoch))
            .await
            .map_err(jobs_status)?;
        Ok(Response::new(v1::JobReleaseReply { released }))
    }

    type EventsStream = EventStream;
    type RunOnceStream = Pin<Box<dyn Stream<Item = Result<v1::RunOnceEvent, Status>> + Send>>;
    type BackupStreamStream = Pin<Box<dyn Stream<Item = Result<v1::BackupChunk, Status>> + Send>>;

    async fn backup_stream(
        &self,
        request: Request<v1::BackupStreamRequest>,
    ) -> Result<Response<Self::BackupStreamStream>, Status> {
        triad_daemon::tls::authorize(&request, self.tls, BACKUP_CALLERS, "BackupStream")?;
        let backups = self
            .backups
            .as_deref()
            .ok_or_else(|| Refused.status("backups are not served by this agent"))?;
        let kind = match v1::BackupKind::try_from(request.get_ref().kind) {
            Ok(v1::BackupKind::Database) => crate::backup::Kind::Database,
            Ok(v1::BackupKind::Files) => crate::backup::Kind::Files,
            _ => {
                return Err(Invalid.status(format!(
                    "backup stream: kind {} is neither DATABASE nor FILES",
                    request.get_ref().kind
                )))
            }
        };
        let facts = crate::backup::Facts::of(self.state.identity.role, &self.state.keys());
        let pieces = backups.start(kind, &facts).await.map_err(|error| {
            tracing::warn!(node = %self.state.identity.node_id, kind = kind.as_str(), "backup stream not started: {error}");
            backup_status(error)
        })?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(pieces)
            .map(|item| item.map(backup_chunk).map_err(backup_status));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn restore_prepare(
        &self,
        request: Request<v1::RestorePrepareRequest>,
    ) -> Result<Response<v1::RestorePrepareReply>, Status> {
        triad_daemon::tls::authorize(&request, self.tls, BACKUP_CALLERS, "RestorePrepare")?;
        let r = request.into_inner();
        crate::backup::restore::check_id(&r.backup_id).map_err(restore_status)?;
        let settings = self.restores()?.settings();
        if r.check_only {
            let survey =
                crate::backup::restore::survey(&settings.socket, &settings.docroot, self.mounted())
                    .await;
            return Ok(Response::new(v1::RestorePrepareReply {
                tables: survey.tables.map_or(-1, |t| t as i64),
                table_names: survey.table_names,
                files: survey.files.map_or(-1, |f| f as i64),
                message: String::new(),
            }));
        }
        let message = self
            .galera()?
            .hold_for_restore(&r.backup_id, r.fresh)
            .await
            .map_err(|error| {
                tracing::warn!(node = %self.state.identity.node_id, "restore prepare: {error}");
                galera_status(error)
            })?;
        tracing::warn!(node = %self.state.identity.node_id, backup = %r.backup_id, "restore: {message}");
        // the survey is the check's: nothing is read of a node being stopped
        Ok(Response::new(v1::RestorePrepareReply {
            tables: -1,
            table_names: vec![],
            files: -1,
            message,
        }))
    }

    async fn restore_database(
        &self,
        request: Request<tonic::Streaming<v1::RestoreChunk>>,
    ) -> Result<Response<v1::RestoreReply>, Status> {
        triad_daemon::tls::authorize(&request, self.tls, BACKUP_CALLERS, "RestoreDatabase")?;
        self.restores()?;
        let mut stream = RestoreStream(request.into_inner());
        let header = stream.header().await?;
        let restored = crate::backup::restore::database(self.galera()?, &header, &mut stream).await;
        self.restore_reply("the database", &header, restored)
    }

    async fn restore_files(
        &self,
        request: Request<tonic::Streaming<v1::RestoreChunk>>,
    ) -> Result<Response<v1::RestoreReply>, Status> {
        triad_daemon::tls::authorize(&request, self.tls, BACKUP_CALLERS, "RestoreFiles")?;
        let docroot = self.restores()?.settings().docroot.clone();
        let mut stream = RestoreStream(request.into_inner());
        let header = stream.header().await?;
        let restored =
            crate::backup::restore::files(&docroot, self.mounted(), &header, &mut stream).await;
        self.restore_reply("the files", &header, restored)
    }

    async fn run_once(
        &self,
        request: Request<v1::RunOnceRequest>,
    ) -> Result<Response<Self::RunOnceStream>, Status> {
        // the coordinator's (it records every run); an operator goes through it
        triad_daemon::tls::authorize(&request, self.tls, JOB_CALLERS, "RunOnce")?;
        let run =
            crate::jobs::once::validate(request.into_inner(), crate::jobs::runner::resolve_on_host)
                .map_err(|why| Invalid.status(why))?;
        let events = crate::jobs::once::start(&self.state.identity.node_id, run)
            .map_err(|why| Unavailable.status(why))?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(events).map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn events(
        &self,
        _: Request<v1::AgentEventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let this = self.clone();
        let stream = WatchStream::new(self.state.subscribe()).map(move |keys| {
            Ok(v1::NodeEvent {
                at_unix_ms: unix_ms_now(),
                status: Some(this.node_status(&keys, 0)),
                reason: if keys.ready { "ready" } else { "not ready" }.to_string(),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_are_the_coordinators_and_refusals_are_failed_preconditions() {
        use crate::backup::BackupError;
        assert_eq!(BACKUP_CALLERS, [triad_daemon::tls::PeerRole::Coordinator]);
        assert_eq!(
            backup_status(BackupError::Busy).code(),
            tonic::Code::FailedPrecondition
        );
        assert_eq!(
            backup_status(BackupError::Busy).message(),
            "a backup is already streaming from this node"
        );
        assert_eq!(
            backup_status(BackupError::Refused("galera donor".into())).code(),
            tonic::Code::FailedPrecondition
        );
        let failed = backup_status(BackupError::Command {
            command: "tar --create".into(),
            exit: crate::backup::Exit::Code(2),
            stderr: "tar: Exiting with failure status".into(),
        });
        assert_eq!(failed.code(), tonic::Code::Internal);
        assert_eq!(
            failed.message(),
            "tar --create failed (exit status 2): tar: Exiting with failure status"
        );
        let files = backup_chunk(crate::backup::Piece::Done(crate::backup::Done {
            bytes: 10,
            galera: None,
        }));
        assert_eq!(
            files.chunk,
            Some(v1::backup_chunk::Chunk::Done(v1::BackupDone {
                bytes: 10,
                galera_uuid: String::new(),
                galera_seqno: -1,
                gtid: String::new(),
            }))
        );
    }

    #[test]
    fn job_lease_calls_are_the_coordinators_and_errors_keep_their_kind() {
        assert_eq!(JOB_CALLERS, [triad_daemon::tls::PeerRole::Coordinator]);
        let invalid = jobs_status(crate::jobs::JobsError::Invalid("job name \"X\"".into()));
        assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
        let refused = jobs_status(crate::jobs::JobsError::Refused("stale".into()));
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    }
}
