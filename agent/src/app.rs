//! The app's database account and password file on this node (issue 17).
//!
//! The coordinator declares the app: it asks one agent whose mysqld is Synced in the
//! Primary component to create the database and account ([`AppDriver::ensure_database`];
//! the statements replicate to every member), and every agent to keep the password in a
//! file that root and the web server's group may read ([`AppDriver::keep_secret`]). From
//! then on the agent checks that file every tick and publishes `app.secret`; readiness
//! requires it. The password is only ever in the coordinator's request and in that file:
//! never in a log, a command line (statements go to the client's stdin and carry only
//! the hash), gossip or status.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use triad_galera::account::{self, AppAccount, Observed, Plan};
use triad_proto::gossip::AppSecret;

use crate::exec::HostError;
use crate::state::AgentState;

const SQL_TIMEOUT: Duration = Duration::from_secs(20);

/// Side effects: statements for the local mysqld, the password file.
#[async_trait::async_trait]
pub trait AppHost: Send + Sync {
    /// Run `script` (statements separated by ';') as root over the unix socket; the
    /// output of `-N -B`.
    async fn sql(&self, script: &str) -> Result<String, HostError>;
    /// Write `text` to `path` (mode 0640, owner root, group `group`) unless it holds it;
    /// true when written.
    async fn write_secret(&self, path: &Path, text: &str, group: &str) -> Result<bool, HostError>;
    /// The file exists and is not empty.
    async fn secret_present(&self, path: &Path) -> bool;
}

/// Production: the `mariadb` client and the local file system.
#[derive(Debug, Clone)]
pub struct LocalAppHost {
    pub socket: PathBuf,
}

#[async_trait::async_trait]
impl AppHost for LocalAppHost {
    async fn sql(&self, script: &str) -> Result<String, HostError> {
        let socket = format!("--socket={}", self.socket.display());
        crate::exec::run_with_input(
            "mariadb",
            &[
                "--no-defaults",
                &socket,
                "--user=root",
                "--connect-timeout=2",
                "-N",
                "-B",
            ],
            script,
            SQL_TIMEOUT,
        )
        .await
    }

    async fn write_secret(&self, path: &Path, text: &str, group: &str) -> Result<bool, HostError> {
        let what = format!("writing the app's password file {}", path.display());
        let gid = group_id(group).map_err(|e| HostError::new(&what, e))?;
        let path = path.to_path_buf();
        let text = text.to_string();
        tokio::task::spawn_blocking(move || write_secret_file(&path, &text, gid))
            .await
            .map_err(|e| HostError::new(&what, e.to_string()))?
            .map_err(|e| HostError::new(&what, e))
    }

    async fn secret_present(&self, path: &Path) -> bool {
        tokio::fs::metadata(path)
            .await
            .is_ok_and(|m| m.is_file() && m.len() > 0)
    }
}

fn group_id(group: &str) -> Result<u32, String> {
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("no group {group:?} (is the web server installed?)")),
        Err(e) => Err(format!("looking up the group {group:?}: {e}")),
    }
}

/// 0640 root:`gid` through [`crate::exec::write_owned_file`] unless it is in place; the
/// directory is created (0755) if missing. True when written.
fn write_secret_file(path: &Path, text: &str, gid: u32) -> Result<bool, String> {
    if crate::exec::owned_file_in_place(path, text.as_bytes(), 0o640, 0, gid) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    crate::exec::write_owned_file(path, text.as_bytes(), 0o640, 0, gid)
        .map_err(|e| e.to_string())?;
    Ok(true)
}

/// Why an app request could not be served.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Host(#[from] HostError),
}

/// The outcome of [`AppDriver::ensure_database`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    Created,
    Present,
    Conflict(String),
}

impl std::fmt::Debug for AppDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppDriver")
            .field("declared", &self.declared)
            .finish()
    }
}

pub struct AppDriver {
    host: Arc<dyn AppHost>,
    state: Arc<AgentState>,
    /// The password file the coordinator declared, once it has.
    declared: Mutex<Option<PathBuf>>,
}

impl AppDriver {
    pub fn new(host: Arc<dyn AppHost>, state: Arc<AgentState>) -> AppDriver {
        AppDriver {
            host,
            state,
            declared: Mutex::new(None),
        }
    }

    /// Create the database and account unless they exist; an account that differs is
    /// reported, never changed. Only on a mysqld Synced in the Primary component, so the
    /// statements reach every member.
    /// With `reset_password` (after a restore), an account that differs only by its
    /// password gets `account`'s.
    pub async fn ensure_database(
        &self,
        account: &AppAccount,
        reset_password: bool,
    ) -> Result<Ensured, AppError> {
        account.validate().map_err(AppError::Invalid)?;
        let keys = self.state.keys();
        if !keys.galera.synced_in_primary() {
            return Err(AppError::Refused(format!(
                "mysqld is {} (not Synced in the Primary component)",
                keys.galera.state
            )));
        }
        let observed = self.observe(account).await?;
        match account::plan_with(account, &observed, reset_password) {
            Plan::Present => Ok(Ensured::Present),
            Plan::Conflict(detail) => {
                tracing::warn!("app database: {detail}; left as it is");
                Ok(Ensured::Conflict(detail))
            }
            Plan::Create(statements) => {
                let script = statements.join(";\n") + ";\n";
                self.host.sql(&script).await?;
                tracing::info!(
                    database = %account.database,
                    user = %account.user,
                    host = %account.host,
                    "app database and account created"
                );
                Ok(Ensured::Created)
            }
        }
    }

    async fn observe(&self, account: &AppAccount) -> Result<Observed, HostError> {
        // names are plain identifiers and the host is checked: safe inside quotes
        let counts = self
            .host
            .sql(&format!(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{}';\n\
                 SELECT COUNT(*) FROM mysql.global_priv WHERE User = '{}' AND Host = '{}';\n",
                account.database, account.user, account.host
            ))
            .await?;
        let mut lines = counts.lines().map(str::trim);
        let database_exists = lines.next() == Some("1");
        let account_exists = lines.next() == Some("1");
        let grants = if account_exists {
            let text = self
                .host
                .sql(&format!(
                    "SHOW GRANTS FOR '{}'@'{}';\n",
                    account.user, account.host
                ))
                .await?;
            Some(text.lines().map(str::to_string).collect())
        } else {
            None
        };
        Ok(Observed {
            database_exists,
            grants,
        })
    }

    /// Keep the password in `path`; from now on readiness requires that file.
    pub async fn keep_secret(
        &self,
        path: &Path,
        password: &str,
        group: &str,
    ) -> Result<bool, AppError> {
        if !path.is_absolute() || path.parent().is_none() {
            return Err(AppError::Invalid(format!(
                "{} is not an absolute file path",
                path.display()
            )));
        }
        if password.is_empty() || password.contains('\n') {
            return Err(AppError::Invalid(
                "the password must be one non-empty line".into(),
            ));
        }
        *self.declared.lock().unwrap_or_else(|p| p.into_inner()) = Some(path.to_path_buf());
        let written = self.host.write_secret(path, password, group).await;
        self.check().await;
        let written = written?;
        if written {
            tracing::info!(path = %path.display(), "app password file written");
        }
        Ok(written)
    }

    /// Publish whether the declared password file is there.
    async fn check(&self) {
        let declared = self
            .declared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let secret = match declared {
            None => AppSecret::None,
            Some(path) if self.host.secret_present(&path).await => AppSecret::Ok,
            Some(_) => AppSecret::Missing,
        };
        self.state.update(|keys| keys.app_secret = secret);
    }

    pub async fn run(self: Arc<Self>, interval: Duration, stop: watch::Receiver<bool>) {
        crate::state::every(interval, stop, || self.check()).await;
    }
}
