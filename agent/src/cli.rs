//! The `triad-agent` command line (clap), kept in the library so the man page and the shell
//! completions are generated from the same definition (`triad-gen-assets`), and what a
//! reload reports as changed. Start-up, the unconfigured wait and reload are
//! [`triad_daemon::lifecycle`].

use std::path::PathBuf;

use crate::config::DEFAULT_PATH;
use clap::{Parser, Subcommand};

/// Triad node agent: keeps this node's Galera, Gluster, docroot mount and Apache healthy,
/// gossips the node's health and answers the coordinator over gRPC.
#[derive(Debug, Parser)]
#[command(name = "triad-agent", version)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, short, default_value = DEFAULT_PATH, env = "TRIAD_AGENT_CONFIG", global = true)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the agent (the default).
    Run,
    /// Check the configuration file and exit: 0 when valid, 2 with one error line otherwise.
    ValidateConfig,
}

/// The agent's clap command (for the man page and completions).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// The settings that differ between the running and a re-read configuration, by the name an
/// operator knows them under, for the SIGHUP log line. Settings added later without a name
/// here still show up as "other settings".
pub fn changed_settings(
    running: &crate::config::AgentConfig,
    reread: &crate::config::AgentConfig,
) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name: &'static str, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("node.id", running.node_id != reread.node_id);
    check("node.role", running.role != reread.role);
    check("node.address", running.address != reread.address);
    check("cluster.name", running.cluster_name != reread.cluster_name);
    check("cluster.seeds", running.seeds != reread.seeds);
    check("[gossip]", running.gossip != reread.gossip);
    check("grpc.listen", running.grpc_listen != reread.grpc_listen);
    check(
        "agent.heartbeat_interval",
        running.heartbeat_interval != reread.heartbeat_interval,
    );
    check("readiness.require", running.readiness != reread.readiness);
    if changed.is_empty() && running != reread {
        changed.push("other settings");
    }
    changed
}

/// What the shared start-up and SIGHUP re-read need ([`triad_daemon::lifecycle`]).
impl triad_daemon::lifecycle::DaemonConfig for crate::config::AgentConfig {
    fn parse(
        path: &std::path::Path,
        text: &str,
    ) -> Result<Self, triad_daemon::config::ConfigError> {
        crate::config::AgentConfig::parse(path, text)
    }

    fn summary(&self) -> String {
        format!("node {}, cluster {}", self.node_id, self.cluster_name)
    }

    fn changed_settings(&self, reread: &Self) -> Vec<&'static str> {
        changed_settings(self, reread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;
    use std::path::Path;
    use std::time::Duration;
    use triad_daemon::shipped::uncomment_examples;
    use triad_daemon::unconfigured::{
        is_unconfigured, load_config, wait_until_configured, ConfigState,
    };

    /// The default configuration the package installs as /etc/triad/agent.toml.
    const SHIPPED: &str = include_str!("../../packaging/agent/agent.toml");

    #[test]
    fn shipped_agent_default_is_unconfigured_and_its_example_is_valid() {
        assert!(
            is_unconfigured(SHIPPED),
            "packaging/agent/agent.toml must hold comments only"
        );
        let example = uncomment_examples(SHIPPED);
        assert!(!is_unconfigured(&example), "the example sets nothing");
        let config = AgentConfig::parse(Path::new("agent.toml"), &example)
            .unwrap_or_else(|error| panic!("the shipped example is invalid: {error}\n{example}"));
        assert_eq!(config.node_id, "n1");
    }

    #[test]
    fn load_config_routes_settings_to_the_strict_parser() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "# nothing yet\n").unwrap();
        assert_eq!(
            load_config(&path, AgentConfig::parse).unwrap(),
            ConfigState::Unconfigured
        );
        std::fs::write(&path, "[node]\nid = \"n1\"\nbogus = 1\n").unwrap();
        let error = load_config(&path, AgentConfig::parse)
            .unwrap_err()
            .to_string();
        assert!(error.contains("bogus"), "{error}");
        let missing = dir.path().join("missing.toml");
        let error = load_config(&missing, AgentConfig::parse)
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot read"), "{error}");
    }

    #[test]
    fn changed_settings_names_what_a_reload_found_different() {
        let path = Path::new("agent.toml");
        let example = uncomment_examples(SHIPPED);
        let running = AgentConfig::parse(path, &example).unwrap();
        assert!(changed_settings(&running, &running.clone()).is_empty());
        let reread = AgentConfig::parse(
            path,
            &example
                .replace("name = \"prod\"", "name = \"prod2\"")
                .replace("heartbeat_interval = \"1s\"", "heartbeat_interval = \"2s\""),
        )
        .unwrap();
        assert_eq!(
            changed_settings(&running, &reread),
            vec!["cluster.name", "agent.heartbeat_interval"]
        );
    }

    #[test]
    fn cli_parses_subcommands_and_config() {
        let cli =
            Cli::try_parse_from(["triad-agent", "--config", "/x.toml", "validate-config"]).unwrap();
        assert_eq!(cli.config, PathBuf::from("/x.toml"));
        assert_eq!(cli.command, Some(Command::ValidateConfig));
        command().debug_assert();
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_ends_when_a_sighup_finds_the_file_filled_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, SHIPPED).unwrap();
        let waiter = tokio::spawn({
            let path = path.clone();
            async move {
                wait_until_configured(&path, "triad-agent", |path: &Path, text: &str| {
                    AgentConfig::parse(path, text)
                })
                .await
            }
        });
        // let the waiter install its signal handlers, then fill the file in and send SIGHUP
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::fs::write(&path, uncomment_examples(SHIPPED)).unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                nix::sys::signal::raise(nix::sys::signal::Signal::SIGHUP).unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
                if waiter.is_finished() {
                    break waiter.await;
                }
            }
        })
        .await
        .expect("the waiter did not return within 30 s of (virtual) SIGHUPs");
        let config = outcome.unwrap().unwrap().expect("a configuration");
        assert_eq!(config.node_id, "n1");
    }
}
