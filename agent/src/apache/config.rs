//! Apache's configuration for this node: `Listen` on the node address only, one virtual
//! host whose DocumentRoot is the docroot mount (PHP through mod_php, which Debian's
//! libapache2-mod-php enables), and mod_status answering only the node itself (the agent
//! reads it through the node's address).
//!
//! Files are rewritten only when their content changes, checked with `apache2ctl
//! configtest` before a graceful reload, and put back as they were when the check fails.

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
}

impl Default for ApachePaths {
    fn default() -> Self {
        ApachePaths {
            ports_conf: PathBuf::from("/etc/apache2/ports.conf"),
            site_available: PathBuf::from("/etc/apache2/sites-available/triad.conf"),
            site_enabled: PathBuf::from("/etc/apache2/sites-enabled/triad.conf"),
            default_site_enabled: PathBuf::from("/etc/apache2/sites-enabled/000-default.conf"),
        }
    }
}

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
        Options FollowSymLinks\n\
        AllowOverride None\n\
        Require all granted\n\
        DirectoryIndex index.php index.html\n\
    </Directory>\n\
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

/// Write the files that differ; `apache2ctl configtest`; restore on failure.
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
        for (path, old) in backups {
            match old {
                Some(text) => write(&path, &text).await?,
                None => {
                    let _ = tokio::fs::remove_file(&path).await;
                }
            }
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
}
