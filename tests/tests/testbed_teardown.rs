//! Teardown leaves nothing behind, also after faults, and the next setup cleans the leftovers
//! of a run that died without tearing down.

use std::time::Duration;

use triad_tests::testbed::{cleanup_leftovers, leftovers, read_state};
use triad_tests::{faults, formation, host, Testbed};

#[test]
fn testbed_teardown_leaves_nothing() -> anyhow::Result<()> {
    // A run that "crashes": nodes, HAProxy, a crashed node and a cut link, then the handle is
    // dropped without teardown (as when a test process is killed).
    let mut tb = Testbed::for_test(3)?;
    formation::apache_form(&tb)?;
    tb.start_haproxy()?;
    tb.haproxy()?.wait_all_up(Duration::from_secs(30))?;
    let hp_pid = tb.haproxy()?.proc.pid;
    faults::crash(tb.node("n1")?)?;
    faults::isolate(tb.node("n3")?)?;
    let took = faults::reboot(tb.node("n2")?)?;
    eprintln!("reboot of n2: running again after {took:.2?}");
    tb.save()?;
    tb.detach();
    let state = host::state_dir();
    assert!(read_state(&state).is_some());
    assert!(!leftovers(&state).is_empty());

    // the next setup cleans it up
    cleanup_leftovers(&state)?;
    let left = leftovers(&state);
    assert!(left.is_empty(), "leftovers after cleanup: {left:?}");
    assert!(
        !triad_tests::node::pid_alive(hp_pid),
        "haproxy {hp_pid} survived cleanup"
    );

    // and a normal testbed with HAProxy tears down to nothing
    let mut tb = Testbed::for_test(2)?;
    tb.start_haproxy()?;
    tb.teardown_and_verify()?;
    Ok(())
}
