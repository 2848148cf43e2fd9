//! The node image: a Debian 12 rootfs with systemd, MariaDB Galera, GlusterFS, Apache/PHP and
//! HAProxy (disabled; for the packaged coordinator's test next to a local HAProxy), built once
//! with debootstrap from the host's own mirror and cached under the state dir.
//!
//! It is rebuilt only when [`image_hash`] (package list + recipe version) changes. The build
//! goes into `image.new`, and only a finished build is renamed to `image`, so an interrupted
//! build never leaves a half image behind; the hash file next to it is written last.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::cmd::{self, run};
use crate::error::{IoContext, LabError, Result};
use crate::host;

/// The node services, before the PHP modules.
const SERVICE_PACKAGES: &[&str] = &[
    "mariadb-server",
    "galera-4",
    "mariadb-backup",
    "glusterfs-server",
    "glusterfs-client",
    "apache2",
    "libapache2-mod-php",
];

/// Tools and the lab's own needs, after the PHP modules.
const LAB_PACKAGES: &[&str] = &[
    "iputils-ping",
    "procps",
    "netcat-openbsd",
    "rsync",
    "socat",
    // Galera's state transfer over TLS ([galera] tls): stunnel for rsync, socat's OpenSSL for
    // mariabackup, openssl for the scripts' certificate checks
    "stunnel4",
    "openssl",
    // a coordinator node's local balancer (testbed_packaging: the coordinator .deb driving
    // it through Debian's admin socket) and the agent's database endpoint; disabled below
    "haproxy",
    // bench-backup's plain baseline on a node (mariadb-backup | zstd, tar | zstd)
    "zstd",
    // the lab's real app (tests/src/wordpress.rs): copied from the package onto the volume
    "wordpress",
    "wordpress-theme-twentytwentythree",
];

/// Packages installed into the image (besides debootstrap's minbase + systemd): the
/// services, the PHP modules an autoscaled node gets through cloud-init (one list, the
/// coordinator's), the tools.
pub fn packages() -> Vec<&'static str> {
    SERVICE_PACKAGES
        .iter()
        .chain(triad_coordinator::autoscale::cloud_init::PHP_MODULES)
        .chain(LAB_PACKAGES)
        .copied()
        .collect()
}

/// Packages debootstrap includes in the base.
pub const BASE_INCLUDE: &str = "systemd,systemd-sysv,dbus,iproute2";

/// Bump when the build steps below change in a way that needs a rebuild.
pub const RECIPE_VERSION: u32 = 1;

/// Debian suite of the image.
pub const SUITE: &str = "bookworm";

/// Units the image disables: timers that would wake up during tests, and haproxy.service
/// (from [`packages`]), which only the test that needs it starts.
const DISABLE: &[&str] = &[
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "dpkg-db-backup.timer",
    "haproxy.service",
];

/// Stable 64-bit FNV-1a (std's hasher is not guaranteed stable across releases).
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The hash identifying an image's content: recipe version, suite, base includes, packages.
pub fn image_hash() -> String {
    let spec = format!(
        "recipe={RECIPE_VERSION}\nsuite={SUITE}\ninclude={BASE_INCLUDE}\npackages={}\n",
        packages().join(" ")
    );
    format!("{:016x}", fnv1a(spec.as_bytes()))
}

/// Paths of the image in a state dir.
#[derive(Debug, Clone)]
pub struct Image {
    /// The finished rootfs (overlay lower dir of every node).
    pub root: PathBuf,
    /// File holding [`image_hash`] of the finished rootfs.
    pub hash_file: PathBuf,
    /// Where a build in progress lives.
    pub building: PathBuf,
}

impl Image {
    /// The image paths under `state`.
    pub fn new(state: &Path) -> Self {
        Self {
            root: state.join("image"),
            hash_file: state.join("image.hash"),
            building: state.join("image.new"),
        }
    }

    /// True when the image exists and was built from the current recipe.
    pub fn is_current(&self) -> bool {
        self.root.join("usr/sbin/mariadbd").exists()
            && std::fs::read_to_string(&self.hash_file)
                .map(|h| h.trim() == image_hash())
                .unwrap_or(false)
    }

    /// Builds the image unless it is current (or always with `force`). Returns whether it built.
    pub fn ensure(&self, force: bool) -> Result<bool> {
        if !force && self.is_current() {
            return Ok(false);
        }
        self.build()?;
        Ok(true)
    }

    /// Builds the image from scratch into `image.new` and swaps it in. Prints phases with
    /// elapsed seconds (the build takes about 90 s).
    pub fn build(&self) -> Result<()> {
        let t0 = Instant::now();
        let phase = |msg: &str| {
            eprintln!("[image {:6.1}s] {msg}", t0.elapsed().as_secs_f64());
        };
        let parent = self.root.parent().unwrap_or(Path::new("/"));
        // nodes' overlays use the image as their lower dir: never swap it under them
        if let Some(m) = crate::node::mounts_under(&parent.join("nodes")).first() {
            return Err(LabError::Other(format!(
                "image {} is in use (node overlay mounted at {m}); run `triad-lab down` first",
                self.root.display()
            )));
        }
        let mirror = host::host_mirror()?;
        std::fs::create_dir_all(parent).io("mkdir", parent)?;
        remove_tree(&self.building)?;
        phase(&format!(
            "debootstrap {SUITE} from {mirror} into {}",
            self.building.display()
        ));
        run(Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={BASE_INCLUDE}"))
            .arg(SUITE)
            .arg(&self.building)
            .arg(&mirror))?;
        let b = &self.building;
        // the host's apt sources (main, updates, security) as they are
        let sld = b.join("etc/apt/sources.list.d");
        let mut copied = false;
        if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "sources" || x == "list") {
                    std::fs::copy(&p, sld.join(e.file_name())).io("copy", &p)?;
                    copied = true;
                }
            }
        }
        if copied {
            let _ = std::fs::remove_file(b.join("etc/apt/sources.list"));
        } else if Path::new("/etc/apt/sources.list").exists() {
            std::fs::copy("/etc/apt/sources.list", b.join("etc/apt/sources.list"))
                .io("copy", "/etc/apt/sources.list")?;
        }
        let policy = b.join("usr/sbin/policy-rc.d");
        std::fs::write(&policy, "#!/bin/sh\nexit 101\n").io("write", &policy)?;
        set_mode(&policy, 0o755)?;
        phase(&format!("apt-get install {}", packages().join(" ")));
        // A non-boot nspawn shares the host's network namespace, so apt inside it works.
        run(Command::new("systemd-nspawn")
            .arg("-D")
            .arg(b)
            .args([
                "--register=no",
                "--keep-unit",
                "--pipe",
                "-E",
                "DEBIAN_FRONTEND=noninteractive",
                "sh",
                "-c",
            ])
            .arg(format!(
                "apt-get update -q && apt-get install -y -q --no-install-recommends {} && apt-get clean",
                packages().join(" ")
            )))?;
        phase("configure (networkd, timers, root password, hostname)");
        std::fs::remove_file(&policy).io("remove", &policy)?;
        let _ = std::fs::remove_file(b.join("etc/hostname"));
        run(Command::new("chroot").arg(b).args(["passwd", "-d", "root"]))?;
        run(Command::new("chroot")
            .arg(b)
            .args(["systemctl", "enable", "systemd-networkd"]))?;
        run(Command::new("chroot")
            .arg(b)
            .args(["systemctl", "disable"])
            .args(DISABLE))?;
        // nothing of this build may leak into nodes as a shared identity
        let mid = b.join("etc/machine-id");
        std::fs::write(&mid, "00000000000000000000000000000001\n").io("write", &mid)?;
        phase("swap in the new image");
        let _ = std::fs::remove_file(&self.hash_file);
        let old = parent.join(format!("image.old-{}", std::process::id()));
        if self.root.exists() {
            std::fs::rename(&self.root, &old).io("rename", &self.root)?;
        }
        std::fs::rename(b, &self.root).io("rename", b)?;
        let tmp = self.hash_file.with_extension("hash.tmp");
        std::fs::write(&tmp, format!("{}\n", image_hash())).io("write", &tmp)?;
        std::fs::rename(&tmp, &self.hash_file).io("rename", &tmp)?;
        remove_tree(&old)?;
        let size =
            cmd::run_stdout(Command::new("du").arg("-sh").arg(&self.root)).unwrap_or_default();
        phase(&format!(
            "image ready ({}), hash {}",
            size.split_whitespace().next().unwrap_or("?"),
            image_hash()
        ));
        Ok(())
    }
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).io("chmod", p)
}

/// Removes a directory tree after lazily unmounting anything still mounted below it (an
/// interrupted debootstrap can leave /proc or /sys mounted in the target). Refuses to follow
/// into mounts because it unmounts them first.
pub fn remove_tree(p: &Path) -> Result<()> {
    if !p.exists() {
        return Ok(());
    }
    for m in crate::node::mounts_under(p).iter().rev() {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    if let Some(m) = crate::node::mounts_under(p).first() {
        return Err(LabError::Other(format!(
            "refusing to remove {}: {m} is still mounted",
            p.display()
        )));
    }
    std::fs::remove_dir_all(p).io("remove", p)
}
