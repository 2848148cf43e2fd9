//! The node shuts down (issue 21): systemd stops the agent before mariadb and glusterd (the
//! unit orders itself after them), so the agent can make the node's departure a planned
//! one. Two nodes powered off at the same moment otherwise leave Galera at once, the
//! leaves collide ("Cluster configuration change in progress") and the last node goes
//! non-Primary; measured on the lab (session 25).
//!
//! The agent publishes maintenance `shutdown` (drained, mysqld held) and waits, a bounded
//! time, for the coordinator's grant of its turn (the `Maintenance` RPC with `leave`),
//! which stops mysqld by signal. With no coordinator live in gossip, or no grant in time,
//! it stops mysqld itself at once, as before. This is the one exception to "on SIGTERM the agent stops only its
//! own loops" (design principle 5): a restart of the agent alone leaves everything running.

use std::sync::Arc;
use std::time::Duration;

use crate::galera::driver::GaleraDriver;
use crate::grpc::SHUTDOWN_REASON;
use crate::state::AgentState;
use triad_cluster::membership::Membership;
use triad_proto::gossip::Role;

/// How long the agent waits for its turn to leave. Each leave before it is a clean mysqld
/// shutdown (seconds); the unit's TimeoutStopSec leaves room for this and the stop itself
/// (`LEAVE_STOP_GRACE`).
pub const TURN_WAIT: Duration = Duration::from_secs(60);

/// Whether systemd is stopping the whole system (poweroff, reboot), not just this unit.
pub async fn system_stopping() -> bool {
    let output = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::process::Command::new("systemctl")
            .arg("is-system-running")
            .kill_on_drop(true)
            .output(),
    )
    .await;
    match output {
        // the exit code is non-zero for every state but "running"
        Ok(Ok(output)) => String::from_utf8_lossy(&output.stdout).trim() == "stopping",
        _ => false,
    }
}

/// Leave Galera as a planned departure: publish maintenance, wait up to `wait` for the
/// coordinator's grant to have stopped mysqld, else stop it here. Answers what happened.
pub async fn leave(
    galera: &GaleraDriver,
    state: &AgentState,
    membership: &Membership,
    wait: Duration,
) -> String {
    if !galera.mysqld_running().await {
        return "mysqld is not running: nothing leaves".into();
    }
    galera.shutting_down().await;
    state.update(|keys| {
        if keys.maintenance.is_none() {
            keys.maintenance = Some(SHUTDOWN_REASON.into());
        }
        keys.draining = true;
    });
    membership.publish(&state.keys()).await;
    tracing::warn!(
        "the system shuts down: waiting up to {wait:?} for the coordinator to give this node its turn to leave Galera"
    );
    let started = tokio::time::Instant::now();
    let why = loop {
        if !galera.mysqld_running().await {
            return format!(
                "mysqld left on the coordinator's grant, {:.1}s after the shutdown began",
                started.elapsed().as_secs_f64()
            );
        }
        if !coordinator_live(membership).await {
            break "no coordinator is live in gossip to give a turn".to_string();
        }
        if started.elapsed() >= wait {
            break format!("no turn came within {wait:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    tracing::warn!("{why}: stopping mysqld now");
    match galera.maintenance_leave().await {
        Ok(message) => format!("{why}; {message}"),
        Err(error) => format!("{why}; stopping mysqld failed: {error}"),
    }
}

/// Whether a coordinator is live in gossip (the only one who grants turns).
async fn coordinator_live(membership: &Membership) -> bool {
    membership
        .members()
        .await
        .iter()
        .any(|m| !m.is_self && m.live && m.keys.role == Role::Coordinator)
}

/// [`leave`] when the system is stopping and this node runs a managed mysqld; nothing
/// otherwise.
pub async fn on_sigterm(
    galera: Option<Arc<GaleraDriver>>,
    state: &AgentState,
    membership: &Membership,
) {
    let Some(galera) = galera else { return };
    if !system_stopping().await {
        return;
    }
    let outcome = leave(&galera, state, membership, TURN_WAIT).await;
    tracing::warn!("shutdown: {outcome}");
}
