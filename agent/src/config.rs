//! The agent's configuration: TOML on disk (`/etc/triad/agent.toml` by default), parsed
//! strictly (unknown keys are errors) and resolved into a validated [`AgentConfig`].
//!
//! Every error is one line that names the file, the position or the key, and what is
//! wrong, so an operator can fix it without reading code.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use triad_proto::gossip::Role;
use triad_proto::ports;

use crate::apache::driver::ApacheSettings;
use crate::galera::{GaleraSettings, SstMethod};
use crate::gluster::driver::GlusterSettings;
use crate::membership::GossipSettings;
use crate::mount::MountSettings;
use crate::readiness::ReadinessCheck;

pub const DEFAULT_PATH: &str = "/etc/triad/agent.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("config {path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

/// Read and parse a TOML file into `T`, mapping errors to one line with file:line:column.
pub fn load_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_toml(path, &text)
}

/// Parse TOML text; `path` is only used in error messages.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|error| {
        let offset = error.span().map(|span| span.start).unwrap_or(0);
        let (line, column) = line_and_column(text, offset);
        let context = table_context(text, offset);
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: format!("{}{context}", error.message().trim().replace('\n', " ")),
        }
    })
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// " (in [table], at `key = value`)": tells which key a type error is about, since the
/// TOML error message names only the expected type.
fn table_context(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('['))
        .map(|line| line.to_string());
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let this_line = text[line_start..].lines().next().unwrap_or("").trim();
    let mut parts = Vec::new();
    if let Some(table) = table {
        parts.push(format!("in {table}"));
    }
    if this_line.contains('=') && !this_line.starts_with('[') {
        parts.push(format!("at `{this_line}`"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgentConfig {
    node: RawNode,
    cluster: RawCluster,
    #[serde(default)]
    gossip: RawGossip,
    #[serde(default)]
    grpc: RawGrpc,
    #[serde(default)]
    agent: RawAgent,
    #[serde(default)]
    readiness: RawReadiness,
    #[serde(default)]
    galera: RawGalera,
    #[serde(default)]
    apache: RawApache,
    #[serde(default)]
    gluster: RawGluster,
    #[serde(default)]
    mount: RawMount,
}

/// `[gluster]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGluster {
    managed: Option<bool>,
    unit: Option<String>,
    volume: Option<String>,
    brick_path: Option<String>,
}

/// `[mount]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMount {
    managed: Option<bool>,
    docroot: Option<String>,
    allow_non_empty: Option<bool>,
    probe_timeout: Option<String>,
}

/// `[apache]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApache {
    managed: Option<bool>,
    unit: Option<String>,
    port: Option<u16>,
    health_path: Option<String>,
    configure: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReadiness {
    require: Option<Vec<ReadinessCheck>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: String,
    role: RawRole,
    address: String,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawRole {
    Core,
    Web,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub name: String,
    #[serde(default)]
    pub seeds: Vec<String>,
}

/// `[gossip]`, shared by the agent and the coordinator.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawGossip {
    pub listen: Option<String>,
    pub advertise: Option<String>,
    pub interval: Option<String>,
    pub phi_threshold: Option<f64>,
    pub dead_node_grace: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGrpc {
    listen: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    heartbeat_interval: Option<String>,
    state_dir: Option<String>,
}

/// `[galera]`: everything optional; defaults fit Debian 12's mariadb-server.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGalera {
    managed: Option<bool>,
    sst_method: Option<SstMethod>,
    gcache_size: Option<String>,
    innodb_buffer_pool_size: Option<String>,
    peers: Option<Vec<String>>,
    datadir: Option<String>,
    socket: Option<String>,
    config_path: Option<String>,
    unit: Option<String>,
    start_backoff: Option<String>,
    monitor_user: Option<String>,
}

/// The validated agent configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub node_id: String,
    pub role: Role,
    pub address: IpAddr,
    pub cluster_name: String,
    pub seeds: Vec<String>,
    pub gossip: GossipSettings,
    pub grpc_listen: SocketAddr,
    /// How often the main loop publishes metrics and its heartbeat, and pings the watchdog.
    pub heartbeat_interval: Duration,
    /// Services that must be healthy for the node to be ready (default: all).
    pub readiness: Vec<ReadinessCheck>,
    /// Where the agent keeps its own small state (the last Galera bootstrap epoch).
    pub state_dir: PathBuf,
    pub galera: GaleraSettings,
    pub apache: ApacheSettings,
    pub gluster: GlusterSettings,
    pub mount: MountSettings,
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let raw: RawAgentConfig = load_toml(path)?;
        resolve(path, raw)
    }

    pub fn parse(path: &Path, text: &str) -> Result<AgentConfig, ConfigError> {
        let raw: RawAgentConfig = parse_toml(path, text)?;
        resolve(path, raw)
    }
}

fn resolve(path: &Path, raw: RawAgentConfig) -> Result<AgentConfig, ConfigError> {
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    validate_node_id(&raw.node.id).map_err(|m| invalid("node.id", m))?;
    let address: IpAddr = raw.node.address.parse().map_err(|_| {
        invalid(
            "node.address",
            format!("{:?} is not an IP address", raw.node.address),
        )
    })?;
    if address.is_unspecified() {
        return Err(invalid(
            "node.address",
            "must be the node's own address, not 0.0.0.0 or ::".to_string(),
        ));
    }
    let role = match raw.node.role {
        RawRole::Core => Role::Core,
        RawRole::Web => Role::Web,
    };
    let cluster = resolve_cluster(path, &raw.cluster)?;
    let gossip = resolve_gossip(path, &raw.gossip, address)?;
    let grpc_listen = match raw.grpc.listen {
        Some(listen) => parse_socket_addr(&listen).map_err(|m| invalid("grpc.listen", m))?,
        None => SocketAddr::new(address, ports::AGENT_GRPC),
    };
    let heartbeat_interval = parse_duration_key(
        path,
        "agent.heartbeat_interval",
        raw.agent.heartbeat_interval.as_deref(),
        Duration::from_secs(1),
    )?;
    if heartbeat_interval.is_zero() || heartbeat_interval > Duration::from_secs(10) {
        return Err(invalid(
            "agent.heartbeat_interval",
            "must be more than 0 and at most 10s (the watchdog is pinged at this pace)".to_string(),
        ));
    }
    let galera = resolve_galera(path, raw.galera, role, &cluster.0)?;
    Ok(AgentConfig {
        node_id: raw.node.id,
        role,
        address,
        cluster_name: cluster.0,
        seeds: cluster.1,
        gossip,
        grpc_listen,
        heartbeat_interval,
        readiness: raw
            .readiness
            .require
            .unwrap_or_else(|| ReadinessCheck::ALL.to_vec()),
        state_dir: PathBuf::from(
            raw.agent
                .state_dir
                .unwrap_or_else(|| "/var/lib/triad".to_string()),
        ),
        galera,
        apache: resolve_apache(path, raw.apache)?,
        gluster: resolve_gluster(path, raw.gluster, role)?,
        mount: resolve_mount(path, raw.mount)?,
    })
}

fn absolute_path(path: &Path, key: &'static str, text: String) -> Result<PathBuf, ConfigError> {
    if !text.starts_with('/') || text.len() < 2 {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message: format!("{text:?} must be an absolute path other than /"),
        });
    }
    Ok(PathBuf::from(text))
}

fn resolve_gluster(
    path: &Path,
    raw: RawGluster,
    role: Role,
) -> Result<GlusterSettings, ConfigError> {
    // web nodes mount the volume as clients: no glusterd, no brick
    let mut gluster = GlusterSettings {
        managed: raw.managed.unwrap_or(role == Role::Core),
        ..Default::default()
    };
    if let Some(unit) = raw.unit {
        gluster.unit = unit;
    }
    if let Some(volume) = raw.volume {
        let valid = !volume.is_empty()
            && volume.len() <= 64
            && volume
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                key: "gluster.volume",
                message: format!("{volume:?}: use 1-64 letters, digits, '-' or '_'"),
            });
        }
        gluster.volume = volume;
    }
    if let Some(brick) = raw.brick_path {
        gluster.brick_path = absolute_path(path, "gluster.brick_path", brick)?;
    }
    Ok(gluster)
}

fn resolve_mount(path: &Path, raw: RawMount) -> Result<MountSettings, ConfigError> {
    let mut mount = MountSettings::default();
    if let Some(managed) = raw.managed {
        mount.managed = managed;
    }
    if let Some(docroot) = raw.docroot {
        mount.docroot = absolute_path(path, "mount.docroot", docroot)?;
    }
    if let Some(allow) = raw.allow_non_empty {
        mount.allow_non_empty = allow;
    }
    mount.probe_timeout = parse_duration_key(
        path,
        "mount.probe_timeout",
        raw.probe_timeout.as_deref(),
        mount.probe_timeout,
    )?;
    if mount.probe_timeout.is_zero() || mount.probe_timeout > Duration::from_secs(60) {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            key: "mount.probe_timeout",
            message: "must be more than 0 and at most 60s".into(),
        });
    }
    Ok(mount)
}

fn resolve_apache(path: &Path, raw: RawApache) -> Result<ApacheSettings, ConfigError> {
    let mut apache = ApacheSettings::default();
    if let Some(managed) = raw.managed {
        apache.managed = managed;
    }
    if let Some(unit) = raw.unit {
        apache.unit = unit;
    }
    if let Some(port) = raw.port {
        apache.port = port;
    }
    if let Some(configure) = raw.configure {
        apache.configure = configure;
    }
    if let Some(health_path) = raw.health_path {
        if !health_path.starts_with('/') {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                key: "apache.health_path",
                message: format!("{health_path:?} must start with '/'"),
            });
        }
        apache.health_path = health_path;
    }
    Ok(apache)
}

fn resolve_galera(
    path: &Path,
    raw: RawGalera,
    role: Role,
    cluster_name: &str,
) -> Result<GaleraSettings, ConfigError> {
    let mut galera = GaleraSettings::defaults(cluster_name);
    // web nodes only serve: no database member unless the operator says so
    galera.managed = raw.managed.unwrap_or(role == Role::Core);
    if let Some(method) = raw.sst_method {
        galera.sst_method = method;
    }
    if let Some(size) = raw.gcache_size {
        galera.gcache_size = size;
    }
    galera.innodb_buffer_pool_size = raw.innodb_buffer_pool_size;
    for peer in raw.peers.unwrap_or_default() {
        let ip: IpAddr = peer.parse().map_err(|_| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: "galera.peers",
            message: format!("{peer:?} is not an IP address"),
        })?;
        galera.peers.push(ip);
    }
    if let Some(dir) = raw.datadir {
        galera.datadir = dir.into();
    }
    if let Some(socket) = raw.socket {
        galera.socket = socket.into();
    }
    if let Some(config_path) = raw.config_path {
        galera.config_path = config_path.into();
    }
    if let Some(unit) = raw.unit {
        galera.unit = unit;
    }
    if let Some(user) = raw.monitor_user {
        let valid = !user.is_empty()
            && user.len() <= 32
            && user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                key: "galera.monitor_user",
                message: format!("{user:?}: use 1-32 letters, digits, '-' or '_'"),
            });
        }
        galera.monitor_user = user;
    }
    galera.start_backoff = parse_duration_key(
        path,
        "galera.start_backoff",
        raw.start_backoff.as_deref(),
        galera.start_backoff,
    )?;
    Ok(galera)
}

fn validate_node_id(id: &str) -> Result<(), String> {
    let valid_chars = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if id.is_empty() || id.len() > 63 || !valid_chars {
        return Err(format!(
            "{id:?} must be 1-63 characters of letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(())
}

/// `[cluster]`: name and seeds, validated. Shared with the coordinator.
pub fn resolve_cluster(
    path: &Path,
    raw: &RawCluster,
) -> Result<(String, Vec<String>), ConfigError> {
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    validate_node_id(&raw.name).map_err(|m| invalid("cluster.name", m))?;
    for seed in &raw.seeds {
        validate_seed(seed).map_err(|m| invalid("cluster.seeds", m))?;
    }
    Ok((raw.name.clone(), raw.seeds.clone()))
}

fn validate_seed(seed: &str) -> Result<(), String> {
    if seed.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    match seed.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!("{seed:?} is not host:port")),
    }
}

fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an address:port (e.g. 10.0.0.5:7420)"))
}

fn parse_duration_key(
    path: &Path,
    key: &'static str,
    raw: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match raw {
        None => Ok(default),
        Some(text) => humantime::parse_duration(text).map_err(|error| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message: format!("{text:?} is not a duration like \"200ms\" or \"5s\": {error}"),
        }),
    }
}

/// `[gossip]`, with defaults tuned for detection within about 2 s (design section 7).
pub fn resolve_gossip(
    path: &Path,
    raw: &RawGossip,
    address: IpAddr,
) -> Result<GossipSettings, ConfigError> {
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    let defaults = GossipSettings::production(SocketAddr::new(address, ports::GOSSIP));
    let listen = match &raw.listen {
        Some(listen) => parse_socket_addr(listen).map_err(|m| invalid("gossip.listen", m))?,
        None => defaults.listen,
    };
    let advertise = match &raw.advertise {
        Some(advertise) => {
            parse_socket_addr(advertise).map_err(|m| invalid("gossip.advertise", m))?
        }
        None if listen.ip().is_unspecified() => SocketAddr::new(address, listen.port()),
        None => listen,
    };
    let interval = parse_duration_key(
        path,
        "gossip.interval",
        raw.interval.as_deref(),
        defaults.interval,
    )?;
    if interval < Duration::from_millis(10) || interval > Duration::from_secs(10) {
        return Err(invalid(
            "gossip.interval",
            "must be between 10ms and 10s".to_string(),
        ));
    }
    let phi_threshold = raw.phi_threshold.unwrap_or(defaults.phi_threshold);
    if !(1.0..=64.0).contains(&phi_threshold) {
        return Err(invalid(
            "gossip.phi_threshold",
            "must be between 1 and 64".to_string(),
        ));
    }
    let dead_node_grace = parse_duration_key(
        path,
        "gossip.dead_node_grace",
        raw.dead_node_grace.as_deref(),
        defaults.dead_node_grace,
    )?;
    Ok(GossipSettings {
        listen,
        advertise,
        interval,
        phi_threshold,
        dead_node_grace,
        ..defaults
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[node]
id = "n1"
role = "core"
address = "10.214.0.11"

[cluster]
name = "lab"
seeds = ["10.214.0.11:7420", "n2:7420"]
"#;

    fn parse(text: &str) -> Result<AgentConfig, String> {
        AgentConfig::parse(Path::new("/etc/triad/agent.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn minimal_config_gets_defaults_on_the_node_address() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.node_id, "n1");
        assert_eq!(config.role, Role::Core);
        assert_eq!(config.gossip.listen, "10.214.0.11:7420".parse().unwrap());
        assert_eq!(config.grpc_listen, "10.214.0.11:7421".parse().unwrap());
        assert_eq!(config.gossip.interval, Duration::from_millis(200));
        assert_eq!(config.readiness, ReadinessCheck::ALL.to_vec());
    }

    #[test]
    fn readiness_can_be_narrowed_and_rejects_unknown_services() {
        let config = parse(&format!("{GOOD}\n[readiness]\nrequire = [\"apache\"]\n")).unwrap();
        assert_eq!(config.readiness, vec![ReadinessCheck::Apache]);
        let error = parse(&format!("{GOOD}\n[readiness]\nrequire = [\"php\"]\n")).unwrap_err();
        assert!(error.contains("unknown variant `php`"), "{error}");
    }

    #[test]
    fn gluster_and_mount_sections_resolve_and_are_checked() {
        let config = parse(GOOD).unwrap();
        assert!(
            config.gluster.managed,
            "a core node keeps a brick by default"
        );
        assert_eq!(config.mount.docroot, PathBuf::from("/var/www/triad"));
        let web = parse(&GOOD.replace("role = \"core\"", "role = \"web\"")).unwrap();
        assert!(!web.gluster.managed, "a web node mounts as a client only");
        let custom = parse(&format!(
            "{GOOD}\n[gluster]\nvolume = \"site\"\nbrick_path = \"/data/brick\"\n\n[mount]\ndocroot = \"/srv/www\"\nallow_non_empty = true\n"
        ))
        .unwrap();
        assert_eq!(custom.gluster.volume, "site");
        assert_eq!(custom.mount.docroot, PathBuf::from("/srv/www"));
        assert!(custom.mount.allow_non_empty);
        let error = parse(&format!("{GOOD}\n[mount]\ndocroot = \"www\"\n")).unwrap_err();
        assert!(
            error.contains("mount.docroot") && error.contains("absolute"),
            "{error}"
        );
        let error = parse(&format!("{GOOD}\n[gluster]\nvolume = \"a b\"\n")).unwrap_err();
        assert!(error.contains("gluster.volume"), "{error}");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = GOOD.replace("role = \"core\"", "role = \"core\"\nbogus = 1");
        let error = parse(&text).unwrap_err();
        assert!(error.contains("agent.toml:5:1"), "{error}");
        assert!(error.contains("unknown field `bogus`"), "{error}");
        assert!(!error.contains('\n'));
    }

    #[test]
    fn wrong_type_names_the_key_and_table() {
        let error = parse(&GOOD.replace("address = \"10.214.0.11\"", "address = 5")).unwrap_err();
        assert!(
            error.contains("in [node]") && error.contains("address = 5"),
            "{error}"
        );
    }

    #[test]
    fn missing_required_field_is_named() {
        let error = parse(&GOOD.replace("id = \"n1\"\n", "")).unwrap_err();
        assert!(error.contains("missing field `id`"), "{error}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let error = parse(&GOOD.replace("10.214.0.11\"\n", "ten\"\n")).unwrap_err();
        assert!(error.contains("key `node.address`"), "{error}");
        let error = parse(&GOOD.replace("\"n2:7420\"", "\"n2\"")).unwrap_err();
        assert!(error.contains("key `cluster.seeds`"), "{error}");
        let error = parse(&format!("{GOOD}\n[gossip]\ninterval = \"fast\"\n")).unwrap_err();
        assert!(error.contains("key `gossip.interval`"), "{error}");
    }

    #[test]
    fn unreadable_file_is_named() {
        let error = AgentConfig::load(Path::new("/nonexistent/agent.toml")).unwrap_err();
        assert!(error
            .to_string()
            .contains("/nonexistent/agent.toml: cannot read"));
    }
}
