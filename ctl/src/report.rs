//! `triadctl status`: the coordinator's `v1::ClusterStatus` as one serde model, rendered
//! as text or as JSON. The JSON is a contract for scripts: `schema` says its version, each
//! loop has a section with its sentence (`status`) and its facts, and what is not known of
//! a dead node is `null`. docs/status.md documents every field.

use std::collections::BTreeMap;

use serde::Serialize;
use triad_proto::v1;

/// The version of the JSON below; raised when a field changes meaning or goes away.
pub const STATUS_SCHEMA: u32 = 2;

/// `triadctl status --output json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatusReport {
    pub schema: u32,
    pub cluster: String,
    pub coordinator_version: String,
    pub healthy: bool,
    /// What keeps the cluster from healthy, a few words per node: "n2 unreachable",
    /// "n3 not ready: brick healing". Empty when healthy.
    pub degraded: Vec<String>,
    pub summary: Summary,
    /// Galera formation and recovery; null when the coordinator does not run it.
    pub galera: Option<GaleraReport>,
    /// The Gluster volume; null when not managed.
    pub volume: Option<VolumeReport>,
    /// The balancer membership loop; null when none is configured.
    pub balancer: Option<BalancerReport>,
    /// Autoscaling; null when not configured.
    pub autoscale: Option<AutoscaleReport>,
    /// The application's database, account and password file; null when no `[app]`.
    pub app: Option<AppReport>,
    /// The cluster jobs (`[[app.jobs]]`); empty when none.
    pub jobs: Vec<JobReport>,
    /// Maintenance mode; null when off.
    pub maintenance: Option<MaintenanceReport>,
    /// Backups; null when the coordinator has no `[backup]`.
    pub backup: Option<BackupReport>,
    /// Node maintenance: who leaves next, what is awaited, the volume's quorum; null when
    /// no node is in maintenance and the quorum is normal.
    pub node_maintenance: Option<String>,
    /// gRPC security.
    pub tls: TlsReport,
    pub nodes: Vec<NodeRow>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GaleraReport {
    /// What the coordinator is doing or waiting for, in a sentence.
    pub status: String,
    /// The last bootstrap epoch decided (0: never).
    pub last_epoch: u64,
    pub open_decision: Option<DecisionReport>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DecisionReport {
    pub epoch: u64,
    pub node: String,
    /// "bootstrapping" or "joining".
    pub phase: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VolumeReport {
    /// Formation step or health (bricks online, heal backlog), in a sentence.
    pub status: String,
    /// "not-observed", "unknown", "forming", "step-failed", "formed" or "steady".
    pub state: String,
    /// Files in split-brain (the app gets I/O errors on them until `triadctl volume
    /// resolve`); empty when none.
    pub split_brain_files: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AppReport {
    /// The database and account, and where the password file stands, in a sentence.
    pub status: String,
    /// "waiting", "conflict", "delivering" or "ready".
    pub state: String,
    pub database: String,
    pub user: String,
}

/// One event of `triadctl events -o json` (one JSON object per line).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventReport {
    /// Unix milliseconds.
    pub at: u64,
    /// "node", "balancer", "recovery", "job", "operator".
    pub kind: String,
    /// The node, job or command; null when none.
    pub subject: Option<String>,
    pub text: String,
    /// Who asked (certificate name and role); null but for operator commands.
    pub who: Option<String>,
}

impl EventReport {
    pub fn from_proto(event: &v1::TimelineEvent) -> EventReport {
        let some = |text: &str| (!text.is_empty()).then(|| text.to_string());
        EventReport {
            at: event.at_unix_ms,
            kind: event.kind.clone(),
            subject: some(&event.subject),
            text: event.text.clone(),
            who: some(&event.who),
        }
    }
}

/// "2026-12-05T14:03:18.120Z operator  app maintenance off (by alice (operator))".
pub fn event_line(event: &v1::TimelineEvent) -> String {
    let at = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(event.at_unix_ms),
    );
    let mut line = format!("{at} {:<9} {}", event.kind, event.text);
    if !event.who.is_empty() {
        line.push_str(&format!(" (by {})", event.who));
    }
    line
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BackupReport {
    /// The last backup, its age and the schedule, in a sentence.
    pub status: String,
    /// Where backups go ("dir /var/backups/triad").
    pub target: String,
    /// The schedule; null: on demand only.
    pub schedule: Option<String>,
    /// The newest complete backup; null when none.
    pub last: Option<BackupSummary>,
    /// The last attempt failed, or the newest backup is older than the schedule allows;
    /// null when neither.
    pub warning: Option<String>,
    /// The step of the backup under way; null when none runs.
    pub running: Option<String>,
    /// Unix seconds of the next scheduled backup; null without a schedule.
    pub next: Option<u64>,
}

/// One backup, as `backup list` and the status show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BackupSummary {
    pub id: String,
    /// Unix milliseconds.
    pub created: u64,
    pub duration_ms: u64,
    /// The node the database and files were read from.
    pub node: String,
    pub galera_uuid: String,
    pub galera_seqno: i64,
    /// Database and files, uncompressed.
    pub bytes: u64,
    /// As stored at the target (compressed, encrypted).
    pub stored_bytes: u64,
    pub parts: u32,
    pub triad_version: String,
}

impl BackupSummary {
    pub fn from_proto(b: &v1::BackupInfo) -> BackupSummary {
        BackupSummary {
            id: b.id.clone(),
            created: b.created_unix_ms,
            duration_ms: b.duration_ms,
            node: b.node.clone(),
            galera_uuid: b.galera_uuid.clone(),
            galera_seqno: b.galera_seqno,
            bytes: b.plain_bytes,
            stored_bytes: b.stored_bytes,
            parts: b.parts,
            triad_version: b.triad_version.clone(),
        }
    }
}

/// "1.2 GiB", "340 MiB": the daemons' rule.
pub use triad_daemon::units::bytes;

/// `backup list`: one line per backup, oldest first, and where they are.
pub fn backups_text(reply: &v1::BackupListReply) -> String {
    let mut out = format!("{} backup(s) at {}\n", reply.backups.len(), reply.target);
    if reply.backups.is_empty() {
        return out;
    }
    out.push_str(&format!(
        "{:<18} {:<24} {:<8} {:>10} {:>10} {:>6} {:>9}  {}\n",
        "ID", "CREATED", "NODE", "SIZE", "STORED", "PARTS", "TOOK", "GALERA"
    ));
    for b in &reply.backups {
        let created = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(b.created_unix_ms),
        );
        out.push_str(&format!(
            "{:<18} {:<24} {:<8} {:>10} {:>10} {:>6} {:>8.1}s  {}:{}\n",
            b.id,
            created.to_string(),
            b.node,
            bytes(b.plain_bytes),
            bytes(b.stored_bytes),
            b.parts,
            b.duration_ms as f64 / 1000.0,
            b.galera_uuid,
            b.galera_seqno
        ));
    }
    out
}

/// `backup list -o json`: `{"target": ..., "backups": [...]}`.
pub fn backups_json(reply: &v1::BackupListReply) -> String {
    serde_json::json!({
        "target": reply.target,
        "backups": reply.backups.iter().map(BackupSummary::from_proto).collect::<Vec<_>>(),
    })
    .to_string()
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MaintenanceReport {
    pub message: String,
    pub retry_after_secs: u32,
    pub allow: Vec<String>,
    /// Unix seconds.
    pub since: u64,
    /// The balancer has it in place.
    pub applied: bool,
    /// Why not, when it has not; null when it has.
    pub error: Option<String>,
    /// "name=value": the cookie that passes where the balancer cannot match addresses
    /// (Octavia); null otherwise.
    pub bypass_cookie: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobReport {
    pub name: String,
    pub schedule: String,
    /// The node holding the lease; null when none.
    pub holder: Option<String>,
    /// The lease's epoch (0: never granted).
    pub epoch: u64,
    /// The lease in a few words.
    pub lease: String,
    /// The node a run is going on; null when none.
    pub running_on: Option<String>,
    pub last_run: Option<JobRunReport>,
    /// Unix seconds; null while nobody holds the job.
    pub next_run: Option<u64>,
    /// What needs an operator; null when nothing.
    pub warning: Option<String>,
    /// gRPC calls to agents for this job since the coordinator started.
    pub calls: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobRunReport {
    pub node: String,
    /// Unix seconds.
    pub start: u64,
    /// null while it runs.
    pub duration_ms: Option<u64>,
    /// "exit 0", "timeout", ...; null while it runs.
    pub outcome: Option<String>,
}

impl JobReport {
    fn from_proto(job: &v1::JobFact) -> JobReport {
        let some = |text: &str| (!text.is_empty()).then(|| text.to_string());
        JobReport {
            name: job.name.clone(),
            schedule: job.schedule.clone(),
            holder: some(&job.holder),
            epoch: job.epoch,
            lease: job.lease.clone(),
            running_on: some(&job.running_on),
            last_run: job.last_run.as_ref().map(|run| JobRunReport {
                node: run.node.clone(),
                start: run.start,
                duration_ms: run.duration_ms,
                outcome: some(&run.outcome),
            }),
            next_run: job.next_run,
            warning: some(&job.warning),
            calls: job.calls,
        }
    }

    /// "job cron (every 1m): held by n1, epoch 3; last run on n1 at 13:20:05Z, 0.4s, exit
    /// 0; next at 13:21:05Z", and a WARNING line when something needs an operator.
    fn render(&self) -> String {
        let at = |secs: u64| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
            )
            .to_string()
        };
        let mut line = format!("job {} ({}): {}", self.name, self.schedule, self.lease);
        if self.epoch > 0 {
            line.push_str(&format!(", epoch {}", self.epoch));
        }
        if let Some(node) = &self.running_on {
            line.push_str(&format!("; running on {node}"));
        }
        match &self.last_run {
            Some(run) => {
                line.push_str(&format!("; last run on {} at {}", run.node, at(run.start)));
                if let (Some(ms), Some(outcome)) = (run.duration_ms, &run.outcome) {
                    line.push_str(&format!(", {:.1}s, {outcome}", ms as f64 / 1000.0));
                }
            }
            None => line.push_str("; no run yet"),
        }
        if let Some(next) = self.next_run {
            line.push_str(&format!("; next at {}", at(next)));
        }
        line.push('\n');
        if let Some(warning) = &self.warning {
            line.push_str(&format!("job {}: WARNING: {warning}\n", self.name));
        }
        line
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BalancerReport {
    pub kind: String,
    pub members: Vec<String>,
    pub errors_total: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AutoscaleReport {
    /// The rate, the target, the recommendation and why, in a sentence.
    pub status: String,
    /// Requests per second over the ready nodes; null until two samples exist.
    pub request_rate: Option<f64>,
    pub ready: u32,
    pub recommended: Option<u32>,
    /// Nodes the autoscaler deleted (left out of `nodes`).
    pub removed: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TlsReport {
    /// Mutual TLS and the certificate's days left, or PLAINTEXT, in a sentence.
    pub status: String,
    pub plaintext: bool,
    /// The coordinator's own certificate; null when plaintext or unreadable.
    pub certificate: Option<CertificateReport>,
    /// Node certificates that expire within 30 days or have expired.
    pub expiring: Vec<CertificateReport>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CertificateReport {
    pub holder: String,
    /// Unix seconds.
    pub not_after: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub nodes: usize,
    pub live: usize,
    pub ready: usize,
}

/// One node. Of a dead node only what the coordinator knows for sure is given: its
/// identity, and when it was last seen (`heartbeat_age_ms`); its last gossiped state is
/// not current, so `ready`, `draining`, `services` and the metrics are null.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeRow {
    pub id: String,
    pub address: String,
    pub grpc: String,
    pub role: String,
    pub generation: u64,
    pub live: bool,
    pub ready: Option<bool>,
    pub draining: Option<bool>,
    /// Why the node is in maintenance ("operator alice", "shutdown"); kept for a dead node
    /// (one powered off for maintenance is expected to be down); null when not.
    pub maintenance: Option<String>,
    pub services: Option<BTreeMap<String, String>>,
    /// Milliseconds since the agent's heartbeat last changed: for a dead node, when it was
    /// last seen; null when it never was.
    pub heartbeat_age_ms: Option<u64>,
    pub version: String,
    pub cpu_percent: Option<f64>,
    pub mem_used_bytes: Option<u64>,
    pub decode_errors: Vec<String>,
    /// Why the node is not ready; null when ready or dead.
    pub not_ready_reason: Option<String>,
}

/// Pure: the nodes that keep the cluster from healthy, and why (a node gossip calls dead is
/// "unreachable": cut off or down, the coordinator cannot tell which).
fn degraded(nodes: &[NodeRow]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| {
            if let Some(reason) = &n.maintenance {
                Some(format!("{} in maintenance ({reason})", n.id))
            } else if !n.live {
                Some(format!("{} unreachable", n.id))
            } else if n.ready != Some(true) {
                Some(match &n.not_ready_reason {
                    Some(reason) => format!("{} not ready: {reason}", n.id),
                    None => format!("{} not ready", n.id),
                })
            } else {
                None
            }
        })
        .collect()
}

/// One node's row; a dead node's last gossiped state is left out (see [`NodeRow`]).
fn node_row(node: &v1::NodeView) -> NodeRow {
    let live = node.live;
    let current = |known: bool| live.then_some(known);
    NodeRow {
        id: node.node_id.clone(),
        address: node
            .gossip_addr
            .rsplit_once(':')
            .map(|(ip, _)| ip.to_string())
            .unwrap_or_default(),
        grpc: node.grpc_addr.clone(),
        role: match v1::Role::try_from(node.role).unwrap_or(v1::Role::Unspecified) {
            v1::Role::Core => "core",
            v1::Role::Web => "web",
            v1::Role::Unspecified => "unknown",
        }
        .to_string(),
        generation: node.generation,
        live,
        ready: current(node.ready),
        draining: current(node.draining),
        maintenance: (!node.maintenance.is_empty()).then(|| node.maintenance.clone()),
        services: live.then(|| {
            node.services
                .iter()
                .map(|s| (s.name.clone(), s.state.clone()))
                .collect()
        }),
        heartbeat_age_ms: node.heartbeat_age_ms,
        version: node.agent_version.clone(),
        cpu_percent: node
            .metrics
            .as_ref()
            .filter(|_| live)
            .map(|m| m.cpu_percent),
        mem_used_bytes: node
            .metrics
            .as_ref()
            .filter(|_| live)
            .map(|m| m.mem_used_bytes),
        decode_errors: node.decode_errors.clone(),
        not_ready_reason: (live && !node.ready && !node.not_ready_reason.is_empty())
            .then(|| node.not_ready_reason.clone()),
    }
}

impl StatusReport {
    pub fn from_proto(status: &v1::ClusterStatus) -> StatusReport {
        let nodes: Vec<NodeRow> = status.nodes.iter().map(node_row).collect();
        let summary = Summary {
            nodes: nodes.len(),
            live: nodes.iter().filter(|n| n.live).count(),
            ready: nodes.iter().filter(|n| n.ready == Some(true)).count(),
        };
        let tls = status.tls_section.clone().unwrap_or_default();
        let split_brain: &[String] = status
            .volume_section
            .as_ref()
            .map_or(&[], |v| v.split_brain_files.as_slice());
        let certificate = |c: &v1::CertificateFact| CertificateReport {
            holder: c.holder.clone(),
            not_after: c.not_after,
        };
        StatusReport {
            schema: STATUS_SCHEMA,
            cluster: status.cluster_name.clone(),
            coordinator_version: status.coordinator_version.clone(),
            healthy: summary.nodes > 0
                && summary.ready == summary.nodes
                && split_brain.is_empty()
                && status
                    .backup_section
                    .as_ref()
                    .is_none_or(|b| b.warning.is_empty()),
            degraded: {
                let mut degraded = degraded(&nodes);
                if !split_brain.is_empty() {
                    degraded.push(format!("{} file(s) in split-brain", split_brain.len()));
                }
                if let Some(warning) = status
                    .backup_section
                    .as_ref()
                    .filter(|b| !b.warning.is_empty())
                {
                    degraded.push(format!("backup: {}", warning.warning));
                }
                degraded
            },
            summary,
            galera: status.galera_section.as_ref().map(|g| GaleraReport {
                status: status.galera.clone(),
                last_epoch: g.last_epoch,
                open_decision: g.open_decision.as_ref().map(|d| DecisionReport {
                    epoch: d.epoch,
                    node: d.node.clone(),
                    phase: d.phase.clone(),
                }),
            }),
            volume: status.volume_section.as_ref().map(|v| VolumeReport {
                status: status.volume.clone(),
                state: v.state.clone(),
                split_brain_files: v.split_brain_files.clone(),
            }),
            balancer: status.balancer.as_ref().map(|b| BalancerReport {
                kind: b.kind.clone(),
                members: b.members.clone(),
                errors_total: b.errors_total,
                last_error: (!b.last_error.is_empty()).then(|| b.last_error.clone()),
            }),
            autoscale: status.autoscale_section.as_ref().map(|a| AutoscaleReport {
                status: status.autoscale.clone(),
                request_rate: a.request_rate,
                ready: a.ready,
                recommended: a.recommended,
                removed: a.removed.clone(),
            }),
            app: status.app_section.as_ref().map(|a| AppReport {
                status: status.app.clone(),
                state: a.state.clone(),
                database: a.database.clone(),
                user: a.user.clone(),
            }),
            jobs: status.jobs.iter().map(JobReport::from_proto).collect(),
            maintenance: status.maintenance.as_ref().map(|m| MaintenanceReport {
                message: m.message.clone(),
                retry_after_secs: m.retry_after_secs,
                allow: m.allow.clone(),
                since: m.since,
                applied: m.applied,
                error: (!m.error.is_empty()).then(|| m.error.clone()),
                bypass_cookie: (!m.bypass_cookie.is_empty()).then(|| m.bypass_cookie.clone()),
            }),
            backup: status.backup_section.as_ref().map(|b| BackupReport {
                status: status.backup.clone(),
                target: b.target.clone(),
                schedule: (!b.schedule.is_empty()).then(|| b.schedule.clone()),
                last: b.last.as_ref().map(BackupSummary::from_proto),
                warning: (!b.warning.is_empty()).then(|| b.warning.clone()),
                running: (!b.running.is_empty()).then(|| b.running.clone()),
                next: b.next_unix,
            }),
            node_maintenance: (!status.node_maintenance.is_empty())
                .then(|| status.node_maintenance.clone()),
            tls: TlsReport {
                status: status.tls.clone(),
                plaintext: tls.plaintext,
                certificate: tls.certificate.as_ref().map(certificate),
                expiring: tls.expiring.iter().map(certificate).collect(),
            },
            nodes,
        }
    }

    /// A `consul members` / `pcs status` style summary.
    pub fn render_text(&self) -> String {
        let mut out = format!(
            "cluster {}: {} nodes, {} live, {} ready — {}\n\n",
            self.cluster,
            self.summary.nodes,
            self.summary.live,
            self.summary.ready,
            if self.healthy {
                "healthy".to_string()
            } else if self.degraded.is_empty() {
                "DEGRADED".to_string()
            } else {
                format!("DEGRADED: {}", self.degraded.join("; "))
            }
        );
        let lines = [
            ("galera", self.galera.as_ref().map(|g| &g.status)),
            ("volume", self.volume.as_ref().map(|v| &v.status)),
            ("autoscale", self.autoscale.as_ref().map(|a| &a.status)),
            ("app", self.app.as_ref().map(|a| &a.status)),
            ("backup", self.backup.as_ref().map(|b| &b.status)),
            ("maintenance", self.node_maintenance.as_ref()),
            ("tls", Some(&self.tls.status)),
        ];
        for (name, line) in lines {
            if let Some(line) = line.filter(|l| !l.is_empty()) {
                out.insert_str(out.len() - 1, &format!("{name}: {line}\n"));
            }
        }
        if let Some(m) = &self.maintenance {
            let since = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(m.since),
            );
            let passes = match &m.bypass_cookie {
                Some(cookie) => format!("requests with the cookie {cookie} pass"),
                None if m.allow.is_empty() => "allowed: none".to_string(),
                None => format!("allowed: {}", m.allow.join(", ")),
            };
            let mut line = format!(
                "maintenance: ON since {since}: clients get 503 (Retry-After {}s) {:?}; {passes}",
                m.retry_after_secs, m.message,
            );
            match &m.error {
                None if m.applied => {}
                None => line.push_str("; NOT in place on the balancer yet"),
                Some(error) => line.push_str(&format!("; NOT in place on the balancer: {error}")),
            }
            out.insert_str(out.len() - 1, &format!("{line}\n"));
        }
        for job in &self.jobs {
            out.insert_str(out.len() - 1, &job.render());
        }
        if let Some(balancer) = &self.balancer {
            let mut line = format!(
                "balancer: {} members [{}]",
                balancer.kind,
                balancer.members.join(", "),
            );
            match &balancer.last_error {
                Some(error) => line.push_str(&format!(
                    ", failing: {error} ({} errors so far)",
                    balancer.errors_total
                )),
                None if balancer.errors_total > 0 => {
                    line.push_str(&format!(", ok ({} earlier errors)", balancer.errors_total))
                }
                None => {}
            }
            out.insert_str(out.len() - 1, &format!("{line}\n"));
        }
        let header = [
            "NODE",
            "ADDRESS",
            "ROLE",
            "STATE",
            "READY",
            "GALERA",
            "GLUSTERD",
            "BRICK",
            "MOUNT",
            "APACHE",
            "HEARTBEAT",
        ];
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        for node in &self.nodes {
            // what a dead node last gossiped is not its state now: "-"
            let service = |name: &str| match &node.services {
                Some(services) => services
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| "unknown".into()),
                None => "-".into(),
            };
            rows.push(vec![
                node.id.clone(),
                node.address.clone(),
                node.role.clone(),
                if node.live { "live" } else { "dead" }.into(),
                match (node.draining, node.ready) {
                    _ if node.maintenance.is_some() => "maintenance".into(),
                    (Some(true), _) => "draining".into(),
                    (_, Some(true)) => "yes".into(),
                    (_, Some(false)) => "no".into(),
                    (_, None) => "-".into(),
                },
                service("galera"),
                service("gluster.daemon"),
                service("gluster.brick"),
                service("mount"),
                service("apache"),
                match (node.heartbeat_age_ms, node.live) {
                    (Some(ms), true) => format!("{:.1}s ago", ms as f64 / 1000.0),
                    (Some(ms), false) => format!("last seen {:.1}s ago", ms as f64 / 1000.0),
                    (None, _) => "never".into(),
                },
            ]);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|col| {
                rows.iter()
                    .map(|row| row[col].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in rows {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        for node in &self.nodes {
            if let (true, Some(reason)) = (node.live, &node.not_ready_reason) {
                out.push_str(&format!("{} not ready: {reason}\n", node.id));
            }
        }
        for node in &self.nodes {
            for error in &node.decode_errors {
                out.push_str(&format!(
                    "warning: node {}: gossip value ignored: {error}\n",
                    node.id
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, live: bool, ready: bool) -> v1::NodeView {
        v1::NodeView {
            node_id: id.into(),
            gossip_addr: "10.0.0.1:7420".into(),
            role: v1::Role::Core as i32,
            live,
            ready,
            services: vec![v1::ServiceState {
                name: "galera".into(),
                state: "synced".into(),
            }],
            heartbeat_age_ms: Some(1500),
            ..Default::default()
        }
    }

    #[test]
    fn a_split_brain_makes_the_cluster_degraded() {
        let status = v1::ClusterStatus {
            cluster_name: "lab".into(),
            nodes: vec![node("n1", true, true)],
            volume: "www started, replica 3, bricks 3/3 online, heal pending 1, SPLIT-BRAIN 1 (...): /sb.txt".into(),
            volume_section: Some(v1::VolumeSection {
                state: "formed".into(),
                split_brain_files: vec!["/sb.txt".into()],
            }),
            ..Default::default()
        };
        let report = StatusReport::from_proto(&status);
        assert!(!report.healthy);
        assert_eq!(report.degraded, ["1 file(s) in split-brain"]);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["volume"]["split_brain_files"][0], "/sb.txt");
        assert!(report
            .render_text()
            .contains("DEGRADED: 1 file(s) in split-brain"));
    }

    #[test]
    fn not_ready_reason_and_volume_are_shown() {
        let mut n2 = node("n2", true, false);
        n2.not_ready_reason = "mount stale; apache down".into();
        let status = v1::ClusterStatus {
            cluster_name: "lab".into(),
            nodes: vec![node("n1", true, true), n2],
            volume: "www started, replica 3, bricks 3/3 online, heal pending 0".into(),
            volume_section: Some(v1::VolumeSection {
                state: "steady".into(),
                split_brain_files: vec![],
            }),
            ..Default::default()
        };
        let report = StatusReport::from_proto(&status);
        assert_eq!(
            report.nodes[1].not_ready_reason.as_deref(),
            Some("mount stale; apache down")
        );
        let text = report.render_text();
        assert!(
            text.contains("n2 not ready: mount stale; apache down"),
            "{text}"
        );
        assert!(text.contains("volume: www started"), "{text}");
        assert!(!text.contains("n1 not ready"), "{text}");
    }

    /// A node powered off for maintenance is said to be in maintenance, not unreachable,
    /// and the loop's line is shown.
    #[test]
    fn a_node_in_maintenance_is_named_so() {
        let mut n2 = node("n2", false, false);
        n2.maintenance = "operator alice".into();
        let status = v1::ClusterStatus {
            cluster_name: "lab".into(),
            nodes: vec![node("n1", true, true), n2],
            node_maintenance: "in maintenance: n2".into(),
            ..Default::default()
        };
        let report = StatusReport::from_proto(&status);
        assert_eq!(
            report.nodes[1].maintenance.as_deref(),
            Some("operator alice")
        );
        assert_eq!(report.degraded, ["n2 in maintenance (operator alice)"]);
        let text = report.render_text();
        assert!(text.contains("maintenance: in maintenance: n2"), "{text}");
        assert!(!text.contains("unreachable"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["nodes"][1]["maintenance"], "operator alice");
        assert_eq!(json["node_maintenance"], "in maintenance: n2");
    }

    #[test]
    fn jobs_show_their_holder_last_and_next_run_and_warnings() {
        let status = v1::ClusterStatus {
            cluster_name: "lab".into(),
            nodes: vec![node("n1", true, true)],
            jobs: vec![
                v1::JobFact {
                    name: "cron".into(),
                    schedule: "every 1m".into(),
                    holder: "n1".into(),
                    epoch: 3,
                    lease: "held by n1".into(),
                    last_run: Some(v1::JobRun {
                        node: "n1".into(),
                        start: 1_772_445_600,
                        duration_ms: Some(400),
                        outcome: "exit 3".into(),
                    }),
                    next_run: Some(1_772_445_660),
                    warning: "the last run on n1 ended: exit 3".into(),
                    ..Default::default()
                },
                v1::JobFact {
                    name: "probe".into(),
                    schedule: "every 10s".into(),
                    lease: "no node is live and ready to run it".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let report = StatusReport::from_proto(&status);
        let text = report.render_text();
        assert!(text.contains("job cron (every 1m): held by n1, epoch 3; last run on n1 at 2026-03-02T10:00:00Z, 0.4s, exit 3; next at 2026-03-02T10:01:00Z\n"), "{text}");
        assert!(
            text.contains("job cron: WARNING: the last run on n1 ended: exit 3\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "job probe (every 10s): no node is live and ready to run it; no run yet\n"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["jobs"][0]["holder"], "n1");
        assert_eq!(json["jobs"][0]["last_run"]["outcome"], "exit 3");
        assert_eq!(json["jobs"][1]["holder"], serde_json::Value::Null);
        assert_eq!(json["jobs"][1]["next_run"], serde_json::Value::Null);
    }

    #[test]
    fn maintenance_mode_is_a_line_and_a_section() {
        let status = v1::ClusterStatus {
            cluster_name: "lab".into(),
            nodes: vec![node("n1", true, true)],
            maintenance: Some(v1::MaintenanceSection {
                message: "Upgrading".into(),
                retry_after_secs: 120,
                allow: vec!["10.0.0.9".into()],
                since: 1_772_445_600,
                applied: false,
                error: "haproxy refused".into(),
                bypass_cookie: String::new(),
            }),
            ..Default::default()
        };
        let report = StatusReport::from_proto(&status);
        let text = report.render_text();
        assert!(text.contains("maintenance: ON since 2026-03-02T10:00:00Z: clients get 503 (Retry-After 120s) \"Upgrading\"; allowed: 10.0.0.9; NOT in place on the balancer: haproxy refused\n"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["maintenance"]["applied"], false);
        let mut octavia = status.clone();
        if let Some(m) = octavia.maintenance.as_mut() {
            m.applied = true;
            m.error.clear();
            m.bypass_cookie = "triad_maintenance_bypass=00ff".into();
        }
        let text = StatusReport::from_proto(&octavia).render_text();
        assert!(
            text.contains(
                "\"Upgrading\"; requests with the cookie triad_maintenance_bypass=00ff pass\n"
            ),
            "{text}"
        );
        let off = StatusReport::from_proto(&v1::ClusterStatus::default());
        assert_eq!(
            serde_json::to_value(&off).unwrap()["maintenance"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn an_event_is_a_line_and_a_json_object() {
        let event = v1::TimelineEvent {
            at_unix_ms: 1_772_445_600_120,
            kind: "operator".into(),
            subject: "maintenance".into(),
            text: "app maintenance off".into(),
            who: "alice (operator)".into(),
        };
        assert_eq!(
            event_line(&event),
            "2026-03-02T10:00:00.120Z operator  app maintenance off (by alice (operator))"
        );
        let json = serde_json::to_value(EventReport::from_proto(&event)).unwrap();
        assert_eq!(json["who"], "alice (operator)");
        let node = v1::TimelineEvent {
            kind: "node".into(),
            text: "n2 unreachable".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(EventReport::from_proto(&node)).unwrap()["who"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn healthy_only_when_every_node_is_live_and_ready() {
        let mut status = v1::ClusterStatus {
            cluster_name: "lab".into(),
            nodes: vec![node("n1", true, true)],
            ..Default::default()
        };
        assert!(StatusReport::from_proto(&status).healthy);
        status.nodes.push(node("n2", false, true));
        let report = StatusReport::from_proto(&status);
        assert!(!report.healthy);
        assert_eq!(
            report.summary,
            Summary {
                nodes: 2,
                live: 1,
                ready: 1
            }
        );
        status.nodes.clear();
        assert!(
            !StatusReport::from_proto(&status).healthy,
            "an empty cluster is not healthy"
        );
    }

    #[test]
    fn balancer_loop_is_reported_with_its_last_error() {
        let status = v1::ClusterStatus {
            cluster_name: "lab".into(),
            nodes: vec![node("n1", true, true)],
            balancer: Some(v1::BalancerStatus {
                kind: "octavia".into(),
                members: vec!["n1 active".into()],
                errors_total: 2,
                last_error: "load balancer lb1 is in ERROR".into(),
            }),
            ..Default::default()
        };
        let report = StatusReport::from_proto(&status);
        assert_eq!(
            report.balancer.as_ref().unwrap().last_error.as_deref(),
            Some("load balancer lb1 is in ERROR")
        );
        let text = report.render_text();
        assert!(
            text.contains("balancer: octavia members [n1 active], failing: load balancer lb1 is in ERROR (2 errors so far)"),
            "{text}"
        );
        // recovered: the error is gone, the count stays
        let mut recovered = status.clone();
        recovered.balancer.as_mut().unwrap().last_error.clear();
        let text = StatusReport::from_proto(&recovered).render_text();
        assert!(
            text.contains("balancer: octavia members [n1 active], ok (2 earlier errors)\n"),
            "{text}"
        );
    }

    #[test]
    fn text_has_a_summary_and_one_row_per_node() {
        let status = v1::ClusterStatus {
            cluster_name: "lab".into(),
            nodes: vec![node("n1", true, true), node("n2", false, false)],
            ..Default::default()
        };
        let text = StatusReport::from_proto(&status).render_text();
        assert!(
            text.starts_with("cluster lab: 2 nodes, 1 live, 1 ready — DEGRADED: n2 unreachable\n"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("n2") && l.contains("dead") && l.contains("1.5s ago")),
            "{text}"
        );
        assert!(text.contains("10.0.0.1") && text.contains("synced"));
    }

    #[test]
    fn a_dead_node_shows_what_is_not_known_as_unknown_and_when_it_was_last_seen() {
        let mut n2 = node("n2", false, true);
        n2.heartbeat_age_ms = Some(42_000);
        n2.draining = true;
        n2.not_ready_reason = "mount stale".into();
        n2.metrics = Some(v1::HostMetrics {
            cpu_percent: 12.5,
            ..Default::default()
        });
        let status = v1::ClusterStatus {
            cluster_name: "lab".into(),
            nodes: vec![node("n1", true, true), n2],
            ..Default::default()
        };
        let report = StatusReport::from_proto(&status);
        let text = report.render_text();
        let row = text.lines().find(|l| l.starts_with("n2")).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        // NODE ADDRESS ROLE STATE READY GALERA GLUSTERD BRICK MOUNT APACHE HEARTBEAT
        assert_eq!(
            cells,
            [
                "n2", "10.0.0.1", "core", "dead", "-", "-", "-", "-", "-", "-", "last", "seen",
                "42.0s", "ago"
            ],
            "{text}"
        );
        assert!(!text.contains("n2 not ready"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["schema"], STATUS_SCHEMA);
        let n2 = &json["nodes"][1];
        assert_eq!(n2["live"], false);
        for unknown in [
            "ready",
            "draining",
            "services",
            "cpu_percent",
            "mem_used_bytes",
            "not_ready_reason",
        ] {
            assert!(n2[unknown].is_null(), "{unknown}: {n2}");
        }
        assert_eq!(n2["heartbeat_age_ms"], 42_000);
        let n1 = &json["nodes"][0];
        assert_eq!(
            (n1["ready"].clone(), n1["services"]["galera"].clone()),
            (true.into(), "synced".into())
        );
        assert_eq!(json["degraded"], serde_json::json!(["n2 unreachable"]));
    }

    #[test]
    fn the_json_has_a_schema_and_a_section_per_loop_with_its_facts() {
        let status = v1::ClusterStatus {
            cluster_name: "lab".into(),
            nodes: vec![node("n1", true, true)],
            galera: "epoch 2: n1 bootstrapped; joining n2 stopped".into(),
            galera_section: Some(v1::GaleraSection {
                last_epoch: 2,
                open_decision: Some(v1::GaleraDecision {
                    epoch: 2,
                    node: "n1".into(),
                    phase: "joining".into(),
                }),
            }),
            autoscale: "12.0 req/s → recommend 3".into(),
            autoscale_section: Some(v1::AutoscaleSection {
                request_rate: Some(12.0),
                ready: 3,
                recommended: Some(3),
                removed: vec!["web-1".into()],
            }),
            tls: "mutual TLS as coordinator (coordinator), certificate valid 300 more day(s)"
                .into(),
            tls_section: Some(v1::TlsSection {
                plaintext: false,
                certificate: Some(v1::CertificateFact {
                    holder: "coordinator".into(),
                    not_after: 1_800_000_000,
                }),
                expiring: vec![v1::CertificateFact {
                    holder: "n1".into(),
                    not_after: 1_700_000_000,
                }],
            }),
            ..Default::default()
        };
        let json = serde_json::to_value(StatusReport::from_proto(&status)).unwrap();
        assert_eq!(
            json["galera"],
            serde_json::json!({
                "status": "epoch 2: n1 bootstrapped; joining n2 stopped",
                "last_epoch": 2,
                "open_decision": {"epoch": 2, "node": "n1", "phase": "joining"}
            })
        );
        assert_eq!(json["autoscale"]["request_rate"], 12.0);
        assert_eq!(json["autoscale"]["removed"], serde_json::json!(["web-1"]));
        assert_eq!(json["tls"]["plaintext"], false);
        assert_eq!(json["tls"]["certificate"]["holder"], "coordinator");
        assert_eq!(json["tls"]["expiring"][0]["holder"], "n1");
        // loops that do not run are null, not empty strings
        assert!(
            json["volume"].is_null() && json["balancer"].is_null(),
            "{json}"
        );
        let text = StatusReport::from_proto(&status).render_text();
        assert!(
            text.contains("\ngalera: epoch 2: n1 bootstrapped"),
            "{text}"
        );
        assert!(!text.contains("volume:"), "{text}");
    }
}
