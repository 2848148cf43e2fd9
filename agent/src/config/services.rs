//! The sections of the managed services (`[gluster]`, `[mount]`, `[apache]`, `[galera]`),
//! resolved into each module's settings with the same one-line errors.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use triad_daemon::config::{check_name, duration_key, validate_url_path, ConfigError, StatusCodes};
use triad_proto::gossip::Role;

use super::{RawApache, RawGalera, RawGluster, RawMount};
use crate::apache::driver::ApacheSettings;
use crate::galera::GaleraSettings;
use crate::gluster::driver::GlusterSettings;
use crate::mount::MountSettings;

pub(super) fn absolute_path(
    path: &Path,
    key: &'static str,
    text: String,
) -> Result<PathBuf, ConfigError> {
    if !text.starts_with('/') || text.len() < 2 {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message: format!("{text:?} must be an absolute path other than /"),
        });
    }
    Ok(PathBuf::from(text))
}

pub(super) fn resolve_gluster(
    path: &Path,
    raw: RawGluster,
    role: Role,
) -> Result<GlusterSettings, ConfigError> {
    // web nodes mount the volume as clients: no glusterd, no brick
    let mut gluster = GlusterSettings {
        managed: raw.managed.unwrap_or(role == Role::Core),
        ..Default::default()
    };
    if let Some(unit) = raw.unit {
        gluster.unit = unit;
    }
    if let Some(volume) = raw.volume {
        check_name(&volume, 64, &['-', '_']).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: "gluster.volume",
            message,
        })?;
        gluster.volume = volume;
    }
    if let Some(brick) = raw.brick_path {
        gluster.brick_path = absolute_path(path, "gluster.brick_path", brick)?;
    }
    Ok(gluster)
}

pub(super) fn resolve_mount(path: &Path, raw: RawMount) -> Result<MountSettings, ConfigError> {
    let mut mount = MountSettings::default();
    if let Some(managed) = raw.managed {
        mount.managed = managed;
    }
    if let Some(docroot) = raw.docroot {
        mount.docroot = absolute_path(path, "mount.docroot", docroot)?;
    }
    if let Some(allow) = raw.allow_non_empty {
        mount.allow_non_empty = allow;
    }
    mount.probe_timeout = duration_key(
        path,
        "mount.probe_timeout",
        raw.probe_timeout.as_deref(),
        mount.probe_timeout,
    )?;
    if mount.probe_timeout.is_zero() || mount.probe_timeout > Duration::from_secs(60) {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            key: "mount.probe_timeout",
            message: "must be more than 0 and at most 60s".into(),
        });
    }
    // unset: the default, or the probe's own bound when that is longer
    let stale_default = mount.stale_after.max(mount.probe_timeout);
    mount.stale_after = duration_key(
        path,
        "mount.stale_after",
        raw.stale_after.as_deref(),
        stale_default,
    )?;
    if mount.stale_after < mount.probe_timeout || mount.stale_after > Duration::from_secs(300) {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            key: "mount.stale_after",
            message: format!(
                "must be at least mount.probe_timeout ({:?}) and at most 300s; make it \
                 longer than the volume's network.ping-timeout",
                mount.probe_timeout
            ),
        });
    }
    Ok(mount)
}

pub(super) fn resolve_apache(path: &Path, raw: RawApache) -> Result<ApacheSettings, ConfigError> {
    let mut apache = ApacheSettings::default();
    if let Some(managed) = raw.managed {
        apache.managed = managed;
    }
    if let Some(unit) = raw.unit {
        apache.unit = unit;
    }
    if let Some(port) = raw.port {
        apache.port = port;
    }
    if let Some(configure) = raw.configure {
        apache.configure = configure;
    }
    if let Some(health_path) = raw.health_path {
        validate_url_path(&health_path).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: "apache.health_path",
            message,
        })?;
        apache.health_path = health_path;
    }
    if let Some(health_codes) = raw.health_codes {
        apache.health_codes =
            StatusCodes::parse(&health_codes).map_err(|message| ConfigError::Invalid {
                path: path.to_path_buf(),
                key: "apache.health_codes",
                message,
            })?;
    }
    Ok(apache)
}

pub(super) fn resolve_galera(
    path: &Path,
    raw: RawGalera,
    role: Role,
    cluster_name: &str,
    tls: Option<&triad_daemon::tls::TlsFiles>,
) -> Result<GaleraSettings, ConfigError> {
    let mut galera = GaleraSettings::defaults(cluster_name);
    if raw.tls == Some(true) {
        let files = tls.ok_or_else(|| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: "galera.tls",
            message: "needs the node's certificate: [tls] ca, cert and key (not insecure = true)"
                .into(),
        })?;
        galera.tls = Some(crate::galera::GaleraTls::new(files.clone()));
    }
    // web nodes only serve: no database member unless the operator says so
    galera.managed = raw.managed.unwrap_or(role == Role::Core);
    if let Some(method) = raw.sst_method {
        galera.sst_method = method;
    }
    if let Some(size) = raw.gcache_size {
        galera.gcache_size = size;
    }
    galera.innodb_buffer_pool_size = raw.innodb_buffer_pool_size;
    for peer in raw.peers.unwrap_or_default() {
        let ip: IpAddr = peer.parse().map_err(|_| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: "galera.peers",
            message: format!("{peer:?} is not an IP address"),
        })?;
        galera.peers.push(ip);
    }
    if let Some(dir) = raw.datadir {
        galera.datadir = dir.into();
    }
    if let Some(socket) = raw.socket {
        galera.socket = socket.into();
    }
    if let Some(config_path) = raw.config_path {
        galera.config_path = config_path.into();
    }
    if let Some(unit) = raw.unit {
        galera.unit = unit;
    }
    if let Some(user) = raw.monitor_user {
        check_name(&user, 32, &['-', '_']).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: "galera.monitor_user",
            message,
        })?;
        galera.monitor_user = user;
    }
    galera.start_backoff = duration_key(
        path,
        "galera.start_backoff",
        raw.start_backoff.as_deref(),
        galera.start_backoff,
    )?;
    Ok(galera)
}
