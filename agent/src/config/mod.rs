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
use crate::mount::MountSettings;
use crate::readiness::ReadinessCheck;
use services::{resolve_apache, resolve_galera, resolve_gluster, resolve_mount};

mod services;
#[cfg(test)]
mod shipped;
use triad_cluster::membership::GossipSettings;
use triad_cluster::settings::{resolve_gossip, RawGossip};
pub use triad_daemon::config::ConfigError;
use triad_daemon::config::{
    auto_address, duration_key, load_toml, parse_socket_addr, parse_toml, resolve_cluster,
    resolve_tls, validate_node_id, RawCluster, RawTls,
};

pub const DEFAULT_PATH: &str = "/etc/triad/agent.toml";
/// `agent.state_dir` unless set (the unit's StateDirectory).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/triad";

/// The file as written. Every key of it and of the structs below is documented in
/// packaging/agent/agent.toml: `config::shipped`'s tests read the keys from these structs and
/// fail on one the file lacks.
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
    tls: Option<RawTls>,
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
    stale_after: Option<String>,
}

/// `[apache]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApache {
    managed: Option<bool>,
    unit: Option<String>,
    port: Option<u16>,
    health_path: Option<String>,
    health_codes: Option<String>,
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
    /// Replication and SST over TLS with the node's `[tls]` certificate (default false).
    tls: Option<bool>,
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
    /// Mutual TLS on the gRPC server (`None`: plaintext, warned at every start).
    pub tls: Option<triad_daemon::tls::TlsFiles>,
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
    let cluster = resolve_cluster(path, &raw.cluster)?;
    let address: IpAddr = if raw.node.address == "auto" {
        auto_address(&cluster.1).map_err(|m| invalid("node.address", m))?
    } else {
        raw.node.address.parse().map_err(|_| {
            invalid(
                "node.address",
                format!("{:?} is not an IP address (or \"auto\")", raw.node.address),
            )
        })?
    };
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
    let gossip = resolve_gossip(path, &raw.gossip, address)?;
    let grpc_listen = match raw.grpc.listen {
        Some(listen) => parse_socket_addr(&listen).map_err(|m| invalid("grpc.listen", m))?,
        None => SocketAddr::new(address, ports::AGENT_GRPC),
    };
    let heartbeat_interval = duration_key(
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
    let tls = resolve_tls(path, raw.tls.as_ref())?;
    let galera = resolve_galera(path, raw.galera, role, &cluster.0, tls.as_ref())?;
    Ok(AgentConfig {
        tls,
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
                .unwrap_or_else(|| DEFAULT_STATE_DIR.to_string()),
        ),
        galera,
        apache: resolve_apache(path, raw.apache)?,
        gluster: resolve_gluster(path, raw.gluster, role)?,
        mount: resolve_mount(path, raw.mount)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use triad_daemon::config::StatusCodes;

    const GOOD: &str = r#"
[node]
id = "n1"
role = "core"
address = "10.214.0.11"

[cluster]
name = "lab"
seeds = ["10.214.0.11:7420", "n2:7420"]

[tls]
insecure = true
"#;

    fn parse(text: &str) -> Result<AgentConfig, String> {
        AgentConfig::parse(Path::new("/etc/triad/agent.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn auto_address_is_the_source_address_toward_the_first_ip_seed() {
        let text = GOOD
            .replace("address = \"10.214.0.11\"", "address = \"auto\"")
            .replace(
                "seeds = [\"10.214.0.11:7420\", \"n2:7420\"]",
                "seeds = [\"n2:7420\", \"127.0.0.9:7420\"]",
            );
        let cfg = parse(&text).unwrap();
        assert_eq!(cfg.address.to_string(), "127.0.0.1");
        assert_eq!(cfg.gossip.listen.to_string(), "127.0.0.1:7420");
        let error = parse(&text.replace("\"127.0.0.9:7420\"", "\"n3:7420\"")).unwrap_err();
        assert!(
            error.contains("node.address") && error.contains("IP address:port"),
            "{error}"
        );
    }

    #[test]
    fn galera_tls_uses_the_node_certificate_and_needs_one() {
        assert_eq!(parse(GOOD).unwrap().galera.tls, None);
        let error = parse(&format!("{GOOD}\n[galera]\ntls = true\n")).unwrap_err();
        assert!(
            error.contains("galera.tls") && error.contains("[tls] ca, cert and key"),
            "{error}"
        );
        let text = GOOD.replace(
            "insecure = true",
            "ca = \"/etc/triad/pki/ca.crt\"\ncert = \"/etc/triad/pki/n1.crt\"\nkey = \"/etc/triad/pki/n1.key\"\n\n[galera]\ntls = true",
        );
        let tls = parse(&text).unwrap().galera.tls.expect("galera tls");
        assert_eq!(tls.source.key, PathBuf::from("/etc/triad/pki/n1.key"));
        assert_eq!(tls.key(), PathBuf::from("/etc/mysql/triad-tls/key.pem"));
        assert_eq!(tls.user, "mysql");
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
    fn the_compressed_digest_is_off_unless_asked_for() {
        assert!(!parse(GOOD).unwrap().gossip.compressed_digest);
        let config = parse(&format!("{GOOD}\n[gossip]\ncompressed_digest = true\n")).unwrap();
        assert!(config.gossip.compressed_digest);
        let error = parse(&format!("{GOOD}\n[gossip]\ncompressed_digest = \"yes\"\n")).unwrap_err();
        assert!(error.contains("compressed_digest"), "{error}");
    }

    #[test]
    fn unreadable_file_is_named() {
        let error = AgentConfig::load(Path::new("/nonexistent/agent.toml")).unwrap_err();
        assert!(error
            .to_string()
            .contains("/nonexistent/agent.toml: cannot read"));
    }

    /// A TOML basic string holding `text` exactly, whatever it contains.
    fn toml_string(text: &str) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// A TOML float literal (Rust's `NaN`/`inf` spellings are not TOML's).
    fn toml_float(value: f64) -> String {
        match value {
            v if v.is_nan() => "nan".into(),
            v if v.is_infinite() => {
                if v > 0.0 {
                    "inf".into()
                } else {
                    "-inf".into()
                }
            }
            v => format!("{v:?}"),
        }
    }

    /// Text the config's string keys take, valid or nearly: durations (huge ones too),
    /// addresses, names, paths and the enum words.
    fn plausible_text() -> BoxedStrategy<String> {
        let number = prop_oneof![0u64..100, 0u64..100_000, any::<u64>(), Just(u64::MAX)];
        let unit = proptest::sample::select(
            &[
                "ns", "ms", "s", "m", "h", "d", "w", "years", "", " s", "fast",
            ][..],
        );
        prop_oneof![
            (number, unit).prop_map(|(n, u)| format!("{n}{u}")),
            any::<std::net::Ipv4Addr>().prop_map(|ip| ip.to_string()),
            any::<std::net::Ipv6Addr>().prop_map(|ip| ip.to_string()),
            any::<SocketAddr>().prop_map(|a| a.to_string()),
            ("[a-z0-9.-]{0,12}", any::<u32>()).prop_map(|(h, p)| format!("{h}:{p}")),
            proptest::sample::select(
                &[
                    "0.0.0.0",
                    "::",
                    "0.0.0.0:7420",
                    "[::]:7421",
                    "core",
                    "web",
                    "mariabackup",
                    "rsync",
                    "galera",
                    "gluster",
                    "mount",
                    "apache",
                    "/",
                    ""
                ][..]
            )
            .prop_map(str::to_string),
            "[A-Za-z0-9._ -]{0,70}",
            "/?[a-z./]{0,20}",
        ]
        .boxed()
    }

    /// Any TOML value, as its literal: plausible strings, every scalar type, arrays, garbage.
    fn toml_value() -> BoxedStrategy<String> {
        prop_oneof![
            4 => plausible_text().prop_map(|t| toml_string(&t)),
            1 => any::<String>().prop_map(|t| toml_string(&t)),
            1 => any::<i64>().prop_map(|n| n.to_string()),
            1 => (0i64..70_000).prop_map(|n| n.to_string()),
            1 => any::<f64>().prop_map(toml_float),
            1 => any::<bool>().prop_map(|b| b.to_string()),
            2 => proptest::collection::vec(plausible_text(), 0..4)
                .prop_map(|v| format!("[{}]", v.iter().map(|t| toml_string(t)).collect::<Vec<_>>().join(", "))),
            1 => "[^\n]{0,20}",
        ]
        .boxed()
    }

    /// Every table and key of agent.toml (`!`: required), plus an unknown key per table.
    const AGENT_SCHEMA: &[(&str, &[&str])] = &[
        ("node", &["!id", "!role", "!address", "bogus"]),
        ("cluster", &["!name", "seeds", "bogus"]),
        (
            "gossip",
            &[
                "listen",
                "advertise",
                "interval",
                "phi_threshold",
                "dead_node_grace",
                "compressed_digest",
                "bogus",
            ],
        ),
        ("grpc", &["listen", "bogus"]),
        ("agent", &["heartbeat_interval", "state_dir", "bogus"]),
        ("readiness", &["require", "bogus"]),
        (
            "galera",
            &[
                "managed",
                "sst_method",
                "gcache_size",
                "innodb_buffer_pool_size",
                "peers",
                "datadir",
                "socket",
                "config_path",
                "unit",
                "start_backoff",
                "monitor_user",
                "tls",
                "bogus",
            ],
        ),
        (
            "apache",
            &[
                "managed",
                "unit",
                "port",
                "health_path",
                "health_codes",
                "configure",
                "bogus",
            ],
        ),
        (
            "gluster",
            &["managed", "unit", "volume", "brick_path", "bogus"],
        ),
        (
            "mount",
            &[
                "managed",
                "docroot",
                "allow_non_empty",
                "probe_timeout",
                "stale_after",
                "bogus",
            ],
        ),
        // plaintext: the certificate files would have to exist for the agent to start,
        // and without [tls] every document stops at `tls` before the services' sections
        ("tls", &["!insecure", "bogus"]),
        ("php", &["bogus"]),
    ];

    /// The fuzzed documents use every key the parser accepts (`[tls]`'s files aside), so a
    /// key added to a `Raw*` struct is fuzzed too.
    #[test]
    fn agent_schema_lists_every_accepted_key() {
        let listed: std::collections::BTreeSet<String> = AGENT_SCHEMA
            .iter()
            .flat_map(|(table, keys)| {
                keys.iter()
                    .map(move |key| format!("{table}.{}", key.trim_start_matches('!')))
            })
            .collect();
        let accepted = triad_daemon::shipped::accepted_keys::<RawAgentConfig>().unwrap();
        let missing: Vec<&String> = accepted
            .iter()
            .filter(|key| !listed.contains(*key))
            .filter(|key| !["tls.ca", "tls.cert", "tls.key"].contains(&key.as_str()))
            .collect();
        assert!(missing.is_empty(), "AGENT_SCHEMA lacks {missing:?}");
    }

    /// A valid value for the keys whose shape the resolver checks, so the documents get
    /// past the first check and reach the later ones.
    fn good_value(key: &str) -> BoxedStrategy<String> {
        let quoted = |s: &'static str| Just(toml_string(s)).boxed();
        match key {
            "id" | "name" => "[a-z][a-z0-9._-]{0,12}"
                .prop_map(|t| toml_string(&t))
                .boxed(),
            "role" => prop_oneof![quoted("core"), quoted("web")].boxed(),
            "address" => prop_oneof![
                9 => any::<std::net::Ipv4Addr>().prop_map(|ip| toml_string(&ip.to_string())),
                1 => Just(toml_string("auto")),
            ]
            .boxed(),
            "seeds" => proptest::collection::vec(any::<std::net::SocketAddrV4>(), 0..3)
                .prop_map(|v| {
                    format!(
                        "[{}]",
                        v.iter()
                            .map(|a| toml_string(&a.to_string()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .boxed(),
            "listen" | "advertise" => any::<std::net::SocketAddrV4>()
                .prop_map(|a| toml_string(&a.to_string()))
                .boxed(),
            "interval" | "heartbeat_interval" | "probe_timeout" | "stale_after"
            | "start_backoff" | "dead_node_grace" => prop_oneof![
                // humantime accepts up to u64::MAX seconds: no timer can hold that
                9 => (10u64..=10_000).prop_map(|ms| toml_string(&format!("{ms}ms"))),
                1 => any::<u64>().prop_map(|s| toml_string(&format!("{s}s"))),
            ]
            .boxed(),
            "phi_threshold" => (0.5f64..70.0).prop_map(toml_float).boxed(),
            "require" => proptest::collection::vec(
                proptest::sample::select(&["galera", "gluster", "mount", "apache"][..]),
                0..4,
            )
            .prop_map(|v| {
                format!(
                    "[{}]",
                    v.iter()
                        .map(|t| toml_string(t))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .boxed(),
            "sst_method" => prop_oneof![quoted("mariabackup"), quoted("rsync")].boxed(),
            "peers" => proptest::collection::vec(any::<std::net::IpAddr>(), 0..3)
                .prop_map(|v| {
                    format!(
                        "[{}]",
                        v.iter()
                            .map(|a| toml_string(&a.to_string()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .boxed(),
            "managed" | "configure" | "allow_non_empty" | "tls" | "compressed_digest" => {
                any::<bool>().prop_map(|b| b.to_string()).boxed()
            }
            "insecure" => Just("true".to_string()).boxed(),
            "port" => any::<u16>().prop_map(|p| p.to_string()).boxed(),
            "health_codes" => prop_oneof![
                Just(toml_string("200")),
                Just(toml_string("200,302")),
                Just(toml_string("200-204")),
                Just(toml_string("2xx")),
            ]
            .boxed(),
            "volume" | "monitor_user" => {
                "[A-Za-z0-9_-]{1,40}".prop_map(|t| toml_string(&t)).boxed()
            }
            _ => "/[a-z]{1,8}(/[a-z.]{1,8}){0,2}"
                .prop_map(|t| toml_string(&t))
                .boxed(),
        }
    }

    /// A document over `schema`: each table present or not, each key present or not, its
    /// value valid but about once per document any TOML value (so a case usually fails
    /// on one key, deep in the resolver, not on the first); rarely a raw garbage line.
    fn toml_document(
        schema: &'static [(&'static str, &'static [&'static str])],
    ) -> BoxedStrategy<String> {
        let tables: Vec<BoxedStrategy<String>> = schema
            .iter()
            .map(|(table, keys)| {
                let required = keys.iter().any(|k| k.starts_with('!'));
                let entries: Vec<BoxedStrategy<Option<String>>> = keys
                    .iter()
                    .map(|key| {
                        let (presence, key) = match key.strip_prefix('!') {
                            Some(key) => (0.98, key),
                            None if *key == "bogus" => (0.01, *key),
                            None => (0.6, *key),
                        };
                        let value = prop_oneof![70 => good_value(key), 1 => toml_value()];
                        proptest::option::weighted(presence, value)
                            .prop_map(move |v| v.map(|v| format!("{key} = {v}\n")))
                            .boxed()
                    })
                    .collect();
                let present = match *table {
                    "php" => 0.01,
                    _ if required => 0.98,
                    _ => 0.7,
                };
                proptest::option::weighted(present, entries)
                    .prop_map(move |e| match e {
                        Some(lines) => format!(
                            "[{table}]\n{}\n",
                            lines.into_iter().flatten().collect::<String>()
                        ),
                        None => String::new(),
                    })
                    .boxed()
            })
            .collect();
        (tables, proptest::option::weighted(0.03, "[^\n]{0,30}"))
            .prop_map(|(tables, garbage)| {
                let mut text: String = tables.concat();
                if let Some(garbage) = garbage {
                    text.push_str(&garbage);
                }
                text
            })
            .boxed()
    }

    proptest! {
        /// agent.toml is written by hand: any text, and any document made of its own tables
        /// and keys with any values, is a config or a one-line error naming the file.
        #[test]
        fn agent_config_never_panics(
            text in prop_oneof![1 => any::<String>(), 4 => toml_document(AGENT_SCHEMA)],
            file in "/[ -~]{0,30}",
        ) {
            let path = Path::new(&file);
            match AgentConfig::parse(path, &text) {
                Ok(config) => {
                    prop_assert!(!config.address.is_unspecified());
                    prop_assert!(!config.node_id.is_empty());
                }
                Err(error) => {
                    let error = error.to_string();
                    prop_assert!(error.contains(&format!("config {file}")), "{}", error);
                    prop_assert!(!error.contains('\n'), "{}", error);
                }
            }
        }

        /// Valid values of every section come back as written.
        #[test]
        fn agent_config_round_trips(
            id in "[A-Za-z0-9][A-Za-z0-9._-]{0,62}",
            web in any::<bool>(),
            address in any::<std::net::IpAddr>().prop_filter("own address", |a| !a.is_unspecified()),
            cluster in "[a-z][a-z0-9-]{0,20}",
            seeds in proptest::collection::vec(any::<(IpAddr, u16)>().prop_map(SocketAddr::from), 0..4),
            interval_ms in 10u64..=10_000,
            phi in 1.0f64..=64.0,
            peers in proptest::collection::vec(any::<IpAddr>(), 0..3),
            port in any::<u16>(),
            health in "/([a-z._-][a-z./_-]{0,19})?",
            codes in proptest::sample::select(&["200", "200,302", "200-204", "204, 301"][..]),
            volume in "[A-Za-z0-9_-]{1,64}",
            docroot in "/[a-z][a-z/_-]{0,20}",
            probe_secs in 1u64..=60,
            user in "[A-Za-z0-9_-]{1,32}",
            rsync in any::<bool>(),
        ) {
            let list = |items: Vec<String>| format!("[{}]", items.iter().map(|t| toml_string(t)).collect::<Vec<_>>().join(", "));
            let text = format!(
                "[node]\nid = {}\nrole = {}\naddress = {}\n\n[cluster]\nname = {}\nseeds = {}\n\n\
                 [gossip]\ninterval = \"{interval_ms}ms\"\nphi_threshold = {}\n\n\
                 [galera]\npeers = {}\nmonitor_user = {}\nsst_method = {}\n\n\
                 [apache]\nport = {port}\nhealth_path = {}\nhealth_codes = {}\n\n[gluster]\nvolume = {}\n\n\
                 [mount]\ndocroot = {}\nprobe_timeout = \"{probe_secs}s\"\n\n[tls]\ninsecure = true\n",
                toml_string(&id),
                toml_string(if web { "web" } else { "core" }),
                toml_string(&address.to_string()),
                toml_string(&cluster),
                list(seeds.iter().map(|s| s.to_string()).collect()),
                toml_float(phi),
                list(peers.iter().map(|s| s.to_string()).collect()),
                toml_string(&user),
                toml_string(if rsync { "rsync" } else { "mariabackup" }),
                toml_string(&health),
                toml_string(codes),
                toml_string(&volume),
                toml_string(&docroot),
            );
            let config = AgentConfig::parse(Path::new("agent.toml"), &text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(&config.node_id, &id);
            prop_assert_eq!(config.role, if web { Role::Web } else { Role::Core });
            prop_assert_eq!(config.address, address);
            prop_assert_eq!(&config.cluster_name, &cluster);
            prop_assert_eq!(config.seeds, seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            prop_assert_eq!(config.gossip.interval, Duration::from_millis(interval_ms));
            prop_assert_eq!(config.gossip.phi_threshold, phi);
            prop_assert_eq!(config.galera.peers, peers);
            prop_assert_eq!(config.galera.monitor_user, user);
            prop_assert_eq!(config.galera.sst_method, if rsync { SstMethod::Rsync } else { SstMethod::Mariabackup });
            prop_assert_eq!(config.apache.port, port);
            prop_assert_eq!(config.apache.health_path, health);
            prop_assert_eq!(config.apache.health_codes, StatusCodes::parse(codes).unwrap());
            prop_assert_eq!(config.gluster.volume, volume);
            prop_assert_eq!(config.mount.docroot, PathBuf::from(docroot));
            prop_assert_eq!(config.mount.probe_timeout, Duration::from_secs(probe_secs));
        }
    }
}
