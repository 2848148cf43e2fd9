//! The lab bridge and the nodes' host-side links.

use std::process::Command;

use crate::cmd::{output, run, run_stdout};
use crate::error::Result;
use crate::node::{BRIDGE, HOST_ADDR, PREFIX_LEN};

/// Creates (idempotently) bridge `triadbr0` with the host address 10.214.0.1/24, up.
pub fn bridge_up() -> Result<()> {
    if !link_exists(BRIDGE) {
        run(Command::new("ip").args(["link", "add", BRIDGE, "type", "bridge"]))?;
    }
    run(Command::new("ip").args([
        "addr",
        "replace",
        &format!("{HOST_ADDR}/{PREFIX_LEN}"),
        "dev",
        BRIDGE,
    ]))?;
    run(Command::new("ip").args(["link", "set", BRIDGE, "up"]))?;
    Ok(())
}

/// Deletes the bridge if present.
pub fn bridge_down() -> Result<()> {
    if link_exists(BRIDGE) {
        run(Command::new("ip").args(["link", "del", BRIDGE]))?;
    }
    Ok(())
}

/// True if a network link of that name exists on the host.
pub fn link_exists(name: &str) -> bool {
    output(Command::new("ip").args(["link", "show", "dev", name]))
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Names of all host links (without the `@peer` suffix).
pub fn links() -> Result<Vec<String>> {
    let s = run_stdout(Command::new("ip").args(["-o", "link", "show"]))?;
    Ok(s.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect())
}

/// Sets a link administratively up or down.
pub fn set_link(name: &str, up: bool) -> Result<()> {
    run(Command::new("ip").args(["link", "set", name, if up { "up" } else { "down" }]))?;
    Ok(())
}

/// Deletes a link if it exists.
pub fn delete_link(name: &str) -> Result<()> {
    if link_exists(name) {
        run(Command::new("ip").args(["link", "del", name]))?;
    }
    Ok(())
}
