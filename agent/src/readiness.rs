//! Readiness: may this node take traffic?
//!
//! Ready = not draining, and every service the configuration requires is healthy
//! (design section 4: Galera Synced in Primary, docroot mount live, Apache answering).
//! A service whose state is unknown is not healthy. Which services are required is
//! configuration (`[readiness] require`), so a node can run before every service module
//! is managed by the agent; the default requires all of them.

use triad_proto::gossip::{GaleraState, Health, MountState, NodeKeys};

/// A service that readiness can depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadinessCheck {
    Galera,
    Mount,
    Apache,
}

impl ReadinessCheck {
    pub const ALL: [ReadinessCheck; 3] = [
        ReadinessCheck::Galera,
        ReadinessCheck::Mount,
        ReadinessCheck::Apache,
    ];

    fn healthy(&self, keys: &NodeKeys) -> bool {
        match self {
            ReadinessCheck::Galera => {
                keys.galera.state == GaleraState::Synced
                    && keys.galera.cluster_status.as_deref() == Some("Primary")
            }
            ReadinessCheck::Mount => keys.mount == MountState::Ok,
            ReadinessCheck::Apache => keys.apache == Health::Ok,
        }
    }
}

/// Pure: the readiness of a node's keys under the required checks.
pub fn is_ready(keys: &NodeKeys, required: &[ReadinessCheck]) -> bool {
    !keys.draining && required.iter().all(|check| check.healthy(keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_services_are_not_ready_when_required() {
        let keys = NodeKeys::default();
        assert!(!is_ready(&keys, &ReadinessCheck::ALL));
        assert!(is_ready(&keys, &[]));
    }

    #[test]
    fn all_required_healthy_is_ready_until_draining() {
        let mut keys = NodeKeys::default();
        keys.galera.state = GaleraState::Synced;
        keys.galera.cluster_status = Some("Primary".into());
        keys.mount = MountState::Ok;
        keys.apache = Health::Ok;
        assert!(is_ready(&keys, &ReadinessCheck::ALL));
        keys.galera.cluster_status = Some("non-Primary".into());
        assert!(!is_ready(&keys, &ReadinessCheck::ALL));
        keys.galera.cluster_status = Some("Primary".into());
        keys.draining = true;
        assert!(!is_ready(&keys, &ReadinessCheck::ALL));
    }
}
