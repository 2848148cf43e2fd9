//! The gossip key schema: which chitchat keys a node publishes and how their values are
//! encoded.
//!
//! Every value is a short string so a whole node state stays far below one UDP datagram.
//! Decoding never fails as a whole: a value that does not decode leaves its field
//! `Unknown` and yields a [`DecodeError`] that names the node and the key, so one bad
//! (or newer-schema, or forged) value never hides the rest of a node's state.
//!
//! Design principle 2 applies: gossip detects, authenticated gRPC decides. Nothing decoded
//! here is trusted for a destructive action without confirmation over gRPC.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// Version of this schema. Bumped when a key changes meaning; readers decode what they
/// know from newer versions and report the rest.
pub const SCHEMA_VERSION: u32 = 1;

/// Key names, in one place.
pub mod keys {
    pub const SCHEMA: &str = "schema";
    pub const ROLE: &str = "role";
    pub const GRPC: &str = "grpc";
    pub const VERSION: &str = "ver";
    /// Agent main-loop heartbeat: a counter bumped by every loop iteration. Distinct from
    /// chitchat's own heartbeat, which keeps beating when the agent's loop is stuck.
    pub const HEARTBEAT: &str = "hb";
    pub const GALERA_STATE: &str = "galera.state";
    pub const GALERA_CLUSTER_STATUS: &str = "galera.cluster_status";
    pub const GALERA_SIZE: &str = "galera.size";
    pub const GALERA_UUID: &str = "galera.uuid";
    pub const GALERA_SEQNO: &str = "galera.seqno";
    pub const GALERA_SAFE_TO_BOOTSTRAP: &str = "galera.safe_to_bootstrap";
    /// Counters and a gauge from `SHOW GLOBAL STATUS`, for /metrics: nanoseconds paused by
    /// flow control (`wsrep_flow_control_paused_ns`), the receive queue
    /// (`wsrep_local_recv_queue`), certification failures (`wsrep_local_cert_failures`).
    pub const GALERA_FC_PAUSED_NS: &str = "galera.fc_paused_ns";
    pub const GALERA_RECV_QUEUE: &str = "galera.recv_queue";
    pub const GALERA_CERT_FAILURES: &str = "galera.cert_failures";
    /// Starts of mysqld in a row that ended without reaching the Primary component (a
    /// crash loop: the agent backs off between them); absent when zero.
    pub const GALERA_FAILED_STARTS: &str = "galera.failed_starts";
    /// The last Primary view this node saved in `gvwstate.dat` (pc.recovery), in
    /// `triad_galera::view::SavedView`'s gossip form; absent when there is none (a clean
    /// shutdown deletes it).
    pub const GALERA_SAVED_VIEW: &str = "galera.saved_view";
    pub const GLUSTER_DAEMON: &str = "gluster.daemon";
    pub const GLUSTER_BRICK: &str = "gluster.brick";
    /// The peers this node's glusterd does not talk to (`gluster peer status`: not
    /// Connected), as glusterd names them (address or host name), comma-separated; absent
    /// when it talks to all. Such a glusterd does not count them for server quorum.
    pub const GLUSTER_PEERS_DOWN: &str = "gluster.peers_down";
    pub const MOUNT: &str = "mount";
    pub const APACHE: &str = "apache";
    /// The app's database password file on this node (issue 17).
    pub const APP_SECRET: &str = "app.secret";
    /// The Galera member this node's database endpoint routes to (issue 17); absent when
    /// the endpoint is not configured.
    pub const DB_WRITER: &str = "db.writer";
    pub const REQ_TOTAL: &str = "req_total";
    pub const BUSY_WORKERS: &str = "busy_workers";
    pub const CPU: &str = "cpu";
    pub const MEM: &str = "mem";
    pub const MEM_TOTAL: &str = "mem_total";
    pub const READY: &str = "ready";
    pub const DRAINING: &str = "draining";
    /// Why the node is not ready, in a few words ("mount stale; apache down"); absent when
    /// ready.
    pub const READY_REASON: &str = "ready.reason";
    /// The node is in maintenance (issue 21): why, in a few words ("operator alice",
    /// "shutdown"); absent when not. Its mysqld is held stopped once it has left.
    pub const MAINTENANCE: &str = "maintenance";
    /// When the agent's gRPC certificate expires (Unix seconds); absent in plaintext.
    pub const TLS_NOT_AFTER: &str = "tls.not_after";
    /// The cluster jobs this agent knows (issue 18): [`super::JobState`]s, encoded by
    /// [`super::encode_jobs`]; absent when it knows none.
    pub const JOBS: &str = "jobs";

    /// Every key a node may publish: a publisher deletes the ones it no longer has a
    /// value for (a key left out here would keep its last value at every peer).
    pub const ALL: &[&str] = &[
        SCHEMA,
        ROLE,
        GRPC,
        VERSION,
        HEARTBEAT,
        GALERA_STATE,
        GALERA_CLUSTER_STATUS,
        GALERA_SIZE,
        GALERA_UUID,
        GALERA_SEQNO,
        GALERA_SAFE_TO_BOOTSTRAP,
        GALERA_FC_PAUSED_NS,
        GALERA_RECV_QUEUE,
        GALERA_CERT_FAILURES,
        GALERA_FAILED_STARTS,
        GALERA_SAVED_VIEW,
        GLUSTER_DAEMON,
        GLUSTER_BRICK,
        GLUSTER_PEERS_DOWN,
        MOUNT,
        APACHE,
        APP_SECRET,
        DB_WRITER,
        REQ_TOTAL,
        BUSY_WORKERS,
        CPU,
        MEM,
        MEM_TOTAL,
        READY,
        DRAINING,
        READY_REASON,
        MAINTENANCE,
        TLS_NOT_AFTER,
        JOBS,
    ];
}

/// A value that did not decode. Names the node, the key and the raw value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node {node}: gossip key `{key}` = {value:?}: {reason}")]
pub struct DecodeError {
    pub node: String,
    pub key: String,
    pub value: String,
    pub reason: String,
}

/// A gossip value type: a closed set of words, or a number, with `Unknown` for "not
/// observed (yet)".
pub trait GossipValue: Sized {
    fn encode(&self) -> String;
    fn decode(raw: &str) -> Result<Self, String>;
}

macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name {
            #[default]
            Unknown,
            $($variant),+
        }

        impl $name {
            /// Every value, `Unknown` first.
            pub const ALL: &'static [$name] = &[$name::Unknown, $($name::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self {
                    $name::Unknown => "unknown",
                    $($name::$variant => $word),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl GossipValue for $name {
            fn encode(&self) -> String {
                self.as_str().to_string()
            }

            fn decode(raw: &str) -> Result<Self, String> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|candidate| candidate.as_str() == raw)
                    .ok_or_else(|| {
                        let words: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        format!("expected one of {}", words.join(", "))
                    })
            }
        }
    };
}

word_enum!(
    /// The node's role. `Coordinator` marks the coordinator's observer entry in gossip.
    Role { Core => "core", Web => "web", Coordinator => "coordinator" }
);

word_enum!(
    /// Galera as the agent sees it (design section 4). `ahead`: mysqld refused to join
    /// because this node has applied more events than the Primary component (Galera's
    /// `Reversing history`); it is neither started nor wiped automatically.
    GaleraState {
        Stopped => "stopped",
        Recovering => "recovering",
        Joining => "joining",
        Donor => "donor",
        Synced => "synced",
        PrimaryLost => "primary-lost",
        Bootstrapping => "bootstrapping",
        Ahead => "ahead",
        NotManaged => "not-managed",
    }
);

word_enum!(
    /// A daemon's health (Apache, glusterd).
    Health { Ok => "ok", Down => "down", NotManaged => "not-managed" }
);

word_enum!(
    /// The local Gluster brick.
    /// `healing`: online again after being down, self-heal not finished yet.
    BrickState { Online => "online", Healing => "healing", Offline => "offline", Absent => "absent", NotManaged => "not-managed" }
);

word_enum!(
    /// The docroot FUSE mount.
    MountState { Ok => "ok", Absent => "absent", Stale => "stale", NotManaged => "not-managed" }
);

word_enum!(
    /// The app's database password file. `none`: no app declared to this agent yet;
    /// `missing`: declared, but the file is absent, empty or could not be written.
    AppSecret { None => "none", Ok => "ok", Missing => "missing" }
);

/// Galera's `wsrep_cluster_status` as published (free text from mysqld, e.g. "Primary").
pub type ClusterStatusWord = Option<String>;

/// The Galera part of a node's state.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct GaleraKeys {
    pub state: GaleraState,
    pub cluster_status: Option<String>,
    pub size: Option<u32>,
    pub uuid: Option<String>,
    pub seqno: Option<i64>,
    pub safe_to_bootstrap: Option<bool>,
    /// Since mysqld started (counters) or now (the queue); None while mysqld does not answer.
    pub flow_control_paused_ns: Option<u64>,
    pub recv_queue: Option<u64>,
    pub cert_failures: Option<u64>,
    /// Starts in a row that failed (see [`keys::GALERA_FAILED_STARTS`]); 0 when none.
    pub failed_starts: u32,
    /// [`keys::GALERA_SAVED_VIEW`], as gossiped (triad-galera parses it).
    pub saved_view: Option<String>,
}

impl GaleraKeys {
    /// Synced and in the Primary component: a member that may take the app's writes.
    pub fn synced_in_primary(&self) -> bool {
        self.state == GaleraState::Synced && self.cluster_status.as_deref() == Some("Primary")
    }
}

/// Host metrics as gossiped.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct MetricKeys {
    /// Percent of all cores, one decimal.
    pub cpu_percent: Option<f64>,
    pub mem_used_bytes: Option<u64>,
    pub mem_total_bytes: Option<u64>,
    /// Apache's `Total Accesses` counter.
    pub req_total: Option<u64>,
    pub busy_workers: Option<u32>,
}

/// Everything one node publishes, typed.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct NodeKeys {
    pub schema: u32,
    pub role: Role,
    pub grpc: Option<SocketAddr>,
    pub version: Option<String>,
    pub heartbeat: Option<u64>,
    pub galera: GaleraKeys,
    pub gluster_daemon: Health,
    pub gluster_brick: BrickState,
    /// See [`keys::GLUSTER_PEERS_DOWN`]; empty when every peer is connected (or unknown).
    pub gluster_peers_down: Vec<String>,
    pub mount: MountState,
    pub apache: Health,
    pub app_secret: AppSecret,
    pub db_writer: Option<String>,
    pub metrics: MetricKeys,
    pub ready: bool,
    pub ready_reason: Option<String>,
    pub draining: bool,
    /// See [`keys::MAINTENANCE`].
    #[serde(default)]
    pub maintenance: Option<String>,
    /// When the agent's gRPC certificate expires (Unix seconds; None: plaintext or unknown).
    pub tls_not_after: Option<u64>,
    /// The cluster jobs this agent holds a lease of, runs or ran, by name.
    #[serde(default)]
    pub jobs: Vec<JobState>,
}

impl NodeKeys {
    /// The keys of a freshly started agent: every service `Unknown`, not ready.
    pub fn initial(role: Role, grpc: SocketAddr, version: &str) -> NodeKeys {
        NodeKeys {
            schema: SCHEMA_VERSION,
            role,
            grpc: Some(grpc),
            version: Some(version.to_string()),
            heartbeat: Some(0),
            ..NodeKeys::default()
        }
    }

    /// The services with their state word, in a fixed order (for status output).
    pub fn service_states(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("galera", self.galera.state.as_str()),
            ("gluster.daemon", self.gluster_daemon.as_str()),
            ("gluster.brick", self.gluster_brick.as_str()),
            ("mount", self.mount.as_str()),
            ("apache", self.apache.as_str()),
        ]
    }

    /// Encode into (key, value) pairs. Absent optional values are not published, so
    /// readers see them as unknown.
    pub fn encode(&self) -> Vec<(&'static str, String)> {
        let mut kvs = vec![
            (keys::SCHEMA, self.schema.to_string()),
            (keys::ROLE, self.role.encode()),
            (keys::GALERA_STATE, self.galera.state.encode()),
            (keys::GLUSTER_DAEMON, self.gluster_daemon.encode()),
            (keys::GLUSTER_BRICK, self.gluster_brick.encode()),
            (keys::MOUNT, self.mount.encode()),
            (keys::APACHE, self.apache.encode()),
            (keys::APP_SECRET, self.app_secret.encode()),
            (keys::READY, encode_bool(self.ready)),
            (keys::DRAINING, encode_bool(self.draining)),
        ];
        let mut push = |key: &'static str, value: Option<String>| {
            if let Some(value) = value {
                kvs.push((key, value));
            }
        };
        push(keys::GRPC, self.grpc.map(|addr| addr.to_string()));
        push(
            keys::GLUSTER_PEERS_DOWN,
            (!self.gluster_peers_down.is_empty()).then(|| self.gluster_peers_down.join(",")),
        );
        push(keys::READY_REASON, self.ready_reason.clone());
        push(keys::MAINTENANCE, self.maintenance.clone());
        push(keys::DB_WRITER, self.db_writer.clone());
        push(keys::VERSION, self.version.clone());
        push(keys::HEARTBEAT, self.heartbeat.map(|hb| hb.to_string()));
        push(
            keys::TLS_NOT_AFTER,
            self.tls_not_after.map(|t| t.to_string()),
        );
        push(
            keys::JOBS,
            (!self.jobs.is_empty()).then(|| encode_jobs(&self.jobs)),
        );
        push(
            keys::GALERA_CLUSTER_STATUS,
            self.galera.cluster_status.clone(),
        );
        push(keys::GALERA_SIZE, self.galera.size.map(|n| n.to_string()));
        push(keys::GALERA_UUID, self.galera.uuid.clone());
        push(keys::GALERA_SEQNO, self.galera.seqno.map(|n| n.to_string()));
        push(
            keys::GALERA_SAFE_TO_BOOTSTRAP,
            self.galera.safe_to_bootstrap.map(encode_bool),
        );
        push(
            keys::GALERA_FC_PAUSED_NS,
            self.galera.flow_control_paused_ns.map(|n| n.to_string()),
        );
        push(
            keys::GALERA_RECV_QUEUE,
            self.galera.recv_queue.map(|n| n.to_string()),
        );
        push(
            keys::GALERA_CERT_FAILURES,
            self.galera.cert_failures.map(|n| n.to_string()),
        );
        push(
            keys::GALERA_FAILED_STARTS,
            (self.galera.failed_starts > 0).then(|| self.galera.failed_starts.to_string()),
        );
        push(keys::GALERA_SAVED_VIEW, self.galera.saved_view.clone());
        push(
            keys::CPU,
            self.metrics.cpu_percent.map(|cpu| format!("{cpu:.1}")),
        );
        push(
            keys::MEM,
            self.metrics.mem_used_bytes.map(|n| n.to_string()),
        );
        push(
            keys::MEM_TOTAL,
            self.metrics.mem_total_bytes.map(|n| n.to_string()),
        );
        push(
            keys::REQ_TOTAL,
            self.metrics.req_total.map(|n| n.to_string()),
        );
        push(
            keys::BUSY_WORKERS,
            self.metrics.busy_workers.map(|n| n.to_string()),
        );
        kvs
    }

    /// Decode a node's key-values. Unknown keys are ignored (a newer agent may publish
    /// more); values that do not decode leave their field unknown and are returned as
    /// errors naming `node` and the key.
    pub fn decode<'a>(
        node: &str,
        key_values: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> (NodeKeys, Vec<DecodeError>) {
        let mut decoded = NodeKeys::default();
        let mut errors = Vec::new();
        for (key, raw) in key_values {
            let result = decoded.decode_one(key, raw);
            if let Err(reason) = result {
                errors.push(DecodeError {
                    node: node.to_string(),
                    key: key.to_string(),
                    value: truncate_for_report(raw),
                    reason,
                });
            }
        }
        (decoded, errors)
    }

    fn decode_one(&mut self, key: &str, raw: &str) -> Result<(), String> {
        match key {
            keys::SCHEMA => self.schema = parse_number(raw)?,
            keys::ROLE => self.role = Role::decode(raw)?,
            keys::GRPC => self.grpc = Some(parse_number::<SocketAddr>(raw)?),
            keys::VERSION => self.version = Some(parse_text(raw)?),
            keys::HEARTBEAT => self.heartbeat = Some(parse_number(raw)?),
            keys::TLS_NOT_AFTER => self.tls_not_after = Some(parse_number(raw)?),
            keys::GALERA_STATE => self.galera.state = GaleraState::decode(raw)?,
            keys::GALERA_CLUSTER_STATUS => self.galera.cluster_status = Some(parse_text(raw)?),
            keys::GALERA_SIZE => self.galera.size = Some(parse_number(raw)?),
            keys::GALERA_UUID => self.galera.uuid = Some(parse_uuid(raw)?),
            keys::GALERA_SEQNO => self.galera.seqno = Some(parse_seqno(raw)?),
            keys::GALERA_SAFE_TO_BOOTSTRAP => {
                self.galera.safe_to_bootstrap = Some(decode_bool(raw)?)
            }
            keys::GALERA_FC_PAUSED_NS => {
                self.galera.flow_control_paused_ns = Some(parse_number(raw)?)
            }
            keys::GALERA_RECV_QUEUE => self.galera.recv_queue = Some(parse_number(raw)?),
            keys::GALERA_CERT_FAILURES => self.galera.cert_failures = Some(parse_number(raw)?),
            keys::GALERA_FAILED_STARTS => self.galera.failed_starts = parse_number(raw)?,
            keys::GALERA_SAVED_VIEW => self.galera.saved_view = Some(parse_saved_view(raw)?),
            keys::GLUSTER_DAEMON => self.gluster_daemon = Health::decode(raw)?,
            keys::GLUSTER_BRICK => self.gluster_brick = BrickState::decode(raw)?,
            keys::GLUSTER_PEERS_DOWN => {
                self.gluster_peers_down = parse_text(raw)?
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            keys::MOUNT => self.mount = MountState::decode(raw)?,
            keys::APACHE => self.apache = Health::decode(raw)?,
            keys::APP_SECRET => self.app_secret = AppSecret::decode(raw)?,
            keys::DB_WRITER => self.db_writer = Some(parse_text(raw)?),
            keys::REQ_TOTAL => self.metrics.req_total = Some(parse_number(raw)?),
            keys::BUSY_WORKERS => self.metrics.busy_workers = Some(parse_number(raw)?),
            keys::CPU => self.metrics.cpu_percent = Some(parse_percent(raw)?),
            keys::MEM => self.metrics.mem_used_bytes = Some(parse_number(raw)?),
            keys::MEM_TOTAL => self.metrics.mem_total_bytes = Some(parse_number(raw)?),
            keys::READY => self.ready = decode_bool(raw)?,
            keys::DRAINING => self.draining = decode_bool(raw)?,
            keys::READY_REASON => self.ready_reason = Some(parse_text(raw)?),
            keys::MAINTENANCE => self.maintenance = Some(parse_text(raw)?),
            keys::JOBS => self.jobs = decode_jobs(raw)?,
            _ => {}
        }
        Ok(())
    }
}

/// How a job's run ended, as systemd tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    /// The command exited with this status (0: success).
    Exit(u8),
    /// systemd stopped it at the job's timeout (`RuntimeMaxSec`).
    Timeout,
    /// Killed by a signal (or dumped core).
    Signal,
    /// systemd could not start it (an unknown user, a missing program) or reported another
    /// failure; the agent's log names it.
    Failed,
    /// The run's unit vanished before the agent read how it ended.
    Lost,
}

impl RunOutcome {
    fn encode(&self) -> String {
        match self {
            RunOutcome::Exit(status) => status.to_string(),
            RunOutcome::Timeout => "timeout".into(),
            RunOutcome::Signal => "signal".into(),
            RunOutcome::Failed => "failed".into(),
            RunOutcome::Lost => "lost".into(),
        }
    }

    fn decode(raw: &str) -> Result<RunOutcome, String> {
        match raw {
            "timeout" => Ok(RunOutcome::Timeout),
            "signal" => Ok(RunOutcome::Signal),
            "failed" => Ok(RunOutcome::Failed),
            "lost" => Ok(RunOutcome::Lost),
            _ => raw.parse().map(RunOutcome::Exit).map_err(|_| {
                format!("run outcome {raw:?}: expected an exit status 0-255, timeout, signal, failed or lost")
            }),
        }
    }

    pub fn succeeded(&self) -> bool {
        *self == RunOutcome::Exit(0)
    }
}

impl fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunOutcome::Exit(status) => write!(f, "exit {status}"),
            other => f.write_str(&other.encode()),
        }
    }
}

/// One cluster job as its agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct JobState {
    /// The job's name ([a-z0-9][a-z0-9_-]*).
    pub name: String,
    /// The highest lease epoch confirmed to this agent process (None: none).
    pub epoch: Option<u64>,
    /// The lease lets runs start now (confirmed, deadline not passed).
    pub held: bool,
    /// A run of the job is going on this node.
    pub running: bool,
    /// The latest run's start (Unix seconds): the one going, else the last one.
    pub last_start: Option<u64>,
    /// How long the latest run took, once it ended (milliseconds).
    pub last_duration_ms: Option<u64>,
    /// How the latest run ended, once it ended.
    pub last_outcome: Option<RunOutcome>,
}

/// The most jobs one `jobs` value carries (the agent publishes the first ones by name).
pub const MAX_JOBS: usize = 32;

/// `name:epoch:held:running:start:duration_ms:outcome` per job, space-separated; an
/// unknown field is empty (`cron:3:1:0:1772445600:2100:0`, `probe::0:1:1772445600::`).
pub fn encode_jobs(jobs: &[JobState]) -> String {
    let field = |value: Option<u64>| value.map(|v| v.to_string()).unwrap_or_default();
    jobs.iter()
        .take(MAX_JOBS)
        .map(|job| {
            format!(
                "{}:{}:{}:{}:{}:{}:{}",
                job.name,
                field(job.epoch),
                encode_bool(job.held),
                encode_bool(job.running),
                field(job.last_start),
                field(job.last_duration_ms),
                job.last_outcome.map(|o| o.encode()).unwrap_or_default(),
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The inverse of [`encode_jobs`]; any malformed entry refuses the whole value.
pub fn decode_jobs(raw: &str) -> Result<Vec<JobState>, String> {
    let optional = |text: &str| -> Result<Option<u64>, String> {
        if text.is_empty() {
            Ok(None)
        } else {
            parse_number(text).map(Some)
        }
    };
    let mut jobs = Vec::new();
    for entry in raw.split(' ').filter(|entry| !entry.is_empty()) {
        if jobs.len() == MAX_JOBS {
            return Err(format!("more than {MAX_JOBS} jobs"));
        }
        let fields: Vec<&str> = entry.split(':').collect();
        let [name, epoch, held, running, start, duration, outcome] = fields[..] else {
            return Err(format!(
                "job entry {:?}: expected name:epoch:held:running:start:duration_ms:outcome",
                truncate_for_report(entry)
            ));
        };
        if !valid_job_name(name) {
            return Err(format!(
                "job name {:?}: expected [a-z0-9][a-z0-9_-]*, at most {MAX_JOB_NAME} bytes",
                truncate_for_report(name)
            ));
        }
        jobs.push(JobState {
            name: name.to_string(),
            epoch: optional(epoch)?,
            held: decode_bool(held)?,
            running: decode_bool(running)?,
            last_start: optional(start)?,
            last_duration_ms: optional(duration)?,
            last_outcome: if outcome.is_empty() {
                None
            } else {
                Some(RunOutcome::decode(outcome)?)
            },
        });
    }
    Ok(jobs)
}

/// The longest job name: it is part of a systemd unit name and of gossip.
pub const MAX_JOB_NAME: usize = 40;

/// A job name both sides accept: `[a-z0-9][a-z0-9_-]*`, at most [`MAX_JOB_NAME`] bytes, so
/// it is a safe fragment of a unit name and of the `jobs` encoding.
pub fn valid_job_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    first_ok
        && name.len() <= MAX_JOB_NAME
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// [`valid_job_name`] with the rule as the error, for every place that refuses a name
/// (the caller says which name and which key).
pub fn check_job_name(name: &str) -> Result<(), String> {
    if valid_job_name(name) {
        Ok(())
    } else {
        Err(format!(
            "use a-z, 0-9, '-' and '_', starting with a letter or digit, at most {MAX_JOB_NAME} bytes (it names the run's systemd unit)"
        ))
    }
}

fn encode_bool(value: bool) -> String {
    if value { "1" } else { "0" }.to_string()
}

fn decode_bool(raw: &str) -> Result<bool, String> {
    match raw {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err("expected 0 or 1".to_string()),
    }
}

fn parse_number<T: FromStr>(raw: &str) -> Result<T, String> {
    raw.parse::<T>()
        .map_err(|_| format!("expected {}", short_type_name::<T>()))
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Free text is kept short and printable; anything else is refused.
fn parse_text(raw: &str) -> Result<String, String> {
    parse_text_up_to(raw, 64)
}

/// Printable text of at most `max` bytes.
fn parse_text_up_to(raw: &str, max: usize) -> Result<String, String> {
    if raw.len() > max {
        return Err(format!("longer than {max} bytes"));
    }
    if raw.chars().any(|c| c.is_control()) {
        return Err("contains control characters".to_string());
    }
    Ok(raw.to_string())
}

/// A saved view names every member's uuid (37 bytes each): room for far more members
/// than a Galera cluster has, and a bound on what a peer can make every node store.
fn parse_saved_view(raw: &str) -> Result<String, String> {
    parse_text_up_to(raw, 4096)
}

fn parse_uuid(raw: &str) -> Result<String, String> {
    let groups: Vec<&str> = raw.split('-').collect();
    let lengths_ok = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]);
    let hex_ok = groups
        .iter()
        .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()));
    if lengths_ok && hex_ok {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err("expected a uuid (8-4-4-4-12 hex digits)".to_string())
    }
}

fn parse_seqno(raw: &str) -> Result<i64, String> {
    let seqno: i64 = parse_number(raw)?;
    if seqno < -1 {
        return Err("expected -1 or a non-negative seqno".to_string());
    }
    Ok(seqno)
}

fn parse_percent(raw: &str) -> Result<f64, String> {
    let value: f64 = parse_number(raw)?;
    if !(0.0..=100.0).contains(&value) {
        return Err("expected a percentage between 0 and 100".to_string());
    }
    Ok(value)
}

fn truncate_for_report(raw: &str) -> String {
    const MAX_REPORTED: usize = 80;
    if raw.len() <= MAX_REPORTED {
        return raw.to_string();
    }
    let mut end = MAX_REPORTED;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &raw[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> NodeKeys {
        NodeKeys {
            schema: SCHEMA_VERSION,
            role: Role::Core,
            grpc: Some("10.214.0.11:7421".parse().unwrap()),
            version: Some("0.1.0".into()),
            heartbeat: Some(42),
            galera: GaleraKeys {
                state: GaleraState::Synced,
                cluster_status: Some("Primary".into()),
                size: Some(3),
                uuid: Some("9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31".into()),
                seqno: Some(250),
                safe_to_bootstrap: Some(false),
                flow_control_paused_ns: Some(1_500_000_000),
                recv_queue: Some(0),
                cert_failures: Some(3),
                failed_starts: 4,
                saved_view: Some(
                    "9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31 9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31:3 \
                     9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31"
                        .into(),
                ),
            },
            gluster_daemon: Health::Ok,
            gluster_brick: BrickState::Online,
            gluster_peers_down: vec!["10.214.0.13".into(), "n1".into()],
            mount: MountState::Stale,
            apache: Health::Down,
            app_secret: AppSecret::Missing,
            db_writer: Some("n1".into()),
            metrics: MetricKeys {
                cpu_percent: Some(12.5),
                mem_used_bytes: Some(1 << 30),
                mem_total_bytes: Some(24 << 30),
                req_total: Some(1000),
                busy_workers: Some(3),
            },
            ready: false,
            ready_reason: Some("mount stale; apache down".into()),
            draining: true,
            maintenance: Some("operator alice".into()),
            tls_not_after: Some(1_800_000_000),
            jobs: sample_jobs(),
        }
    }

    /// `keys::ALL` is exactly what a node with every value known publishes: a key missing
    /// from it would never be deleted (before this test, ready.reason, db.writer, jobs and
    /// the Galera counters kept their last value at every peer).
    #[test]
    fn all_keys_are_the_keys_a_full_node_publishes() {
        let published: std::collections::BTreeSet<&str> =
            sample().encode().into_iter().map(|(k, _)| k).collect();
        let all: std::collections::BTreeSet<&str> = keys::ALL.iter().copied().collect();
        assert_eq!(published, all);
        assert_eq!(all.len(), keys::ALL.len(), "a key listed twice");
    }

    fn sample_jobs() -> Vec<JobState> {
        vec![
            JobState {
                name: "cron".into(),
                epoch: Some(3),
                held: true,
                running: false,
                last_start: Some(1_772_445_600),
                last_duration_ms: Some(2100),
                last_outcome: Some(RunOutcome::Exit(0)),
            },
            JobState {
                name: "probe_2-x".into(),
                epoch: None,
                held: false,
                running: true,
                last_start: Some(1_772_445_660),
                last_duration_ms: None,
                last_outcome: None,
            },
            JobState {
                name: "0".into(),
                ..JobState::default()
            },
        ]
    }

    #[test]
    fn jobs_round_trip_in_their_compact_form() {
        let jobs = sample_jobs();
        let encoded = encode_jobs(&jobs);
        assert_eq!(
            encoded,
            "cron:3:1:0:1772445600:2100:0 probe_2-x::0:1:1772445660:: 0::0:0:::"
        );
        assert_eq!(decode_jobs(&encoded), Ok(jobs));
        assert_eq!(decode_jobs(""), Ok(vec![]));
        for outcome in [
            RunOutcome::Exit(0),
            RunOutcome::Exit(255),
            RunOutcome::Timeout,
            RunOutcome::Signal,
            RunOutcome::Failed,
            RunOutcome::Lost,
        ] {
            assert_eq!(RunOutcome::decode(&outcome.encode()), Ok(outcome));
        }
    }

    #[test]
    fn bad_jobs_values_are_refused_and_name_the_key() {
        for bad in [
            "cron:3:1:0",
            "Cron:3:1:0:::",
            "cron:x:1:0:::",
            "cron:3:2:0:::",
            "cron:3:1:0:::256",
            "cron:3:1:0:::exploded",
            ":3:1:0:::",
            "a:b:c:d:e:f:g:h",
        ] {
            assert!(decode_jobs(bad).is_err(), "{bad:?} accepted");
        }
        let (decoded, errors) = NodeKeys::decode("n4", [("jobs", "cron:3"), ("ready", "1")]);
        assert!(decoded.jobs.is_empty());
        assert!(decoded.ready);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("`jobs`"), "{}", errors[0]);
        let many = vec!["j:::0:0:::"; MAX_JOBS + 1].join(" ");
        assert!(decode_jobs(&many).is_err());
    }

    #[test]
    fn job_names_are_safe_unit_name_fragments() {
        for good in [
            "cron",
            "0",
            "wp-cron",
            "run_jobs",
            &"a".repeat(MAX_JOB_NAME),
        ] {
            assert!(valid_job_name(good), "{good:?}");
        }
        for bad in [
            "",
            "-cron",
            "_cron",
            "Cron",
            "cron job",
            "cron:1",
            "a/b",
            "a.b",
            "cron\\x2d",
            "é",
            &"a".repeat(MAX_JOB_NAME + 1),
        ] {
            assert!(!valid_job_name(bad), "{bad:?}");
        }
    }

    fn round_trip(keys: &NodeKeys) -> (NodeKeys, Vec<DecodeError>) {
        let encoded = keys.encode();
        NodeKeys::decode("n1", encoded.iter().map(|(k, v)| (*k, v.as_str())))
    }

    #[test]
    fn full_node_state_round_trips() {
        let keys = sample();
        let (decoded, errors) = round_trip(&keys);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(decoded, keys);
    }

    #[test]
    fn initial_state_round_trips_with_every_service_unknown() {
        let keys = NodeKeys::initial(Role::Web, "127.0.0.1:7421".parse().unwrap(), "0.1.0");
        let (decoded, errors) = round_trip(&keys);
        assert!(errors.is_empty());
        assert_eq!(decoded, keys);
        assert!(decoded
            .service_states()
            .iter()
            .all(|(_, state)| *state == "unknown"));
    }

    #[test]
    fn encoded_node_state_fits_far_below_one_datagram() {
        let total: usize = sample()
            .encode()
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum();
        assert!(total < 1024, "node state is {total} bytes");
    }

    #[test]
    fn bad_values_are_reported_with_node_and_key_and_the_rest_still_decodes() {
        let kvs = [
            ("role", "core"),
            ("galera.seqno", "twelve"),
            ("galera.state", "exploded"),
            ("ready", "yes"),
            ("apache", "ok"),
            ("some.future.key", "whatever"),
        ];
        let (decoded, errors) = NodeKeys::decode("n7", kvs);
        assert_eq!(decoded.role, Role::Core);
        assert_eq!(decoded.apache, Health::Ok);
        assert_eq!(decoded.galera.seqno, None);
        assert_eq!(decoded.galera.state, GaleraState::Unknown);
        assert!(!decoded.ready);
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["galera.seqno", "galera.state", "ready"]);
        let message = errors[0].to_string();
        assert!(
            message.contains("node n7") && message.contains("galera.seqno"),
            "{message}"
        );
    }

    #[test]
    fn seqno_below_minus_one_and_malformed_uuid_are_refused() {
        let (decoded, errors) = NodeKeys::decode(
            "n1",
            [("galera.seqno", "-2"), ("galera.uuid", "not-a-uuid")],
        );
        assert_eq!(errors.len(), 2);
        assert_eq!(decoded.galera, GaleraKeys::default());
    }

    #[test]
    fn every_word_enum_value_round_trips() {
        for state in GaleraState::ALL {
            assert_eq!(GaleraState::decode(&state.encode()).unwrap(), *state);
        }
        for role in Role::ALL {
            assert_eq!(Role::decode(&role.encode()).unwrap(), *role);
        }
        for mount in MountState::ALL {
            assert_eq!(MountState::decode(&mount.encode()).unwrap(), *mount);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_values_never_panic(key in "[a-z._]{1,24}", value in any::<String>()) {
            let _ = NodeKeys::decode("n1", [(key.as_str(), value.as_str())]);
        }

        #[test]
        fn arbitrary_jobs_values_never_panic(value in "[a-z0-9:_ -]{0,80}|\\PC{0,80}") {
            let _ = NodeKeys::decode("n1", [("jobs", value.as_str())]);
        }

        #[test]
        fn jobs_round_trip(epoch in proptest::option::of(any::<u64>()), start in proptest::option::of(any::<u64>()), duration in proptest::option::of(any::<u64>()), status in any::<u8>(), held in any::<bool>(), running in any::<bool>()) {
            let jobs = vec![JobState {
                name: "cron".into(),
                epoch,
                held,
                running,
                last_start: start,
                last_duration_ms: duration,
                last_outcome: Some(RunOutcome::Exit(status)),
            }];
            prop_assert_eq!(decode_jobs(&encode_jobs(&jobs)), Ok(jobs));
        }

        #[test]
        fn numeric_fields_round_trip(seqno in -1i64..i64::MAX, size in any::<u32>(), req in any::<u64>(), hb in any::<u64>()) {
            let mut keys = sample();
            keys.galera.seqno = Some(seqno);
            keys.galera.size = Some(size);
            keys.metrics.req_total = Some(req);
            keys.heartbeat = Some(hb);
            let (decoded, errors) = round_trip(&keys);
            prop_assert!(errors.is_empty());
            prop_assert_eq!(decoded, keys);
        }
    }
}
