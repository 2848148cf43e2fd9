//! Readiness: may this node take traffic?
//!
//! Ready = not draining, and every service the configuration requires is healthy
//! (design section 4: Galera Synced in Primary, the local brick online and healed, docroot
//! mount live, Apache answering).
//! A service whose state is unknown is not healthy. Which services are required is
//! configuration (`[readiness] require`), so a node can run before every service module
//! is managed by the agent; the default requires all of them.

use triad_proto::gossip::{AppSecret, BrickState, GaleraState, Health, MountState, NodeKeys};

/// A service that readiness can depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadinessCheck {
    Galera,
    /// The local brick online and healed; a node without a brick (a web node, or the
    /// brick not managed) passes.
    Gluster,
    Mount,
    Apache,
}

impl ReadinessCheck {
    pub const ALL: [ReadinessCheck; 4] = [
        ReadinessCheck::Galera,
        ReadinessCheck::Gluster,
        ReadinessCheck::Mount,
        ReadinessCheck::Apache,
    ];

    /// `None` when healthy, else a few words on what is wrong.
    fn problem(&self, keys: &NodeKeys) -> Option<String> {
        match self {
            ReadinessCheck::Galera => {
                let status = keys.galera.cluster_status.as_deref();
                match (keys.galera.state, status) {
                    (GaleraState::Synced, Some("Primary")) => None,
                    // A donor keeps serving: an IST is sent by a background thread and a
                    // mariabackup SST locks only briefly; the app's queries go through the
                    // database endpoint, whose check still admits Synced members only. Taking
                    // it out would cost a second node each time one rejoins.
                    (GaleraState::Donor, Some("Primary")) => None,
                    // synced but cut off: say which component it is in
                    (GaleraState::Synced, status) => {
                        Some(format!("galera synced {}", status.unwrap_or("no status")))
                    }
                    (state, _) if keys.galera.failed_starts > 0 => Some(format!(
                        "galera {}, {} failed starts",
                        state.as_str(),
                        keys.galera.failed_starts
                    )),
                    (state, _) => Some(format!("galera {}", state.as_str())),
                }
            }
            ReadinessCheck::Gluster => match keys.gluster_brick {
                BrickState::Online | BrickState::NotManaged => None,
                other => Some(format!("brick {}", other.as_str())),
            },
            ReadinessCheck::Mount => {
                (keys.mount != MountState::Ok).then(|| format!("mount {}", keys.mount.as_str()))
            }
            ReadinessCheck::Apache => {
                (keys.apache != Health::Ok).then(|| format!("apache {}", keys.apache.as_str()))
            }
        }
    }
}

/// Pure: the readiness of a node's keys under the required checks.
pub fn is_ready(keys: &NodeKeys, required: &[ReadinessCheck]) -> bool {
    not_ready_reason(keys, required).is_none()
}

/// Pure: why the node is not ready ("mount stale; apache down"), or `None` when it is.
/// Kept short enough for one gossip value (64 bytes).
pub fn not_ready_reason(keys: &NodeKeys, required: &[ReadinessCheck]) -> Option<String> {
    let mut problems: Vec<String> = Vec::new();
    if keys.draining {
        problems.push("draining".into());
    }
    problems.extend(required.iter().filter_map(|check| check.problem(keys)));
    // once the coordinator declared an app, its database password file is required: the
    // app cannot reach its database without it
    if keys.app_secret == AppSecret::Missing {
        problems.push("app secret missing".into());
    }
    if problems.is_empty() {
        return None;
    }
    let mut reason = problems.join("; ");
    if reason.len() > 64 {
        let mut cut = 61;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push_str("...");
    }
    Some(reason)
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
        keys.gluster_brick = BrickState::Online;
        keys.mount = MountState::Ok;
        keys.apache = Health::Ok;
        assert!(is_ready(&keys, &ReadinessCheck::ALL));
        keys.gluster_brick = BrickState::Healing;
        assert_eq!(
            not_ready_reason(&keys, &ReadinessCheck::ALL).as_deref(),
            Some("brick healing")
        );
        keys.gluster_brick = BrickState::NotManaged;
        assert!(is_ready(&keys, &ReadinessCheck::ALL));
        keys.galera.cluster_status = Some("non-Primary".into());
        assert!(!is_ready(&keys, &ReadinessCheck::ALL));
        keys.galera.cluster_status = Some("Primary".into());
        keys.draining = true;
        assert!(!is_ready(&keys, &ReadinessCheck::ALL));
    }

    #[test]
    fn a_declared_app_needs_its_password_file() {
        let mut keys = NodeKeys::default();
        assert!(is_ready(&keys, &[]), "no app declared");
        keys.app_secret = AppSecret::Ok;
        assert!(is_ready(&keys, &[]));
        keys.app_secret = AppSecret::Missing;
        assert_eq!(
            not_ready_reason(&keys, &[]).as_deref(),
            Some("app secret missing")
        );
    }

    #[test]
    fn a_donor_in_the_primary_component_keeps_serving() {
        let mut keys = NodeKeys::default();
        keys.galera.state = GaleraState::Donor;
        keys.galera.cluster_status = Some("Primary".into());
        assert!(is_ready(&keys, &[ReadinessCheck::Galera]));
        keys.galera.cluster_status = Some("non-Primary".into());
        assert_eq!(
            not_ready_reason(&keys, &[ReadinessCheck::Galera]).as_deref(),
            Some("galera donor")
        );
        keys.galera.state = GaleraState::Joining;
        keys.galera.cluster_status = Some("Primary".into());
        assert_eq!(
            not_ready_reason(&keys, &[ReadinessCheck::Galera]).as_deref(),
            Some("galera joining")
        );
    }

    /// The truth table: every combination of the four services, ready only when all are
    /// healthy, and the reason names exactly the unhealthy ones.
    #[test]
    fn truth_table_over_all_services() {
        for bits in 0u8..16 {
            let mut keys = NodeKeys::default();
            let galera_ok = bits & 1 != 0;
            let brick_ok = bits & 2 != 0;
            let mount_ok = bits & 4 != 0;
            let apache_ok = bits & 8 != 0;
            if galera_ok {
                keys.galera.state = GaleraState::Synced;
                keys.galera.cluster_status = Some("Primary".into());
            } else {
                keys.galera.state = GaleraState::Joining;
                keys.galera.cluster_status = Some("non-Primary".into());
            }
            keys.gluster_brick = if brick_ok {
                BrickState::Online
            } else {
                BrickState::Offline
            };
            keys.mount = if mount_ok {
                MountState::Ok
            } else {
                MountState::Stale
            };
            keys.apache = if apache_ok { Health::Ok } else { Health::Down };
            let all = galera_ok && brick_ok && mount_ok && apache_ok;
            assert_eq!(
                is_ready(&keys, &ReadinessCheck::ALL),
                all,
                "bits {bits:04b}"
            );
            let reason = not_ready_reason(&keys, &ReadinessCheck::ALL).unwrap_or_default();
            assert_eq!(reason.contains("galera joining"), !galera_ok, "{reason}");
            assert_eq!(reason.contains("brick offline"), !brick_ok, "{reason}");
            assert_eq!(reason.contains("mount stale"), !mount_ok, "{reason}");
            assert_eq!(reason.contains("apache down"), !apache_ok, "{reason}");
            assert!(reason.len() <= 64, "{reason}");
            // a check that is not required never blocks
            assert!(is_ready(&keys, &[]));
        }
    }
}
