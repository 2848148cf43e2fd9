//! A Gluster split-brain made on purpose on the lab's replica-3 volume (issue 20), as it
//! happens in production when bricks drop out in turn while client quorum is off: with
//! `cluster.quorum-type none`, n2's and n3's bricks are frozen (SIGSTOP) while a write goes
//! to n1's alone, then n1's is frozen and n2's thawed while another write goes to n2's
//! alone. n1's and n2's copies then blame each other (and both blame n3's, which missed
//! both writes): gluster lists the file in `heal info split-brain` and the app gets EIO.
//!
//! Measured on the lab (session 12, glusterfs 10.3): the client's ping timeout (5 s) is
//! what gives up a frozen brick, so each write waits until the writing client's log shows
//! the frozen bricks disconnected and the others connected (a write sent while the client
//! still counted on a frozen brick waits in that brick's socket and is carried out when it
//! is thawed). Lookups of names that do not exist make the client notice: they modify
//! nothing, and nl-cache has no entry for a new name.
//!
//! Not in CI yet: in three lab runs the split-brain made this way, or two against one
//! (present in `heal info split-brain` on the bricks while the coordinator was stopped),
//! was healed by Gluster within seconds of the coordinator putting client quorum back to
//! `auto` (two against one towards the majority, one against one towards n1's copy), with
//! `cluster.favorite-child-policy` at its default (none); kept with quorum `none`, it
//! stayed (the app got EIO) until resolved by hand with `bigger-file`. A split that
//! lasts long enough to test the operator's resolution needs that understood first (the
//! self-heal daemon's log on each node says which policy healed it).
//!
//! The caller stops the coordinator first (it would set the quorum back to `auto`, which
//! refuses the writes) and starts it again after: quorum is relaxed for the making only.

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

/// The FUSE client's log of the docroot mount on `node`.
const CLIENT_LOG: &str = "/var/log/glusterfs/var-www-triad.log";

/// Pure: each brick's last connection state in a client log (`Some(true)`: connected),
/// from its lines "0-www-client-N: Connected, attached to remote volume ..." and
/// "0-www-client-N: disconnected from client, process will keep trying ..." (glusterfs 10.3).
pub fn client_states(log: &str, bricks: usize) -> Vec<Option<bool>> {
    let mut states = vec![None; bricks];
    let marker = format!("{VOLUME}-client-");
    for line in log.lines() {
        let Some(at) = line.find(&marker) else {
            continue;
        };
        let rest = &line[at + marker.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(index) = digits.parse::<usize>() else {
            continue;
        };
        let said = &rest[digits.len()..];
        let state = if said.starts_with(": Connected") {
            Some(true)
        } else if said.starts_with(": disconnected from") {
            Some(false)
        } else {
            continue;
        };
        if let Some(slot) = states.get_mut(index) {
            *slot = state;
        }
    }
    states
}

/// Waits (bounded) until `node`'s client has each brick in the `wanted` state (`true`:
/// connected; `None`: any), prodding it with lookups of names that do not exist (a frozen
/// brick is given up only when a request to it times out).
fn wait_client(node: &Node, wanted: [Option<bool>; 3]) -> Result<()> {
    let mut probe = 0;
    wait::until(
        &format!("{}'s client to see the bricks as {wanted:?}", node.name),
        Duration::from_secs(90),
        Duration::from_millis(200),
        || {
            probe += 1;
            let _ = node.sh(&format!(
                "timeout 2 stat {DOCROOT}/.triad-probe-{probe}-$$ >/dev/null 2>&1 || true"
            ));
            let log = node.sh(&format!(
                "grep -E '{VOLUME}-client-[0-9]+: (Connected|disconnected from)' {CLIENT_LOG} | tail -50"
            ))?;
            let states = client_states(&log, 3);
            let ok = states
                .iter()
                .zip(wanted)
                .all(|(state, want)| want.is_none() || *state == want);
            Ok(if ok {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{states:?}"))
            })
        },
    )
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

/// Makes `file` (a name in the volume's root) a data split-brain: n1's brick holds `ours`,
/// n2's `theirs`, n3's the first content ("base\n"). The coordinator must be stopped.
pub fn make(tb: &Testbed, file: &str, ours: &str, theirs: &str) -> Result<()> {
    let [n1, n2, n3] = [&tb.nodes[0], &tb.nodes[1], &tb.nodes[2]];
    n1.sh(&format!(
        "gluster --mode=script volume set {VOLUME} cluster.quorum-type none"
    ))?;
    let path = format!("{DOCROOT}/{file}");
    n1.sh(&format!("echo base > {path}"))?;
    let write = |node: &Node, content: &str| {
        wait::until(
            &format!("a write through {} to reach its brick alone", node.name),
            Duration::from_secs(90),
            Duration::from_millis(500),
            || {
                Ok(
                    match node.sh(&format!("timeout 30 sh -c 'printf %s {content} > {path}'")) {
                        Ok(_) => Poll::Ready(()),
                        Err(e) => Poll::Pending(e.to_string()),
                    },
                )
            },
        )
    };
    let mut frozen = Frozen { bricks: vec![] };
    frozen.freeze(n2)?;
    frozen.freeze(n3)?;
    wait_client(n1, [Some(true), Some(false), Some(false)])?;
    write(n1, ours)?;
    frozen.freeze(n1)?;
    frozen.thaw("n2")?;
    wait_client(n2, [Some(false), Some(true), Some(false)])?;
    write(n2, theirs)?;
    frozen.thaw("n1")?;
    frozen.thaw("n3")?;
    drop(frozen);
    // each copy is what was written to it
    let copies: Vec<String> = [n1, n2, n3]
        .iter()
        .map(|n| n.sh(&format!("cat {BRICK}/{file}")))
        .collect::<Result<_>>()?;
    if copies != [ours, theirs, "base"] {
        return Err(LabError::Other(format!(
            "the bricks hold {copies:?}, not [{ours:?}, {theirs:?}, \"base\"]"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_client_log_gives_each_bricks_last_state() {
        // lines as glusterfs 10.3 wrote them on the lab (cut)
        let log = "\
[2026-12-05 16:53:23.892303 +0000] I [MSGID: 114046] [client-handshake.c:856:client_setvolume_cbk] 0-www-client-2: Connected, attached to remote volume '/bricks/www'.
[2026-12-05 16:54:57.802199 +0000] I [MSGID: 114018] [client.c:2244:client_rpc_notify] 0-www-client-0: disconnected from client, process will keep trying to connect glusterd until brick's port is available [{conn-name=www-client-0}]
[2026-12-05 16:55:00.805626 +0000] I [MSGID: 114046] [client-handshake.c:856:client_setvolume_cbk] 0-www-client-0: Connected, attached to remote volume '/bricks/www'.
[2026-12-05 16:55:07.804117 +0000] I [MSGID: 114018] [client.c:2244:client_rpc_notify] 0-www-client-1: disconnected from client, process will keep trying to connect glusterd until brick's port is available [{conn-name=www-client-1}]
";
        assert_eq!(
            super::client_states(log, 3),
            [Some(true), Some(false), Some(true)]
        );
        assert_eq!(super::client_states("", 3), [None, None, None]);
    }
}
