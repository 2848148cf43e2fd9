//! Side effects of the mount module behind [`MountHost`], and the driver loop.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use triad_proto::gossip::{BrickState, MountState, Role};

use super::{
    plan, render_unit, unit_name, MountAction, MountSettings, Mounted, Probe, VolumeReadiness,
};
use crate::exec::{run, HostError};
use crate::gluster::driver::LocalGluster;
use crate::state::AgentState;
use triad_cluster::membership::Membership;

#[async_trait::async_trait]
pub trait MountHost: Send + Sync {
    async fn mounted(&self, docroot: &Path) -> Result<Mounted, HostError>;
    /// Bounded: never waits longer than `timeout`, even on a hung mount.
    async fn probe(&self, file: &Path, timeout: Duration) -> Probe;
    async fn create_sentinel(&self, file: &Path, timeout: Duration) -> Result<(), HostError>;
    /// Write the unit (when it differs), reload systemd, start the unit.
    async fn mount(&self, unit: &str, text: &str, docroot: &Path) -> Result<(), HostError>;
    async fn lazy_unmount(&self, unit: &str, docroot: &Path) -> Result<(), HostError>;
}

/// Production: /proc/self/mountinfo, a probe thread, systemctl, umount.
#[derive(Debug, Default)]
pub struct SystemdMounts {
    /// A probe thread still blocked in the kernel: do not start another.
    probe_in_flight: Arc<AtomicBool>,
    pub unit_dir: PathBuf,
}

impl SystemdMounts {
    pub fn new() -> SystemdMounts {
        SystemdMounts {
            probe_in_flight: Arc::new(AtomicBool::new(false)),
            // runtime units: gone after a reboot, when the agent decides again
            unit_dir: PathBuf::from("/run/systemd/system"),
        }
    }
}

/// `/proc/self/mountinfo` field 5 (mount point, octal escapes) and the fstype after " - ";
/// the last entry for a path is the one on top.
pub fn parse_mountinfo(text: &str, docroot: &Path) -> Option<String> {
    let want = docroot.to_string_lossy();
    let want = want.trim_end_matches('/');
    text.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let point = unescape_octal(left.split(' ').nth(4)?);
        let fstype = right.split(' ').next()?;
        (point.trim_end_matches('/') == want || (want.is_empty() && point == "/"))
            .then(|| fstype.to_string())
    })
}

fn unescape_octal(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Some(value) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|digits| u8::from_str_radix(digits, 8).ok())
            {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Run `f` on its own thread and wait at most `timeout`; `None` on timeout (the thread
/// is left blocked, flagged in `in_flight` until it returns).
async fn bounded<T: Send + 'static>(
    in_flight: &Arc<AtomicBool>,
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let flag = in_flight.clone();
    flag.store(true, Ordering::SeqCst);
    let spawned = std::thread::Builder::new()
        .name("mount-probe".into())
        .spawn(move || {
            let result = f();
            flag.store(false, Ordering::SeqCst);
            let _ = tx.send(result);
        });
    if spawned.is_err() {
        in_flight.store(false, Ordering::SeqCst);
        return None;
    }
    tokio::time::timeout(timeout, rx).await.ok()?.ok()
}

/// The PID of the Gluster FUSE client serving `docroot` (a `glusterfs` process with the
/// mount point among its arguments), from the `proc` file system at `proc`.
pub fn fuse_client_pid(proc: &Path, docroot: &Path) -> Option<i32> {
    let want = docroot.to_string_lossy();
    let want = want.trim_end_matches('/');
    std::fs::read_dir(proc).ok()?.flatten().find_map(|entry| {
        let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        if comm.trim() != "glusterfs" {
            return None;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        cmdline
            .split(|b| *b == 0)
            .any(|arg| String::from_utf8_lossy(arg).trim_end_matches('/') == want)
            .then_some(pid)
    })
}

/// A handle on `dir`, only when it is a FUSE file system (the mounted volume). Writes made
/// relative to it cannot land in the bare directory beneath a mount that went away since it
/// was last looked at, which the agent would then refuse to mount over, for good.
pub fn open_fuse_dir(dir: &Path) -> Result<std::os::fd::OwnedFd, String> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let root = open(dir, flags, Mode::empty()).map_err(|e| e.to_string())?;
    let fs = nix::sys::statfs::fstatfs(&root).map_err(|e| e.to_string())?;
    if fs.filesystem_type() != nix::sys::statfs::FUSE_SUPER_MAGIC {
        return Err(format!(
            "{} is not the mounted volume (not FUSE); nothing written",
            dir.display()
        ));
    }
    Ok(root)
}

/// Writes `file` (created if missing) through [`open_fuse_dir`] on its directory.
pub fn write_on_fuse(file: &Path, bytes: &[u8]) -> Result<(), String> {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::Mode;
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return Err(format!("{} names no file in a directory", file.display()));
    };
    let root = open_fuse_dir(dir)?;
    let fd = openat(
        &root,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o644),
    )
    .map_err(|e| e.to_string())?;
    let mut out = std::fs::File::from(fd);
    std::io::Write::write_all(&mut out, bytes).map_err(|e| e.to_string())
}

#[async_trait::async_trait]
impl MountHost for SystemdMounts {
    async fn mounted(&self, docroot: &Path) -> Result<Mounted, HostError> {
        let info = tokio::fs::read_to_string("/proc/self/mountinfo")
            .await
            .map_err(|e| HostError::new("reading /proc/self/mountinfo", e.to_string()))?;
        match parse_mountinfo(&info, docroot) {
            Some(fstype) if fstype == "fuse.glusterfs" => Ok(Mounted::Gluster),
            Some(fstype) => Ok(Mounted::Foreign(fstype)),
            None => {
                let what = format!("listing {}", docroot.display());
                let entries = match std::fs::read_dir(docroot) {
                    Ok(dir) => dir
                        .flatten()
                        .take(5)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        std::fs::create_dir_all(docroot).map_err(|e| {
                            HostError::new(format!("creating {}", docroot.display()), e.to_string())
                        })?;
                        vec![]
                    }
                    Err(e) => return Err(HostError::new(what, e.to_string())),
                };
                Ok(Mounted::No { entries })
            }
        }
    }

    async fn probe(&self, file: &Path, timeout: Duration) -> Probe {
        if self.probe_in_flight.load(Ordering::SeqCst) {
            return Probe::Slow("the previous stat has not returned".into());
        }
        let path = file.to_path_buf();
        match bounded(&self.probe_in_flight, timeout, move || {
            std::fs::metadata(&path)
        })
        .await
        {
            None => Probe::Slow(format!(
                "stat {} did not return within {timeout:?}",
                file.display()
            )),
            Some(Ok(_)) => Probe::Ok,
            Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Probe::Missing,
            // ENOTCONN: the FUSE client is gone, or, while it runs, Gluster's replication
            // answered it for a moment because a brick vanished under a lookup ("no read
            // subvols"). Remounting then cost the whole service on CI (session 13): both
            // survivors of a node's crash remounted at once, the new mounts waited 10 s for
            // the dead brick, HAProxy's checks timed out on both, no server was left.
            Some(Err(e)) if e.raw_os_error() == Some(107) => {
                let docroot = file.parent().unwrap_or(file).to_path_buf();
                match tokio::task::spawn_blocking(move || {
                    fuse_client_pid(Path::new("/proc"), &docroot)
                })
                .await
                .ok()
                .flatten()
                {
                    Some(pid) => Probe::Slow(format!(
                        "stat {}: {e} while its FUSE client (pid {pid}) runs: a brick away",
                        file.display()
                    )),
                    None => Probe::Stale(format!("stat {}: {e}", file.display())),
                }
            }
            Some(Err(e)) => Probe::Error(format!("stat {}: {e}", file.display())),
        }
    }

    async fn create_sentinel(&self, file: &Path, timeout: Duration) -> Result<(), HostError> {
        let path = file.to_path_buf();
        let what = format!("creating {}", file.display());
        match bounded(&self.probe_in_flight, timeout, move || {
            write_on_fuse(&path, b"triad docroot sentinel: do not remove\n")
        })
        .await
        {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(HostError::new(what, e)),
            None => Err(HostError::new(
                what,
                format!("did not return within {timeout:?}"),
            )),
        }
    }

    async fn mount(&self, unit: &str, text: &str, docroot: &Path) -> Result<(), HostError> {
        tokio::fs::create_dir_all(docroot).await.map_err(|e| {
            HostError::new(format!("creating {}", docroot.display()), e.to_string())
        })?;
        // the directory under the mount shows whenever the mount is gone: mode 000 makes
        // Apache answer 403 there (which the balancer retries on another node) instead of
        // 404 from an empty docroot, and lets no one but root write files that would then
        // stop the remount (lab, session 25); the mounted volume's root has its own mode
        use std::os::unix::fs::PermissionsExt;
        if let Err(error) =
            tokio::fs::set_permissions(docroot, std::fs::Permissions::from_mode(0o000)).await
        {
            tracing::warn!(docroot = %docroot.display(), %error, "cannot make the directory under the mount unreadable");
        }
        crate::service::write_unit_file(&self.unit_dir.join(unit), text, Duration::from_secs(30))
            .await?;
        let _ = run(
            "systemctl",
            &["reset-failed", unit],
            Duration::from_secs(10),
        )
        .await;
        run("systemctl", &["start", unit], Duration::from_secs(45)).await?;
        Ok(())
    }

    async fn lazy_unmount(&self, unit: &str, docroot: &Path) -> Result<(), HostError> {
        let dir = docroot.to_string_lossy().into_owned();
        let result = run("umount", &["-l", &dir], Duration::from_secs(10)).await;
        let _ = run("systemctl", &["stop", unit], Duration::from_secs(30)).await;
        let _ = run(
            "systemctl",
            &["reset-failed", unit],
            Duration::from_secs(10),
        )
        .await;
        result.map(|_| ())
    }
}

/// Where the volume can be fetched from, and whether it may be mounted now.
pub enum VolumeSource {
    /// A core node: its own glusterd first (its state from the Gluster driver).
    Local(watch::Receiver<LocalGluster>),
    /// A node without glusterd: the core nodes seen in gossip.
    Remote,
}

pub struct MountDriver {
    pub settings: MountSettings,
    pub volume: String,
    pub node_id: String,
    pub address: IpAddr,
    pub source: VolumeSource,
    pub host: Arc<dyn MountHost>,
    pub state: Arc<AgentState>,
    pub membership: Arc<Membership>,
    last_refusal: std::sync::Mutex<Option<String>>,
    /// Since when the probe has been slow (no answer yet) or failing, for `stale_after`.
    unwell_since: std::sync::Mutex<Option<Instant>>,
}

impl MountDriver {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: MountSettings,
        volume: String,
        node_id: String,
        address: IpAddr,
        source: VolumeSource,
        host: Arc<dyn MountHost>,
        state: Arc<AgentState>,
        membership: Arc<Membership>,
    ) -> MountDriver {
        MountDriver {
            settings,
            volume,
            node_id,
            address,
            source,
            host,
            state,
            membership,
            last_refusal: std::sync::Mutex::new(None),
            unwell_since: std::sync::Mutex::new(None),
        }
    }

    /// Volume servers: this node first when it runs glusterd, then the core nodes in
    /// gossip (their brick online first).
    async fn servers_and_readiness(&self) -> (Vec<String>, VolumeReadiness) {
        let members = self.membership.members().await;
        let mut cores: Vec<(bool, String)> = members
            .iter()
            .filter(|m| !m.is_self && m.keys.role == Role::Core)
            .map(|m| {
                let ip = m.keys.grpc.map(|a| a.ip()).unwrap_or(m.gossip_addr.ip());
                (
                    m.live && m.keys.gluster_brick == BrickState::Online,
                    ip.to_string(),
                )
            })
            .collect();
        cores.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let any_brick_online = cores.iter().any(|(online, _)| *online);
        let mut servers: Vec<String> = Vec::new();
        let readiness = match &self.source {
            VolumeSource::Local(local) => {
                servers.push(self.address.to_string());
                let local = local.borrow().clone();
                if local.volume_started && local.server_quorum {
                    VolumeReadiness::Ready
                } else {
                    VolumeReadiness::NotReady
                }
            }
            VolumeSource::Remote => {
                if any_brick_online {
                    VolumeReadiness::Ready
                } else {
                    VolumeReadiness::NotReady
                }
            }
        };
        servers.extend(cores.into_iter().map(|(_, ip)| ip));
        servers.dedup();
        (servers, readiness)
    }

    pub async fn tick(&self) {
        let docroot = self.settings.docroot.clone();
        let sentinel = docroot.join(&self.settings.sentinel);
        let unit = unit_name(&docroot);
        let mounted = match self.host.mounted(&docroot).await {
            Ok(mounted) => mounted,
            Err(error) => {
                tracing::warn!(node = %self.node_id, "mount: {error}");
                self.state.update(|keys| keys.mount = MountState::Absent);
                return;
            }
        };
        let probe = match mounted {
            Mounted::Gluster => Some(
                self.host
                    .probe(&sentinel, self.settings.probe_timeout)
                    .await,
            ),
            _ => None,
        };
        let (servers, volume) = self.servers_and_readiness().await;
        let unwell_for = {
            let mut since = self.unwell_since.lock().unwrap_or_else(|p| p.into_inner());
            match &probe {
                Some(Probe::Slow(_) | Probe::Error(_)) => {
                    since.get_or_insert_with(Instant::now).elapsed()
                }
                _ => {
                    *since = None;
                    Duration::ZERO
                }
            }
        };
        let decided = plan(&self.settings, &mounted, probe.as_ref(), volume, unwell_for);
        self.report_refusal(decided.refusal.as_deref());
        match &probe {
            Some(Probe::Stale(why) | Probe::Error(why)) => {
                tracing::warn!(node = %self.node_id, "docroot mount not live: {why}")
            }
            Some(Probe::Slow(why)) => {
                tracing::info!(node = %self.node_id, slow_for = ?unwell_for, stale_after = ?self.settings.stale_after, "docroot mount slow (a brick away for up to the volume's ping-timeout): {why}")
            }
            _ => {}
        }
        let mut state = decided.state;
        for action in decided.actions {
            let result = match action {
                MountAction::Mount => {
                    let text = render_unit(&docroot, &self.volume, &servers);
                    tracing::info!(node = %self.node_id, %unit, servers = ?servers, "mounting the volume on {}", docroot.display());
                    self.host.mount(&unit, &text, &docroot).await
                }
                MountAction::LazyUnmountAndReset => {
                    tracing::warn!(node = %self.node_id, "docroot mount stale: lazy unmount of {}, remount next", docroot.display());
                    self.host.lazy_unmount(&unit, &docroot).await
                }
                MountAction::CreateSentinel => {
                    let result = self
                        .host
                        .create_sentinel(&sentinel, self.settings.probe_timeout)
                        .await;
                    if result.is_ok() {
                        state = MountState::Ok;
                    }
                    result
                }
            };
            if let Err(error) = result {
                tracing::warn!(node = %self.node_id, ?action, "mount action failed; retrying on a later tick: {error}");
            }
        }
        self.state.update(|keys| keys.mount = state);
    }

    /// Log a refusal once when it appears (and when it goes away), not every tick.
    fn report_refusal(&self, refusal: Option<&str>) {
        let mut last = self.last_refusal.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_deref() != refusal {
            match refusal {
                Some(text) => tracing::error!(node = %self.node_id, "{text}"),
                None if last.is_some() => {
                    tracing::info!(node = %self.node_id, "docroot refusal cleared")
                }
                None => {}
            }
            *last = refusal.map(str::to_string);
        }
    }

    pub async fn run(self: Arc<Self>, interval: Duration, stop: watch::Receiver<bool>) {
        crate::state::every(interval, stop, || self.tick()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuse_client_is_the_glusterfs_process_with_the_mount_point() {
        let proc = tempfile::tempdir().unwrap();
        let add = |pid: &str, comm: &str, args: &[&str]| {
            let dir = proc.path().join(pid);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(dir.join("cmdline"), args.join("\0") + "\0").unwrap();
        };
        add(
            "12",
            "glusterfsd",
            &["/usr/sbin/glusterfsd", "-s", "10.0.0.1", "/var/www/triad"],
        );
        add("40", "apache2", &["/usr/sbin/apache2", "/var/www/triad"]);
        std::fs::create_dir_all(proc.path().join("self")).unwrap();
        assert_eq!(
            fuse_client_pid(proc.path(), Path::new("/var/www/triad")),
            None
        );
        add(
            "77",
            "glusterfs",
            &[
                "/usr/sbin/glusterfs",
                "--process-name",
                "fuse",
                "--volfile-id=www",
                "/var/www/triad",
            ],
        );
        assert_eq!(
            fuse_client_pid(proc.path(), Path::new("/var/www/triad/")),
            Some(77)
        );
        assert_eq!(fuse_client_pid(proc.path(), Path::new("/srv/other")), None);
    }
    use proptest::prelude::*;

    const MOUNTINFO: &str = "\
22 1 0:21 / / rw,relatime - ext4 /dev/vda rw
98 22 0:50 / /var/www/triad rw,relatime - fuse.glusterfs 10.214.0.11:/www rw,user_id=0
99 22 0:51 / /srv/a\\040b rw - tmpfs tmpfs rw
";

    #[test]
    fn mountinfo_finds_the_fstype_of_a_mount_point() {
        assert_eq!(
            parse_mountinfo(MOUNTINFO, Path::new("/var/www/triad")).as_deref(),
            Some("fuse.glusterfs")
        );
        assert_eq!(
            parse_mountinfo(MOUNTINFO, Path::new("/var/www/triad/")).as_deref(),
            Some("fuse.glusterfs")
        );
        assert_eq!(
            parse_mountinfo(MOUNTINFO, Path::new("/srv/a b")).as_deref(),
            Some("tmpfs")
        );
        assert_eq!(parse_mountinfo(MOUNTINFO, Path::new("/var/www")), None);
    }

    /// The kernel's escaping of a mount point in mountinfo (fs/proc_namespace.c: space,
    /// tab, newline and backslash as `\ooo`).
    fn kernel_escape(path: &str) -> String {
        let mut out = String::new();
        for c in path.chars() {
            match c {
                ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
                c => out.push(c),
            }
        }
        out
    }

    /// Lines made of mountinfo's own fields, separators and escapes.
    fn mountinfo_like() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            Just("22".to_string()),
            Just("0:50".to_string()),
            Just("/".to_string()),
            Just("/var/www/triad".to_string()),
            Just("rw,relatime".to_string()),
            Just("-".to_string()),
            Just("fuse.glusterfs".to_string()),
            Just("ext4".to_string()),
            Just("\\040".to_string()),
            Just("\\134".to_string()),
            Just("\\777".to_string()),
            Just("\\".to_string()),
            Just("\\0".to_string()),
            Just("\\+12".to_string()),
            "[\\\\0-9]{1,5}",
            any::<String>(),
        ];
        let line = proptest::collection::vec(token, 0..12).prop_map(|t| t.join(" "));
        proptest::collection::vec(line, 0..6).prop_map(|lines| lines.join("\n"))
    }

    proptest! {
        /// /proc/self/mountinfo can hold any path a user mounted: any text and docroot
        /// give a single fstype word or nothing, never a panic.
        #[test]
        fn mountinfo_never_panics(
            text in prop_oneof![any::<String>(), mountinfo_like()],
            docroot in prop_oneof![Just("/var/www/triad".to_string()), Just("/".to_string()), Just(String::new()), any::<String>()],
        ) {
            if let Some(fstype) = parse_mountinfo(&text, Path::new(&docroot)) {
                prop_assert!(!fstype.contains(' ') && !fstype.contains('\n'), "{:?}", fstype);
            }
        }

        /// A docroot with any characters is found through the kernel's escapes, and the
        /// mount on top (the last line) wins.
        #[test]
        fn mountinfo_escaped_points_round_trip(
            parts in proptest::collection::vec("[^/\u{0}]{1,8}", 1..4),
            fstype in "[a-z][a-z0-9.]{0,15}",
            others in proptest::collection::vec("[a-z]{1,8}", 0..4),
            slash in any::<bool>(),
        ) {
            let docroot = format!("/{}", parts.join("/"));
            let mut text = String::from("22 1 0:21 / / rw,relatime - ext4 /dev/vda rw\n");
            text.push_str(&format!("97 22 0:49 / {} rw - ext4 /dev/vdb rw\n", kernel_escape(&docroot)));
            for (i, other) in others.iter().enumerate() {
                text.push_str(&format!("{} 22 0:5{i} / /srv/{other} rw - tmpfs tmpfs rw\n", 100 + i));
            }
            text.push_str(&format!("98 97 0:50 / {} rw,relatime - {fstype} 10.0.0.1:/www rw\n", kernel_escape(&docroot)));
            let asked = if slash { format!("{docroot}/") } else { docroot.clone() };
            prop_assert_eq!(parse_mountinfo(&text, Path::new(&asked)), Some(fstype));
        }
    }

    #[tokio::test]
    async fn probe_of_a_real_file_and_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let host = SystemdMounts::new();
        let file = dir.path().join("s");
        assert_eq!(
            host.probe(&file, Duration::from_secs(2)).await,
            Probe::Missing
        );
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(host.probe(&file, Duration::from_secs(2)).await, Probe::Ok);
    }

    /// The sentinel is written through a handle on a FUSE directory only: a plain
    /// directory (a mount gone since the probe) receives nothing. (Its creation on a real
    /// volume is the lab's: testbed_volume_triad forms a fresh volume.)
    #[tokio::test]
    async fn the_sentinel_is_never_written_into_a_bare_directory() {
        let dir = tempfile::tempdir().unwrap();
        let host = SystemdMounts::new();
        let file = dir.path().join(super::super::SENTINEL);
        let error = host
            .create_sentinel(&file, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("not FUSE"), "{error}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_blocked_probe_is_slow_within_the_bound_and_blocks_no_second_thread() {
        let flag = Arc::new(AtomicBool::new(false));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let started = std::time::Instant::now();
        let out = bounded(&flag, Duration::from_millis(200), move || {
            let _ = release_rx.recv();
        })
        .await;
        assert!(out.is_none());
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            flag.load(Ordering::SeqCst),
            "the stuck thread is still flagged"
        );
        let host = SystemdMounts {
            probe_in_flight: flag.clone(),
            unit_dir: PathBuf::new(),
        };
        assert!(matches!(
            host.probe(Path::new("/"), Duration::from_secs(1)).await,
            Probe::Slow(_)
        ));
        release_tx.send(()).unwrap();
        let cleared = std::time::Instant::now();
        while flag.load(Ordering::SeqCst) {
            assert!(
                cleared.elapsed() < Duration::from_secs(5),
                "probe thread did not finish"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
