//! The command line of `triad-coordinator` (clap), kept in the library so the man page and
//! the shell completions are generated from the same definition (`triad-gen-assets`, run by
//! `make deb`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::DEFAULT_PATH;

/// Triad coordinator: observes the cluster through gossip and serves its status; recovery,
/// balancer membership and autoscaling decisions are taken here.
#[derive(Debug, Parser)]
#[command(name = "triad-coordinator", version)]
pub struct CoordinatorCli {
    /// Configuration file.
    #[arg(long, short, default_value = DEFAULT_PATH, env = "TRIAD_COORDINATOR_CONFIG", global = true)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<CoordinatorCommand>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum CoordinatorCommand {
    /// Run the coordinator (the default).
    Run,
    /// Check the configuration file and exit: 0 when valid, 2 with one error line otherwise.
    ValidateConfig,
}

/// `triad-coordinator`'s clap command (for the man page and completions).
pub fn coordinator_command() -> clap::Command {
    <CoordinatorCli as clap::CommandFactory>::command()
}

/// What the shared start-up and SIGHUP re-read need ([`triad_daemon::lifecycle`]).
impl triad_daemon::lifecycle::DaemonConfig for crate::config::CoordinatorConfig {
    fn parse(
        path: &std::path::Path,
        text: &str,
    ) -> Result<Self, triad_daemon::config::ConfigError> {
        crate::config::CoordinatorConfig::parse(path, text)
    }

    fn summary(&self) -> String {
        format!("cluster {}", self.cluster_name)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use triad_daemon::shipped::uncomment_examples;
    use triad_daemon::unconfigured::{is_unconfigured, load_config, ConfigState};

    use super::*;
    use crate::config::CoordinatorConfig;

    /// The default configuration the package installs as /etc/triad/coordinator.toml.
    const SHIPPED: &str = include_str!("../../packaging/coordinator/coordinator.toml");

    #[test]
    fn shipped_coordinator_default_is_unconfigured_and_its_example_is_valid() {
        assert!(
            is_unconfigured(SHIPPED),
            "packaging/coordinator/coordinator.toml must hold comments only"
        );
        let example = uncomment_examples(SHIPPED);
        let config = CoordinatorConfig::parse(Path::new("coordinator.toml"), &example)
            .unwrap_or_else(|error| panic!("the shipped example is invalid: {error}\n{example}"));
        assert_eq!(config.cluster_name, "prod");
        // the [autoscale.nova] example resolves too, with the shipped cloud-init template
        // (with [tls], it issues node certificates with the CA in [tls]'s directory)
        let pki = tempfile::tempdir().unwrap();
        triad_daemon::pki::init(pki.path(), "prod", 1, false).unwrap();
        let nova = example
            .replace("provider = \"none\"", "provider = \"nova\"")
            .replace("/etc/triad/pki", &pki.path().display().to_string());
        let config = CoordinatorConfig::parse(Path::new("coordinator.toml"), &nova)
            .unwrap_or_else(|error| panic!("the shipped nova example is invalid: {error}"));
        let provider = config.autoscale.map(|a| a.provider);
        assert!(
            matches!(
                provider,
                Some(crate::autoscale::config::ProviderSettings::Nova(_))
            ),
            "{provider:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coordinator.toml");
        std::fs::write(&path, SHIPPED).unwrap();
        assert_eq!(
            load_config(&path, CoordinatorConfig::parse).unwrap(),
            ConfigState::Unconfigured
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        coordinator_command().debug_assert();
        let coordinator =
            CoordinatorCli::try_parse_from(["triad-coordinator", "validate-config"]).unwrap();
        assert_eq!(
            coordinator.command,
            Some(CoordinatorCommand::ValidateConfig)
        );
    }
}
