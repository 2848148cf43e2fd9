//! When an open recovery decision has done its work (pure).

use super::store::{Decision, Phase};

/// Whether an open decision has done its work (pure); `Some(how)` closes it. `synced` are
/// the members Synced in a Primary component, `component` every live member that reports
/// being in one (a donor is `Donor/Desynced` while it serves a joiner's state transfer,
/// and the component is no less there):
/// - every member it was made for is Synced in one Primary component (all core members
///   for a record that predates `members`);
/// - a Primary component exists that the chosen node is not in, while the decision never
///   saw a Primary of its own: Galera (or an operator by hand) formed it without the
///   bootstrap, and the chosen node rejoins it like any stopped node (only before the
///   bootstrap call succeeded: after it, the chosen node is Primary somewhere);
/// - the Primary component seen after the decision is gone again: that is a new outage,
///   which needs fresh positions and a new epoch, never this decision resumed.
pub fn finished(
    decision: &Decision,
    core: &[&str],
    synced: &[String],
    component: &[String],
) -> Option<String> {
    if component.is_empty() {
        return decision.primary_seen.then(|| {
            "its Primary component was lost before every member was Synced (a new outage)"
                .to_string()
        });
    }
    let members: Vec<&str> = if decision.members.is_empty() {
        core.to_vec()
    } else {
        decision.members.iter().map(String::as_str).collect()
    };
    if members.iter().all(|m| synced.iter().any(|s| s == m)) {
        return Some(format!(
            "{} Synced in a Primary component",
            members.join(", ")
        ));
    }
    if decision.phase == Phase::Bootstrapping
        && !decision.primary_seen
        && !component.contains(&decision.node)
    {
        return Some(format!(
            "a Primary component formed without {} ({})",
            decision.node,
            component.join(", ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::store::Phase;

    fn decision(node: &str, phase: Phase, primary_seen: bool) -> Decision {
        Decision {
            epoch: 4,
            node: node.into(),
            uuid: "u".into(),
            seqno: 9,
            formation: false,
            operator: false,
            phase,
            members: vec!["n1".into(), "n2".into(), "n3".into()],
            decided_at: 0,
            primary_seen,
        }
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const CORE: [&str; 3] = ["n1", "n2", "n3"];

    #[test]
    fn a_decision_closes_when_its_members_are_primary_or_its_component_is_lost() {
        let joining = decision("n1", Phase::Joining, true);
        assert_eq!(
            finished(&joining, &CORE, &ids(&["n1", "n2"]), &ids(&["n1", "n2"])),
            None
        );
        let how = finished(
            &joining,
            &CORE,
            &ids(&["n1", "n2", "n3"]),
            &ids(&["n1", "n2", "n3"]),
        )
        .unwrap();
        assert!(how.contains("n1, n2, n3 Synced"), "{how}");
        let how = finished(&joining, &CORE, &[], &[]).unwrap();
        assert!(how.contains("lost"), "{how}");
    }

    #[test]
    fn a_decision_not_yet_acted_on_stays_open_through_the_outage() {
        for phase in [Phase::Bootstrapping, Phase::Joining] {
            assert_eq!(
                finished(&decision("n1", phase, false), &CORE, &[], &[]),
                None
            );
        }
    }

    #[test]
    fn a_primary_formed_without_the_chosen_node_closes_an_unacted_decision_only() {
        let pending = decision("n3", Phase::Bootstrapping, false);
        let how = finished(&pending, &CORE, &ids(&["n1", "n2"]), &ids(&["n1", "n2"])).unwrap();
        assert!(how.contains("formed without n3"), "{how}");
        // once its own Primary was seen, a member that left is joined, not a reason to close
        let acted = decision("n3", Phase::Joining, true);
        assert_eq!(
            finished(&acted, &CORE, &ids(&["n1", "n2"]), &ids(&["n1", "n2"])),
            None
        );
        // nor once the bootstrap call succeeded but gossip does not show it yet
        let called = decision("n3", Phase::Joining, false);
        assert_eq!(
            finished(&called, &CORE, &ids(&["n1", "n2"]), &ids(&["n1", "n2"])),
            None
        );
    }

    #[test]
    fn a_component_whose_only_synced_member_is_a_donor_is_not_lost() {
        // n1 serves n2's state transfer (Donor/Desynced), n2 receives it: no member is
        // Synced, and the component is there all the same
        let joining = decision("n1", Phase::Joining, true);
        assert_eq!(finished(&joining, &CORE, &[], &ids(&["n1"])), None);
        assert_eq!(
            finished(&joining, &CORE, &ids(&["n3"]), &ids(&["n1", "n3"])),
            None
        );
        let pending = decision("n1", Phase::Bootstrapping, false);
        assert_eq!(finished(&pending, &CORE, &[], &ids(&["n1"])), None);
    }

    #[test]
    fn a_record_without_members_counts_every_core_member() {
        let mut old = decision("n1", Phase::Joining, true);
        old.members.clear();
        assert_eq!(
            finished(&old, &CORE, &ids(&["n1", "n2"]), &ids(&["n1", "n2"])),
            None
        );
        assert!(finished(
            &old,
            &CORE,
            &ids(&["n1", "n2", "n3"]),
            &ids(&["n1", "n2", "n3"])
        )
        .is_some());
    }
}
