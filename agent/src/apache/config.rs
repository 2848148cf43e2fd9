//! Apache's configuration for this node: `Listen` on the node address only, one virtual
//! host whose DocumentRoot is the docroot mount (PHP through mod_php, which Debian's
//! libapache2-mod-php enables), and mod_status answering only the node itself (the agent
//! reads it through the node's address).
//!
//! The app's `.htaccess` files are honoured (`AllowOverride All` on the docroot), and the
//! modules they commonly use besides Debian's defaults are enabled ([`MODULES`]: ownCloud's
//! rewrites its URLs and sets security headers), by the links `a2enmod` makes. The price:
//! Apache looks for a `.htaccess` in every directory from the docroot down to the file
//! requested, on the volume.
//!
//! PHP sessions live on the volume ([`SESSIONS_DIR`] under the docroot, which Apache
//! refuses to serve): a login survives the node that made it, and every node sees the
//! same session (PHP's files handler locks a session file while a request uses it).
//!
//! Files and links are changed only when they differ, checked with `apache2ctl configtest`
//! before a graceful reload, and put back as they were when the check fails.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exec::{run, HostError};

/// Where the files go (Debian's layout).
#[derive(Debug, Clone, PartialEq)]
pub struct ApachePaths {
    pub ports_conf: PathBuf,
    pub site_available: PathBuf,
    pub site_enabled: PathBuf,
    /// Debian's default site: disabled, so the only virtual host is ours.
    pub default_site_enabled: PathBuf,
    /// Modules Debian ships (`NAME.load`, and `NAME.conf` for some).
    pub mods_available: PathBuf,
    /// A module is enabled by links here to its files in `mods_available`, as `a2enmod`
    /// makes them.
    pub mods_enabled: PathBuf,
    /// Where the unit's drop-in directory goes ([`mount_gate_path`]): persistent, since
    /// the gate matters at boot, before the agent runs.
    pub systemd_dir: PathBuf,
}

impl Default for ApachePaths {
    fn default() -> Self {
        ApachePaths {
            ports_conf: PathBuf::from("/etc/apache2/ports.conf"),
            site_available: PathBuf::from("/etc/apache2/sites-available/triad.conf"),
            site_enabled: PathBuf::from("/etc/apache2/sites-enabled/triad.conf"),
            default_site_enabled: PathBuf::from("/etc/apache2/sites-enabled/000-default.conf"),
            mods_available: PathBuf::from("/etc/apache2/mods-available"),
            mods_enabled: PathBuf::from("/etc/apache2/mods-enabled"),
            systemd_dir: PathBuf::from("/etc/systemd/system"),
        }
    }
}

/// The drop-in of `unit` that gates its start on the docroot mount ([`render_mount_gate`]).
pub fn mount_gate_path(paths: &ApachePaths, unit: &str) -> PathBuf {
    paths
        .systemd_dir
        .join(format!("{unit}.d"))
        .join("triad-docroot.conf")
}

/// A drop-in for Apache's unit: start only when something is mounted on the docroot. At
/// boot Debian starts Apache before the agent mounts the volume, and it served the bare
/// directory beneath, 404s that the balancer passed on for a second or two before its
/// checks caught up (every chaos run's first reboot). `ExecCondition` skips the start,
/// leaving the unit inactive rather than failed; the agent starts it once the mount is live.
pub fn render_mount_gate(docroot: &Path) -> String {
    format!(
        "# Written by triad-agent: Apache serves the docroot only once the Gluster volume is\n\
# mounted on it (removed with the agent).\n\
[Service]\nExecCondition=/usr/bin/mountpoint -q {}\n",
        docroot.display()
    )
}

/// The PHP sessions' directory, under the docroot (on the volume); never served.
pub const SESSIONS_DIR: &str = ".triad/sessions";
/// Triad's own directory on the volume (the first part of [`SESSIONS_DIR`]).
pub const TRIAD_DIR: &str = ".triad";

/// Modules the agent enables besides Debian's defaults (which include mod_status, mod_dir,
/// mod_env, mod_mime and mod_setenvif): what PHP apps' `.htaccess` files commonly need.
pub const MODULES: &[&str] = &["rewrite", "headers"];

pub fn render_ports(address: IpAddr, port: u16) -> String {
    let listen = match address {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    };
    format!(
        "# Written by triad-agent: Apache listens on this node's address only.\nListen {listen}\n"
    )
}

pub fn render_site(address: IpAddr, port: u16, node_id: &str, docroot: &Path) -> String {
    let host = match address {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    };
    let docroot = docroot.display();
    format!(
        "# Written by triad-agent for node {node_id}; changes are overwritten.\n\
<VirtualHost {host}>\n\
    ServerName {node_id}\n\
    DocumentRoot {docroot}\n\
    <Directory {docroot}>\n\
        # the app's .htaccess (mod_rewrite there needs FollowSymLinks)\n\
        Options FollowSymLinks\n\
        AllowOverride All\n\
        Require all granted\n\
        DirectoryIndex index.php index.html\n\
    </Directory>\n\
    # Triad's own files on the volume (the PHP sessions) are never served\n\
    <Directory {docroot}/.triad>\n\
        Require all denied\n\
    </Directory>\n\
    <IfModule php_module>\n\
        # sessions on the volume: a login survives the node that made it; PHP collects\n\
        # them itself (Debian's cron cleans only /var/lib/php/sessions)\n\
        php_admin_value session.save_path \"{docroot}/{SESSIONS_DIR}\"\n\
        php_admin_value session.gc_probability 1\n\
        php_admin_value session.gc_divisor 1000\n\
    </IfModule>\n\
    # the agent reads ?auto through the node's own address; nobody else\n\
    <Location /server-status>\n\
        SetHandler server-status\n\
        Require local\n\
        Require ip {address}\n\
    </Location>\n\
    ErrorLog ${{APACHE_LOG_DIR}}/error.log\n\
    CustomLog ${{APACHE_LOG_DIR}}/access.log combined\n\
</VirtualHost>\n"
    )
}

/// What the caller must do after [`apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Unchanged,
    /// Only the site changed: a graceful reload takes it.
    Reload,
    /// The listeners changed: a graceful reload fails to bind a specific address while the
    /// old wildcard listener is open (seen with Apache 2.4.62 on Debian 12), so restart.
    Restart,
}

/// Link each of `modules` into `mods_enabled` where it is not yet (its `.load`, and its
/// `.conf` when Debian ships one), as `a2enmod` does; returns the links made. A module whose
/// `.load` is missing is an error naming the file (nothing is linked then).
pub async fn enable_modules(
    paths: &ApachePaths,
    modules: &[&str],
) -> Result<Vec<PathBuf>, HostError> {
    // a2enmod's relative target when the two directories are siblings (Debian's layout)
    let relative = match (paths.mods_available.parent(), paths.mods_enabled.parent()) {
        (Some(a), Some(b)) if a == b => paths.mods_available.file_name().map(PathBuf::from),
        _ => None,
    };
    let mut wanted = Vec::new();
    for module in modules {
        let load = paths.mods_available.join(format!("{module}.load"));
        if tokio::fs::metadata(&load).await.is_err() {
            return Err(HostError::new(
                format!("enabling mod_{module}"),
                format!("{} is missing (is apache2 installed?)", load.display()),
            ));
        }
        for file in [format!("{module}.load"), format!("{module}.conf")] {
            let available = paths.mods_available.join(&file);
            let enabled = paths.mods_enabled.join(&file);
            let exists = tokio::fs::metadata(&available).await.is_ok();
            let linked = tokio::fs::symlink_metadata(&enabled).await.is_ok();
            if exists && !linked {
                let target = match &relative {
                    Some(dir) => Path::new("..").join(dir).join(&file),
                    None => available,
                };
                wanted.push((target, enabled));
            }
        }
    }
    let mut made = Vec::new();
    for (target, link) in wanted {
        if let Err(e) = tokio::fs::symlink(&target, &link).await {
            for done in &made {
                let _ = tokio::fs::remove_file(done).await;
            }
            return Err(HostError::new(
                format!("linking {}", link.display()),
                e.to_string(),
            ));
        }
        made.push(link);
    }
    Ok(made)
}

/// Write the files that differ and enable [`MODULES`]; `apache2ctl configtest`; restore
/// on failure.
pub async fn apply(paths: &ApachePaths, ports: &str, site: &str) -> Result<Applied, HostError> {
    let mut changed = false;
    let listeners_changed = tokio::fs::read_to_string(&paths.ports_conf)
        .await
        .ok()
        .as_deref()
        != Some(ports);
    let mut backups: Vec<(PathBuf, Option<String>)> = Vec::new();
    for (path, text) in [(&paths.ports_conf, ports), (&paths.site_available, site)] {
        let old = tokio::fs::read_to_string(path).await.ok();
        if old.as_deref() != Some(text) {
            backups.push((path.clone(), old));
            write(path, text).await?;
            changed = true;
        }
    }
    if tokio::fs::symlink_metadata(&paths.site_enabled)
        .await
        .is_err()
    {
        tokio::fs::symlink(&paths.site_available, &paths.site_enabled)
            .await
            .map_err(|e| {
                HostError::new(
                    format!("linking {}", paths.site_enabled.display()),
                    e.to_string(),
                )
            })?;
        changed = true;
    }
    let modules_linked = match enable_modules(paths, MODULES).await {
        Ok(linked) => linked,
        Err(error) => {
            restore(backups).await?;
            return Err(error);
        }
    };
    changed |= !modules_linked.is_empty();
    let default_was = tokio::fs::read_link(&paths.default_site_enabled).await.ok();
    if default_was.is_some() {
        tokio::fs::remove_file(&paths.default_site_enabled)
            .await
            .map_err(|e| {
                HostError::new(
                    format!("disabling {}", paths.default_site_enabled.display()),
                    e.to_string(),
                )
            })?;
        changed = true;
    }
    if !changed {
        return Ok(Applied::Unchanged);
    }
    if let Err(error) = run("apache2ctl", &["configtest"], Duration::from_secs(30)).await {
        restore(backups).await?;
        for link in modules_linked {
            let _ = tokio::fs::remove_file(link).await;
        }
        if let Some(target) = default_was {
            let _ = tokio::fs::symlink(target, &paths.default_site_enabled).await;
        }
        return Err(error);
    }
    Ok(if listeners_changed {
        Applied::Restart
    } else {
        Applied::Reload
    })
}

/// Put files back as they were before [`apply`] wrote them (`None`: there was none).
async fn restore(backups: Vec<(PathBuf, Option<String>)>) -> Result<(), HostError> {
    for (path, old) in backups {
        match old {
            Some(text) => write(&path, &text).await?,
            None => {
                let _ = tokio::fs::remove_file(&path).await;
            }
        }
    }
    Ok(())
}

async fn write(path: &Path, text: &str) -> Result<(), HostError> {
    let what = format!("writing {}", path.display());
    let tmp = path.with_extension("triad-tmp");
    tokio::fs::write(&tmp, text)
        .await
        .map_err(|e| HostError::new(&what, e.to_string()))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| HostError::new(&what, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_and_vhost_on_the_node_address_with_status_local_only() {
        let addr: IpAddr = "10.214.0.11".parse().unwrap();
        assert_eq!(
            render_ports(addr, 80).lines().last(),
            Some("Listen 10.214.0.11:80")
        );
        let site = render_site(addr, 80, "n1", Path::new("/var/www/triad"));
        assert!(site.contains("<VirtualHost 10.214.0.11:80>"), "{site}");
        assert!(site.contains("DocumentRoot /var/www/triad\n"), "{site}");
        assert!(site.contains("Require ip 10.214.0.11"), "{site}");
        assert!(
            !site.contains("Require all granted\n    </Location>"),
            "{site}"
        );
        let v6 = render_ports("fd00::1".parse().unwrap(), 8080);
        assert!(v6.contains("Listen [fd00::1]:8080"), "{v6}");
    }

    #[test]
    fn the_docroot_honours_the_apps_htaccess() {
        let site = render_site(
            "10.214.0.11".parse().unwrap(),
            80,
            "n1",
            Path::new("/var/www/triad"),
        );
        let docroot = site
            .split("<Directory /var/www/triad>\n")
            .nth(1)
            .and_then(|rest| rest.split("</Directory>").next())
            .unwrap_or_else(|| panic!("no <Directory> for the docroot: {site}"));
        let directives: Vec<&str> = docroot
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert!(directives.contains(&"AllowOverride All"), "{site}");
        // mod_rewrite in a .htaccess refuses to work without it
        assert!(directives.contains(&"Options FollowSymLinks"), "{site}");
        assert!(!site.contains("AllowOverride None"), "{site}");
        assert_eq!(MODULES, ["rewrite", "headers"]);
    }

    #[test]
    fn php_sessions_live_on_the_volume_and_are_never_served() {
        let site = render_site(
            "10.214.0.11".parse().unwrap(),
            80,
            "n1",
            Path::new("/var/www/triad"),
        );
        assert!(
            site.contains("php_admin_value session.save_path \"/var/www/triad/.triad/sessions\""),
            "{site}"
        );
        let hidden = site
            .split("<Directory /var/www/triad/.triad>\n")
            .nth(1)
            .and_then(|rest| rest.split("</Directory>").next())
            .unwrap_or_else(|| panic!("no <Directory> for .triad: {site}"));
        assert_eq!(hidden.trim(), "Require all denied");
    }

    fn module_tree() -> (tempfile::TempDir, ApachePaths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = ApachePaths {
            mods_available: dir.path().join("mods-available"),
            mods_enabled: dir.path().join("mods-enabled"),
            ..ApachePaths::default()
        };
        std::fs::create_dir(&paths.mods_available).unwrap();
        std::fs::create_dir(&paths.mods_enabled).unwrap();
        for file in ["rewrite.load", "headers.load", "status.load", "status.conf"] {
            std::fs::write(paths.mods_available.join(file), "LoadModule x y\n").unwrap();
        }
        (dir, paths)
    }

    #[test]
    fn the_mount_gate_is_a_persistent_drop_in_that_checks_the_docroot() {
        let paths = ApachePaths::default();
        assert_eq!(
            mount_gate_path(&paths, "apache2.service"),
            Path::new("/etc/systemd/system/apache2.service.d/triad-docroot.conf")
        );
        let gate = render_mount_gate(Path::new("/var/www/triad"));
        assert!(gate.contains("[Service]\nExecCondition=/usr/bin/mountpoint -q /var/www/triad\n"));
    }

    #[tokio::test]
    async fn modules_are_linked_as_a2enmod_links_them_once() {
        let (_dir, paths) = module_tree();
        std::fs::write(paths.mods_available.join("headers.conf"), "# conf\n").unwrap();
        let made = enable_modules(&paths, &["rewrite", "headers"])
            .await
            .unwrap();
        assert_eq!(made.len(), 3, "{made:?}");
        for file in ["rewrite.load", "headers.load", "headers.conf"] {
            let link = paths.mods_enabled.join(file);
            assert_eq!(
                std::fs::read_link(&link).unwrap(),
                Path::new("../mods-available").join(file),
                "{file}"
            );
            // the relative link resolves to Debian's file
            assert!(std::fs::metadata(&link).is_ok(), "{file}");
        }
        assert!(!paths.mods_enabled.join("rewrite.conf").exists());
        // already enabled (by the agent or the admin): nothing to do, so no reload
        let again = enable_modules(&paths, &["rewrite", "headers"])
            .await
            .unwrap();
        assert!(again.is_empty(), "{again:?}");
    }

    #[tokio::test]
    async fn a_module_apache_lacks_is_named_and_nothing_is_linked() {
        let (_dir, paths) = module_tree();
        let error = enable_modules(&paths, &["rewrite", "security2"])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("mod_security2") && error.contains("security2.load"),
            "{error}"
        );
        assert_eq!(std::fs::read_dir(&paths.mods_enabled).unwrap().count(), 0);
    }
}
