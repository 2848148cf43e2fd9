//! `triad-coordinator [--config PATH] [run|validate-config]`

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use triad_cluster::membership::generation_now;
use triad_coordinator::cli::{CoordinatorCli as Cli, CoordinatorCommand as Command};
use triad_coordinator::config::{CoordinatorConfig, DashboardConfig, MetricsConfig};
use triad_coordinator::grpc::CoordinatorGrpc;
use triad_coordinator::observer::Coordinator;
use triad_coordinator::recovery::{GrpcAgents, Recovery, RecoverySettings};
use triad_daemon::lifecycle::{self, Event, Signals};
use triad_daemon::systemd;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let validate_only = cli.command == Some(Command::ValidateConfig);
    lifecycle::main(
        "triad-coordinator",
        cli.config,
        validate_only,
        tokio::runtime::Builder::new_multi_thread(),
        run,
    )
}

async fn run(path: PathBuf, config: CoordinatorConfig) -> anyhow::Result<()> {
    let mut signals = Signals::install()?;
    let listener = lifecycle::bind_grpc(config.grpc_listen).await?;
    let tls = triad_daemon::tls::start(config.tls.as_ref(), "triad-coordinator")?;
    // the coordinator's own certificate also identifies it to the agents it calls
    triad_coordinator::agent_client::set_tls(config.tls.clone());
    let coordinator = Arc::new(
        Coordinator::start(
            &config,
            generation_now(),
            &chitchat::transport::UdpTransport,
        )
        .await?,
    );
    let (loops_stop_tx, loops_stop_rx) = tokio::sync::watch::channel(false);
    // maintenance mode's wanted state (issue 18), resumed from the state directory
    let maintenance = Arc::new(
        triad_coordinator::maintenance::MaintenanceStore::open(&config.state_dir)
            .map_err(|e| anyhow::anyhow!("maintenance mode: {e}"))?,
    );
    // the timeline of changes and decisions (issue 21), kept across restarts
    let events = triad_coordinator::events::EventLog::open(&config.state_dir)
        .map_err(|e| anyhow::anyhow!("events: {e}"))?;
    let mut service = CoordinatorGrpc::new(coordinator.clone())
        .with_events(events.clone())
        .with_tls(config.tls.clone())
        .with_state_dir(config.state_dir.clone())
        .with_maintenance(maintenance.clone());
    if config.galera_recovery {
        if config.galera_nodes.is_empty() {
            tracing::warn!("[galera] nodes is not set: the members a full-outage election waits for come from gossip alone, which anyone on the cluster network can forge; list the Galera nodes there");
        }
        let recovery = Recovery::new(
            RecoverySettings {
                state_dir: config.state_dir.clone(),
                grace: config.galera_grace,
                tick: std::time::Duration::from_millis(500),
                expected_nodes: config.galera_nodes.clone(),
            },
            Arc::new(GrpcAgents {
                timeout: std::time::Duration::from_secs(5),
            }),
        )?;
        service = service.with_recovery(recovery.spawn(coordinator.clone(), loops_stop_rx.clone()));
    }
    // node maintenance (issue 21): the quorum it relaxes is kept across restarts
    let relax = config.volume.as_ref().map(|_| {
        Arc::new(triad_coordinator::volume::QuorumRelax::open(
            &config.state_dir,
        ))
    });
    let mut volume_status = None;
    if let Some(spec) = config.volume.clone() {
        let mut volume = triad_coordinator::volume::run::VolumeLoop::new(
            spec,
            Arc::new(triad_coordinator::volume::run::GrpcVolumeAgents {
                connect_timeout: std::time::Duration::from_secs(5),
            }),
            std::time::Duration::from_secs(2),
        );
        if let Some(relax) = &relax {
            volume = volume.with_relax(relax.clone());
        }
        service = service.with_volume_resolver(volume.resolver());
        let status = volume.spawn(coordinator.clone(), loops_stop_rx.clone());
        volume_status = Some(status.clone());
        service = service.with_volume(status);
    }
    {
        let nodes = config
            .volume
            .as_ref()
            .map(|v| v.nodes.clone())
            .unwrap_or_else(|| config.galera_nodes.clone());
        let view_of = coordinator.clone();
        let maintenance_loop = triad_coordinator::node_maintenance::MaintenanceLoop::new(
            Arc::new(move || view_of.view()),
            nodes,
            relax,
            volume_status,
            Arc::new(triad_coordinator::node_maintenance::GrpcLeaveCalls),
            Some(events.clone()),
        );
        service = service.with_node_maintenance(maintenance_loop.spawn(loops_stop_rx.clone()));
    }
    // The application's database, account and password file (issue 17): `[app]`.
    if let Some(spec) = config.app.clone() {
        let password = triad_coordinator::app::load_or_create_password(&config.state_dir)
            .map_err(|e| anyhow::anyhow!("[app]: {e}"))?;
        let app = triad_coordinator::app::AppLoop::new(
            spec.clone(),
            password,
            Arc::new(triad_coordinator::app::GrpcAppAgents {
                connect_timeout: std::time::Duration::from_secs(5),
            }),
        );
        service = service.with_app(
            spec.clone(),
            app.spawn(coordinator.clone(), loops_stop_rx.clone()),
        );
        // Cluster jobs (issue 18): `[[app.jobs]]`, each on exactly one ready node.
        if !spec.jobs.is_empty() {
            let jobs = triad_coordinator::jobs::JobsLoop::new(
                spec.jobs.clone(),
                &config.state_dir,
                Arc::new(triad_coordinator::jobs::GrpcJobAgents {
                    timeout: std::time::Duration::from_secs(2),
                }),
            )
            .with_maintenance(maintenance.watch());
            service = service.with_jobs(jobs.spawn(coordinator.clone(), loops_stop_rx.clone()));
        }
    }
    // Balancer membership (issue 6): `[balancer] kind`, default none.
    let balancer_config = triad_coordinator::balancer::config::BalancerConfig::load(&path)?;
    let view_of = coordinator.clone();
    let balancer_loop = triad_coordinator::balancer::start(
        &balancer_config,
        Arc::new(move || view_of.view()),
        Some(coordinator.subscribe()),
        maintenance.watch(),
    )
    .context("starting the balancer membership loop")?;
    if let Some(balancer_loop) = &balancer_loop {
        service = service.with_balancer(balancer_loop.status_watch());
    }
    // Maintenance mode with Octavia: the 503 page its maintenance pool points at
    let maintenance_page = match &balancer_config.kind {
        triad_coordinator::balancer::config::BalancerKind::Octavia { settings, .. } => {
            match settings.maintenance_page {
                Some(listen) => Some(
                    triad_coordinator::maintenance::PageServer::start(listen, maintenance.watch())
                        .await
                        .map_err(anyhow::Error::msg)?,
                ),
                None => None,
            }
        }
        _ => None,
    };
    // Autoscaling (issue 8): `[autoscale]`; the flows resume from autoscale.json.
    if let Some(settings) = config.autoscale.clone() {
        // the core nodes' names are never given to an autoscaled node
        let mut reserved = config.galera_nodes.clone();
        reserved.extend(config.volume.iter().flat_map(|v| v.nodes.clone()));
        let autoscaler = triad_coordinator::autoscale::Autoscaler::new(
            settings,
            &config.state_dir,
            &reserved,
            Arc::new(triad_coordinator::autoscale::scaler::GrpcNodeCalls {
                connect_timeout: std::time::Duration::from_secs(5),
            }),
            balancer_loop.as_ref().map(|b| b.status_watch()),
        )
        .map_err(|e| anyhow::anyhow!("autoscale: {e}"))?;
        service =
            service.with_autoscale(autoscaler.spawn(coordinator.clone(), loops_stop_rx.clone()));
    }
    // backups (issue 19): on demand, and on the schedule when one is set
    if let Some(backup) = triad_coordinator::backup::config::BackupConfig::load(&path)? {
        let backups = triad_coordinator::backup::Backups::open(
            backup,
            config.cluster_name.clone(),
            coordinator.clone(),
            Some(events.clone()),
            Some(triad_coordinator::quiesce::Quiesce::new(
                maintenance.clone(),
                balancer_loop.as_ref().map(|l| l.status_watch()),
            )),
        );
        tokio::spawn(backups.clone().run_schedule(loops_stop_rx.clone()));
        service = service.with_backups(backups);
    }
    service.spawn_timeline(coordinator.clone(), loops_stop_rx.clone());
    let metrics = start_metrics(&path, service.clone()).await;
    let dashboard = start_dashboard(
        &path,
        tls.clone(),
        triad_coordinator::dashboard::Sources {
            status: {
                let service = service.clone();
                Arc::new(move || service.status_now())
            },
            view_changes: {
                let coordinator = coordinator.clone();
                Arc::new(move || coordinator.subscribe())
            },
            events: Some(events.clone()),
        },
    )
    .await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(triad_daemon::tls::serve(
        tonic::transport::Server::builder().add_service(service.into_server()),
        listener,
        tls.clone(),
        async {
            let _ = stop_rx.await;
        },
    ));
    tracing::info!(grpc = %config.grpc_listen, "coordinator ready");
    lifecycle::notify_running(&config);
    // the watchdog is fed while the runtime answers and the gossip observer runs: a
    // coordinator whose view stopped refreshing is restarted rather than left deciding on
    // stale facts
    let watchdog = systemd::Watchdog::from_env();
    let mut feed = tokio::time::interval(
        watchdog
            .timeout()
            .map_or(std::time::Duration::from_secs(5), |timeout| timeout / 4),
    );
    loop {
        tokio::select! {
            _ = feed.tick() => {
                if coordinator.observing() {
                    watchdog.ping();
                } else {
                    tracing::error!("the gossip observer stopped; no longer feeding the watchdog");
                }
            }
            event = signals.recv() => match event {
                Event::Stop => break,
                Event::Reload => {
                    triad_daemon::tls::reload(tls.as_ref());
                    lifecycle::reread_config(
                        &path,
                        &config,
                        "restart the coordinator to apply it",
                    );
                }
            },
        }
    }
    systemd::notify_stopping();
    let _ = stop_tx.send(());
    let _ = loops_stop_tx.send(true);
    let _ = server.await;
    if let Some(metrics) = metrics {
        metrics.stop().await;
    }
    if let Some(dashboard) = dashboard {
        dashboard.stop().await;
    }
    if let Some(balancer_loop) = balancer_loop {
        balancer_loop.stop().await;
    }
    if let Some(page) = maintenance_page {
        page.stop().await;
    }
    match Arc::try_unwrap(coordinator) {
        Ok(coordinator) => coordinator.stop().await,
        Err(_) => tracing::warn!("coordinator still referenced at stop"),
    }
    Ok(())
}

/// `/metrics` on `[metrics] listen` (validated with the rest of the file). Metrics never take
/// the control plane down: a port that cannot be bound is logged, naming the address, and
/// the coordinator runs on without them.
async fn start_metrics(
    path: &Path,
    service: CoordinatorGrpc,
) -> Option<triad_coordinator::metrics::MetricsServer> {
    let listen = match MetricsConfig::load(path) {
        Ok(MetricsConfig {
            listen: Some(listen),
        }) => listen,
        Ok(MetricsConfig { listen: None }) => {
            tracing::info!("metrics off ([metrics] listen = \"off\")");
            return None;
        }
        Err(error) => {
            tracing::error!(%error, "running without /metrics");
            return None;
        }
    };
    let source: triad_coordinator::metrics::SnapshotSource =
        Arc::new(move || service.metrics_snapshot());
    match triad_coordinator::metrics::start(listen, source).await {
        Ok(server) => Some(server),
        Err(error) => {
            tracing::error!(address = %listen, %error, "running without /metrics");
            None
        }
    }
}

/// The web dashboard on `[dashboard] listen` (validated with the rest of the file). Like
/// metrics, it never takes the control plane down: a port that cannot be bound is logged.
async fn start_dashboard(
    path: &Path,
    tls: Option<triad_daemon::tls::TlsReloader>,
    sources: triad_coordinator::dashboard::Sources,
) -> Option<triad_coordinator::http_server::HttpServer> {
    let listen = match DashboardConfig::load(path) {
        Ok(DashboardConfig {
            listen: Some(listen),
        }) => listen,
        Ok(DashboardConfig { listen: None }) => {
            tracing::info!("dashboard off ([dashboard] listen = \"off\")");
            return None;
        }
        Err(error) => {
            tracing::error!(%error, "running without the dashboard");
            return None;
        }
    };
    let Some(tls) = tls else {
        tracing::warn!(address = %listen, "running without the dashboard: it authenticates with the cluster's certificates and [tls] insecure = true has none (set [dashboard] listen = \"off\" to say so)");
        return None;
    };
    match triad_coordinator::dashboard::start(listen, tls, sources).await {
        Ok(server) => Some(server),
        Err(error) => {
            tracing::error!(address = %listen, %error, "running without the dashboard");
            None
        }
    }
}
