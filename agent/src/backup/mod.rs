//! Backups (issue 19, first slice): one part of a backup streamed to the coordinator as it
//! is made, for its `BackupStream` call; coordinator certificates only.
//!
//! Inputs: the part asked for and the node's published state (its role, the galera and
//! mount modules' keys). What it drives toward: the part's bytes, in order, then a `done`
//! with their count and, for the database, the Galera position read from the stream as it
//! passed. Triggered only by the call; one stream at a time on a node (a second is refused).
//! On error the stream ends with an error naming the command and its stderr's last lines;
//! a caller that goes away kills the command.
//!
//! - Database: only on a core node whose Galera is Synced in a Primary component;
//!   `SET GLOBAL wsrep_desync = ON` first, so the node's applying, slowed by the copy,
//!   does not hold the whole cluster back through flow control; then `mariadb-backup
//!   --backup --stream=xbstream --galera-info`, its output scanned on the way
//!   ([`xbstream::Scanner`]) for `xtrabackup_galera_info`. The desync is lifted on every
//!   path, and only the desync this stream set: a node found desynced already (an
//!   operator's, or a backup an earlier agent process did not finish) is refused. While
//!   desynced the node reads `Donor/Desynced`: it stays ready, but the database endpoint's
//!   check admits Synced members only, so the app's connections go to another member.
//! - Files: only while the docroot is mounted and answering (the mount module's `ok`); a
//!   GNU tar of it. tar's exit 1 (a file changed as it was read: the volume is live) is
//!   accepted with a warning.
//!
//! Output is read a pipe-read at a time (at most [`CHUNK_BYTES`]) into a channel of
//! [`CHANNEL_CHUNKS`]: a slow caller slows the command through its pipe instead of filling
//! the agent's memory.

pub mod restore;
pub mod unpack;
pub mod xbstream;

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use triad_proto::gossip::{GaleraKeys, MountState, NodeKeys, Role};

use crate::exec::HostError;
use xbstream::{galera_point, GaleraPoint, Scanner, Seen, XbstreamError, GALERA_INFO_FILES};

/// The most read from the command's stdout into one `data` chunk.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks queued for the caller before the command is made to wait.
pub const CHANNEL_CHUNKS: usize = 4;
/// Where each database backup gets its own `--target-dir`/`--tmpdir`, removed afterwards
/// (disk-backed, unlike a tmpfs /tmp).
pub const TEMP_ROOT: &str = "/var/tmp";
/// Lines of the command's stderr kept for the error message.
pub const STDERR_LINES: usize = 20;
/// Bytes kept of one stderr line.
pub const STDERR_LINE_BYTES: usize = 300;
/// Bound on each statement of the desync.
const SQL_TIMEOUT: Duration = Duration::from_secs(20);
/// Tries to lift the desync before giving up (and saying so).
const LIFT_TRIES: u32 = 3;
const LIFT_RETRY: Duration = Duration::from_secs(2);

/// Which part of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Database,
    Files,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Database => "database",
            Kind::Files => "files",
        }
    }
}

/// What the checks read of the node: its role and the galera and mount modules' keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub role: Role,
    pub galera: GaleraKeys,
    pub mount: MountState,
}

impl Facts {
    pub fn of(role: Role, keys: &NodeKeys) -> Facts {
        Facts {
            role,
            galera: keys.galera.clone(),
            mount: keys.mount,
        }
    }
}

/// `[galera] socket`, `[mount] docroot` and the node, for the commands and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    pub node_id: String,
    pub socket: PathBuf,
    pub docroot: PathBuf,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit status {code}"),
            Exit::Signal(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

impl From<std::process::ExitStatus> for Exit {
    fn from(status: std::process::ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            (None, None) => Exit::Code(-1),
        }
    }
}

/// One item of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// The next bytes of the part.
    Data(Vec<u8>),
    /// The part is whole.
    Done(Done),
}

/// The end of a whole part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// Bytes sent as [`Piece::Data`].
    pub bytes: u64,
    /// Database: the Galera position the backup holds.
    pub galera: Option<GaleraPoint>,
}

/// What the stream's receiver gets: pieces, ending with [`Piece::Done`] or an error.
pub type Item = Result<Piece, BackupError>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    #[error("a backup is already streaming from this node")]
    Busy,
    /// The node's state does not allow this part now.
    #[error("{0}")]
    Refused(String),
    /// A statement or a command that could not be run, or its output not read.
    #[error("{0}")]
    Host(#[from] HostError),
    /// The command ran and failed.
    #[error("{command} failed ({exit}): {stderr}")]
    Command {
        command: String,
        exit: Exit,
        stderr: String,
    },
    /// mariadb-backup's output is not an xbstream this agent can follow.
    #[error("{command}: its output is not a whole xbstream: {error}")]
    Stream {
        command: String,
        error: XbstreamError,
    },
    /// The stream is whole but holds no usable Galera position.
    #[error("{command}: {reason}")]
    Position { command: String, reason: String },
    /// The receiver of the stream went away (never sent: nobody listens).
    #[error("the caller went away")]
    CallerLeft,
}

/// Pure: may this node stream `kind` now? The refusal says why and what would allow it.
pub fn check(kind: Kind, facts: &Facts, docroot: &Path) -> Result<(), BackupError> {
    match kind {
        Kind::Database => {
            if facts.role != Role::Core {
                return Err(BackupError::Refused(format!(
                    "this is a {} node: the database is backed up on a core node (a Galera member)",
                    facts.role.as_str()
                )));
            }
            if !facts.galera.synced_in_primary() {
                return Err(BackupError::Refused(format!(
                    "galera here is {} ({}): the database is backed up only from a member Synced in a Primary component",
                    facts.galera.state.as_str(),
                    facts.galera.cluster_status.as_deref().unwrap_or("no cluster status")
                )));
            }
            Ok(())
        }
        Kind::Files => match facts.mount {
            MountState::Ok => Ok(()),
            MountState::NotManaged => Err(BackupError::Refused(format!(
                "the docroot mount ({}) is not managed on this node: the files are backed up where the agent mounts the volume",
                docroot.display()
            ))),
            state => Err(BackupError::Refused(format!(
                "the docroot {} is {}, not mounted and answering: the files are backed up from a live mount",
                docroot.display(),
                state.as_str()
            ))),
        },
    }
}

/// Pure: the database command. `dir`: a fresh directory for mariadb-backup's
/// `--target-dir` (its working directory when streaming) and `--tmpdir` (the redo log it
/// buffers until the end of the copy), removed afterwards. It connects as MariaDB's root
/// over the unix socket (unix_socket authentication: the agent runs as root); its other
/// options (datadir, InnoDB settings) come from the server's configuration files.
pub fn database_command(socket: &Path, dir: &Path) -> Vec<String> {
    vec![
        "mariadb-backup".into(),
        "--backup".into(),
        "--stream=xbstream".into(),
        "--galera-info".into(),
        format!("--target-dir={}", dir.display()),
        format!("--tmpdir={}", dir.display()),
        "--user=root".into(),
        format!("--socket={}", socket.display()),
    ]
}

/// Pure: the files command. GNU tar: numeric owners (the restoring node may map names
/// differently), and only the volume (`--one-file-system`: nothing mounted below it).
pub fn files_command(docroot: &Path) -> Vec<String> {
    vec![
        "tar".into(),
        "--create".into(),
        "--file=-".into(),
        format!("--directory={}", docroot.display()),
        "--numeric-owner".into(),
        "--one-file-system".into(),
        // Gluster's trash directory is the volume's, not the app's
        format!("--exclude=./{GLUSTER_TRASH}"),
        ".".into(),
    ]
}

/// The directory Gluster keeps at the top of every volume (the trash translator's).
pub const GLUSTER_TRASH: &str = ".trashcan";

/// `SET GLOBAL wsrep_desync = ON|OFF`.
pub fn desync_statement(on: bool) -> &'static str {
    if on {
        "SET GLOBAL wsrep_desync = ON"
    } else {
        "SET GLOBAL wsrep_desync = OFF"
    }
}

/// How the command's exit is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Whole,
    /// Whole, with something to log.
    WholeWithWarning(&'static str),
    Failed,
}

/// Pure: mariadb-backup succeeds with 0 only; GNU tar's 1 is "some files differ" (changed
/// while read, which a live volume does), 2 and above are fatal.
pub fn judge(kind: Kind, exit: Exit) -> Verdict {
    match (kind, exit) {
        (_, Exit::Code(0)) => Verdict::Whole,
        (Kind::Files, Exit::Code(1)) => Verdict::WholeWithWarning(
            "tar exit 1: files changed while they were read (the volume is live); the archive holds the version it read",
        ),
        _ => Verdict::Failed,
    }
}

/// Pure: the database part's end, from its scanned stream: the stream must end between
/// two chunks and hold the Galera position.
pub fn database_done(command: &str, scanner: &Scanner) -> Result<Done, BackupError> {
    scanner.finish().map_err(|error| BackupError::Stream {
        command: command.to_string(),
        error,
    })?;
    let position = |reason: String| BackupError::Position {
        command: command.to_string(),
        reason,
    };
    let mut found = None;
    for name in GALERA_INFO_FILES {
        match scanner.file(name) {
            Seen::Absent => {}
            Seen::Incomplete => {
                return Err(position(format!(
                    "the stream holds {name} without its end chunk"
                )))
            }
            Seen::TooLarge => {
                return Err(position(format!(
                    "{name} is larger than {} bytes: not a Galera position",
                    xbstream::MAX_COLLECTED
                )))
            }
            Seen::Complete(content) => {
                found = Some((name, content));
                break;
            }
        }
    }
    let Some((name, content)) = found else {
        return Err(position(format!(
            "the stream holds no {} (--galera-info writes it on a Galera node)",
            GALERA_INFO_FILES[0]
        )));
    };
    let point = galera_point(content).ok_or_else(|| {
        let shown: String = String::from_utf8_lossy(content).chars().take(200).collect();
        position(format!("{name} holds {shown:?}, not uuid:seqno"))
    })?;
    Ok(Done {
        bytes: scanner.position(),
        galera: Some(point),
    })
}

/// The last lines of a command's stderr, bounded in count and length.
#[derive(Debug, Clone, Default)]
pub struct StderrTail {
    lines: VecDeque<String>,
    partial: Vec<u8>,
}

impl StderrTail {
    pub fn push(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while let Some(newline) = rest.iter().position(|b| *b == b'\n') {
            self.append(&rest[..newline]);
            self.end_line();
            rest = &rest[newline + 1..];
        }
        self.append(rest);
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = STDERR_LINE_BYTES.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&self.partial).trim().to_string();
        self.partial.clear();
        if line.is_empty() {
            return;
        }
        if self.lines.len() == STDERR_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// The kept lines, an unterminated last one included, joined for a one-line message.
    pub fn text(mut self) -> String {
        self.end_line();
        if self.lines.is_empty() {
            return "nothing on stderr".into();
        }
        Vec::from(self.lines).join(" | ")
    }
}

/// A started command: its output and its process.
pub struct Spawned {
    pub stdout: Box<dyn AsyncRead + Send + Unpin>,
    pub stderr: Box<dyn AsyncRead + Send + Unpin>,
    pub process: Box<dyn Running>,
}

/// A running command.
#[async_trait::async_trait]
pub trait Running: Send {
    async fn wait(&mut self) -> Result<Exit, HostError>;
    /// SIGKILL, then reap it.
    async fn kill(&mut self);
}

/// The side effects of a backup: the desync statements, the temporary directory, the
/// commands.
#[async_trait::async_trait]
pub trait BackupHost: Send + Sync {
    /// `@@GLOBAL.wsrep_desync`.
    async fn desynced(&self) -> Result<bool, HostError>;
    async fn set_desync(&self, on: bool) -> Result<(), HostError>;
    /// `wsrep_desync = OFF` without the async runtime: the last chance of a stream dropped
    /// without its cleanup (a panic, the runtime stopping with the agent).
    fn lift_desync_blocking(&self) -> Result<(), HostError>;
    /// A fresh, empty directory of the agent's own (0700).
    async fn temp_dir(&self) -> Result<PathBuf, HostError>;
    fn remove_temp_dir(&self, dir: &Path) -> Result<(), HostError>;
    /// Starts `argv` with stdout and stderr piped, stdin empty; killed when dropped.
    fn spawn(&self, argv: &[String]) -> Result<Spawned, HostError>;
}

/// The node's backup streams: at most one at a time.
pub struct Backups {
    settings: BackupSettings,
    host: Arc<dyn BackupHost>,
    busy: Arc<Semaphore>,
}

impl fmt::Debug for Backups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backups")
            .field("settings", &self.settings)
            .field("streaming", &(self.busy.available_permits() == 0))
            .finish()
    }
}

impl Backups {
    pub fn new(settings: BackupSettings, host: Arc<dyn BackupHost>) -> Backups {
        Backups {
            settings,
            host,
            busy: Arc::new(Semaphore::new(1)),
        }
    }

    /// `[galera] socket`, `[mount] docroot`, the node.
    pub fn settings(&self) -> &BackupSettings {
        &self.settings
    }

    /// Production: the `mariadb` client, mariadb-backup and tar of this node.
    /// A desync an earlier agent process left (its marker in the state directory) is
    /// lifted once mysqld answers (tried for 2 minutes; a restarted mysqld is not desynced).
    pub fn production(config: &crate::config::AgentConfig) -> Backups {
        let host = Arc::new(LocalBackupHost {
            socket: config.galera.socket.clone(),
            temp_root: PathBuf::from(TEMP_ROOT),
            marker: config.state_dir.join(DESYNC_MARKER),
        });
        if host.marker.exists() {
            let left = host.clone();
            tokio::spawn(async move {
                for _ in 0..12 {
                    match left.desynced().await {
                        Ok(_) => return,
                        Err(error) => tracing::debug!("the backup's left desync: {error}"),
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                }
            });
        }
        Backups::new(
            BackupSettings {
                node_id: config.node_id.clone(),
                socket: config.galera.socket.clone(),
                docroot: config.mount.docroot.clone(),
            },
            host,
        )
    }

    /// Checks `facts`, starts the part's command, and returns the receiver of its pieces.
    /// Errors before the command runs (a refusal, the desync or the command failing to
    /// start) are returned here; later ones end the stream. Dropping the receiver kills the
    /// command; the cleanup (temporary directory, desync) runs either way.
    pub async fn start(
        &self,
        kind: Kind,
        facts: &Facts,
    ) -> Result<mpsc::Receiver<Item>, BackupError> {
        let permit = self
            .busy
            .clone()
            .try_acquire_owned()
            .map_err(|_| BackupError::Busy)?;
        check(kind, facts, &self.settings.docroot)?;
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let (started_tx, started_rx) = oneshot::channel();
        // its own task: the cleanup must not depend on the caller's request staying alive
        tokio::spawn(stream(
            kind,
            self.settings.clone(),
            self.host.clone(),
            tx,
            started_tx,
            permit,
        ));
        match started_rx.await {
            Ok(Ok(())) => Ok(rx),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(BackupError::Host(HostError::new(
                format!("{} backup", kind.as_str()),
                "the backup task ended before its command started",
            ))),
        }
    }
}

/// The command running, with what must be undone after it.
struct Prepared {
    command: String,
    spawned: Spawned,
    temp_dir: Option<TempDir>,
    desync: Option<DesyncGuard>,
}

/// The stream's task: prepare, report the start, pump, clean up, end the stream. The
/// permit is released last, once the desync is lifted.
async fn stream(
    kind: Kind,
    settings: BackupSettings,
    host: Arc<dyn BackupHost>,
    tx: mpsc::Sender<Item>,
    started: oneshot::Sender<Result<(), BackupError>>,
    permit: OwnedSemaphorePermit,
) {
    let node = settings.node_id.clone();
    let prepared = match prepare(kind, &settings, &host).await {
        Ok(prepared) => prepared,
        Err(error) => {
            // the caller of `start` reports it
            let _ = started.send(Err(error));
            return;
        }
    };
    let _ = started.send(Ok(()));
    let begun = tokio::time::Instant::now();
    tracing::info!(%node, kind = kind.as_str(), command = %prepared.command, "backup streaming");
    let mut scanner = (kind == Kind::Database).then(|| Scanner::new(&GALERA_INFO_FILES));
    let Prepared {
        command,
        spawned,
        temp_dir,
        desync,
    } = prepared;
    let pumped = pump(spawned, &tx, &command, scanner.as_mut()).await;
    drop(temp_dir);
    if let Some(desync) = desync {
        desync.lift().await;
    }
    let outcome = pumped.and_then(|finished| conclude(kind, &command, finished, scanner.as_ref()));
    let elapsed = begun.elapsed();
    match outcome {
        Ok(done) => {
            let galera = done.galera.as_ref().map(ToString::to_string);
            tracing::info!(%node, kind = kind.as_str(), bytes = done.bytes, ?elapsed, galera = galera.as_deref().unwrap_or("-"), "backup streamed");
            let _ = tx.send(Ok(Piece::Done(done))).await;
        }
        Err(BackupError::CallerLeft) => {
            tracing::warn!(%node, kind = kind.as_str(), %command, ?elapsed, "backup stopped: the caller went away");
        }
        Err(error) => {
            tracing::warn!(%node, kind = kind.as_str(), ?elapsed, "backup failed: {error}");
            let _ = tx.send(Err(error)).await;
        }
    }
    drop(permit);
}

/// Desync (database), temporary directory, the command started. Whatever was done is
/// undone before an error is returned.
async fn prepare(
    kind: Kind,
    settings: &BackupSettings,
    host: &Arc<dyn BackupHost>,
) -> Result<Prepared, BackupError> {
    match kind {
        Kind::Files => {
            let argv = files_command(&settings.docroot);
            let spawned = host.spawn(&argv)?;
            Ok(Prepared {
                command: argv.join(" "),
                spawned,
                temp_dir: None,
                desync: None,
            })
        }
        Kind::Database => {
            if host.desynced().await? {
                return Err(BackupError::Refused(
                    "wsrep_desync is already ON on this node (an operator's, or left by a backup an earlier agent process did not finish): the agent lifts only a desync it set; check, SET GLOBAL wsrep_desync = OFF, and retry".into(),
                ));
            }
            let desync = DesyncGuard {
                host: Some(host.clone()),
                node: settings.node_id.clone(),
            };
            if let Err(error) = host.set_desync(true).await {
                // it may have taken effect all the same (a timeout): lifting is harmless
                desync.lift().await;
                return Err(error.into());
            }
            tracing::info!(node = %settings.node_id, "wsrep_desync = ON for the database backup");
            let temp_dir = match host.temp_dir().await {
                Ok(path) => TempDir {
                    host: host.clone(),
                    path,
                },
                Err(error) => {
                    desync.lift().await;
                    return Err(error.into());
                }
            };
            let argv = database_command(&settings.socket, &temp_dir.path);
            match host.spawn(&argv) {
                Ok(spawned) => Ok(Prepared {
                    command: argv.join(" "),
                    spawned,
                    temp_dir: Some(temp_dir),
                    desync: Some(desync),
                }),
                Err(error) => {
                    drop(temp_dir);
                    desync.lift().await;
                    Err(error.into())
                }
            }
        }
    }
}

/// The command's end as the pump saw it.
#[derive(Debug)]
struct Finished {
    exit: Exit,
    bytes: u64,
    stderr: String,
}

/// Copies stdout into the channel (each piece scanned first, when scanning) until it ends,
/// then waits for the command. The caller going away, an unreadable stdout or a stream the
/// scanner cannot follow kill the command.
async fn pump(
    spawned: Spawned,
    tx: &mpsc::Sender<Item>,
    command: &str,
    mut scanner: Option<&mut Scanner>,
) -> Result<Finished, BackupError> {
    let Spawned {
        mut stdout,
        stderr,
        mut process,
    } = spawned;
    let tail = tokio::spawn(read_tail(stderr));
    let mut bytes = 0u64;
    let ended = loop {
        let mut buf = Vec::with_capacity(CHUNK_BYTES);
        let read = tokio::select! {
            read = stdout.read_buf(&mut buf) => read,
            () = tx.closed() => break Err(BackupError::CallerLeft),
        };
        match read {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Some(scanner) = scanner.as_deref_mut() {
                    if let Err(error) = scanner.feed(&buf) {
                        break Err(BackupError::Stream {
                            command: command.to_string(),
                            error,
                        });
                    }
                }
                bytes += n as u64;
                if tx.send(Ok(Piece::Data(buf))).await.is_err() {
                    break Err(BackupError::CallerLeft);
                }
            }
            Err(error) => {
                break Err(BackupError::Host(HostError::new(
                    command,
                    format!("reading its output: {error}"),
                )))
            }
        }
    };
    if let Err(error) = ended {
        process.kill().await;
        tail.abort();
        return Err(error);
    }
    let exit = tokio::select! {
        exit = process.wait() => exit?,
        () = tx.closed() => {
            process.kill().await;
            tail.abort();
            return Err(BackupError::CallerLeft);
        }
    };
    let stderr = tail.await.map(StderrTail::text).unwrap_or_default();
    Ok(Finished {
        exit,
        bytes,
        stderr,
    })
}

/// Drains a stderr pipe to its end (the command must never block on it), keeping its tail.
pub(crate) async fn read_tail(mut stderr: Box<dyn AsyncRead + Send + Unpin>) -> StderrTail {
    let mut tail = StderrTail::default();
    let mut buf = vec![0u8; 8192];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => return tail,
            Ok(n) => tail.push(&buf[..n]),
        }
    }
}

/// Pure: the part's end from the command's exit and, for the database, the scanned stream.
fn conclude(
    kind: Kind,
    command: &str,
    finished: Finished,
    scanner: Option<&Scanner>,
) -> Result<Done, BackupError> {
    match judge(kind, finished.exit) {
        Verdict::Failed => {
            return Err(BackupError::Command {
                command: command.to_string(),
                exit: finished.exit,
                stderr: finished.stderr,
            })
        }
        Verdict::WholeWithWarning(warning) => {
            tracing::warn!(%command, stderr = %finished.stderr, "{warning}");
        }
        Verdict::Whole => {}
    }
    match (kind, scanner) {
        (Kind::Database, Some(scanner)) => {
            let done = database_done(command, scanner)?;
            debug_assert_eq!(done.bytes, finished.bytes, "every byte sent was scanned");
            // as written, for what galera_point leaves aside
            for name in GALERA_INFO_FILES {
                if let Seen::Complete(content) = scanner.file(name) {
                    tracing::info!(file = name, content = %String::from_utf8_lossy(content).trim(), "galera position in the backup");
                }
            }
            Ok(done)
        }
        _ => Ok(Done {
            bytes: finished.bytes,
            galera: None,
        }),
    }
}

/// The desync this stream set: [`DesyncGuard::lift`] on every path the stream's task runs
/// to its end; dropped without it, the statement runs blocking.
struct DesyncGuard {
    host: Option<Arc<dyn BackupHost>>,
    node: String,
}

impl DesyncGuard {
    async fn lift(mut self) {
        let Some(host) = self.host.take() else { return };
        let mut tries = 0;
        loop {
            tries += 1;
            match host.set_desync(false).await {
                Ok(()) => {
                    tracing::info!(node = %self.node, "wsrep_desync = OFF: the backup's desync is lifted");
                    return;
                }
                Err(error) if tries < LIFT_TRIES => {
                    tracing::warn!(node = %self.node, "lifting the backup's desync (try {tries} of {LIFT_TRIES}): {error}");
                    tokio::time::sleep(LIFT_RETRY).await;
                }
                Err(error) => {
                    tracing::error!(node = %self.node, "the backup's desync could not be lifted, the node stays desynced until SET GLOBAL wsrep_desync = OFF: {error}");
                    return;
                }
            }
        }
    }
}

impl Drop for DesyncGuard {
    fn drop(&mut self) {
        if let Some(host) = self.host.take() {
            match host.lift_desync_blocking() {
                Ok(()) => {
                    tracing::warn!(node = %self.node, "a backup stream was dropped: its desync is lifted")
                }
                Err(error) => {
                    tracing::error!(node = %self.node, "a backup stream was dropped and its desync could not be lifted, the node stays desynced until SET GLOBAL wsrep_desync = OFF: {error}")
                }
            }
        }
    }
}

/// A temporary directory, removed when dropped.
struct TempDir {
    host: Arc<dyn BackupHost>,
    path: PathBuf,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(error) = self.host.remove_temp_dir(&self.path) {
            tracing::warn!("the backup's temporary directory stays: {error}");
        }
    }
}

/// Production: the `mariadb` client as MariaDB's root over the unix socket, the commands
/// as children of the agent.
#[derive(Debug, Clone)]
pub struct LocalBackupHost {
    pub socket: PathBuf,
    /// Where temporary directories are made.
    pub temp_root: PathBuf,
    /// Written before this agent desyncs the node, removed once the desync is lifted: a
    /// desync found ON with the marker present was left by an agent process that died
    /// mid-backup (SIGKILL, a crash), and is lifted; without it, it is an operator's.
    pub marker: PathBuf,
}

/// The marker's name in the agent's state directory.
pub const DESYNC_MARKER: &str = "backup-desync";

impl LocalBackupHost {
    fn forget_marker(&self) {
        if let Err(error) = std::fs::remove_file(&self.marker) {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(marker = %self.marker.display(), "removing the backup's desync marker: {error}");
            }
        }
    }
}

impl LocalBackupHost {
    /// The statement through the `mariadb` client (the agent's way of running privileged
    /// statements, as galera's `root_sql`).
    async fn root_sql(&self, statement: &str) -> Result<String, HostError> {
        let socket = format!("--socket={}", self.socket.display());
        crate::exec::run("mariadb", &client_args(&socket, statement), SQL_TIMEOUT).await
    }
}

/// The `mariadb` client's arguments for `statement` as MariaDB's root over `socket`.
pub(crate) fn client_args<'a>(socket: &'a str, statement: &'a str) -> [&'a str; 8] {
    [
        "--no-defaults",
        socket,
        "--user=root",
        "--connect-timeout=2",
        "-N",
        "-B",
        "-e",
        statement,
    ]
}

/// Pure: `@@GLOBAL.wsrep_desync` as `mariadb -N -B` prints it.
pub fn parse_desynced(output: &str) -> Option<bool> {
    match output.trim() {
        "1" | "ON" => Some(true),
        "0" | "OFF" => Some(false),
        _ => None,
    }
}

#[async_trait::async_trait]
impl BackupHost for LocalBackupHost {
    async fn desynced(&self) -> Result<bool, HostError> {
        const QUERY: &str = "SELECT @@GLOBAL.wsrep_desync";
        let output = self.root_sql(QUERY).await?;
        let desynced = parse_desynced(&output).ok_or_else(|| {
            HostError::new(
                format!("mariadb -e '{QUERY}'"),
                format!("unexpected answer {:?}", output.trim()),
            )
        })?;
        if desynced && self.marker.exists() {
            // ours, left by an agent process that died mid-backup: lift it
            tracing::warn!(
                "a backup of an earlier agent process left this node desynced: lifting it"
            );
            self.set_desync(false).await?;
            return Ok(false);
        }
        if !desynced {
            self.forget_marker();
        }
        Ok(desynced)
    }

    async fn set_desync(&self, on: bool) -> Result<(), HostError> {
        if on {
            std::fs::write(&self.marker, b"desynced by a backup\n").map_err(|e| {
                HostError::new(format!("writing {}", self.marker.display()), e.to_string())
            })?;
        }
        self.root_sql(desync_statement(on)).await?;
        if !on {
            self.forget_marker();
        }
        Ok(())
    }

    fn lift_desync_blocking(&self) -> Result<(), HostError> {
        let socket = format!("--socket={}", self.socket.display());
        let args = client_args(&socket, desync_statement(false));
        let line = format!("mariadb {}", args.join(" "));
        let output = crate::exec::blocking_command("mariadb")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| HostError::new(&line, format!("cannot run: {e}")))?;
        if output.status.success() {
            self.forget_marker();
            Ok(())
        } else {
            Err(HostError::new(
                &line,
                format!(
                    "{}: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            ))
        }
    }

    async fn temp_dir(&self) -> Result<PathBuf, HostError> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = self
            .temp_root
            .join(format!("triad-backup-{}-{stamp}", std::process::id()));
        let mut builder = tokio::fs::DirBuilder::new();
        builder.mode(0o700);
        builder
            .create(&path)
            .await
            .map_err(|e| HostError::new(format!("creating {}", path.display()), e.to_string()))?;
        Ok(path)
    }

    fn remove_temp_dir(&self, dir: &Path) -> Result<(), HostError> {
        std::fs::remove_dir_all(dir)
            .map_err(|e| HostError::new(format!("removing {}", dir.display()), e.to_string()))
    }

    fn spawn(&self, argv: &[String]) -> Result<Spawned, HostError> {
        let line = argv.join(" ");
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| HostError::new("backup", "no command"))?;
        let mut child = crate::exec::command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| HostError::new(&line, format!("cannot run: {e}")))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(HostError::new(&line, "no pipes to read"));
        };
        Ok(Spawned {
            stdout: Box::new(stdout),
            stderr: Box::new(stderr),
            process: Box::new(LocalChild { child, line }),
        })
    }
}

struct LocalChild {
    child: tokio::process::Child,
    line: String,
}

#[async_trait::async_trait]
impl Running for LocalChild {
    async fn wait(&mut self) -> Result<Exit, HostError> {
        self.child
            .wait()
            .await
            .map(Exit::from)
            .map_err(|e| HostError::new(&self.line, format!("waiting for it: {e}")))
    }

    async fn kill(&mut self) {
        if let Err(error) = self.child.kill().await {
            tracing::warn!(command = %self.line, "killing the backup command: {error}");
        }
    }
}

#[cfg(test)]
mod tests;
