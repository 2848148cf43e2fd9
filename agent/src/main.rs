//! `triad-agent [--config PATH] [run|validate-config]`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use triad_agent::cli::{Cli, Command};
use triad_agent::config::AgentConfig;
use triad_agent::grpc::AgentGrpc;
use triad_agent::metrics::SysinfoMetrics;
use triad_agent::runtime::{AgentRuntime, Hosts};
use triad_cluster::membership::generation_now;
use triad_daemon::lifecycle::{self, Event, Signals};
use triad_daemon::systemd;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let validate_only = cli.command == Some(Command::ValidateConfig);
    lifecycle::main(
        "triad-agent",
        cli.config,
        validate_only,
        // One thread for every task, plus tokio's pool for blocking calls: the agent's work
        // waits on processes, sockets and timers, and a worker per core would be resident
        // cost on every node for nothing.
        tokio::runtime::Builder::new_current_thread(),
        run,
    )
}

/// `pow` for the whole binary, so that glibc's libm is not loaded. Its only caller is
/// tokio's multi-threaded scheduler (its task-poll statistics), linked in because chitchat
/// and zbus enable that scheduler although the agent runs the current-thread one; mapping
/// libm.so.6 for that one function cost about 0.5 MiB of resident memory on every node.
/// A definition in the executable is linked before shared libraries are searched, so
/// libm.so.6 is not needed at all (`readelf -d`). The arithmetic is the `libm` crate's
/// (the Rust project's port of musl's libm).
#[allow(unsafe_code)] // an exported C symbol: it must keep C's `double pow(double, double)`
#[no_mangle]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

async fn run(path: PathBuf, config: AgentConfig) -> anyhow::Result<()> {
    let mut signals = Signals::install()?;
    let grpc_listener = lifecycle::bind_grpc(config.grpc_listen).await?;
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
    // a drain asked of an earlier agent process still holds (`triadctl undrain` lifts it)
    let drain_file = config.state_dir.join(triad_agent::grpc::DRAIN_FILE);
    if let Some(reason) = triad_agent::grpc::kept_drain(&drain_file) {
        tracing::warn!(%reason, file = %drain_file.display(), "this node stays drained");
        agent.state().update(|keys| keys.draining = true);
    }
    let maintenance_file = config.state_dir.join(triad_agent::grpc::MAINTENANCE_FILE);
    if let Some(reason) = triad_agent::grpc::kept_drain(&maintenance_file) {
        // the Galera driver read the same file before its first pass (mysqld held)
        tracing::warn!(%reason, file = %maintenance_file.display(), "this node stays in maintenance: drained, mysqld held (`triadctl maintenance NODE off` ends it)");
        agent.state().update(|keys| {
            keys.maintenance = Some(reason);
            keys.draining = true;
        });
    }
    let service = AgentGrpc::new(agent.state(), agent.membership())
        .with_drain_file(drain_file)
        .with_maintenance_file(maintenance_file)
        .with_galera(agent.galera())
        .with_gluster(agent.gluster())
        .with_app(agent.app())
        .with_db_router(agent.db_router())
        .with_jobs(agent.jobs())
        .with_backups(Some(std::sync::Arc::new(
            triad_agent::backup::Backups::production(&config),
        )))
        .with_tls(tls.is_some())
        .into_server();
    let (grpc_stop_tx, grpc_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let grpc = tokio::spawn(triad_daemon::tls::serve(
        // HTTP/2 pings: a coordinator that vanished mid-stream (a backup) is noticed in
        // seconds, so the node's command stops and its desync is lifted
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(5)))
            .http2_keepalive_timeout(Some(std::time::Duration::from_secs(5)))
            .add_service(service),
        grpc_listener,
        tls.clone(),
        async {
            let _ = grpc_stop_rx.await;
        },
    ));
    tracing::info!(grpc = %config.grpc_listen, "agent ready");
    lifecycle::notify_running(&config);

    while signals.recv().await == Event::Reload {
        publish_expiry(triad_daemon::tls::reload(tls.as_ref()));
        lifecycle::reread_config(
            &path,
            &config,
            "restart the agent to apply it (managed services keep running)",
        );
    }
    systemd::notify_stopping();
    // a poweroff or reboot: mysqld leaves Galera when the coordinator gives this node its
    // turn (the unit stops before mariadb's); a restart of the agent alone keeps it running
    triad_agent::shutdown::on_sigterm(agent.galera(), &agent.state(), &agent.membership()).await;
    tracing::info!("stopping (managed services keep running)");
    let _ = grpc_stop_tx.send(());
    match grpc.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "gRPC server ended with an error"),
        Err(error) => tracing::warn!(%error, "gRPC server task failed"),
    }
    agent.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Known values: in this binary `f64::powf` resolves to the shim itself, so it cannot
    /// be the reference.
    #[test]
    fn the_pow_shim_computes_pow() {
        assert_eq!(super::pow(2.0, 10.0), 1024.0);
        assert_eq!(super::pow(10.0, -2.0), 0.01);
        assert!((super::pow(0.9, 3.0) - 0.729).abs() < 1e-15);
        assert!((super::pow(2.0, 0.5) - std::f64::consts::SQRT_2).abs() < 1e-15);
        assert_eq!(super::pow(0.0, 0.0), 1.0);
        assert!(super::pow(-1.0, 0.5).is_nan());
    }
}
