//! Backups (issue 19, `[backup]`): the database and the volume's files, read from one core
//! node (`plan::pick_node`) through its agent's `BackupStream`, compressed, encrypted and
//! stored in parts at the target by `triad-backup`, with a manifest written last; then the
//! retention rule. On demand (`triadctl backup now`) and on the schedule; one at a time.
//!
//! The database is taken first, then the files, from the same node: a row the app wrote
//! before the backup began, naming a file it had written before, finds that file in the
//! backup; a file written while the backup runs may be there without its row (an orphan
//! file, harmless), never the reverse for writes acknowledged before the start.
//!
//! Sealing (hash, zstd, age, parts) runs on a blocking thread fed by a bounded channel, so
//! a slow target slows the agent's stream (gRPC flow control reaches the command on the
//! node) instead of filling the coordinator's memory.

pub mod config;
pub mod plan;
pub mod restore;
pub mod s3;
pub mod swift;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use triad_backup::key::BackupKey;
use triad_backup::manifest::{Encryption, GaleraPoint, Manifest, StreamEntry, StreamKind};
use triad_backup::target::{Target, Upload};
use triad_backup::{BackupId, DirTarget, SealOptions, Sealer};
use triad_proto::errors::ErrorKind;
use triad_proto::v1;
use triad_proto::v1::backup_chunk::Chunk;

use crate::observer::Coordinator;
use config::BackupConfig;

/// The body of the 503 clients get during a quiesced backup.
pub const QUIESCE_MESSAGE: &str = "A backup is being taken; back in a few minutes.";
/// HTTP/2 pings on the stream from the node: a node that crashed or was cut off ends the
/// backup (failed, nothing listed) within about twice this, not after TCP's many minutes.
pub const KEEPALIVE: Duration = Duration::from_secs(5);
/// No bytes from a node that still answers pings for this long: the stream is stuck.
pub const IDLE_LIMIT: Duration = Duration::from_secs(300);
/// Progress messages at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What the status shows.
#[derive(Debug, Clone, Default)]
pub struct BackupState {
    /// The newest complete backup at the target.
    pub last: Option<v1::BackupInfo>,
    /// The last attempt's failure (when, why), cleared by a success.
    pub failure: Option<(SystemTime, String)>,
    /// The step of the backup under way.
    pub running: Option<String>,
    /// The key or the target could not be opened: backups are off (why).
    pub off: Option<String>,
}

/// A failed backup or verification, for the caller and the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupError {
    pub kind: ErrorKind,
    pub message: String,
}

impl BackupError {
    fn refused(message: impl Into<String>) -> BackupError {
        BackupError {
            kind: ErrorKind::Refused,
            message: message.into(),
        }
    }
    fn failed(message: impl Into<String>) -> BackupError {
        BackupError {
            kind: ErrorKind::Failed,
            message: message.into(),
        }
    }
    pub fn status(&self) -> tonic::Status {
        self.kind.status(self.message.clone())
    }
}

pub type Progress = mpsc::Sender<Result<v1::BackupProgress, tonic::Status>>;

/// The backup service: one per coordinator with `[backup]`.
pub struct Backups {
    config: BackupConfig,
    cluster: String,
    coordinator: Arc<Coordinator>,
    events: Option<Arc<crate::events::EventLog>>,
    target: Arc<dyn Target>,
    key: Result<Arc<BackupKey>, String>,
    /// Held for the whole of a backup: one at a time.
    busy: tokio::sync::Mutex<()>,
    state: watch::Sender<BackupState>,
    started: SystemTime,
    /// The last scheduled attempt that failed (the loop's retry pause).
    last_failure: Mutex<Option<SystemTime>>,
    /// Maintenance mode around a quiesced backup; `None` where the coordinator has none.
    quiesce: Option<crate::quiesce::Quiesce>,
}

impl std::fmt::Debug for Backups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backups")
            .field("target", &self.target.describe())
            .finish_non_exhaustive()
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The summary of a manifest, as the wire and the status show it.
pub fn info(manifest: &Manifest) -> v1::BackupInfo {
    let plain: u64 = manifest.streams.iter().map(|s| s.plain_bytes).sum();
    let stored: u64 = manifest.streams.iter().map(|s| s.stored_bytes).sum();
    let parts: usize = manifest.streams.iter().map(|s| s.parts.len()).sum();
    v1::BackupInfo {
        id: manifest.id.to_string(),
        created_unix_ms: manifest.created_unix_ms,
        duration_ms: manifest
            .finished_unix_ms
            .saturating_sub(manifest.created_unix_ms),
        node: manifest.node.clone(),
        galera_uuid: manifest
            .galera
            .as_ref()
            .map_or_else(String::new, |g| g.uuid.clone()),
        galera_seqno: manifest.galera.as_ref().map_or(-1, |g| g.seqno),
        plain_bytes: plain,
        stored_bytes: stored,
        parts: parts as u32,
        triad_version: manifest.triad_version.clone(),
    }
}

/// A client for a backup's or a restore's long stream with `node`: no call deadline (a
/// stream takes as long as its bytes), HTTP/2 pings every [`KEEPALIVE`] instead.
async fn stream_client(
    node: &str,
    grpc: std::net::SocketAddr,
) -> Result<
    triad_proto::v1::agent_service_client::AgentServiceClient<tonic::transport::Channel>,
    crate::agent_client::AgentError,
> {
    crate::agent_client::connect_streaming(
        node,
        grpc,
        Duration::from_secs(5),
        Duration::from_secs(24 * 3600),
        KEEPALIVE,
    )
    .await
}

/// Sends a progress message; a caller that went away does not stop the backup.
async fn tell(progress: &Option<Progress>, message: v1::BackupProgress) {
    if let Some(progress) = progress {
        let _ = progress.send(Ok(message)).await;
    }
}

fn step(step: &str, bytes: u64, message: String) -> v1::BackupProgress {
    v1::BackupProgress {
        step: step.into(),
        bytes,
        total: 0,
        message,
        done: None,
    }
}

impl Backups {
    /// Opens the target and reads the key; either failing leaves backups off, with the
    /// reason in the status (the coordinator's other duties go on).
    pub fn open(
        config: BackupConfig,
        cluster: String,
        coordinator: Arc<Coordinator>,
        events: Option<Arc<crate::events::EventLog>>,
        quiesce: Option<crate::quiesce::Quiesce>,
    ) -> Arc<Backups> {
        let target = open_target(&config.target);
        let key = target.as_ref().map_err(Clone::clone).and_then(|_| {
            BackupKey::load(&config.key_file)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        });
        let mut state = BackupState::default();
        if let Err(why) = &key {
            tracing::error!("backups are off: {why}");
            state.off = Some(why.clone());
        }
        // an unusable target still describes itself; every use is refused through `key`
        let target: Arc<dyn Target> = match target {
            Ok(target) => target,
            Err(_) => Arc::new(Unusable(config.target.describe())),
        };
        let (state_tx, _) = watch::channel(state);
        Arc::new(Backups {
            config,
            cluster,
            coordinator,
            events,
            target,
            key,
            busy: tokio::sync::Mutex::new(()),
            state: state_tx,
            started: SystemTime::now(),
            last_failure: Mutex::new(None),
            quiesce,
        })
    }

    pub fn state(&self) -> watch::Receiver<BackupState> {
        self.state.subscribe()
    }

    pub fn config(&self) -> &BackupConfig {
        &self.config
    }

    pub fn describe_target(&self) -> String {
        self.target.describe()
    }

    pub fn started(&self) -> SystemTime {
        self.started
    }

    fn record(&self, subject: &str, text: String, who: Option<String>) {
        if let Some(events) = &self.events {
            events.record("backup", subject, text, who);
        }
    }

    /// The complete backups at the target, oldest first (a blocking read of the target); a
    /// backup whose manifest cannot be used is logged and left out.
    pub async fn list(&self) -> Result<Vec<Manifest>, BackupError> {
        if let Err(why) = &self.key {
            return Err(BackupError::refused(format!("backups are off: {why}")));
        }
        let target = self.target.clone();
        let listed = tokio::task::spawn_blocking(move || target.list())
            .await
            .map_err(|e| BackupError::failed(format!("listing backups: {e}")))?
            .map_err(|e| BackupError::failed(format!("listing backups: {e}")))?;
        let listed: Vec<Manifest> = listed
            .into_iter()
            .filter_map(|l| match l.manifest {
                Ok(manifest) => Some(manifest),
                Err(error) => {
                    tracing::warn!(
                        "backup {} at {} cannot be used: {error}",
                        l.id,
                        self.target.describe()
                    );
                    None
                }
            })
            .collect();
        if let Some(newest) = listed.last() {
            let newest = info(newest);
            self.state.send_modify(|s| s.last = Some(newest));
        }
        Ok(listed)
    }

    /// Takes a backup now, telling `progress` (if any) as it goes; `who` asked (None: the
    /// schedule). Refused while another runs, without a key, or when no node qualifies.
    pub async fn take(
        self: &Arc<Self>,
        who: Option<String>,
        progress: Option<Progress>,
        quiesce: bool,
    ) -> Result<v1::BackupInfo, BackupError> {
        let _busy = self.busy.try_lock().map_err(|_| {
            let running = self.state.borrow().running.clone().unwrap_or_default();
            BackupError::refused(format!("a backup is already running ({running})"))
        })?;
        let key = self
            .key
            .clone()
            .map_err(|why| BackupError::refused(format!("backups are off: {why}")))?;
        let started = SystemTime::now();
        let quiesced = match quiesce {
            true => Some(self.quiesce_begin(&progress).await?),
            false => None,
        };
        let result = self.take_inner(key, started, &progress).await;
        if let Some(Some(ours)) = &quiesced {
            self.quiesce_end(ours, &progress).await;
        }
        self.state.send_modify(|s| s.running = None);
        match &result {
            Ok(made) => {
                self.record(
                    "backup",
                    format!(
                        "backup {} made from {}: {} in {}",
                        made.id,
                        made.node,
                        triad_daemon::units::bytes(made.plain_bytes),
                        plan::words(Duration::from_millis(made.duration_ms))
                    ),
                    who,
                );
                self.state.send_modify(|s| {
                    s.failure = None;
                    s.last = Some(made.clone());
                });
                *self.last_failure.lock().unwrap() = None;
                self.apply_retention().await;
            }
            Err(error) => {
                self.record("backup", format!("backup failed: {}", error.message), who);
                tracing::warn!("backup failed: {}", error.message);
                self.state
                    .send_modify(|s| s.failure = Some((SystemTime::now(), error.message.clone())));
                *self.last_failure.lock().unwrap() = Some(SystemTime::now());
            }
        }
        result
    }

    /// Maintenance mode on for a quiesced backup: `Some(ours)` to turn off after it, `None`
    /// when an operator's was on already. Refused (nothing taken) when it cannot be.
    async fn quiesce_begin(
        &self,
        progress: &Option<Progress>,
    ) -> Result<Option<crate::maintenance::Maintenance>, BackupError> {
        let quiesce = self.quiesce.as_ref().ok_or_else(|| {
            BackupError::refused(
                "--quiesce needs maintenance mode, which this coordinator does not offer",
            )
        })?;
        self.state
            .send_modify(|s| s.running = Some("maintenance mode on".into()));
        let ours = quiesce
            .begin(QUIESCE_MESSAGE)
            .await
            .map_err(|why| BackupError::refused(format!("--quiesce: {why}")))?;
        let said = match &ours {
            Some(_) => {
                "maintenance mode on: clients get 503 until the backup ends, cluster jobs pause"
            }
            None => "maintenance mode was on already: it stays on after the backup",
        };
        tell(progress, step("quiesce", 0, said.into())).await;
        Ok(ours)
    }

    /// Maintenance mode off after a quiesced backup, whatever became of the backup. A
    /// failure is told, logged and put in the timeline: the backup's own outcome stands,
    /// and the status shows maintenance still on.
    async fn quiesce_end(
        &self,
        ours: &crate::maintenance::Maintenance,
        progress: &Option<Progress>,
    ) {
        let Some(quiesce) = &self.quiesce else {
            return;
        };
        let said = match quiesce.end(ours).await {
            Ok(()) => "maintenance mode off: clients reach the app again".to_string(),
            Err(why) => {
                let said = format!(
                    "turning maintenance mode off after the backup failed: {why} (`triadctl app maintenance off`)"
                );
                tracing::error!("{said}");
                self.record("maintenance", said.clone(), None);
                said
            }
        };
        tell(progress, step("quiesce", 0, said)).await;
    }

    async fn take_inner(
        &self,
        key: Arc<BackupKey>,
        started: SystemTime,
        progress: &Option<Progress>,
    ) -> Result<v1::BackupInfo, BackupError> {
        let (node, grpc) =
            plan::pick_node(&self.coordinator.view()).map_err(BackupError::refused)?;
        let id = BackupId::from_system_time(started)
            .map_err(|e| BackupError::failed(format!("naming the backup: {e}")))?;
        let target = self.target.clone();
        let upload = tokio::task::spawn_blocking(move || target.begin(id))
            .await
            .map_err(|e| BackupError::failed(format!("starting backup {id}: {e}")))?
            .map_err(|e| BackupError::failed(format!("starting backup {id}: {e}")))?;
        let mut upload = Some(upload);
        let mut streams = Vec::new();
        let mut galera = None;
        for (kind, stream) in [
            (v1::BackupKind::Database, StreamKind::Database),
            (v1::BackupKind::Files, StreamKind::Files),
        ] {
            let name = stream.name();
            let what = format!("{name} from {node}");
            self.state.send_modify(|s| s.running = Some(what.clone()));
            tell(progress, step(name, 0, format!("taking the {what}"))).await;
            let sealed = self
                .stream(
                    &node,
                    grpc,
                    kind,
                    stream,
                    upload
                        .take()
                        .expect("the upload is handed back after each stream"),
                    key.clone(),
                    progress,
                )
                .await;
            match sealed {
                Ok((back, entry, done)) => {
                    upload = Some(back);
                    if kind == v1::BackupKind::Database {
                        if done.galera_uuid.is_empty() {
                            return Err(BackupError::failed(format!(
                                "{node} sent the database without its Galera position"
                            )));
                        }
                        galera = Some(GaleraPoint {
                            uuid: done.galera_uuid.clone(),
                            seqno: done.galera_seqno,
                            gtid: (!done.gtid.is_empty()).then(|| done.gtid.clone()),
                        });
                    }
                    streams.push(entry);
                }
                Err((back, error)) => {
                    if let Some(upload) = back {
                        let _ = tokio::task::spawn_blocking(move || upload.abort()).await;
                    }
                    return Err(error);
                }
            }
        }
        let manifest = Manifest {
            format: triad_backup::manifest::FORMAT_VERSION,
            id,
            cluster: self.cluster.clone(),
            created_unix_ms: unix_ms(started),
            finished_unix_ms: unix_ms(SystemTime::now()),
            triad_version: env!("CARGO_PKG_VERSION").to_string(),
            node: node.clone(),
            galera,
            encryption: Encryption::age_x25519(key.recipient()),
            compression: triad_backup::manifest::COMPRESSION.to_string(),
            streams,
        };
        let made = info(&manifest);
        let upload = upload.expect("the upload is back after the last stream");
        tokio::task::spawn_blocking(move || upload.commit(&manifest))
            .await
            .map_err(|e| BackupError::failed(format!("committing backup {id}: {e}")))?
            .map_err(|e| BackupError::failed(format!("committing backup {id}: {e}")))?;
        tell(
            progress,
            v1::BackupProgress {
                step: "done".into(),
                bytes: made.plain_bytes,
                total: made.plain_bytes,
                message: format!("backup {} complete", made.id),
                done: Some(made.clone()),
            },
        )
        .await;
        Ok(made)
    }

    /// One part from the node into the upload: the node's chunks go through a bounded
    /// channel to the sealer on a blocking thread. The upload comes back (to take the next
    /// part, or to be aborted) with the stream's entry and the node's end mark.
    #[allow(clippy::too_many_arguments)]
    async fn stream(
        &self,
        node: &str,
        grpc: std::net::SocketAddr,
        kind: v1::BackupKind,
        stream: StreamKind,
        upload: Box<dyn Upload>,
        key: Arc<BackupKey>,
        progress: &Option<Progress>,
    ) -> Result<
        (Box<dyn Upload>, StreamEntry, v1::BackupDone),
        (Option<Box<dyn Upload>>, BackupError),
    > {
        let name = stream.name();
        let options = SealOptions {
            part_size: usize::try_from(self.config.part_size).unwrap_or(usize::MAX),
            ..SealOptions::default()
        };
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(8);
        let sealer = tokio::task::spawn_blocking(move || {
            let mut upload = upload;
            let sealed = seal(&mut rx, stream, &key, options, upload.as_mut());
            (upload, sealed)
        });
        let pumped = self.pump(node, grpc, kind, name, tx, progress).await;
        let (upload, sealed) = match sealer.await {
            Ok(result) => result,
            Err(e) => {
                return Err((
                    None,
                    BackupError::failed(format!("sealing the {name}: {e}")),
                ))
            }
        };
        // the node's error first (a sealer that ended because the stream broke says less),
        // unless the stream broke because the sealer had stopped
        let done = match (pumped, &sealed) {
            (Ok(done), _) => done,
            (Err(Pumped::SealerGone), Err(why)) => {
                return Err((
                    Some(upload),
                    BackupError::failed(format!("storing the {name} from {node}: {why}")),
                ))
            }
            (Err(Pumped::SealerGone), Ok(_)) => {
                return Err((
                    Some(upload),
                    BackupError::failed(format!("storing the {name} from {node} stopped")),
                ))
            }
            (Err(Pumped::Failed(error)), _) => return Err((Some(upload), error)),
        };
        match sealed {
            Ok(entry) if entry.plain_bytes == done.bytes => Ok((upload, entry, done)),
            Ok(entry) => Err((
                Some(upload),
                BackupError::failed(format!(
                    "the {name} from {node}: {} bytes sent, {} stored",
                    done.bytes, entry.plain_bytes
                )),
            )),
            Err(why) => Err((
                Some(upload),
                BackupError::failed(format!("storing the {name} from {node}: {why}")),
            )),
        }
    }

    /// Reads the node's stream into `tx` until its end mark.
    async fn pump(
        &self,
        node: &str,
        grpc: std::net::SocketAddr,
        kind: v1::BackupKind,
        name: &str,
        tx: mpsc::Sender<Vec<u8>>,
        progress: &Option<Progress>,
    ) -> Result<v1::BackupDone, Pumped> {
        let broke = |why: String| {
            Pumped::Failed(BackupError::failed(format!(
                "the {name} from {node}: {why}"
            )))
        };
        let mut client = stream_client(node, grpc)
            .await
            .map_err(|e| broke(e.message))?;
        let mut stream = client
            .backup_stream(v1::BackupStreamRequest { kind: kind as i32 })
            .await
            .map_err(|status| {
                Pumped::Failed(BackupError {
                    kind: ErrorKind::of(status.code()),
                    message: format!("the {name} from {node}: {}", status.message()),
                })
            })?
            .into_inner();
        let mut bytes = 0u64;
        let mut told = Instant::now();
        loop {
            let next = tokio::time::timeout(IDLE_LIMIT, stream.message())
                .await
                .map_err(|_| broke(format!("nothing for {}s", IDLE_LIMIT.as_secs())))?
                .map_err(|status| broke(status.message().to_string()))?;
            match next.and_then(|chunk| chunk.chunk) {
                Some(Chunk::Data(data)) => {
                    bytes += data.len() as u64;
                    if tx.send(data).await.is_err() {
                        // the sealer stopped: its error is the one to report
                        return Err(Pumped::SealerGone);
                    }
                    if told.elapsed() >= PROGRESS_EVERY {
                        told = Instant::now();
                        tell(progress, step(name, bytes, format!("{name} from {node}"))).await;
                    }
                }
                Some(Chunk::Done(done)) => {
                    if done.bytes != bytes {
                        return Err(broke(format!(
                            "the node counted {} bytes, {bytes} arrived",
                            done.bytes
                        )));
                    }
                    tell(
                        progress,
                        step(name, bytes, format!("{name} from {node} read")),
                    )
                    .await;
                    return Ok(done);
                }
                None => return Err(broke("the stream ended without its end mark".into())),
            }
        }
    }

    /// Deletes what the retention rule no longer keeps (after a success only: a failing
    /// cluster never loses its old backups to its new failures).
    async fn apply_retention(&self) {
        let listed = match self.list().await {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!("retention: {}", error.message);
                return;
            }
        };
        let ids: Vec<BackupId> = listed.iter().map(|m| m.id).collect();
        let doomed = triad_backup::retention::plan(&ids, SystemTime::now(), &self.config.retention);
        for id in doomed {
            let target = self.target.clone();
            match tokio::task::spawn_blocking(move || target.delete(id)).await {
                Ok(Ok(())) => self.record(
                    "retention",
                    format!("backup {id} deleted by the retention rule"),
                    None,
                ),
                Ok(Err(e)) => tracing::warn!("retention: deleting backup {id}: {e}"),
                Err(e) => tracing::warn!("retention: deleting backup {id}: {e}"),
            }
        }
    }

    /// Reads every part of backup `id` back and checks it against its manifest, without
    /// touching the cluster.
    pub async fn verify(
        &self,
        id: &str,
        who: Option<String>,
        progress: Option<Progress>,
    ) -> Result<v1::BackupInfo, BackupError> {
        let (key, id) = self.key_and_id(id)?;
        let manifest = self.check_parts(id, key, &progress).await?;
        let checked = info(&manifest);
        self.record(
            "verify",
            format!(
                "backup {id} verified: {}",
                triad_daemon::units::bytes(checked.plain_bytes)
            ),
            who,
        );
        tell(
            &progress,
            v1::BackupProgress {
                step: "done".into(),
                bytes: checked.plain_bytes,
                total: checked.plain_bytes,
                message: format!("backup {id} verified"),
                done: Some(checked.clone()),
            },
        )
        .await;
        Ok(checked)
    }

    /// The key (refused while backups are off) and the backup id an operator named.
    fn key_and_id(&self, id: &str) -> Result<(Arc<BackupKey>, BackupId), BackupError> {
        let key = self
            .key
            .clone()
            .map_err(|why| BackupError::refused(format!("backups are off: {why}")))?;
        let id = BackupId::parse(id).map_err(|e| BackupError {
            kind: ErrorKind::Invalid,
            message: e.to_string(),
        })?;
        Ok((key, id))
    }

    /// Reads every part of backup `id` and checks it against its manifest (what `verify`
    /// and a restore's first step do), telling the bytes read.
    async fn check_parts(
        &self,
        id: BackupId,
        key: Arc<BackupKey>,
        progress: &Option<Progress>,
    ) -> Result<Manifest, BackupError> {
        let target = self.target.clone();
        let cluster = self.cluster.clone();
        let (tx, mut rx) = mpsc::channel::<u64>(16);
        let verifying = tokio::task::spawn_blocking(move || {
            let mut told = Instant::now();
            triad_backup::open::verify_with_progress(
                target.as_ref(),
                id,
                &key,
                &cluster,
                &mut |bytes| {
                    if told.elapsed() >= PROGRESS_EVERY {
                        told = Instant::now();
                        let _ = tx.blocking_send(bytes);
                    }
                },
            )
        });
        while let Some(bytes) = rx.recv().await {
            tell(
                progress,
                step("verify", bytes, format!("reading backup {id}")),
            )
            .await;
        }
        let manifest = verifying
            .await
            .map_err(|e| BackupError::failed(format!("verifying backup {id}: {e}")))?
            .map_err(|e| BackupError::failed(e.to_string()))?;
        Ok(manifest)
    }

    /// The schedule's loop: a backup whenever one is due (see `plan::due`), checked every
    /// 30 s. Returns when `stop` turns true.
    pub async fn run_schedule(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        // a partial left by a crash of the previous coordinator is never listed; remove it
        // under the one-at-a-time lock: an operator's first backup never races the sweep
        let busy = self.busy.lock().await;
        self.state
            .send_modify(|s| s.running = Some("removing unfinished backups".into()));
        let target = self.target.clone();
        let swept = tokio::task::spawn_blocking(move || target.sweep_partial()).await;
        self.state.send_modify(|s| s.running = None);
        drop(busy);
        match swept {
            Ok(Ok(removed)) if !removed.is_empty() => {
                tracing::warn!("backups: removed what unfinished backups left: {removed:?}")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("backups: removing unfinished backups: {e}"),
            Err(e) => tracing::warn!("backups: removing unfinished backups: {e}"),
        }
        let _ = self.list().await;
        let Some(schedule) = self.config.schedule.clone() else {
            return;
        };
        loop {
            let newest = self
                .state
                .borrow()
                .last
                .as_ref()
                .map(|l| UNIX_EPOCH + Duration::from_millis(l.created_unix_ms));
            let last_failure = *self.last_failure.lock().unwrap();
            if self.key.is_ok()
                && plan::due(
                    &schedule,
                    newest,
                    last_failure,
                    self.started,
                    SystemTime::now(),
                )
            {
                let _ = self.take(None, None, self.config.quiesce).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// What `/metrics` shows.
    pub fn sample(&self) -> crate::metrics::BackupSample {
        let (_, section) = self.status();
        crate::metrics::BackupSample {
            last: section.last.as_ref().map(|l| {
                (
                    l.created_unix_ms as f64 / 1000.0,
                    l.plain_bytes,
                    l.stored_bytes,
                    l.duration_ms as f64 / 1000.0,
                )
            }),
            warning: !section.warning.is_empty(),
            running: !section.running.is_empty(),
        }
    }

    /// The status line and section.
    pub fn status(&self) -> (String, v1::BackupSection) {
        let state = self.state.borrow().clone();
        let now = SystemTime::now();
        let newest = state
            .last
            .as_ref()
            .map(|l| UNIX_EPOCH + Duration::from_millis(l.created_unix_ms));
        let mut warning = state
            .off
            .clone()
            .map(|why| format!("backups are off: {why}"))
            .or_else(|| {
                state.failure.as_ref().map(|(when, why)| {
                    format!(
                        "the last attempt failed {} ago: {why}",
                        plan::words(now.duration_since(*when).unwrap_or_default())
                    )
                })
            })
            .unwrap_or_default();
        if let Some(stale) =
            plan::staleness(self.config.schedule.as_ref(), newest, self.started, now)
        {
            if !warning.is_empty() {
                warning.push_str("; ");
            }
            warning.push_str(&stale);
        }
        let next_unix = self.config.schedule.as_ref().map(|s| {
            plan::next_time(s, newest, self.started)
                .max(now)
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
        let mut line = match &state.last {
            Some(last) => format!(
                "last {} from {}, {} ago, {} (stored {}) in {}",
                last.id,
                last.node,
                plan::words(
                    now.duration_since(UNIX_EPOCH + Duration::from_millis(last.created_unix_ms))
                        .unwrap_or_default()
                ),
                triad_daemon::units::bytes(last.plain_bytes),
                triad_daemon::units::bytes(last.stored_bytes),
                plan::words(Duration::from_millis(last.duration_ms)),
            ),
            None => "no backup yet".to_string(),
        };
        match &self.config.schedule {
            Some(schedule) => line.push_str(&format!("; schedule {schedule}")),
            None => line.push_str("; on demand only (triadctl backup now)"),
        }
        if let Some(running) = &state.running {
            line.push_str(&format!("; RUNNING: {running}"));
        }
        if !warning.is_empty() {
            line.push_str(&format!("; WARNING: {warning}"));
        }
        (
            line,
            v1::BackupSection {
                target: self.target.describe(),
                schedule: self
                    .config
                    .schedule
                    .as_ref()
                    .map_or_else(String::new, |s| s.to_string()),
                last: state.last,
                warning,
                running: state.running.unwrap_or_default(),
                next_unix,
            },
        )
    }
}

/// Why a node's stream stopped being read.
enum Pumped {
    /// The node, the network or the call failed.
    Failed(BackupError),
    /// The sealing side stopped taking bytes (its own error says why).
    SealerGone,
}

/// Seals what arrives on `rx` as `stream` into `upload` (the blocking side).
fn seal(
    rx: &mut mpsc::Receiver<Vec<u8>>,
    stream: StreamKind,
    key: &BackupKey,
    options: SealOptions,
    upload: &mut dyn Upload,
) -> Result<StreamEntry, String> {
    let mut sealer =
        Sealer::new(upload, stream, key.recipient(), options).map_err(|e| e.to_string())?;
    while let Some(data) = rx.blocking_recv() {
        sealer.write_chunk(&data).map_err(|e| e.to_string())?;
    }
    sealer.finish().map_err(|e| e.to_string())
}

/// The configured target: a directory (made when missing), a Swift container of a cloud
/// from clouds.yaml, or an S3 bucket (credentials checked when the first backup runs).
pub fn open_target(config: &config::TargetConfig) -> Result<Arc<dyn Target>, String> {
    match config {
        config::TargetConfig::Dir(dir) => DirTarget::new(dir.clone())
            .map(|t| Arc::new(t) as Arc<dyn Target>)
            .map_err(|e| e.to_string()),
        config::TargetConfig::Swift { cloud, container } => {
            let sources = crate::openstack::config::CloudSources::from_process();
            let cloud = crate::openstack::config::load_cloud(&sources, cloud.as_deref())
                .map_err(|e| format!("[backup.swift]: {e}"))?;
            // a part of 64 MiB over a slow link: minutes, not the API calls' 30 s
            let session = crate::openstack::session::Session::new(cloud, Duration::from_secs(600))
                .map_err(|e| format!("[backup.swift]: {e}"))?;
            let runtime = tokio::runtime::Handle::try_current()
                .map_err(|e| format!("[backup.swift]: no async runtime: {e}"))?;
            Ok(Arc::new(
                swift::SwiftStore::new(Arc::new(session), container.clone(), runtime).target(),
            ))
        }
        config::TargetConfig::S3(s3) => {
            let runtime = tokio::runtime::Handle::try_current()
                .map_err(|e| format!("[backup.s3]: no async runtime: {e}"))?;
            Ok(Arc::new(s3::S3Store::open(s3, runtime)?.target()))
        }
    }
}

/// The target when it cannot be opened: says where, refuses everything (backups are
/// off, with the reason in the status).
struct Unusable(String);

impl Target for Unusable {
    fn describe(&self) -> String {
        format!("{} (unusable)", self.0)
    }
    fn begin(&self, _: BackupId) -> Result<Box<dyn Upload>, triad_backup::Error> {
        Err(self.refuse())
    }
    fn list(&self) -> Result<Vec<triad_backup::target::Listed>, triad_backup::Error> {
        Err(self.refuse())
    }
    fn manifest(&self, _: BackupId) -> Result<Manifest, triad_backup::Error> {
        Err(self.refuse())
    }
    fn open_part(
        &self,
        _: BackupId,
        _: &str,
    ) -> Result<Box<dyn std::io::Read + Send>, triad_backup::Error> {
        Err(self.refuse())
    }
    fn delete(&self, _: BackupId) -> Result<(), triad_backup::Error> {
        Err(self.refuse())
    }
    fn sweep_partial(&self) -> Result<Vec<String>, triad_backup::Error> {
        Ok(Vec::new())
    }
}

impl Unusable {
    fn refuse(&self) -> triad_backup::Error {
        triad_backup::Error::Remote {
            target: self.0.clone(),
            what: "opening".into(),
            message: "the target could not be opened (the status says why)".into(),
        }
    }
}
