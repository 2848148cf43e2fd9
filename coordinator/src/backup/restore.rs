//! `triadctl backup restore ID [--force]` (issue 19): a backup back onto this cluster.
//!
//! 1. Survey every core node (`RestorePrepare`, check only): all must be live; a node
//!    holding tables outside the system schemas, or a docroot holding entries, refuses the
//!    restore unless `--force`.
//! 2. Verify: every part read back and checked (key, cluster, lengths, hashes), before
//!    anything in the cluster is touched.
//! 3. Hold the recovery loop (no election, bootstrap or join but the restore's own), then
//!    `RestorePrepare` on every core node: mysqld stopped and held, the datadir kept aside as
//!    `<datadir>.before-restore-<id>`; the chosen node (the lowest id) gets an empty datadir,
//!    the others a new system datadir (they join by a state transfer).
//! 4. The database streamed to the chosen node (`RestoreDatabase`): extracted, prepared,
//!    moved back, grastate.dat at the backup's position.
//! 5. The recovery loop bootstraps the chosen node (an operator's bootstrap, checked: it is
//!    the only node with a position) and, released, joins the others one at a time.
//! 6. Meanwhile the files are streamed into the volume (`RestoreFiles`) through the chosen
//!    node's mount; once every core node is Synced in the Primary component of the
//!    backup's history, the app's account gets this cluster's password (the restored
//!    database holds the backed-up cluster's).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use triad_backup::key::BackupKey;
use triad_backup::manifest::{Manifest, StreamKind};
use triad_galera::account::AppAccount;
use triad_proto::errors::ErrorKind;
use triad_proto::gossip::Role;
use triad_proto::v1;
use v1::restore_chunk::Chunk;

use super::{info, tell, BackupError, Backups, Progress, PROGRESS_EVERY};
use crate::recovery::RecoveryHandle;
use crate::view::ClusterView;

/// Chunks of plaintext sent to a node.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// How long the cluster may take to be Synced everywhere after the bootstrap (state
/// transfers of the whole database to each other node, one at a time).
pub const SYNCED_WITHIN: Duration = Duration::from_secs(3600);
/// How long the chosen node may take to report the Primary component after the bootstrap.
/// The view shows every core node stopped within this long after they answered.
pub const STOPPED_WITHIN: Duration = Duration::from_secs(60);
pub const PRIMARY_WITHIN: Duration = Duration::from_secs(300);

/// The core nodes a restore works on: `chosen` receives the database; all, the hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreNodes {
    pub chosen: (String, SocketAddr),
    pub others: Vec<(String, SocketAddr)>,
}

impl RestoreNodes {
    pub fn all(&self) -> impl Iterator<Item = &(String, SocketAddr)> {
        std::iter::once(&self.chosen).chain(self.others.iter())
    }
}

/// Pure: the core nodes of `view`, every one live (a node that is away would come back
/// with the history the restore replaces), the lowest id chosen.
pub fn restore_nodes(view: &ClusterView) -> Result<RestoreNodes, String> {
    let mut core: Vec<_> = view
        .members()
        .filter(|m| m.keys.role == Role::Core)
        .collect();
    core.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    if core.is_empty() {
        return Err("no core node is in the cluster's view".into());
    }
    let mut nodes = Vec::new();
    for member in core {
        if !member.live {
            return Err(format!(
                "{} is not live: a restore needs every core node (one that is away would come back with the data the restore replaces)",
                member.node_id
            ));
        }
        let grpc = member
            .keys
            .grpc
            .ok_or_else(|| format!("{} publishes no gRPC address", member.node_id))?;
        nodes.push((member.node_id.clone(), grpc));
    }
    let chosen = nodes.remove(0);
    Ok(RestoreNodes {
        chosen,
        others: nodes,
    })
}

/// Pure: why the cluster may not be restored onto, given each node's survey (`None`: it
/// may). The volume must be mounted on the chosen node whatever `force` says; data already
/// there needs `force`.
pub fn refusal(
    surveys: &[(String, v1::RestorePrepareReply)],
    chosen: &str,
    id: &str,
    force: bool,
) -> Option<String> {
    if surveys.iter().any(|(n, s)| n == chosen && s.files < 0) {
        return Some(format!(
            "the volume is not mounted on {chosen}, which would receive the files"
        ));
    }
    let mut held = Vec::new();
    for (node, survey) in surveys {
        match survey.tables {
            t if t < 0 => held.push(format!(
                "{node}'s mysqld does not answer (what it holds is unknown)"
            )),
            0 => {}
            t => held.push(format!(
                "{node} holds {t} tables ({}{})",
                survey.table_names.join(", "),
                if t as usize > survey.table_names.len() {
                    ", ..."
                } else {
                    ""
                }
            )),
        }
    }
    // one volume: what the chosen node's mount shows
    if let Some((_, survey)) = surveys.iter().find(|(n, _)| n == chosen) {
        if survey.files > 0 {
            held.push(format!("the volume holds {} entries", survey.files));
        }
    }
    if held.is_empty() || force {
        return None;
    }
    Some(format!(
        "the cluster is not empty: {}. Restoring onto it needs --force: each node's datadir is then kept aside as <datadir>.before-restore-{id}, the files in .triad-before-restore-{id}/ on the volume",
        held.join("; ")
    ))
}

/// Pure: every core node of `view` Synced in a Primary component of history `uuid`, or
/// the first that is not, with what it is.
pub fn not_synced(view: &ClusterView, nodes: &RestoreNodes, uuid: &str) -> Option<String> {
    for (id, _) in nodes.all() {
        let Some(member) = view.members().find(|m| &m.node_id == id) else {
            return Some(format!("{id} is not in the view"));
        };
        let galera = &member.keys.galera;
        let same = galera
            .uuid
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case(uuid));
        if !(member.live && galera.synced_in_primary() && same) {
            return Some(format!("{id} is {}", galera.state.as_str()));
        }
    }
    None
}

/// Pure: a node the view still shows in a Primary component, once every core node is
/// stopped and held (gossip brings the stop a second or so after the agent's answer, and
/// the bootstrap's check refuses while any core node is seen in a component).
pub fn still_in_component(view: &ClusterView, nodes: &RestoreNodes) -> Option<String> {
    nodes.all().find_map(|(id, _)| {
        let member = view.members().find(|m| &m.node_id == id)?;
        let galera = &member.keys.galera;
        (member.live && galera.cluster_status.as_deref() == Some("Primary")).then(|| {
            format!(
                "{id} is still seen in a Primary component ({})",
                galera.state.as_str()
            )
        })
    })
}

/// Plaintext from the backup's parts into chunks for a node: the blocking reader's `Write`.
struct ChunkWriter {
    tx: mpsc::Sender<v1::RestoreChunk>,
    buffer: Vec<u8>,
    written: watch::Sender<u64>,
    total: u64,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES));
        self.total += data.len() as u64;
        self.tx
            .blocking_send(v1::RestoreChunk {
                chunk: Some(Chunk::Data(data)),
            })
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the node's stream ended")
            })?;
        self.written.send_replace(self.total);
        Ok(())
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK_BYTES - self.buffer.len();
        let n = buf.len().min(room);
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

fn told(step: &str, bytes: u64, total: u64, message: String) -> v1::BackupProgress {
    v1::BackupProgress {
        step: step.into(),
        bytes,
        total,
        message,
        done: None,
    }
}

impl Backups {
    /// Restores backup `id` onto this cluster (see the module's steps). `app`: the app's
    /// account as this cluster has it, to set its password once the database is back.
    pub async fn restore(
        self: &Arc<Self>,
        id: &str,
        force: bool,
        recovery: &RecoveryHandle,
        app: Option<AppAccount>,
        who: Option<String>,
        progress: Option<Progress>,
    ) -> Result<v1::BackupInfo, BackupError> {
        let _busy = self.busy.try_lock().map_err(|_| {
            let running = self.state.borrow().running.clone().unwrap_or_default();
            BackupError::refused(format!("a backup is running ({running})"))
        })?;
        let started = Instant::now();
        let result = self
            .restore_inner(id, force, recovery, app, &progress)
            .await;
        self.state.send_modify(|s| s.running = None);
        match &result {
            Ok(restored) => self.record(
                "restore",
                format!(
                    "backup {} restored (Galera seqno {}) in {}",
                    restored.id,
                    restored.galera_seqno,
                    super::plan::words(started.elapsed())
                ),
                who,
            ),
            Err(error) => {
                tracing::warn!("restore of backup {id} failed: {}", error.message);
                self.record(
                    "restore",
                    format!("restore of backup {id} failed: {}", error.message),
                    who,
                );
            }
        }
        result
    }

    async fn restore_inner(
        self: &Arc<Self>,
        id: &str,
        force: bool,
        recovery: &RecoveryHandle,
        app: Option<AppAccount>,
        progress: &Option<Progress>,
    ) -> Result<v1::BackupInfo, BackupError> {
        let (key, backup_id) = self.key_and_id(id)?;
        // 1. the nodes, and what they hold (nothing changes: a cluster that is not empty is
        // refused before the backup is read)
        let nodes = restore_nodes(&self.coordinator.view()).map_err(BackupError::refused)?;
        let mut surveys = Vec::new();
        for (node, grpc) in nodes.all() {
            let survey = prepare(node, *grpc, id, true, false).await?;
            surveys.push((node.clone(), survey));
        }
        if let Some(why) = refusal(&surveys, &nodes.chosen.0, id, force) {
            return Err(BackupError::refused(why));
        }

        // 2. every part, before anything in the cluster is touched
        self.state
            .send_modify(|s| s.running = Some(format!("restore {id}: verifying")));
        let manifest = self.check_parts(backup_id, key.clone(), progress).await?;
        let restored = info(&manifest);
        let galera = manifest
            .galera
            .clone()
            .ok_or_else(|| BackupError::refused(format!("backup {id} holds no Galera position")))?;

        // 3. hold recovery; stop, keep aside, empty
        let hold = recovery
            .hold(&format!("restoring backup {id}"))
            .map_err(BackupError::refused)?;
        self.state
            .send_modify(|s| s.running = Some(format!("restore {id}: stopping the database")));
        for (node, grpc) in nodes.others.iter().chain(std::iter::once(&nodes.chosen)) {
            let fresh = *node != nodes.chosen.0;
            tell(
                progress,
                progress_step(
                    "prepare",
                    format!("stopping the database on {node}, keeping its datadir aside"),
                ),
            )
            .await;
            let done = prepare(node, *grpc, id, false, fresh)
                .await
                .map_err(|e| after_hold(e, id))?;
            tell(
                progress,
                progress_step("prepare", format!("{node}: {}", done.message)),
            )
            .await;
        }

        // every node seen stopped before the bootstrap's check reads the view
        self.wait_for(STOPPED_WITHIN, "prepare", progress, |view| {
            still_in_component(view, &nodes)
        })
        .await
        .map_err(|e| after_hold(e, id))?;

        // 4. the database onto the chosen node
        let (chosen, chosen_grpc) = nodes.chosen.clone();
        self.state
            .send_modify(|s| s.running = Some(format!("restore {id}: the database onto {chosen}")));
        let header = v1::RestoreHeader {
            backup_id: id.to_string(),
            galera_uuid: galera.uuid.clone(),
            galera_seqno: galera.seqno,
            plain_bytes: plain_bytes(&manifest, StreamKind::Database),
            force,
        };
        self.send_stream(
            &manifest,
            StreamKind::Database,
            &key,
            header.clone(),
            &chosen,
            chosen_grpc,
            progress,
        )
        .await
        .map_err(|e| after_hold(e, id))?;

        // 5. bootstrap it; the others join once the loop is released
        tell(
            progress,
            progress_step(
                "bootstrap",
                format!("bootstrapping {chosen} at {}:{}", galera.uuid, galera.seqno),
            ),
        )
        .await;
        let (epoch, line) = recovery.recover_held(chosen.clone()).await.map_err(|why| {
            after_hold(
                BackupError::failed(format!("bootstrapping {chosen}: {why}")),
                id,
            )
        })?;
        tracing::warn!(epoch, "restore: bootstrap of {chosen} decided: {line}");
        self.wait_for(PRIMARY_WITHIN, "bootstrap", progress, |view| {
            let member = view.members().find(|m| m.node_id == chosen)?;
            let g = &member.keys.galera;
            let ours = g
                .uuid
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(&galera.uuid));
            if g.synced_in_primary() && ours {
                None
            } else {
                Some(format!("{chosen} is {}", g.state.as_str()))
            }
        })
        .await
        .map_err(|e| after_hold(e, id))?;
        drop(hold);
        // 6. the files go onto the volume while the others join (their state transfers
        // come from the chosen node's database, the files through its mount)
        self.state.send_modify(|s| {
            s.running = Some(format!(
                "restore {id}: the files onto {chosen}, the other nodes joining"
            ))
        });
        let files_header = v1::RestoreHeader {
            plain_bytes: plain_bytes(&manifest, StreamKind::Files),
            ..header
        };
        let (files, joined) = tokio::join!(
            self.send_stream(
                &manifest,
                StreamKind::Files,
                &key,
                files_header,
                &chosen,
                chosen_grpc,
                progress,
            ),
            self.wait_for(SYNCED_WITHIN, "join", progress, |view| {
                not_synced(view, &nodes, &galera.uuid)
            })
        );
        files?;
        joined?;
        if let Some(account) = app {
            reset_app_password(&chosen, chosen_grpc, &account).await?;
            tell(
                progress,
                progress_step(
                    "app",
                    format!(
                        "the app's account '{}' has this cluster's password",
                        account.user
                    ),
                ),
            )
            .await;
        }
        tell(
            progress,
            v1::BackupProgress {
                step: "done".into(),
                bytes: restored.plain_bytes,
                total: restored.plain_bytes,
                message: format!("backup {id} restored"),
                done: Some(restored.clone()),
            },
        )
        .await;
        Ok(restored)
    }

    /// One stream of the backup to `node`: read on a blocking thread, sent as chunks.
    #[allow(clippy::too_many_arguments)]
    async fn send_stream(
        &self,
        manifest: &Manifest,
        stream: StreamKind,
        key: &Arc<BackupKey>,
        header: v1::RestoreHeader,
        node: &str,
        grpc: SocketAddr,
        progress: &Option<Progress>,
    ) -> Result<(), BackupError> {
        let name = stream.name();
        let total = header.plain_bytes;
        let (tx, rx) = mpsc::channel::<v1::RestoreChunk>(8);
        let (written, mut seen) = watch::channel(0u64);
        tx.send(v1::RestoreChunk {
            chunk: Some(Chunk::Header(header)),
        })
        .await
        .map_err(|_| BackupError::failed("the restore's channel closed"))?;
        let target = self.target.clone();
        let manifest_copy = manifest.clone();
        let key = key.clone();
        let reader = tokio::task::spawn_blocking(move || {
            let mut out = ChunkWriter {
                tx,
                buffer: Vec::with_capacity(CHUNK_BYTES),
                written,
                total: 0,
            };
            triad_backup::open::read_stream(
                target.as_ref(),
                &manifest_copy,
                stream,
                &key,
                &mut out,
                &mut |_| {},
            )
            .map_err(|e| e.to_string())?;
            std::io::Write::flush(&mut out).map_err(|e| format!("sending to the node: {e}"))
        });
        let mut client = super::stream_client(node, grpc)
            .await
            .map_err(|e| BackupError::failed(format!("the {name} onto {node}: {}", e.message)))?;
        let chunks = tokio_stream::wrappers::ReceiverStream::new(rx);
        let call = async {
            match stream {
                StreamKind::Database => client.restore_database(chunks).await,
                StreamKind::Files => client.restore_files(chunks).await,
            }
        };
        tokio::pin!(call);
        let answer = loop {
            tokio::select! {
                answer = &mut call => break answer,
                _ = tokio::time::sleep(PROGRESS_EVERY) => {
                    let bytes = *seen.borrow_and_update();
                    tell(progress, told(name, bytes, total, format!("{name} onto {node}"))).await;
                }
            }
        };
        let read = reader
            .await
            .map_err(|e| BackupError::failed(format!("reading the {name}: {e}")))?;
        // the node's refusal or failure first (the reader then only saw its stream end);
        // a node that saw its stream end early says less than the reader's error
        let reply = match (answer, read) {
            (Err(status), _) => {
                return Err(BackupError {
                    kind: ErrorKind::of(status.code()),
                    message: format!("the {name} onto {node}: {}", status.message()),
                })
            }
            (Ok(_), Err(error)) => {
                return Err(BackupError::failed(format!(
                    "reading the {name} of the backup: {error}"
                )))
            }
            (Ok(reply), Ok(())) => reply,
        };
        tell(
            progress,
            told(
                name,
                total,
                total,
                format!("{node}: {}", reply.into_inner().message),
            ),
        )
        .await;
        Ok(())
    }

    /// Waits (bounded) until `pending` says nothing, telling what it says meanwhile.
    async fn wait_for(
        &self,
        within: Duration,
        step: &str,
        progress: &Option<Progress>,
        pending: impl Fn(&ClusterView) -> Option<String>,
    ) -> Result<(), BackupError> {
        let started = Instant::now();
        let mut last = String::new();
        loop {
            let Some(why) = pending(&self.coordinator.view()) else {
                return Ok(());
            };
            if started.elapsed() > within {
                return Err(BackupError::failed(format!(
                    "{step}: not done within {}: {why}",
                    super::plan::words(within)
                )));
            }
            if why != last {
                tell(progress, progress_step(step, why.clone())).await;
                last = why;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

fn progress_step(step: &str, message: String) -> v1::BackupProgress {
    told(step, 0, 0, message)
}

fn plain_bytes(manifest: &Manifest, stream: StreamKind) -> u64 {
    manifest.stream(stream).map_or(0, |s| s.plain_bytes)
}

/// A failure once nodes are held: say where things stand.
fn after_hold(error: BackupError, id: &str) -> BackupError {
    BackupError {
        kind: error.kind,
        message: format!(
            "{}; the nodes' datadirs from before the restore are kept as <datadir>.before-restore-{id}; run the restore again with --force",
            error.message
        ),
    }
}

/// `RestorePrepare` on one node.
async fn prepare(
    node: &str,
    grpc: SocketAddr,
    id: &str,
    check_only: bool,
    fresh: bool,
) -> Result<v1::RestorePrepareReply, BackupError> {
    // a clean stop may take its 120 s, a new system datadir some more
    let mut client =
        crate::agent_client::connect(node, grpc, Duration::from_secs(5), Duration::from_secs(600))
            .await
            .map_err(|e| BackupError::failed(e.message))?;
    client
        .restore_prepare(v1::RestorePrepareRequest {
            backup_id: id.to_string(),
            check_only,
            fresh,
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| BackupError {
            kind: ErrorKind::of(status.code()),
            message: format!("{node}: {}", status.message()),
        })
}

/// The app's account after the restore: this cluster's password (the restored database
/// holds the backed-up cluster's); any other difference stays a conflict for the operator.
async fn reset_app_password(
    node: &str,
    grpc: SocketAddr,
    account: &AppAccount,
) -> Result<(), BackupError> {
    let mut client =
        crate::agent_client::connect(node, grpc, Duration::from_secs(5), Duration::from_secs(30))
            .await
            .map_err(|e| BackupError::failed(e.message))?;
    let reply = client
        .app_database(v1::AppDatabaseRequest {
            database: account.database.clone(),
            user: account.user.clone(),
            host: account.host.clone(),
            password_hash: account.password_hash.clone(),
            reset_password: true,
        })
        .await
        .map_err(|status| {
            BackupError::failed(format!("the app's account on {node}: {}", status.message()))
        })?
        .into_inner();
    if reply.outcome() == v1::AppDatabaseOutcome::Conflict {
        return Err(BackupError::failed(format!(
            "the app's account after the restore: {}",
            reply.detail
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::testing::{observed, view_of};
    use triad_proto::gossip::GaleraState;

    const U: &str = "9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31";

    fn core(id: &str, n: u8) -> triad_cluster::membership::ObservedMember {
        let mut m = observed(id, true, true);
        m.keys.grpc = Some(format!("10.0.0.{n}:7421").parse().unwrap());
        m
    }

    fn survey(tables: i64, names: &[&str], files: i64) -> v1::RestorePrepareReply {
        v1::RestorePrepareReply {
            tables,
            table_names: names.iter().map(|s| s.to_string()).collect(),
            files,
            message: String::new(),
        }
    }

    #[test]
    fn a_restore_needs_every_core_node_live_and_chooses_the_lowest_id() {
        let (n1, n2, mut n3) = (core("n1", 1), core("n2", 2), core("n3", 3));
        let mut web = core("n4", 4);
        web.keys.role = Role::Web;
        let nodes =
            restore_nodes(&view_of(&[n3.clone(), n1.clone(), n2.clone(), web.clone()])).unwrap();
        assert_eq!(nodes.chosen.0, "n1");
        let others: Vec<&str> = nodes.others.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(others, ["n2", "n3"], "web nodes hold no database");
        n3.live = false;
        let error = restore_nodes(&view_of(&[n1, n2, n3])).unwrap_err();
        assert!(error.starts_with("n3 is not live"), "{error}");
        assert!(restore_nodes(&view_of(&[web])).is_err());
    }

    #[test]
    fn a_cluster_holding_data_is_refused_without_force_naming_what_it_holds() {
        let id = "20261206T101500Z";
        let empty = vec![
            ("n1".to_string(), survey(0, &[], 0)),
            ("n2".to_string(), survey(0, &[], 0)),
        ];
        assert_eq!(refusal(&empty, "n1", id, false), None);
        let held = vec![
            ("n1".to_string(), survey(7, &["wp.a", "wp.b"], 12)),
            ("n2".to_string(), survey(-1, &[], 12)),
        ];
        let why = refusal(&held, "n1", id, false).unwrap();
        assert!(why.contains("n1 holds 7 tables (wp.a, wp.b, ...)"), "{why}");
        assert!(why.contains("n2's mysqld does not answer"), "{why}");
        assert!(why.contains("the volume holds 12 entries"), "{why}");
        assert!(why.contains("--force"), "{why}");
        assert!(why.contains(&format!(".before-restore-{id}")), "{why}");
        assert_eq!(
            refusal(&held, "n1", id, true),
            None,
            "--force restores anyway"
        );
        // no volume to put the files on: refused, --force or not
        let unmounted = vec![("n1".to_string(), survey(0, &[], -1))];
        for force in [false, true] {
            let why = refusal(&unmounted, "n1", id, force).unwrap();
            assert!(why.contains("not mounted on n1"), "{why}");
        }
    }

    /// n1 and n2, Synced in a Primary component of history `U`.
    fn synced_pair() -> Vec<triad_cluster::membership::ObservedMember> {
        [("n1", 1), ("n2", 2)]
            .iter()
            .map(|(id, n)| {
                let mut m = core(id, *n);
                m.keys.galera.state = GaleraState::Synced;
                m.keys.galera.cluster_status = Some("Primary".into());
                m.keys.galera.uuid = Some(U.to_uppercase());
                m
            })
            .collect()
    }

    #[test]
    fn the_restore_waits_for_every_core_node_synced_in_the_backups_history() {
        let mut members = synced_pair();
        let nodes = restore_nodes(&view_of(&members)).unwrap();
        assert_eq!(not_synced(&view_of(&members), &nodes, U), None);
        members[1].keys.galera.state = GaleraState::Joining;
        let pending = not_synced(&view_of(&members), &nodes, U).unwrap();
        assert!(pending.starts_with("n2 is"), "{pending}");
        // Synced, but in another history (a cluster formed from nothing meanwhile)
        members[1].keys.galera.state = GaleraState::Synced;
        members[1].keys.galera.uuid = Some("11111111-e8fa-11f1-9cdd-af8aaf7b5b31".into());
        assert!(not_synced(&view_of(&members), &nodes, U).is_some());
    }

    #[test]
    fn the_bootstrap_waits_until_no_core_node_is_seen_in_a_component() {
        let mut members = synced_pair();
        let nodes = restore_nodes(&view_of(&members)).unwrap();
        let pending = still_in_component(&view_of(&members), &nodes).unwrap();
        assert!(pending.starts_with("n1 is still seen"), "{pending}");
        // n1's stop has arrived by gossip, n2's not yet
        members[0].keys.galera.state = GaleraState::Stopped;
        members[0].keys.galera.cluster_status = None;
        let pending = still_in_component(&view_of(&members), &nodes).unwrap();
        assert!(pending.starts_with("n2 is still seen"), "{pending}");
        members[1].keys.galera.state = GaleraState::Stopped;
        members[1].keys.galera.cluster_status = Some("Disconnected".into());
        assert_eq!(still_in_component(&view_of(&members), &nodes), None);
    }

    #[test]
    fn chunks_are_whole_until_the_last() {
        let (tx, mut rx) = mpsc::channel(64);
        let (written, seen) = watch::channel(0);
        let mut out = ChunkWriter {
            tx,
            buffer: Vec::new(),
            written,
            total: 0,
        };
        let data = vec![7u8; CHUNK_BYTES * 2 + 10];
        std::io::Write::write_all(&mut out, &data).unwrap();
        std::io::Write::flush(&mut out).unwrap();
        drop(out);
        let mut sizes = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            match chunk.chunk {
                Some(Chunk::Data(d)) => sizes.push(d.len()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(sizes, [CHUNK_BYTES, CHUNK_BYTES, 10]);
        assert_eq!(*seen.borrow(), data.len() as u64);
    }
}
