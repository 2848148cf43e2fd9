//! `triad-coordinator [--config PATH] [run|validate-config]`

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};
use triad_agent::membership::generation_now;
use triad_agent::{systemd, telemetry};
use triad_coordinator::config::{CoordinatorConfig, DEFAULT_PATH};
use triad_coordinator::grpc::CoordinatorGrpc;
use triad_coordinator::observer::Coordinator;

/// Triad coordinator: observes the cluster through gossip and serves its status; recovery,
/// balancer membership and autoscaling decisions are taken here.
#[derive(Debug, Parser)]
#[command(name = "triad-coordinator", version)]
struct Cli {
    /// Configuration file.
    #[arg(long, short, default_value = DEFAULT_PATH, env = "TRIAD_COORDINATOR_CONFIG", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the coordinator (the default).
    Run,
    /// Check the configuration file and exit: 0 when valid, 2 with one error line otherwise.
    ValidateConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match CoordinatorConfig::load(&cli.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("triad-coordinator: error: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::ValidateConfig => {
            println!(
                "{}: ok (cluster {})",
                cli.config.display(),
                config.cluster_name
            );
            ExitCode::SUCCESS
        }
        Command::Run => {
            telemetry::init("triad-coordinator");
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("triad-coordinator: error: cannot start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("triad-coordinator: error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn run(config: CoordinatorConfig) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let listener = tokio::net::TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen for gRPC on {} (grpc.listen)",
                config.grpc_listen
            )
        })?;
    let coordinator = Arc::new(
        Coordinator::start(
            &config,
            generation_now(),
            &chitchat::transport::UdpTransport,
        )
        .await?,
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CoordinatorGrpc::new(coordinator.clone()).into_server())
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stop_rx.await;
                },
            ),
    );
    tracing::info!(grpc = %config.grpc_listen, "coordinator ready");
    systemd::notify_ready();
    tokio::select! {
        _ = sigterm.recv() => {}
        _ = sigint.recv() => {}
    }
    systemd::notify_stopping();
    let _ = stop_tx.send(());
    let _ = server.await;
    match Arc::try_unwrap(coordinator) {
        Ok(coordinator) => coordinator.stop().await,
        Err(_) => tracing::warn!("coordinator still referenced at stop"),
    }
    Ok(())
}
