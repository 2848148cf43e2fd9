//! The coordinator's configuration (`/etc/triad/coordinator.toml`), parsed strictly and
//! validated with the same one-line errors as the agent's.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use triad_agent::config::{
    load_toml, parse_toml, resolve_cluster, resolve_gossip, ConfigError, RawCluster, RawGossip,
};
use triad_agent::membership::GossipSettings;
use triad_proto::ports;

pub const DEFAULT_PATH: &str = "/etc/triad/coordinator.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCoordinatorConfig {
    #[serde(default)]
    coordinator: RawCoordinator,
    cluster: RawCluster,
    gossip: RawGossip,
    #[serde(default)]
    grpc: RawGrpc,
    #[serde(default)]
    galera: RawGalera,
    /// `[balancer]`: load balancer membership (crate::balancer::config; default none).
    #[serde(default)]
    balancer: Option<crate::balancer::config::RawBalancer>,
    /// `[volume]`: the Gluster volume; formed and kept when the section is present.
    #[serde(default)]
    volume: Option<RawVolume>,
    /// `[autoscale]`: the request-rate policy; evaluated when the section is present.
    #[serde(default)]
    autoscale: Option<crate::autoscale::RawAutoscale>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVolume {
    /// Default true when the section is present.
    managed: Option<bool>,
    /// Default "www" (the agents' `gluster.volume`).
    name: Option<String>,
    /// Default "/bricks/www" (the agents' `gluster.brick_path`).
    brick_path: Option<String>,
    /// Core nodes with one brick each; default `[galera] nodes`.
    nodes: Option<Vec<String>>,
    /// `network.ping-timeout`, default "5s" (Gluster's 42 s hung writes for 70 s).
    ping_timeout: Option<String>,
    /// Allow bricks on the root file system (default false).
    bricks_on_root_fs: Option<bool>,
}

/// `[galera]`: formation and full-outage recovery.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGalera {
    /// Form the cluster and recover it after a full outage (default true).
    recovery: Option<bool>,
    /// No Primary component for this long counts as a full outage (default 3s).
    grace: Option<String>,
    /// The Galera members, used until a Primary view has been recorded.
    nodes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCoordinator {
    id: Option<String>,
    state_dir: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGrpc {
    listen: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CoordinatorConfig {
    /// The coordinator's own id in gossip (an observer entry with role `coordinator`).
    pub id: String,
    pub cluster_name: String,
    pub seeds: Vec<String>,
    pub gossip: GossipSettings,
    pub grpc_listen: SocketAddr,
    /// Where decisions are persisted (the Galera epoch and decision).
    pub state_dir: std::path::PathBuf,
    pub galera_recovery: bool,
    pub galera_grace: std::time::Duration,
    pub galera_nodes: Vec<String>,
    /// The Gluster volume to form and keep; `None` when not managed.
    pub volume: Option<crate::volume::VolumeSpec>,
    /// The autoscaling policy; `None` when not configured.
    pub autoscale: Option<crate::autoscale::AutoscaleSettings>,
}

impl CoordinatorConfig {
    pub fn load(path: &Path) -> Result<CoordinatorConfig, ConfigError> {
        resolve(path, load_toml(path)?)
    }

    pub fn parse(path: &Path, text: &str) -> Result<CoordinatorConfig, ConfigError> {
        resolve(path, parse_toml(path, text)?)
    }
}

fn resolve(path: &Path, raw: RawCoordinatorConfig) -> Result<CoordinatorConfig, ConfigError> {
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    let (cluster_name, seeds) = resolve_cluster(path, &raw.cluster)?;
    // Validated here so `validate-config` reports it; the binary reads it with
    // `BalancerConfig::load` (kept out of `CoordinatorConfig` so its literals stay valid).
    crate::balancer::config::resolve(path, raw.balancer.as_ref())?;
    if seeds.is_empty() {
        return Err(invalid(
            "cluster.seeds",
            "the coordinator needs at least one seed (an agent's gossip address)".into(),
        ));
    }
    let listen_text = raw.gossip.listen.as_deref().ok_or_else(|| {
        invalid(
            "gossip.listen",
            "required: the coordinator's gossip address:port on the cluster network".into(),
        )
    })?;
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        invalid(
            "gossip.listen",
            format!("{listen_text:?} is not an address:port"),
        )
    })?;
    let gossip = resolve_gossip(path, &raw.gossip, listen.ip())?;
    if gossip.advertise.ip().is_unspecified() {
        return Err(invalid(
            "gossip.advertise",
            "required when gossip.listen is a wildcard address".into(),
        ));
    }
    let grpc_listen = match raw.grpc.listen {
        Some(text) => text
            .parse()
            .map_err(|_| invalid("grpc.listen", format!("{text:?} is not an address:port")))?,
        None => SocketAddr::from(([127, 0, 0, 1], ports::COORDINATOR_GRPC)),
    };
    let id = raw
        .coordinator
        .id
        .unwrap_or_else(|| "coordinator".to_string());
    if id.is_empty() || id.len() > 63 {
        return Err(invalid("coordinator.id", "must be 1-63 characters".into()));
    }
    let galera_grace = match raw.galera.grace.as_deref() {
        None => std::time::Duration::from_secs(3),
        Some(text) => humantime::parse_duration(text).map_err(|e| {
            invalid(
                "galera.grace",
                format!("{text:?} is not a duration like \"3s\": {e}"),
            )
        })?,
    };
    let galera_nodes = raw.galera.nodes.unwrap_or_default();
    let volume = match raw.volume {
        Some(v) if v.managed.unwrap_or(true) => {
            let name = v.name.unwrap_or_else(|| "www".into());
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid(
                    "volume.name",
                    format!("{name:?}: use 1-64 letters, digits, '-' or '_'"),
                ));
            }
            let brick_path = v.brick_path.unwrap_or_else(|| "/bricks/www".into());
            if !brick_path.starts_with('/') || brick_path.len() < 2 {
                return Err(invalid(
                    "volume.brick_path",
                    format!("{brick_path:?} must be an absolute path other than /"),
                ));
            }
            let nodes = v.nodes.unwrap_or_else(|| galera_nodes.clone());
            if nodes.len() < 2 {
                return Err(invalid(
                    "volume.nodes",
                    "a replica volume needs at least 2 core nodes (set volume.nodes or galera.nodes)".into(),
                ));
            }
            let ping = match v.ping_timeout.as_deref() {
                None => std::time::Duration::from_secs(5),
                Some(text) => humantime::parse_duration(text).map_err(|e| {
                    invalid(
                        "volume.ping_timeout",
                        format!("{text:?} is not a duration like \"5s\": {e}"),
                    )
                })?,
            };
            if ping.as_secs() < 1 || ping.as_secs() > 1800 {
                return Err(invalid(
                    "volume.ping_timeout",
                    "must be between 1s and 30m".into(),
                ));
            }
            Some(crate::volume::VolumeSpec {
                name,
                brick_path,
                nodes,
                ping_timeout_secs: ping.as_secs() as u32,
                force: v.bricks_on_root_fs.unwrap_or(false),
            })
        }
        _ => None,
    };
    let autoscale = crate::autoscale::resolve(path, raw.autoscale.as_ref())?;
    Ok(CoordinatorConfig {
        volume,
        autoscale,
        id,
        cluster_name,
        seeds,
        gossip,
        grpc_listen,
        state_dir: raw
            .coordinator
            .state_dir
            .unwrap_or_else(|| "/var/lib/triad-coordinator".to_string())
            .into(),
        galera_recovery: raw.galera.recovery.unwrap_or(true),
        galera_grace,
        galera_nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[cluster]
name = "lab"
seeds = ["10.214.0.11:7420"]
[gossip]
listen = "10.214.0.1:7420"
"#;

    #[test]
    fn defaults_put_grpc_on_loopback() {
        let config = CoordinatorConfig::parse(Path::new("c.toml"), GOOD).unwrap();
        assert_eq!(config.grpc_listen, "127.0.0.1:7422".parse().unwrap());
        assert_eq!(config.gossip.advertise, "10.214.0.1:7420".parse().unwrap());
        assert_eq!(config.id, "coordinator");
    }

    #[test]
    fn missing_gossip_listen_and_unknown_keys_are_named() {
        let error = CoordinatorConfig::parse(
            Path::new("c.toml"),
            &GOOD.replace("listen = \"10.214.0.1:7420\"", ""),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("key `gossip.listen`"), "{error}");
        let error =
            CoordinatorConfig::parse(Path::new("c.toml"), &format!("{GOOD}\n[grpc]\nport = 1\n"))
                .unwrap_err()
                .to_string();
        assert!(error.contains("unknown field `port`"), "{error}");
    }
}
