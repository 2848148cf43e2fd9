//! One node cut off the network (issue 26) must cost no more than a crash: each of n1, n2,
//! n3 in turn loses its link for 20 s under a steady client through HAProxy and writers
//! through the other two nodes (the scenario: `triad_tests::bench_partition`). Real
//! Galera, Gluster, Apache and HAProxy, driven by the agents and the coordinator. A PHP
//! session through the balancer survives the crash of its node (opt-in for now).

use std::time::Duration;

use triad_tests::bench_partition::{prepare, round, AROUND_THE_CUT};
use triad_tests::{triad, Testbed};

/// Each cut waits for the volume to be healed before the next: a directory written during
/// a cut was left unhealed by Gluster's 600 s self-heal crawl, and the third cut then left
/// the two survivors accusing each other's copy (ENOTCONN on every write into it, 3 runs of
/// 7 before `cluster.heal-timeout` 5 s). The writes through the survivors must all be
/// acknowledged: that is the defect's signature.
#[test]
fn testbed_partition_one_node_cut_off_costs_no_more_than_a_crash() -> anyhow::Result<()> {
    let mut tb = Testbed::for_test(3)?;
    prepare(&mut tb)?;
    let mut next_id = 1;
    let mut all = Vec::new();
    for i in 0..tb.nodes.len() {
        let victim = &tb.nodes[i];
        let f = round(&tb, victim, &mut next_id)?;
        let name = &f.node;
        assert!(
            f.survivor_problems.is_empty(),
            "{name} cut off: the other nodes must stay live and ready: {:?}",
            f.survivor_problems
        );
        assert!(
            f.failed_away_from_the_cut.is_empty(),
            "{name} cut off: requests failed more than {AROUND_THE_CUT:?} away from the cut: {:?}",
            f.failed_away_from_the_cut
        );
        assert!(
            f.out_of_balancer.is_some(),
            "{name} was not seen out of the balancer while cut off"
        );
        assert!(
            f.ready_after_heal.is_some(),
            "{name} was not live and ready after the heal"
        );
        assert!(
            f.rows_acked > 0 && f.files_acked > 0,
            "{name} cut off: no write was acknowledged ({:?})",
            f.write_failures.iter().take(5).collect::<Vec<_>>()
        );
        assert!(
            f.volume_healed_after.is_some(),
            "{name}: the volume was not healed after the heal"
        );
        assert!(
            f.write_failures.is_empty(),
            "{name} cut off: writes through the survivors failed: {:?}",
            f.write_failures.iter().take(5).collect::<Vec<_>>()
        );
        assert!(
            f.lost.is_empty(),
            "{name} cut off: acknowledged writes lost: {:?}",
            f.lost
        );
        all.push(f);
        // the next cut starts from a whole cluster
        triad::wait_all_ready(&tb, 3, Duration::from_secs(120))?;
    }
    for f in &all {
        eprintln!("[partition] {f}");
        for line in f.mount_gaps.iter().chain(f.write_failures.iter().take(5)) {
            eprintln!("    {line}");
        }
    }
    tb.teardown_and_verify()?;
    Ok(())
}

/// Not in CI yet (`cargo nextest run -p triad-tests --test testbed_partition --run-ignored
/// only`): the PHP-session scenario after the three cuts. Session 10, 7 runs: 6 green, 1 red
/// (home n1): the session continued on n3, but one cookie-less request of the client loop
/// answered HTTP 403 during n1's crash; a 403 from Apache is its answer to a path it could
/// not stat (AH00035), so a survivor's mount likely failed a lookup for a moment. The test
/// now prints the answer's text and the survivors' Apache and mount logs when it fails.
/// (Session 9: 1 red of 3, the session page answered something else.) On a fresh lab the
/// same scenario runs in CI (testbed_app).
#[test]
#[ignore = "open: 1 run of 7 had a cookie-less request answered HTTP 403 during the session node's crash after the cuts (issue 20)"]
fn testbed_partition_a_php_session_survives_its_node_after_the_cuts() -> anyhow::Result<()> {
    let mut tb = Testbed::for_test(3)?;
    prepare(&mut tb)?;
    let mut next_id = 1;
    for i in 0..tb.nodes.len() {
        let f = round(&tb, &tb.nodes[i], &mut next_id)?;
        eprintln!("[partition] {f}");
        triad::wait_all_ready(&tb, 3, Duration::from_secs(120))?;
    }
    let _crashed = triad_tests::sessions::survive_their_node(&tb)?;
    tb.teardown_and_verify()?;
    Ok(())
}
