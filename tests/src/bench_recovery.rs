//! `triad-lab bench-recovery`: full-outage recovery of the three-node Galera cluster, Galera
//! on its own (mariadb.service started at boot, `pc.recovery` restoring the last Primary
//! view from gvwstate.dat) beside Triad (agents + coordinator), on the same kind of lab
//! nodes, for both crash shapes: every node at once, and staggered (6 s apart, so the last
//! Primary view is the last node alone and pc.recovery cannot help). The clock starts when
//! the last node is running again; done = every node Synced in a Primary component of 3.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::formation::{self, each_node, wait_galera};
use crate::testbed::{Testbed, TestbedOptions};
use crate::{faults, triad};

#[derive(Debug, Clone, Copy)]
enum Shape {
    AllAtOnce,
    Staggered,
}

impl Shape {
    fn gap(self) -> Option<Duration> {
        match self {
            Shape::AllAtOnce => None,
            Shape::Staggered => Some(Duration::from_secs(6)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Shape::AllAtOnce => "all at once",
            Shape::Staggered => "staggered 6 s",
        }
    }
}

/// Crash every node in `shape`, start them all in parallel, and time from the last node
/// running to every node Synced/Primary/3; `None` when that did not happen within `limit`.
fn outage(tb: &Testbed, shape: Shape, limit: Duration) -> Result<Option<Duration>> {
    faults::full_outage(tb, shape.gap())?;
    each_node(&tb.nodes, |n| faults::start(n).map(|_| ()))?;
    let t = Instant::now();
    for n in &tb.nodes {
        let left = limit.saturating_sub(t.elapsed());
        if wait_galera(n, tb.nodes.len(), left).is_err() {
            return Ok(None);
        }
    }
    Ok(Some(t.elapsed()))
}

fn show(what: &str, shape: Shape, r: Option<Duration>, limit: Duration) {
    match r {
        Some(d) => println!(
            "{what:28} {:14} all Synced {:.1}s after the last node was running",
            shape.name(),
            d.as_secs_f64()
        ),
        None => println!(
            "{what:28} {:14} NOT recovered within {}s (an operator must bootstrap by hand)",
            shape.name(),
            limit.as_secs()
        ),
    }
}

pub fn run(rounds: u32, limit: Duration) -> Result<()> {
    for shape in [Shape::AllAtOnce, Shape::Staggered] {
        for _ in 0..rounds {
            // Galera alone: a fresh cluster formed by hand (the recipe), mariadb.service
            // enabled as Debian ships it
            let mut tb = Testbed::up(TestbedOptions::default())?;
            formation::galera_form(&tb)?;
            let r = outage(&tb, shape, limit)?;
            show("galera alone (pc.recovery)", shape, r, limit);
            tb.teardown()?;
        }
    }
    triad::cargo_build()?;
    let mut tb = Testbed::up(TestbedOptions::default())?;
    for n in &tb.nodes {
        triad::install_agent(&tb, n)?;
    }
    triad::start_coordinator(&mut tb)?;
    for n in &tb.nodes {
        wait_galera(n, 3, Duration::from_secs(240))?;
    }
    for shape in [Shape::AllAtOnce, Shape::Staggered] {
        for _ in 0..rounds {
            let r = outage(&tb, shape, limit)?;
            show("triad", shape, r, limit);
        }
    }
    tb.teardown()?;
    Ok(())
}
