//! The OpenStack Nova provider: a web node is a server booted from the configured image,
//! flavor and networks, in a soft-anti-affinity server group (created when missing), with
//! Triad's tags and the cloud-init user data that installs and configures its agent.
//!
//! Safety: a server is ours only when it carries every one of our tags; the tags are
//! checked on what Nova returns (its filters are hints: an old microversion ignores them
//! and the name filter is a regular expression), so a server of the same name that is not
//! ours is never deleted. `launch` never waits for a whole boot: it creates the server
//! once, then reports BUILD as pending on each round; a server in ERROR, or BUILD for
//! longer than `boot_timeout`, is deleted and the launch reported failed (the scaler
//! tries again, bounded by its ready timeout).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::cloud_init::{self, Install, WebNode};
use super::provider::{Launch, Provider, ProviderError};
use crate::openstack::nova::{Nova, Server};
use crate::openstack::OpenStackError;

/// `[autoscale.nova]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NovaSettings {
    /// clouds.yaml entry (else OS_CLOUD / OS_* / the only cloud).
    pub cloud: Option<String>,
    /// Image id.
    pub image: String,
    /// Flavor name or id.
    pub flavor: String,
    /// Neutron networks, names or ids (at least one).
    pub networks: Vec<String>,
    pub key_name: Option<String>,
    pub security_groups: Vec<String>,
    pub availability_zone: Option<String>,
    /// Server group name; created with policy soft-anti-affinity when missing.
    pub server_group: String,
    /// A server still BUILD after this is deleted.
    pub boot_timeout: Duration,
    /// Every server we create carries these; only servers with all of them are ours.
    pub tags: Vec<String>,
    /// The cloud-init template (the shipped one unless `user_data` names another).
    pub template: String,
    /// What every new node's agent is told (its name is filled in per launch).
    pub cluster: String,
    pub seeds: Vec<String>,
    pub volume: Option<String>,
    pub extra_agent_toml: String,
    pub install: Install,
    /// With mutual TLS: the directory of the cluster CA (ca.pem, ca.key) that signs each
    /// new node's certificate, delivered in its user data.
    pub pki_dir: Option<std::path::PathBuf>,
}

impl NovaSettings {
    /// The node's TLS files: a certificate issued now by the cluster CA (its name is
    /// the node id, which the coordinator checks when it dials the agent; no address,
    /// which DHCP picks later).
    fn node_tls(&self, node: &str) -> Result<Option<cloud_init::NodeTls>, String> {
        let Some(dir) = &self.pki_dir else {
            return Ok(None);
        };
        let (cert, key) = triad_daemon::pki::issue_pem(
            dir,
            &triad_daemon::pki::IssueRequest {
                name: node.to_string(),
                role: triad_daemon::tls::PeerRole::Node,
                ips: vec![],
                dns: vec![],
                days: 365,
                force: true,
            },
        )
        .map_err(|e| format!("cannot issue {node}'s certificate: {e}"))?;
        let ca_path = dir.join(triad_daemon::pki::CA_CERT);
        let ca =
            std::fs::read_to_string(&ca_path).map_err(|e| format!("{}: {e}", ca_path.display()))?;
        Ok(Some(cloud_init::NodeTls { ca, cert, key }))
    }

    /// The user data for `node`, rendered and base64-encoded.
    pub fn user_data(&self, node: &str) -> Result<String, String> {
        let tls = self.node_tls(node)?;
        let text = cloud_init::render(
            &self.template,
            &WebNode {
                node: node.to_string(),
                cluster: self.cluster.clone(),
                seeds: self.seeds.clone(),
                volume: self.volume.clone(),
                extra_agent_toml: self.extra_agent_toml.clone(),
                install: self.install.clone(),
                tls,
            },
        )?;
        Ok(base64::engine::general_purpose::STANDARD.encode(text))
    }
}

/// What is looked up once and kept.
#[derive(Debug, Clone)]
struct Resolved {
    flavor_id: String,
    network_ids: Vec<String>,
    group_id: String,
}

pub struct NovaProvider {
    nova: Nova,
    settings: NovaSettings,
    resolved: Mutex<Option<Resolved>>,
    /// Server id → when this coordinator first saw it BUILD.
    building: Mutex<BTreeMap<String, Instant>>,
    /// Name → the id of the server this process created for it: a list that does not
    /// show it yet (an eventually consistent API, a filter the cloud ignores) must not
    /// lead to a second create.
    created: Mutex<BTreeMap<String, String>>,
}

fn failed(what: String) -> impl Fn(OpenStackError) -> ProviderError {
    move |error| ProviderError {
        what: what.clone(),
        detail: error.to_string(),
    }
}

impl NovaProvider {
    pub fn new(nova: Nova, settings: NovaSettings) -> NovaProvider {
        NovaProvider {
            nova,
            settings,
            resolved: Mutex::new(None),
            building: Mutex::new(BTreeMap::new()),
            created: Mutex::new(BTreeMap::new()),
        }
    }

    /// The flavor, networks and server group (created when missing), looked up once.
    async fn resolve(&self) -> Result<Resolved, ProviderError> {
        let mut cached = self.resolved.lock().await;
        if let Some(resolved) = cached.as_ref() {
            return Ok(resolved.clone());
        }
        let s = &self.settings;
        let config_error = |key: &str, detail: String| ProviderError {
            what: format!("[autoscale.nova] {key}"),
            detail,
        };
        let flavors = self
            .nova
            .flavors()
            .await
            .map_err(failed("nova: list flavors".into()))?;
        let flavor_id = flavors
            .iter()
            .find(|f| f.id == s.flavor || f.name == s.flavor)
            .map(|f| f.id.clone())
            .ok_or_else(|| {
                let names: Vec<&str> = flavors.iter().map(|f| f.name.as_str()).collect();
                config_error(
                    "flavor",
                    format!("{:?}: no such flavor (the cloud has {names:?})", s.flavor),
                )
            })?;
        let mut network_ids = Vec::new();
        for network in &s.networks {
            let found = self
                .nova
                .networks(network)
                .await
                .map_err(failed(format!("neutron: find network {network:?}")))?;
            match found.as_slice() {
                [one] => network_ids.push(one.id.clone()),
                [] => {
                    return Err(config_error(
                        "networks",
                        format!("{network:?}: no such network"),
                    ))
                }
                many => {
                    let ids: Vec<&str> = many.iter().map(|n| n.id.as_str()).collect();
                    return Err(config_error(
                        "networks",
                        format!("{network:?} names several networks {ids:?}: give its id"),
                    ));
                }
            }
        }
        let groups = self
            .nova
            .server_groups()
            .await
            .map_err(failed("nova: list server groups".into()))?;
        let group_id = match groups.iter().find(|g| g.name == s.server_group) {
            Some(group) => {
                if !group.policy().is_some_and(|p| p.ends_with("anti-affinity")) {
                    tracing::warn!(group = %group.name, policy = ?group.policy(), "server group is not anti-affinity: autoscaled nodes may share a hypervisor");
                }
                group.id.clone()
            }
            None => {
                let group = self
                    .nova
                    .create_server_group(&s.server_group, "soft-anti-affinity")
                    .await
                    .map_err(failed(format!(
                        "nova: create server group {:?}",
                        s.server_group
                    )))?;
                tracing::info!(group = %group.name, id = %group.id, "created the soft-anti-affinity server group");
                group.id
            }
        };
        let resolved = Resolved {
            flavor_id,
            network_ids,
            group_id,
        };
        *cached = Some(resolved.clone());
        Ok(resolved)
    }

    /// Our servers named `name` (all, when None), except those already being deleted
    /// (a name is reused only once its old server is going away).
    async fn ours(&self, name: Option<&str>) -> Result<Vec<Server>, ProviderError> {
        let servers = self
            .nova
            .find_servers(name, &self.settings.tags)
            .await
            .map_err(failed(format!(
                "nova: find server {}",
                name.unwrap_or("(all of ours)")
            )))?;
        Ok(servers
            .into_iter()
            .filter(|s| {
                s.task_state.as_deref() != Some("deleting")
                    && !matches!(s.status.as_str(), "DELETED" | "SOFT_DELETED")
            })
            .collect())
    }

    async fn create(&self, name: &str, role: &str) -> Result<String, ProviderError> {
        let s = &self.settings;
        let resolved = self.resolve().await?;
        let user_data = s.user_data(name).map_err(|detail| ProviderError {
            what: "[autoscale.nova] user_data".into(),
            detail,
        })?;
        let mut body = json!({
            "name": name,
            "imageRef": s.image,
            "flavorRef": resolved.flavor_id,
            "networks": resolved.network_ids.iter().map(|id| json!({"uuid": id})).collect::<Vec<_>>(),
            "user_data": user_data,
            "tags": s.tags,
            "metadata": {"triad-node": name, "triad-role": role, "triad-cluster": s.cluster},
        });
        if let Some(key) = &s.key_name {
            body["key_name"] = json!(key);
        }
        if !s.security_groups.is_empty() {
            body["security_groups"] = Value::Array(
                s.security_groups
                    .iter()
                    .map(|g| json!({ "name": g }))
                    .collect(),
            );
        }
        if let Some(zone) = &s.availability_zone {
            body["availability_zone"] = json!(zone);
        }
        self.nova
            .create_server(body, Some(json!({ "group": resolved.group_id })))
            .await
            .map_err(failed(format!("nova: create server {name}")))
    }

    async fn delete_server(&self, server: &Server, why: &str) -> Result<(), ProviderError> {
        tracing::warn!(server = %server.name, id = %server.id, "deleting server {}: {why}", server.name);
        self.building.lock().await.remove(&server.id);
        self.created.lock().await.retain(|_, id| *id != server.id);
        self.nova
            .delete_server(&server.id)
            .await
            .map_err(failed(format!(
                "nova: delete server {} ({})",
                server.name, server.id
            )))
    }
}

#[async_trait::async_trait]
impl Provider for NovaProvider {
    fn kind(&self) -> &'static str {
        "nova"
    }

    async fn launch(&self, name: &str, role: &str) -> Result<Launch, ProviderError> {
        let mut servers = self.ours(Some(name)).await?;
        let remembered = self.created.lock().await.get(name).cloned();
        if let (true, Some(id)) = (servers.is_empty(), remembered) {
            match self.nova.server(&id).await {
                Ok(server) if self.settings.tags.iter().all(|t| server.tags.contains(t)) => {
                    servers.push(server)
                }
                Ok(_) => {}
                Err(error) if error.status() == Some(404) => {}
                Err(error) => return Err(failed(format!("nova: get server {name} ({id})"))(error)),
            }
        }
        if servers.is_empty() {
            let id = self.create(name, role).await?;
            self.created
                .lock()
                .await
                .insert(name.to_string(), id.clone());
            self.building
                .lock()
                .await
                .insert(id.clone(), Instant::now());
            return Ok(Launch::Pending(format!("server {id} created")));
        }
        // One server per name: an earlier create whose answer was lost may have made two.
        servers.sort_by_key(|s| (s.status != "ACTIVE", s.created.clone()));
        for extra in &servers[1..] {
            self.delete_server(extra, "a second server of the same name")
                .await?;
        }
        let server = &servers[0];
        let error = |detail: String| ProviderError {
            what: format!("nova: launch {name}"),
            detail,
        };
        match server.status.as_str() {
            "ACTIVE" => {
                self.building.lock().await.remove(&server.id);
                Ok(Launch::Done)
            }
            "ERROR" => {
                let fault = server
                    .fault
                    .as_ref()
                    .map(|f| f.message.clone())
                    .unwrap_or_else(|| "no fault given".into());
                self.delete_server(server, "it is in ERROR").await?;
                Err(error(format!(
                    "server {} went to ERROR ({fault}); deleted, launching again",
                    server.id
                )))
            }
            "BUILD" => {
                let since = *self
                    .building
                    .lock()
                    .await
                    .entry(server.id.clone())
                    .or_insert_with(Instant::now);
                let waited = since.elapsed();
                if waited > self.settings.boot_timeout {
                    self.delete_server(server, "it did not become ACTIVE in time")
                        .await?;
                    return Err(error(format!(
                        "server {} still BUILD after {:?} (boot_timeout); deleted, launching again",
                        server.id, self.settings.boot_timeout
                    )));
                }
                Ok(Launch::Pending(format!(
                    "server {} BUILD{} {:.0}s",
                    server.id,
                    server
                        .task_state
                        .as_deref()
                        .map(|t| format!(" ({t})"))
                        .unwrap_or_default(),
                    waited.as_secs_f64()
                )))
            }
            other => Err(error(format!(
                "server {} is {other}, not ACTIVE; an operator should look at it",
                server.id
            ))),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), ProviderError> {
        for server in self.ours(Some(name)).await? {
            self.delete_server(&server, "scale-in").await?;
        }
        Ok(())
    }

    async fn list(&self) -> Result<Option<Vec<String>>, ProviderError> {
        let servers = self.ours(None).await?;
        let mut names: Vec<String> = servers.into_iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        Ok(Some(names))
    }
}
