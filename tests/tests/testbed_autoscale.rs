//! Autoscaling driven by Triad only (issue 8), on real Debian nodes: the coordinator's exec
//! provider runs `triad-lab add-node` / `remove-node` (a new container from the same image,
//! the agent installed the same way, role web). A bounded load through HAProxy above the
//! target grows the cluster from 3 to 4 nodes; the new node is stateless (no mysqld: the
//! app's database through its endpoint), mounts the volume as a client and serves requests
//! through the balancer, WordPress's pages too; when the load stops it is drained and removed, with no failed
//! client request meanwhile.
//! The scenario is `triad_tests::bench_autoscale` (also `triad-lab bench-autoscale`).

use triad_tests::bench_autoscale::{self, node_ready, NEW_NODE};
use triad_tests::formation::wsrep;
use triad_tests::Testbed;

#[test]
fn testbed_autoscale_grows_under_load_and_shrinks_without_failed_requests() -> anyhow::Result<()> {
    let mut tb = Testbed::for_test(3)?;
    bench_autoscale::prepare(&mut tb)?;
    let f = bench_autoscale::scenario(&tb)?;
    eprintln!("[autoscale] {f}");
    assert!(
        f.out_from_new > 0,
        "{NEW_NODE} answered through the balancer"
    );
    assert_eq!(
        f.new_node_mysqld, "",
        "{NEW_NODE} is a stateless web node: no mysqld"
    );
    assert_eq!(
        f.new_node_app,
        Ok(200),
        "{NEW_NODE} serves the app (WordPress's home page, its database through the endpoint)"
    );
    assert!(f.in_ok > 100, "the light load ran");
    assert_eq!(f.in_failed, 0, "failed requests during the scale-in");
    assert_ne!(
        node_ready(NEW_NODE),
        Some(true),
        "{NEW_NODE} no longer serving once removed"
    );
    // Galera: the three core nodes stay one Primary component of 3 (n4 never joined it)
    for n in &tb.nodes {
        let w = wsrep(n)?;
        assert_eq!(
            w.get("wsrep_cluster_status").map(String::as_str),
            Some("Primary"),
            "{}",
            n.name
        );
        assert_eq!(
            w.get("wsrep_cluster_size").map(String::as_str),
            Some("3"),
            "{}",
            n.name
        );
    }
    tb.teardown_and_verify()?;
    Ok(())
}
