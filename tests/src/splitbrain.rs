//! A Gluster split-brain made on purpose on the lab's replica-3 volume (issue 20), as it
//! happens in production when bricks drop out in turn while client quorum is off: with
//! `cluster.quorum-type none`, n1's brick is frozen (SIGSTOP) while a write goes to n2's and
//! n3's, then those two are frozen while another write goes to n1's alone. Each side then
//! blames the other for the file: gluster lists it in `heal info split-brain` and the app
//! gets EIO on it. Measured on the lab (session 12): the client's ping timeout (5 s) parks
//! each write until the frozen bricks are declared down; a write through a node whose
//! client just lost every brick fails with "Transport endpoint is not connected" until it
//! reconnects (about 3 s), so the second write is retried, bounded.
//!
//! The caller stops the coordinator first (it would set the quorum back to `auto`, which
//! refuses the second write) and starts it again after: quorum is relaxed for the making
//! only.

use std::time::Duration;

use crate::error::{LabError, Result};
use crate::node::Node;
use crate::triad::{BRICK, DOCROOT, VOLUME};
use crate::wait::{self, Poll};
use crate::Testbed;

/// The brick process of `node` (one volume, one brick per node).
fn brick_pid(node: &Node) -> Result<String> {
    let pid = node.sh("pgrep -o glusterfsd")?.trim().to_string();
    if pid.is_empty() || !pid.chars().all(|c| c.is_ascii_digit()) {
        return Err(LabError::Other(format!(
            "{}: no glusterfsd (brick) process: {pid:?}",
            node.name
        )));
    }
    Ok(pid)
}

/// Frozen bricks, thawed on drop (also when the making fails half-way).
struct Frozen<'a> {
    bricks: Vec<(&'a Node, String)>,
}

impl<'a> Frozen<'a> {
    fn freeze(&mut self, node: &'a Node) -> Result<()> {
        let pid = brick_pid(node)?;
        node.sh(&format!("kill -STOP {pid}"))?;
        self.bricks.push((node, pid));
        Ok(())
    }

    fn thaw(&mut self, name: &str) -> Result<()> {
        if let Some(at) = self.bricks.iter().position(|(n, _)| n.name == name) {
            let (node, pid) = self.bricks.remove(at);
            node.sh(&format!("kill -CONT {pid}"))?;
        }
        Ok(())
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        for (node, pid) in &self.bricks {
            let _ = node.sh(&format!("kill -CONT {pid}"));
        }
    }
}

/// Makes `file` (a name in the volume's root) a data split-brain on n1..n3: n2's and n3's
/// bricks hold `theirs`, n1's holds `ours`. The coordinator must be stopped.
pub fn make(tb: &Testbed, file: &str, ours: &str, theirs: &str) -> Result<()> {
    let [n1, n2, n3] = [&tb.nodes[0], &tb.nodes[1], &tb.nodes[2]];
    n1.sh(&format!(
        "gluster --mode=script volume set {VOLUME} cluster.quorum-type none"
    ))?;
    let path = format!("{DOCROOT}/{file}");
    n2.sh(&format!("echo base > {path}"))?;
    let mut frozen = Frozen { bricks: vec![] };
    frozen.freeze(n1)?;
    // parked until the client declares n1's brick down (ping timeout), then written to n2, n3
    n2.sh(&format!("timeout 60 sh -c 'printf %s {theirs} > {path}'"))?;
    frozen.freeze(n2)?;
    frozen.freeze(n3)?;
    frozen.thaw("n1")?;
    wait::until(
        "a write through n3 to reach n1's brick alone",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            Ok(
                match n3.sh(&format!("timeout 30 sh -c 'printf %s {ours} > {path}'")) {
                    Ok(_) => Poll::Ready(()),
                    Err(e) => Poll::Pending(e.to_string()),
                },
            )
        },
    )?;
    frozen.thaw("n2")?;
    frozen.thaw("n3")?;
    drop(frozen);
    // each side's copy is what was written to it
    let copies: Vec<String> = [n1, n2, n3]
        .iter()
        .map(|n| n.sh(&format!("cat {BRICK}/{file}")))
        .collect::<Result<_>>()?;
    if copies != [ours, theirs, theirs] {
        return Err(LabError::Other(format!(
            "the bricks hold {copies:?}, not [{ours:?}, {theirs:?}, {theirs:?}]"
        )));
    }
    Ok(())
}
