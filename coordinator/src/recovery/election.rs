//! The bootstrap election (design section 5), pure: positions in, a decision out.
//!
//! 1. every member of the last Primary view must have reported (a missing node blocks);
//! 2. inconsistent input is refused: a live uuid with an unknown seqno, different cluster
//!    uuids; empty nodes (all-zero uuid, seqno -1) need SST and are never a source;
//! 3. the highest seqno wins; ties go to a node whose grastate says safe_to_bootstrap,
//!    then to the lowest node id;
//! 4. when every member is empty, this is a formation: the lowest node id bootstraps.

use std::collections::{BTreeMap, BTreeSet};

use triad_galera::position::Position;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub position: Position,
    pub safe_to_bootstrap: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Election {
    /// These members have not reported; nothing happens until they do (or an operator
    /// names a node explicitly).
    Waiting { missing: Vec<String> },
    /// The reports cannot be trusted for an automatic bootstrap.
    Refused { reason: String },
    Bootstrap {
        node: String,
        position: Position,
        formation: bool,
    },
}

fn is_empty(report: &Report) -> bool {
    report.position.is_undefined()
}

pub fn elect(members: &BTreeSet<String>, reports: &BTreeMap<String, Report>) -> Election {
    if members.is_empty() {
        return Election::Refused {
            reason: "no Galera member is known".into(),
        };
    }
    let missing: Vec<String> = members
        .iter()
        .filter(|m| !reports.contains_key(*m))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Election::Waiting { missing };
    }
    let considered: Vec<(&String, &Report)> = members.iter().map(|m| (m, &reports[m])).collect();
    if considered.iter().all(|(_, r)| is_empty(r)) {
        let node = considered[0].0.clone();
        return Election::Bootstrap {
            node,
            position: considered[0].1.position.clone(),
            formation: true,
        };
    }
    let defined: Vec<(&String, &Report)> = considered
        .iter()
        .copied()
        .filter(|(_, r)| !is_empty(r))
        .collect();
    if let Some((node, _)) = defined.iter().find(|(_, r)| r.position.seqno < 0) {
        return Election::Refused {
            reason: format!(
                "{node} has cluster uuid but an unknown seqno (-1 after --wsrep-recover): it may be the most advanced; \
                 check it and run `triadctl recover --bootstrap NODE`"
            ),
        };
    }
    let uuids: BTreeSet<&str> = defined
        .iter()
        .map(|(_, r)| r.position.uuid.as_str())
        .collect();
    if uuids.len() > 1 {
        let detail: Vec<String> = defined
            .iter()
            .map(|(n, r)| format!("{n}={}", r.position.uuid))
            .collect();
        return Election::Refused {
            reason: format!(
                "members report different cluster uuids: {}",
                detail.join(", ")
            ),
        };
    }
    // max by (seqno, safe_to_bootstrap, reverse id): the lowest id wins a full tie
    let (node, report) = defined
        .iter()
        .copied()
        .max_by(|(a_id, a), (b_id, b)| {
            (a.position.seqno, a.safe_to_bootstrap)
                .cmp(&(b.position.seqno, b.safe_to_bootstrap))
                .then_with(|| b_id.cmp(a_id))
        })
        .expect("defined is not empty");
    Election::Bootstrap {
        node: node.clone(),
        position: report.position.clone(),
        formation: false,
    }
}

/// An operator names the node to bootstrap: refused when a reporting node is more advanced
/// or the named node's position is unknown, unless `force`.
pub fn check_override(
    node: &str,
    reports: &BTreeMap<String, Report>,
    force: bool,
) -> Result<Position, String> {
    let Some(chosen) = reports.get(node) else {
        return Err(format!(
            "{node} did not report a position (is its agent reachable?)"
        ));
    };
    if force {
        return Ok(chosen.position.clone());
    }
    if chosen.position.seqno < 0 && !chosen.position.is_undefined() {
        return Err(format!(
            "{node}'s seqno is unknown; use --force if you are sure"
        ));
    }
    if let Some((other, report)) = reports
        .iter()
        .filter(|(_, r)| {
            !r.position.is_undefined() && r.position.uuid == chosen.position.uuid
                || chosen.position.is_undefined()
        })
        .find(|(_, r)| r.position.seqno > chosen.position.seqno)
    {
        return Err(format!(
            "{other} is more advanced ({} > {}): bootstrapping {node} would lose its writes; use --force to do it anyway",
            report.position.seqno, chosen.position.seqno
        ));
    }
    Ok(chosen.position.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const U: &str = "9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31";
    const V: &str = "11111111-e8fa-11f1-9cdd-af8aaf7b5b31";
    const Z: &str = "00000000-0000-0000-0000-000000000000";

    fn r(uuid: &str, seqno: i64, safe: bool) -> Report {
        Report {
            position: Position {
                uuid: uuid.into(),
                seqno,
            },
            safe_to_bootstrap: safe,
        }
    }

    fn members(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn reports(items: &[(&str, Report)]) -> BTreeMap<String, Report> {
        items
            .iter()
            .map(|(n, r)| (n.to_string(), r.clone()))
            .collect()
    }

    fn chosen(election: &Election) -> Option<&str> {
        match election {
            Election::Bootstrap { node, .. } => Some(node),
            _ => None,
        }
    }

    #[test]
    fn highest_seqno_wins() {
        let e = elect(
            &members(&["n1", "n2", "n3"]),
            &reports(&[
                ("n1", r(U, 10, false)),
                ("n2", r(U, 12, false)),
                ("n3", r(U, 11, false)),
            ]),
        );
        assert_eq!(chosen(&e), Some("n2"));
    }

    #[test]
    fn a_missing_member_blocks_even_if_another_is_safe_to_bootstrap() {
        let e = elect(
            &members(&["n1", "n2", "n3"]),
            &reports(&[("n1", r(U, 10, true)), ("n2", r(U, 9, false))]),
        );
        assert_eq!(
            e,
            Election::Waiting {
                missing: vec!["n3".into()]
            }
        );
    }

    #[test]
    fn safe_to_bootstrap_with_unknown_seqno_is_not_trusted() {
        // the last survivor that later crashed: safe flag 1, seqno -1 (galera internals §4.1)
        let e = elect(
            &members(&["n1", "n2"]),
            &reports(&[("n1", r(U, -1, true)), ("n2", r(U, 5, false))]),
        );
        assert!(matches!(e, Election::Refused { .. }), "{e:?}");
    }

    #[test]
    fn empty_node_with_safe_flag_is_never_a_source() {
        // mariadb-operator #1701: safe-to-bootstrap on an all-zero uuid, seqno -1
        let e = elect(
            &members(&["n1", "n2"]),
            &reports(&[("n1", r(Z, -1, true)), ("n2", r(U, 5, false))]),
        );
        assert_eq!(chosen(&e), Some("n2"));
    }

    #[test]
    fn different_cluster_uuids_are_refused() {
        let e = elect(
            &members(&["n1", "n2"]),
            &reports(&[("n1", r(U, 5, false)), ("n2", r(V, 9, false))]),
        );
        match e {
            Election::Refused { reason } => {
                assert!(reason.contains("different cluster uuids"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ties_go_to_safe_to_bootstrap_then_lowest_id() {
        let m = members(&["n1", "n2", "n3"]);
        let e = elect(
            &m,
            &reports(&[
                ("n1", r(U, 7, false)),
                ("n2", r(U, 7, false)),
                ("n3", r(U, 7, true)),
            ]),
        );
        assert_eq!(chosen(&e), Some("n3"));
        let e = elect(
            &m,
            &reports(&[
                ("n1", r(U, 6, false)),
                ("n2", r(U, 7, false)),
                ("n3", r(U, 7, false)),
            ]),
        );
        assert_eq!(chosen(&e), Some("n2"));
    }

    #[test]
    fn all_empty_is_a_formation_from_the_lowest_id() {
        let e = elect(
            &members(&["n2", "n1"]),
            &reports(&[("n1", r(Z, -1, false)), ("n2", r(Z, -1, false))]),
        );
        assert!(
            matches!(e, Election::Bootstrap { ref node, formation: true, .. } if node == "n1"),
            "{e:?}"
        );
    }

    #[test]
    fn gtid_suffixed_positions_compare_by_seqno_not_as_text() {
        // the Pacemaker agent compares "48451,0-1-48431" as a string; we parse the seqno
        let a = triad_galera::position::parse_recovered_value(&format!("{U}:9,0-1-100")).unwrap();
        let b = triad_galera::position::parse_recovered_value(&format!("{U}:10,0-1-99")).unwrap();
        let e = elect(
            &members(&["n1", "n2"]),
            &reports(&[
                (
                    "n1",
                    Report {
                        position: a,
                        safe_to_bootstrap: false,
                    },
                ),
                (
                    "n2",
                    Report {
                        position: b,
                        safe_to_bootstrap: false,
                    },
                ),
            ]),
        );
        assert_eq!(chosen(&e), Some("n2"));
    }

    #[test]
    fn override_refuses_a_node_behind_another_unless_forced() {
        let rs = reports(&[("n1", r(U, 5, false)), ("n2", r(U, 9, false))]);
        assert!(check_override("n1", &rs, false)
            .unwrap_err()
            .contains("n2 is more advanced"));
        assert_eq!(check_override("n1", &rs, true).unwrap().seqno, 5);
        assert_eq!(check_override("n2", &rs, false).unwrap().seqno, 9);
        assert!(check_override("n3", &rs, false).is_err());
    }

    proptest! {
        /// Never a bootstrap source behind another reporting node of the same cluster.
        #[test]
        fn the_source_is_never_behind_a_reporting_member(seqnos in proptest::collection::vec((-1i64..50, any::<bool>(), any::<bool>()), 1..6)) {
            let mut m = BTreeSet::new();
            let mut rs = BTreeMap::new();
            for (i, (seqno, safe, empty)) in seqnos.iter().enumerate() {
                let id = format!("n{i}");
                m.insert(id.clone());
                let report = if *empty { r(Z, -1, *safe) } else { r(U, *seqno, *safe) };
                rs.insert(id, report);
            }
            if let Election::Bootstrap { node, position, formation } = elect(&m, &rs) {
                prop_assert!(m.contains(&node));
                for report in rs.values() {
                    if !formation {
                        prop_assert!(report.position.seqno <= position.seqno, "{:?} behind {:?}", position, report);
                    }
                }
                // deterministic: the same input elects the same node
                let again = elect(&m, &rs);
                prop_assert_eq!(chosen(&again), Some(node.as_str()));
            }
        }
    }
}
