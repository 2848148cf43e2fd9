//! wsrep status over one persistent connection to the local mysqld, as the monitoring
//! account: no process per look.
//!
//! The agent reads status every second. Spawning the `mariadb` client for each look cost
//! more CPU than the rest of the agent together (issue 24); a connection kept open answers
//! the same two statements in well under a millisecond. The account stays the one the agent
//! package sets up: `'triad-monitor'@'localhost' IDENTIFIED VIA unix_socket`, no password
//! and no privileges (status needs none), so no secret exists to store or leak. MariaDB's
//! unix_socket plugin takes the identity from the socket's peer credentials, which the
//! kernel records from the *connecting thread's* effective uid. So the connection lives on
//! one dedicated thread that has given up root for the monitor's uid and gid: Linux keeps
//! credentials per thread, and [`rustix::thread::set_thread_res_uid`] changes only the
//! calling one (glibc's `setresuid` would change every thread of the agent). That thread
//! runs its own single-threaded tokio runtime, so every connect (the first one and each
//! reconnect after mysqld restarted) happens on it, never on a root thread.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use tokio::sync::{mpsc, oneshot};

/// The variables and status counters the agent reads (two statements, one round trip each).
pub const VARIABLES_QUERY: &str = "SHOW GLOBAL VARIABLES LIKE 'wsrep_on'";
pub const STATUS_QUERY: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN \
    ('wsrep_local_state_comment','wsrep_cluster_status','wsrep_cluster_size',\
    'wsrep_last_committed','wsrep_cluster_state_uuid','wsrep_ready',\
    'wsrep_flow_control_paused_ns','wsrep_local_recv_queue','wsrep_local_cert_failures')";

/// Why a look failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookError {
    /// The account does not exist (yet): a new cluster, before the agent created it.
    #[error("access denied to '{0}'@'localhost': {1}")]
    AccessDenied(String, String),
    /// The thread could not take the monitor's identity (the agent does not run as root).
    #[error("cannot read status as OS user {0}: {1}")]
    Unavailable(String, String),
    /// mysqld did not answer (stopped, starting, hung past the timeout).
    #[error("{0}")]
    Failed(String),
}

type Reply = oneshot::Sender<Result<Vec<(String, String)>, LookError>>;

/// The handle: looks are sent to the connection's thread, which exits when the handle is
/// dropped.
#[derive(Debug)]
pub struct StatusConnection {
    socket: PathBuf,
    user: String,
    ids: (u32, u32),
    timeout: Duration,
    thread: Mutex<Option<mpsc::Sender<Reply>>>,
}

impl StatusConnection {
    /// No thread yet: the first look starts it.
    pub fn new(socket: PathBuf, user: &str, ids: (u32, u32), timeout: Duration) -> Self {
        StatusConnection {
            socket,
            user: user.to_string(),
            ids,
            timeout,
            thread: Mutex::new(None),
        }
    }

    /// `(name, value)` of [`VARIABLES_QUERY`] then [`STATUS_QUERY`].
    pub async fn look(&self) -> Result<Vec<(String, String)>, LookError> {
        let sender = self.sender()?;
        let (reply, answer) = oneshot::channel();
        if sender.send(reply).await.is_err() {
            // the thread ended (it never does on its own): start a new one next time
            self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
            return Err(LookError::Failed("the status thread ended".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(LookError::Failed("the status thread ended".into())))
    }

    fn sender(&self) -> Result<mpsc::Sender<Reply>, LookError> {
        let mut slot = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = slot.as_ref() {
            return Ok(sender.clone());
        }
        let (sender, requests) = mpsc::channel(1);
        let (started, outcome) = std::sync::mpsc::sync_channel(1);
        let (socket, user, ids, timeout) = (
            self.socket.clone(),
            self.user.clone(),
            self.ids,
            self.timeout,
        );
        let spawned = std::thread::Builder::new()
            .name("galera-status".into())
            .spawn(move || serve(socket, user, ids, timeout, requests, started));
        let unavailable = |why: String| LookError::Unavailable(self.user.clone(), why);
        spawned.map_err(|e| unavailable(format!("starting its thread: {e}")))?;
        match outcome.recv() {
            Ok(Ok(())) => {
                *slot = Some(sender.clone());
                Ok(sender)
            }
            Ok(Err(why)) => Err(unavailable(why)),
            Err(_) => Err(unavailable("its thread ended at start".into())),
        }
    }
}

/// Take the monitor's identity on this thread only, then answer looks until the handle is
/// dropped. `started` says whether the identity could be taken.
fn serve(
    socket: PathBuf,
    user: String,
    (uid, gid): (u32, u32),
    timeout: Duration,
    mut requests: mpsc::Receiver<Reply>,
    started: std::sync::mpsc::SyncSender<Result<(), String>>,
) {
    let runtime = become_monitor(uid, gid).and_then(|()| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("its runtime: {e}"))
    });
    let runtime = match runtime {
        Ok(runtime) => {
            let _ = started.send(Ok(()));
            runtime
        }
        Err(why) => {
            let _ = started.send(Err(why));
            return;
        }
    };
    runtime.block_on(async move {
        let mut conn: Option<mysql_async::Conn> = None;
        while let Some(reply) = requests.recv().await {
            let answer = match tokio::time::timeout(timeout, look(&mut conn, &socket, &user)).await
            {
                Ok(answer) => answer,
                Err(_) => Err(LookError::Failed(format!(
                    "mysqld did not answer within {timeout:?}"
                ))),
            };
            if answer.is_err() {
                // a broken or hung connection is never reused: the next look reconnects
                conn = None;
            }
            let _ = reply.send(answer);
        }
    });
}

/// Gid first (changing it needs the uid that is about to go), no supplementary groups.
fn become_monitor(uid: u32, gid: u32) -> Result<(), String> {
    use rustix::process::{Gid, Uid};
    let gid = Gid::from_raw(gid);
    let uid = Uid::from_raw(uid);
    rustix::thread::set_thread_groups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(|e| format!("setresgid: {e}"))?;
    rustix::thread::set_thread_res_uid(uid, uid, uid).map_err(|e| format!("setresuid: {e}"))
}

async fn look(
    conn: &mut Option<mysql_async::Conn>,
    socket: &std::path::Path,
    user: &str,
) -> Result<Vec<(String, String)>, LookError> {
    if conn.is_none() {
        let opts = mysql_async::OptsBuilder::default()
            .socket(Some(socket.display().to_string()))
            .user(Some(user))
            .prefer_socket(false);
        *conn = Some(
            mysql_async::Conn::new(opts)
                .await
                .map_err(|e| classify(user, e))?,
        );
    }
    let Some(connection) = conn.as_mut() else {
        return Err(LookError::Failed("no connection".into()));
    };
    let mut pairs = Vec::with_capacity(10);
    for query in [VARIABLES_QUERY, STATUS_QUERY] {
        let rows: Vec<(String, Option<String>)> = connection
            .query(query)
            .await
            .map_err(|e| classify(user, e))?;
        pairs.extend(rows.into_iter().map(|(n, v)| (n, v.unwrap_or_default())));
    }
    Ok(pairs)
}

/// 1698 (ER_ACCESS_DENIED_NO_PASSWORD_ERROR) and 1045: the account is missing.
fn classify(user: &str, error: mysql_async::Error) -> LookError {
    match &error {
        mysql_async::Error::Server(server) if matches!(server.code, 1698 | 1045) => {
            LookError::AccessDenied(user.to_string(), server.message.clone())
        }
        _ => LookError::Failed(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOBODY: (u32, u32) = (65534, 65534);

    fn root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// A directory the monitor's uid may enter, with a socket it may connect to.
    fn open_dir() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        dir
    }

    /// A unix socket in `dir` anyone may connect to, where mysqld's would be.
    fn listening_socket(dir: &tempfile::TempDir) -> (PathBuf, tokio::net::UnixListener) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join("mysqld.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
            .expect("chmod socket");
        (path, listener)
    }

    #[tokio::test]
    async fn the_connection_is_made_as_the_monitor_and_only_its_thread_changes_identity() {
        if !root() {
            // the identity change needs root; without it the look says so
            let conn = StatusConnection::new(
                "/nonexistent".into(),
                "nobody",
                NOBODY,
                Duration::from_secs(1),
            );
            assert!(matches!(conn.look().await, Err(LookError::Unavailable(..))));
            return;
        }
        let dir = open_dir();
        let (path, listener) = listening_socket(&dir);
        let conn = StatusConnection::new(path, "triad-monitor", NOBODY, Duration::from_secs(2));
        let server = async {
            let (stream, _) = listener.accept().await.expect("accept");
            let peer = stream.peer_cred().expect("SO_PEERCRED");
            (peer.uid(), peer.gid())
            // dropped without a handshake: the client sees the connection closed
        };
        let (look, peer) = tokio::join!(conn.look(), server);
        assert_eq!(
            peer, NOBODY,
            "the peer credentials mysqld's unix_socket plugin reads"
        );
        match look {
            Err(LookError::Failed(detail)) => assert!(!detail.is_empty()),
            other => panic!("a server that hangs up is a failed look, got {other:?}"),
        }
        assert!(
            rustix::process::geteuid().is_root(),
            "this thread is still root"
        );
        assert!(
            rustix::process::getegid().is_root(),
            "this thread's group is still root's"
        );
    }

    #[tokio::test]
    async fn a_failed_look_leaves_the_thread_ready_for_the_next_one() {
        if !root() {
            return;
        }
        let dir = open_dir();
        let conn = StatusConnection::new(
            dir.path().join("absent.sock"),
            "triad-monitor",
            NOBODY,
            Duration::from_secs(2),
        );
        for attempt in 0..3 {
            match conn.look().await {
                Err(LookError::Failed(detail)) => assert!(!detail.is_empty(), "attempt {attempt}"),
                other => panic!("attempt {attempt}: no mysqld is a failed look, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_bounded_by_the_timeout() {
        if !root() {
            return;
        }
        let dir = open_dir();
        let (path, listener) = listening_socket(&dir);
        let conn = StatusConnection::new(path, "triad-monitor", NOBODY, Duration::from_millis(300));
        // accepted, never greeted: the look must not wait for mysqld's handshake forever
        let hold = tokio::spawn(async move {
            let held = listener.accept().await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(held);
        });
        match conn.look().await {
            Err(LookError::Failed(detail)) => {
                assert!(detail.contains("did not answer"), "{detail}")
            }
            other => panic!("a silent server is a failed look, got {other:?}"),
        }
        hold.abort();
    }

    #[test]
    fn classify_names_a_missing_account() {
        let error = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1698,
            message: "Access denied for user 'triad-monitor'@'localhost'".into(),
            state: "28000".into(),
        });
        assert!(matches!(
            classify("triad-monitor", error),
            LookError::AccessDenied(user, _) if user == "triad-monitor"
        ));
    }
}
