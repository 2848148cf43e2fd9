//! `triadctl drain NODE` / `undrain NODE` (issue 21): an operator takes a node out of the
//! balancer without stopping its services, or brings it back. The agent holds the flag
//! (gossip `draining`, kept across its restarts) and the balancer loop does the rest: a
//! draining member finishes its requests and leaves; an undrained one is added again once
//! it has been ready for `rise_hold`.

use std::net::SocketAddr;

use crate::view::ClusterView;

/// What to do for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Call the node's agent at this address.
    Call { grpc: SocketAddr },
    /// Already so: the message says it.
    Nothing(String),
}

/// Pure: whether `node` may be drained (`drain`) or undrained now. Refused: an unknown or
/// unreachable node, and draining the only node that serves (the balancer would keep it
/// anyway, and the operator would think it gone).
pub fn check(view: &ClusterView, node: &str, drain: bool) -> Result<Plan, String> {
    let (member, grpc) = view.reachable_agent(node)?;
    if member.keys.draining == drain {
        let word = if drain {
            "already draining"
        } else {
            "not draining"
        };
        return Ok(Plan::Nothing(format!("{node} is {word}")));
    }
    if drain {
        let others = view
            .members()
            .filter(|m| m.node_id != node && m.serving() && !m.keys.draining)
            .count();
        if others == 0 {
            return Err(format!(
                "{node} is the only node serving: draining it would leave the balancer nothing to send requests to"
            ));
        }
    }
    Ok(Plan::Call { grpc })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::testing::{observed, view_of as view};
    use triad_cluster::membership::ObservedMember;

    fn member(id: &str, live: bool, ready: bool, draining: bool) -> ObservedMember {
        let mut member = observed(id, live, ready);
        member.keys.draining = draining;
        member
    }

    #[test]
    fn the_last_serving_node_is_never_drained() {
        let two = view(&[
            member("n1", true, true, false),
            member("n2", true, true, false),
        ]);
        assert!(matches!(check(&two, "n2", true), Ok(Plan::Call { .. })));
        let one = view(&[
            member("n1", true, true, false),
            member("n2", true, false, false),
        ]);
        let error = check(&one, "n1", true).unwrap_err();
        assert!(error.contains("the only node serving"), "{error}");
        // a not-ready node may be drained: nothing is lost
        assert!(matches!(check(&one, "n2", true), Ok(Plan::Call { .. })));
        let drained = view(&[
            member("n1", true, true, false),
            member("n2", true, true, true),
        ]);
        assert_eq!(
            check(&drained, "n2", true),
            Ok(Plan::Nothing("n2 is already draining".into()))
        );
        assert!(matches!(
            check(&drained, "n2", false),
            Ok(Plan::Call { .. })
        ));
        assert!(check(&drained, "n9", true)
            .unwrap_err()
            .contains("not in the cluster"));
        let dead = view(&[
            member("n1", true, true, false),
            member("n2", false, false, false),
        ]);
        assert!(check(&dead, "n2", true).unwrap_err().contains("not live"));
    }
}
