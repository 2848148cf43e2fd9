//! Typed views of `gluster --xml …` output. Every answer is a `<cliOutput>` with `opRet`
//! (0 or -1), `opErrno` and `opErrstr`; a non-zero `opRet` becomes [`GlusterError::Failed`]
//! with gluster's own message. Fixtures in `fixtures/` are recorded from glusterfs 10.3 on
//! the lab's Debian 12 nodes.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlusterError {
    #[error("gluster {command}: {message} (errno {errno})")]
    Failed {
        command: String,
        errno: i64,
        message: String,
    },
    #[error("gluster {command}: output is not the expected XML: {detail}")]
    Malformed { command: String, detail: String },
}

/// The status fields every answer has; the body is parsed separately (serde's `flatten`
/// does not keep repeated XML elements as sequences).
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "opRet")]
    op_ret: i64,
    #[serde(rename = "opErrno", default)]
    op_errno: i64,
    #[serde(rename = "opErrstr", default)]
    op_errstr: Option<String>,
}

fn parse<T: for<'de> Deserialize<'de>>(command: &str, text: &str) -> Result<T, GlusterError> {
    // check opRet first so a failure is reported as such even when the body differs
    let status: Envelope = quick_xml::de::from_str(text).map_err(|e| GlusterError::Malformed {
        command: command.into(),
        detail: e.to_string(),
    })?;
    if status.op_ret != 0 {
        return Err(GlusterError::Failed {
            command: command.into(),
            errno: status.op_errno,
            message: status.op_errstr.unwrap_or_default(),
        });
    }
    quick_xml::de::from_str(text).map_err(|e| GlusterError::Malformed {
        command: command.into(),
        detail: e.to_string(),
    })
}

/// Check only the status of an answer (for commands with no body worth parsing:
/// probe, create, set, start, heal).
pub fn check(command: &str, text: &str) -> Result<(), GlusterError> {
    parse::<Envelope>(command, text).map(|_| ())
}

/// The `<output>` text of an answer, if any (gluster's human message, e.g. "peer probe:
/// success").
pub fn output_text(text: &str) -> String {
    #[derive(Deserialize)]
    struct WithOutput {
        #[serde(default)]
        output: Option<String>,
    }
    quick_xml::de::from_str::<WithOutput>(text)
        .ok()
        .and_then(|o| o.output)
        .unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Peer {
    pub uuid: String,
    pub hostname: String,
    /// 1 when glusterd on this node talks to the peer.
    pub connected: u8,
    #[serde(rename = "stateStr")]
    pub state: String,
}

impl Peer {
    pub fn in_cluster_and_connected(&self) -> bool {
        self.connected == 1 && self.state == "Peer in Cluster"
    }
}

#[derive(Debug, Deserialize)]
struct PeerStatusBody {
    #[serde(rename = "peerStatus")]
    peer_status: PeerList,
}

#[derive(Debug, Deserialize, Default)]
struct PeerList {
    #[serde(rename = "peer", default)]
    peers: Vec<Peer>,
}

/// `gluster --xml peer status`
pub fn peer_status(text: &str) -> Result<Vec<Peer>, GlusterError> {
    parse::<PeerStatusBody>("peer status", text).map(|b| b.peer_status.peers)
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VolumeInfo {
    pub name: String,
    pub id: String,
    #[serde(rename = "statusStr")]
    pub status: String,
    #[serde(rename = "replicaCount")]
    pub replica_count: u32,
    #[serde(rename = "typeStr")]
    pub kind: String,
    pub bricks: Bricks,
    #[serde(default)]
    pub options: Options,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
pub struct Bricks {
    #[serde(rename = "brick", default)]
    pub bricks: Vec<Brick>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Brick {
    /// `host:/path`
    pub name: String,
    #[serde(rename = "hostUuid")]
    pub host_uuid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
pub struct Options {
    #[serde(rename = "option", default)]
    pub options: Vec<VolumeOption>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VolumeOption {
    pub name: String,
    pub value: String,
}

impl VolumeInfo {
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .options
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.value.as_str())
    }
}

#[derive(Debug, Deserialize)]
struct VolInfoBody {
    #[serde(rename = "volInfo")]
    vol_info: VolInfoVolumes,
}

#[derive(Debug, Deserialize)]
struct VolInfoVolumes {
    volumes: VolumeList,
}

#[derive(Debug, Deserialize)]
struct VolumeList {
    #[serde(rename = "volume", default)]
    volumes: Vec<VolumeInfo>,
}

/// `gluster --xml volume info [VOL]`
pub fn volume_info(text: &str) -> Result<Vec<VolumeInfo>, GlusterError> {
    parse::<VolInfoBody>("volume info", text).map(|b| b.vol_info.volumes.volumes)
}

/// One process of `volume status`: a brick, or a daemon such as the self-heal daemon.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StatusNode {
    pub hostname: String,
    pub path: String,
    pub peerid: String,
    /// 1 when the process is online.
    pub status: u8,
    pub pid: i64,
}

impl StatusNode {
    pub fn is_brick(&self) -> bool {
        self.path.starts_with('/')
    }
}

#[derive(Debug, Deserialize)]
struct VolStatusBody {
    #[serde(rename = "volStatus")]
    vol_status: VolStatusVolumes,
}

#[derive(Debug, Deserialize)]
struct VolStatusVolumes {
    volumes: VolStatusList,
}

#[derive(Debug, Deserialize)]
struct VolStatusList {
    volume: VolStatus,
}

#[derive(Debug, Deserialize)]
struct VolStatus {
    #[serde(rename = "node", default)]
    nodes: Vec<StatusNode>,
}

/// `gluster --xml volume status VOL`
pub fn volume_status(text: &str) -> Result<Vec<StatusNode>, GlusterError> {
    parse::<VolStatusBody>("volume status", text).map(|b| b.vol_status.volumes.volume.nodes)
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HealBrick {
    pub name: String,
    pub status: String,
    /// `None` when gluster could not count ("-" for a disconnected brick).
    #[serde(rename = "numberOfEntries", deserialize_with = "count_or_dash")]
    pub entries: Option<u64>,
    /// The entries listed (heal info lists them with their gfid).
    #[serde(rename = "file", default)]
    pub files: Vec<HealFile>,
}

/// One entry of heal info: its path in the volume (or `<gfid:…>` when gluster cannot name
/// it) and its gfid.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HealFile {
    #[serde(rename = "@gfid", default)]
    pub gfid: String,
    #[serde(rename = "$text", default)]
    pub path: String,
}

fn count_or_dash<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    let text = String::deserialize(deserializer)?;
    Ok(text.trim().parse().ok())
}

#[derive(Debug, Deserialize)]
struct HealBody {
    #[serde(rename = "healInfo")]
    heal_info: HealBricks,
}

#[derive(Debug, Deserialize)]
struct HealBricks {
    bricks: HealBrickList,
}

#[derive(Debug, Deserialize)]
struct HealBrickList {
    #[serde(rename = "brick", default)]
    bricks: Vec<HealBrick>,
}

/// `gluster --xml volume heal VOL info`
pub fn heal_info(text: &str) -> Result<Vec<HealBrick>, GlusterError> {
    parse::<HealBody>("volume heal info", text).map(|b| b.heal_info.bricks.bricks)
}

/// Pure: the names of the entries in split-brain, one per gfid: the path when any brick
/// could name it (a brick whose copy gluster cannot resolve to a path lists the same entry
/// as `<gfid:…>`, measured on the lab: two bricks by gfid, one by path, for one file), else
/// `gfid:<gfid>`; sorted, at most `limit`.
pub fn split_brain_names(bricks: &[HealBrick], limit: usize) -> Vec<String> {
    let mut by_gfid: std::collections::BTreeMap<&str, Option<&str>> = Default::default();
    let mut unnamed_without_gfid = Vec::new();
    for file in bricks.iter().flat_map(|b| b.files.iter()) {
        let path = file.path.starts_with('/').then_some(file.path.as_str());
        if file.gfid.is_empty() {
            unnamed_without_gfid.push(file.path.clone());
            continue;
        }
        let slot = by_gfid.entry(file.gfid.as_str()).or_default();
        if slot.is_none() {
            *slot = path;
        }
    }
    let mut names: Vec<String> = by_gfid
        .into_iter()
        .map(|(gfid, path)| path.map_or_else(|| format!("gfid:{gfid}"), str::to_string))
        .chain(unnamed_without_gfid)
        .collect();
    names.sort();
    names.dedup();
    names.truncate(limit);
    names
}

/// Healed: every brick connected and counted with zero pending entries.
pub fn fully_healed(bricks: &[HealBrick]) -> bool {
    !bricks.is_empty()
        && bricks
            .iter()
            .all(|b| b.status == "Connected" && b.entries == Some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_brain_info_names_the_file_on_every_brick() {
        // recorded on the lab after a split-brain made on purpose (bricks stopped in turn
        // with client quorum off, a different write on each side)
        let bricks = heal_info(include_str!("fixtures/heal-info-split-brain.xml")).unwrap();
        assert_eq!(bricks.len(), 3);
        for brick in &bricks {
            assert_eq!(brick.entries, Some(1), "{brick:?}");
            assert_eq!(
                brick.files,
                [HealFile {
                    gfid: "e9b466a1-c5ad-4cd0-bcb6-9c50a083f85e".into(),
                    path: "/sb4.txt".into()
                }]
            );
        }
        assert_eq!(split_brain_names(&bricks, 100), ["/sb4.txt"]);
        // and a clean volume lists none
        let clean = heal_info(include_str!("fixtures/heal-info.xml")).unwrap();
        assert!(clean.iter().all(|b| b.files.is_empty()));
    }

    #[test]
    fn peer_status_of_a_three_node_pool() {
        let peers = peer_status(include_str!("fixtures/peer-status.xml")).unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].hostname, "n2");
        assert!(peers.iter().all(Peer::in_cluster_and_connected));
    }

    #[test]
    fn volume_info_with_bricks_and_options() {
        let volumes = volume_info(include_str!("fixtures/volume-info.xml")).unwrap();
        let www = &volumes[0];
        assert_eq!(
            (www.name.as_str(), www.status.as_str(), www.replica_count),
            ("www", "Started", 3)
        );
        let bricks: Vec<&str> = www.bricks.bricks.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            bricks,
            ["n1:/bricks/www", "n2:/bricks/www", "n3:/bricks/www"]
        );
        assert_eq!(www.option("network.ping-timeout"), Some("5"));
    }

    #[test]
    fn volume_status_lists_bricks_and_daemons() {
        let nodes = volume_status(include_str!("fixtures/volume-status.xml")).unwrap();
        let bricks: Vec<&StatusNode> = nodes.iter().filter(|n| n.is_brick()).collect();
        assert_eq!(bricks.len(), 3);
        assert!(bricks.iter().all(|b| b.status == 1 && b.pid > 0));
        assert!(nodes.iter().any(|n| n.hostname == "Self-heal Daemon"));
    }

    #[test]
    fn heal_info_counts_entries() {
        let bricks = heal_info(include_str!("fixtures/heal-info.xml")).unwrap();
        assert_eq!(bricks.len(), 3);
        assert!(fully_healed(&bricks));
        let pending = include_str!("fixtures/heal-info.xml").replacen(
            "<numberOfEntries>0<",
            "<numberOfEntries>12<",
            1,
        );
        assert!(!fully_healed(&heal_info(&pending).unwrap()));
        let disconnected = include_str!("fixtures/heal-info.xml").replacen(
            "<status>Connected</status>\n        <numberOfEntries>0<",
            "<status>Transport endpoint is not connected</status>\n        <numberOfEntries>-<",
            1,
        );
        let bricks = heal_info(&disconnected).unwrap();
        assert_eq!(bricks[0].entries, None);
        assert!(!fully_healed(&bricks));
    }

    #[test]
    fn check_reports_failure_and_output_text_reads_the_message() {
        let missing = include_str!("fixtures/volume-status-missing.xml");
        let error = check("volume status nosuch", missing).unwrap_err();
        assert!(
            error.to_string().contains("Volume nosuch does not exist"),
            "{error}"
        );
        assert_eq!(output_text(missing), "Volume nosuch does not exist");
        assert!(check(
            "volume status www",
            include_str!("fixtures/volume-status.xml")
        )
        .is_ok());
    }

    #[test]
    fn failures_carry_glusters_message() {
        let error = volume_status(include_str!("fixtures/volume-status-missing.xml")).unwrap_err();
        assert_eq!(
            error,
            GlusterError::Failed {
                command: "volume status".into(),
                errno: 30800,
                message: "Volume nosuch does not exist".into()
            }
        );
        let error = volume_info(include_str!("fixtures/volume-info-missing.xml")).unwrap_err();
        assert!(
            error.to_string().contains("Volume does not exist"),
            "{error}"
        );
        let error =
            peer_status("Connection failed. Please check if gluster daemon is operational.")
                .unwrap_err();
        assert!(matches!(error, GlusterError::Malformed { .. }), "{error:?}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in proptest::prelude::any::<String>()) {
            let _ = peer_status(&text);
            let _ = volume_info(&text);
            let _ = volume_status(&text);
            let _ = heal_info(&text);
        }
    }

    #[test]
    fn a_file_named_by_gfid_on_some_bricks_and_by_path_on_another_is_one_entry() {
        // the shape recorded on the lab (session 25): one file in split-brain, two bricks
        // list it by gfid, the third by its path
        let bricks = heal_info(include_str!("fixtures/heal-info-split-brain-gfid.xml")).unwrap();
        assert_eq!(split_brain_names(&bricks, 100), ["/split.txt"]);
        // a file no brick can name is listed by gfid, once
        let unnamed: Vec<HealBrick> = bricks[..2].to_vec();
        assert_eq!(
            split_brain_names(&unnamed, 100),
            ["gfid:5b01adec-1546-4b1d-a1d0-118834f444e5"]
        );
        assert_eq!(split_brain_names(&bricks, 0), Vec::<String>::new());
    }
}
