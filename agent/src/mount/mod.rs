//! The docroot mount: the Gluster volume mounted on the docroot through a systemd mount
//! unit (so the FUSE client lives in the unit's cgroup, not the agent's, and survives agent
//! restarts), with `backup-volfile-servers`.
//!
//! Liveness is a `stat` of a sentinel file on the mount, bounded in time and run off the
//! async runtime (a hung FUSE mount blocks the calling thread in the kernel). ENOTCONN =
//! stale: not ready, lazy unmount, mount again. No answer within the bound is *slow*: a
//! replica whose peer vanished without a reset (a cut cable) blocks every operation until
//! the volume's `network.ping-timeout` (5 s) drops that brick, and then serves again, so
//! a slow mount stays ready for `stale_after` (12 s) before it counts as stale. Unmounting
//! it sooner turned a partition of one node into an outage of the survivors. The agent
//! never mounts over a directory that holds files unless told to, and never deletes any.

pub mod host;

/// The file whose `stat` tells the mount is alive (created on a fresh volume).
pub const SENTINEL: &str = ".triad-sentinel";
use std::path::{Path, PathBuf};
use std::time::Duration;

use triad_proto::gossip::MountState;

/// `[mount]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MountSettings {
    pub managed: bool,
    pub docroot: PathBuf,
    /// Mount over a directory that already holds files (they are hidden, not deleted).
    pub allow_non_empty: bool,
    /// Bound on the liveness `stat`.
    pub probe_timeout: Duration,
    /// How long a mount may be slow (the stat not back) before it is stale: longer than
    /// the volume's ping-timeout, which survivors of a partition wait out.
    pub stale_after: Duration,
    /// File created on the volume whose `stat` proves the mount answers.
    pub sentinel: String,
}

impl Default for MountSettings {
    fn default() -> Self {
        MountSettings {
            managed: true,
            docroot: PathBuf::from("/var/www/triad"),
            allow_non_empty: false,
            probe_timeout: Duration::from_secs(3),
            stale_after: Duration::from_secs(12),
            sentinel: SENTINEL.into(),
        }
    }
}

/// What the docroot looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mounted {
    /// A glusterfs FUSE mount.
    Gluster,
    /// Something else is mounted there (fstype): never touched.
    Foreign(String),
    /// Nothing mounted; the directory's entries (a few names, for the error) if any.
    No { entries: Vec<String> },
}

/// The liveness probe's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Ok,
    /// The sentinel does not exist yet (a fresh volume): create it.
    Missing,
    /// ENOTCONN: the FUSE client is gone.
    Stale(String),
    /// No answer within the bound, or the previous probe still hangs.
    Slow(String),
    /// Another error (EIO, ESTALE, EACCES): not ready, reported; remounted once it has
    /// lasted `stale_after` (a fresh FUSE client drops whatever state the old one kept).
    Error(String),
}

/// Whether the volume may be mounted now (design: started, local glusterd in quorum; for
/// a node without glusterd: some brick node online).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeReadiness {
    Ready,
    NotReady,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountAction {
    /// Write the unit when it differs, daemon-reload, start it.
    Mount,
    /// `umount -l`, then stop and reset the unit, so the next pass mounts again.
    LazyUnmountAndReset,
    CreateSentinel,
}

/// Pure: the mount's state and what to do. `refusal` carries the operator-facing error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    pub state: MountState,
    pub actions: Vec<MountAction>,
    pub refusal: Option<String>,
}

/// `unwell_for`: how long the probe has been [`Probe::Slow`] or [`Probe::Error`] in a row.
pub fn plan(
    settings: &MountSettings,
    mounted: &Mounted,
    probe: Option<&Probe>,
    volume: VolumeReadiness,
    unwell_for: Duration,
) -> MountPlan {
    let state_only = |state| MountPlan {
        state,
        actions: vec![],
        refusal: None,
    };
    match mounted {
        Mounted::Foreign(fstype) => MountPlan {
            state: MountState::Absent,
            actions: vec![],
            refusal: Some(format!(
                "{} is already a {fstype} mount, not the Gluster volume; unmount it or change mount.docroot",
                settings.docroot.display()
            )),
        },
        Mounted::No { entries } => {
            if !entries.is_empty() && !settings.allow_non_empty {
                return MountPlan {
                    state: MountState::Absent,
                    actions: vec![],
                    refusal: Some(format!(
                        "refusing to mount the volume over {}: it holds files ({}); move them away or set mount.allow_non_empty = true (nothing was deleted)",
                        settings.docroot.display(),
                        entries.join(", ")
                    )),
                };
            }
            match volume {
                VolumeReadiness::Ready => MountPlan {
                    state: MountState::Absent,
                    actions: vec![MountAction::Mount],
                    refusal: None,
                },
                VolumeReadiness::NotReady => state_only(MountState::Absent),
            }
        }
        Mounted::Gluster => match probe {
            Some(Probe::Ok) => state_only(MountState::Ok),
            Some(Probe::Missing) => MountPlan {
                state: MountState::Absent,
                actions: vec![MountAction::CreateSentinel],
                refusal: None,
            },
            Some(Probe::Slow(_)) if unwell_for < settings.stale_after => {
                state_only(MountState::Ok)
            }
            Some(Probe::Error(_)) if unwell_for < settings.stale_after => {
                state_only(MountState::Stale)
            }
            // an error that lasts was left alone before: a chaos run on CI kept a node
            // out of service for five minutes after its link came back
            Some(Probe::Stale(_) | Probe::Slow(_) | Probe::Error(_)) => MountPlan {
                state: MountState::Stale,
                actions: vec![MountAction::LazyUnmountAndReset],
                refusal: None,
            },
            None => state_only(MountState::Stale),
        },
    }
}

/// systemd's unit name for a mount point (`systemd-escape --path --suffix=mount`).
pub fn unit_name(path: &Path) -> String {
    let text = path.to_string_lossy();
    let trimmed = text.trim_matches('/');
    if trimmed.is_empty() {
        return "-.mount".into();
    }
    let mut out = String::new();
    for (i, byte) in trimmed.bytes().enumerate() {
        match byte {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b':' | b'_' | b'.' => out.push(byte as char),
            other => out.push_str(&format!("\\x{other:02x}")),
        }
    }
    out.push_str(".mount");
    out
}

/// The mount unit: volume `volume` from `servers[0]`, the others as backup volfile servers.
pub fn render_unit(docroot: &Path, volume: &str, servers: &[String]) -> String {
    let (first, backups) = servers
        .split_first()
        .map_or(("localhost", &[][..]), |(f, b)| (f.as_str(), b));
    let mut options = vec!["_netdev".to_string()];
    if !backups.is_empty() {
        options.push(format!("backup-volfile-servers={}", backups.join(":")));
    }
    format!(
        "# Written by triad-agent: the Gluster volume {volume} on the docroot.\n\
[Unit]\nDescription=Triad docroot (Gluster volume {volume})\nAfter=network-online.target glusterd.service\n\n\
[Mount]\nWhat={first}:/{volume}\nWhere={where_}\nType=glusterfs\nOptions={options}\nTimeoutSec=30\n",
        where_ = docroot.display(),
        options = options.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> MountSettings {
        MountSettings::default()
    }

    #[test]
    fn unit_names_follow_systemd_escape() {
        assert_eq!(
            unit_name(Path::new("/var/www/triad")),
            "var-www-triad.mount"
        );
        assert_eq!(
            unit_name(Path::new("/srv/my-site/")),
            "srv-my\\x2dsite.mount"
        );
        assert_eq!(
            unit_name(Path::new("/.hidden/a b")),
            "\\x2ehidden-a\\x20b.mount"
        );
        assert_eq!(unit_name(Path::new("/")), "-.mount");
    }

    #[test]
    fn unit_lists_backup_servers() {
        let unit = render_unit(
            Path::new("/var/www/triad"),
            "www",
            &["10.0.0.1".into(), "10.0.0.2".into(), "10.0.0.3".into()],
        );
        assert!(unit.contains("What=10.0.0.1:/www\n"), "{unit}");
        assert!(unit.contains("Where=/var/www/triad\n"), "{unit}");
        assert!(
            unit.contains("backup-volfile-servers=10.0.0.2:10.0.0.3"),
            "{unit}"
        );
    }

    #[test]
    fn non_empty_docroot_is_refused_with_names_and_nothing_done() {
        let p = plan(
            &settings(),
            &Mounted::No {
                entries: vec!["index.html".into()],
            },
            None,
            VolumeReadiness::Ready,
            Duration::ZERO,
        );
        assert_eq!(p.actions, vec![]);
        let refusal = p.refusal.unwrap();
        assert!(
            refusal.contains("/var/www/triad") && refusal.contains("index.html"),
            "{refusal}"
        );
        let mut allow = settings();
        allow.allow_non_empty = true;
        let p = plan(
            &allow,
            &Mounted::No {
                entries: vec!["index.html".into()],
            },
            None,
            VolumeReadiness::Ready,
            Duration::ZERO,
        );
        assert_eq!(p.actions, vec![MountAction::Mount]);
    }

    #[test]
    fn mounts_only_when_the_volume_is_ready() {
        let empty = Mounted::No { entries: vec![] };
        let p = plan(
            &settings(),
            &empty,
            None,
            VolumeReadiness::NotReady,
            Duration::ZERO,
        );
        assert_eq!((p.state, p.actions), (MountState::Absent, vec![]));
        let p = plan(
            &settings(),
            &empty,
            None,
            VolumeReadiness::Ready,
            Duration::ZERO,
        );
        assert_eq!(p.actions, vec![MountAction::Mount]);
    }

    #[test]
    fn stale_mount_is_lazily_unmounted_and_live_one_left_alone() {
        let p = plan(
            &settings(),
            &Mounted::Gluster,
            Some(&Probe::Stale("ENOTCONN".into())),
            VolumeReadiness::Ready,
            Duration::ZERO,
        );
        assert_eq!(p.state, MountState::Stale);
        assert_eq!(p.actions, vec![MountAction::LazyUnmountAndReset]);
        let p = plan(
            &settings(),
            &Mounted::Gluster,
            Some(&Probe::Ok),
            VolumeReadiness::NotReady,
            Duration::ZERO,
        );
        assert_eq!((p.state, p.actions), (MountState::Ok, vec![]));
        let p = plan(
            &settings(),
            &Mounted::Gluster,
            Some(&Probe::Missing),
            VolumeReadiness::Ready,
            Duration::ZERO,
        );
        assert_eq!(p.actions, vec![MountAction::CreateSentinel]);
        let p = plan(
            &settings(),
            &Mounted::Foreign("ext4".into()),
            None,
            VolumeReadiness::Ready,
            Duration::ZERO,
        );
        assert!(p.actions.is_empty() && p.refusal.unwrap().contains("ext4"));
    }

    /// Issue 26: survivors of a partition wait out the volume's ping-timeout; their mount
    /// is slow, not stale, and stays ready that long.
    #[test]
    fn a_slow_mount_stays_ready_until_stale_after() {
        let slow = Probe::Slow("stat did not return within 3s".into());
        let mounted = Mounted::Gluster;
        let p = plan(
            &settings(),
            &mounted,
            Some(&slow),
            VolumeReadiness::Ready,
            Duration::from_secs(6),
        );
        assert_eq!((p.state, p.actions), (MountState::Ok, vec![]));
        let p = plan(
            &settings(),
            &mounted,
            Some(&slow),
            VolumeReadiness::Ready,
            settings().stale_after,
        );
        assert_eq!(p.state, MountState::Stale);
        assert_eq!(p.actions, vec![MountAction::LazyUnmountAndReset]);
    }

    /// An error answer (EIO, ESTALE) is not ready at once and left alone for a moment (a
    /// heal may clear it); once it has lasted `stale_after`, the mount is done again.
    #[test]
    fn a_lasting_probe_error_is_remounted_after_stale_after() {
        let error = Probe::Error("stat: Input/output error (os error 5)".into());
        let p = plan(
            &settings(),
            &Mounted::Gluster,
            Some(&error),
            VolumeReadiness::Ready,
            Duration::from_secs(1),
        );
        assert_eq!((p.state, p.actions), (MountState::Stale, vec![]));
        let p = plan(
            &settings(),
            &Mounted::Gluster,
            Some(&error),
            VolumeReadiness::Ready,
            settings().stale_after,
        );
        assert_eq!(p.state, MountState::Stale);
        assert_eq!(p.actions, vec![MountAction::LazyUnmountAndReset]);
    }
}
