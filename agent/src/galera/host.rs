//! Side effects of the Galera module behind one narrow trait, [`GaleraHost`]: systemd
//! (through `systemctl`, the same path operators use, in production and in the lab's
//! systemd containers alike), wsrep status over one persistent unix-socket connection as
//! the monitoring account ([`StatusConnection`]), the few privileged statements through the
//! `mariadb` client as root, `grastate.dat`, `mariadbd --wsrep-recover`, and the config fragment.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use super::status_conn::{LookError, StatusConnection, STATUS_QUERY, VARIABLES_QUERY};
use super::{GaleraSettings, UnitState, WsrepStatus};
pub use crate::exec::{run, write_if_changed, HostError};
use crate::service::{ServiceManager, Systemctl};
use triad_galera::position::{
    parse_grastate, parse_recovered, with_safe_to_bootstrap, GraState, Position,
};

#[async_trait::async_trait]
pub trait GaleraHost: Send + Sync {
    async fn unit_state(&self) -> UnitState;
    /// wsrep status over SQL; `Err` when mysqld does not answer.
    async fn status(&self) -> Result<WsrepStatus, HostError>;
    /// `Ok(None)` when there is no grastate.dat (a datadir that never ran Galera).
    async fn grastate(&self) -> Result<Option<GraState>, HostError>;
    /// The last Primary view saved in `gvwstate.dat`, in gossip form; `None` when there is
    /// none or it does not parse (logged at debug: Galera rewrites it at view changes).
    async fn saved_view(&self) -> Option<String> {
        None
    }
    async fn sst_in_progress(&self) -> bool;
    /// The donor side of a state-transfer script runs on this node.
    async fn donating(&self) -> bool;
    /// Stop the donor's state-transfer processes (never mysqld); how many were signalled.
    async fn abort_donation(&self) -> Result<u32, HostError>;
    /// Run `mariadbd --wsrep-recover` with the node's own configuration (mysqld stopped).
    async fn wsrep_recover(&self) -> Result<Position, HostError>;
    async fn set_safe_to_bootstrap(&self) -> Result<(), HostError>;
    /// Start without waiting for the join to finish (it may take an SST).
    async fn start(&self) -> Result<(), HostError>;
    /// `galera_new_cluster`: start mariadb.service with --wsrep-new-cluster, waiting for it.
    async fn bootstrap(&self) -> Result<(), HostError>;
    /// Stop mysqld; when it has not stopped within `grace`, SIGKILL it (what a crash would
    /// do: InnoDB recovers, `--wsrep-recover` reads the position).
    async fn stop(&self, grace: Duration) -> Result<(), HostError>;
    /// [`GaleraHost::stop`] while the system shuts down: signal mysqld directly (SIGTERM,
    /// a clean shutdown and Galera leave) instead of a stop job, which would wait behind
    /// the agent's own (the agent stops before mariadb.service) until both time out.
    async fn terminate(&self, grace: Duration) -> Result<(), HostError> {
        self.stop(grace).await
    }
    async fn reset_failed(&self) -> Result<(), HostError>;
    /// Keep systemd from starting mysqld at boot: the agent decides when it starts; and
    /// install the start-position hook (see [`START_HOOK`]).
    async fn disable_autostart(&self) -> Result<(), HostError>;
    /// Hand the next start of mysqld the position the agent recovered (`None`: let
    /// Debian's `galera_recovery` recover it, as without Triad).
    async fn prepare_start(&self, position: Option<&Position>) -> Result<(), HostError>;
    /// Write the config fragment when its content differs; true when written.
    async fn write_config(&self, text: &str) -> Result<bool, HostError>;
    /// The journal of the unit's last run when that run has ended (the unit failed, or
    /// waits out `Restart=`): (its InvocationID, the log). `None` while it runs.
    async fn ended_run_log(&self) -> Result<Option<(String, String)>, HostError>;
    /// Restore (issue 19), mysqld stopped: rename the datadir to
    /// `<datadir>.before-restore-<id>` (a free name: `.2`, `.3`... when taken) and make an
    /// empty one owned by mysql, or with `fresh` a new system datadir (mariadb-install-db).
    /// Answers the kept one's path.
    async fn set_aside_datadir(&self, id: &str, fresh: bool) -> Result<String, HostError> {
        let _ = (id, fresh);
        Err(HostError::new("restore", "not supported by this host"))
    }
    /// Keep mysqld's copy of the node certificate equal to the agent's (`[galera] tls`).
    /// Hosts without TLS files (and the simulations) have nothing to install.
    async fn install_tls(&self) -> Result<super::tls::TlsInstall, HostError> {
        Ok(super::tls::TlsInstall::Unchanged)
    }
    /// Make a running Galera re-read its certificate and key (`socket.ssl_reload`).
    async fn reload_tls(&self) -> Result<(), HostError> {
        Ok(())
    }
}

/// Production: systemctl, the mariadb client, files under the datadir.
#[derive(Debug, Clone)]
pub struct SystemdGaleraHost {
    settings: GaleraSettings,
    /// Warned once that status is read as root (no monitoring OS user).
    warned_root: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The monitor's persistent connection, made once its OS user is found.
    status_conn: std::sync::Arc<std::sync::OnceLock<StatusConnection>>,
}

/// Both status statements in one `mariadb -e` (the root path, before the monitoring
/// account exists).
fn status_query() -> String {
    format!("{VARIABLES_QUERY}; {STATUS_QUERY}")
}

impl SystemdGaleraHost {
    pub fn new(settings: GaleraSettings) -> SystemdGaleraHost {
        SystemdGaleraHost {
            settings,
            warned_root: Default::default(),
            status_conn: Default::default(),
        }
    }

    /// The `mariadb` client over the unix socket as MariaDB's root (unix_socket, the agent
    /// runs as root): statements that need privileges, rare by design; status goes through
    /// [`StatusConnection`].
    async fn root_sql(&self, query: &str) -> Result<String, HostError> {
        let socket = format!("--socket={}", self.settings.socket.display());
        run(
            "mariadb",
            &[
                "--no-defaults",
                &socket,
                "--user=root",
                "--connect-timeout=2",
                "-N",
                "-B",
                "-e",
                query,
            ],
            SQL_TIMEOUT,
        )
        .await
    }

    /// The monitor's connection, made on the first look that finds its OS user.
    fn status_conn(&self) -> Option<&StatusConnection> {
        if self.status_conn.get().is_none() {
            let ids = self.monitor_ids()?;
            self.status_conn.get_or_init(|| {
                StatusConnection::new(
                    self.settings.socket.clone(),
                    &self.settings.monitor_user,
                    ids,
                    SQL_TIMEOUT,
                )
            });
        }
        self.status_conn.get()
    }

    /// Status is read as root for `why`: said once.
    fn warn_root_once(&self, why: impl std::fmt::Display) {
        if !self
            .warned_root
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!("{why}: reading wsrep status as root");
        }
    }

    fn monitor_ids(&self) -> Option<(u32, u32)> {
        crate::exec::user_ids(&self.settings.monitor_user)
            .ok()
            .flatten()
    }

    fn grastate_path(&self) -> PathBuf {
        self.settings.datadir.join("grastate.dat")
    }
}

/// Parse `mariadb -N -B` output of `SHOW GLOBAL STATUS/VARIABLES` (name TAB value lines).
pub fn parse_status(text: &str) -> WsrepStatus {
    status_from_pairs(text.lines().filter_map(|line| line.split_once('\t')))
}

/// The status from `(Variable_name, Value)` rows, whichever way they were read.
pub fn status_from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> WsrepStatus {
    let mut status = WsrepStatus::default();
    for (name, value) in pairs {
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "wsrep_on" => status.wsrep_on = value.eq_ignore_ascii_case("on"),
            "wsrep_local_state_comment" => status.local_state_comment = value.to_string(),
            "wsrep_cluster_status" => status.cluster_status = value.to_string(),
            "wsrep_cluster_size" => status.cluster_size = value.parse().unwrap_or(0),
            "wsrep_last_committed" => status.last_committed = value.parse().unwrap_or(-1),
            "wsrep_cluster_state_uuid" => status.cluster_state_uuid = value.to_ascii_lowercase(),
            "wsrep_ready" => status.ready = value.eq_ignore_ascii_case("on"),
            "wsrep_flow_control_paused_ns" => status.flow_control_paused_ns = value.parse().ok(),
            "wsrep_local_recv_queue" => status.recv_queue = value.parse().ok(),
            "wsrep_local_cert_failures" => status.cert_failures = value.parse().ok(),
            _ => {}
        }
    }
    status
}

const SQL_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the agent leaves the recovered position for the next start of mysqld.
pub const START_POSITION_FILE: &str = "/run/triad/galera-start-position";

/// A runtime drop-in for mariadb.service: Debian's ExecStart, except that a position the
/// agent left in [`START_POSITION_FILE`] (written less than 2 minutes ago; consumed by
/// the first start) is passed as `--wsrep_start_position` instead of running
/// `galera_recovery`, which would run `mariadbd --wsrep-recover` again (~0.7 s on the lab,
/// on the critical path of every recovery: the bootstrap and each join). Without the file
/// the start is Debian's own. The agent recovered that position itself with the node's
/// own config while mysqld was stopped (the election needs it), so it is the same value.
/// `$` forms here are the shell's (systemd substitutes only `${X}` and `$X` as a word).
pub const START_HOOK: &str = "# Written by triad-agent at every start (runtime: gone at reboot until the agent runs).\n\
[Service]\n\
ExecStart=\n\
ExecStart=/bin/sh -c \"set -f; F=/run/triad/galera-start-position; \
P=$(find $F -mmin -2 -exec cat {} + 2>/dev/null); rm -f $F; \
if [ x$P != x ]; then VAR=--wsrep_start_position=$P; \
else [ ! -e /usr/bin/galera_recovery ] && VAR= || VAR=`/usr/bin/galera_recovery`; [ $? -eq 0 ] || exit 1; fi; \
exec /usr/sbin/mariadbd $MYSQLD_OPTS $_WSREP_NEW_CLUSTER $VAR\"\n";
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(30);

#[async_trait::async_trait]
impl GaleraHost for SystemdGaleraHost {
    async fn unit_state(&self) -> UnitState {
        Systemctl.state(&self.settings.unit).await
    }

    async fn status(&self) -> Result<WsrepStatus, HostError> {
        let monitor = &self.settings.monitor_user;
        let mut can_create = false;
        match self.status_conn() {
            Some(conn) => match conn.look().await {
                Ok(pairs) => {
                    return Ok(status_from_pairs(
                        pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                    ))
                }
                // the account does not exist yet (a new cluster): root, and create it
                Err(LookError::AccessDenied(..)) => can_create = true,
                Err(error @ LookError::Unavailable(..)) => self.warn_root_once(error),
                Err(LookError::Failed(detail)) => {
                    return Err(HostError::new("wsrep status", detail))
                }
            },
            None => self.warn_root_once(format!(
                "no OS user {monitor} (the agent package creates it)"
            )),
        }
        let status = parse_status(&self.root_sql(&status_query()).await?);
        // the account replicates: create it once, on a node of the Primary component
        if can_create
            && status.local_state_comment == "Synced"
            && status.cluster_status == "Primary"
        {
            let create = format!(
                "CREATE USER IF NOT EXISTS '{monitor}'@'localhost' IDENTIFIED VIA unix_socket"
            );
            match self.root_sql(&create).await {
                Ok(_) => tracing::info!("created the MariaDB monitoring account '{monitor}'@'localhost' (unix_socket, no privileges)"),
                Err(error) => tracing::warn!("creating the monitoring account: {error}"),
            }
        }
        Ok(status)
    }

    async fn saved_view(&self) -> Option<String> {
        let path = self.settings.datadir.join("gvwstate.dat");
        let text = tokio::fs::read_to_string(&path).await.ok()?;
        match triad_galera::view::parse_gvwstate(&text) {
            Ok(view) => Some(view.to_gossip()),
            Err(error) => {
                tracing::debug!(path = %path.display(), %error, "saved view unreadable: {error}");
                None
            }
        }
    }

    async fn grastate(&self) -> Result<Option<GraState>, HostError> {
        let path = self.grastate_path();
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => parse_grastate(&text)
                .map(Some)
                .map_err(|e| HostError::new(path.display().to_string(), e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(HostError::new(path.display().to_string(), e.to_string())),
        }
    }

    async fn sst_in_progress(&self) -> bool {
        tokio::fs::metadata(self.settings.datadir.join("sst_in_progress"))
            .await
            .is_ok()
    }

    async fn donating(&self) -> bool {
        tokio::task::spawn_blocking(|| {
            !super::sst::donor_tree(&super::sst::processes(std::path::Path::new("/proc")))
                .is_empty()
        })
        .await
        .unwrap_or(false)
    }

    async fn abort_donation(&self) -> Result<u32, HostError> {
        Ok(super::sst::stop_donor(std::path::Path::new("/proc")).await)
    }

    async fn wsrep_recover(&self) -> Result<Position, HostError> {
        // the same options as Debian's galera_recovery: the node's own config, output on stdout
        let output = crate::exec::command("mariadbd")
            .args(["--user=mysql", "--wsrep-recover", "--disable-log-error"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(120), output)
            .await
            .map_err(|_| HostError::new("mariadbd --wsrep-recover", "did not finish within 120s"))?
            .map_err(|e| HostError::new("mariadbd --wsrep-recover", e.to_string()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        parse_recovered(&text).map_err(|e| {
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            HostError::new(
                "mariadbd --wsrep-recover",
                format!("{e} (last lines: {tail:?})"),
            )
        })
    }

    async fn set_safe_to_bootstrap(&self) -> Result<(), HostError> {
        let path = self.grastate_path();
        let what = path.display().to_string();
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| HostError::new(&what, e.to_string()))?;
        // mysqld (user mysql) rewrites this file: the replacement keeps owner and mode
        let metadata =
            std::fs::metadata(&path).map_err(|e| HostError::new(&what, e.to_string()))?;
        let tmp = path.with_extension("triad-tmp");
        let replace = || -> std::io::Result<()> {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            std::fs::write(&tmp, with_safe_to_bootstrap(&text, true))?;
            std::os::unix::fs::chown(&tmp, Some(metadata.uid()), Some(metadata.gid()))?;
            std::fs::set_permissions(
                &tmp,
                std::fs::Permissions::from_mode(metadata.mode() & 0o7777),
            )?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        replace().map_err(|e| HostError::new(&what, e.to_string()))
    }

    async fn start(&self) -> Result<(), HostError> {
        Systemctl.start(&self.settings.unit).await
    }

    async fn bootstrap(&self) -> Result<(), HostError> {
        // what galera_new_cluster does, with a bound and the environment always cleared
        run(
            "systemctl",
            &["set-environment", "_WSREP_NEW_CLUSTER=--wsrep-new-cluster"],
            SYSTEMCTL_TIMEOUT,
        )
        .await?;
        let started = run(
            "systemctl",
            &["start", &self.settings.unit],
            Duration::from_secs(120),
        )
        .await;
        let cleared = run(
            "systemctl",
            &["set-environment", "_WSREP_NEW_CLUSTER="],
            SYSTEMCTL_TIMEOUT,
        )
        .await;
        started?;
        cleared.map(|_| ())
    }

    async fn stop(&self, grace: Duration) -> Result<(), HostError> {
        let how = crate::service::stop_or_kill(&self.settings.unit, grace).await?;
        if how == crate::service::Stopped::Killed {
            tracing::warn!(
                unit = %self.settings.unit,
                "mysqld ignored its stop for {grace:?} and was killed"
            );
        }
        Ok(())
    }

    async fn terminate(&self, grace: Duration) -> Result<(), HostError> {
        let how = crate::service::terminate_or_kill(&self.settings.unit, grace).await?;
        if how == crate::service::Stopped::Killed {
            tracing::warn!(
                unit = %self.settings.unit,
                "mysqld ignored SIGTERM for {grace:?} and was killed"
            );
        }
        Ok(())
    }

    async fn reset_failed(&self) -> Result<(), HostError> {
        Systemctl.reset_failed(&self.settings.unit).await
    }

    async fn disable_autostart(&self) -> Result<(), HostError> {
        run(
            "systemctl",
            &["disable", "--quiet", &self.settings.unit],
            SYSTEMCTL_TIMEOUT,
        )
        .await?;
        let dropin = std::path::PathBuf::from(format!(
            "/run/systemd/system/{}.d/60-triad-start-position.conf",
            self.settings.unit
        ));
        crate::service::write_unit_file(&dropin, START_HOOK, SYSTEMCTL_TIMEOUT).await?;
        Ok(())
    }

    async fn prepare_start(&self, position: Option<&Position>) -> Result<(), HostError> {
        let path = std::path::Path::new(START_POSITION_FILE);
        let what = format!("writing {}", path.display());
        match position.filter(|p| p.seqno >= 0 && triad_galera::position::is_uuid(&p.uuid)) {
            Some(position) => {
                if let Some(dir) = path.parent() {
                    tokio::fs::create_dir_all(dir)
                        .await
                        .map_err(|e| HostError::new(&what, e.to_string()))?;
                }
                tokio::fs::write(path, format!("{position}\n"))
                    .await
                    .map_err(|e| HostError::new(&what, e.to_string()))
            }
            None => match tokio::fs::remove_file(path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(HostError::new(
                    format!("removing {}", path.display()),
                    e.to_string(),
                )),
                _ => Ok(()),
            },
        }
    }

    async fn write_config(&self, text: &str) -> Result<bool, HostError> {
        write_if_changed(&self.settings.config_path, text).await
    }

    async fn install_tls(&self) -> Result<super::tls::TlsInstall, HostError> {
        let Some(tls) = self.settings.tls.clone() else {
            return Ok(super::tls::TlsInstall::Unchanged);
        };
        let what = format!("installing Galera's certificate in {}", tls.dir.display());
        let (_, gid) = crate::exec::user_ids(&tls.user)
            .map_err(|e| HostError::new(&what, e))?
            .ok_or_else(|| {
                HostError::new(
                    &what,
                    format!("no OS user {:?} (is mariadb-server installed?)", tls.user),
                )
            })?;
        tokio::task::spawn_blocking(move || super::tls::install(&tls, gid))
            .await
            .map_err(|e| HostError::new(&what, e.to_string()))?
            .map_err(|e| HostError::new(&what, e.to_string()))
    }

    async fn reload_tls(&self) -> Result<(), HostError> {
        self.root_sql("SET GLOBAL wsrep_provider_options = 'socket.ssl_reload=1'")
            .await
            .map(|_| ())
    }

    async fn ended_run_log(&self) -> Result<Option<(String, String)>, HostError> {
        let shown = run(
            "systemctl",
            &[
                "show",
                "-p",
                "ActiveState,SubState,InvocationID",
                &self.settings.unit,
            ],
            SYSTEMCTL_TIMEOUT,
        )
        .await?;
        let value = |key: &str| {
            shown
                .lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let ended = value("ActiveState") == "failed" || value("SubState") == "auto-restart";
        let invocation = value("InvocationID");
        if !ended || invocation.is_empty() {
            return Ok(None);
        }
        // mysqld's error log goes to the journal (stderr); the last lines of that run
        let log = run(
            "journalctl",
            &[
                &format!("_SYSTEMD_INVOCATION_ID={invocation}"),
                "-o",
                "cat",
                "-n",
                "300",
                "--no-pager",
            ],
            SYSTEMCTL_TIMEOUT,
        )
        .await?;
        Ok(Some((invocation, log)))
    }

    async fn set_aside_datadir(&self, id: &str, fresh: bool) -> Result<String, HostError> {
        let datadir = self.settings.datadir.clone();
        let name = datadir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                HostError::new(
                    "restore",
                    format!("datadir {} has no name", datadir.display()),
                )
            })?;
        let aside = (1..100)
            .map(|n| {
                let suffix = if n == 1 {
                    String::new()
                } else {
                    format!(".{n}")
                };
                datadir.with_file_name(format!("{name}.before-restore-{id}{suffix}"))
            })
            .find(|p| !p.exists())
            .ok_or_else(|| {
                HostError::new("restore", "99 kept datadirs for this backup: remove some")
            })?;
        // the datadir itself stays (it may be a mount point, or a directory an overlay
        // cannot rename): its entries move, with `mv` (a copy where a rename cannot go)
        let shown = |what: &str, p: &std::path::Path| format!("{what} {}", p.display());
        let mut private = tokio::fs::DirBuilder::new();
        private.mode(0o700);
        private
            .create(&aside)
            .await
            .map_err(|e| HostError::new(shown("creating", &aside), e.to_string()))?;
        let mut entries = Vec::new();
        if let Ok(mut read) = tokio::fs::read_dir(&datadir).await {
            while let Ok(Some(entry)) = read.next_entry().await {
                entries.push(entry.path().display().to_string());
            }
        } else {
            tokio::fs::create_dir(&datadir)
                .await
                .map_err(|e| HostError::new(shown("creating", &datadir), e.to_string()))?;
        }
        if !entries.is_empty() {
            let target = aside.display().to_string();
            let mut args = vec!["-t", target.as_str(), "--"];
            args.extend(entries.iter().map(String::as_str));
            run("mv", &args, Duration::from_secs(3 * 3600)).await?;
        }
        let path = datadir.display().to_string();
        run("chown", &["mysql:mysql", &path], SYSTEMCTL_TIMEOUT).await?;
        if fresh {
            // a new node's datadir (system tables, no Galera position): it joins by a
            // state transfer. Without the node's config: install-db's bootstrap must not
            // load the wsrep provider.
            run(
                "mariadb-install-db",
                &[
                    "--no-defaults",
                    "--user=mysql",
                    &format!("--datadir={path}"),
                    "--skip-test-db",
                ],
                Duration::from_secs(300),
            )
            .await?;
        }
        Ok(aside.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn status_output_of_the_mariadb_client_parses() {
        let text = "wsrep_on\tON\nwsrep_cluster_size\t3\nwsrep_cluster_state_uuid\t9DC7CBBA-e8fa-11f1-9cdd-af8aaf7b5b31\n\
                    wsrep_cluster_status\tPrimary\nwsrep_last_committed\t250\nwsrep_local_state_comment\tSynced\nwsrep_ready\tON\n\
                    wsrep_flow_control_paused_ns\t1500000000\nwsrep_local_recv_queue\t2\nwsrep_local_cert_failures\t7\n";
        let status = parse_status(text);
        assert!(status.wsrep_on && status.ready);
        assert_eq!(status.flow_control_paused_ns, Some(1_500_000_000));
        assert_eq!(status.recv_queue, Some(2));
        assert_eq!(status.cert_failures, Some(7));
        assert_eq!(status.cluster_size, 3);
        assert_eq!(status.last_committed, 250);
        assert_eq!(
            status.cluster_state_uuid,
            "9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31"
        );
        assert_eq!(parse_status("wsrep_on\tOFF\n"), WsrepStatus::default());
    }

    /// The variable names the parser knows, in the case `mariadb -N -B` prints them.
    const WSREP_NAMES: [&str; 7] = [
        "wsrep_on",
        "wsrep_local_state_comment",
        "wsrep_cluster_status",
        "wsrep_cluster_size",
        "wsrep_last_committed",
        "wsrep_cluster_state_uuid",
        "wsrep_ready",
    ];

    /// A name the parser may match (any case, padded) or a near miss.
    fn wsrep_name() -> impl Strategy<Value = String> {
        prop_oneof![
            (
                proptest::sample::select(&WSREP_NAMES[..]),
                any::<bool>(),
                "[ \t]{0,2}"
            )
                .prop_map(|(name, upper, pad)| {
                    let name = if upper {
                        name.to_ascii_uppercase()
                    } else {
                        name.to_string()
                    };
                    format!("{pad}{name}{pad}")
                }),
            "wsrep_[a-z_]{0,24}",
            any::<String>(),
        ]
    }

    /// Values of every shape the columns can hold, and hostile ones.
    fn wsrep_value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("ON".to_string()),
            Just("off".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            "-?[0-9]{18,24}",
            "[0-9a-fA-F-]{0,40}",
            any::<String>(),
        ]
    }

    proptest! {
        /// SQL output is another process's text: any of it gives a status, never a panic.
        #[test]
        fn status_output_never_panics(
            text in any::<String>(),
            lines in proptest::collection::vec((wsrep_name(), "[\t ]{1,2}", wsrep_value()), 0..12),
        ) {
            let built: String = lines.iter().map(|(n, sep, v)| format!("{n}{sep}{v}\n")).collect();
            for input in [text.as_str(), built.as_str(), &format!("{built}{text}")] {
                let status = parse_status(input);
                prop_assert_eq!(&status.cluster_state_uuid, &status.cluster_state_uuid.to_ascii_lowercase());
                if !input.contains('\t') {
                    prop_assert_eq!(status, WsrepStatus::default());
                }
            }
        }

        /// Every field printed in `name TAB value` lines, in any order and case, reads back.
        #[test]
        fn status_output_round_trips(
            wsrep_on in any::<bool>(),
            ready in any::<bool>(),
            comment in "[A-Za-z/_-]{0,20}",
            cluster_status in "[A-Za-z-]{0,12}",
            size in any::<u32>(),
            committed in any::<i64>(),
            uuid in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            order in Just((0..7).collect::<Vec<usize>>()).prop_shuffle(),
            upper in any::<bool>(),
        ) {
            let on = |b: bool| if b { "ON" } else { "OFF" };
            let values = [
                on(wsrep_on).to_string(),
                comment.clone(),
                cluster_status.clone(),
                size.to_string(),
                committed.to_string(),
                uuid.to_ascii_uppercase(),
                on(ready).to_string(),
            ];
            let text: String = order
                .iter()
                .map(|&i| {
                    let name = if upper { WSREP_NAMES[i].to_ascii_uppercase() } else { WSREP_NAMES[i].to_string() };
                    format!("{name}\t{}\n", values[i])
                })
                .collect();
            let want = WsrepStatus {
                wsrep_on,
                local_state_comment: comment,
                cluster_status,
                cluster_size: size,
                last_committed: committed,
                cluster_state_uuid: uuid,
                ready,
                ..WsrepStatus::default()
            };
            prop_assert_eq!(parse_status(&text), want);
        }
    }

    #[tokio::test]
    async fn config_is_rewritten_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("60-triad-galera.cnf");
        assert!(write_if_changed(&path, "a\n").await.unwrap());
        assert!(!write_if_changed(&path, "a\n").await.unwrap());
        assert!(write_if_changed(&path, "b\n").await.unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\n");
    }

    #[tokio::test]
    async fn failed_commands_name_the_command_and_stderr() {
        let error = run(
            "sh",
            &["-c", "echo boom >&2; exit 3"],
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(error.what.starts_with("sh -c"), "{error}");
        assert!(error.detail.contains("boom"), "{error}");
        let error = run("sleep", &["5"], Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(error.detail.contains("did not finish"), "{error}");
    }

    /// The hook's shell command, run with the paths swapped for test ones: a fresh position
    /// file becomes --wsrep_start_position and is consumed; without one, galera_recovery's
    /// answer is used (here absent: nothing).
    #[test]
    fn start_hook_passes_a_fresh_position_once_and_falls_back_to_galera_recovery() {
        assert!(
            !START_HOOK.contains("${"),
            "systemd would substitute ${{...}}"
        );
        let line = START_HOOK
            .lines()
            .find(|l| l.starts_with("ExecStart=/bin/sh -c \""))
            .expect("the hook's ExecStart");
        let script = &line["ExecStart=/bin/sh -c \"".len()..line.len() - 1];
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("galera-start-position");
        let script = script
            .replace(START_POSITION_FILE, &file.display().to_string())
            .replace("/usr/sbin/mariadbd", "echo mariadbd")
            .replace("/usr/bin/galera_recovery", "/nonexistent/galera_recovery");
        let run = || {
            let out = std::process::Command::new("/bin/sh")
                .args(["-c", &script])
                .env("MYSQLD_OPTS", "")
                .env("_WSREP_NEW_CLUSTER", "")
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        std::fs::write(&file, "9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31:42\n").unwrap();
        assert_eq!(
            run(),
            "mariadbd --wsrep_start_position=9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31:42"
        );
        assert!(!file.exists(), "consumed by the first start");
        assert_eq!(run(), "mariadbd", "no file: Debian's own recovery path");
    }
}
