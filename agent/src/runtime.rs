//! The agent's main loop.
//!
//! Inputs: the validated config, a gossip transport, a metrics source. Every
//! `heartbeat_interval` it bumps its heartbeat, samples host metrics, recomputes readiness
//! and publishes the node's keys; it pings the systemd watchdog from the same loop, so a
//! stuck loop gets the agent restarted. Errors of one collector are logged and skipped.
//! Service modules (Galera, Gluster, mount, Apache) plug in here as later issues land;
//! until then their keys stay `unknown`.

use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::Transport;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use triad_proto::gossip::NodeKeys;

use crate::apache::driver::ApacheDriver;
use crate::config::AgentConfig;
use crate::galera::driver::GaleraDriver;
use crate::galera::host::GaleraHost;
use crate::gluster::cli::GlusterCli;
use crate::gluster::driver::GlusterDriver;
use crate::metrics::MetricsSource;
use crate::mount::host::{MountDriver, MountHost, VolumeSource};
use crate::readiness::{is_ready, not_ready_reason};
use crate::service::ServiceManager;
use crate::state::{AgentState, NodeIdentity};
use triad_cluster::membership::{Membership, MembershipConfig, MembershipError};

/// The side-effect backends of the service modules. A module whose backend is `None`
/// (or that the config does not manage) publishes `not-managed`.
#[derive(Default, Clone)]
pub struct Hosts {
    pub galera: Option<Arc<dyn GaleraHost>>,
    pub services: Option<Arc<dyn ServiceManager>>,
    pub gluster: Option<Arc<dyn GlusterCli>>,
    pub mounts: Option<Arc<dyn MountHost>>,
    /// The app's database account and password file (issue 17).
    pub app: Option<Arc<dyn crate::app::AppHost>>,
    /// Cluster jobs' runs as transient systemd units (issue 18).
    pub jobs: Option<Arc<dyn crate::jobs::runner::JobRunner>>,
}

impl Hosts {
    /// Production: systemctl, the gluster CLI, /proc mounts and systemd mount units.
    pub fn production(config: &AgentConfig) -> Hosts {
        Hosts {
            galera: Some(Arc::new(crate::galera::host::SystemdGaleraHost::new(
                config.galera.clone(),
            ))),
            services: Some(Arc::new(crate::service::Systemctl)),
            gluster: Some(Arc::new(crate::gluster::cli::GlusterBinary {
                timeout: config.gluster.cli_timeout,
            })),
            mounts: Some(Arc::new(crate::mount::host::SystemdMounts::new())),
            app: Some(Arc::new(crate::app::LocalAppHost {
                socket: config.galera.socket.clone(),
            })),
            jobs: Some(Arc::new(crate::jobs::runner::SystemdJobs)),
        }
    }
}

/// A running agent: gossip plus the main loop. The gRPC server is started beside it by
/// the binary (tests of gossip alone do not need it).
pub struct AgentRuntime {
    state: Arc<AgentState>,
    membership: Arc<Membership>,
    galera: Option<(Arc<GaleraDriver>, JoinHandle<()>)>,
    gluster: Option<Arc<GlusterDriver>>,
    app: Option<Arc<crate::app::AppDriver>>,
    db_router: Option<Arc<crate::dbrouter::DbRouter>>,
    jobs: Option<Arc<crate::jobs::JobsDriver>>,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    main_loop: JoinHandle<()>,
}

impl std::fmt::Debug for AgentRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRuntime")
            .field("node", &self.state.identity.node_id)
            .finish()
    }
}

impl AgentRuntime {
    /// Join gossip and start the main loop.
    pub async fn start(
        config: &AgentConfig,
        generation: u64,
        transport: &dyn Transport,
        metrics: Box<dyn MetricsSource>,
    ) -> Result<AgentRuntime, MembershipError> {
        AgentRuntime::start_with(config, generation, transport, metrics, Hosts::default()).await
    }

    /// Like [`AgentRuntime::start`], and also runs the service modules the config manages
    /// on the given backends.
    pub async fn start_with(
        config: &AgentConfig,
        generation: u64,
        transport: &dyn Transport,
        metrics: Box<dyn MetricsSource>,
        hosts: Hosts,
    ) -> Result<AgentRuntime, MembershipError> {
        let Hosts {
            galera: galera_host,
            services,
            gluster: gluster_cli,
            mounts,
            app: app_host,
            jobs: job_runner,
        } = hosts;
        let identity = NodeIdentity {
            node_id: config.node_id.clone(),
            role: config.role,
            address: config.address,
            gossip_addr: config.gossip.advertise,
            grpc_addr: config.grpc_listen,
            generation,
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: Instant::now(),
        };
        let mut initial = NodeKeys::initial(config.role, config.grpc_listen, &identity.version);
        initial.ready_reason = not_ready_reason(&initial, &config.readiness);
        initial.ready = is_ready(&initial, &config.readiness);
        let membership = Membership::join(
            MembershipConfig {
                node_id: config.node_id.clone(),
                generation,
                cluster_id: config.cluster_name.clone(),
                seeds: config.seeds.clone(),
                settings: config.gossip.clone(),
            },
            &initial,
            transport,
        )
        .await?;
        let state = Arc::new(AgentState::new(identity, config.readiness.clone(), initial));
        let membership = Arc::new(membership);
        let (stop, stop_rx) = watch::channel(false);
        let galera = match galera_host {
            Some(host) if config.galera.managed => {
                let driver = Arc::new(GaleraDriver::new(
                    config.galera.clone(),
                    config.node_id.clone(),
                    config.address,
                    &config.seeds,
                    config.state_dir.clone(),
                    host,
                    state.clone(),
                    membership.clone(),
                ));
                let task = tokio::spawn(
                    driver
                        .clone()
                        .run(config.heartbeat_interval, stop_rx.clone()),
                );
                Some((driver, task))
            }
            _ => {
                state.update(|keys| {
                    keys.galera.state = triad_proto::gossip::GaleraState::NotManaged
                });
                None
            }
        };
        let mut tasks = Vec::new();
        let gluster = match (&gluster_cli, &services) {
            (Some(cli), Some(services)) if config.gluster.managed => {
                let driver = Arc::new(GlusterDriver::new(
                    config.gluster.clone(),
                    config.node_id.clone(),
                    config.address,
                    cli.clone(),
                    services.clone(),
                    state.clone(),
                    Some(membership.clone()),
                ));
                tasks.push(tokio::spawn(
                    driver
                        .clone()
                        .run(config.heartbeat_interval, stop_rx.clone()),
                ));
                Some(driver)
            }
            _ => {
                state.update(|keys| {
                    keys.gluster_daemon = triad_proto::gossip::Health::NotManaged;
                    keys.gluster_brick = triad_proto::gossip::BrickState::NotManaged;
                });
                None
            }
        };
        if config.gluster.managed || config.mount.managed {
            // after a cut or a reboot, Gluster's connections to the returned peer wait on
            // TCP's backoff (minutes); this hands them an error so they reconnect now
            let stalled = Arc::new(crate::gluster::stalled::StalledConnections::new(
                config.node_id.clone(),
                membership.clone(),
            ));
            tasks.push(tokio::spawn(
                stalled.run(config.heartbeat_interval, stop_rx.clone()),
            ));
        }
        match mounts {
            Some(host) if config.mount.managed => {
                let source = match &gluster {
                    Some(driver) => VolumeSource::Local(driver.subscribe()),
                    None => VolumeSource::Remote,
                };
                let driver = Arc::new(MountDriver::new(
                    config.mount.clone(),
                    config.gluster.volume.clone(),
                    config.node_id.clone(),
                    config.address,
                    source,
                    host,
                    state.clone(),
                    membership.clone(),
                ));
                tasks.push(tokio::spawn(
                    driver.run(config.heartbeat_interval, stop_rx.clone()),
                ));
            }
            _ => state.update(|keys| keys.mount = triad_proto::gossip::MountState::NotManaged),
        }
        let services_for_router = services.clone();
        match services {
            Some(services) if config.apache.managed => {
                let driver = Arc::new(ApacheDriver {
                    docroot: config.mount.docroot.clone(),
                    docroot_is_mount: config.mount.managed,
                    paths: Default::default(),
                    settings: config.apache.clone(),
                    address: config.address,
                    node_id: config.node_id.clone(),
                    services,
                    state: state.clone(),
                    client_requests: Default::default(),
                    sessions_seen: Default::default(),
                });
                tasks.push(tokio::spawn(
                    driver.run(config.heartbeat_interval, stop_rx.clone()),
                ));
            }
            _ => state.update(|keys| keys.apache = triad_proto::gossip::Health::NotManaged),
        }
        let app = app_host.map(|host| {
            let driver = Arc::new(crate::app::AppDriver::new(host, state.clone()));
            tasks.push(tokio::spawn(
                driver
                    .clone()
                    .run(config.heartbeat_interval, stop_rx.clone()),
            ));
            driver
        });
        // the database endpoint needs systemd (its own unit) and an app host (a real node)
        let db_router = match (&services_for_router, &app) {
            (Some(services), Some(_)) => {
                let router = Arc::new(crate::dbrouter::DbRouter::new(
                    crate::dbrouter::DbRouterSettings::default(),
                    config.address,
                    services.clone(),
                    state.clone(),
                ));
                router.resume().await;
                tasks.push(tokio::spawn(router.clone().serve_checks(stop_rx.clone())));
                Some(router)
            }
            _ => None,
        };
        // inert until the coordinator offers a job; adopts runs an earlier process left
        let jobs = job_runner.map(|runner| {
            let driver = Arc::new(crate::jobs::JobsDriver::new(runner, state.clone()));
            tasks.push(tokio::spawn(driver.clone().run(stop_rx.clone())));
            driver
        });
        let main_loop = tokio::spawn(main_loop(
            state.clone(),
            membership.clone(),
            metrics,
            config.heartbeat_interval,
            stop_rx,
        ));
        tracing::info!(
            node = %config.node_id,
            generation,
            gossip = %config.gossip.listen,
            seeds = ?config.seeds,
            "agent joined gossip"
        );
        Ok(AgentRuntime {
            state,
            membership,
            galera,
            gluster,
            app,
            db_router,
            jobs,
            tasks,
            stop,
            main_loop,
        })
    }

    pub fn state(&self) -> Arc<AgentState> {
        self.state.clone()
    }

    pub fn membership(&self) -> Arc<Membership> {
        self.membership.clone()
    }

    pub fn galera(&self) -> Option<Arc<GaleraDriver>> {
        self.galera.as_ref().map(|(driver, _)| driver.clone())
    }

    pub fn gluster(&self) -> Option<Arc<GlusterDriver>> {
        self.gluster.clone()
    }

    pub fn app(&self) -> Option<Arc<crate::app::AppDriver>> {
        self.app.clone()
    }

    pub fn db_router(&self) -> Option<Arc<crate::dbrouter::DbRouter>> {
        self.db_router.clone()
    }

    pub fn jobs(&self) -> Option<Arc<crate::jobs::JobsDriver>> {
        self.jobs.clone()
    }

    /// Stop the main loop and leave gossip. Managed services are not touched (design
    /// principle 5: on SIGTERM the agent stops only its own loops).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.main_loop.await {
            tracing::warn!(%error, "agent main loop ended abnormally");
        }
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some((driver, task)) = self.galera {
            drop(driver);
            let _ = task.await;
        }
        match Arc::try_unwrap(self.membership) {
            Ok(membership) => membership.shutdown().await,
            Err(_) => tracing::warn!("gossip still referenced at stop; dropping it"),
        }
    }
}

async fn main_loop(
    state: Arc<AgentState>,
    membership: Arc<Membership>,
    mut metrics: Box<dyn MetricsSource>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let watchdog = triad_daemon::systemd::Watchdog::from_env();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        let sample = metrics.sample();
        state.update(|keys| {
            keys.heartbeat = Some(keys.heartbeat.unwrap_or(0).wrapping_add(1));
            keys.metrics.cpu_percent = sample.cpu_percent;
            keys.metrics.mem_used_bytes = sample.mem_used_bytes;
            keys.metrics.mem_total_bytes = sample.mem_total_bytes;
        });
        membership.publish(&state.keys()).await;
        watchdog.ping();
    }
}
