//! `[autoscale]`: the file's section and its validated settings (the policy, the provider,
//! the cloud-init a new node boots with). Apart from the loop so that the coordinator's
//! config reads it without reaching the loop.

use std::time::Duration;

use serde::Deserialize;
use triad_daemon::config::{check_name, duration_key, ConfigError};

use super::cloud_init::{self, Install};
use super::nova;
use super::policy::Policy;
use super::provider::ExecProvider;

/// `[autoscale]` as written in the file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAutoscale {
    /// Default true when the section is present.
    enabled: Option<bool>,
    /// "none" (observe and recommend only) or "exec" (`[autoscale.exec]` commands).
    provider: Option<String>,
    /// Autoscaled nodes are named prefix + the lowest free number (default "web-").
    name_prefix: Option<String>,
    /// A launched node must be ready within this (default 15m), else it is deleted.
    ready_timeout: Option<String>,
    /// Bound on a scale-in drain (default 2m).
    drain_timeout: Option<String>,
    exec: Option<RawExec>,
    nova: Option<RawNova>,
    min: Option<usize>,
    max: Option<usize>,
    target_per_node: Option<f64>,
    tolerance: Option<f64>,
    max_step: Option<usize>,
    window: Option<String>,
    stabilization: Option<String>,
    cooldown: Option<String>,
    interval: Option<String>,
}

/// `[autoscale.exec]`: argv lists, `{node}` and `{role}` replaced; no shell.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawExec {
    add: Vec<String>,
    remove: Vec<String>,
    /// Bound on one command (default 10m).
    timeout: Option<String>,
}

/// `[autoscale.nova]`: servers on an OpenStack cloud.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawNova {
    cloud: Option<String>,
    image: Option<String>,
    flavor: Option<String>,
    #[serde(default)]
    networks: Vec<String>,
    key_name: Option<String>,
    #[serde(default)]
    security_groups: Vec<String>,
    availability_zone: Option<String>,
    server_group: Option<String>,
    boot_timeout: Option<String>,
    /// A cloud-init template replacing the shipped one.
    user_data: Option<std::path::PathBuf>,
    /// More agent configuration (TOML) for every new node.
    agent_config: Option<String>,
    apt_source: Option<String>,
    apt_key_file: Option<std::path::PathBuf>,
    package_url: Option<String>,
    /// With [tls]: where the cluster CA's ca.pem and ca.key are (default: the directory
    /// of [tls] ca); each new node's certificate is issued there.
    pki_dir: Option<std::path::PathBuf>,
}

/// Who adds and removes nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderSettings {
    None,
    Exec(ExecProvider),
    Nova(Box<nova::NovaSettings>),
}

/// What the rest of the coordinator's config tells the providers.
#[derive(Debug, Clone, Default)]
pub struct ClusterContext {
    pub cluster_name: String,
    pub seeds: Vec<String>,
    /// The Gluster volume new web nodes mount (None without `[volume]`).
    pub volume: Option<String>,
    /// The coordinator's `[tls]` (None: plaintext).
    pub tls: Option<triad_daemon::tls::TlsFiles>,
}

/// Nova tags mark our servers: at most 60 characters, no '/' or ','.
pub fn nova_tags(cluster: &str) -> Vec<String> {
    vec!["triad".into(), format!("triad-cluster={cluster}")]
}

/// Reads a duration key: (key, text, default seconds).
type DurationKey<'a> =
    dyn Fn(&'static str, Option<&str>, u64) -> Result<Duration, ConfigError> + 'a;

fn resolve_nova(
    path: &std::path::Path,
    raw: &RawNova,
    context: &ClusterContext,
    duration: &DurationKey<'_>,
) -> Result<nova::NovaSettings, ConfigError> {
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    let required = |key: &'static str, value: &Option<String>| {
        value
            .clone()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| invalid(key, "required with provider \"nova\"".into()))
    };
    let image = required("autoscale.nova.image", &raw.image)?;
    let flavor = required("autoscale.nova.flavor", &raw.flavor)?;
    if raw.networks.is_empty() {
        return Err(invalid(
            "autoscale.nova.networks",
            "name at least one Neutron network (name or id) the web nodes attach to".into(),
        ));
    }
    let read = |key: &'static str, file: &std::path::Path| {
        std::fs::read_to_string(file)
            .map_err(|e| invalid(key, format!("cannot read {}: {e}", file.display())))
    };
    let install = match (&raw.apt_source, &raw.package_url) {
        (Some(source), None) => {
            if source.contains('\n') || !source.trim_start().starts_with("deb") {
                return Err(invalid(
                    "autoscale.nova.apt_source",
                    format!("{source:?}: one apt line, e.g. \"deb http://repo.example/ bookworm main\""),
                ));
            }
            Install::Apt {
                source: source.clone(),
                key: match &raw.apt_key_file {
                    Some(file) => Some(read("autoscale.nova.apt_key_file", file)?),
                    None => None,
                },
            }
        }
        (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
            Install::Url(url.clone())
        }
        (None, Some(url)) => {
            return Err(invalid(
                "autoscale.nova.package_url",
                format!("{url:?} is not an http(s) URL"),
            ))
        }
        _ => {
            return Err(invalid(
                "autoscale.nova.apt_source",
                "set exactly one of apt_source (an apt line serving triad-agent) and package_url (the .deb's URL)".into(),
            ))
        }
    };
    let template = match &raw.user_data {
        Some(file) => read("autoscale.nova.user_data", file)?,
        None => cloud_init::TEMPLATE.to_string(),
    };
    let extra_agent_toml = raw.agent_config.clone().unwrap_or_default();
    if let Err(e) = extra_agent_toml.parse::<toml::Table>() {
        let first = e.to_string();
        let first = first.lines().next().unwrap_or_default().to_string();
        return Err(invalid(
            "autoscale.nova.agent_config",
            format!("not TOML: {first}"),
        ));
    }
    let tags = nova_tags(&context.cluster_name);
    if let Some(bad) = tags
        .iter()
        .find(|t| t.len() > 60 || t.contains('/') || t.contains(','))
    {
        return Err(invalid(
            "cluster.name",
            format!(
                "the Nova tag {bad:?} it makes must be at most 60 characters, without '/' or ','"
            ),
        ));
    }
    let pki_dir = match &context.tls {
        None => None,
        Some(tls) => {
            let dir = raw
                .pki_dir
                .clone()
                .or_else(|| tls.ca.parent().map(std::path::Path::to_path_buf))
                .unwrap_or_default();
            let key = dir.join(triad_daemon::pki::CA_KEY);
            if !key.exists() {
                return Err(invalid(
                    "autoscale.nova.pki_dir",
                    format!(
                        "{} not found: with [tls], the Nova provider issues each new node's certificate with the cluster CA",
                        key.display()
                    ),
                ));
            }
            Some(dir)
        }
    };
    let settings = nova::NovaSettings {
        pki_dir,
        cloud: raw.cloud.clone(),
        image,
        flavor,
        networks: raw.networks.clone(),
        key_name: raw.key_name.clone(),
        security_groups: raw.security_groups.clone(),
        availability_zone: raw.availability_zone.clone(),
        server_group: raw
            .server_group
            .clone()
            .unwrap_or_else(|| format!("triad-{}-web", context.cluster_name)),
        boot_timeout: duration(
            "autoscale.nova.boot_timeout",
            raw.boot_timeout.as_deref(),
            600,
        )?,
        tags,
        template,
        cluster: context.cluster_name.clone(),
        seeds: context.seeds.clone(),
        volume: context.volume.clone(),
        extra_agent_toml,
        install,
    };
    // the template must render now, not at the first scale-out
    settings
        .user_data("web-1")
        .map_err(|e| invalid("autoscale.nova.user_data", e))?;
    Ok(settings)
}

/// Validated `[autoscale]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscaleSettings {
    pub policy: Policy,
    /// The request rate is averaged over this window.
    pub window: Duration,
    /// How often the loop evaluates.
    pub interval: Duration,
    pub provider: ProviderSettings,
    pub name_prefix: String,
    pub ready_timeout: Duration,
    pub drain_timeout: Duration,
}

/// Resolve `[autoscale]`; `None` when absent or disabled.
pub fn resolve(
    path: &std::path::Path,
    raw: Option<&RawAutoscale>,
    context: &ClusterContext,
) -> Result<Option<AutoscaleSettings>, ConfigError> {
    let Some(raw) = raw.filter(|r| r.enabled.unwrap_or(true)) else {
        return Ok(None);
    };
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    let duration = |key: &'static str, text: Option<&str>, default: u64| {
        duration_key(path, key, text, Duration::from_secs(default))
    };
    let provider = match raw.provider.as_deref().unwrap_or("none") {
        "none" => ProviderSettings::None,
        "exec" => {
            let exec = raw.exec.as_ref().ok_or_else(|| {
                invalid(
                    "autoscale.exec",
                    "provider \"exec\" needs an [autoscale.exec] section with add and remove"
                        .into(),
                )
            })?;
            if exec.add.is_empty() || exec.remove.is_empty() {
                return Err(invalid(
                    "autoscale.exec",
                    "add and remove must each name a command (an argv list)".into(),
                ));
            }
            ProviderSettings::Exec(ExecProvider {
                add: exec.add.clone(),
                remove: exec.remove.clone(),
                timeout: duration("autoscale.exec.timeout", exec.timeout.as_deref(), 600)?,
            })
        }
        "nova" => {
            let nova = raw.nova.as_ref().ok_or_else(|| {
                invalid(
                    "autoscale.nova",
                    "provider \"nova\" needs an [autoscale.nova] section (image, flavor, networks, apt_source or package_url)".into(),
                )
            })?;
            ProviderSettings::Nova(Box::new(resolve_nova(path, nova, context, &duration)?))
        }
        other => {
            return Err(invalid(
                "autoscale.provider",
                format!("{other:?}: use \"none\" (observe and recommend), \"exec\" or \"nova\""),
            ))
        }
    };
    let name_prefix = raw.name_prefix.clone().unwrap_or_else(|| "web-".into());
    check_name(&name_prefix, 32, &['-']).map_err(|m| invalid("autoscale.name_prefix", m))?;
    let defaults = Policy::defaults();
    let policy = Policy {
        min: raw.min.unwrap_or(defaults.min),
        max: raw.max.unwrap_or(defaults.max),
        target_per_node: raw.target_per_node.unwrap_or(defaults.target_per_node),
        tolerance: raw.tolerance.unwrap_or(defaults.tolerance),
        max_step: raw.max_step.unwrap_or(defaults.max_step),
        stabilization: duration(
            "autoscale.stabilization",
            raw.stabilization.as_deref(),
            defaults.stabilization.as_secs(),
        )?,
        cooldown: duration(
            "autoscale.cooldown",
            raw.cooldown.as_deref(),
            defaults.cooldown.as_secs(),
        )?,
    };
    if policy.min == 0 || policy.min > policy.max {
        return Err(invalid(
            "autoscale.min",
            format!(
                "min {} and max {}: need 1 <= min <= max",
                policy.min, policy.max
            ),
        ));
    }
    if !(policy.target_per_node.is_finite() && policy.target_per_node > 0.0) {
        return Err(invalid(
            "autoscale.target_per_node",
            "must be a positive number of requests per second".into(),
        ));
    }
    if !(0.0..1.0).contains(&policy.tolerance) {
        return Err(invalid(
            "autoscale.tolerance",
            "must be a fraction in [0, 1), e.g. 0.1 for ±10 %".into(),
        ));
    }
    if policy.max_step == 0 {
        return Err(invalid("autoscale.max_step", "must be at least 1".into()));
    }
    let window = duration("autoscale.window", raw.window.as_deref(), 60)?;
    let interval = duration("autoscale.interval", raw.interval.as_deref(), 15)?;
    if interval.is_zero() || window < interval.saturating_mul(2) {
        return Err(invalid(
            "autoscale.window",
            format!(
                "the window ({window:?}) must cover at least two evaluations (interval {interval:?})"
            ),
        ));
    }
    Ok(Some(AutoscaleSettings {
        policy,
        window,
        interval,
        provider,
        name_prefix,
        ready_timeout: duration("autoscale.ready_timeout", raw.ready_timeout.as_deref(), 900)?,
        drain_timeout: duration("autoscale.drain_timeout", raw.drain_timeout.as_deref(), 120)?,
    }))
}
