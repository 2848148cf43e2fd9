//! The coordinator's configuration (`/etc/triad/coordinator.toml`), parsed strictly and
//! validated with the same one-line errors as the agent's.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use triad_cluster::membership::GossipSettings;
use triad_cluster::settings::{resolve_gossip, RawGossip};
use triad_daemon::config::{
    check_name, duration_key, load_toml, parse_toml, resolve_cluster, ConfigError, RawCluster,
};
use triad_proto::ports;

#[cfg(test)]
mod shipped;

pub const DEFAULT_PATH: &str = "/etc/triad/coordinator.toml";
/// `coordinator.state_dir` unless set (the unit's StateDirectory).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/triad-coordinator";

/// The file as written. Every key of it and of the structs below (`[balancer]`, `[autoscale]`
/// included) is documented in packaging/coordinator/coordinator.toml: `config::shipped`'s
/// tests read the keys from these structs and fail on one the file lacks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCoordinatorConfig {
    #[serde(default)]
    coordinator: RawCoordinator,
    cluster: RawCluster,
    gossip: RawGossip,
    #[serde(default)]
    grpc: RawGrpc,
    #[serde(default)]
    galera: RawGalera,
    /// `[balancer]`: load balancer membership (crate::balancer::config; default none).
    #[serde(default)]
    balancer: Option<crate::balancer::config::RawBalancer>,
    /// `[volume]`: the Gluster volume; formed and kept when the section is present.
    #[serde(default)]
    volume: Option<RawVolume>,
    /// `[autoscale]`: the request-rate policy; evaluated when the section is present.
    #[serde(default)]
    autoscale: Option<crate::autoscale::config::RawAutoscale>,
    /// `[tls]`: mutual TLS for triadctl → coordinator and coordinator → agents.
    #[serde(default)]
    tls: Option<triad_daemon::config::RawTls>,
    /// `[app]`: the application's database and account; kept when the section is present.
    #[serde(default)]
    app: Option<RawApp>,
    /// `[metrics]`: the Prometheus endpoint (read by [`MetricsConfig::load`]).
    #[serde(default)]
    metrics: RawMetrics,
    /// `[dashboard]`: the web dashboard (read by [`DashboardConfig::load`]).
    #[serde(default)]
    dashboard: RawDashboard,
    /// `[backup]`: backups of the database and the files (read by
    /// [`crate::backup::config::BackupConfig::load`]).
    #[serde(default)]
    backup: Option<crate::backup::config::RawBackup>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApp {
    /// The app's database, a plain identifier (required).
    database: Option<String>,
    /// The app's account, a plain identifier; default the database's name.
    user: Option<String>,
    /// The account's host part; default "%" (grants on the app's database only).
    client_host: Option<String>,
    /// Where every node keeps the password; default /etc/triad/app-db.password.
    password_file: Option<String>,
    /// The group that may read that file; default "www-data" (Apache on Debian).
    group: Option<String>,
    /// `[[app.jobs]]`: work that runs on exactly one ready node (issue 18).
    #[serde(default)]
    jobs: Vec<RawJob>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawJob {
    /// a-z, 0-9, '-', '_'; names the run's systemd unit (required).
    name: Option<String>,
    /// The command, not through a shell (required).
    argv: Option<Vec<String>>,
    /// The OS user it runs as; default "www-data".
    user: Option<String>,
    /// An interval ("5m") or a five-field crontab line in UTC (required).
    schedule: Option<String>,
    /// systemd stops a run after this long; default 5m.
    timeout: Option<String>,
    /// How long a holder keeps the job without renewals; default timeout + 15s.
    lease: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    /// address:port, or "off"; default 127.0.0.1:9465.
    listen: Option<String>,
}

/// Where `/metrics` is served when `[metrics] listen` is not set: loopback only.
pub const DEFAULT_METRICS_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    9465,
));

/// `[metrics]`: where the coordinator serves `/metrics` (crate::metrics). Like `[balancer]`,
/// it is validated with the rest of the file but kept out of [`CoordinatorConfig`] (whose
/// struct literals tests build): the binary reads it with [`MetricsConfig::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `None`: `listen = "off"`.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Deserialize)]
struct OnlyMetrics {
    #[serde(default)]
    metrics: RawMetrics,
}

impl MetricsConfig {
    /// Read the `[metrics]` section of the coordinator's file.
    pub fn load(path: &Path) -> Result<MetricsConfig, ConfigError> {
        let raw: OnlyMetrics = load_toml(path)?;
        resolve_metrics(path, &raw.metrics)
    }

    pub fn parse(path: &Path, text: &str) -> Result<MetricsConfig, ConfigError> {
        let raw: OnlyMetrics = parse_toml(path, text)?;
        resolve_metrics(path, &raw.metrics)
    }
}

fn resolve_metrics(path: &Path, raw: &RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let listen = resolve_listen(
        path,
        "metrics.listen",
        raw.listen.as_deref(),
        DEFAULT_METRICS_LISTEN,
        "Prometheus scrapes",
    )?;
    Ok(MetricsConfig { listen })
}

/// A `listen` key of a small HTTP server: address:port or "off" (`None`), `default` when
/// absent; port 0 refused, since clients must know the port.
fn resolve_listen(
    path: &Path,
    key: &'static str,
    text: Option<&str>,
    default: SocketAddr,
    client: &str,
) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(text) = text else {
        return Ok(Some(default));
    };
    if text == "off" {
        return Ok(None);
    }
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    let listen: SocketAddr = text.parse().map_err(|_| {
        invalid(format!(
            "{text:?} is not an address:port (default \"{default}\") or \"off\""
        ))
    })?;
    if listen.port() == 0 {
        return Err(invalid(format!(
            "{text:?}: port 0 would pick a new port at every start; give the port {client}"
        )));
    }
    Ok(Some(listen))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDashboard {
    /// address:port, or "off"; default 127.0.0.1:9466. Needs `[tls]`.
    listen: Option<String>,
}

/// Where the dashboard is served when `[dashboard] listen` is not set: loopback only
/// (reach it through an SSH tunnel, or set a management address).
pub const DEFAULT_DASHBOARD_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    9466,
));

/// `[dashboard]`: where the coordinator serves its web dashboard over HTTPS
/// (crate::dashboard). Read by the binary like [`MetricsConfig`]. The dashboard
/// authenticates with the cluster PKI: with `[tls] insecure = true` the binary runs without
/// it and says so (like a port it cannot bind, never fatal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardConfig {
    /// `None`: `listen = "off"`.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Deserialize)]
struct OnlyDashboard {
    #[serde(default)]
    dashboard: RawDashboard,
}

impl DashboardConfig {
    /// Read the `[dashboard]` section of the coordinator's file.
    pub fn load(path: &Path) -> Result<DashboardConfig, ConfigError> {
        let raw: OnlyDashboard = load_toml(path)?;
        resolve_dashboard(path, &raw.dashboard)
    }

    pub fn parse(path: &Path, text: &str) -> Result<DashboardConfig, ConfigError> {
        let raw: OnlyDashboard = parse_toml(path, text)?;
        resolve_dashboard(path, &raw.dashboard)
    }
}

fn resolve_dashboard(path: &Path, raw: &RawDashboard) -> Result<DashboardConfig, ConfigError> {
    let listen = resolve_listen(
        path,
        "dashboard.listen",
        raw.listen.as_deref(),
        DEFAULT_DASHBOARD_LISTEN,
        "browsers open",
    )?;
    Ok(DashboardConfig { listen })
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVolume {
    /// Default true when the section is present.
    managed: Option<bool>,
    /// Default "www" (the agents' `gluster.volume`).
    name: Option<String>,
    /// Default "/bricks/www" (the agents' `gluster.brick_path`).
    brick_path: Option<String>,
    /// Core nodes with one brick each; default `[galera] nodes`.
    nodes: Option<Vec<String>>,
    /// `network.ping-timeout`, default "5s" (Gluster's 42 s hung writes for 70 s).
    ping_timeout: Option<String>,
    /// Allow bricks on the root file system (default false).
    bricks_on_root_fs: Option<bool>,
}

/// `[galera]`: formation and full-outage recovery.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGalera {
    /// Form the cluster and recover it after a full outage (default true).
    recovery: Option<bool>,
    /// No Primary component for this long counts as a full outage (default 3s).
    grace: Option<String>,
    /// The Galera members, used until a Primary view has been recorded.
    nodes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCoordinator {
    id: Option<String>,
    state_dir: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGrpc {
    listen: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CoordinatorConfig {
    /// The coordinator's own id in gossip (an observer entry with role `coordinator`).
    pub id: String,
    pub cluster_name: String,
    pub seeds: Vec<String>,
    pub gossip: GossipSettings,
    pub grpc_listen: SocketAddr,
    /// Where decisions are persisted (the Galera epoch and decision).
    pub state_dir: std::path::PathBuf,
    pub galera_recovery: bool,
    pub galera_grace: std::time::Duration,
    pub galera_nodes: Vec<String>,
    /// The Gluster volume to form and keep; `None` when not managed.
    pub volume: Option<crate::volume::VolumeSpec>,
    /// The autoscaling policy; `None` when not configured.
    pub autoscale: Option<crate::autoscale::config::AutoscaleSettings>,
    /// Mutual TLS: the coordinator's server (for triadctl) and its calls to agents
    /// (`None`: plaintext, warned at every start).
    pub tls: Option<triad_daemon::tls::TlsFiles>,
    /// The application's database and account; `None` when not configured.
    pub app: Option<AppSpec>,
}

impl CoordinatorConfig {
    pub fn load(path: &Path) -> Result<CoordinatorConfig, ConfigError> {
        resolve(path, load_toml(path)?)
    }

    pub fn parse(path: &Path, text: &str) -> Result<CoordinatorConfig, ConfigError> {
        resolve(path, parse_toml(path, text)?)
    }
}

fn resolve(path: &Path, raw: RawCoordinatorConfig) -> Result<CoordinatorConfig, ConfigError> {
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    let (cluster_name, seeds) = resolve_cluster(path, &raw.cluster)?;
    // Validated here so `validate-config` reports it; the binary reads it with
    // `BalancerConfig::load` (kept out of `CoordinatorConfig` so its literals stay valid).
    crate::balancer::config::resolve(path, raw.balancer.as_ref())?;
    resolve_metrics(path, &raw.metrics)?;
    resolve_dashboard(path, &raw.dashboard)?;
    crate::backup::config::resolve(path, raw.backup.as_ref())?;
    if seeds.is_empty() {
        return Err(invalid(
            "cluster.seeds",
            "the coordinator needs at least one seed (an agent's gossip address)".into(),
        ));
    }
    let listen_text = raw.gossip.listen.as_deref().ok_or_else(|| {
        invalid(
            "gossip.listen",
            "required: the coordinator's gossip address:port on the cluster network".into(),
        )
    })?;
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        invalid(
            "gossip.listen",
            format!("{listen_text:?} is not an address:port"),
        )
    })?;
    let gossip = resolve_gossip(path, &raw.gossip, listen.ip())?;
    if gossip.advertise.ip().is_unspecified() {
        return Err(invalid(
            "gossip.advertise",
            "required when gossip.listen is a wildcard address".into(),
        ));
    }
    let grpc_listen = match raw.grpc.listen {
        Some(text) => text
            .parse()
            .map_err(|_| invalid("grpc.listen", format!("{text:?} is not an address:port")))?,
        None => SocketAddr::from(([127, 0, 0, 1], ports::COORDINATOR_GRPC)),
    };
    let id = raw
        .coordinator
        .id
        .unwrap_or_else(|| "coordinator".to_string());
    if id.is_empty() || id.len() > 63 {
        return Err(invalid("coordinator.id", "must be 1-63 characters".into()));
    }
    let galera_grace = duration_key(
        path,
        "galera.grace",
        raw.galera.grace.as_deref(),
        std::time::Duration::from_secs(3),
    )?;
    let galera_nodes = raw.galera.nodes.unwrap_or_default();
    let volume = match raw.volume {
        Some(v) if v.managed.unwrap_or(true) => {
            let name = v.name.unwrap_or_else(|| "www".into());
            check_name(&name, 64, &['-', '_']).map_err(|m| invalid("volume.name", m))?;
            let brick_path = v.brick_path.unwrap_or_else(|| "/bricks/www".into());
            if !brick_path.starts_with('/') || brick_path.len() < 2 {
                return Err(invalid(
                    "volume.brick_path",
                    format!("{brick_path:?} must be an absolute path other than /"),
                ));
            }
            let nodes = v.nodes.unwrap_or_else(|| galera_nodes.clone());
            if nodes.len() < 2 {
                return Err(invalid(
                    "volume.nodes",
                    "a replica volume needs at least 2 core nodes (set volume.nodes or galera.nodes)".into(),
                ));
            }
            let ping = duration_key(
                path,
                "volume.ping_timeout",
                v.ping_timeout.as_deref(),
                std::time::Duration::from_secs(5),
            )?;
            if ping.as_secs() < 1 || ping.as_secs() > 1800 {
                return Err(invalid(
                    "volume.ping_timeout",
                    "must be between 1s and 30m".into(),
                ));
            }
            Some(crate::volume::VolumeSpec {
                name,
                brick_path,
                nodes,
                ping_timeout_secs: ping.as_secs() as u32,
                force: v.bricks_on_root_fs.unwrap_or(false),
            })
        }
        _ => None,
    };
    let tls = triad_daemon::config::resolve_tls(path, raw.tls.as_ref())?;
    let app = raw.app.map(|a| resolve_app(path, a)).transpose()?;
    let autoscale = crate::autoscale::config::resolve(
        path,
        raw.autoscale.as_ref(),
        &crate::autoscale::config::ClusterContext {
            cluster_name: cluster_name.clone(),
            seeds: seeds.clone(),
            volume: volume.as_ref().map(|v| v.name.clone()),
            tls: tls.clone(),
        },
    )?;
    Ok(CoordinatorConfig {
        tls,
        app,
        volume,
        autoscale,
        id,
        cluster_name,
        seeds,
        gossip,
        grpc_listen,
        state_dir: raw
            .coordinator
            .state_dir
            .unwrap_or_else(|| DEFAULT_STATE_DIR.to_string())
            .into(),
        galera_recovery: raw.galera.recovery.unwrap_or(true),
        galera_grace,
        galera_nodes,
    })
}

/// `[app]` as configured: the application Triad serves (issue 17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    pub database: String,
    pub user: String,
    /// The account's host part.
    pub client_host: String,
    /// Where each node keeps the password.
    pub password_file: std::path::PathBuf,
    /// The group that may read it (the web server's).
    pub group: String,
    /// `[[app.jobs]]`, in the file's order, names unique.
    pub jobs: Vec<JobConfig>,
}

/// One `[[app.jobs]]`: validated, its lease's timing derived from its timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobConfig {
    pub name: String,
    pub argv: Vec<String>,
    pub user: String,
    pub schedule: triad_jobs::schedule::Schedule,
    pub timeout: std::time::Duration,
    pub lease: triad_jobs::lease::LeaseParams,
}

/// A job's timeout unless set: long enough for an app's cron run, short enough that a
/// holder's death costs minutes, not hours.
pub const DEFAULT_JOB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// `[[app.jobs]]`: each error names the key and the job (by name, else by position).
fn resolve_jobs(path: &Path, raw: Vec<RawJob>) -> Result<Vec<JobConfig>, ConfigError> {
    let mut jobs: Vec<JobConfig> = Vec::new();
    for (index, raw) in raw.into_iter().enumerate() {
        let which = match &raw.name {
            Some(name) => format!("job {name:?}"),
            None => format!("job {} of [[app.jobs]]", index + 1),
        };
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message: format!("{which}: {message}"),
        };
        let name = raw.name.clone().ok_or_else(|| {
            invalid(
                "app.jobs.name",
                "required: a-z, 0-9, '-' and '_' (it names the run's systemd unit)".into(),
            )
        })?;
        triad_proto::gossip::check_job_name(&name)
            .map_err(|rule| invalid("app.jobs.name", rule))?;
        if jobs.iter().any(|job| job.name == name) {
            return Err(invalid("app.jobs.name", "a second job of that name".into()));
        }
        let argv = raw.argv.ok_or_else(|| {
            invalid("app.jobs.argv", "required: the command as a list, e.g. [\"/usr/bin/php\", \"/var/www/triad/cron.php\"]".into())
        })?;
        triad_jobs::spec::check_argv(&argv).map_err(|m| invalid("app.jobs.argv", m))?;
        let user = raw.user.unwrap_or_else(|| "www-data".into());
        triad_jobs::spec::check_user(&user).map_err(|m| invalid("app.jobs.user", m))?;
        let schedule_text = raw.schedule.ok_or_else(|| {
            invalid(
                "app.jobs.schedule",
                "required: an interval (\"5m\") or a crontab line (\"*/5 * * * *\", UTC)".into(),
            )
        })?;
        let schedule = triad_jobs::schedule::Schedule::parse(&schedule_text)
            .map_err(|e| invalid("app.jobs.schedule", e.to_string()))?;
        let duration = |key: &'static str,
                        text: Option<&str>|
         -> Result<Option<std::time::Duration>, ConfigError> {
            text.map(|text| triad_daemon::config::parse_duration(text).map_err(|m| invalid(key, m)))
                .transpose()
        };
        let timeout =
            duration("app.jobs.timeout", raw.timeout.as_deref())?.unwrap_or(DEFAULT_JOB_TIMEOUT);
        if timeout < std::time::Duration::from_secs(1) {
            return Err(invalid(
                "app.jobs.timeout",
                format!("{timeout:?}: at least 1s"),
            ));
        }
        let lease_key = if raw.lease.is_some() {
            "app.jobs.lease"
        } else {
            "app.jobs.timeout"
        };
        let lease = duration("app.jobs.lease", raw.lease.as_deref())?;
        let lease = triad_jobs::lease::LeaseParams::for_job(timeout, lease)
            .map_err(|e| invalid(lease_key, e.to_string()))?;
        jobs.push(JobConfig {
            name,
            argv,
            user,
            schedule,
            timeout,
            lease,
        });
    }
    Ok(jobs)
}

/// `[app]`: names checked as plain identifiers, each error naming its key.
fn resolve_app(path: &Path, raw: RawApp) -> Result<AppSpec, ConfigError> {
    use triad_galera::account::{check_host, check_identifier};
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    let database = raw.database.ok_or_else(|| {
        invalid(
            "app.database",
            "required: the app's database name (a plain identifier)".into(),
        )
    })?;
    check_identifier(&database, 64).map_err(|m| invalid("app.database", m))?;
    let user = raw.user.unwrap_or_else(|| database.clone());
    check_identifier(&user, 32).map_err(|m| invalid("app.user", m))?;
    let client_host = raw.client_host.unwrap_or_else(|| "%".into());
    check_host(&client_host).map_err(|m| invalid("app.client_host", m))?;
    let password_file = raw
        .password_file
        .unwrap_or_else(|| "/etc/triad/app-db.password".into());
    if !password_file.starts_with('/')
        || password_file.ends_with('/')
        || password_file.contains('\n')
    {
        return Err(invalid(
            "app.password_file",
            format!("{password_file:?} must be an absolute file path"),
        ));
    }
    let group = raw.group.unwrap_or_else(|| "www-data".into());
    check_name(&group, 32, &['-', '_']).map_err(|m| invalid("app.group", m))?;
    let jobs = resolve_jobs(path, raw.jobs)?;
    Ok(AppSpec {
        database,
        user,
        client_host,
        password_file: password_file.into(),
        group,
        jobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostile_toml::{document, duration, toml_float, toml_list, toml_string, Schema};
    use proptest::prelude::*;

    const GOOD: &str = r#"
[cluster]
name = "lab"
seeds = ["10.214.0.11:7420"]
[gossip]
listen = "10.214.0.1:7420"
[tls]
insecure = true
"#;

    #[test]
    fn defaults_put_grpc_on_loopback() {
        let config = CoordinatorConfig::parse(Path::new("c.toml"), GOOD).unwrap();
        assert_eq!(config.grpc_listen, "127.0.0.1:7422".parse().unwrap());
        assert_eq!(config.gossip.advertise, "10.214.0.1:7420".parse().unwrap());
        assert_eq!(config.id, "coordinator");
    }

    #[test]
    fn missing_gossip_listen_and_unknown_keys_are_named() {
        let error = CoordinatorConfig::parse(
            Path::new("c.toml"),
            &GOOD.replace("listen = \"10.214.0.1:7420\"", ""),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("key `gossip.listen`"), "{error}");
        let error =
            CoordinatorConfig::parse(Path::new("c.toml"), &format!("{GOOD}\n[grpc]\nport = 1\n"))
                .unwrap_err()
                .to_string();
        assert!(error.contains("unknown field `port`"), "{error}");
    }

    #[test]
    fn metrics_listen_defaults_to_loopback_and_can_be_moved_or_turned_off() {
        let metrics = |text: &str| MetricsConfig::parse(Path::new("c.toml"), text);
        assert_eq!(
            metrics(GOOD).unwrap().listen,
            Some("127.0.0.1:9465".parse().unwrap()),
            "default"
        );
        // an empty section keeps the default too
        assert_eq!(
            metrics(&format!("{GOOD}[metrics]\n")).unwrap().listen,
            Some(DEFAULT_METRICS_LISTEN)
        );
        let explicit = format!("{GOOD}[metrics]\nlisten = \"10.214.0.1:9100\"\n");
        assert_eq!(
            metrics(&explicit).unwrap().listen,
            Some("10.214.0.1:9100".parse().unwrap())
        );
        let v6 = format!("{GOOD}[metrics]\nlisten = \"[::1]:9465\"\n");
        assert_eq!(
            metrics(&v6).unwrap().listen,
            Some("[::1]:9465".parse().unwrap())
        );
        let off = format!("{GOOD}[metrics]\nlisten = \"off\"\n");
        assert_eq!(metrics(&off).unwrap().listen, None);
        // the whole file with a [metrics] section is still a valid coordinator config
        for text in [&explicit, &off] {
            CoordinatorConfig::parse(Path::new("c.toml"), text).unwrap();
        }
    }

    #[test]
    fn an_app_section_takes_plain_identifiers_and_names_a_bad_key() {
        let config = CoordinatorConfig::parse(
            Path::new("c.toml"),
            &format!("{GOOD}[app]\ndatabase = \"owncloud\"\n"),
        )
        .unwrap();
        let app = config.app.expect("an [app]");
        assert_eq!(
            app.user, "owncloud",
            "the user defaults to the database's name"
        );
        assert_eq!(app.client_host, "%");
        assert_eq!(app.group, "www-data");
        assert_eq!(
            app.password_file,
            std::path::PathBuf::from("/etc/triad/app-db.password")
        );
        for (section, key) in [
            ("user = \"oc\"", "app.database"),
            ("database = \"own-cloud\"", "app.database"),
            ("database = \"oc; DROP DATABASE x\"", "app.database"),
            ("database = \"oc\"\nuser = \"oc`x\"", "app.user"),
            (
                "database = \"oc\"\nclient_host = \"a'b\"",
                "app.client_host",
            ),
            (
                "database = \"oc\"\npassword_file = \"secret\"",
                "app.password_file",
            ),
            ("database = \"oc\"\ngroup = \"www data\"", "app.group"),
        ] {
            let error =
                CoordinatorConfig::parse(Path::new("c.toml"), &format!("{GOOD}[app]\n{section}\n"))
                    .unwrap_err()
                    .to_string();
            assert!(error.contains(key), "{section}: {error}");
        }
    }

    const JOB: &str = "[[app.jobs]]\nname = \"wp-cron\"\nargv = [\"/usr/bin/php\", \"/var/www/triad/wp-cron.php\"]\nschedule = \"1m\"\n";

    #[test]
    fn app_jobs_take_defaults_and_a_lease_from_their_timeout() {
        let text = format!("{GOOD}[app]\ndatabase = \"oc\"\n{JOB}timeout = \"20s\"\n[[app.jobs]]\nname = \"nightly\"\nargv = [\"/bin/true\"]\nschedule = \"30 2 * * *\"\nuser = \"root\"\n");
        let app = CoordinatorConfig::parse(Path::new("c.toml"), &text)
            .unwrap()
            .app
            .unwrap();
        let names: Vec<&str> = app.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["wp-cron", "nightly"]);
        let cron = &app.jobs[0];
        assert_eq!(cron.user, "www-data");
        assert_eq!(cron.timeout, std::time::Duration::from_secs(20));
        assert_eq!(cron.lease.length(), std::time::Duration::from_secs(35));
        assert_eq!(cron.schedule.to_string(), "every 1m");
        assert_eq!(app.jobs[1].timeout, DEFAULT_JOB_TIMEOUT);
    }

    #[test]
    fn a_bad_job_is_refused_naming_the_key_and_the_job() {
        let app = "[app]\ndatabase = \"oc\"\n";
        for (job, key, says) in [
            ("[[app.jobs]]\nargv = [\"/bin/true\"]\nschedule = \"1m\"", "app.jobs.name", "job 1 of [[app.jobs]]"),
            ("[[app.jobs]]\nname = \"Cron Job\"\nargv = [\"/bin/true\"]\nschedule = \"1m\"", "app.jobs.name", "\"Cron Job\""),
            (&format!("{JOB}{JOB}"), "app.jobs.name", "a second job"),
            ("[[app.jobs]]\nname = \"c\"\nschedule = \"1m\"", "app.jobs.argv", "required"),
            ("[[app.jobs]]\nname = \"c\"\nargv = []\nschedule = \"1m\"", "app.jobs.argv", "empty"),
            ("[[app.jobs]]\nname = \"c\"\nargv = [\"/bin/true\"]", "app.jobs.schedule", "required"),
            ("[[app.jobs]]\nname = \"c\"\nargv = [\"/bin/true\"]\nschedule = \"every tuesday\"", "app.jobs.schedule", "job \"c\""),
            ("[[app.jobs]]\nname = \"c\"\nargv = [\"/bin/true\"]\nschedule = \"61 * * * *\"", "app.jobs.schedule", "job \"c\""),
            ("[[app.jobs]]\nname = \"c\"\nargv = [\"/bin/true\"]\nschedule = \"1m\"\nuser = \"www data\"", "app.jobs.user", "not a user name"),
            ("[[app.jobs]]\nname = \"c\"\nargv = [\"/bin/true\"]\nschedule = \"1m\"\ntimeout = \"soon\"", "app.jobs.timeout", "job \"c\""),
            ("[[app.jobs]]\nname = \"c\"\nargv = [\"/bin/true\"]\nschedule = \"1m\"\ntimeout = \"10s\"\nlease = \"12s\"", "app.jobs.lease", "at least 21s"),
            ("[[app.jobs]]\nname = \"c\"\nargv = [\"/bin/true\"]\nschedule = \"1m\"\nhost = \"n1\"", "unknown field `host`", "job"),
        ] {
            let error = CoordinatorConfig::parse(Path::new("c.toml"), &format!("{GOOD}{app}{job}\n"))
                .unwrap_err()
                .to_string();
            assert!(error.contains(key) && error.contains(says), "{job}: {error}");
        }
    }

    #[test]
    fn a_bad_metrics_listen_is_an_error_naming_the_key() {
        for (value, says) in [
            ("\"9465\"", "is not an address:port"),
            ("\"localhost:9465\"", "is not an address:port"),
            ("\"OFF\"", "or \"off\""),
            ("\"127.0.0.1:0\"", "port 0"),
            ("9465", "invalid type"),
        ] {
            let text = format!("{GOOD}[metrics]\nlisten = {value}\n");
            // the full config (what validate-config and the start report) and the section
            let full = CoordinatorConfig::parse(Path::new("c.toml"), &text)
                .unwrap_err()
                .to_string();
            let section = MetricsConfig::parse(Path::new("c.toml"), &text)
                .unwrap_err()
                .to_string();
            for error in [&full, &section] {
                assert!(error.contains(says), "{value}: {error}");
                assert!(
                    error.contains("metrics.listen") || error.contains("[metrics]"),
                    "{value}: {error}"
                );
            }
        }
        let error = CoordinatorConfig::parse(
            Path::new("c.toml"),
            &format!("{GOOD}[metrics]\nlisten = \"127.0.0.1:x\"\n"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "config c.toml: key `metrics.listen`: \"127.0.0.1:x\" is not an address:port (default \"127.0.0.1:9465\") or \"off\""
        );
        let error = CoordinatorConfig::parse(
            Path::new("c.toml"),
            &format!("{GOOD}[metrics]\nenabled = false\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("unknown field `enabled`"), "{error}");
    }

    const WITH_TLS: &str = r#"
[cluster]
name = "lab"
seeds = ["10.214.0.11:7420"]
[gossip]
listen = "10.214.0.1:7420"
[tls]
ca = "/etc/triad/pki/ca.pem"
cert = "/etc/triad/pki/coordinator.pem"
key = "/etc/triad/pki/coordinator.key"
"#;

    #[test]
    fn dashboard_listen_defaults_to_loopback_and_can_be_moved_or_turned_off() {
        let dashboard = |text: &str| DashboardConfig::parse(Path::new("c.toml"), text);
        assert_eq!(
            dashboard(WITH_TLS).unwrap().listen,
            Some("127.0.0.1:9466".parse().unwrap())
        );
        let moved = format!("{WITH_TLS}[dashboard]\nlisten = \"10.214.0.1:8443\"\n");
        assert_eq!(
            dashboard(&moved).unwrap().listen,
            Some("10.214.0.1:8443".parse().unwrap())
        );
        let off = format!("{WITH_TLS}[dashboard]\nlisten = \"off\"\n");
        assert_eq!(dashboard(&off).unwrap().listen, None);
        for text in [&moved, &off] {
            CoordinatorConfig::parse(Path::new("c.toml"), text).unwrap();
        }
    }

    #[test]
    fn a_bad_dashboard_listen_is_an_error_naming_the_key() {
        for (value, says) in [
            (
                "\"9466\"",
                "is not an address:port (default \"127.0.0.1:9466\") or \"off\"",
            ),
            ("\"[::1]:0\"", "port 0"),
            ("9466", "invalid type"),
        ] {
            let text = format!("{WITH_TLS}[dashboard]\nlisten = {value}\n");
            let full = CoordinatorConfig::parse(Path::new("c.toml"), &text)
                .unwrap_err()
                .to_string();
            let section = DashboardConfig::parse(Path::new("c.toml"), &text)
                .unwrap_err()
                .to_string();
            for error in [&full, &section] {
                assert!(error.contains(says), "{value}: {error}");
                assert!(
                    error.contains("dashboard.listen") || error.contains("[dashboard]"),
                    "{value}: {error}"
                );
                assert!(!error.contains('\n'), "{error}");
            }
        }
        let error = CoordinatorConfig::parse(
            Path::new("c.toml"),
            &format!("{WITH_TLS}[dashboard]\nport = 9466\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("unknown field `port`"), "{error}");
    }

    /// Found by `coordinator_config_never_panics`: humantime accepts up to u64::MAX seconds,
    /// and `interval * 2` in `autoscale::resolve` overflowed (a panic, not a config error).
    #[test]
    fn a_huge_autoscale_interval_is_a_config_error() {
        let text = format!("{GOOD}[autoscale]\ninterval = \"18446744073709551615s\"\n");
        let error = CoordinatorConfig::parse(Path::new("c.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("key `autoscale.interval`") && error.contains("365 days"),
            "{error}"
        );
        // the largest allowed interval still gives a config error, not an overflow
        let text = format!("{GOOD}[autoscale]\ninterval = \"365days\"\n");
        let error = CoordinatorConfig::parse(Path::new("c.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(error.contains("key `autoscale.window`"), "{error}");
    }

    /// Every table and key of coordinator.toml (`!`: required), plus unknown keys.
    const SCHEMA: Schema = &[
        ("!tls", &["!insecure"]),
        ("coordinator", &["id", "state_dir", "bogus"]),
        ("!cluster", &["!name", "!seeds"]),
        (
            "!gossip",
            &[
                "!listen",
                "advertise",
                "interval",
                "phi_threshold",
                "dead_node_grace",
                "compressed_digest",
            ],
        ),
        ("grpc", &["listen", "bogus"]),
        ("metrics", &["listen", "bogus"]),
        ("dashboard", &["listen", "bogus"]),
        (
            "backup",
            &[
                "dir",
                "key_file",
                "schedule",
                "keep_last",
                "keep_daily",
                "keep_weekly",
                "part_size",
                "quiesce",
                "bogus",
            ],
        ),
        ("backup.swift", &["cloud", "container", "bogus"]),
        (
            "backup.s3",
            &[
                "endpoint",
                "bucket",
                "region",
                "access_key_id",
                "secret_key_file",
                "url_style",
                "bogus",
            ],
        ),
        ("galera", &["recovery", "grace", "nodes", "bogus"]),
        (
            "balancer",
            &["kind", "rise_hold", "drain_timeout", "interval", "bogus"],
        ),
        (
            "balancer.haproxy",
            &[
                "admin_socket",
                "backend",
                "server_port",
                "check",
                "maintenance_map",
                "maintenance_allow",
            ],
        ),
        (
            "balancer.octavia",
            &[
                "cloud",
                "lb_name",
                "vip_subnet_id",
                "listener_name",
                "listener_protocol",
                "listener_port",
                "pool_name",
                "algorithm",
                "session_persistence",
                "member_port",
                "member_subnet_id",
                "active_timeout",
                "maintenance_page",
            ],
        ),
        (
            "balancer.octavia.monitor",
            &[
                "type",
                "delay",
                "timeout",
                "max_retries",
                "max_retries_down",
                "url_path",
                "expected_codes",
                "enabled",
            ],
        ),
        (
            "app",
            &[
                "database",
                "user",
                "client_host",
                "password_file",
                "group",
                "jobs",
                "bogus",
            ],
        ),
        (
            "volume",
            &[
                "managed",
                "name",
                "brick_path",
                "nodes",
                "ping_timeout",
                "bricks_on_root_fs",
                "bogus",
            ],
        ),
        (
            "autoscale",
            &[
                "enabled",
                "provider",
                "name_prefix",
                "ready_timeout",
                "drain_timeout",
                "min",
                "max",
                "target_per_node",
                "tolerance",
                "max_step",
                "window",
                "stabilization",
                "cooldown",
                "interval",
                "bogus",
            ],
        ),
        ("autoscale.exec", &["!add", "!remove", "timeout"]),
        (
            "autoscale.nova",
            &[
                "cloud",
                "!image",
                "!flavor",
                "!networks",
                "key_name",
                "security_groups",
                "availability_zone",
                "server_group",
                "boot_timeout",
                "user_data",
                "agent_config",
                "apt_source",
                "apt_key_file",
                "package_url",
                "pki_dir",
                "bogus",
            ],
        ),
    ];

    /// The fuzzed documents use every key the parser accepts (`[tls]`'s files aside: the
    /// documents run in plaintext), so a key added to a `Raw*` struct is fuzzed too.
    #[test]
    fn schema_lists_every_accepted_key() {
        let listed: std::collections::BTreeSet<String> = SCHEMA
            .iter()
            .flat_map(|(table, keys)| {
                let table = table.trim_start_matches('!');
                keys.iter()
                    .map(move |key| format!("{table}.{}", key.trim_start_matches('!')))
            })
            .collect();
        let accepted = triad_daemon::shipped::accepted_keys::<RawCoordinatorConfig>().unwrap();
        let missing: Vec<&String> = accepted
            .iter()
            .filter(|key| !listed.contains(*key))
            .filter(|key| !["tls.ca", "tls.cert", "tls.key"].contains(&key.as_str()))
            .collect();
        assert!(missing.is_empty(), "SCHEMA lacks {missing:?}");
    }

    /// Valid values for each key (ranges the resolvers accept, mostly).
    fn good(table: &str, key: &str) -> BoxedStrategy<String> {
        let pick = |words: &'static [&'static str]| {
            proptest::sample::select(words)
                .prop_map(toml_string)
                .boxed()
        };
        let ints = |lo: i64, hi: i64| (lo..=hi).prop_map(|n| n.to_string()).boxed();
        let names = || {
            proptest::collection::vec("n[0-9]", 0..4)
                .prop_map(|v| toml_list(&v))
                .boxed()
        };
        match (table, key) {
            ("tls", "insecure") => Just("true".to_string()).boxed(),
            ("cluster", "seeds") => proptest::collection::vec(
                any::<std::net::SocketAddrV4>().prop_map(|a| a.to_string()),
                1..3,
            )
            .prop_map(|v| toml_list(&v))
            .boxed(),
            (_, "listen" | "advertise") => any::<std::net::SocketAddrV4>()
                .prop_map(|a| toml_string(&a.to_string()))
                .boxed(),
            ("gossip", "interval") => duration(10, 10_000),
            ("balancer", "interval") => duration(50, 60_000),
            ("autoscale", "interval") => duration(1_000, 60_000),
            ("autoscale", "window") => duration(1_000, 600_000),
            (
                _,
                "grace" | "dead_node_grace" | "rise_hold" | "drain_timeout" | "active_timeout"
                | "ping_timeout" | "ready_timeout" | "stabilization" | "cooldown" | "timeout",
            ) if table != "balancer.octavia.monitor" => duration(1_000, 600_000),
            (_, "phi_threshold") => (0.5f64..70.0).prop_map(toml_float).boxed(),
            (
                _,
                "recovery" | "managed" | "bricks_on_root_fs" | "enabled" | "quiesce"
                | "compressed_digest",
            ) => {
                any::<bool>().prop_map(|b| b.to_string()).boxed()
            }
            ("galera" | "volume", "nodes") => names(),
            ("app", "database" | "user") => pick(&["owncloud", "oc_app", "oc-app", "x;y", ""]),
            ("app", "client_host") => pick(&["%", "10.0.0.%", "a'b", ""]),
            ("app", "password_file") => pick(&["/etc/triad/app-db.password", "relative", "/dir/"]),
            ("app", "group") => pick(&["www-data", "bad group"]),
            ("app", "jobs") => pick(&[
                r#"[{ name = "cron", argv = ["/usr/bin/php", "cron.php"], schedule = "1m" }]"#,
                r#"[{ name = "a", argv = ["/bin/true"], schedule = "*/5 * * * *", timeout = "20s", lease = "40s", user = "root" }]"#,
                r#"[{ name = "a", argv = [], schedule = "1m" }, { name = "a" }]"#,
            ])
            .prop_map(|quoted| {
                // pick quotes its words; these are TOML arrays as they stand
                serde_json::from_str::<String>(&quoted).unwrap_or(quoted)
            })
            .boxed(),
            ("backup", "dir" | "key_file") => pick(&["/var/backups/triad", "relative", "/"]),
            ("backup", "schedule") => pick(&["1d", "0 3 * * *", "often", ""]),
            ("backup", "keep_last" | "keep_daily" | "keep_weekly") => ints(0, 12),
            ("backup.swift", "cloud") => pick(&["fake", ""]),
            ("backup.swift", "container") => pick(&["triad-backups", "a/b", ""]),
            ("backup.s3", "endpoint") => pick(&["https://s3.example.net", "http://[::1]:9000", "ftp://x", "no url"]),
            ("backup.s3", "bucket") => pick(&["triad-backups", "Bad", "a", ""]),
            ("backup.s3", "region") => pick(&["us-east-1", "RegionOne", "a b", ""]),
            ("backup.s3", "access_key_id") => pick(&["AKIAEXAMPLE", "test:tester", "a b", ""]),
            ("backup.s3", "secret_key_file") => pick(&["/etc/triad/s3.secret", "relative", "/"]),
            ("backup.s3", "url_style") => pick(&["path", "virtual-host", "dns"]),
            ("backup", "part_size") => pick(&["64MiB", "1MiB", "10KiB", "5GiB", "lots"]),
            ("balancer", "kind") => pick(&["none", "haproxy", "octavia"]),
            (_, "server_port" | "listener_port" | "member_port") => {
                any::<u16>().prop_map(|p| p.to_string()).boxed()
            }
            (_, "check") => pick(&["check inter 1s fall 2 rise 2", "", "check\nx"]),
            (_, "algorithm") => pick(&[
                "ROUND_ROBIN",
                "least_connections",
                "SOURCE_IP",
                "SOURCE_IP_PORT",
                "RANDOM",
            ]),
            (_, "session_persistence") => pick(&[
                "none",
                "HTTP_COOKIE",
                "SOURCE_IP",
                "APP_COOKIE:sid",
                "APP_COOKIE:",
                "COOKIE",
            ]),
            ("balancer.octavia.monitor", "type") => pick(&["HTTP", "TCP", "PING"]),
            ("balancer.octavia.monitor", "expected_codes") => {
                pick(&["200", "200,302", "200-204", "2xx"])
            }
            ("balancer.octavia.monitor", "delay" | "timeout") => ints(0, 12),
            (_, "max_retries" | "max_retries_down") => ints(0, 12),
            ("autoscale", "provider") => pick(&["none", "exec", "nova", "cloud"]),
            ("autoscale", "min" | "max" | "max_step") => ints(0, 12),
            ("autoscale", "target_per_node") => (-1.0f64..500.0).prop_map(toml_float).boxed(),
            ("autoscale", "tolerance") => (-0.1f64..1.1).prop_map(toml_float).boxed(),
            ("autoscale.nova", "boot_timeout") => duration(1_000, 600_000),
            ("autoscale.nova", "user_data" | "apt_key_file") => {
                pick(&["/dev/null", "/nonexistent"])
            }
            ("autoscale.nova", "agent_config") => {
                pick(&["", "[gossip]\ninterval = \"1s\"\n", "not = = toml"])
            }
            ("autoscale.nova", "apt_source") => pick(&[
                "deb http://repo.example/ bookworm main",
                "rpm x",
                "deb a\nb",
            ]),
            ("autoscale.nova", "package_url") => {
                pick(&["https://repo.example/triad-agent.deb", "ftp://x"])
            }
            ("autoscale.nova", "networks" | "security_groups") => names(),
            ("autoscale.exec", "add" | "remove") => {
                proptest::collection::vec("[a-z{}/-]{1,10}", 0..3)
                    .prop_map(|v| toml_list(&v))
                    .boxed()
            }
            (
                _,
                "id" | "name" | "name_prefix" | "backend" | "cloud" | "lb_name" | "pool_name"
                | "listener_name",
            ) => "[a-z][a-z0-9_-]{0,12}"
                .prop_map(|t| toml_string(&t))
                .boxed(),
            _ => "/[a-z]{1,8}(/[a-z.]{1,8}){0,2}"
                .prop_map(|t| toml_string(&t))
                .boxed(),
        }
    }

    proptest! {
        /// coordinator.toml is written by hand: any text, and any document of its tables
        /// and keys (balancer and autoscale sections included) with any values, is a config
        /// or a one-line error naming the file.
        #[test]
        fn coordinator_config_never_panics(
            text in prop_oneof![1 => any::<String>(), 4 => document(SCHEMA, good)],
            file in "/[ -~]{0,30}",
        ) {
            match CoordinatorConfig::parse(Path::new(&file), &text) {
                Ok(config) => {
                    prop_assert!(!config.seeds.is_empty());
                    prop_assert!(!config.gossip.advertise.ip().is_unspecified());
                }
                Err(error) => {
                    let error = error.to_string();
                    prop_assert!(error.contains(&format!("config {file}")), "{}", error);
                    prop_assert!(!error.contains('\n'), "{}", error);
                }
            }
        }

        /// Valid values come back as written.
        #[test]
        fn coordinator_config_round_trips(
            id in "[a-z][a-z0-9-]{0,62}",
            cluster in "[a-z][a-z0-9-]{0,20}",
            seeds in proptest::collection::vec(any::<(std::net::IpAddr, u16)>().prop_map(SocketAddr::from), 1..4),
            listen in any::<std::net::SocketAddrV4>().prop_filter("own address", |a| !a.ip().is_unspecified()),
            grpc in any::<(std::net::IpAddr, u16)>().prop_map(SocketAddr::from),
            grace_ms in 1u64..1_000_000,
            nodes in proptest::collection::vec("[a-z][a-z0-9-]{0,10}", 2..5),
            volume in "[A-Za-z0-9_-]{1,64}",
            ping_secs in 1u64..=1800,
        ) {
            let text = format!(
                "[coordinator]\nid = {}\n[cluster]\nname = {}\nseeds = {}\n[gossip]\nlisten = {}\n\
                 [grpc]\nlisten = {}\n[galera]\ngrace = \"{grace_ms}ms\"\nnodes = {}\n\
                 [volume]\nname = {}\nping_timeout = \"{ping_secs}s\"\n[tls]\ninsecure = true\n",
                toml_string(&id),
                toml_string(&cluster),
                toml_list(&seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                toml_string(&listen.to_string()),
                toml_string(&grpc.to_string()),
                toml_list(&nodes),
                toml_string(&volume),
            );
            let config = CoordinatorConfig::parse(Path::new("c.toml"), &text)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(config.id, id);
            prop_assert_eq!(config.cluster_name, cluster);
            prop_assert_eq!(config.seeds, seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            prop_assert_eq!(config.gossip.advertise, SocketAddr::V4(listen));
            prop_assert_eq!(config.grpc_listen, grpc);
            prop_assert_eq!(config.galera_grace, std::time::Duration::from_millis(grace_ms));
            prop_assert_eq!(&config.galera_nodes, &nodes);
            let volume_spec = config.volume.expect("a [volume] section");
            prop_assert_eq!(volume_spec.name, volume);
            prop_assert_eq!(volume_spec.nodes, nodes);
            prop_assert_eq!(u64::from(volume_spec.ping_timeout_secs), ping_secs);
        }
    }
}
