//! Cloud configuration the way openstacksdk finds it, so an operator's existing clouds.yaml
//! works as is (shared/reference/openstack.md section 1.5):
//!
//! - Files: `OS_CLIENT_CONFIG_FILE` first, then the current directory, the user config
//!   directory (`$XDG_CONFIG_HOME/openstack`, else `~/.config/openstack`), the site config
//!   directory (`/etc/xdg/openstack`) and `/etc/openstack`; in each `clouds.yaml`,
//!   `clouds.yml`, `clouds.json`. The first file found wins. `secure.yaml` (same places,
//!   `OS_CLIENT_SECURE_FILE` first) is deep-merged over it.
//! - The cloud: the configured name, else `OS_CLOUD`, else the `envvars` cloud built from
//!   `OS_*` variables (when `OS_AUTH_URL` is set), else the only cloud in the file.
//! - Keys: `auth {auth_url, username|user_id, password, user_domain_name|id, project_name|id,
//!   project_domain_name|id, application_credential_id|name, application_credential_secret}`,
//!   `auth_type` (`password` default, `v3applicationcredential`), `region_name`,
//!   `interface` (`endpoint_type` accepted), `verify`, `cacert`.
//!
//! Environment and search directories are injected ([`CloudSources`]) so tests use fixture
//! trees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use yaml_serde::Value;

use super::{OpenStackError, Secret};

/// How to authenticate.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthMethod {
    Password {
        user: NameOrId,
        user_domain: NameOrId,
        password: Secret,
        project: Option<NameOrId>,
        project_domain: NameOrId,
    },
    ApplicationCredential {
        /// By id, or by name with the owning user.
        credential: NameOrId,
        user: Option<(NameOrId, NameOrId)>,
        secret: Secret,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameOrId {
    Name(String),
    Id(String),
}

/// One resolved cloud.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudConfig {
    pub name: String,
    /// Where it came from (a file path, or "environment").
    pub source: String,
    pub auth_url: String,
    pub auth: AuthMethod,
    pub region_name: Option<String>,
    /// public (default), internal or admin.
    pub interface: String,
    pub verify: bool,
    pub cacert: Option<PathBuf>,
}

/// Where [`load_cloud`] looks for clouds.yaml ([`CloudSources::from_process`]), for the
/// coordinator's man page.
pub const SEARCH_ORDER: &str = "$OS_CLIENT_CONFIG_FILE when it names a file, else the first \
clouds.yaml, clouds.yml or clouds.json in: the working directory, $XDG_CONFIG_HOME/openstack, \
~/.config/openstack, the first directory of $XDG_CONFIG_DIRS (default /etc/xdg) + /openstack, \
/etc/openstack. secure.yaml ($OS_CLIENT_SECURE_FILE, else the same places) is merged over it. \
The cloud: the configured name, else $OS_CLOUD, else one made of the OS_* variables (with \
OS_AUTH_URL), else the file's only cloud.";

/// Where configuration is looked for.
#[derive(Debug, Clone)]
pub struct CloudSources {
    pub env: BTreeMap<String, String>,
    pub dirs: Vec<PathBuf>,
}

impl CloudSources {
    /// Only `file` (as `OS_CLIENT_CONFIG_FILE` names it), no search path: what a caller that
    /// knows its clouds.yaml, and the tests, use.
    pub fn file(file: &Path) -> CloudSources {
        CloudSources {
            env: [(
                "OS_CLIENT_CONFIG_FILE".to_string(),
                file.display().to_string(),
            )]
            .into(),
            dirs: vec![],
        }
    }

    /// The process environment and openstacksdk's search path on Linux.
    pub fn from_process() -> CloudSources {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let home = env.get("HOME").map(PathBuf::from);
        let mut dirs = Vec::new();
        if let Ok(cwd) = std::env::current_dir() {
            dirs.push(cwd);
        }
        if let Some(xdg) = env.get("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            dirs.push(PathBuf::from(xdg).join("openstack"));
        }
        if let Some(home) = &home {
            dirs.push(home.join(".config/openstack"));
        }
        let site = env
            .get("XDG_CONFIG_DIRS")
            .and_then(|v| v.split(':').next().map(str::to_string))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "/etc/xdg".into());
        dirs.push(PathBuf::from(site).join("openstack"));
        dirs.push(PathBuf::from("/etc/openstack"));
        dirs.dedup();
        CloudSources { env, dirs }
    }

    fn first_file(&self, explicit_var: &str, stems: &[&str]) -> Option<PathBuf> {
        if let Some(explicit) = self.env.get(explicit_var).filter(|v| !v.is_empty()) {
            let path = PathBuf::from(explicit);
            if path.is_file() {
                return Some(path);
            }
        }
        for dir in &self.dirs {
            for stem in stems {
                for ext in ["yaml", "yml", "json"] {
                    let path = dir.join(format!("{stem}.{ext}"));
                    if path.is_file() {
                        return Some(path);
                    }
                }
            }
        }
        None
    }

    fn searched(&self) -> String {
        let mut places: Vec<String> = Vec::new();
        if let Some(explicit) = self.env.get("OS_CLIENT_CONFIG_FILE") {
            places.push(explicit.clone());
        }
        places.extend(self.dirs.iter().map(|d| d.display().to_string()));
        places.join(", ")
    }
}

fn read_yaml(path: &Path) -> Result<Value, OpenStackError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| OpenStackError::Config(format!("cannot read {}: {e}", path.display())))?;
    yaml_serde::from_str(&text)
        .map_err(|e| OpenStackError::Config(format!("{} is not valid YAML: {e}", path.display())))
}

fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => deep_merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// `OS_*` variables as an `envvars` cloud (None without `OS_AUTH_URL`).
fn env_cloud(env: &BTreeMap<String, String>) -> Option<Value> {
    env.get("OS_AUTH_URL")?;
    let selectors = [
        "OS_CLOUD",
        "OS_REGION_NAME",
        "OS_CLIENT_CONFIG_FILE",
        "OS_CLIENT_SECURE_FILE",
        "OS_CLOUD_NAME",
    ];
    let auth_keys = [
        "auth_url",
        "username",
        "user_id",
        "password",
        "user_domain_name",
        "user_domain_id",
        "project_name",
        "project_id",
        "project_domain_name",
        "project_domain_id",
        "application_credential_id",
        "application_credential_name",
        "application_credential_secret",
        "tenant_name",
        "tenant_id",
    ];
    let mut cloud = yaml_serde::Mapping::new();
    let mut auth = yaml_serde::Mapping::new();
    for (key, value) in env {
        let Some(name) = key.strip_prefix("OS_") else {
            continue;
        };
        if selectors.contains(&key.as_str()) && key != "OS_REGION_NAME" {
            continue;
        }
        let name = name.to_ascii_lowercase();
        if auth_keys.contains(&name.as_str()) {
            auth.insert(Value::from(name), Value::from(value.clone()));
        } else {
            cloud.insert(Value::from(name), Value::from(value.clone()));
        }
    }
    cloud.insert(Value::from("auth"), Value::Mapping(auth));
    Some(Value::Mapping(cloud))
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn flag(value: Option<&Value>) -> Option<bool> {
    match value? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Load cloud `wanted` (or the default one) from `sources`.
pub fn load_cloud(
    sources: &CloudSources,
    wanted: Option<&str>,
) -> Result<CloudConfig, OpenStackError> {
    let wanted = wanted.map(str::to_string).or_else(|| {
        sources
            .env
            .get("OS_CLOUD")
            .filter(|v| !v.is_empty())
            .cloned()
    });
    let env_name = sources
        .env
        .get("OS_CLOUD_NAME")
        .cloned()
        .unwrap_or_else(|| "envvars".into());

    let file = sources.first_file("OS_CLIENT_CONFIG_FILE", &["clouds"]);
    let mut clouds = yaml_serde::Mapping::new();
    if let Some(path) = &file {
        let mut document = read_yaml(path)?;
        if let Some(secure) = sources.first_file("OS_CLIENT_SECURE_FILE", &["secure"]) {
            deep_merge(&mut document, read_yaml(&secure)?);
        }
        match document.get("clouds") {
            Some(Value::Mapping(map)) => clouds = map.clone(),
            _ => {
                return Err(OpenStackError::Config(format!(
                    "{} has no `clouds:` mapping",
                    path.display()
                )))
            }
        }
    }
    let mut env_cloud_added = false;
    if let Some(env) = env_cloud(&sources.env) {
        if !clouds.contains_key(env_name.as_str()) {
            clouds.insert(Value::from(env_name.clone()), env);
            env_cloud_added = true;
        }
    }
    let source_of = |name: &str| {
        if env_cloud_added && name == env_name {
            "environment (OS_* variables)".to_string()
        } else {
            file.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "environment".into())
        }
    };
    if clouds.is_empty() {
        return Err(OpenStackError::Config(format!(
            "no clouds.yaml found and no OS_AUTH_URL set (searched: {})",
            sources.searched()
        )));
    }
    let names: Vec<String> = clouds
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    let name = match wanted {
        Some(name) => name,
        None if names.contains(&env_name) => env_name.clone(),
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(OpenStackError::Config(format!(
                "several clouds in {} ({}): name one (balancer.octavia.cloud or OS_CLOUD)",
                source_of(""),
                names.join(", ")
            )))
        }
    };
    let Some(cloud) = clouds.get(name.as_str()) else {
        return Err(OpenStackError::Config(format!(
            "cloud {name:?} not found in {} (clouds there: {})",
            file.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| format!("any clouds.yaml (searched: {})", sources.searched())),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    };
    resolve_cloud(&name, &source_of(&name), cloud, &sources.env)
}

fn resolve_cloud(
    name: &str,
    source: &str,
    cloud: &Value,
    env: &BTreeMap<String, String>,
) -> Result<CloudConfig, OpenStackError> {
    let bad =
        |message: String| OpenStackError::Config(format!("cloud {name:?} in {source}: {message}"));
    let auth = cloud.get("auth").cloned().unwrap_or(Value::Null);
    let get = |key: &str| text(auth.get(key));
    let auth_url = get("auth_url").ok_or_else(|| bad("auth.auth_url is missing".into()))?;
    let auth_type = text(cloud.get("auth_type"))
        .or_else(|| text(cloud.get("auth_type".to_uppercase().as_str())))
        .unwrap_or_else(|| {
            if get("application_credential_secret").is_some() {
                "v3applicationcredential".into()
            } else {
                "password".into()
            }
        });
    let domain = |name_key: &str, id_key: &str| match (get(id_key), get(name_key)) {
        (Some(id), _) => NameOrId::Id(id),
        (None, Some(name)) => NameOrId::Name(name),
        (None, None) => match (get("domain_id"), get("domain_name")) {
            (Some(id), _) => NameOrId::Id(id),
            (None, Some(name)) => NameOrId::Name(name),
            (None, None) => NameOrId::Id("default".into()),
        },
    };
    let method = match auth_type.as_str() {
        "password" | "v3password" => {
            let user = match (get("user_id"), get("username")) {
                (Some(id), _) => NameOrId::Id(id),
                (None, Some(name)) => NameOrId::Name(name),
                _ => return Err(bad("auth.username (or auth.user_id) is missing".into())),
            };
            let password = get("password").ok_or_else(|| bad("auth.password is missing".into()))?;
            let project = match (
                get("project_id").or_else(|| get("tenant_id")),
                get("project_name").or_else(|| get("tenant_name")),
            ) {
                (Some(id), _) => Some(NameOrId::Id(id)),
                (None, Some(name)) => Some(NameOrId::Name(name)),
                _ => None,
            };
            AuthMethod::Password {
                user,
                user_domain: domain("user_domain_name", "user_domain_id"),
                password: Secret::new(password),
                project,
                project_domain: domain("project_domain_name", "project_domain_id"),
            }
        }
        "v3applicationcredential" | "applicationcredential" => {
            let secret = get("application_credential_secret")
                .ok_or_else(|| bad("auth.application_credential_secret is missing".into()))?;
            let (credential, user) = match (
                get("application_credential_id"),
                get("application_credential_name"),
            ) {
                (Some(id), _) => (NameOrId::Id(id), None),
                (None, Some(cred_name)) => {
                    let user = match (get("user_id"), get("username")) {
                        (Some(id), _) => NameOrId::Id(id),
                        (None, Some(user_name)) => NameOrId::Name(user_name),
                        _ => {
                            return Err(bad(
                                "an application credential given by name needs auth.username or auth.user_id".into(),
                            ))
                        }
                    };
                    (
                        NameOrId::Name(cred_name),
                        Some((user, domain("user_domain_name", "user_domain_id"))),
                    )
                }
                _ => {
                    return Err(bad(
                        "auth.application_credential_id (or _name) is missing".into()
                    ))
                }
            };
            AuthMethod::ApplicationCredential {
                credential,
                user,
                secret: Secret::new(secret),
            }
        }
        other => {
            return Err(bad(format!(
                "auth_type {other:?} is not supported (password, v3applicationcredential)"
            )))
        }
    };
    let interface = text(cloud.get("interface"))
        .or_else(|| text(cloud.get("endpoint_type")))
        .unwrap_or_else(|| "public".into());
    let interface = interface.trim_end_matches("URL").to_ascii_lowercase();
    if !["public", "internal", "admin"].contains(&interface.as_str()) {
        return Err(bad(format!(
            "interface {interface:?} is not public, internal or admin"
        )));
    }
    let verify = flag(cloud.get("verify"))
        .or_else(|| flag(cloud.get("insecure")).map(|insecure| !insecure))
        .unwrap_or(true);
    let region_name = text(cloud.get("region_name"))
        .or_else(|| env.get("OS_REGION_NAME").filter(|v| !v.is_empty()).cloned());
    Ok(CloudConfig {
        name: name.to_string(),
        source: source.to_string(),
        auth_url,
        auth: method,
        region_name,
        interface,
        verify,
        cacert: if verify {
            text(cloud.get("cacert")).map(PathBuf::from)
        } else {
            None
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(dir: &Path, env: &[(&str, &str)]) -> CloudSources {
        CloudSources {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dirs: vec![dir.join("cwd"), dir.join("user"), dir.join("etc")],
        }
    }

    const CLOUDS: &str = "clouds:
  prod:
    auth:
      auth_url: https://keystone.example/v3
      username: triad
      password: s3cret-pw
      project_name: web
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionTwo
    interface: internal
  appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.example/v3
      application_credential_id: abc
      application_credential_secret: appsecret
";

    #[test]
    fn the_first_file_in_search_order_wins_and_secure_yaml_merges() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("user")).unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("user/clouds.yaml"),
            CLOUDS.replace("s3cret-pw", ""),
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/clouds.yaml"), "clouds: {other: {}}").unwrap();
        std::fs::write(
            dir.path().join("user/secure.yaml"),
            "clouds:\n  prod:\n    auth:\n      password: from-secure\n",
        )
        .unwrap();
        let cloud = load_cloud(&sources(dir.path(), &[]), Some("prod")).unwrap();
        assert_eq!(cloud.interface, "internal");
        assert_eq!(cloud.region_name.as_deref(), Some("RegionTwo"));
        match &cloud.auth {
            AuthMethod::Password { password, user, .. } => {
                assert_eq!(password.expose(), "from-secure");
                assert_eq!(user, &NameOrId::Name("triad".into()));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            !format!("{cloud:?}").contains("from-secure"),
            "Debug redacts"
        );
    }

    #[test]
    fn os_cloud_and_os_client_config_file_select() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("elsewhere.yaml");
        std::fs::write(&file, CLOUDS).unwrap();
        let env = [
            ("OS_CLIENT_CONFIG_FILE", file.to_str().unwrap()),
            ("OS_CLOUD", "appcred"),
        ];
        let cloud = load_cloud(&sources(dir.path(), &env), None).unwrap();
        assert_eq!(cloud.name, "appcred");
        assert!(matches!(
            cloud.auth,
            AuthMethod::ApplicationCredential { .. }
        ));
        assert_eq!(cloud.interface, "public");
    }

    #[test]
    fn os_variables_form_the_envvars_cloud() {
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("OS_AUTH_URL", "http://k/v3"),
            ("OS_USERNAME", "u"),
            ("OS_PASSWORD", "p"),
            ("OS_PROJECT_NAME", "proj"),
            ("OS_REGION_NAME", "R1"),
        ];
        let cloud = load_cloud(&sources(dir.path(), &env), None).unwrap();
        assert_eq!(cloud.name, "envvars");
        assert_eq!(cloud.region_name.as_deref(), Some("R1"));
        assert_eq!(cloud.auth_url, "http://k/v3");
    }

    #[test]
    fn missing_file_and_wrong_cloud_name_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let error = load_cloud(&sources(dir.path(), &[]), Some("prod"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("no clouds.yaml found"), "{error}");
        assert!(error.contains("cwd"), "names the searched places: {error}");
        std::fs::create_dir_all(dir.path().join("cwd")).unwrap();
        std::fs::write(dir.path().join("cwd/clouds.yml"), CLOUDS).unwrap();
        let error = load_cloud(&sources(dir.path(), &[]), Some("staging"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"staging\" not found"), "{error}");
        assert!(
            error.contains("appcred, prod") || error.contains("prod, appcred"),
            "{error}"
        );
        assert!(!error.contains("s3cret"), "{error}");
        let error = load_cloud(&sources(dir.path(), &[]), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("several clouds"), "{error}");
    }
}
