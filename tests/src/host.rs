//! Host preflight and host-level paths: where the lab keeps its state, what the host must offer
//! (root, overlayfs, /dev/fuse, writable cgroups, the tools), and the installer script.

use std::path::{Path, PathBuf};

use crate::error::{LabError, Result};

/// Default state directory (image, node overlays, HAProxy, logs); override with `TRIAD_LAB_DIR`.
pub const DEFAULT_STATE_DIR: &str = "/var/tmp/triad-lab";

/// The two cgroup hierarchies each nspawn gets its own directory in. On this host (PID 1 is not
/// systemd, hybrid layout) nspawn with `--keep-unit` creates `payload`/`supervisor` below its own
/// cgroup, so containers started from the same cgroup would share (and kill) each other's units.
pub const CGROUP_ROOTS: [&str; 2] = ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"];

/// Tools the lab runs on the host, with the Debian package that provides each.
pub const HOST_TOOLS: &[(&str, &str)] = &[
    ("systemd-nspawn", "systemd-container"),
    ("systemd-id128", "systemd"),
    ("debootstrap", "debootstrap"),
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    ("mountpoint", "util-linux"),
    ("haproxy", "haproxy"),
    ("curl", "curl"),
    ("socat", "socat"),
];

/// The lab's state directory (`TRIAD_LAB_DIR` or [`DEFAULT_STATE_DIR`]).
pub fn state_dir() -> PathBuf {
    std::env::var_os("TRIAD_LAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

/// The workspace root (for `target/` and `packaging/`): `TRIAD_WORKSPACE` or the parent of this
/// crate's manifest directory.
pub fn workspace_dir() -> PathBuf {
    std::env::var_os("TRIAD_WORKSPACE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
        })
}

/// Finds `prog` on `PATH` (also in the sbin directories, which a non-login root shell may lack).
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Checks everything containers need and returns one clear line listing what is missing.
/// Tests call this first so an unsuitable host fails loudly instead of half-working.
pub fn preflight() -> Result<()> {
    let mut problems = Vec::new();
    if !nix::unistd::Uid::effective().is_root() {
        problems.push("not running as root".to_string());
    }
    match std::fs::read_to_string("/proc/filesystems") {
        Ok(fs) if fs.lines().any(|l| l.trim_end().ends_with("\toverlay")) => {}
        _ => problems.push("overlayfs not available (/proc/filesystems)".to_string()),
    }
    if !Path::new("/dev/fuse").exists() {
        problems.push("/dev/fuse missing".to_string());
    }
    for root in CGROUP_ROOTS {
        let probe = Path::new(root).join(format!("triad-preflight-{}", std::process::id()));
        match std::fs::create_dir(&probe) {
            Ok(()) => {
                let _ = std::fs::remove_dir(&probe);
            }
            Err(e) => problems.push(format!("cgroup {root} not writable ({e})")),
        }
    }
    let missing: Vec<String> = HOST_TOOLS
        .iter()
        .filter(|(t, _)| which(t).is_none())
        .map(|(t, p)| format!("{t} ({p})"))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "missing tools: {} — run scripts/install-host-deps.sh",
            missing.join(", ")
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LabError::Host(problems.join("; ")))
    }
}

/// Runs `scripts/install-host-deps.sh` (idempotent, quick when all is present).
pub fn install_deps() -> Result<()> {
    let script = workspace_dir().join("scripts/install-host-deps.sh");
    let st = std::process::Command::new(&script)
        .status()
        .map_err(|source| LabError::Spawn {
            cmd: script.display().to_string(),
            source,
        })?;
    if st.success() {
        Ok(())
    } else {
        Err(LabError::Host(format!(
            "{} failed ({st})",
            script.display()
        )))
    }
}

/// The first Debian mirror of the host's apt sources (deb822 `URIs:` first, then sources.list),
/// so the node image comes from the same mirror the host already trusts and reaches.
pub fn host_mirror() -> Result<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "sources"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for f in &files {
        if let Ok(s) = std::fs::read_to_string(f) {
            if let Some(u) = s
                .lines()
                .find_map(|l| l.strip_prefix("URIs:"))
                .and_then(|r| r.split_whitespace().next())
            {
                return Ok(u.to_string());
            }
        }
    }
    if let Ok(s) = std::fs::read_to_string("/etc/apt/sources.list") {
        for l in s.lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.first() == Some(&"deb") {
                if let Some(u) = w.iter().skip(1).find(|x| !x.starts_with('[')) {
                    return Ok((*u).to_string());
                }
            }
        }
    }
    Err(LabError::Host(
        "no Debian mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"
            .into(),
    ))
}

/// Host memory in use in MiB as `free` reports it (total - available).
pub fn mem_used_mib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let get = |k: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(k))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((get("MemTotal:")? - get("MemAvailable:")?) / 1024)
}
