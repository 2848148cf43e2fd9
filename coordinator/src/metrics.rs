//! The coordinator's `/metrics` endpoint: OpenMetrics text (`prometheus-client`'s encoder,
//! which Prometheus scrapes and `promtool check metrics` reads).
//!
//! Inputs: at each scrape, a [`Snapshot`] taken from the sources `triadctl status` reads
//! (the cluster view built from gossip, the coordinator's certificate file, the loops'
//! typed status, the events timeline; `CoordinatorGrpc::metrics_snapshot`). [`render`]
//! turns it into a registry and the text, purely. [`start`] binds `[metrics] listen`
//! (default 127.0.0.1:9465) and answers GET /metrics (404 on other paths, 405 on other
//! methods) until [`MetricsServer::stop`].
//!
//! It drives nothing: a scrape reads state, never changes it. On error: a port that cannot
//! be bound is a [`MetricsError`] naming the address, which the binary logs before running
//! on without metrics; metrics never take the control plane down.
//!
//! Node ids come from gossip, which anyone on the cluster network can forge: the encoder
//! escapes every label value (backslash, double quote, newline), so a hostile id cannot
//! add lines. The shipped alert rules over these names are in
//! packaging/coordinator/triad-alerts.yml.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use triad_proto::gossip::GaleraKeys;

use crate::autoscale::AutoscaleStatus;
use crate::balancer::reconcile::BalancerStatus;
use crate::balancer::MemberState;
use crate::recovery::{FinishedDecision, GaleraStatus};
use crate::view::ClusterView;
use crate::volume::run::VolumeStatus;

/// The `Content-Type` of OpenMetrics text (what Prometheus asks for).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The `Content-Type` of the older text format 0.0.4 (for clients that do not ask for
/// OpenMetrics: curl, `promtool check metrics`).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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

#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeSample {
    pub node: String,
    pub live: bool,
    /// Live and gossiping ready (what the balancer serves from).
    pub ready: bool,
    pub draining: bool,
    /// In node maintenance (kept for a dead node: one powered off for it is expected).
    pub maintenance: bool,
    /// Each service and its state word, as gossiped (`NodeKeys::service_states`); empty
    /// for a dead node (its last words are stale).
    pub services: Vec<(&'static str, &'static str)>,
    /// The Galera facts it gossips (the default for a dead node).
    pub galera: GaleraKeys,
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

/// The recovery loop: its last epoch, the decision in flight, the last one finished.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GaleraSample {
    pub last_epoch: u64,
    /// The open decision's node and phase ("bootstrapping", "joining").
    pub open: Option<(String, &'static str)>,
    /// How long the open decision has run, in seconds.
    pub open_secs: Option<f64>,
    pub last_decision: Option<FinishedDecision>,
}

/// The volume loop: its state word and the bricks it last saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeSample {
    pub state: &'static str,
    /// (brick, online, heal entries pending when counted).
    pub bricks: Vec<(String, bool, Option<u64>)>,
    /// Entries in split-brain per brick, when counted.
    pub split_brain: Vec<(String, u64)>,
}

/// The autoscaling loop's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AutoscaleSample {
    pub rate: Option<f64>,
    pub ready: usize,
    pub recommended: Option<usize>,
    /// Autoscaled nodes in a step, by phase.
    pub steps: BTreeMap<&'static str, usize>,
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
    /// `None` without `[volume]`.
    pub volume: Option<VolumeSample>,
    /// `None` without `[autoscale]`.
    pub autoscale: Option<AutoscaleSample>,
    /// Events recorded since the coordinator started, by kind (`None`: no timeline).
    pub events: Option<BTreeMap<String, u64>>,
    /// `None` without `[backup]`.
    pub backup: Option<BackupSample>,
}

/// Backups as `/metrics` shows them (from `crate::backup::Backups::sample`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BackupSample {
    /// The newest complete backup: created (Unix seconds), bytes, stored bytes, seconds.
    pub last: Option<(f64, u64, u64, f64)>,
    /// The status warns (the last attempt failed, or the newest is older than allowed).
    pub warning: bool,
    pub running: bool,
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
    pub events: Option<&'a BTreeMap<String, u64>>,
    pub backup: Option<&'a BackupSample>,
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
            maintenance: member.keys.maintenance.is_some(),
            services: if member.live {
                member.keys.service_states()
            } else {
                Vec::new()
            },
            galera: if member.live {
                member.keys.galera.clone()
            } else {
                GaleraKeys::default()
            },
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
            open_secs: status
                .open
                .as_ref()
                .and(status.open_since)
                .map(|since| since.elapsed().as_secs_f64()),
            last_decision: status.last_decision.clone(),
        }),
        volume: sources.volume.map(|status| VolumeSample {
            state: status.state.as_str(),
            bricks: status
                .bricks
                .iter()
                .map(|b| (b.name.clone(), b.online, b.heal_pending))
                .collect(),
            split_brain: status
                .bricks
                .iter()
                .filter_map(|b| b.split_brain.map(|n| (b.name.clone(), n)))
                .collect(),
        }),
        autoscale: sources.autoscale.map(|status| AutoscaleSample {
            rate: status.rate,
            ready: status.ready,
            recommended: status.recommended,
            steps: status
                .steps
                .values()
                .fold(BTreeMap::new(), |mut by, phase| {
                    *by.entry(*phase).or_default() += 1;
                    by
                }),
        }),
        events: sources.events.cloned(),
        backup: sources.backup.cloned(),
    }
}

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn gauge(value: i64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(value);
    gauge
}

fn float_gauge(value: f64) -> FloatGauge {
    let gauge = FloatGauge::default();
    gauge.set(value);
    gauge
}

fn counter(value: u64) -> Counter {
    let counter = Counter::default();
    counter.inc_by(value);
    counter
}

/// A family of integer gauges, one per label set.
fn gauges(samples: impl IntoIterator<Item = (Labels, i64)>) -> Family<Labels, Gauge> {
    let family = Family::<Labels, Gauge>::default();
    for (labels, value) in samples {
        family.get_or_create(&labels).set(value);
    }
    family
}

fn nonnegative(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The registry of `snapshot`: every family with its help and type.
pub fn registry(snapshot: &Snapshot) -> Registry {
    let mut r = Registry::default();
    let flag = |b: bool| i64::from(b);
    r.register(
        "triad_coordinator",
        "The coordinator's cluster and version",
        Info::new(labels(&[
            ("cluster", &snapshot.cluster),
            ("version", &snapshot.version),
        ])),
    );
    r.register(
        "triad_tls_plaintext",
        "1 when gRPC runs without TLS ([tls] insecure = true)",
        gauge(flag(snapshot.plaintext)),
    );
    if !snapshot.certificates.is_empty() {
        r.register(
            "triad_tls_certificate_expiry_timestamp_seconds",
            "When a gRPC certificate expires (Unix seconds): the coordinator's own and each node's from its gossip",
            gauges(snapshot.certificates.iter().map(|c| {
                (
                    labels(&[("holder", &c.holder), ("role", c.role.as_str())]),
                    c.not_after,
                )
            })),
        );
    }
    if !snapshot.nodes.is_empty() {
        let nodes = &snapshot.nodes;
        let per_node = |value: fn(&NodeSample) -> bool| {
            gauges(
                nodes
                    .iter()
                    .map(|n| (labels(&[("node", &n.node)]), flag(value(n)))),
            )
        };
        r.register(
            "triad_node_live",
            "1 when gossip's failure detector holds the node live",
            per_node(|n| n.live),
        );
        r.register(
            "triad_node_ready",
            "1 when the node is live and gossips ready (the balancer's candidates)",
            per_node(|n| n.ready),
        );
        r.register(
            "triad_node_draining",
            "1 when the node is draining",
            per_node(|n| n.draining),
        );
        r.register(
            "triad_node_maintenance",
            "1 when the node is in maintenance (`triadctl maintenance NODE on`, or shutting down)",
            per_node(|n| n.maintenance),
        );
        r.register(
            "triad_node_service_state",
            "Each service of a live node in its gossiped state (1 for the current state word)",
            gauges(nodes.iter().flat_map(|n| {
                n.services.iter().map(|(service, state)| {
                    (
                        labels(&[("node", &n.node), ("service", service), ("state", state)]),
                        1,
                    )
                })
            })),
        );
        let galera = |value: fn(&GaleraKeys) -> Option<i64>| {
            gauges(
                nodes
                    .iter()
                    .filter_map(|n| value(&n.galera).map(|v| (labels(&[("node", &n.node)]), v))),
            )
        };
        r.register(
            "triad_galera_cluster_size",
            "wsrep_cluster_size as each live node reports it",
            galera(|g| g.size.map(i64::from)),
        );
        r.register(
            "triad_galera_primary",
            "1 when the node's wsrep_cluster_status is Primary, 0 when it is not (absent while unknown)",
            galera(|g| {
                g.cluster_status
                    .as_deref()
                    .map(|s| i64::from(s == "Primary"))
            }),
        );
        r.register(
            "triad_galera_recv_queue",
            "wsrep_local_recv_queue: write sets waiting to be applied on the node",
            galera(|g| g.recv_queue.map(nonnegative)),
        );
        let paused = Family::<Labels, FloatCounter>::default();
        let failures = Family::<Labels, Counter>::default();
        for n in nodes {
            let node = labels(&[("node", &n.node)]);
            if let Some(ns) = n.galera.flow_control_paused_ns {
                paused.get_or_create(&node).inc_by(ns as f64 / 1e9);
            }
            if let Some(count) = n.galera.cert_failures {
                failures.get_or_create(&node).inc_by(count);
            }
        }
        r.register(
            "triad_galera_flow_control_paused_seconds",
            "Time replication was paused by flow control since mysqld started (wsrep_flow_control_paused_ns); its rate is the paused fraction",
            paused,
        );
        r.register(
            "triad_galera_cert_failures",
            "wsrep_local_cert_failures: transactions that failed certification since mysqld started",
            failures,
        );
    }
    if let Some(balancer) = &snapshot.balancer {
        r.register(
            "triad_balancer_members",
            "Load balancer members by state",
            gauges([
                (labels(&[("state", "active")]), nonnegative(balancer.active)),
                (
                    labels(&[("state", "draining")]),
                    nonnegative(balancer.draining),
                ),
                (labels(&[("state", "maint")]), nonnegative(balancer.maint)),
            ]),
        );
        r.register(
            "triad_balancer_member_changes",
            "Member changes the balancer loop applied since the coordinator started",
            counter(balancer.changes_total),
        );
        r.register(
            "triad_balancer_errors",
            "Failed balancer loop rounds since the coordinator started",
            counter(balancer.errors_total),
        );
    }
    if let Some(galera) = &snapshot.galera {
        r.register(
            "triad_galera_epoch",
            "The last bootstrap epoch the coordinator decided (0: never)",
            gauge(nonnegative(galera.last_epoch)),
        );
        r.register(
            "triad_galera_decision_open",
            "1 while a bootstrap decision is in flight (its node and phase as labels)",
            gauges([match &galera.open {
                Some((node, phase)) => (labels(&[("node", node), ("phase", phase)]), 1),
                None => (Labels::new(), 0),
            }]),
        );
        if let Some(secs) = galera.open_secs {
            r.register(
                "triad_galera_decision_open_seconds",
                "How long the bootstrap decision in flight has run",
                float_gauge(secs),
            );
        }
        if let Some(last) = &galera.last_decision {
            let family = Family::<Labels, FloatGauge>::default();
            let epoch = last.epoch.to_string();
            let mut phases = vec![("joining", last.joining_secs), ("total", last.total_secs)];
            if let Some(secs) = last.bootstrapping_secs {
                phases.insert(0, ("bootstrapping", secs));
            }
            for (phase, secs) in phases {
                family
                    .get_or_create(&labels(&[("epoch", &epoch), ("phase", phase)]))
                    .set(secs);
            }
            r.register(
                "triad_galera_last_decision_seconds",
                "The last finished bootstrap decision's duration by phase (total: from the decision to every node joined)",
                family,
            );
        }
    }
    if let Some(volume) = &snapshot.volume {
        r.register(
            "triad_volume_state",
            "The Gluster volume as the volume loop last saw it (1 for the current state)",
            gauges(
                VOLUME_STATES
                    .iter()
                    .map(|state| (labels(&[("state", state)]), flag(*state == volume.state))),
            ),
        );
        if !volume.bricks.is_empty() {
            r.register(
                "triad_volume_brick_online",
                "1 when the brick's process is online, as the volume loop last saw it",
                gauges(
                    volume
                        .bricks
                        .iter()
                        .map(|(brick, online, _)| (labels(&[("brick", brick)]), flag(*online))),
                ),
            );
            r.register(
                "triad_volume_heal_pending_entries",
                "Entries the brick has left to heal (gluster volume heal info; absent until counted)",
                gauges(volume.bricks.iter().filter_map(|(brick, _, pending)| {
                    pending.map(|n| (labels(&[("brick", brick)]), nonnegative(n)))
                })),
            );
            r.register(
                "triad_volume_split_brain_entries",
                "Entries in split-brain on the brick (the app gets I/O errors on them until an operator resolves them)",
                gauges(
                    volume
                        .split_brain
                        .iter()
                        .map(|(brick, n)| (labels(&[("brick", brick)]), nonnegative(*n))),
                ),
            );
        }
    }
    if let Some(autoscale) = &snapshot.autoscale {
        if let Some(rate) = autoscale.rate {
            r.register(
                "triad_autoscale_request_rate",
                "Requests per second over the ready nodes, as the autoscaler measures it",
                float_gauge(rate),
            );
        }
        r.register(
            "triad_autoscale_ready_nodes",
            "Nodes ready to serve, as the autoscaler counts them",
            gauge(autoscale.ready as i64),
        );
        if let Some(recommended) = autoscale.recommended {
            r.register(
                "triad_autoscale_recommended_nodes",
                "The node count the autoscaling policy recommends",
                gauge(recommended as i64),
            );
        }
        r.register(
            "triad_autoscale_nodes",
            "Autoscaled nodes by the phase of their step (serving: launched and serving)",
            gauges(crate::autoscale::scaler::Phase::ALL.iter().map(|phase| {
                let count = autoscale.steps.get(phase.as_str()).copied().unwrap_or(0);
                (labels(&[("phase", phase.as_str())]), count as i64)
            })),
        );
    }
    if let Some(backup) = &snapshot.backup {
        if let Some((created, bytes, stored, seconds)) = backup.last {
            r.register(
                "triad_backup_last_success_timestamp_seconds",
                "When the newest complete backup was started (Unix seconds)",
                float_gauge(created),
            );
            r.register(
                "triad_backup_last_size_bytes",
                "The newest complete backup: database and files, uncompressed",
                gauge(nonnegative(bytes)),
            );
            r.register(
                "triad_backup_last_stored_bytes",
                "The newest complete backup as stored (compressed, encrypted)",
                gauge(nonnegative(stored)),
            );
            r.register(
                "triad_backup_last_duration_seconds",
                "How long the newest complete backup took",
                float_gauge(seconds),
            );
        }
        r.register(
            "triad_backup_warning",
            "1 when the last backup attempt failed or the newest backup is older than the schedule allows",
            gauge(flag(backup.warning)),
        );
        r.register(
            "triad_backup_running",
            "1 while a backup is being taken",
            gauge(flag(backup.running)),
        );
    }
    if let Some(events) = &snapshot.events {
        let family = Family::<Labels, Counter>::default();
        for kind in [
            "node",
            "balancer",
            "recovery",
            "job",
            "autoscale",
            "operator",
            "backup",
        ] {
            // every kind present from the start, so rate() sees the first one
            let _ = family.get_or_create(&labels(&[("kind", kind)]));
        }
        for (kind, count) in events {
            family
                .get_or_create(&labels(&[("kind", kind)]))
                .inc_by(*count);
        }
        r.register(
            "triad_events",
            "Timeline events recorded since the coordinator started, by kind",
            family,
        );
    }
    r
}

/// The exposition text of `snapshot` (OpenMetrics, ending in `# EOF`).
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    // writing into a String cannot fail
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry(snapshot));
    out
}

/// The same samples in the text format 0.0.4: a counter family is named with its `_total`
/// and an info family becomes the gauge `<name>_info`, `# UNIT` and `# EOF` go. Pure; the
/// samples themselves are the same in both formats.
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "unknown" => (name.to_string(), "untyped"),
                other => (name.to_string(), other),
            };
            if let Some((_, text)) = help.take() {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
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

/// A running `/metrics` server; `stop` ends it.
pub type MetricsServer = crate::http_server::HttpServer;

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
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let source = source.clone();
            async move {
                let text = render(&source());
                // Prometheus asks for OpenMetrics; others get the text format 0.0.4
                let openmetrics = headers
                    .get_all(axum::http::header::ACCEPT)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| v.contains("application/openmetrics-text"));
                if openmetrics {
                    ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], text)
                } else {
                    (
                        [(axum::http::header::CONTENT_TYPE, TEXT_CONTENT_TYPE)],
                        openmetrics_to_text(&text),
                    )
                }
            }
        }),
    );
    MetricsServer::serve(listener, app, "/metrics").map_err(MetricsError::LocalAddr)
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
                    services: vec![("galera", "synced"), ("apache", "running")],
                    galera: GaleraKeys {
                        cluster_status: Some("Primary".into()),
                        size: Some(3),
                        flow_control_paused_ns: Some(1_500_000_000),
                        recv_queue: Some(2),
                        cert_failures: Some(7),
                        ..GaleraKeys::default()
                    },
                    ..NodeSample::default()
                },
                NodeSample {
                    node: "n2".into(),
                    live: false,
                    ready: false,
                    draining: true,
                    maintenance: true,
                    ..NodeSample::default()
                },
            ],
            balancer: Some(BalancerSample {
                active: 1,
                draining: 1,
                maint: 0,
                changes_total: 7,
                errors_total: 2,
            }),
            events: Some(BTreeMap::from([("node".to_string(), 4)])),
            backup: None,
            ..Default::default()
        }
    }

    /// OpenMetrics as Prometheus reads it: every sample belongs to the family declared
    /// last (a counter's samples end in `_total`, an info's in `_info`), values are
    /// numbers, and the text ends with `# EOF`.
    fn assert_well_formed(text: &str) {
        let mut declared: Vec<(&str, &str)> = Vec::new();
        assert!(text.ends_with("# EOF\n"), "{text}");
        for line in text.lines() {
            if line == "# EOF" {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["gauge", "counter", "info"].contains(&kind), "{line}");
                assert!(
                    !declared.iter().any(|(n, _)| *n == name),
                    "{name} declared twice"
                );
                declared.push((name, kind));
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..name_end];
            let (family, kind) = declared.last().copied().unwrap_or(("", ""));
            let expected = match kind {
                "counter" => format!("{family}_total"),
                "info" => format!("{family}_info"),
                _ => family.to_string(),
            };
            assert_eq!(name, expected, "sample outside its family: {line}");
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
            "triad_node_ready{node=\"n1\"} 1\n",
            "triad_node_ready{node=\"n2\"} 0\n",
            "triad_node_live{node=\"n2\"} 0\n",
            "triad_node_draining{node=\"n2\"} 1\n",
            "triad_node_maintenance{node=\"n2\"} 1\n",
            "triad_node_service_state{node=\"n1\",service=\"galera\",state=\"synced\"} 1\n",
            "triad_galera_cluster_size{node=\"n1\"} 3\n",
            "triad_galera_primary{node=\"n1\"} 1\n",
            "triad_galera_recv_queue{node=\"n1\"} 2\n",
            "triad_galera_flow_control_paused_seconds_total{node=\"n1\"} 1.5\n",
            "triad_galera_cert_failures_total{node=\"n1\"} 7\n",
            "triad_balancer_members{state=\"active\"} 1\n",
            "triad_balancer_members{state=\"maint\"} 0\n",
            "# TYPE triad_balancer_member_changes counter\ntriad_balancer_member_changes_total 7\n",
            "# TYPE triad_balancer_errors counter\ntriad_balancer_errors_total 2\n",
            "triad_events_total{kind=\"node\"} 4\n",
            "triad_events_total{kind=\"recovery\"} 0\n",
        ];
        for line in expected {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        // a dead node's last service and Galera words are stale: not shown
        assert!(!text.contains("node=\"n2\",service"), "{text}");
        assert!(
            !text.contains("triad_galera_primary{node=\"n2\"}"),
            "{text}"
        );
    }

    #[test]
    fn the_text_format_names_counters_and_infos_as_their_samples() {
        let text = openmetrics_to_text(&render(&example()));
        assert!(!text.contains("# EOF"), "{text}");
        for line in [
            "# HELP triad_balancer_errors_total Failed balancer loop rounds",
            "# TYPE triad_balancer_errors_total counter\ntriad_balancer_errors_total 2\n",
            "# TYPE triad_coordinator_info gauge\ntriad_coordinator_info{cluster=\"lab\",version=\"0.1.0\"} 1\n",
            "# TYPE triad_node_ready gauge\n",
        ] {
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
            "triad_events",
        ] {
            assert!(!text.contains(absent), "{absent} in\n{text}");
        }
    }

    #[test]
    fn the_loops_show_their_decision_volume_bricks_and_request_rate() {
        let snapshot = Snapshot {
            cluster: "lab".into(),
            version: "0.1.0".into(),
            galera: Some(GaleraSample {
                last_epoch: 3,
                open: Some(("n2".into(), "joining")),
                open_secs: Some(4.5),
                last_decision: Some(FinishedDecision {
                    epoch: 2,
                    bootstrapping_secs: Some(3.0),
                    joining_secs: 6.25,
                    total_secs: 9.25,
                }),
            }),
            volume: Some(VolumeSample {
                state: "formed",
                bricks: vec![
                    ("10.0.0.1:/b".into(), true, Some(4)),
                    ("10.0.0.2:/b".into(), false, None),
                ],
                split_brain: vec![("10.0.0.1:/b".into(), 2)],
            }),
            autoscale: Some(AutoscaleSample {
                rate: Some(12.5),
                ready: 3,
                recommended: Some(4),
                steps: BTreeMap::from([("launching", 1)]),
            }),
            ..Default::default()
        };
        let text = render(&snapshot);
        assert_well_formed(&text);
        for line in [
            "\ntriad_galera_epoch 3\n",
            "\ntriad_galera_decision_open{node=\"n2\",phase=\"joining\"} 1\n",
            "\ntriad_galera_decision_open_seconds 4.5\n",
            "\ntriad_galera_last_decision_seconds{epoch=\"2\",phase=\"bootstrapping\"} 3.0\n",
            "\ntriad_galera_last_decision_seconds{epoch=\"2\",phase=\"total\"} 9.25\n",
            "\ntriad_volume_state{state=\"formed\"} 1\n",
            "\ntriad_volume_state{state=\"steady\"} 0\n",
            "\ntriad_volume_brick_online{brick=\"10.0.0.2:/b\"} 0\n",
            "\ntriad_volume_heal_pending_entries{brick=\"10.0.0.1:/b\"} 4\n",
            "\ntriad_volume_split_brain_entries{brick=\"10.0.0.1:/b\"} 2\n",
            "\ntriad_autoscale_request_rate 12.5\n",
            "\ntriad_autoscale_ready_nodes 3\n",
            "\ntriad_autoscale_recommended_nodes 4\n",
            "\ntriad_autoscale_nodes{phase=\"launching\"} 1\n",
            "\ntriad_autoscale_nodes{phase=\"deleting\"} 0\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(
            !text.contains("triad_volume_heal_pending_entries{brick=\"10.0.0.2:/b\"}"),
            "an uncounted brick has no heal figure: {text}"
        );
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
            ..NodeSample::default()
        });
        let text = render(&snapshot);
        assert_well_formed(&text);
        let escaped = r#"n9\"} 1\ntriad_tls_plaintext 0\n# \\"#;
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
            events: None,
            backup: None,
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
