//! `triadctl status`: the coordinator's `v1::ClusterStatus` as one serde model, rendered
//! as text or as JSON (the stable contract).

use serde::Serialize;
use triad_proto::v1;

/// `triadctl status --output json`: field names are a stable contract.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatusReport {
    pub cluster: String,
    /// Galera formation/recovery: what the coordinator is doing or waiting for.
    pub galera: String,
    /// The balancer membership loop, when one is configured.
    pub balancer: Option<BalancerReport>,
    /// The Gluster volume: formation step or health; empty when not managed.
    pub volume: String,
    /// Autoscaling: rate, target, recommendation and why; empty when not configured.
    pub autoscale: String,
    /// gRPC security: mutual TLS and the certificate's days left, or plaintext.
    pub tls: String,
    pub coordinator_version: String,
    pub healthy: bool,
    /// What keeps the cluster from healthy, a few words per node: "n2 unreachable",
    /// "n3 not ready: brick healing". Empty when healthy.
    pub degraded: Vec<String>,
    pub summary: Summary,
    pub nodes: Vec<NodeRow>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BalancerReport {
    pub kind: String,
    pub members: Vec<String>,
    pub errors_total: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub nodes: usize,
    pub live: usize,
    pub ready: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeRow {
    pub id: String,
    pub address: String,
    pub grpc: String,
    pub role: String,
    pub generation: u64,
    pub live: bool,
    pub ready: bool,
    pub draining: bool,
    pub services: std::collections::BTreeMap<String, String>,
    pub heartbeat_age_ms: Option<u64>,
    pub version: String,
    pub cpu_percent: f64,
    pub mem_used_bytes: u64,
    pub decode_errors: Vec<String>,
    /// Why the node is not ready; absent when ready.
    pub not_ready_reason: Option<String>,
}

/// Pure: the nodes that keep the cluster from healthy, and why (a node gossip calls dead is
/// "unreachable": cut off or down, the coordinator cannot tell which).
fn degraded(nodes: &[NodeRow]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| {
            if !n.live {
                Some(format!("{} unreachable", n.id))
            } else if !n.ready {
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

impl StatusReport {
    pub fn from_proto(status: &v1::ClusterStatus) -> StatusReport {
        let nodes: Vec<NodeRow> = status
            .nodes
            .iter()
            .map(|node| NodeRow {
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
                live: node.live,
                ready: node.ready,
                draining: node.draining,
                services: node
                    .services
                    .iter()
                    .map(|s| (s.name.clone(), s.state.clone()))
                    .collect(),
                heartbeat_age_ms: node.heartbeat_age_ms,
                version: node.agent_version.clone(),
                cpu_percent: node.metrics.as_ref().map(|m| m.cpu_percent).unwrap_or(0.0),
                mem_used_bytes: node.metrics.as_ref().map(|m| m.mem_used_bytes).unwrap_or(0),
                decode_errors: node.decode_errors.clone(),
                not_ready_reason: (!node.not_ready_reason.is_empty())
                    .then(|| node.not_ready_reason.clone()),
            })
            .collect();
        let summary = Summary {
            nodes: nodes.len(),
            live: nodes.iter().filter(|n| n.live).count(),
            ready: nodes.iter().filter(|n| n.live && n.ready).count(),
        };
        StatusReport {
            cluster: status.cluster_name.clone(),
            galera: status.galera.clone(),
            volume: status.volume.clone(),
            autoscale: status.autoscale.clone(),
            tls: status.tls.clone(),
            balancer: status.balancer.as_ref().map(|b| BalancerReport {
                kind: b.kind.clone(),
                members: b.members.clone(),
                errors_total: b.errors_total,
                last_error: (!b.last_error.is_empty()).then(|| b.last_error.clone()),
            }),
            coordinator_version: status.coordinator_version.clone(),
            healthy: summary.nodes > 0 && summary.ready == summary.nodes,
            degraded: degraded(&nodes),
            summary,
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
        if !self.galera.is_empty() {
            out.insert_str(out.len() - 1, &format!("galera: {}\n", self.galera));
        }
        if !self.volume.is_empty() {
            out.insert_str(out.len() - 1, &format!("volume: {}\n", self.volume));
        }
        if !self.autoscale.is_empty() {
            out.insert_str(out.len() - 1, &format!("autoscale: {}\n", self.autoscale));
        }
        if !self.tls.is_empty() {
            out.insert_str(out.len() - 1, &format!("tls: {}\n", self.tls));
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
            let service = |name: &str| {
                node.services
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| "unknown".into())
            };
            rows.push(vec![
                node.id.clone(),
                node.address.clone(),
                node.role.clone(),
                if node.live { "live" } else { "dead" }.into(),
                if node.draining {
                    "draining".into()
                } else if node.ready {
                    "yes".into()
                } else {
                    "no".into()
                },
                service("galera"),
                service("gluster.daemon"),
                service("gluster.brick"),
                service("mount"),
                service("apache"),
                match node.heartbeat_age_ms {
                    Some(ms) => format!("{:.1}s ago", ms as f64 / 1000.0),
                    None => "never".into(),
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
            if let (true, Some(reason)) = (node.live && !node.ready, &node.not_ready_reason) {
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
    fn not_ready_reason_and_volume_are_shown() {
        let mut n2 = node("n2", true, false);
        n2.not_ready_reason = "mount stale; apache down".into();
        let status = v1::ClusterStatus {
            cluster_name: "lab".into(),
            nodes: vec![node("n1", true, true), n2],
            volume: "www started, replica 3, bricks 3/3 online, heal pending 0".into(),
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
}
