//! Typed Octavia v2 calls (service type `load-balancer`; paths under `/v2/lbaas`).
//! Shapes follow the api-ref (shared/reference/openstack.md section 2); unknown fields are
//! ignored so newer Octavia versions parse.

use std::sync::Arc;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::session::Session;
use super::{decode, query_escape, OpenStackError};

pub const SERVICE: &str = "load-balancer";

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LoadBalancer {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub provisioning_status: String,
    #[serde(default)]
    pub operating_status: String,
    #[serde(default)]
    pub vip_address: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Listener {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub protocol: String,
    pub protocol_port: u16,
    #[serde(default)]
    pub default_pool_id: Option<String>,
    #[serde(default)]
    pub provisioning_status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPersistence {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Pool {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub lb_algorithm: String,
    pub protocol: String,
    #[serde(default)]
    pub session_persistence: Option<SessionPersistence>,
    #[serde(default)]
    pub healthmonitor_id: Option<String>,
    #[serde(default)]
    pub provisioning_status: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HealthMonitor {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub delay: u32,
    pub timeout: u32,
    pub max_retries: u32,
    #[serde(default)]
    pub provisioning_status: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Member {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub address: String,
    pub protocol_port: u16,
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default = "default_true")]
    pub admin_state_up: bool,
    #[serde(default)]
    pub provisioning_status: String,
    #[serde(default)]
    pub operating_status: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

fn default_weight() -> u32 {
    1
}

fn default_true() -> bool {
    true
}

/// One member in a batch update (matched by Octavia on address + protocol_port).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MemberSpec {
    pub address: String,
    pub protocol_port: u16,
    pub name: String,
    pub weight: u32,
    pub admin_state_up: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    pub tags: Vec<String>,
}

/// The Octavia API through an authenticated [`Session`].
#[derive(Debug, Clone)]
pub struct Octavia {
    session: Arc<Session>,
}

impl Octavia {
    pub fn new(session: Arc<Session>) -> Octavia {
        Octavia { session }
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, key: &str) -> Result<T, OpenStackError> {
        let value = self
            .session
            .request(Method::GET, SERVICE, path, None)
            .await?;
        decode(value, key, &Method::GET, path)
    }

    async fn create<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        body: Value,
    ) -> Result<T, OpenStackError> {
        let value = self
            .session
            .request(Method::POST, SERVICE, path, Some(&json!({ key: body })))
            .await?;
        decode(value, key, &Method::POST, path)
    }

    async fn find_by_name<T: DeserializeOwned>(
        &self,
        collection: &str,
        key: &str,
        name: &str,
    ) -> Result<Option<T>, OpenStackError> {
        let path = format!("/v2/lbaas/{collection}?name={}", query_escape(name));
        let found: Vec<Value> = self.get(&path, key).await?;
        // every object must decode (a malformed answer is a decode error, whatever its size)
        let mut objects: Vec<T> = decode(
            Value::Object(
                [(key.to_string(), Value::Array(found.clone()))]
                    .into_iter()
                    .collect(),
            ),
            key,
            &Method::GET,
            &path,
        )?;
        match objects.len() {
            0 => Ok(None),
            1 => Ok(objects.pop()),
            count => Err(OpenStackError::Ambiguous {
                url: path,
                collection: collection.to_string(),
                name: name.to_string(),
                count,
                ids: found
                    .iter()
                    .map(|o| o["id"].as_str().unwrap_or("?").to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    pub async fn load_balancer(&self, id: &str) -> Result<LoadBalancer, OpenStackError> {
        self.get(&format!("/v2/lbaas/loadbalancers/{id}"), "loadbalancer")
            .await
    }

    pub async fn find_load_balancer(
        &self,
        name: &str,
    ) -> Result<Option<LoadBalancer>, OpenStackError> {
        self.find_by_name("loadbalancers", "loadbalancers", name)
            .await
    }

    pub async fn list_load_balancers(&self) -> Result<Vec<LoadBalancer>, OpenStackError> {
        self.get("/v2/lbaas/loadbalancers", "loadbalancers").await
    }

    pub async fn create_load_balancer(&self, body: Value) -> Result<LoadBalancer, OpenStackError> {
        self.create("/v2/lbaas/loadbalancers", "loadbalancer", body)
            .await
    }

    pub async fn find_listener(&self, name: &str) -> Result<Option<Listener>, OpenStackError> {
        self.find_by_name("listeners", "listeners", name).await
    }

    pub async fn create_listener(&self, body: Value) -> Result<Listener, OpenStackError> {
        self.create("/v2/lbaas/listeners", "listener", body).await
    }

    pub async fn find_pool(&self, name: &str) -> Result<Option<Pool>, OpenStackError> {
        self.find_by_name("pools", "pools", name).await
    }

    pub async fn pool(&self, id: &str) -> Result<Pool, OpenStackError> {
        self.get(&format!("/v2/lbaas/pools/{id}"), "pool").await
    }

    pub async fn create_pool(&self, body: Value) -> Result<Pool, OpenStackError> {
        self.create("/v2/lbaas/pools", "pool", body).await
    }

    pub async fn find_health_monitor(
        &self,
        name: &str,
    ) -> Result<Option<HealthMonitor>, OpenStackError> {
        self.find_by_name("healthmonitors", "healthmonitors", name)
            .await
    }

    pub async fn create_health_monitor(
        &self,
        body: Value,
    ) -> Result<HealthMonitor, OpenStackError> {
        self.create("/v2/lbaas/healthmonitors", "healthmonitor", body)
            .await
    }

    pub async fn members(&self, pool_id: &str) -> Result<Vec<Member>, OpenStackError> {
        self.get(&format!("/v2/lbaas/pools/{pool_id}/members"), "members")
            .await
    }

    /// `PUT /v2/lbaas/pools/{id}/members`: the pool's members become exactly `members`
    /// (202, no body). The LB goes PENDING_UPDATE; wait for ACTIVE afterwards.
    pub async fn replace_members(
        &self,
        pool_id: &str,
        members: &[MemberSpec],
    ) -> Result<(), OpenStackError> {
        let path = format!("/v2/lbaas/pools/{pool_id}/members");
        self.session
            .request(
                Method::PUT,
                SERVICE,
                &path,
                Some(&json!({ "members": members })),
            )
            .await
            .map(|_| ())
    }
}
