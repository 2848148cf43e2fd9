//! `triad-agent [--config PATH] [run|validate-config]`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};
use triad_agent::config::{AgentConfig, DEFAULT_PATH};
use triad_agent::grpc::AgentGrpc;
use triad_agent::membership::generation_now;
use triad_agent::metrics::SysinfoMetrics;
use triad_agent::runtime::AgentRuntime;
use triad_agent::{systemd, telemetry};

/// Triad node agent: keeps this node's Galera, Gluster, docroot mount and Apache healthy,
/// gossips the node's health and answers the coordinator over gRPC.
#[derive(Debug, Parser)]
#[command(name = "triad-agent", version)]
struct Cli {
    /// Configuration file.
    #[arg(long, short, default_value = DEFAULT_PATH, env = "TRIAD_AGENT_CONFIG", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent (the default).
    Run,
    /// Check the configuration file and exit: 0 when valid, 2 with one error line otherwise.
    ValidateConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match AgentConfig::load(&cli.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("triad-agent: error: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::ValidateConfig => {
            println!(
                "{}: ok (node {}, cluster {})",
                cli.config.display(),
                config.node_id,
                config.cluster_name
            );
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
            match runtime.block_on(run(cli.config, config)) {
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
    let agent = AgentRuntime::start(
        &config,
        generation_now(),
        &chitchat::transport::UdpTransport,
        Box::new(SysinfoMetrics::new()),
    )
    .await?;
    let service = AgentGrpc::new(agent.state(), agent.membership()).into_server();
    let (grpc_stop_tx, grpc_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
                async {
                    let _ = grpc_stop_rx.await;
                },
            ),
    );
    tracing::info!(grpc = %config.grpc_listen, "agent ready");
    systemd::notify_ready();

    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => match AgentConfig::load(&path) {
                Ok(new_config) if new_config == config => tracing::info!("SIGHUP: configuration unchanged"),
                Ok(_) => tracing::warn!(path = %path.display(), "SIGHUP: configuration changed; restart the agent to apply it"),
                Err(error) => tracing::error!(%error, "SIGHUP: configuration invalid; keeping the running one"),
            },
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
