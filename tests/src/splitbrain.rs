//! A Gluster split-brain made on purpose on the lab's replica-3 volume (issue 20), as it
//! happens in production when bricks drop out in turn while client quorum is off: each
//! brick in turn is the only one running while a write goes to it, so the three copies
//! differ and each blames the two others. With no copy that nobody blames, AFR has no
//! source: gluster lists the file in `heal info split-brain` and the app gets an error
//! (glusterfs 10.3 fails the lookup with ENOTCONN), until an operator names a policy.
//!
//! Made as glusterfs's own tests make one (tests/basic/afr/split-brain-resolution.t): the
//! other bricks are killed (a dead brick's connection closes at once, so no write can wait
//! in its socket, as one did with frozen bricks), and every heal is off while it is made
//! (the self-heal daemon and the client-side data, metadata and entry heals), so no copy
//! is healed from another between the writes. Measured first (session 12) with frozen
//! bricks, heals on and a third brick that missed both writes: Gluster healed that one
//! within seconds of quorum returning, so the scenario left CI at 02d8850.
//!
//! The coordinator and the agents are stopped while it is made (the coordinator puts
//! client quorum back to `auto`, which refuses the writes; an agent force-starts a brick
//! that is down). The caller stops the coordinator and resumes it; [`make`] stops the
//! agents and starts them again, and on every exit path puts the bricks, the heal options
//! and the agents back.

use std::time::Duration;

use crate::error::{LabError, Result};
use crate::node::Node;
use crate::triad::{BRICK, DOCROOT, MOUNT_LOG, VOLUME};
use crate::wait::{self, Poll};
use crate::Testbed;

/// The heals turned off while the split-brain is made, reset to Gluster's defaults (on)
/// after.
pub const HEALS: &[&str] = &[
    "cluster.self-heal-daemon",
    "cluster.data-self-heal",
    "cluster.metadata-self-heal",
    "cluster.entry-self-heal",
];

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

/// Pure: the bricks `afr` lines of `getfattr -d -m trusted.afr -e hex` blame (a
/// `trusted.afr.www-client-N` with a non-zero pending count), by index.
pub fn blamed(getfattr: &str) -> Vec<usize> {
    let marker = format!("trusted.afr.{VOLUME}-client-");
    let mut blamed: Vec<usize> = getfattr
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix(&marker)?;
            let (index, value) = rest.split_once('=')?;
            let hex = value.trim().strip_prefix("0x")?;
            let pending = hex.chars().any(|c| c != '0');
            pending.then(|| index.parse().ok()).flatten()
        })
        .collect();
    blamed.sort_unstable();
    blamed
}

/// Whether `node`'s brick process runs (one volume, one brick per node).
fn brick_runs(node: &Node) -> Result<bool> {
    Ok(!node.sh("pgrep -x glusterfsd || true")?.trim().is_empty())
}

/// Starts the bricks that are down and waits (bounded) until every brick runs and
/// `client`'s FUSE client is connected to all of them.
fn all_bricks_up(tb: &Testbed, client: &Node) -> Result<()> {
    tb.nodes[0].sh(&format!(
        "gluster --mode=script volume start {VOLUME} force"
    ))?;
    wait::until(
        "every brick running",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || {
            let mut down = vec![];
            for n in &tb.nodes {
                if !brick_runs(n)? {
                    down.push(n.name.clone());
                }
            }
            Ok(if down.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("bricks down on {down:?}"))
            })
        },
    )?;
    wait_connected(client, tb.nodes.len())
}

/// Waits (bounded) until `node`'s FUSE client of the docroot is connected to each of the
/// volume's `bricks`, prodding it with lookups of names that do not exist (they modify
/// nothing and make the client look at its bricks).
pub fn wait_connected(node: &Node, bricks: usize) -> Result<()> {
    let mut probe = 0;
    wait::until(
        &format!("{}'s client connected to every brick", node.name),
        Duration::from_secs(60),
        Duration::from_millis(300),
        || {
            probe += 1;
            let _ = node.sh(&format!(
                "timeout 2 stat {DOCROOT}/.triad-probe-{probe}-$$ >/dev/null 2>&1 || true"
            ));
            let log = node.sh(&format!(
                "grep -E '{VOLUME}-client-[0-9]+: (Connected|disconnected from)' {MOUNT_LOG} | tail -50"
            ))?;
            let states = client_states(&log, bricks);
            Ok(if states.iter().all(|s| *s == Some(true)) {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("client sees {states:?}"))
            })
        },
    )
}

/// Checks that brick `i` (on `node`) holds `copy` and blames exactly the two other bricks
/// (`when`: at which point of the making, for the error).
fn check_copy(node: &Node, i: usize, copy: &str, file: &str, when: &str) -> Result<()> {
    let held = node.sh(&format!("cat {BRICK}/{file}"))?;
    let xattrs = node.sh(&format!(
        "getfattr -d -m trusted.afr -e hex {BRICK}/{file} 2>&1"
    ))?;
    let blames = blamed(&xattrs);
    let others: Vec<usize> = (0..3).filter(|j| *j != i).collect();
    if held != copy || blames != others {
        return Err(LabError::Other(format!(
            "{when}, {}'s brick holds {held:?} blaming {blames:?} ({xattrs}), not {copy:?} \
             blaming {others:?}",
            node.name
        )));
    }
    Ok(())
}

/// Puts back what [`make`] changed, on every exit path: the bricks started, the heals at
/// Gluster's defaults, the agents running.
struct PutBack<'a> {
    tb: &'a Testbed,
}

impl PutBack<'_> {
    fn now(&self) -> Result<()> {
        all_bricks_up(self.tb, &self.tb.nodes[0])?;
        for option in HEALS {
            self.tb.nodes[0].sh(&format!(
                "gluster --mode=script volume reset {VOLUME} {option}"
            ))?;
        }
        for n in &self.tb.nodes {
            n.sh("systemctl start triad-agent")?;
        }
        Ok(())
    }
}

impl Drop for PutBack<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.now() {
            eprintln!("[split-brain] putting the volume back: {e}");
        }
    }
}

/// Makes `file` (a name in the volume's root) a data split-brain: brick `i` (node `n{i+1}`)
/// holds `copies[i]`, written while it was the only brick running, and blames the two
/// others. The coordinator must be stopped; client quorum is left at `none` for it to put
/// back.
pub fn make(tb: &Testbed, file: &str, copies: [&str; 3]) -> Result<()> {
    if tb.nodes.len() != 3 {
        return Err(LabError::Other(format!(
            "a split-brain is made on 3 nodes, the lab has {}",
            tb.nodes.len()
        )));
    }
    let n1 = &tb.nodes[0];
    for n in &tb.nodes {
        n.sh("systemctl stop triad-agent")?;
    }
    let put_back = PutBack { tb };
    n1.sh(&format!(
        "gluster --mode=script volume set {VOLUME} cluster.quorum-type none"
    ))?;
    for option in HEALS {
        n1.sh(&format!(
            "gluster --mode=script volume set {VOLUME} {option} off"
        ))?;
    }
    let path = format!("{DOCROOT}/{file}");
    n1.sh(&format!("printf base > {path}"))?;
    for (i, copy) in copies.iter().enumerate() {
        let alone = &tb.nodes[i];
        for (j, n) in tb.nodes.iter().enumerate() {
            if j != i {
                n.sh("pkill -KILL -x glusterfsd")?;
                wait::until(
                    &format!("{}'s brick to be gone", n.name),
                    Duration::from_secs(10),
                    Duration::from_millis(100),
                    || {
                        Ok(if brick_runs(n)? {
                            Poll::Pending("glusterfsd still runs".into())
                        } else {
                            Poll::Ready(())
                        })
                    },
                )?;
            }
        }
        // the client gives up the killed bricks at once; until it has reconnected to the
        // brick that runs, a write fails with ENOTCONN and changes nothing
        wait::until(
            &format!(
                "a write through n1's client to reach {}'s brick alone",
                alone.name
            ),
            Duration::from_secs(60),
            Duration::from_millis(300),
            || {
                Ok(
                    match n1.sh(&format!("timeout 20 sh -c 'printf %s {copy} > {path}'")) {
                        Ok(_) => Poll::Ready(()),
                        Err(e) => Poll::Pending(e.to_string()),
                    },
                )
            },
        )?;
        check_copy(alone, i, copy, file, "after its write")?;
        all_bricks_up(tb, n1)?;
    }
    put_back.now()?;
    std::mem::forget(put_back);
    // each copy is what was written to it, and blames the two others
    for (i, n) in tb.nodes.iter().enumerate() {
        check_copy(n, i, copies[i], file, "with every brick back")?;
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

    #[test]
    fn getfattr_gives_the_bricks_a_copy_blames() {
        let out = "\
# file: bricks/www/split.txt
trusted.afr.dirty=0x000000000000000000000000
trusted.afr.www-client-0=0x000000000000000000000000
trusted.afr.www-client-1=0x000000010000000000000000
trusted.afr.www-client-2=0x000000020000000000000000
trusted.gfid=0x5d0b0b0e9c7a4b8e9d1c2f3a4b5c6d7e
";
        assert_eq!(super::blamed(out), [1, 2]);
        assert!(super::blamed("").is_empty());
    }
}
