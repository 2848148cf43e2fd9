//! Fault primitives. Each returns how long the fault took to take effect, measured on the
//! condition that defines "in effect" (PID gone, unit inactive, running again, link down).

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{LabError, Result};
use crate::net;
use crate::node::{wait_pid_gone, Node};
use crate::testbed::Testbed;
use crate::wait::{self, Poll};

/// SIGKILLs a unit's processes (`systemctl kill -s KILL`) and waits until the unit is no longer
/// active (a unit with Restart= may come back later; this measures the kill).
pub fn kill_unit(node: &Node, unit: &str) -> Result<Duration> {
    let t = Instant::now();
    node.exec(&["systemctl", "kill", "-s", "KILL", unit])?;
    wait::until(
        &format!("{unit} on {} to stop being active after SIGKILL", node.name),
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let s = node.unit_state(unit)?;
            Ok(if s == "active" || s == "reloading" {
                Poll::Pending(s)
            } else {
                Poll::Ready(t.elapsed())
            })
        },
    )
}

/// `systemctl stop UNIT` in the node; returns when it is inactive.
pub fn stop_unit(node: &Node, unit: &str) -> Result<Duration> {
    let t = Instant::now();
    node.exec(&["systemctl", "stop", unit])?;
    node.wait_unit(unit, "inactive", Duration::from_secs(30))?;
    Ok(t.elapsed())
}

/// `systemctl start UNIT` in the node; returns when it is active.
pub fn start_unit(node: &Node, unit: &str) -> Result<Duration> {
    let t = Instant::now();
    node.exec(&["systemctl", "start", unit])?;
    node.wait_unit(unit, "active", Duration::from_secs(60))?;
    Ok(t.elapsed())
}

/// Hard crash: SIGKILL the container's PID 1 (the kernel kills the whole PID namespace,
/// nspawn exits, the launcher loop ends). Returns when the nspawn process is gone.
pub fn crash(node: &Node) -> Result<Duration> {
    let t = Instant::now();
    let leader = node.leader().ok_or_else(|| LabError::Node {
        node: node.name.clone(),
        msg: "crash: not running".into(),
    })?;
    let nspawn = node.nspawn_pid();
    kill(Pid::from_raw(leader), Signal::SIGKILL).map_err(|e| LabError::Node {
        node: node.name.clone(),
        msg: format!("kill -KILL {leader}: {e}"),
    })?;
    wait_pid_gone(
        leader,
        &format!("{}'s PID 1 ({leader}) to die", node.name),
        Duration::from_secs(15),
    )?;
    if let Some(p) = nspawn {
        wait_pid_gone(
            p,
            &format!("{}'s nspawn ({p}) to exit", node.name),
            Duration::from_secs(15),
        )?;
    }
    wait::until_default(
        &format!("{}'s launcher to exit", node.name),
        Duration::from_secs(10),
        || {
            Ok(match node.launcher_pid() {
                Some(p) => Poll::Pending(format!("launcher {p}")),
                None => Poll::Ready(()),
            })
        },
    )?;
    Ok(t.elapsed())
}

/// Starts a stopped or crashed node and waits until it has booted ([`Node::wait_booted`]:
/// running, or only waiting for mariadb to find its cluster, as after a full outage).
pub fn start(node: &Node) -> Result<Duration> {
    let t = Instant::now();
    node.start()?;
    node.wait_booted(Duration::from_secs(120), None)?;
    Ok(t.elapsed())
}

/// `systemctl reboot` inside; nspawn exits 133 and the launcher restarts it. Returns when the
/// new PID 1 has booted ([`Node::wait_booted`]).
pub fn reboot(node: &Node) -> Result<Duration> {
    let t = Instant::now();
    let old = node.leader();
    // the command may lose its connection as the system goes down; the wait decides
    let _ = node.exec_output(&["systemctl", "reboot"], Duration::from_secs(30));
    node.wait_booted(Duration::from_secs(120), old)?;
    Ok(t.elapsed())
}

/// Cuts the node's link (`ip link set vb-NAME down`). Returns when the link reports down.
pub fn isolate(node: &Node) -> Result<Duration> {
    let t = Instant::now();
    net::set_link(&node.host_link(), false)?;
    wait_link(node, false)?;
    Ok(t.elapsed())
}

/// Brings the node's link back up.
pub fn heal(node: &Node) -> Result<Duration> {
    let t = Instant::now();
    net::set_link(&node.host_link(), true)?;
    wait_link(node, true)?;
    Ok(t.elapsed())
}

fn wait_link(node: &Node, up: bool) -> Result<()> {
    let link = node.host_link();
    wait::until(
        &format!("link {link} to be {}", if up { "UP" } else { "DOWN" }),
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            let o = crate::cmd::run_stdout(
                std::process::Command::new("ip").args(["-o", "link", "show", "dev", &link]),
            )?;
            let is_up = o.contains("state UP")
                || o.contains(",UP,")
                || o.contains("<UP,")
                || o.contains(",UP>");
            Ok(if is_up == up {
                Poll::Ready(())
            } else {
                Poll::Pending(o)
            })
        },
    )
}

/// Full outage: crash every node, at once (`stagger` = None) or one after another with the
/// given gap. Returns when every node is down.
pub fn full_outage(tb: &Testbed, stagger: Option<Duration>) -> Result<Duration> {
    let t = Instant::now();
    match stagger {
        None => crate::formation::each_node(&tb.nodes, |n| crash(n).map(|_| ()))?,
        Some(gap) => {
            for (i, n) in tb.nodes.iter().enumerate() {
                if i > 0 {
                    // the gap IS the fault being injected (a staggered outage), not a wait
                    std::thread::sleep(gap);
                }
                crash(n)?;
            }
        }
    }
    Ok(t.elapsed())
}

/// TCP to and from `peer` on `port` dropped in `node`'s network namespace (the host's
/// iptables entered into it), so the two cannot talk on that port while everything else
/// (gossip, gRPC, SQL) goes on. The rules are deleted on drop, also when a test fails
/// half-way; a node that crashes takes them with its namespace.
pub struct PortBlock<'a> {
    node: &'a Node,
    rules: Vec<String>,
}

impl<'a> PortBlock<'a> {
    pub fn new(node: &'a Node, peer: &str, port: u16) -> Result<PortBlock<'a>> {
        let mut block = PortBlock {
            node,
            rules: Vec::new(),
        };
        for rule in [
            format!("INPUT -s {peer} -p tcp --dport {port} -j DROP"),
            format!("INPUT -s {peer} -p tcp --sport {port} -j DROP"),
            format!("OUTPUT -d {peer} -p tcp --dport {port} -j DROP"),
            format!("OUTPUT -d {peer} -p tcp --sport {port} -j DROP"),
        ] {
            block.iptables("-A", &rule)?;
            block.rules.push(rule);
        }
        Ok(block)
    }

    fn iptables(&self, op: &str, rule: &str) -> Result<()> {
        let leader = self.node.leader().ok_or_else(|| LabError::Node {
            node: self.node.name.clone(),
            msg: "port block: not running".into(),
        })?;
        let mut c = std::process::Command::new("nsenter");
        c.args(["-t", &leader.to_string(), "-n", "iptables", "-w", op]);
        c.args(rule.split_whitespace());
        crate::cmd::run_stdout(&mut c).map(|_| ())
    }

    /// Deletes the rules (the traffic flows again).
    pub fn lift(mut self) -> Result<()> {
        let rules = std::mem::take(&mut self.rules);
        for rule in &rules {
            self.iptables("-D", rule)?;
        }
        Ok(())
    }
}

impl Drop for PortBlock<'_> {
    fn drop(&mut self) {
        for rule in &self.rules {
            let _ = self.iptables("-D", rule);
        }
    }
}
