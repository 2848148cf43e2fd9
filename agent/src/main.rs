//! `triad-agent [--config PATH] [run|validate-config]`

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};
use triad_agent::cli::{self, Cli, Command};
use triad_agent::config::AgentConfig;
use triad_agent::grpc::AgentGrpc;
use triad_agent::metrics::SysinfoMetrics;
use triad_agent::runtime::{AgentRuntime, Hosts};
use triad_cluster::membership::generation_now;
use triad_daemon::unconfigured::{self, ConfigState};
use triad_daemon::{systemd, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match unconfigured::load_config(&cli.config, AgentConfig::parse) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("triad-agent: error: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::ValidateConfig => {
            match config {
                ConfigState::Configured(config) => println!(
                    "{}: ok (node {}, cluster {})",
                    cli.config.display(),
                    config.node_id,
                    config.cluster_name
                ),
                ConfigState::Unconfigured => {
                    println!(
                        "{}",
                        unconfigured::unconfigured_message(&cli.config, "triad-agent")
                    )
                }
            }
            ExitCode::SUCCESS
        }
        Command::Run => {
            telemetry::init("triad-agent");
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("triad-agent: error: cannot start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(wait_then_run(cli.config, config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error:#}");
                    eprintln!("triad-agent: error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Runs the agent; with the shipped (all-commented) configuration it first waits, idle, for
/// the operator to fill it in (see `triad_agent::cli`).
async fn wait_then_run(path: PathBuf, config: ConfigState<AgentConfig>) -> anyhow::Result<()> {
    let config = match config {
        ConfigState::Configured(config) => config,
        ConfigState::Unconfigured => {
            match unconfigured::wait_until_configured(
                &path,
                "triad-agent",
                |path: &Path, text: &str| AgentConfig::parse(path, text),
            )
            .await
            .context("installing signal handlers")?
            {
                Some(config) => config,
                None => return Ok(()),
            }
        }
    };
    run(path, config).await
}

async fn run(path: PathBuf, config: AgentConfig) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;

    let grpc_listener = tokio::net::TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen for gRPC on {} (grpc.listen)",
                config.grpc_listen
            )
        })?;
    let agent = AgentRuntime::start_with(
        &config,
        generation_now(),
        &chitchat::transport::UdpTransport,
        Box::new(SysinfoMetrics::new()),
        Hosts::production(&config),
    )
    .await?;
    let tls = triad_daemon::tls::start(config.tls.as_ref(), "triad-agent")?;
    // the certificate's expiry goes into gossip: the coordinator's status warns before it bites
    let publish_expiry = |identity: Option<triad_daemon::tls::PeerIdentity>| {
        if let Some(identity) = identity {
            agent
                .state()
                .update(|keys| keys.tls_not_after = u64::try_from(identity.not_after).ok());
        }
    };
    publish_expiry(tls.as_ref().and_then(|t| t.files().own_identity().ok()));
    let service = AgentGrpc::new(agent.state(), agent.membership())
        .with_galera(agent.galera())
        .with_gluster(agent.gluster())
        .with_tls(tls.is_some())
        .into_server();
    let (grpc_stop_tx, grpc_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let grpc = tokio::spawn(triad_daemon::tls::serve(
        tonic::transport::Server::builder().add_service(service),
        grpc_listener,
        tls.clone(),
        async {
            let _ = grpc_stop_rx.await;
        },
    ));
    tracing::info!(grpc = %config.grpc_listen, "agent ready");
    systemd::notify_ready();
    unconfigured::notify_status(&format!(
        "running: node {}, cluster {}",
        config.node_id, config.cluster_name
    ));

    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                publish_expiry(triad_daemon::tls::reload(tls.as_ref()));
                match unconfigured::load_config(&path, AgentConfig::parse) {
                Ok(ConfigState::Configured(new_config)) if new_config == config => tracing::info!("SIGHUP: configuration unchanged"),
                Ok(ConfigState::Configured(new_config)) => tracing::warn!(
                    path = %path.display(),
                    changed = cli::changed_settings(&config, &new_config).join(", "),
                    "SIGHUP: configuration changed; restart the agent to apply it (managed services keep running)"
                ),
                Ok(ConfigState::Unconfigured) => tracing::warn!(path = %path.display(), "SIGHUP: configuration is now all comments; keeping the running one"),
                Err(error) => tracing::error!(%error, "SIGHUP: configuration invalid; keeping the running one"),
            }},
        }
    }
    tracing::info!("stopping (managed services keep running)");
    systemd::notify_stopping();
    let _ = grpc_stop_tx.send(());
    match grpc.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "gRPC server ended with an error"),
        Err(error) => tracing::warn!(%error, "gRPC server task failed"),
    }
    agent.stop().await;
    Ok(())
}
