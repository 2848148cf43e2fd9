//! One-off operations (`triadctl app run NAME -- ARGV...`, issue 18): the command once on
//! one ready node, its output streamed from the node's agent (`RunOnce`) to the operator,
//! and the run recorded, one JSON line per run, in `runs.jsonl` in the state directory.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use triad_proto::v1;
use triad_proto::v1::run_once_event::Event;

use crate::view::ClusterView;

/// The record's file in the state directory.
pub const RECORD_FILE: &str = "runs.jsonl";
/// A run's user and timeout unless given.
pub const DEFAULT_USER: &str = "www-data";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// One line of `runs.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub name: String,
    pub node: String,
    pub unit: String,
    pub argv: Vec<String>,
    pub user: String,
    /// Unix seconds.
    pub started: u64,
    pub duration_ms: Option<u64>,
    /// The command's exit status; `None` when the node's stream broke before it said.
    pub exit_status: Option<i32>,
    /// Why the run's end is unknown, when it is.
    pub error: Option<String>,
}

/// Pure: the node to run on: `wanted` when it is live and ready, else the first live and
/// ready node by id; with its gRPC address. The error says why none.
pub fn pick_node(view: &ClusterView, wanted: &str) -> Result<(String, SocketAddr), String> {
    let usable = |m: &crate::view::MemberView| {
        m.live && m.keys.ready && m.keys.role != triad_proto::gossip::Role::Coordinator
    };
    if !wanted.is_empty() {
        let member = view
            .get(wanted)
            .ok_or_else(|| format!("node {wanted:?} is not in the cluster"))?;
        if !usable(member) {
            return Err(format!("node {wanted} is not live and ready"));
        }
        let grpc = member
            .keys
            .grpc
            .ok_or_else(|| format!("node {wanted} has no gRPC address in gossip"))?;
        return Ok((wanted.to_string(), grpc));
    }
    let mut nodes: Vec<(String, SocketAddr)> = view
        .members()
        .filter(|m| usable(m))
        .filter_map(|m| m.keys.grpc.map(|grpc| (m.node_id.clone(), grpc)))
        .collect();
    nodes.sort();
    nodes
        .into_iter()
        .next()
        .ok_or_else(|| "no node is live and ready to run it".to_string())
}

/// Appends `record` to `runs.jsonl` (fsynced: the record of an upgrade should not vanish).
pub fn append(state_dir: &Path, record: &RunRecord) -> Result<(), String> {
    let path: PathBuf = state_dir.join(RECORD_FILE);
    let line = serde_json::to_string(record).map_err(|e| e.to_string())?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    writeln!(file, "{line}")
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Runs `request` on `node` and forwards its events to `out`; records the run once it
/// ends (or its stream breaks). The run goes on if the operator goes away.
pub async fn run(
    node: String,
    grpc: SocketAddr,
    request: v1::RunOnceRequest,
    state_dir: PathBuf,
    out: mpsc::Sender<Result<v1::RunOnceEvent, tonic::Status>>,
) {
    let timeout = Duration::from_millis(request.timeout_ms);
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut record = RunRecord {
        name: request.name.clone(),
        node: node.clone(),
        unit: String::new(),
        argv: request.argv.clone(),
        user: request.user.clone(),
        started,
        duration_ms: None,
        exit_status: None,
        error: None,
    };
    let stream = async {
        let mut client = crate::agent_client::connect(
            &node,
            grpc,
            Duration::from_secs(5),
            timeout + Duration::from_secs(60),
        )
        .await
        .map_err(|e| tonic::Status::unavailable(e.message))?;
        client
            .run_once(request)
            .await
            .map(tonic::Response::into_inner)
    }
    .await;
    let mut stream = match stream {
        Ok(stream) => stream,
        Err(status) => {
            // refused before it started (a user or program missing there): not a run
            let _ = out.send(Err(status)).await;
            return;
        }
    };
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                match &event.event {
                    Some(Event::Started(started)) => record.unit = started.unit.clone(),
                    Some(Event::Exited(exited)) => {
                        record.exit_status = Some(exited.exit_status);
                        record.duration_ms = Some(exited.duration_ms);
                    }
                    _ => {}
                }
                let _ = out.send(Ok(event)).await;
            }
            Err(status) => {
                record.error = Some(format!(
                    "the stream from {node} broke: {}",
                    status.message()
                ));
                let _ = out.send(Err(status)).await;
                break;
            }
        }
    }
    if record.exit_status.is_none() && record.error.is_none() {
        record.error = Some(format!("{node}'s stream ended without the run's exit"));
    }
    tracing::info!(name = %record.name, node = %record.node, exit_status = ?record.exit_status, "one-off run recorded");
    if let Err(error) = append(&state_dir, &record) {
        tracing::error!("one-off run {}: {error}", record.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::testing::{observed as member, view_of};

    #[test]
    fn the_node_is_the_one_asked_for_or_the_first_ready_one() {
        let view = view_of(&[
            member("n1", true, false),
            member("n2", true, true),
            member("n3", false, false),
        ]);
        assert_eq!(pick_node(&view, "").unwrap().0, "n2");
        assert_eq!(pick_node(&view, "n2").unwrap().0, "n2");
        assert_eq!(
            pick_node(&view, "n1").unwrap_err(),
            "node n1 is not live and ready"
        );
        assert!(pick_node(&view, "n9")
            .unwrap_err()
            .contains("not in the cluster"));
        let none = view_of(&[member("n1", true, false)]);
        assert_eq!(
            pick_node(&none, "").unwrap_err(),
            "no node is live and ready to run it"
        );
    }

    #[test]
    fn every_run_is_a_line_of_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let record = RunRecord {
            name: "upgrade".into(),
            node: "n1".into(),
            unit: "triad-run-upgrade-1.service".into(),
            argv: vec!["/bin/true".into()],
            user: "www-data".into(),
            started: 1,
            duration_ms: Some(5),
            exit_status: Some(0),
            error: None,
        };
        append(dir.path(), &record).unwrap();
        append(dir.path(), &record).unwrap();
        let text = std::fs::read_to_string(dir.path().join(RECORD_FILE)).unwrap();
        assert_eq!(text.lines().count(), 2);
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["exit_status"], 0);
        assert_eq!(line["node"], "n1");
    }
}
