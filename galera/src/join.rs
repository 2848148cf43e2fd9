//! The order in which stopped members join a Primary component, applied alike by the
//! agents' own rejoin and the coordinator's `Join` calls.

use std::time::Duration;

use triad_proto::gossip::{GaleraKeys, GaleraState};

/// How long a joiner may take to enter the Primary component before the next one goes
/// anyway (a joiner that cannot connect must not hold the others back for ever).
pub const JOIN_SETTLE: Duration = Duration::from_secs(10);

/// One Galera member as gossip shows it.
#[derive(Debug, Clone, Copy)]
pub struct MemberGalera<'a> {
    pub id: &'a str,
    pub live: bool,
    pub keys: &'a GaleraKeys,
}

/// Joins go into the Primary component one at a time: the stopped member that may start
/// mysqld now, or `None` while another joiner is still connecting (or nothing is Primary).
///
/// Why: two nodes running gcomm's membership protocol against the component at the same
/// moment made one of them fall into a non-Primary singleton view and merge ~6 s later
/// (measured on the lab after a full outage: the second joiner Synced 9.4 s after the
/// bootstrap instead of ~4 s). A joiner counts as inside once the Primary members'
/// `wsrep_cluster_size` includes it, so state transfers still overlap; only the few
/// seconds of connecting are serialised. The lowest node id goes first, so the agents'
/// own rejoin and the coordinator's `Join` pick the same node. Callers bound the wait
/// with [`JOIN_SETTLE`].
pub fn next_joiner<'a>(members: &[MemberGalera<'a>]) -> Option<&'a str> {
    let reporters: Vec<&MemberGalera> = members
        .iter()
        .filter(|m| m.live && m.keys.cluster_status.as_deref() == Some("Primary"))
        .collect();
    let component = reporters.iter().filter_map(|m| m.keys.size).max()?;
    // inside the component without reporting it themselves: joiners in a state transfer
    let silent_inside = (component as usize).saturating_sub(reporters.len());
    let starting = members
        .iter()
        .filter(|m| {
            m.live
                && matches!(
                    m.keys.state,
                    GaleraState::Joining | GaleraState::Bootstrapping
                )
                && m.keys.cluster_status.as_deref() != Some("Primary")
        })
        .count();
    if starting > silent_inside {
        return None;
    }
    members
        .iter()
        .filter(|m| m.live && m.keys.state == GaleraState::Stopped)
        .map(|m| m.id)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gossiped(state: GaleraState, primary: bool, size: Option<u32>) -> GaleraKeys {
        GaleraKeys {
            state,
            cluster_status: primary.then(|| "Primary".to_string()),
            size,
            ..GaleraKeys::default()
        }
    }

    fn members<'a>(rows: &'a [(&'a str, bool, GaleraKeys)]) -> Vec<MemberGalera<'a>> {
        rows.iter()
            .map(|(id, live, keys)| MemberGalera {
                id,
                live: *live,
                keys,
            })
            .collect()
    }

    #[test]
    fn joins_go_one_at_a_time_lowest_id_first() {
        use GaleraState::*;
        // just bootstrapped: n1 alone in the component, n2 and n3 stopped
        let rows = [
            ("n1", true, gossiped(Synced, true, Some(1))),
            ("n3", true, gossiped(Stopped, false, None)),
            ("n2", true, gossiped(Stopped, false, None)),
        ];
        assert_eq!(next_joiner(&members(&rows)), Some("n2"));
        // n2 connecting (mysqld starting, not yet counted by n1): nobody else goes
        let rows = [
            ("n1", true, gossiped(Synced, true, Some(1))),
            ("n2", true, gossiped(Joining, false, None)),
            ("n3", true, gossiped(Stopped, false, None)),
        ];
        assert_eq!(next_joiner(&members(&rows)), None);
        // n2 inside the component, still receiving its state transfer: n3's turn
        let rows = [
            ("n1", true, gossiped(Donor, true, Some(2))),
            ("n2", true, gossiped(Joining, false, None)),
            ("n3", true, gossiped(Stopped, false, None)),
        ];
        assert_eq!(next_joiner(&members(&rows)), Some("n3"));
        // n2 Synced
        let rows = [
            ("n1", true, gossiped(Synced, true, Some(2))),
            ("n2", true, gossiped(Synced, true, Some(2))),
            ("n3", true, gossiped(Stopped, false, None)),
        ];
        assert_eq!(next_joiner(&members(&rows)), Some("n3"));
    }

    #[test]
    fn no_turn_without_a_primary_and_dead_members_do_not_count() {
        use GaleraState::*;
        let rows = [
            ("n1", true, gossiped(Stopped, false, None)),
            ("n2", true, gossiped(Stopped, false, None)),
        ];
        assert_eq!(next_joiner(&members(&rows)), None, "nothing is Primary");
        let rows = [
            ("n1", false, gossiped(Synced, true, Some(3))),
            ("n2", true, gossiped(Stopped, false, None)),
        ];
        assert_eq!(
            next_joiner(&members(&rows)),
            None,
            "a dead node's Primary is stale"
        );
        // a dead joiner does not block, a dead stopped node is not chosen
        let rows = [
            ("n1", true, gossiped(Synced, true, Some(1))),
            ("n2", false, gossiped(Joining, false, None)),
            ("n3", true, gossiped(Stopped, false, None)),
            ("n0", false, gossiped(Stopped, false, None)),
        ];
        assert_eq!(next_joiner(&members(&rows)), Some("n3"));
        // a node stuck outside the component (PrimaryLost) is not a joiner in progress
        let rows = [
            ("n1", true, gossiped(Synced, true, Some(1))),
            ("n2", true, gossiped(PrimaryLost, false, None)),
            ("n3", true, gossiped(Stopped, false, None)),
        ];
        assert_eq!(next_joiner(&members(&rows)), Some("n3"));
    }
}
