//! The cloud-init user data of a web node the Nova provider launches, rendered from
//! packaging/cloud-init/web-node.yaml (embedded; `[autoscale.nova] user_data` names a
//! replacement). Placeholders are replaced by JSON values, which are YAML, so no input
//! can add or change a key; the result is checked to parse as a YAML mapping, to hold no
//! placeholder, and to fit Nova's 65535-byte limit once base64-encoded.

use serde_json::{json, Value};

/// The shipped template.
pub const TEMPLATE: &str = include_str!("../../../packaging/cloud-init/web-node.yaml");

/// Nova refuses user data longer than this (base64 text).
pub const MAX_USER_DATA: usize = 65535;

/// The PHP modules ownCloud and common PHP apps need, installed with the agent (which
/// recommends the same; an image may not install recommends).
pub const PHP_MODULES: &[&str] = &[
    "php-mysql",
    "php-gd",
    "php-xml",
    "php-mbstring",
    "php-intl",
    "php-zip",
    "php-curl",
    "php-apcu",
];

/// The database endpoint's router (the agent's `dbrouter`), also in the agent's Recommends.
pub const ENDPOINT_PACKAGES: &[&str] = &["haproxy"];

/// Where the new node gets the triad-agent package from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Install {
    /// An apt source line ("deb [signed-by=...] http://repo.example/ bookworm main") and,
    /// optionally, the ASCII-armored key that signs it.
    Apt { source: String, key: Option<String> },
    /// A URL of the .deb (downloaded with curl, installed with apt-get so its
    /// dependencies come from the image's own sources).
    Url(String),
}

/// What the web node's agent is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebNode {
    pub node: String,
    pub cluster: String,
    pub seeds: Vec<String>,
    /// The Gluster volume the docroot mounts (None: no shared docroot).
    pub volume: Option<String>,
    /// More agent configuration (TOML), appended as written.
    pub extra_agent_toml: String,
    pub install: Install,
    /// Mutual TLS: the files the node's agent needs (None: the cluster runs plaintext).
    pub tls: Option<NodeTls>,
}

/// A node's TLS files, as PEM text: the cluster CA, its certificate, its key.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeTls {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeTls { key: <redacted> }")
    }
}

/// Where a node keeps its TLS files (the agent's `[tls]` points there).
pub const NODE_PKI: &str = "/etc/triad/pki";

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// /etc/triad/agent.toml of the new node: a web node (joins Galera by SST, mounts the
/// volume as a client, serves), its address found from the route to the seeds.
pub fn agent_toml(web: &WebNode) -> String {
    let seeds: Vec<String> = web.seeds.iter().map(|s| toml_string(s)).collect();
    let mut text = format!(
        "# /etc/triad/agent.toml of {node}: written by cloud-init from the user data\n\
         # triad-coordinator gave this server when it launched it.\n\
         [node]\nid = {id}\nrole = \"web\"\naddress = \"auto\"\n\n\
         [cluster]\nname = {cluster}\nseeds = [{seeds}]\n\n\
         [galera]\n# stateless: no mysqld (no state transfer, no Galera vote); the app reaches the\n\
         # database through this node's endpoint, 127.0.0.1:3307\nmanaged = false\n\n",
        node = web.node,
        id = toml_string(&web.node),
        cluster = toml_string(&web.cluster),
        seeds = seeds.join(", "),
    );
    match &web.volume {
        Some(volume) => text.push_str(&format!(
            "[gluster]\n# no glusterd, no brick: the docroot mounts the volume from the core nodes\n\
             managed = false\nvolume = {}\n\n\
             [readiness]\nrequire = [\"mount\", \"apache\"]\n",
            toml_string(volume)
        )),
        None => text.push_str(
            "[gluster]\nmanaged = false\n\n[mount]\nmanaged = false\n\n\
             [readiness]\nrequire = [\"apache\"]\n",
        ),
    }
    if web.tls.is_none() {
        text.push_str(
            "\n# the coordinator runs without [tls]: plaintext gRPC, as it asked\n[tls]\ninsecure = true\n",
        );
    } else {
        text.push_str(&format!(
            "\n# mutual TLS: the coordinator issued this node's certificate when it launched it\n\
             [tls]\nca = \"{NODE_PKI}/ca.pem\"\ncert = {cert}\nkey = {key}\n",
            cert = toml_string(&format!("{NODE_PKI}/{}.pem", web.node)),
            key = toml_string(&format!("{NODE_PKI}/{}.key", web.node)),
        ));
    }
    if !web.extra_agent_toml.trim().is_empty() {
        text.push('\n');
        text.push_str(web.extra_agent_toml.trim_end());
        text.push('\n');
    }
    text
}

/// The template's values for `web`.
fn values(web: &WebNode) -> Vec<(&'static str, Value)> {
    let (apt, packages, runcmd) = match &web.install {
        Install::Apt { source, key } => {
            let mut triad = json!({ "source": source });
            if let Some(key) = key {
                triad["key"] = json!(key);
            }
            (
                json!({ "preserve_sources_list": true, "sources": { "triad": triad } }),
                json!(["triad-agent"]),
                json!([]),
            )
        }
        // the image's own sources stay as they are (they provide the dependencies)
        Install::Url(url) => (
            json!({ "preserve_sources_list": true }),
            json!(["curl", "ca-certificates"]),
            json!([
                [
                    "curl",
                    "-fsSL",
                    "--retry",
                    "5",
                    "-o",
                    "/var/cache/triad-agent.deb",
                    url
                ],
                [
                    "apt-get",
                    "install",
                    "-y",
                    "-o",
                    "Dpkg::Options::=--force-confold",
                    "/var/cache/triad-agent.deb"
                ],
            ]),
        ),
    };
    let mut packages = packages.as_array().cloned().unwrap_or_default();
    packages.extend(PHP_MODULES.iter().map(|module| json!(module)));
    packages.extend(ENDPOINT_PACKAGES.iter().map(|package| json!(package)));
    let mut runcmd = runcmd.as_array().cloned().unwrap_or_default();
    // stateless: the agent package recommends mariadb-server (for core nodes), which apt
    // installs and starts; a web node runs no mysqld
    runcmd.push(json!([
        "sh",
        "-c",
        "systemctl disable --now mariadb.service 2>/dev/null || true"
    ]));
    runcmd.push(json!(["systemctl", "enable", "triad-agent.service"]));
    runcmd.push(json!(["systemctl", "restart", "triad-agent.service"]));
    let file = |path: String, permissions: &str, content: &str| json!({"path": path, "owner": "root:root", "permissions": permissions, "content": content});
    let mut write_files = vec![file(
        "/etc/triad/agent.toml".into(),
        "0644",
        &agent_toml(web),
    )];
    if let Some(tls) = &web.tls {
        write_files.push(file(format!("{NODE_PKI}/ca.pem"), "0644", &tls.ca));
        write_files.push(file(
            format!("{NODE_PKI}/{}.pem", web.node),
            "0644",
            &tls.cert,
        ));
        write_files.push(file(
            format!("{NODE_PKI}/{}.key", web.node),
            "0600",
            &tls.key,
        ));
    }
    vec![
        ("node", json!(web.node)),
        ("write_files", Value::Array(write_files)),
        ("apt", apt),
        ("packages", Value::Array(packages)),
        ("runcmd", Value::Array(runcmd)),
    ]
}

/// Render `template` for `web`; errors name what is wrong with the template.
pub fn render(template: &str, web: &WebNode) -> Result<String, String> {
    let values = values(web);
    // every placeholder outside comments must be one we fill
    for line in template
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
    {
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let name = after.split("}}").next().unwrap_or(after);
            if !values.iter().any(|(known, _)| *known == name) {
                return Err(format!(
                    "unknown placeholder {{{{{name}}}}} (known: node, write_files, apt, packages, runcmd)"
                ));
            }
            rest = &after[name.len().min(after.len())..];
        }
    }
    // comments keep their placeholders as written (they document them)
    let mut text = String::with_capacity(template.len() * 2);
    for line in template.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            text.push_str(line);
            continue;
        }
        let mut line = line.to_string();
        for (name, value) in &values {
            line = line.replace(&format!("{{{{{name}}}}}"), &value.to_string());
        }
        text.push_str(&line);
    }
    if !text.starts_with("#cloud-config") {
        return Err("cloud-init user data must begin with \"#cloud-config\"".into());
    }
    let parsed: yaml_serde::Value =
        yaml_serde::from_str(&text).map_err(|e| format!("not YAML once rendered: {e}"))?;
    if !parsed.is_mapping() {
        return Err("not a YAML mapping once rendered".into());
    }
    let encoded = base64_len(text.len());
    if encoded > MAX_USER_DATA {
        return Err(format!(
            "{encoded} bytes once base64-encoded; Nova accepts at most {MAX_USER_DATA}"
        ));
    }
    Ok(text)
}

fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn web(install: Install) -> WebNode {
        WebNode {
            node: "web-1".into(),
            cluster: "prod".into(),
            seeds: vec!["10.0.0.11:7420".into(), "10.0.0.12:7420".into()],
            volume: Some("www".into()),
            extra_agent_toml: "[galera]\ngcache_size = \"64M\"\n".into(),
            install,
            tls: None,
        }
    }

    #[test]
    fn the_agent_config_is_a_valid_web_node_config() {
        let mut w = web(Install::Url("http://repo.example/triad-agent.deb".into()));
        w.extra_agent_toml.clear();
        let text = agent_toml(&w);
        // the seeds are not local here; "auto" resolves through the route toward them
        let local = text.replace("10.0.0.11:7420", "127.0.0.11:7420");
        let cfg =
            triad_agent::config::AgentConfig::parse(std::path::Path::new("agent.toml"), &local)
                .unwrap_or_else(|e| panic!("{e}\n{local}"));
        assert_eq!(cfg.node_id, "web-1");
        assert_eq!(cfg.role, triad_proto::gossip::Role::Web);
        assert_eq!(cfg.cluster_name, "prod");
        // stateless: no mysqld, no brick; the volume mounted
        assert!(!cfg.galera.managed && !cfg.gluster.managed && cfg.mount.managed);
        assert!(!cfg
            .readiness
            .contains(&triad_agent::readiness::ReadinessCheck::Galera));
        assert_eq!(cfg.gluster.volume, "www");
    }

    #[test]
    fn values_cannot_add_keys() {
        let mut w = web(Install::Apt {
            source: "deb http://repo.example/ bookworm main\nruncmd: [[rm, -rf, /]]".into(),
            key: None,
        });
        w.node = "web-1\"\nbootcmd: [x]".into();
        let text = render(TEMPLATE, &w).unwrap();
        let parsed: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
        let keys: Vec<&str> = parsed
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            vec![
                "hostname",
                "write_files",
                "apt",
                "package_update",
                "packages",
                "runcmd"
            ]
        );
        assert_eq!(parsed["hostname"].as_str(), Some("web-1\"\nbootcmd: [x]"));
        // stop mariadb, enable and restart the agent: no command from the values
        assert_eq!(parsed["runcmd"].as_sequence().unwrap().len(), 3);
    }

    #[test]
    fn the_rendered_document_installs_after_writing_the_config() {
        let text = render(
            TEMPLATE,
            &web(Install::Apt {
                source: "deb [signed-by=$KEY_FILE] http://repo.example/ bookworm main".into(),
                key: Some(
                    "-----BEGIN PGP PUBLIC KEY BLOCK-----\nx\n-----END PGP PUBLIC KEY BLOCK-----\n"
                        .into(),
                ),
            }),
        )
        .unwrap();
        let parsed: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
        assert_eq!(
            parsed["write_files"][0]["path"].as_str(),
            Some("/etc/triad/agent.toml")
        );
        assert!(parsed["write_files"][0]["content"]
            .as_str()
            .unwrap()
            .contains("gcache_size = \"64M\""));
        assert_eq!(parsed["packages"][0].as_str(), Some("triad-agent"));
        let packages: Vec<&str> = parsed["packages"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|p| p.as_str())
            .collect();
        assert_eq!(&packages[1..1 + PHP_MODULES.len()], PHP_MODULES);
        assert_eq!(&packages[1 + PHP_MODULES.len()..], ENDPOINT_PACKAGES);
        assert!(parsed["apt"]["sources"]["triad"]["key"].as_str().is_some());
        let runcmd: Vec<String> = parsed["runcmd"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| yaml_serde::to_string(c).unwrap())
            .collect();
        assert!(runcmd.last().unwrap().contains("restart"), "{runcmd:?}");
    }

    /// The web node gets the PHP modules the agent package recommends, and no other.
    #[test]
    fn php_modules_are_the_agent_packages_recommends() {
        let manifest: toml::Value =
            toml::from_str(include_str!("../../../agent/Cargo.toml")).unwrap();
        let recommends = manifest["package"]["metadata"]["deb"]["recommends"]
            .as_str()
            .unwrap();
        let php: Vec<&str> = recommends
            .split(',')
            .map(str::trim)
            .filter(|p| p.starts_with("php-"))
            .collect();
        assert_eq!(php, PHP_MODULES);
        let text = render(
            TEMPLATE,
            &web(Install::Url("http://repo.example/triad-agent.deb".into())),
        )
        .unwrap();
        let parsed: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
        for module in PHP_MODULES {
            assert!(
                parsed["packages"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|p| p.as_str() == Some(module)),
                "{module} not installed: {text}"
            );
        }
    }

    #[test]
    fn template_errors_are_named() {
        let w = web(Install::Url("http://x/y.deb".into()));
        let error = render("#cloud-config\nfoo: {{nodes}}\n", &w).unwrap_err();
        assert!(error.contains("{{nodes}}"), "{error}");
        let error = render("hostname: {{node}}\n", &w).unwrap_err();
        assert!(error.contains("#cloud-config"), "{error}");
        let big = format!(
            "#cloud-config\nhostname: {{{{node}}}}\n# {}\n",
            "x".repeat(60_000)
        );
        assert!(render(&big, &w).unwrap_err().contains("65535"));
    }
}
