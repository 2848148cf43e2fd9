//! The Triad agent installed in every node (its .deb, or the built binary + unit) and the
//! coordinator on the host: the coordinator sees every node live through gossip.

use std::time::Duration;

use triad_tests::{triad, Testbed};

#[test]
fn testbed_agents_gossip_to_coordinator() -> anyhow::Result<()> {
    let mut tb = Testbed::for_test(3)?;
    triad::cargo_build()?;
    for n in &tb.nodes {
        let src = triad::install_agent(&tb, n)?;
        n.wait_unit("triad-agent", "active", Duration::from_secs(30))
            .map_err(|e| anyhow::anyhow!("{e}\n{}", triad::journal_tail(n, "triad-agent", 20)))?;
        eprintln!("{}: triad-agent from {src:?} active", n.name);
    }
    triad::start_coordinator(&mut tb)?;
    let t = triad::wait_coordinator_live(3, Duration::from_secs(30))?;
    eprintln!("coordinator sees 3 live nodes after {t:.2?}");
    eprintln!("{}", triad::triadctl_status(false)?);
    tb.teardown_and_verify()?;
    Ok(())
}
