//! Typed Octavia v2 calls (service type `load-balancer`; paths under `/v2/lbaas`).
//! Shapes follow the api-ref (shared/reference/openstack.md section 2); unknown fields are
//! ignored so newer Octavia versions parse. Lists follow the `*_links` pages (at most
//! `[api_settings] pagination_max_limit`, 1000 by default, a page).

use std::sync::Arc;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::session::Session;
use super::{decode, OpenStackError};

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
    /// HTTP and HTTPS monitors only (null for the others).
    #[serde(default)]
    pub url_path: Option<String>,
    #[serde(default)]
    pub expected_codes: Option<String>,
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

/// An L7 rule (`GET /v2/lbaas/l7policies/{id}/rules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct L7Rule {
    #[serde(rename = "type")]
    pub kind: String,
    pub compare_type: String,
    #[serde(default)]
    pub key: Option<String>,
    pub value: String,
    #[serde(default)]
    pub invert: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct L7Policy {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub listener_id: String,
    pub action: String,
    pub position: u32,
    #[serde(default)]
    pub redirect_pool_id: Option<String>,
    #[serde(default)]
    pub provisioning_status: String,
}

/// Objects found by name.
trait Named {
    fn name(&self) -> &str;
}

macro_rules! named {
    ($($kind:ty),*) => {
        $(impl Named for $kind {
            fn name(&self) -> &str {
                &self.name
            }
        })*
    };
}

named!(LoadBalancer, Listener, Pool, HealthMonitor, L7Policy);

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

    /// Every page of `/v2/lbaas/{collection}` with `query`, decoded (a malformed object
    /// is a decode error, whatever the list's size).
    async fn list<T: DeserializeOwned>(
        &self,
        collection: &str,
        key: &str,
        query: &[(String, String)],
    ) -> Result<Vec<(String, T)>, OpenStackError> {
        let path = format!("/v2/lbaas/{collection}");
        let found = self.session.list(SERVICE, &path, query, key, &[]).await?;
        let ids: Vec<String> = found
            .iter()
            .map(|o| o["id"].as_str().unwrap_or("?").to_string())
            .collect();
        let objects: Vec<T> = decode(
            json!({ key: found }),
            key,
            &Method::GET,
            &format!("{path} (all pages)"),
        )?;
        Ok(ids.into_iter().zip(objects).collect())
    }

    /// The one object named exactly `name` (checked here too: Octavia's next links drop
    /// the filter, and a proxy may ignore it).
    async fn find_by_name<T: DeserializeOwned + Named>(
        &self,
        collection: &str,
        key: &str,
        name: &str,
    ) -> Result<Option<T>, OpenStackError> {
        let query = [("name".to_string(), name.to_string())];
        let mut objects: Vec<(String, T)> = self.list(collection, key, &query).await?;
        objects.retain(|(_, o)| o.name() == name);
        match objects.len() {
            0 => Ok(None),
            1 => Ok(objects.pop().map(|(_, o)| o)),
            count => Err(OpenStackError::Ambiguous {
                url: format!("/v2/lbaas/{collection}?name={name}"),
                collection: collection.to_string(),
                name: name.to_string(),
                count,
                ids: objects
                    .iter()
                    .map(|(id, _)| id.as_str())
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
        let all = self.list("loadbalancers", "loadbalancers", &[]).await?;
        Ok(all.into_iter().map(|(_, lb)| lb).collect())
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

    pub async fn health_monitor(&self, id: &str) -> Result<HealthMonitor, OpenStackError> {
        self.get(&format!("/v2/lbaas/healthmonitors/{id}"), "healthmonitor")
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
        let all = self
            .list(&format!("pools/{pool_id}/members"), "members", &[])
            .await?;
        Ok(all.into_iter().map(|(_, member)| member).collect())
    }

    pub async fn find_l7policy(&self, name: &str) -> Result<Option<L7Policy>, OpenStackError> {
        self.find_by_name("l7policies", "l7policies", name).await
    }

    /// `POST /v2/lbaas/l7policies`, its rules inline (the LB goes PENDING_UPDATE).
    pub async fn create_l7policy(&self, body: Value) -> Result<L7Policy, OpenStackError> {
        self.create("/v2/lbaas/l7policies", "l7policy", body).await
    }

    /// `DELETE /v2/lbaas/l7policies/{id}` (204; its rules go with it).
    pub async fn delete_l7policy(&self, id: &str) -> Result<(), OpenStackError> {
        let path = format!("/v2/lbaas/l7policies/{id}");
        self.session
            .request(Method::DELETE, SERVICE, &path, None)
            .await
            .map(|_| ())
    }

    pub async fn l7rules(&self, policy_id: &str) -> Result<Vec<L7Rule>, OpenStackError> {
        let all = self
            .list(&format!("l7policies/{policy_id}/rules"), "rules", &[])
            .await?;
        Ok(all.into_iter().map(|(_, rule)| rule).collect())
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
