//! Typed Nova (compute v2.1) calls for autoscaling: servers (create with tags, scheduler
//! hint and user data; get; list by tag; delete), server groups, flavors, and the Neutron
//! network lookup a create needs.
//!
//! Every call sends microversion 2.64: server tags at create need 2.52, tag filters on
//! lists 2.26 (an older microversion *silently ignores* `?tags=`, so a list would return
//! every server of the project), and server groups take a single `policy` from 2.64.
//! Nova's `name` filter is a regular expression matched anywhere in the name, so callers
//! check the exact name (and the tags) on what comes back.
//!
//! Lists follow Nova's `*_links` pages (at most `[api] max_limit`, 1000 by default, a
//! page); server groups, which Nova pages by offset without links, are read page by page
//! until an empty one.

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::session::Session;
use super::{decode, OpenStackError};

pub const SERVICE: &str = "compute";
pub const NETWORK_SERVICE: &str = "network";
macro_rules! microversion {
    () => {
        "2.64"
    };
}
/// The microversion every call sends (see the module doc).
pub const MICROVERSION: &str = microversion!();
const MICROVERSION_HEADER: (&str, &str) = (
    "OpenStack-API-Version",
    concat!("compute ", microversion!()),
);

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Server {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub created: Option<String>,
    /// Set when the server is in ERROR (e.g. "No valid host was found.").
    #[serde(default)]
    pub fault: Option<ServerFault>,
    #[serde(default, rename = "OS-EXT-STS:task_state")]
    pub task_state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServerFault {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServerGroup {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// 2.64 and later.
    #[serde(default)]
    pub policy: Option<String>,
    /// Before 2.64.
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub members: Vec<String>,
}

impl ServerGroup {
    pub fn policy(&self) -> Option<&str> {
        self.policy
            .as_deref()
            .or_else(|| self.policies.first().map(String::as_str))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Flavor {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Network {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// The Nova API (and the Neutron network lookup) through an authenticated [`Session`].
#[derive(Debug, Clone)]
pub struct Nova {
    session: Arc<Session>,
}

/// Characters with a meaning in a regular expression, escaped for Nova's `name` filter.
fn regex_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if "\\.^$|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Nova {
    pub fn new(session: Arc<Session>) -> Nova {
        Nova { session }
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, OpenStackError> {
        self.session
            .request_with(
                method,
                SERVICE,
                path,
                &[],
                body.as_ref(),
                &[MICROVERSION_HEADER],
            )
            .await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, key: &str) -> Result<T, OpenStackError> {
        let value = self.call(Method::GET, path, None).await?;
        decode(value, key, &Method::GET, path)
    }

    /// Every page of the list at `path` (see [`Session::list`]), typed.
    async fn list<T: DeserializeOwned>(
        &self,
        service: &str,
        path: &str,
        query: &[(String, String)],
        key: &str,
    ) -> Result<Vec<T>, OpenStackError> {
        let headers: &[(&str, &str)] = if service == SERVICE {
            &[MICROVERSION_HEADER]
        } else {
            &[]
        };
        let items = self
            .session
            .list(service, path, query, key, headers)
            .await?;
        decode(
            json!({ key: items }),
            key,
            &Method::GET,
            &format!("{path} (all pages)"),
        )
    }

    /// Servers whose name is exactly `name` and that carry every tag in `tags` (checked
    /// here too: the filters are only hints to Nova).
    pub async fn find_servers(
        &self,
        name: Option<&str>,
        tags: &[String],
    ) -> Result<Vec<Server>, OpenStackError> {
        let mut query = Vec::new();
        if let Some(name) = name {
            query.push(("name".to_string(), format!("^{}$", regex_escape(name))));
        }
        if !tags.is_empty() {
            query.push(("tags".to_string(), tags.join(",")));
        }
        let servers: Vec<Server> = self
            .list(SERVICE, "/servers/detail", &query, "servers")
            .await?;
        Ok(servers
            .into_iter()
            .filter(|s| name.is_none_or(|n| s.name == n))
            .filter(|s| tags.iter().all(|t| s.tags.contains(t)))
            .collect())
    }

    pub async fn server(&self, id: &str) -> Result<Server, OpenStackError> {
        self.get(&format!("/servers/{id}"), "server").await
    }

    /// `POST /servers` with `body` as the `server` object (and `hints` as
    /// `os:scheduler_hints`); returns the new server's id (202, the server is BUILD).
    pub async fn create_server(
        &self,
        body: Value,
        hints: Option<Value>,
    ) -> Result<String, OpenStackError> {
        let mut request = json!({ "server": body });
        if let Some(hints) = hints {
            request["os:scheduler_hints"] = hints;
        }
        let path = "/servers";
        let value = self.call(Method::POST, path, Some(request)).await?;
        value["server"]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| OpenStackError::Decode {
                method: "POST".into(),
                url: path.into(),
                message: "no `server.id` in the answer".into(),
            })
    }

    /// `DELETE /servers/{id}`; a server already gone (404) is not an error.
    pub async fn delete_server(&self, id: &str) -> Result<(), OpenStackError> {
        match self
            .call(Method::DELETE, &format!("/servers/{id}"), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.status() == Some(404) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Every server group of the project: Nova answers at most `[api] max_limit` a call,
    /// without links, so pages are asked by `offset` until one is empty.
    pub async fn server_groups(&self) -> Result<Vec<ServerGroup>, OpenStackError> {
        let path = "/os-server-groups";
        let mut groups: Vec<ServerGroup> = Vec::new();
        for _ in 0..super::session::MAX_PAGES {
            let query = [("offset".to_string(), groups.len().to_string())];
            let value = self
                .session
                .request_with(
                    Method::GET,
                    SERVICE,
                    path,
                    &query,
                    None,
                    &[MICROVERSION_HEADER],
                )
                .await?;
            let page: Vec<ServerGroup> = decode(value, "server_groups", &Method::GET, path)?;
            if page.is_empty() {
                return Ok(groups);
            }
            groups.extend(page);
        }
        Err(OpenStackError::Pagination {
            url: format!("{path}?offset={}", groups.len()),
            message: format!(
                "more than {} pages; not asking further",
                super::session::MAX_PAGES
            ),
        })
    }

    pub async fn create_server_group(
        &self,
        name: &str,
        policy: &str,
    ) -> Result<ServerGroup, OpenStackError> {
        let path = "/os-server-groups";
        let value = self
            .call(
                Method::POST,
                path,
                Some(json!({"server_group": {"name": name, "policy": policy}})),
            )
            .await?;
        decode(value, "server_group", &Method::POST, path)
    }

    pub async fn flavors(&self) -> Result<Vec<Flavor>, OpenStackError> {
        self.list(SERVICE, "/flavors", &[], "flavors").await
    }

    /// Neutron networks named or identified by `name_or_id`.
    pub async fn networks(&self, name_or_id: &str) -> Result<Vec<Network>, OpenStackError> {
        let mut found = Vec::new();
        for key in ["id", "name"] {
            let query = [(key.to_string(), name_or_id.to_string())];
            let networks: Vec<Network> = self
                .list(NETWORK_SERVICE, "/v2.0/networks", &query, "networks")
                .await?;
            found.extend(networks);
            if !found.is_empty() {
                break;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_filters_are_anchored_and_escaped() {
        assert_eq!(regex_escape("web-1"), "web-1");
        assert_eq!(regex_escape("a.b(c)"), "a\\.b\\(c\\)");
    }

    #[test]
    fn servers_parse_with_unknown_fields_and_faults() {
        let server: Server = serde_json::from_value(json!({
            "id": "s1", "name": "web-1", "status": "ERROR", "tags": ["triad"],
            "fault": {"code": 500, "message": "No valid host was found.", "created": "x"},
            "OS-EXT-STS:task_state": null, "addresses": {}, "newer": 1
        }))
        .unwrap();
        assert_eq!(server.fault.unwrap().message, "No valid host was found.");
        let group: ServerGroup = serde_json::from_value(
            json!({"id": "g", "name": "n", "policies": ["soft-anti-affinity"]}),
        )
        .unwrap();
        assert_eq!(group.policy(), Some("soft-anti-affinity"));
    }
}
