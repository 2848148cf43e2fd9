//! Issue 20's short chaos run in CI: `triad-lab chaos` for five minutes with a fixed seed on
//! a fresh lab, while the checkers write rows (through the app's database endpoint, by a
//! PHP page behind HAProxy) and files (on the volume), then read every acknowledged one
//! back on every node and brick. Nothing acknowledged may be lost, and every fault must be
//! followed by a recovery within the tool's bound.

use std::time::Duration;

use triad_tests::{chaos, host};

/// The seed of the CI run: the same seed draws the same faults, so a red run can be
/// replayed by hand with `triad-lab chaos --duration 300 --seed 20`.
const SEED: u64 = 20;
const DURATION: Duration = Duration::from_secs(300);

#[test]
fn testbed_chaos_five_minutes_fixed_seed_loses_nothing() -> anyhow::Result<()> {
    let svg = chaos::default_svg(&host::state_dir(), SEED);
    // prints every fault, every recovery, the report and where the timeline is
    let report = chaos::run(DURATION, SEED, &svg)?;
    assert!(report.faults > 0, "no fault was applied: {report}");
    assert!(
        report.rows_acked > 0 && report.files_acked > 0,
        "the checkers wrote nothing, so nothing was checked: {report}"
    );
    assert!(
        report.lost_rows.is_empty(),
        "acknowledged rows lost: {:?}",
        report.lost_rows
    );
    assert!(
        report.lost_files.is_empty(),
        "acknowledged files lost or different: {:?}",
        report.lost_files
    );
    assert_eq!(
        report.recoveries_timed_out, 0,
        "a fault was not recovered from within the bound: {report}"
    );
    Ok(())
}
