//! The Gluster volume (design section 6): form the trusted pool and the replica volume
//! from the configured core nodes, set the options Triad owns (quorum, ping-timeout,
//! auth.allow = member addresses), start it; adopt a volume that already exists instead
//! of recreating it; report bricks online and the heal backlog in status.
//!
//! `plan` is pure over one observation of the pool (taken through one agent's glusterd);
//! the loop in `run` carries the steps out through that agent's typed `GlusterStep` RPC.

pub mod run;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use tokio::sync::watch;

/// `[volume]` in the coordinator config.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeSpec {
    pub name: String,
    pub brick_path: String,
    /// The core nodes holding one brick each, in brick order.
    pub nodes: Vec<String>,
    pub ping_timeout_secs: u32,
    /// Allow bricks on the root file system (gluster refuses them without `force`).
    pub force: bool,
}

/// A node as the coordinator sees it in gossip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    pub id: String,
    pub address: IpAddr,
    pub live: bool,
    pub glusterd_ok: bool,
    /// The peers this node's glusterd does not talk to (gossip `gluster.peers_down`).
    pub peers_down: Vec<String>,
}

/// Pure: "glusterd on n2 does not see n1" for every live node whose glusterd reports
/// another live node (by address or id) not connected. Such a glusterd does not count that
/// peer for server quorum: one more failure and it stops its own brick. Measured on the lab
/// (session 13): after a node's return its peers' glusterd reconnected to it only once TCP's
/// connect backoff ran out (29 s), and a crash of a third node in that window stopped the
/// survivor's brick and the volume answered ENOTCONN on every node for 14 s.
pub fn unseen_peers(nodes: &[NodeFacts]) -> Vec<String> {
    let mut unseen = Vec::new();
    for n in nodes.iter().filter(|n| n.live && n.glusterd_ok) {
        for other in nodes
            .iter()
            .filter(|o| o.id != n.id && o.live && o.glusterd_ok)
        {
            let address = other.address.to_string();
            if n.peers_down.iter().any(|p| *p == address || *p == other.id) {
                unseen.push(format!("glusterd on {} does not see {}", n.id, other.id));
            }
        }
    }
    unseen
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerObs {
    pub hostname: String,
    pub connected: bool,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrickObs {
    pub name: String,
    pub online: bool,
    pub heal_pending: Option<u64>,
    /// Entries in split-brain, counted with heal info.
    pub split_brain: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeObs {
    pub status: String,
    pub replica: u32,
    pub bricks: Vec<BrickObs>,
    pub options: BTreeMap<String, String>,
    /// Files in split-brain (paths or "gfid:UUID"), from the last heal-info pass.
    pub split_brain_files: Vec<String>,
}

/// The pool and volume as one node's glusterd sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolObs {
    /// The node that answered (and runs the steps).
    pub via: String,
    pub peers: Vec<PeerObs>,
    pub volume: Option<VolumeObs>,
}

/// A formation step (mirrors the agent's typed steps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Probe(String),
    Create {
        replica: u32,
        bricks: Vec<String>,
        force: bool,
    },
    Set(String, String),
    Start,
    /// An operator's resolution of a file in split-brain (never planned).
    Resolve {
        /// "latest-mtime", "bigger-file" or "source-brick".
        policy: String,
        /// HOST:/PATH with source-brick, else empty.
        brick: String,
        file: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing can be done yet; the sentence says what is awaited.
    Wait(String),
    /// Run these on `PoolObs::via`, in order; stop at the first failure.
    Steps(Vec<Step>),
    /// Formed and as configured; the sentence is the status line.
    Formed(String),
}

/// `cluster.heal-timeout`: how often each self-heal daemon crawls its brick's index.
pub const HEAL_TIMEOUT_SECS: u32 = 5;

/// Client-side metadata caching, as Gluster's own `metadata-cache` and `nl-cache` option
/// groups set it: stats and negative lookups are cached on each client for up to 10 min and
/// invalidated by the bricks (upcall) when another client changes the file. A PHP app stats
/// and looks up hundreds of files per request (its includes, opcache's revalidation, probes
/// for files that do not exist); without these every one is a round trip to the bricks.
/// Measured on the lab (WordPress's home page through HAProxy, 40 sequential requests):
/// p50 344 ms, p90 657 ms before; 78 ms and 126 ms after.
pub const METADATA_CACHE: &[(&str, &str)] = &[
    ("features.cache-invalidation", "on"),
    ("features.cache-invalidation-timeout", "600"),
    ("performance.stat-prefetch", "on"),
    ("performance.cache-invalidation", "on"),
    ("performance.md-cache-timeout", "600"),
    ("performance.nl-cache", "on"),
    ("performance.nl-cache-timeout", "600"),
    ("network.inode-lru-limit", "200000"),
];

/// The quorum while nodes are away for maintenance (issue 21): glusterd's server quorum
/// off (it would stop the last bricks once fewer than half the peers are up) and client
/// quorum fixed at one brick (`auto` refuses writes with one brick of three). Only for
/// departures by maintenance: two sides writing alone after a cut would split the files.
pub const RELAXED_QUORUM: &[(&str, &str)] = &[
    ("cluster.quorum-type", "fixed"),
    ("cluster.quorum-count", "1"),
    ("cluster.server-quorum-type", "none"),
];

/// The marker of a relaxed quorum in the coordinator's state directory: a restarted
/// coordinator keeps the quorum relaxed while nodes are still away (putting server quorum
/// back with one node of three up would stop its brick).
pub const RELAX_FILE: &str = "volume-quorum-relaxed";

/// The wish for the volume's quorum relaxed for maintenance, shared with the volume loop
/// (a change wakes it) and kept on disk.
#[derive(Debug)]
pub struct QuorumRelax {
    file: PathBuf,
    wanted: watch::Sender<bool>,
}

impl QuorumRelax {
    /// The wish as the state directory keeps it.
    pub fn open(state_dir: &Path) -> QuorumRelax {
        let file = state_dir.join(RELAX_FILE);
        QuorumRelax {
            wanted: watch::channel(file.exists()).0,
            file,
        }
    }

    pub fn wanted(&self) -> bool {
        *self.wanted.borrow()
    }

    /// Each change of the wish.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.wanted.subscribe()
    }

    /// Keep the wish on disk first, then apply it.
    pub fn set(&self, on: bool) -> Result<(), String> {
        if on {
            triad_daemon::fs::durable_write(&self.file, "relaxed for node maintenance\n")
                .map_err(|e| format!("cannot write {}: {e}", self.file.display()))?;
        } else {
            triad_daemon::fs::remove_if_present(&self.file)
                .map_err(|e| format!("cannot remove {}: {e}", self.file.display()))?;
        }
        self.wanted
            .send_if_modified(|old| std::mem::replace(old, on) != on);
        Ok(())
    }
}

/// Pure: whether the volume's options are [`RELAXED_QUORUM`]'s.
pub fn quorum_relaxed(options: &BTreeMap<String, String>) -> bool {
    RELAXED_QUORUM
        .iter()
        .all(|(key, value)| options.get(*key).map(String::as_str) == Some(*value))
}

/// The options Triad keeps on the volume; the quorum relaxed for maintenance when
/// `relaxed`.
pub fn desired_options(
    spec: &VolumeSpec,
    allow: &[IpAddr],
    relaxed: bool,
) -> Vec<(String, String)> {
    let mut allow: Vec<String> = allow.iter().map(|a| a.to_string()).collect();
    allow.sort();
    allow.dedup();
    let quorum: Vec<(String, String)> = if relaxed {
        RELAXED_QUORUM
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    } else {
        vec![
            ("cluster.quorum-type".into(), "auto".into()),
            ("cluster.server-quorum-type".into(), "server".into()),
        ]
    };
    quorum
        .into_iter()
        .chain([
            // the self-heal daemon crawls its index only every heal-timeout (Gluster's 600 s)
            // and on a brick's reconnect, which a cut link does not cause (the TCP connections
            // of an idle daemon outlive it): a directory written during a cut stayed unhealed,
            // and the next single-node cut left two bricks accusing each other, ENOTCONN
            // (issue 26). 5 s is Gluster's minimum; an empty index costs one readdir.
            ("cluster.heal-timeout".into(), HEAL_TIMEOUT_SECS.to_string()),
            (
                "network.ping-timeout".into(),
                spec.ping_timeout_secs.to_string(),
            ),
            ("auth.allow".into(), allow.join(",")),
        ])
        .chain(
            METADATA_CACHE
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .collect()
}

/// Pure: started, every brick online, and every brick's heal backlog counted and zero. A
/// brick just back from a cut has no count until the next heal-info pass; taking that for
/// zero showed the volume steady while the others still accused its copies (issue 26).
pub fn steady(volume: &VolumeObs) -> bool {
    volume.status == "Started"
        && volume.bricks.iter().all(|b| b.online)
        && volume.bricks.iter().all(|b| b.heal_pending == Some(0))
}

fn known_peer<'a>(peers: &'a [PeerObs], node: &NodeFacts) -> Option<&'a PeerObs> {
    let address = node.address.to_string();
    peers
        .iter()
        .find(|p| p.hostname == address || p.hostname == node.id)
}

/// Pure: what to do next. `nodes` are the formation nodes' facts (in `spec.nodes` order,
/// missing ones absent); `allow` the addresses for auth.allow (every member).
pub fn plan(
    spec: &VolumeSpec,
    nodes: &[NodeFacts],
    obs: &PoolObs,
    allow: &[IpAddr],
    relaxed: bool,
) -> Plan {
    let options = desired_options(spec, allow, relaxed);
    if let Some(volume) = &obs.volume {
        let mut steps: Vec<Step> = options
            .iter()
            .filter(|(key, value)| volume.options.get(key) != Some(value))
            .map(|(key, value)| Step::Set(key.clone(), value.clone()))
            .collect();
        if volume.status != "Started" {
            steps.push(Step::Start);
        }
        if !steps.is_empty() {
            return Plan::Steps(steps);
        }
        let online = volume.bricks.iter().filter(|b| b.online).count();
        let pending: u64 = volume.bricks.iter().filter_map(|b| b.heal_pending).sum();
        let counted = volume.bricks.iter().any(|b| b.heal_pending.is_some());
        let mut line = format!(
            "{} started, replica {}, bricks {online}/{} online",
            spec.name,
            volume.replica,
            volume.bricks.len()
        );
        if counted {
            line.push_str(&format!(", heal pending {pending}"));
        }
        if !volume.split_brain_files.is_empty() {
            line.push_str(&format!(
                ", SPLIT-BRAIN {} (the app gets I/O errors on them; `triadctl volume resolve FILE --policy ...`): {}",
                volume.split_brain_files.len(),
                volume.split_brain_files.join(", ")
            ));
        }
        let offline: Vec<&str> = volume
            .bricks
            .iter()
            .filter(|b| !b.online)
            .map(|b| b.name.as_str())
            .collect();
        if !offline.is_empty() {
            line.push_str(&format!(" (offline: {})", offline.join(", ")));
        }
        return Plan::Formed(line);
    }
    // no volume yet: every formation node must be there with glusterd running
    let missing: Vec<String> = spec
        .nodes
        .iter()
        .filter(|id| {
            !nodes
                .iter()
                .any(|n| &n.id == *id && n.live && n.glusterd_ok)
        })
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Plan::Wait(format!(
            "forming volume {}: waiting for glusterd on {}",
            spec.name,
            missing.join(", ")
        ));
    }
    let probes: Vec<Step> = nodes
        .iter()
        .filter(|n| n.id != obs.via && known_peer(&obs.peers, n).is_none())
        .map(|n| Step::Probe(n.address.to_string()))
        .collect();
    if !probes.is_empty() {
        return Plan::Steps(probes);
    }
    let unsettled: Vec<String> = nodes
        .iter()
        .filter(|n| n.id != obs.via)
        .filter_map(|n| {
            let peer = known_peer(&obs.peers, n)?;
            (!(peer.connected && peer.state == "Peer in Cluster")).then(|| {
                format!(
                    "{} ({}{})",
                    n.id,
                    peer.state,
                    if peer.connected { "" } else { ", disconnected" }
                )
            })
        })
        .collect();
    if !unsettled.is_empty() {
        return Plan::Wait(format!(
            "forming volume {}: waiting for peers {}",
            spec.name,
            unsettled.join(", ")
        ));
    }
    let bricks = nodes
        .iter()
        .map(|n| format!("{}:{}", n.address, spec.brick_path))
        .collect::<Vec<_>>();
    let mut steps = vec![Step::Create {
        replica: bricks.len() as u32,
        bricks,
        force: spec.force,
    }];
    steps.extend(options.into_iter().map(|(k, v)| Step::Set(k, v)));
    steps.push(Step::Start);
    Plan::Steps(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glusterd_that_does_not_see_a_live_peer_is_named() {
        let mut nodes = facts(&[true, true, true]);
        assert!(unseen_peers(&nodes).is_empty());
        // n2 does not see n1 (named by address) nor n3 (by id)
        nodes[1].peers_down = vec!["10.0.0.1".into(), "n3".into()];
        assert_eq!(
            unseen_peers(&nodes),
            vec![
                "glusterd on n2 does not see n1",
                "glusterd on n2 does not see n3"
            ]
        );
        // a peer that is down anyway is not news
        nodes[0].live = false;
        assert_eq!(unseen_peers(&nodes), vec!["glusterd on n2 does not see n3"]);
    }

    fn spec() -> VolumeSpec {
        VolumeSpec {
            name: "www".into(),
            brick_path: "/bricks/www".into(),
            nodes: vec!["n1".into(), "n2".into(), "n3".into()],
            ping_timeout_secs: 5,
            force: true,
        }
    }

    fn facts(live: &[bool; 3]) -> Vec<NodeFacts> {
        (0..3)
            .map(|i| NodeFacts {
                id: format!("n{}", i + 1),
                address: format!("10.0.0.{}", i + 1).parse().unwrap(),
                live: live[i],
                glusterd_ok: live[i],
                peers_down: vec![],
            })
            .collect()
    }

    fn addrs() -> Vec<IpAddr> {
        facts(&[true; 3]).iter().map(|n| n.address).collect()
    }

    fn pool(peers: &[(&str, bool, &str)]) -> PoolObs {
        PoolObs {
            via: "n1".into(),
            peers: peers
                .iter()
                .map(|(h, c, s)| PeerObs {
                    hostname: h.to_string(),
                    connected: *c,
                    state: s.to_string(),
                })
                .collect(),
            volume: None,
        }
    }

    #[test]
    fn formation_waits_for_every_node_then_probes_then_creates() {
        let p = plan(
            &spec(),
            &facts(&[true, true, false]),
            &pool(&[]),
            &addrs(),
            false,
        );
        assert_eq!(
            p,
            Plan::Wait("forming volume www: waiting for glusterd on n3".into())
        );
        let p = plan(&spec(), &facts(&[true; 3]), &pool(&[]), &addrs(), false);
        assert_eq!(
            p,
            Plan::Steps(vec![
                Step::Probe("10.0.0.2".into()),
                Step::Probe("10.0.0.3".into())
            ])
        );
        let half = pool(&[
            ("10.0.0.2", true, "Peer in Cluster"),
            ("10.0.0.3", false, "Accepted peer request"),
        ]);
        assert!(
            matches!(plan(&spec(), &facts(&[true; 3]), &half, &addrs(), false), Plan::Wait(w) if w.contains("n3 (Accepted peer request, disconnected)"))
        );
        let ready = pool(&[
            ("10.0.0.2", true, "Peer in Cluster"),
            ("n3", true, "Peer in Cluster"),
        ]);
        let Plan::Steps(steps) = plan(&spec(), &facts(&[true; 3]), &ready, &addrs(), false) else {
            panic!("expected steps");
        };
        assert_eq!(
            steps[0],
            Step::Create {
                replica: 3,
                bricks: vec![
                    "10.0.0.1:/bricks/www".into(),
                    "10.0.0.2:/bricks/www".into(),
                    "10.0.0.3:/bricks/www".into()
                ],
                force: true
            }
        );
        assert!(steps.contains(&Step::Set("cluster.quorum-type".into(), "auto".into())));
        assert!(steps.contains(&Step::Set(
            "cluster.server-quorum-type".into(),
            "server".into()
        )));
        assert!(steps.contains(&Step::Set("network.ping-timeout".into(), "5".into())));
        assert!(steps.contains(&Step::Set("cluster.heal-timeout".into(), "5".into())));
        assert!(steps.contains(&Step::Set(
            "auth.allow".into(),
            "10.0.0.1,10.0.0.2,10.0.0.3".into()
        )));
        assert_eq!(steps.last(), Some(&Step::Start));
    }

    fn formed(options: &[(&str, &str)], status: &str, online: [bool; 3]) -> PoolObs {
        let mut p = pool(&[
            ("10.0.0.2", true, "Peer in Cluster"),
            ("10.0.0.3", true, "Peer in Cluster"),
        ]);
        p.volume = Some(VolumeObs {
            status: status.into(),
            replica: 3,
            bricks: (0..3)
                .map(|i| BrickObs {
                    name: format!("10.0.0.{}:/bricks/www", i + 1),
                    online: online[i],
                    heal_pending: Some(if online[i] { 2 } else { 0 }),
                    split_brain: Some(0),
                })
                .collect(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            split_brain_files: Vec::new(),
        });
        p
    }

    const ALL_SET: &[(&str, &str)] = &[
        ("cluster.quorum-type", "auto"),
        ("cluster.server-quorum-type", "server"),
        ("cluster.heal-timeout", "5"),
        ("network.ping-timeout", "5"),
        ("auth.allow", "10.0.0.1,10.0.0.2,10.0.0.3"),
    ];

    /// Every option Triad keeps, as set: [`ALL_SET`] and the metadata caches.
    fn all_set() -> Vec<(&'static str, &'static str)> {
        ALL_SET.iter().chain(METADATA_CACHE).copied().collect()
    }

    #[test]
    fn an_existing_volume_is_adopted_never_recreated() {
        // even with a node down, an existing volume only gets its options and a start
        let obs = formed(
            &[("network.ping-timeout", "42")],
            "Stopped",
            [true, true, false],
        );
        let Plan::Steps(steps) = plan(&spec(), &facts(&[true, true, false]), &obs, &addrs(), false)
        else {
            panic!("expected steps");
        };
        assert!(!steps
            .iter()
            .any(|s| matches!(s, Step::Create { .. } | Step::Probe(_))));
        assert!(steps.contains(&Step::Set("network.ping-timeout".into(), "5".into())));
        assert_eq!(steps.last(), Some(&Step::Start));
    }

    #[test]
    fn a_volume_is_steady_only_with_every_backlog_counted_and_zero() {
        let mut obs = formed(&all_set(), "Started", [true; 3]);
        let volume = obs.volume.as_mut().unwrap();
        assert!(!steady(volume), "2 entries pending on each brick");
        for b in &mut volume.bricks {
            b.heal_pending = Some(0);
        }
        assert!(steady(volume));
        volume.bricks[1].heal_pending = None;
        assert!(
            !steady(volume),
            "a brick without a count is not known healed"
        );
        volume.bricks[1].heal_pending = Some(0);
        volume.bricks[2].online = false;
        assert!(!steady(volume));
    }

    #[test]
    fn formed_volume_reports_bricks_and_heal_backlog() {
        let obs = formed(&all_set(), "Started", [true, true, false]);
        assert_eq!(
            plan(&spec(), &facts(&[true; 3]), &obs, &addrs(), false),
            Plan::Formed(
                "www started, replica 3, bricks 2/3 online, heal pending 4 (offline: 10.0.0.3:/bricks/www)"
                    .into()
            )
        );
    }

    #[test]
    fn a_new_member_address_updates_auth_allow() {
        let obs = formed(&all_set(), "Started", [true; 3]);
        let mut allow = addrs();
        allow.push("10.0.0.9".parse().unwrap());
        assert_eq!(
            plan(&spec(), &facts(&[true; 3]), &obs, &allow, false),
            Plan::Steps(vec![Step::Set(
                "auth.allow".into(),
                "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.9".into()
            )])
        );
    }

    #[test]
    fn maintenance_relaxes_the_quorum_and_puts_it_back() {
        let normal = formed(&all_set(), "Started", [true; 3]);
        let Plan::Steps(steps) = plan(&spec(), &facts(&[true; 3]), &normal, &addrs(), true) else {
            panic!("relaxing is steps")
        };
        let set = |k: &str, v: &str| Step::Set(k.into(), v.into());
        assert_eq!(
            steps,
            vec![
                set("cluster.quorum-type", "fixed"),
                set("cluster.quorum-count", "1"),
                set("cluster.server-quorum-type", "none"),
            ]
        );
        let Some(volume) = &normal.volume else {
            panic!("formed")
        };
        assert!(!quorum_relaxed(&volume.options));
        let relaxed_options: Vec<(&str, &str)> = all_set()
            .into_iter()
            .filter(|(k, _)| !RELAXED_QUORUM.iter().any(|(r, _)| r == k))
            .chain(RELAXED_QUORUM.iter().copied())
            .collect();
        let relaxed = formed(&relaxed_options, "Started", [true, false, false]);
        let Some(volume) = &relaxed.volume else {
            panic!("formed")
        };
        assert!(quorum_relaxed(&volume.options));
        assert!(matches!(
            plan(&spec(), &facts(&[true; 3]), &relaxed, &addrs(), true),
            Plan::Formed(_)
        ));
        assert_eq!(
            plan(&spec(), &facts(&[true; 3]), &relaxed, &addrs(), false),
            Plan::Steps(vec![
                set("cluster.quorum-type", "auto"),
                set("cluster.server-quorum-type", "server"),
            ])
        );
    }
}
