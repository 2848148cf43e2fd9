//! The app's database endpoint on this node (issue 17): a local HAProxy in TCP mode on
//! [`DbRouterSettings::listen`] (127.0.0.1:3307) that sends every connection to one Galera
//! member, the writer the coordinator names, the same on every node, so the app never
//! writes to two members at once (certification conflicts, seen by PHP as deadlocks).
//!
//! The coordinator sends the members in order (`DbRoute`): the first is the writer, the
//! others are HAProxy `backup` servers in the same order, so when the writer fails its
//! checks every node's router moves to the same next member on its own, without waiting
//! for gossip or the coordinator. Each member is checked twice every 500 ms: a TCP connect
//! to its mysqld, and an agent-check on its agent's [`DbRouterSettings::check_port`], where
//! that agent answers "up" only while its mysqld is Synced in the Primary component
//! ([`check_answer`]; a donor, a joiner, a node cut off or marked ahead answers "down").
//!
//! HAProxy runs as its own unit (`triad-db-router.service`, written by the agent under
//! /run/systemd/system like its mariadb drop-in), never as the agent's child: an agent
//! restart leaves the endpoint up.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use triad_proto::gossip::NodeKeys;

use crate::exec::{write_if_changed, HostError};
use crate::service::{write_unit_file, ServiceManager};
use crate::state::AgentState;

#[derive(Debug, Clone, PartialEq)]
pub struct DbRouterSettings {
    /// Where the app connects.
    pub listen: SocketAddr,
    /// This agent's answer to the other nodes' routers (on the node's address).
    pub check_port: u16,
    /// The members' mysqld port.
    pub mysql_port: u16,
    pub config_path: PathBuf,
    pub unit: String,
    pub unit_path: PathBuf,
}

impl Default for DbRouterSettings {
    fn default() -> DbRouterSettings {
        DbRouterSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 3307)),
            check_port: 9201,
            mysql_port: 3306,
            config_path: "/etc/triad/db-router.cfg".into(),
            unit: "triad-db-router.service".into(),
            unit_path: "/run/systemd/system/triad-db-router.service".into(),
        }
    }
}

/// One Galera member the router may send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub node: String,
    pub address: IpAddr,
}

/// Pure: this agent's answer to an agent-check: "up" only while its mysqld is Synced in
/// the Primary component.
pub fn check_answer(keys: &NodeKeys) -> &'static str {
    if keys.galera.synced_in_primary() {
        "up\n"
    } else {
        "down\n"
    }
}

/// Pure: the HAProxy configuration routing to `members` (the writer first).
pub fn render(settings: &DbRouterSettings, members: &[Member]) -> String {
    let mut text = format!(
        "# Written by triad-agent: the app's database endpoint (see man triad-agent).\n\
         global\n    maxconn 4000\n\n\
         defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 8h\n    \
         timeout server 8h\n    timeout check 500ms\n    \
         # a connection that cannot reach the writer is retried, the last time on the\n    \
         # member that replaced it once the checks marked it down\n    \
         retries 3\n    option redispatch 1\n\n\
         listen galera\n    bind {listen}\n    option tcp-check\n    \
         # a member that fails its checks loses its connections at once: the app\n    \
         # reconnects, to the next member\n    \
         default-server inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions \
         agent-check agent-port {check_port} agent-inter 500ms\n",
        listen = settings.listen,
        check_port = settings.check_port,
    );
    for (i, m) in members.iter().enumerate() {
        let address = match m.address {
            IpAddr::V4(v4) => format!("{v4}:{}", settings.mysql_port),
            IpAddr::V6(v6) => format!("[{v6}]:{}", settings.mysql_port),
        };
        let backup = if i == 0 { "" } else { " backup" };
        text.push_str(&format!(
            "    server {} {address} check agent-addr {}{backup}\n",
            m.node, m.address
        ));
    }
    text
}

const UNIT: &str = "[Unit]\nDescription=Triad database endpoint (HAProxy to the Galera writer)\n\
After=network-online.target\n\n[Service]\n\
ExecStartPre=/usr/sbin/haproxy -Ws -f /etc/triad/db-router.cfg -c -q\n\
ExecStart=/usr/sbin/haproxy -Ws -f /etc/triad/db-router.cfg -p /run/triad-db-router.pid\n\
ExecReload=/usr/sbin/haproxy -Ws -f /etc/triad/db-router.cfg -c -q\n\
ExecReload=/bin/kill -USR2 $MAINPID\n\
KillMode=mixed\nRestart=always\nRestartSec=1s\nType=notify\n";

pub struct DbRouter {
    settings: DbRouterSettings,
    address: IpAddr,
    services: Arc<dyn ServiceManager>,
    state: Arc<AgentState>,
}

impl std::fmt::Debug for DbRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbRouter")
            .field("settings", &self.settings)
            .finish()
    }
}

impl DbRouter {
    pub fn new(
        settings: DbRouterSettings,
        address: IpAddr,
        services: Arc<dyn ServiceManager>,
        state: Arc<AgentState>,
    ) -> DbRouter {
        DbRouter {
            settings,
            address,
            services,
            state,
        }
    }

    /// Route to `members` (the writer first): write the configuration, then reload the
    /// router (start it when it does not run). True when something changed.
    pub async fn route(&self, members: &[Member]) -> Result<bool, HostError> {
        if members.is_empty() {
            return Err(HostError::new("db route", "no member given"));
        }
        for m in members {
            triad_daemon::config::validate_node_id(&m.node)
                .map_err(|e| HostError::new("db route", e))?;
        }
        if let Some(dir) = self.settings.config_path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| HostError::new(format!("mkdir {}", dir.display()), e.to_string()))?;
        }
        let changed =
            write_if_changed(&self.settings.config_path, &render(&self.settings, members)).await?;
        if self.run_router(changed).await? {
            tracing::info!(writer = %members[0].node, "database endpoint {} routes to {}", self.settings.listen, members.iter().map(|m| m.node.as_str()).collect::<Vec<_>>().join(", then "));
        }
        let writer = members[0].node.clone();
        self.state.update(|keys| keys.db_writer = Some(writer));
        Ok(changed)
    }

    /// The router's unit in place and running its configuration: (re)loaded when the unit
    /// or (`config_changed`) the configuration changed, or when it does not run. True when
    /// it was (re)loaded.
    async fn run_router(&self, config_changed: bool) -> Result<bool, HostError> {
        let unit_changed =
            write_unit_file(&self.settings.unit_path, UNIT, Duration::from_secs(30)).await?;
        let running =
            self.services.state(&self.settings.unit).await == crate::galera::UnitState::Active;
        if config_changed || unit_changed || !running {
            self.services.reload_or_restart(&self.settings.unit).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// At start: a router configured before (an agent restart, a reboot: the unit under
    /// /run is gone) runs again with its last members until the coordinator says more.
    pub async fn resume(&self) {
        if !self.settings.config_path.exists() {
            return;
        }
        if let Err(error) = self.run_router(false).await {
            tracing::warn!("database endpoint: resuming the router: {error}");
        }
    }

    /// Answer the other routers' agent-checks until `stop`.
    pub async fn serve_checks(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let addr = SocketAddr::new(self.address, self.settings.check_port);
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!("database endpoint: cannot answer checks on {addr}: {error}");
                return;
            }
        };
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((mut stream, _)) = accepted {
                        let answer = check_answer(&self.state.keys());
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(
                                Duration::from_millis(500),
                                stream.write_all(answer.as_bytes()),
                            )
                            .await;
                            let _ = stream.shutdown().await;
                        });
                    }
                }
                _ = stop.changed() => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_proto::gossip::GaleraState;

    #[test]
    fn only_a_synced_member_of_the_primary_component_answers_up() {
        let mut keys = NodeKeys::default();
        assert_eq!(check_answer(&keys), "down\n");
        keys.galera.state = GaleraState::Synced;
        keys.galera.cluster_status = Some("non-Primary".into());
        assert_eq!(check_answer(&keys), "down\n");
        keys.galera.cluster_status = Some("Primary".into());
        assert_eq!(check_answer(&keys), "up\n");
        keys.galera.state = GaleraState::Donor;
        assert_eq!(check_answer(&keys), "down\n");
    }

    #[test]
    fn the_writer_is_the_one_server_the_others_stand_by_in_order() {
        let members = [
            Member {
                node: "n2".into(),
                address: "10.0.0.2".parse().unwrap(),
            },
            Member {
                node: "n1".into(),
                address: "10.0.0.1".parse().unwrap(),
            },
            Member {
                node: "n3".into(),
                address: "10.0.0.3".parse().unwrap(),
            },
        ];
        let text = render(&DbRouterSettings::default(), &members);
        let servers: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("server "))
            .collect();
        assert_eq!(
            servers,
            [
                "server n2 10.0.0.2:3306 check agent-addr 10.0.0.2",
                "server n1 10.0.0.1:3306 check agent-addr 10.0.0.1 backup",
                "server n3 10.0.0.3:3306 check agent-addr 10.0.0.3 backup",
            ]
        );
        assert!(text.contains("bind 127.0.0.1:3307"), "{text}");
        assert!(text.contains("agent-port 9201"), "{text}");
        assert!(!text.contains("allbackups"), "one backup at a time");
    }
}
