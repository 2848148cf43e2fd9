//! `[gossip]`, the same section in the agent's and the coordinator's config.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use triad_daemon::config::{duration_key, parse_socket_addr, ConfigError};
use triad_proto::ports;

use crate::membership::GossipSettings;

/// `[gossip]`, shared by the agent and the coordinator.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawGossip {
    pub listen: Option<String>,
    pub advertise: Option<String>,
    pub interval: Option<String>,
    pub phi_threshold: Option<f64>,
    pub dead_node_grace: Option<String>,
    pub compressed_digest: Option<bool>,
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
    let interval = duration_key(
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
    let dead_node_grace = duration_key(
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
        compressed_digest: raw.compressed_digest.unwrap_or(defaults.compressed_digest),
        ..defaults
    })
}
