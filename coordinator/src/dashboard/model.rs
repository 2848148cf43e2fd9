//! The page's model: what the dashboard shows, built purely from the status answer that
//! `triadctl status` renders (`v1::ClusterStatus`) and the timeline's latest events, so the
//! page and the CLI cannot disagree. The page only draws it; every judgement (which tile is
//! red, why) is made here, where it is tested.

use serde::Serialize;
use triad_proto::v1;

use crate::events::Event;

/// Timeline events the page keeps (newest first).
pub const EVENTS_SHOWN: usize = 40;

/// How a tile, a cell or the whole cluster looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tone {
    /// Serving as it should.
    Ok,
    /// Working on it (joining, healing, draining) or not ready.
    Warn,
    /// Down or failed: the red tile.
    Bad,
    /// Not managed or not known: nothing to judge.
    Idle,
}

/// Everything the page draws.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PageModel {
    pub cluster: String,
    pub version: String,
    /// The cluster at a glance: `ok` when every node is up and ready.
    pub health: Tone,
    /// Why the health is not `ok`, one line each.
    pub reasons: Vec<String>,
    /// The grid's columns, in the order the agents publish them.
    pub services: Vec<String>,
    pub nodes: Vec<NodeTile>,
    pub balancer: Option<BalancerBox>,
    /// The loops' status lines (recovery, volume, scaling, node maintenance, app, backup,
    /// TLS), only those that say something.
    pub activity: Vec<Activity>,
    pub events: Vec<EventRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeTile {
    pub id: String,
    pub role: String,
    pub tone: Tone,
    /// `up`, `not ready`, `draining`, `down` or `maintenance` (away on purpose: grey,
    /// never red).
    pub state: &'static str,
    /// Why it is not up ("mount stale; apache down"), empty when up.
    pub reason: String,
    /// One per column of [`PageModel::services`].
    pub cells: Vec<Cell>,
    pub heartbeat_age_ms: Option<u64>,
    pub cpu_percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    pub state: String,
    pub tone: Tone,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BalancerBox {
    pub kind: String,
    pub members: Vec<BalancerMember>,
    pub errors_total: u64,
    pub last_error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BalancerMember {
    pub name: String,
    pub state: String,
    pub tone: Tone,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity {
    pub label: &'static str,
    pub text: String,
    /// True while the loop is acting (an open recovery decision, a scaling flow).
    pub busy: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    /// Unix milliseconds.
    pub at: u64,
    pub kind: String,
    pub subject: String,
    pub text: String,
}

/// How a service's gossip state word looks (the words of `triad_proto::gossip`).
pub fn service_tone(state: &str) -> Tone {
    match state {
        "synced" | "ok" | "online" | "donor" => Tone::Ok,
        "recovering" | "joining" | "bootstrapping" | "healing" | "ahead" => Tone::Warn,
        "unknown" | "not-managed" | "" => Tone::Idle,
        _ => Tone::Bad,
    }
}

fn member_tone(state: &str) -> Tone {
    match state {
        "active" => Tone::Ok,
        "draining" => Tone::Warn,
        _ => Tone::Bad,
    }
}

fn node_tile(node: &v1::NodeView, services: &[String]) -> NodeTile {
    let (tone, state, reason) = if !node.maintenance.is_empty() {
        // away on purpose (a planned stop or reboot): not an alarm, down or not
        let live = if node.live {
            "left the cluster"
        } else {
            "powered off"
        };
        (
            Tone::Idle,
            "maintenance",
            format!("in maintenance ({}), {live}", node.maintenance),
        )
    } else if !node.live {
        let reason = match node.heartbeat_age_ms {
            Some(age) => format!("no heartbeat for {:.1}s", age as f64 / 1000.0),
            None => "never heard from".to_string(),
        };
        (Tone::Bad, "down", reason)
    } else if node.draining {
        (Tone::Warn, "draining", "drained by an operator".to_string())
    } else if !node.ready {
        let reason = if node.not_ready_reason.is_empty() {
            "not ready".to_string()
        } else {
            node.not_ready_reason.clone()
        };
        (Tone::Warn, "not ready", reason)
    } else {
        (Tone::Ok, "up", String::new())
    };
    let cells = services
        .iter()
        .map(|name| {
            let state = node
                .services
                .iter()
                .find(|s| &s.name == name)
                .map_or("unknown", |s| s.state.as_str());
            // a dead node's last gossip is history, not its state now
            let tone = if node.live {
                service_tone(state)
            } else {
                Tone::Idle
            };
            Cell {
                state: state.to_string(),
                tone,
            }
        })
        .collect();
    let role = v1::Role::try_from(node.role)
        .map(|r| r.as_str_name().trim_start_matches("ROLE_").to_lowercase())
        .unwrap_or_default();
    NodeTile {
        id: node.node_id.clone(),
        role,
        tone,
        state,
        reason,
        cells,
        heartbeat_age_ms: node.heartbeat_age_ms,
        cpu_percent: node.metrics.as_ref().map_or(0.0, |m| m.cpu_percent),
    }
}

/// The page's model from the status and the timeline's events (any order; the newest
/// [`EVENTS_SHOWN`] are kept, newest first).
pub fn page_model(status: &v1::ClusterStatus, events: &[Event]) -> PageModel {
    let mut services: Vec<String> = Vec::new();
    for node in &status.nodes {
        for service in &node.services {
            if !services.contains(&service.name) {
                services.push(service.name.clone());
            }
        }
    }
    let mut nodes: Vec<NodeTile> = status
        .nodes
        .iter()
        .map(|n| node_tile(n, &services))
        .collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));

    let mut reasons: Vec<String> = nodes
        .iter()
        .filter(|n| n.tone != Tone::Ok)
        .map(|n| format!("{} {}: {}", n.id, n.state, n.reason))
        .collect();
    let split_brain = status
        .volume_section
        .as_ref()
        .map_or(0, |v| v.split_brain_files.len());
    if split_brain > 0 {
        reasons.push(format!("volume: {split_brain} file(s) in split-brain"));
    }
    let up = nodes.iter().filter(|n| n.tone == Tone::Ok).count();
    let health = if nodes.is_empty() || up == 0 {
        if nodes.is_empty() {
            reasons.push("no node has joined the cluster's gossip".to_string());
        }
        Tone::Bad
    } else if reasons.is_empty() {
        Tone::Ok
    } else {
        Tone::Warn
    };

    let balancer = status.balancer.as_ref().map(|b| BalancerBox {
        kind: b.kind.clone(),
        members: b
            .members
            .iter()
            .map(|line| {
                let (name, state) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                BalancerMember {
                    name: name.to_string(),
                    state: state.to_string(),
                    tone: member_tone(state),
                }
            })
            .collect(),
        errors_total: b.errors_total,
        last_error: b.last_error.clone(),
    });

    let recovering = status
        .galera_section
        .as_ref()
        .is_some_and(|g| g.open_decision.is_some());
    // the policy wants another number of nodes than are ready
    let scaling = status
        .autoscale_section
        .as_ref()
        .is_some_and(|a| a.recommended.is_some_and(|r| r != a.ready));
    let activity = [
        ("recovery", &status.galera, recovering),
        ("volume", &status.volume, split_brain > 0),
        ("scaling", &status.autoscale, scaling),
        // nodes in maintenance, the next leave, the volume's quorum
        (
            "maintenance",
            &status.node_maintenance,
            !status.node_maintenance.is_empty(),
        ),
        ("app", &status.app, false),
        ("backup", &status.backup, false),
        ("tls", &status.tls, false),
    ]
    .into_iter()
    .filter(|(_, text, _)| !text.is_empty())
    .map(|(label, text, busy)| Activity {
        label,
        text: text.clone(),
        busy,
    })
    .collect();

    let mut events: Vec<EventRow> = events
        .iter()
        .map(|e| EventRow {
            at: e.at,
            kind: e.kind.clone(),
            subject: e.subject.clone(),
            text: e.text.clone(),
        })
        .collect();
    events.sort_by_key(|event| std::cmp::Reverse(event.at));
    events.truncate(EVENTS_SHOWN);

    PageModel {
        cluster: status.cluster_name.clone(),
        version: status.coordinator_version.clone(),
        health,
        reasons,
        services,
        nodes,
        balancer,
        activity,
        events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, live: bool, ready: bool) -> v1::NodeView {
        v1::NodeView {
            node_id: id.to_string(),
            live,
            ready,
            role: v1::Role::Core as i32,
            heartbeat_age_ms: Some(if live { 200 } else { 1_700 }),
            services: vec![
                v1::ServiceState {
                    name: "galera".into(),
                    state: "synced".into(),
                },
                v1::ServiceState {
                    name: "mount".into(),
                    state: if ready { "ok" } else { "stale" }.into(),
                },
            ],
            not_ready_reason: if ready { "" } else { "mount stale" }.into(),
            ..Default::default()
        }
    }

    fn status(nodes: Vec<v1::NodeView>) -> v1::ClusterStatus {
        v1::ClusterStatus {
            cluster_name: "lab".into(),
            nodes,
            ..Default::default()
        }
    }

    #[test]
    fn all_nodes_up_is_a_healthy_cluster() {
        let model = page_model(
            &status(vec![node("n2", true, true), node("n1", true, true)]),
            &[],
        );
        assert_eq!(model.health, Tone::Ok);
        assert!(model.reasons.is_empty());
        assert_eq!(model.services, ["galera", "mount"]);
        let ids: Vec<&str> = model.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["n1", "n2"], "tiles sorted by node id");
        assert!(model
            .nodes
            .iter()
            .all(|n| n.state == "up" && n.tone == Tone::Ok));
        assert_eq!(model.nodes[0].role, "core");
    }

    /// A node powered off for maintenance is grey, never red, and the maintenance line is
    /// an activity.
    #[test]
    fn a_node_in_maintenance_is_grey_not_red() {
        let mut n2 = node("n2", false, false);
        n2.maintenance = "operator alice".into();
        let mut st = status(vec![node("n1", true, true), n2]);
        st.node_maintenance = "in maintenance: n2".into();
        let model = page_model(&st, &[]);
        let n2 = &model.nodes[1];
        assert_eq!((n2.tone, n2.state), (Tone::Idle, "maintenance"));
        assert_eq!(n2.reason, "in maintenance (operator alice), powered off");
        assert_eq!(model.health, Tone::Warn);
        let maintenance = model
            .activity
            .iter()
            .find(|a| a.label == "maintenance")
            .expect("the maintenance line");
        assert!(maintenance.busy);
        assert_eq!(maintenance.text, "in maintenance: n2");
    }

    #[test]
    fn crashed_node_is_a_red_tile_with_its_silence_as_reason() {
        let model = page_model(
            &status(vec![node("n1", true, true), node("n2", false, true)]),
            &[],
        );
        let n2 = &model.nodes[1];
        assert_eq!((n2.tone, n2.state), (Tone::Bad, "down"));
        assert_eq!(n2.reason, "no heartbeat for 1.7s");
        assert!(
            n2.cells.iter().all(|c| c.tone == Tone::Idle),
            "a dead node's last gossip is not judged: {:?}",
            n2.cells
        );
        assert_eq!(model.health, Tone::Warn);
        assert_eq!(model.reasons, ["n2 down: no heartbeat for 1.7s"]);
    }

    #[test]
    fn not_ready_node_is_amber_with_the_agents_reason_and_its_cell_red() {
        let model = page_model(&status(vec![node("n1", true, false)]), &[]);
        let n1 = &model.nodes[0];
        assert_eq!((n1.tone, n1.state), (Tone::Warn, "not ready"));
        assert_eq!(n1.reason, "mount stale");
        assert_eq!(n1.cells[1].tone, Tone::Bad);
        assert_eq!(n1.cells[0].tone, Tone::Ok);
        assert_eq!(model.health, Tone::Bad, "no node up: the cluster is down");
    }

    #[test]
    fn no_nodes_is_down_and_says_why() {
        let model = page_model(&status(vec![]), &[]);
        assert_eq!(model.health, Tone::Bad);
        assert_eq!(model.reasons, ["no node has joined the cluster's gossip"]);
    }

    #[test]
    fn missing_service_is_an_unknown_cell() {
        let mut web = node("n4", true, true);
        web.services.truncate(1);
        let model = page_model(&status(vec![node("n1", true, true), web]), &[]);
        assert_eq!(model.nodes[1].cells[1].state, "unknown");
        assert_eq!(model.nodes[1].cells[1].tone, Tone::Idle);
    }

    #[test]
    fn balancer_members_split_into_name_and_state() {
        let mut s = status(vec![node("n1", true, true)]);
        s.balancer = Some(v1::BalancerStatus {
            kind: "haproxy".into(),
            members: vec!["n1 active".into(), "n2 maint".into(), "n3 draining".into()],
            errors_total: 2,
            last_error: "socket refused".into(),
        });
        let balancer = page_model(&s, &[]).balancer.unwrap();
        let members: Vec<(&str, &str, Tone)> = balancer
            .members
            .iter()
            .map(|m| (m.name.as_str(), m.state.as_str(), m.tone))
            .collect();
        assert_eq!(
            members,
            [
                ("n1", "active", Tone::Ok),
                ("n2", "maint", Tone::Bad),
                ("n3", "draining", Tone::Warn)
            ]
        );
        assert_eq!(balancer.last_error, "socket refused");
    }

    #[test]
    fn open_recovery_decision_and_split_brain_show_as_busy_activity() {
        let mut s = status(vec![node("n1", true, true)]);
        s.galera = "outage: electing".into();
        s.galera_section = Some(v1::GaleraSection {
            last_epoch: 3,
            open_decision: Some(v1::GaleraDecision {
                epoch: 4,
                node: "n1".into(),
                phase: "bootstrap".into(),
            }),
        });
        s.volume = "SPLIT-BRAIN 1".into();
        s.volume_section = Some(v1::VolumeSection {
            state: "formed".into(),
            split_brain_files: vec!["/index.php".into()],
        });
        let model = page_model(&s, &[]);
        let busy: Vec<(&str, bool)> = model.activity.iter().map(|a| (a.label, a.busy)).collect();
        assert_eq!(
            busy,
            [("recovery", true), ("volume", true)],
            "empty lines are left out"
        );
        assert_eq!(model.health, Tone::Warn);
        assert_eq!(model.reasons, ["volume: 1 file(s) in split-brain"]);
    }

    #[test]
    fn scaling_is_busy_while_the_policy_wants_another_count() {
        let mut s = status(vec![node("n1", true, true)]);
        s.autoscale = "recommend 3".into();
        for (ready, recommended, busy) in
            [(2, Some(3), true), (3, Some(3), false), (3, None, false)]
        {
            s.autoscale_section = Some(v1::AutoscaleSection {
                request_rate: None,
                ready,
                recommended,
                removed: vec![],
            });
            let model = page_model(&s, &[]);
            assert_eq!(model.activity[0].label, "scaling");
            assert_eq!(
                model.activity[0].busy, busy,
                "{ready} ready, {recommended:?}"
            );
        }
    }

    #[test]
    fn events_newest_first_and_bounded() {
        let events: Vec<Event> = (0..100)
            .map(|i| Event {
                at: i,
                kind: "node".into(),
                subject: "n1".into(),
                text: format!("event {i}"),
                who: None,
            })
            .collect();
        let model = page_model(&status(vec![]), &events);
        assert_eq!(model.events.len(), EVENTS_SHOWN);
        assert_eq!(model.events[0].at, 99);
    }

    #[test]
    fn service_words_map_to_tones() {
        for (word, tone) in [
            ("synced", Tone::Ok),
            ("donor", Tone::Ok),
            ("joining", Tone::Warn),
            ("healing", Tone::Warn),
            ("primary-lost", Tone::Bad),
            ("stale", Tone::Bad),
            ("offline", Tone::Bad),
            ("not-managed", Tone::Idle),
            ("unknown", Tone::Idle),
        ] {
            assert_eq!(service_tone(word), tone, "{word}");
        }
    }
}
