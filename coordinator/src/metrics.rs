//! The coordinator's `/metrics` endpoint: Prometheus text exposition format 0.0.4.
//!
//! Inputs: at each scrape, a [`Snapshot`] taken from the sources `triadctl status` reads
//! (the cluster view built from gossip, the coordinator's certificate file, the balancer
//! loop's status; `CoordinatorGrpc::metrics_snapshot`). [`render`] turns it into the text,
//! purely. [`start`] binds `[metrics] listen` (default 127.0.0.1:9465) and answers GET
//! /metrics (404 on other paths, 405 on other methods) until [`MetricsServer::stop`].
//!
//! It drives nothing: a scrape reads state, never changes it. On error: a port that cannot
//! be bound is a [`MetricsError`] naming the address, which the binary logs before running
//! on without metrics; metrics never take the control plane down.
//!
//! Node ids come from gossip, which anyone on the cluster network can forge: every label
//! value is escaped (backslash, double quote, newline), so a hostile id cannot add lines.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::autoscale::AutoscaleStatus;
use crate::balancer::reconcile::BalancerStatus;
use crate::balancer::MemberState;
use crate::recovery::GaleraStatus;
use crate::view::ClusterView;
use crate::volume::run::VolumeStatus;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Whose certificate a [`CertificateExpiry`] is (the `role` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateRole {
    /// The coordinator's own, read from `[tls] cert` at each scrape.
    Coordinator,
    /// A node's, as its agent gossips it (`tls.not_after`).
    Node,
}

impl CertificateRole {
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateRole::Coordinator => "coordinator",
            CertificateRole::Node => "node",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateExpiry {
    /// The certificate's CN for the coordinator, the node id for a node.
    pub holder: String,
    pub role: CertificateRole,
    /// Unix seconds.
    pub not_after: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSample {
    pub node: String,
    pub live: bool,
    /// Live and gossiping ready (what the balancer serves from).
    pub ready: bool,
    pub draining: bool,
}

/// The balancer membership loop's counters and its members by state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BalancerSample {
    pub active: u64,
    pub draining: u64,
    pub maint: u64,
    pub changes_total: u64,
    pub errors_total: u64,
}

/// The recovery loop: its last epoch and the decision in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GaleraSample {
    pub last_epoch: u64,
    /// The open decision's node and phase ("bootstrapping", "joining").
    pub open: Option<(String, &'static str)>,
}

/// The autoscaling loop's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AutoscaleSample {
    pub rate: Option<f64>,
    pub ready: usize,
    pub recommended: Option<usize>,
}

/// Every word `triad_volume_state` can take (one sample each, 1 for the current state).
pub const VOLUME_STATES: [&str; 6] = [
    "not-observed",
    "unknown",
    "forming",
    "step-failed",
    "formed",
    "steady",
];

/// Everything one scrape shows; plain data, so [`render`] is testable without sockets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub cluster: String,
    pub version: String,
    /// gRPC runs without TLS (`[tls] insecure = true`).
    pub plaintext: bool,
    /// The coordinator's certificate first (absent when plaintext or unreadable), then the
    /// nodes' that gossip one.
    pub certificates: Vec<CertificateExpiry>,
    pub nodes: Vec<NodeSample>,
    /// `None` when no balancer loop runs.
    pub balancer: Option<BalancerSample>,
    /// `None` when the recovery loop does not run (`[galera] recovery = false`).
    pub galera: Option<GaleraSample>,
    /// The volume loop's state word; `None` without `[volume]`.
    pub volume: Option<&'static str>,
    /// `None` without `[autoscale]`.
    pub autoscale: Option<AutoscaleSample>,
}

/// What [`snapshot`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    pub cluster: &'a str,
    pub view: &'a ClusterView,
    /// `None`: plaintext gRPC.
    pub tls: Option<&'a triad_daemon::tls::TlsFiles>,
    pub balancer: Option<&'a BalancerStatus>,
    /// Nodes the autoscaler deleted: left out while gossip still lists them dead, as in
    /// the status.
    pub removed: &'a [String],
    pub galera: Option<&'a GaleraStatus>,
    pub volume: Option<&'a VolumeStatus>,
    pub autoscale: Option<&'a AutoscaleStatus>,
}

/// Take a snapshot; reads the coordinator's certificate file (so a renewed certificate
/// shows at once, as in the status), nothing else outside memory.
pub fn snapshot(sources: &Sources<'_>) -> Snapshot {
    let mut certificates = Vec::new();
    if let Some(files) = sources.tls {
        match files.own_identity() {
            Ok(identity) => certificates.push(CertificateExpiry {
                holder: identity.name,
                role: CertificateRole::Coordinator,
                not_after: identity.not_after,
            }),
            // the status line says why; the missing series is what an alert can see
            Err(error) => tracing::debug!(%error, "metrics: cannot read the certificate"),
        }
    }
    let shown = sources
        .view
        .members()
        .filter(|m| m.live || !sources.removed.contains(&m.node_id));
    let mut nodes = Vec::new();
    for member in shown {
        if let Some(not_after) = member
            .keys
            .tls_not_after
            .and_then(|t| i64::try_from(t).ok())
        {
            certificates.push(CertificateExpiry {
                holder: member.node_id.clone(),
                role: CertificateRole::Node,
                not_after,
            });
        }
        nodes.push(NodeSample {
            node: member.node_id.clone(),
            live: member.live,
            ready: member.serving(),
            draining: member.keys.draining,
        });
    }
    let balancer = sources.balancer.map(|status| {
        let count =
            |state: MemberState| status.members.iter().filter(|m| m.state == state).count() as u64;
        BalancerSample {
            active: count(MemberState::Active),
            draining: count(MemberState::Draining),
            maint: count(MemberState::Maint),
            changes_total: status.changes_total,
            errors_total: status.errors_total,
        }
    });
    Snapshot {
        cluster: sources.cluster.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        plaintext: sources.tls.is_none(),
        certificates,
        nodes,
        balancer,
        galera: sources.galera.map(|status| GaleraSample {
            last_epoch: status.last_epoch,
            open: status
                .open
                .as_ref()
                .map(|open| (open.node.clone(), open.phase.as_str())),
        }),
        volume: sources.volume.map(|status| status.state.as_str()),
        autoscale: sources.autoscale.map(|status| AutoscaleSample {
            rate: status.rate,
            ready: status.ready,
            recommended: status.recommended,
        }),
    }
}

/// A label value in the exposition format: backslash, double quote and newline escaped.
pub fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// One metric family: its `# HELP` and `# TYPE` lines, then its samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
        // HELP text is ours: it must not need escaping
        debug_assert!(!help.contains(['\\', '\n']), "{help}");
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(name, value)| format!("{name}=\"{}\"", escape_label_value(value)))
                .collect();
            self.out.push_str(&format!("{{{}}}", labels.join(",")));
        }
        self.out.push_str(&format!(" {value}\n"));
    }
}

/// One 0/1 gauge of a node.
type NodeFlag = fn(&NodeSample) -> bool;

/// The exposition text of `snapshot`.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let flag = |b: bool| u8::from(b);
    Family::new(
        &mut out,
        "triad_coordinator_info",
        "gauge",
        "The coordinator's cluster and version (always 1).",
    )
    .sample(
        &[
            ("cluster", &snapshot.cluster),
            ("version", &snapshot.version),
        ],
        1,
    );
    Family::new(
        &mut out,
        "triad_tls_plaintext",
        "gauge",
        "1 when gRPC runs without TLS ([tls] insecure = true).",
    )
    .sample(&[], flag(snapshot.plaintext));
    if !snapshot.certificates.is_empty() {
        let mut family = Family::new(
            &mut out,
            "triad_tls_certificate_expiry_timestamp_seconds",
            "gauge",
            "When a gRPC certificate expires (Unix seconds): the coordinator's own and each node's from its gossip.",
        );
        for certificate in &snapshot.certificates {
            family.sample(
                &[
                    ("holder", &certificate.holder),
                    ("role", certificate.role.as_str()),
                ],
                certificate.not_after,
            );
        }
    }
    if !snapshot.nodes.is_empty() {
        let node_families: [(&'static str, &str, NodeFlag); 3] = [
            (
                "triad_node_live",
                "1 when gossip's failure detector holds the node live.",
                |n| n.live,
            ),
            (
                "triad_node_ready",
                "1 when the node is live and gossips ready (the balancer's candidates).",
                |n| n.ready,
            ),
            ("triad_node_draining", "1 when the node is draining.", |n| {
                n.draining
            }),
        ];
        for (name, help, value) in node_families {
            let mut family = Family::new(&mut out, name, "gauge", help);
            for node in &snapshot.nodes {
                family.sample(&[("node", &node.node)], flag(value(node)));
            }
        }
    }
    if let Some(balancer) = &snapshot.balancer {
        let mut family = Family::new(
            &mut out,
            "triad_balancer_members",
            "gauge",
            "Load balancer members by state.",
        );
        family.sample(&[("state", "active")], balancer.active);
        family.sample(&[("state", "draining")], balancer.draining);
        family.sample(&[("state", "maint")], balancer.maint);
        Family::new(
            &mut out,
            "triad_balancer_member_changes_total",
            "counter",
            "Member changes the balancer loop applied since the coordinator started.",
        )
        .sample(&[], balancer.changes_total);
        Family::new(
            &mut out,
            "triad_balancer_errors_total",
            "counter",
            "Failed balancer loop rounds since the coordinator started.",
        )
        .sample(&[], balancer.errors_total);
    }
    if let Some(galera) = &snapshot.galera {
        Family::new(
            &mut out,
            "triad_galera_epoch",
            "gauge",
            "The last bootstrap epoch the coordinator decided (0: never).",
        )
        .sample(&[], galera.last_epoch);
        let mut family = Family::new(
            &mut out,
            "triad_galera_decision_open",
            "gauge",
            "1 while a bootstrap decision is in flight (its node and phase as labels).",
        );
        match &galera.open {
            Some((node, phase)) => family.sample(&[("node", node), ("phase", phase)], 1),
            None => family.sample(&[], 0),
        }
    }
    if let Some(volume) = snapshot.volume {
        let mut family = Family::new(
            &mut out,
            "triad_volume_state",
            "gauge",
            "The Gluster volume as the volume loop last saw it (1 for the current state).",
        );
        for state in VOLUME_STATES {
            family.sample(&[("state", state)], flag(state == volume));
        }
    }
    if let Some(autoscale) = &snapshot.autoscale {
        if let Some(rate) = autoscale.rate {
            Family::new(
                &mut out,
                "triad_autoscale_request_rate",
                "gauge",
                "Requests per second over the ready nodes, as the autoscaler measures it.",
            )
            .sample(&[], format!("{rate:.3}"));
        }
        Family::new(
            &mut out,
            "triad_autoscale_ready_nodes",
            "gauge",
            "Nodes ready to serve, as the autoscaler counts them.",
        )
        .sample(&[], autoscale.ready);
        if let Some(recommended) = autoscale.recommended {
            Family::new(
                &mut out,
                "triad_autoscale_recommended_nodes",
                "gauge",
                "The node count the autoscaling policy recommends.",
            )
            .sample(&[], recommended);
        }
    }
    out
}

/// Called at each scrape.
pub type SnapshotSource = Arc<dyn Fn() -> Snapshot + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen for metrics on {addr} (metrics.listen): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the metrics listener has no local address: {0}")]
    LocalAddr(std::io::Error),
}

/// A running `/metrics` server; [`MetricsServer::stop`] ends it.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// The bound address (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, let scrapes in flight finish for up to 2 s, then drop them.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// Bind `listen` and serve; the error names the address.
pub async fn start(
    listen: SocketAddr,
    source: SnapshotSource,
) -> Result<MetricsServer, MetricsError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| MetricsError::Bind {
            addr: listen,
            source,
        })?;
    if listen.ip().is_unspecified() {
        tracing::warn!(address = %listen, "metrics on a wildcard address: whoever reaches the port reads node names and certificate expiry");
    }
    serve(listener, source)
}

/// Serve on a bound listener (tests bind 127.0.0.1:0).
pub fn serve(listener: TcpListener, source: SnapshotSource) -> Result<MetricsServer, MetricsError> {
    let addr = listener.local_addr().map_err(MetricsError::LocalAddr)?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let source = source.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                    render(&source()),
                )
            }
        }),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        if let Err(error) = served {
            tracing::error!(address = %addr, %error, "metrics server stopped");
        }
    });
    tracing::info!(address = %addr, "serving /metrics");
    Ok(MetricsServer { addr, stop, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Snapshot {
        Snapshot {
            cluster: "lab".into(),
            version: "0.1.0".into(),
            plaintext: false,
            certificates: vec![
                CertificateExpiry {
                    holder: "coordinator".into(),
                    role: CertificateRole::Coordinator,
                    not_after: 1_800_000_000,
                },
                CertificateExpiry {
                    holder: "n1".into(),
                    role: CertificateRole::Node,
                    not_after: 1_790_000_000,
                },
            ],
            nodes: vec![
                NodeSample {
                    node: "n1".into(),
                    live: true,
                    ready: true,
                    draining: false,
                },
                NodeSample {
                    node: "n2".into(),
                    live: false,
                    ready: false,
                    draining: true,
                },
            ],
            balancer: Some(BalancerSample {
                active: 1,
                draining: 1,
                maint: 0,
                changes_total: 7,
                errors_total: 2,
            }),
            ..Default::default()
        }
    }

    /// Every non-comment line is `name{labels} value` with a family declared above it.
    fn assert_well_formed(text: &str) {
        let mut declared: Vec<&str> = Vec::new();
        assert!(text.ends_with('\n'), "{text}");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["gauge", "counter"].contains(&kind), "{line}");
                assert!(!declared.contains(&name), "{name} declared twice");
                declared.push(name);
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..name_end];
            assert_eq!(
                declared.last(),
                Some(&name),
                "sample outside its family: {line}"
            );
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn render_writes_help_type_and_samples_per_family() {
        let text = render(&example());
        assert_well_formed(&text);
        let expected = [
            "# HELP triad_tls_certificate_expiry_timestamp_seconds When a gRPC certificate expires",
            "# TYPE triad_tls_certificate_expiry_timestamp_seconds gauge\n",
            "triad_tls_certificate_expiry_timestamp_seconds{holder=\"coordinator\",role=\"coordinator\"} 1800000000\n",
            "triad_tls_certificate_expiry_timestamp_seconds{holder=\"n1\",role=\"node\"} 1790000000\n",
            "# TYPE triad_tls_plaintext gauge\ntriad_tls_plaintext 0\n",
            "triad_coordinator_info{cluster=\"lab\",version=\"0.1.0\"} 1\n",
            "triad_node_ready{node=\"n1\"} 1\ntriad_node_ready{node=\"n2\"} 0\n",
            "triad_node_live{node=\"n2\"} 0\n",
            "triad_node_draining{node=\"n2\"} 1\n",
            "triad_balancer_members{state=\"active\"} 1\n",
            "triad_balancer_members{state=\"maint\"} 0\n",
            "# TYPE triad_balancer_member_changes_total counter\ntriad_balancer_member_changes_total 7\n",
            "# TYPE triad_balancer_errors_total counter\ntriad_balancer_errors_total 2\n",
        ];
        for line in expected {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn plaintext_without_nodes_or_balancer_omits_their_families() {
        let snapshot = Snapshot {
            cluster: "lab".into(),
            version: "0.1.0".into(),
            plaintext: true,
            ..Default::default()
        };
        let text = render(&snapshot);
        assert_well_formed(&text);
        assert!(text.contains("\ntriad_tls_plaintext 1\n"), "{text}");
        for absent in [
            "triad_tls_certificate_expiry_timestamp_seconds",
            "triad_node_",
            "triad_balancer_",
            "triad_galera_",
            "triad_volume_",
            "triad_autoscale_",
        ] {
            assert!(!text.contains(absent), "{absent} in\n{text}");
        }
    }

    #[test]
    fn the_loops_show_their_decision_volume_state_and_request_rate() {
        let snapshot = Snapshot {
            cluster: "lab".into(),
            version: "0.1.0".into(),
            galera: Some(GaleraSample {
                last_epoch: 3,
                open: Some(("n2".into(), "joining")),
            }),
            volume: Some("formed"),
            autoscale: Some(AutoscaleSample {
                rate: Some(12.5),
                ready: 3,
                recommended: Some(4),
            }),
            ..Default::default()
        };
        let text = render(&snapshot);
        assert_well_formed(&text);
        for line in [
            "\ntriad_galera_epoch 3\n",
            "\ntriad_galera_decision_open{node=\"n2\",phase=\"joining\"} 1\n",
            "\ntriad_volume_state{state=\"formed\"} 1\n",
            "\ntriad_volume_state{state=\"steady\"} 0\n",
            "\ntriad_autoscale_request_rate 12.500\n",
            "\ntriad_autoscale_ready_nodes 3\n",
            "\ntriad_autoscale_recommended_nodes 4\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        let idle = Snapshot {
            galera: Some(GaleraSample::default()),
            ..Default::default()
        };
        let text = render(&idle);
        assert!(text.contains("\ntriad_galera_decision_open 0\n"), "{text}");
    }

    #[test]
    fn a_hostile_node_id_stays_inside_its_label_value() {
        let hostile = "n9\"} 1\ntriad_tls_plaintext 0\n# \\";
        let mut snapshot = example();
        snapshot.certificates.push(CertificateExpiry {
            holder: hostile.into(),
            role: CertificateRole::Node,
            not_after: 1,
        });
        snapshot.nodes.push(NodeSample {
            node: hostile.into(),
            live: true,
            ready: true,
            draining: false,
        });
        let text = render(&snapshot);
        assert_well_formed(&text);
        let escaped = r#"n9\"} 1\ntriad_tls_plaintext 0\n# \\"#;
        assert_eq!(escape_label_value(hostile), escaped);
        assert!(
            text.contains(&format!("triad_node_ready{{node=\"{escaped}\"}} 1\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "triad_tls_certificate_expiry_timestamp_seconds{{holder=\"{escaped}\",role=\"node\"}} 1\n"
            )),
            "{text}"
        );
        // no line was injected: one plaintext sample, the real one
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("triad_tls_plaintext"))
                .count(),
            1,
            "{text}"
        );
    }

    fn member(
        id: &str,
        generation: u64,
        live: bool,
        not_after: Option<u64>,
    ) -> triad_cluster::membership::ObservedMember {
        let mut keys = triad_proto::gossip::NodeKeys::initial(
            triad_proto::gossip::Role::Core,
            "10.0.0.1:7421".parse().unwrap(),
            "0.1.0",
        );
        keys.ready = true;
        keys.tls_not_after = not_after;
        triad_cluster::membership::ObservedMember {
            node_id: id.into(),
            generation,
            gossip_addr: "10.0.0.1:7420".parse().unwrap(),
            live,
            is_self: false,
            keys,
            decode_errors: vec![],
        }
    }

    #[test]
    fn snapshot_omits_nodes_without_a_certificate_and_nodes_the_autoscaler_removed() {
        let mut view = ClusterView::default();
        view.apply(
            &[
                member("n1", 1, true, Some(1_790_000_000)),
                member("n2", 1, true, None),
                member("n3", 1, false, Some(1_795_000_000)),
                member("web-1", 1, false, Some(1_796_000_000)),
            ],
            tokio::time::Instant::now(),
        );
        let removed = vec!["web-1".to_string(), "n2".to_string()];
        let snapshot = snapshot(&Sources {
            cluster: "lab",
            view: &view,
            tls: None,
            balancer: None,
            removed: &removed,
            galera: None,
            volume: None,
            autoscale: None,
        });
        assert!(snapshot.plaintext);
        // n2 has no certificate key; web-1 is dead and removed; n2, live, stays a node
        assert_eq!(
            snapshot
                .certificates
                .iter()
                .map(|c| (c.holder.as_str(), c.role, c.not_after))
                .collect::<Vec<_>>(),
            [
                ("n1", CertificateRole::Node, 1_790_000_000),
                ("n3", CertificateRole::Node, 1_795_000_000),
            ]
        );
        assert_eq!(
            snapshot
                .nodes
                .iter()
                .map(|n| (n.node.as_str(), n.live, n.ready))
                .collect::<Vec<_>>(),
            [("n1", true, true), ("n2", true, true), ("n3", false, false)]
        );
        let text = render(&snapshot);
        assert!(!text.contains("holder=\"n2\""), "{text}");
        assert!(!text.contains("web-1"), "{text}");
    }
}
