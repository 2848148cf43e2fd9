//! The Apache loop: keep apache2.service running, probe health, read the counters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use triad_daemon::config::StatusCodes;
use triad_proto::gossip::Health;

use super::probe::get;
use super::status::{parse_server_status, ClientRequests};
use crate::galera::UnitState;
use crate::service::ServiceManager;
use crate::state::AgentState;

/// `[apache]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ApacheSettings {
    pub managed: bool,
    pub unit: String,
    pub port: u16,
    /// The page the probe requests through the node's address: the one the balancer's
    /// health check requests (HAProxy's `option httpchk`, the Octavia monitor's `url_path`).
    pub health_path: String,
    /// The statuses that count as healthy (the balancer's `http-check expect status` or
    /// `expected_codes`, same syntax).
    pub health_codes: StatusCodes,
    pub status_path: String,
    /// Bound on one probe GET. The health file lives on the volume, whose operations wait
    /// up to its `network.ping-timeout` (5 s) when a replica vanishes without a reset; the
    /// bound is longer, so the survivors of a partition are not called down.
    pub probe_timeout: Duration,
    /// Write ports.conf and the triad site (Listen on the node address, the docroot).
    pub configure: bool,
}

impl Default for ApacheSettings {
    fn default() -> Self {
        ApacheSettings {
            managed: true,
            unit: "apache2.service".into(),
            port: 80,
            health_path: "/health.html".into(),
            health_codes: StatusCodes::default(),
            status_path: "/server-status?auto".into(),
            probe_timeout: Duration::from_secs(8),
            configure: true,
        }
    }
}

/// What one pass decided: pure, so the rules are testable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApacheAction {
    ResetFailed,
    Start,
}

/// `docroot_live`: the docroot is served from the live volume (or the docroot is not a
/// mount the agent manages). Apache is not started on a docroot without it: it would serve
/// the bare directory beneath.
pub fn plan(unit: UnitState, docroot_live: bool) -> Vec<ApacheAction> {
    match unit {
        UnitState::Failed if docroot_live => vec![ApacheAction::ResetFailed, ApacheAction::Start],
        UnitState::Inactive if docroot_live => vec![ApacheAction::Start],
        _ => vec![],
    }
}

/// The probe's verdict: up when Apache answered the health page with one of `codes`;
/// any other status, no answer or a timeout is down.
pub fn verdict(status: Option<u16>, codes: &StatusCodes) -> Health {
    match status {
        Some(status) if codes.contains(status) => Health::Ok,
        _ => Health::Down,
    }
}

pub struct ApacheDriver {
    pub settings: ApacheSettings,
    /// The docroot the site serves (the mount's).
    pub docroot: std::path::PathBuf,
    /// The docroot is the volume mount the agent manages: Apache starts only on it.
    pub docroot_is_mount: bool,
    pub paths: super::config::ApachePaths,
    pub address: std::net::IpAddr,
    pub node_id: String,
    pub services: Arc<dyn ServiceManager>,
    pub state: Arc<AgentState>,
    /// `Total Accesses` without the agent's own probes.
    pub client_requests: std::sync::Mutex<ClientRequests>,
    /// When the sessions' directory was last seen in place (looked at again after a
    /// minute: a look at the volume may hang for its ping-timeout).
    pub sessions_seen: std::sync::Mutex<Option<std::time::Instant>>,
}

/// Creates [`super::config::SESSIONS_DIR`] (mode 1733) on the mounted volume itself: the
/// docroot is opened once, checked to be a FUSE file system, and every step runs relative to
/// that handle, so a mount that goes away meanwhile cannot send the writes into the
/// directory beneath it. (A CI run: after a cut, n2's mount was remounted while this ran on
/// the strength of a mount state one tick old; `.triad` landed in the bare directory, and
/// the mount then refused to cover a directory holding files, for good.)
pub fn ensure_sessions_dir(docroot: &std::path::Path) -> Result<(), String> {
    use nix::errno::Errno;
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::{fchmodat, mkdirat, FchmodatFlags, Mode};
    let dir = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let root = crate::mount::host::open_fuse_dir(docroot)?;
    let (parent, leaf) = super::config::SESSIONS_DIR
        .split_once('/')
        .expect("SESSIONS_DIR is PARENT/LEAF");
    match mkdirat(&root, parent, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(format!("mkdir {parent}: {e}")),
    }
    let parent_fd = openat(&root, parent, dir, Mode::empty()).map_err(|e| e.to_string())?;
    match mkdirat(&parent_fd, leaf, Mode::from_bits_truncate(0o1733)) {
        // mkdir's mode passes through the umask: set it exactly
        Ok(()) => fchmodat(
            &parent_fd,
            leaf,
            Mode::from_bits_truncate(0o1733),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| format!("chmod {leaf}: {e}")),
        Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(format!("mkdir {leaf}: {e}")),
    }
}

impl ApacheDriver {
    /// Render and apply the config; reload Apache when it changed. A failed configtest
    /// leaves the previous files and is retried on later ticks.
    async fn configure(&self) {
        let ports = super::config::render_ports(self.address, self.settings.port);
        let site = super::config::render_site(
            self.address,
            self.settings.port,
            &self.node_id,
            &self.docroot,
        );
        match super::config::apply(&self.paths, &ports, &site).await {
            Ok(super::config::Applied::Reload) => {
                tracing::info!(node = %self.node_id, "apache site written; reloading {}", self.settings.unit);
                if let Err(error) = self.services.reload_or_restart(&self.settings.unit).await {
                    tracing::warn!(node = %self.node_id, "apache reload failed: {error}");
                }
            }
            Ok(super::config::Applied::Restart) => {
                tracing::info!(node = %self.node_id, "apache listeners written; restarting {}", self.settings.unit);
                if let Err(error) = self.services.restart(&self.settings.unit).await {
                    tracing::warn!(node = %self.node_id, "apache restart failed: {error}");
                }
            }
            Ok(super::config::Applied::Unchanged) => {}
            Err(error) => {
                tracing::error!(node = %self.node_id, "apache config rejected, previous files kept: {error}")
            }
        }
        if let Err(error) = self.mount_gate().await {
            tracing::warn!(node = %self.node_id, "apache's mount gate: {error}");
        }
    }

    /// Write the drop-in that gates Apache's start on the docroot mount when the docroot
    /// is the managed mount, remove it when not ([`super::config::render_mount_gate`]).
    async fn mount_gate(&self) -> Result<(), crate::exec::HostError> {
        let path = super::config::mount_gate_path(&self.paths, &self.settings.unit);
        let timeout = Duration::from_secs(30);
        if self.docroot_is_mount {
            let text = super::config::render_mount_gate(&self.docroot);
            if crate::service::write_unit_file(&path, &text, timeout).await? {
                tracing::info!(node = %self.node_id, "{} starts only on the mounted docroot: {}", self.settings.unit, path.display());
            }
        } else if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            tokio::fs::remove_file(&path).await.map_err(|e| {
                crate::exec::HostError::new(format!("removing {}", path.display()), e.to_string())
            })?;
            crate::exec::run("systemctl", &["daemon-reload"], timeout).await?;
        }
        Ok(())
    }

    /// The sessions' directory on the volume, 1733 root:root like Debian's
    /// /var/lib/php/sessions (the web server writes its files, nobody lists them). Only
    /// while the mount is live: never into the directory under a missing mount.
    async fn sessions_dir(&self) {
        if self.state.keys().mount != triad_proto::gossip::MountState::Ok {
            return;
        }
        let seen = *self.sessions_seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
            return;
        }
        let dir = self.docroot.join(super::config::SESSIONS_DIR);
        let docroot = self.docroot.clone();
        let result = tokio::time::timeout(
            self.settings.probe_timeout,
            tokio::task::spawn_blocking(move || ensure_sessions_dir(&docroot)),
        )
        .await
        .map(|joined| joined.unwrap_or_else(|e| Err(e.to_string())));
        match result {
            Ok(Ok(())) => {
                *self.sessions_seen.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(std::time::Instant::now())
            }
            Ok(Err(error)) => {
                tracing::warn!(node = %self.node_id, "PHP sessions' directory {}: {error}", dir.display())
            }
            Err(_) => {
                tracing::warn!(node = %self.node_id, "PHP sessions' directory {}: the mount did not answer", dir.display())
            }
        }
    }

    pub async fn tick(&self) {
        if self.settings.configure {
            self.configure().await;
            self.sessions_dir().await;
        }
        let docroot_live = !self.docroot_is_mount
            || self.state.keys().mount == triad_proto::gossip::MountState::Ok;
        let unit = self.services.state(&self.settings.unit).await;
        if docroot_live
            && unit == UnitState::Activating
            && self.services.waiting_to_restart(&self.settings.unit).await
        {
            // `start` would wait out RestartSec; `restart` does not
            tracing::info!(node = %self.node_id, "{} waits to auto-restart: restarting it now", self.settings.unit);
            if let Err(error) = self.services.restart(&self.settings.unit).await {
                tracing::warn!(node = %self.node_id, "apache restart failed: {error}");
            }
        }
        for action in plan(unit, docroot_live) {
            tracing::info!(node = %self.node_id, ?action, ?unit, "apache action");
            let result = match action {
                ApacheAction::ResetFailed => self.services.reset_failed(&self.settings.unit).await,
                ApacheAction::Start => self.services.start(&self.settings.unit).await,
            };
            if let Err(error) = result {
                tracing::warn!(node = %self.node_id, %error, "apache action failed; retrying on a later tick: {error}");
            }
        }
        let addr = SocketAddr::new(self.address, self.settings.port);
        let host = self.address.to_string();

        let answer = get(
            addr,
            &host,
            &self.settings.health_path,
            self.settings.probe_timeout,
        )
        .await;
        let health = verdict(
            answer.as_ref().ok().map(|a| a.status),
            &self.settings.health_codes,
        );
        // an answered request is one Apache counts (a refused connection is not)
        let mut answered = u64::from(answer.is_ok());
        let counters = match get(
            addr,
            &host,
            &self.settings.status_path,
            self.settings.probe_timeout,
        )
        .await
        {
            Ok(answer) if answer.status == 200 => parse_server_status(&answer.body).ok(),
            _ => None,
        };
        answered += u64::from(counters.is_some());
        self.state.update(|keys| {
            keys.apache = health;
            keys.metrics.req_total = counters.as_ref().map(|c| {
                let mut clients = self
                    .client_requests
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                clients.probing(answered);
                clients.reading(c.total_accesses)
            });
            keys.metrics.busy_workers = counters.as_ref().map(|c| c.busy_workers);
        });
    }

    pub async fn run(
        self: Arc<Self>,
        interval: Duration,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        crate::state::every(interval, stop, || self.tick()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sessions_directory_is_never_made_outside_the_mounted_volume() {
        let bare = tempfile::tempdir().unwrap();
        let error = ensure_sessions_dir(bare.path()).unwrap_err();
        assert!(error.contains("not the mounted volume"), "{error}");
        assert_eq!(
            std::fs::read_dir(bare.path()).unwrap().count(),
            0,
            "nothing written into a directory that is not the volume"
        );
        assert!(ensure_sessions_dir(&bare.path().join("missing")).is_err());
    }

    #[test]
    fn stopped_or_failed_apache_is_started_and_running_one_left_alone() {
        assert_eq!(plan(UnitState::Inactive, true), vec![ApacheAction::Start]);
        assert_eq!(
            plan(UnitState::Failed, true),
            vec![ApacheAction::ResetFailed, ApacheAction::Start]
        );
        assert!(plan(UnitState::Active, true).is_empty());
        assert!(plan(UnitState::Activating, true).is_empty());
    }

    /// At boot, or after a stale mount's lazy unmount, the docroot is the bare directory:
    /// Apache is not started on it (a running one is left to the balancer's checks).
    #[test]
    fn apache_waits_for_a_live_docroot_mount() {
        assert!(plan(UnitState::Inactive, false).is_empty());
        assert!(plan(UnitState::Failed, false).is_empty());
        assert!(plan(UnitState::Active, false).is_empty());
    }

    #[test]
    fn apache_is_up_only_on_the_configured_health_codes() {
        let default = ApacheSettings::default().health_codes;
        assert_eq!(verdict(Some(200), &default), Health::Ok);
        assert_eq!(verdict(Some(302), &default), Health::Down);
        assert_eq!(verdict(None, &default), Health::Down);
        let owncloud_login = StatusCodes::parse("200,302").unwrap();
        assert_eq!(verdict(Some(302), &owncloud_login), Health::Ok);
        assert_eq!(verdict(Some(503), &owncloud_login), Health::Down);
    }
}
