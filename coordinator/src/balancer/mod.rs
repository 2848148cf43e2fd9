//! Load balancer membership (design section 7).
//!
//! One [`Balancer`] trait with two real backends, HAProxy's runtime API ([`haproxy`]) and
//! OpenStack Octavia ([`octavia`]), a pure planner ([`plan`]) and the reconcile loop that
//! joins them to the cluster view ([`reconcile`]). Desired members = ready nodes that are
//! not draining, confirmed with the agent over gRPC before a member is added or removed;
//! never the last member removed; planned removal = drain, wait for connections to end
//! (bounded), remove.

pub mod config;
pub mod haproxy;
pub mod octavia;
pub mod plan;
pub mod reconcile;

use std::net::IpAddr;

use async_trait::async_trait;

/// The administrative state of one member as the balancer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Takes new connections.
    Active,
    /// Finishes its connections, takes no new ones (HAProxy drain, Octavia weight 0).
    Draining,
    /// Takes no traffic at all (HAProxy maint, Octavia admin_state_up=false).
    Maint,
}

/// One member (a server in an HAProxy backend, a member of an Octavia pool), named by the
/// node id it stands for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub state: MemberState,
    /// Connections in flight, when the balancer reports them (HAProxy does, Octavia not).
    pub connections: Option<u64>,
    /// The balancer's own health verdict, informational ("UP", "DOWN", "ONLINE", ...).
    pub health: Option<String>,
}

/// A change to one member; the planner's vocabulary towards the balancer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MemberChange {
    /// Add the member and let it take traffic.
    Add {
        name: String,
        address: IpAddr,
        port: u16,
    },
    /// Let an existing (draining or maint) member take traffic again.
    SetActive { name: String },
    /// Stop sending new connections; existing ones finish.
    Drain { name: String },
    /// Stop all traffic to the member at once (HAProxy maint; Octavia: out of the pool).
    /// The entry itself is deleted later by `Remove`. `shut_sessions`: also close the
    /// streams still on it (a drain that ended or timed out). Not for a member that stopped
    /// serving unplanned: HAProxy retries its pending requests on another server, where
    /// shutting them would fail them (seen: a crashed node's clients got empty replies).
    Disable { name: String, shut_sessions: bool },
    /// Delete the entry of a member that has been disabled for a while. HAProxy 2.6 can
    /// crash when a server is deleted while a stream still waits to retry on it (seen in
    /// the failover bench), so deletion waits `Spec::delete_after` in maint.
    Remove { name: String },
}

impl MemberChange {
    pub fn name(&self) -> &str {
        match self {
            MemberChange::Add { name, .. }
            | MemberChange::SetActive { name }
            | MemberChange::Drain { name }
            | MemberChange::Disable { name, .. }
            | MemberChange::Remove { name } => name,
        }
    }
}

/// Errors of a balancer backend. Each names the balancer object at fault.
#[derive(Debug, thiserror::Error)]
pub enum BalancerError {
    #[error("haproxy runtime API at {socket}: {message}")]
    HaproxySocket { socket: String, message: String },
    #[error("haproxy refused `{command}`: {answer}")]
    HaproxyRefused { command: String, answer: String },
    #[error("haproxy answer to `{command}` not understood: {message}")]
    HaproxyParse { command: String, message: String },
    /// The balancer is busy (Octavia PENDING_* or 409 immutable): try again later.
    #[error("{object} is busy ({status}); will retry")]
    Busy { object: String, status: String },
    /// The balancer is in a terminal error state an operator must fix (Octavia ERROR).
    #[error("{object} is in {status}: an operator must fix or recreate it; not retrying blindly")]
    Failed { object: String, status: String },
    #[error("{what} is not supported with the {kind} balancer yet")]
    Unsupported {
        kind: &'static str,
        what: &'static str,
    },
    #[error(transparent)]
    OpenStack(#[from] crate::openstack::OpenStackError),
}

impl BalancerError {
    /// Transient errors are retried with backoff; the others are surfaced and retried
    /// only slowly.
    pub fn is_transient(&self) -> bool {
        match self {
            BalancerError::Busy { .. } | BalancerError::HaproxySocket { .. } => true,
            BalancerError::OpenStack(error) => error.is_transient(),
            _ => false,
        }
    }
}

/// A load balancer whose membership Triad owns.
///
/// `observe` reports what is there now (servers found at start are adopted, not
/// recreated). `apply` carries out one planned step; a backend that can only replace the
/// whole member set (Octavia) turns the step into one batch call, and skips it when
/// nothing would change.
#[async_trait]
pub trait Balancer: Send + Sync {
    /// For logs and status: "haproxy", "octavia".
    fn kind(&self) -> &'static str;
    /// The port members listen on (the service port of each node).
    fn member_port(&self) -> u16;
    async fn observe(&self) -> Result<Vec<Member>, BalancerError>;
    async fn apply(&self, changes: &[MemberChange]) -> Result<(), BalancerError>;
    /// Converge maintenance mode on `wanted` (None: off); true when something changed.
    /// A balancer without it refuses only when it is wanted.
    async fn maintenance(
        &self,
        wanted: Option<&crate::maintenance::Maintenance>,
    ) -> Result<bool, BalancerError> {
        match wanted {
            None => Ok(false),
            Some(_) => Err(BalancerError::Unsupported {
                kind: self.kind(),
                what: "maintenance mode",
            }),
        }
    }
}

/// Build the configured balancer and start its loop over `view` (None when
/// `kind = "none"`). Configuration errors (clouds.yaml missing, unknown cloud) fail here;
/// an unreachable or refusing cloud does not: the loop keeps retrying and reports it.
pub fn start(
    config: &config::BalancerConfig,
    view: reconcile::ViewSource,
    events: Option<tokio::sync::broadcast::Receiver<crate::view::ClusterEvent>>,
    maintenance: tokio::sync::watch::Receiver<Option<crate::maintenance::Maintenance>>,
) -> Result<Option<reconcile::BalancerLoop>, crate::openstack::OpenStackError> {
    let balancer: std::sync::Arc<dyn Balancer> = match &config.kind {
        config::BalancerKind::None => return Ok(None),
        config::BalancerKind::Haproxy(settings) => {
            std::sync::Arc::new(haproxy::HaproxyBalancer::new(settings.clone()))
        }
        config::BalancerKind::Octavia { cloud, settings } => {
            let sources = crate::openstack::config::CloudSources::from_process();
            let cloud = crate::openstack::config::load_cloud(&sources, cloud.as_deref())?;
            tracing::info!(cloud = %cloud.name, source = %cloud.source, auth_url = %cloud.auth_url, "octavia balancer configured");
            let session =
                crate::openstack::session::Session::new(cloud, std::time::Duration::from_secs(30))?;
            std::sync::Arc::new(octavia::OctaviaBalancer::new(
                crate::openstack::octavia::Octavia::new(std::sync::Arc::new(session)),
                (**settings).clone(),
            ))
        }
    };
    Ok(Some(reconcile::BalancerLoop::start_with(
        balancer,
        view,
        events,
        std::sync::Arc::new(reconcile::GrpcConfirmer::default()),
        config.loop_settings.clone(),
        maintenance,
    )))
}
