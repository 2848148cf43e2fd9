//! `triadctl`: the operator's CLI.
//!
//! `triadctl status [--output text|json]` exits 0 when every node is live and ready, 1
//! when the cluster is degraded, 2 when the coordinator cannot be asked.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use triad_coordinator::cli::{CtlCli as Cli, CtlCommand as Command, Output};
use triad_coordinator::status::StatusReport;
use triad_proto::v1;
use triad_proto::v1::coordinator_service_client::CoordinatorServiceClient;

const EXIT_DEGRADED: u8 = 1;
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("triadctl: error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match cli.command {
        Command::Status { output } => {
            runtime.block_on(status(&cli.coordinator, cli.timeout, output))
        }
        Command::Recover { bootstrap, force } => {
            runtime.block_on(recover(&cli.coordinator, cli.timeout, bootstrap, force))
        }
        Command::Scale { to } => runtime.block_on(scale(&cli.coordinator, cli.timeout, to)),
    }
}

/// A client of the coordinator at `endpoint`; `call_timeout` bounds each call (none for
/// calls that may take long, like a recovery's bootstrap).
async fn client(
    endpoint: &str,
    connect_timeout: Duration,
    call_timeout: Option<Duration>,
) -> Result<CoordinatorServiceClient<tonic::transport::Channel>, String> {
    let mut endpoint_config = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .map_err(|error| format!("{endpoint:?} is not a valid endpoint URL: {error}"))?
        .connect_timeout(connect_timeout);
    if let Some(timeout) = call_timeout {
        endpoint_config = endpoint_config.timeout(timeout);
    }
    let channel = endpoint_config
        .connect()
        .await
        .map_err(|error| format!("cannot reach the coordinator at {endpoint}: {error}"))?;
    Ok(CoordinatorServiceClient::new(channel))
}

async fn scale(endpoint: &str, timeout: Duration, to: u32) -> ExitCode {
    let result = async {
        client(endpoint, timeout, None)
            .await?
            .scale(v1::ScaleRequest { to })
            .await
            .map(|reply| reply.into_inner())
            .map_err(|status| format!("scale refused: {}", status.message()))
    }
    .await;
    match result {
        Ok(reply) => {
            println!("{}", reply.message);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("triadctl: error: {message}");
            ExitCode::from(EXIT_DEGRADED)
        }
    }
}

async fn recover(
    endpoint: &str,
    timeout: Duration,
    bootstrap_node: Option<String>,
    force: bool,
) -> ExitCode {
    let result = async {
        client(endpoint, timeout, None)
            .await?
            .recover(v1::RecoverRequest {
                bootstrap_node,
                force,
            })
            .await
            .map(|reply| reply.into_inner())
            .map_err(|status| format!("recovery refused: {}", status.message()))
    }
    .await;
    match result {
        Ok(reply) => {
            println!("epoch {}: {}", reply.epoch, reply.message);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("triadctl: error: {message}");
            ExitCode::from(EXIT_DEGRADED)
        }
    }
}

async fn status(endpoint: &str, timeout: Duration, output: Output) -> ExitCode {
    let reply = async {
        client(endpoint, timeout, Some(timeout))
            .await?
            .cluster_status(v1::ClusterStatusRequest {})
            .await
            .map(|reply| reply.into_inner())
            .map_err(|status| {
                format!(
                    "coordinator at {endpoint} refused ClusterStatus: {}",
                    status.message()
                )
            })
    };
    let status = match tokio::time::timeout(timeout, reply).await {
        Ok(Ok(status)) => status,
        Ok(Err(message)) => {
            eprintln!("triadctl: error: {message}");
            return ExitCode::from(EXIT_ERROR);
        }
        Err(_) => {
            eprintln!(
                "triadctl: error: the coordinator at {endpoint} did not answer within {timeout:?}"
            );
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let report = StatusReport::from_proto(&status);
    match output {
        Output::Text => print!("{}", report.render_text()),
        Output::Json => match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("triadctl: error: cannot encode the status as JSON: {error}");
                return ExitCode::from(EXIT_ERROR);
            }
        },
    }
    if report.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DEGRADED)
    }
}
