//! The cluster's timeline (issue 21): what changed and what was decided, with who asked,
//! kept in the coordinator's state directory so it outlives a restart, and streamed to
//! `triadctl events [--follow]`.
//!
//! One JSON object per line in `events.jsonl`; at [`MAX_LINES`] lines the file becomes
//! `events.1.jsonl` (the one before it is dropped), so the timeline is bounded (two files of
//! at most [`MAX_LINES`] events) and never rewritten in place. A line that does not parse
//! (a torn write at a crash) is skipped when read. Writes are appended and flushed, not
//! fsynced: the timeline explains decisions, the decisions' own records are durable.
//!
//! Sources: node changes from the view ([`node_changes`], pure), balancer member changes,
//! recovery decisions and job grants from the loops' statuses ([`watch`]), and every
//! operator command from the gRPC handlers, with the caller's certificate.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch as watch_channel};

use crate::view::ClusterView;

/// The current file, in the state directory.
pub const FILE: &str = "events.jsonl";
/// The previous file.
pub const OLDER_FILE: &str = "events.1.jsonl";
/// Events per file.
pub const MAX_LINES: usize = 10_000;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix milliseconds.
    pub at: u64,
    /// "node", "balancer", "recovery", "job", "autoscale", "operator".
    pub kind: String,
    /// The node, job or command it is about ("" when none).
    pub subject: String,
    pub text: String,
    /// Who asked (certificate name and role), for operator commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<String>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Debug)]
struct Files {
    dir: PathBuf,
    lines: usize,
}

/// The timeline: append, read back, follow.
#[derive(Debug)]
pub struct EventLog {
    files: Mutex<Files>,
    tx: broadcast::Sender<Event>,
    /// Events recorded since the coordinator started, by kind (for /metrics).
    counts: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl EventLog {
    /// The timeline kept in `state_dir` (created when missing).
    pub fn open(state_dir: &Path) -> Result<Arc<EventLog>, String> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| format!("creating {}: {e}", state_dir.display()))?;
        let path = state_dir.join(FILE);
        let lines = match std::fs::read_to_string(&path) {
            Ok(text) => {
                // a line torn by a crash ends here: the next event starts on a line of its own
                if !text.is_empty() && !text.ends_with('\n') {
                    std::fs::OpenOptions::new()
                        .append(true)
                        .open(&path)
                        .and_then(|mut file| file.write_all(b"\n"))
                        .map_err(|e| format!("writing {}: {e}", path.display()))?;
                }
                text.lines().count()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        Ok(Arc::new(EventLog {
            files: Mutex::new(Files {
                dir: state_dir.to_path_buf(),
                lines,
            }),
            tx: broadcast::channel(256).0,
            counts: Mutex::new(BTreeMap::new()),
        }))
    }

    /// Records an event now; a write that fails is logged, never fatal.
    pub fn record(&self, kind: &str, subject: &str, text: impl Into<String>, who: Option<String>) {
        let event = Event {
            at: now_ms(),
            kind: kind.to_string(),
            subject: subject.to_string(),
            text: text.into(),
            who,
        };
        if let Err(error) = self.append(&event) {
            tracing::warn!("events: {error}");
        }
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(event.kind.clone())
            .or_default() += 1;
        let _ = self.tx.send(event);
    }

    fn append(&self, event: &Event) -> Result<(), String> {
        let line = serde_json::to_string(event).map_err(|e| e.to_string())?;
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let current = files.dir.join(FILE);
        if files.lines >= MAX_LINES {
            let older = files.dir.join(OLDER_FILE);
            std::fs::rename(&current, &older).map_err(|e| {
                format!("renaming {} to {}: {e}", current.display(), older.display())
            })?;
            files.lines = 0;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&current)
            .map_err(|e| format!("opening {}: {e}", current.display()))?;
        writeln!(file, "{line}").map_err(|e| format!("writing {}: {e}", current.display()))?;
        files.lines += 1;
        Ok(())
    }

    /// Events recorded since the coordinator started, by kind.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The kept events at or after `since` (Unix ms), oldest first.
    pub fn since(&self, since: u64) -> Vec<Event> {
        let dir = self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .dir
            .clone();
        [OLDER_FILE, FILE]
            .iter()
            .filter_map(|name| std::fs::read_to_string(dir.join(name)).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|line| serde_json::from_str::<Event>(line).ok())
                    .collect::<Vec<_>>()
            })
            .filter(|event| event.at >= since)
            .collect()
    }

    /// Events recorded from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

/// What the timeline remembers of a node between looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    pub live: bool,
    pub ready: bool,
    pub draining: bool,
    pub reason: Option<String>,
}

/// The facts of every node in `view`.
pub fn node_facts(view: &ClusterView) -> BTreeMap<String, NodeFacts> {
    view.members()
        .filter(|m| m.keys.role != triad_proto::gossip::Role::Coordinator)
        .map(|m| {
            (
                m.node_id.clone(),
                NodeFacts {
                    live: m.live,
                    ready: m.live && m.keys.ready,
                    draining: m.live && m.keys.draining,
                    reason: m
                        .keys
                        .ready_reason
                        .clone()
                        .filter(|_| m.live && !m.keys.ready),
                },
            )
        })
        .collect()
}

/// Pure: the node events between two looks, as (node, text).
pub fn node_changes(
    before: &BTreeMap<String, NodeFacts>,
    after: &BTreeMap<String, NodeFacts>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (node, now) in after {
        let was = before.get(node);
        if was.is_none() {
            out.push((node.clone(), format!("{node} joined the cluster")));
        }
        if was.map(|w| w.live) != Some(now.live) && (was.is_some() || !now.live) {
            let word = if now.live {
                "live again"
            } else {
                "unreachable"
            };
            out.push((node.clone(), format!("{node} {word}")));
        }
        if now.live && (was.map(|w| (w.ready, &w.reason)) != Some((now.ready, &now.reason))) {
            out.push((
                node.clone(),
                match (&now.reason, now.ready) {
                    (_, true) => format!("{node} ready"),
                    (Some(reason), false) => format!("{node} not ready: {reason}"),
                    (None, false) => format!("{node} not ready"),
                },
            ));
        }
        if was.map(|w| w.draining).unwrap_or(false) != now.draining && now.live {
            let word = if now.draining {
                "draining"
            } else {
                "no longer draining"
            };
            out.push((node.clone(), format!("{node} {word}")));
        }
    }
    for node in before.keys().filter(|n| !after.contains_key(*n)) {
        out.push((node.clone(), format!("{node} left the cluster")));
    }
    out
}

/// Records what the loops decide as it happens: node changes (every second), balancer member
/// changes, recovery decisions and job grants. Runs until `stop`.
pub async fn watch(
    log: Arc<EventLog>,
    view: Arc<dyn Fn() -> ClusterView + Send + Sync>,
    balancer: Option<watch_channel::Receiver<crate::balancer::reconcile::BalancerStatus>>,
    jobs: Option<watch_channel::Receiver<Vec<crate::jobs::JobStatus>>>,
    recovery: Option<crate::recovery::RecoveryHandle>,
    autoscale: Option<crate::autoscale::AutoscaleHandle>,
    mut stop: watch_channel::Receiver<bool>,
) {
    let mut steps_seen: Option<BTreeMap<String, &'static str>> = None;
    let mut facts = BTreeMap::new();
    let mut first = true;
    let mut changes_seen = balancer.as_ref().map_or(0, |b| b.borrow().changes_total);
    let mut holders: BTreeMap<String, (Option<String>, u64)> = BTreeMap::new();
    let mut recovery_seen: Option<RecoverySeen> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = node_facts(&view());
        if first {
            // the first look: what is there, not what changed
            first = false;
            if !now.is_empty() {
                let names: Vec<String> = now.keys().cloned().collect();
                log.record(
                    "node",
                    "",
                    format!("coordinator started; nodes seen: {}", names.join(", ")),
                    None,
                );
            }
        } else {
            for (node, text) in node_changes(&facts, &now) {
                log.record("node", &node, text, None);
            }
        }
        facts = now;
        if let Some(balancer) = &balancer {
            let status = balancer.borrow().clone();
            if status.changes_total > changes_seen {
                changes_seen = status.changes_total;
                for change in &status.last_changes {
                    log.record(
                        "balancer",
                        change.name(),
                        format!("{}: {change:?}", status.kind),
                        None,
                    );
                }
            }
        }
        if let Some(jobs) = &jobs {
            for job in jobs.borrow().iter() {
                let now = (job.holder.clone(), job.epoch);
                if holders.get(&job.name) != Some(&now) {
                    if let Some(holder) = &job.holder {
                        log.record(
                            "job",
                            &job.name,
                            format!("job {} held by {holder} (epoch {})", job.name, job.epoch),
                            None,
                        );
                    } else if holders.contains_key(&job.name) {
                        log.record(
                            "job",
                            &job.name,
                            format!("job {}: {}", job.name, job.lease),
                            None,
                        );
                    }
                    holders.insert(job.name.clone(), now);
                }
            }
        }
        if let Some(recovery) = &recovery {
            let status = recovery.galera_status();
            let decision = status
                .open
                .as_ref()
                .map(|open| (open.epoch, open.phase.as_str().to_string()));
            let seen = (status.last_epoch, decision, status.fast_path);
            if recovery_seen.as_ref() != Some(&seen) {
                if recovery_seen.is_some() {
                    log.record("recovery", "", recovery.status(), None);
                }
                recovery_seen = Some(seen);
            }
        }
        if let Some(autoscale) = &autoscale {
            let status = autoscale.autoscale_status();
            if let Some(before) = &steps_seen {
                for (node, text) in step_changes(before, &status.steps, &status.removed) {
                    log.record("autoscale", &node, text, None);
                }
            }
            steps_seen = Some(status.steps);
        }
    }
}

/// What the timeline last saw of recovery: the last epoch, the open decision (epoch and
/// phase), and the outage's fast path; a change of any is an event.
type RecoverySeen = (u64, Option<(u64, String)>, Option<String>);

/// Pure: what changed in the autoscaler's steps, per node, in words: a node entering a
/// step or changing phase ("web-4 launching"), and one leaving the steps ("web-4 deleted"
/// when the autoscaler deleted it, else "web-4: step done").
pub fn step_changes(
    before: &BTreeMap<String, &'static str>,
    after: &BTreeMap<String, &'static str>,
    removed: &[String],
) -> Vec<(String, String)> {
    let mut changes = Vec::new();
    for (node, phase) in after {
        if before.get(node) != Some(phase) {
            changes.push((node.clone(), format!("{node} {phase}")));
        }
    }
    for node in before.keys().filter(|n| !after.contains_key(*n)) {
        let text = if removed.contains(node) {
            format!("{node} deleted")
        } else {
            format!("{node}: step done")
        };
        changes.push((node.clone(), text));
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(live: bool, ready: bool, reason: Option<&str>) -> NodeFacts {
        NodeFacts {
            live,
            ready,
            draining: false,
            reason: reason.map(str::to_string),
        }
    }

    #[test]
    fn autoscale_steps_are_told_once_per_phase() {
        let none = BTreeMap::new();
        let launching = BTreeMap::from([("web-4".to_string(), "launching")]);
        let serving = BTreeMap::from([("web-4".to_string(), "serving")]);
        assert_eq!(
            step_changes(&none, &launching, &[]),
            [("web-4".to_string(), "web-4 launching".to_string())]
        );
        assert!(step_changes(&launching, &launching, &[]).is_empty());
        assert_eq!(
            step_changes(&launching, &serving, &[])[0].1,
            "web-4 serving"
        );
        assert_eq!(
            step_changes(&serving, &none, &["web-4".to_string()])[0].1,
            "web-4 deleted"
        );
        assert_eq!(step_changes(&serving, &none, &[])[0].1, "web-4: step done");
    }

    #[test]
    fn node_changes_say_what_changed_once() {
        let mut before = BTreeMap::new();
        before.insert("n1".to_string(), facts(true, true, None));
        before.insert("n2".to_string(), facts(true, true, None));
        let mut after = before.clone();
        assert!(node_changes(&before, &after).is_empty());
        after.insert("n2".into(), facts(false, false, None));
        after.insert("n3".into(), facts(true, false, Some("galera joining")));
        let changes: Vec<String> = node_changes(&before, &after)
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(
            changes,
            [
                "n2 unreachable",
                "n3 joined the cluster",
                "n3 not ready: galera joining"
            ]
        );
        let mut back = after.clone();
        back.insert("n2".into(), facts(true, true, None));
        back.remove("n3");
        let changes: Vec<String> = node_changes(&after, &back)
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(
            changes,
            ["n2 live again", "n2 ready", "n3 left the cluster"]
        );
    }

    #[test]
    fn the_timeline_survives_a_restart_is_bounded_and_skips_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        let mut follow = log.subscribe();
        log.record(
            "operator",
            "recover",
            "recover asked",
            Some("alice (operator)".into()),
        );
        assert_eq!(
            follow.try_recv().unwrap().who.as_deref(),
            Some("alice (operator)")
        );
        drop(log);
        // a torn last line from a crash
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE))
            .unwrap();
        file.write_all(b"{\"at\": 12").unwrap();
        drop(file);
        let log = EventLog::open(dir.path()).unwrap();
        log.record("node", "n2", "n2 unreachable", None);
        let events = log.since(0);
        let texts: Vec<&str> = events.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["recover asked", "n2 unreachable"]);
        assert!(log.since(events[1].at + 1).is_empty());
        // bounded: at MAX_LINES the file becomes the older one
        let text: String = (0..MAX_LINES)
            .map(|i| {
                format!("{{\"at\":{i},\"kind\":\"node\",\"subject\":\"\",\"text\":\"e{i}\"}}\n")
            })
            .collect();
        std::fs::write(dir.path().join(FILE), text).unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        log.record("node", "n1", "after the rotation", None);
        let events = log.since(0);
        assert_eq!(events.len(), MAX_LINES + 1);
        assert_eq!(events.last().unwrap().text, "after the rotation");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE))
                .unwrap()
                .lines()
                .count(),
            1
        );
    }
}
