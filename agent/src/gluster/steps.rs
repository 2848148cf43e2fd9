//! Volume formation steps the coordinator may ask of this node's glusterd, checked before
//! they run: an agent runs only these typed steps, with validated arguments and only the
//! volume options Triad manages, never a command line from the wire.

use super::cli::{self, CliError, GlusterCli};

/// Options the coordinator may set (design section 6).
pub const SETTABLE_OPTIONS: &[&str] = &[
    "cluster.quorum-type",
    "cluster.server-quorum-type",
    "network.ping-timeout",
    "auth.allow",
    "cluster.heal-timeout",
    // the client-side metadata caches (the coordinator's volume::METADATA_CACHE)
    "features.cache-invalidation",
    "features.cache-invalidation-timeout",
    "performance.stat-prefetch",
    "performance.cache-invalidation",
    "performance.md-cache-timeout",
    "performance.nl-cache",
    "performance.nl-cache-timeout",
    "network.inode-lru-limit",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Probe(String),
    Create {
        volume: String,
        replica: u32,
        bricks: Vec<String>,
        force: bool,
    },
    Set {
        volume: String,
        key: String,
        value: String,
    },
    Start(String),
    Heal(String),
}

fn host_ok(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        && !host.starts_with('-')
}

fn volume_ok(volume: &str) -> bool {
    !volume.is_empty()
        && volume.len() <= 64
        && volume
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn brick_ok(brick: &str) -> bool {
    brick.split_once(":/").is_some_and(|(host, path)| {
        host_ok(host)
            && !path.is_empty()
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '-' | '_'))
            && !path.contains("..")
    })
}

impl Step {
    /// The reason a step is refused, if it is.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Step::Probe(host) if !host_ok(host) => {
                Err(format!("probe: {host:?} is not a host name or address"))
            }
            Step::Create {
                volume,
                replica,
                bricks,
                ..
            } => {
                if !volume_ok(volume) {
                    return Err(format!("create: {volume:?} is not a volume name"));
                }
                if *replica < 2 || bricks.len() != *replica as usize {
                    return Err(format!(
                        "create: replica {replica} needs exactly that many bricks, got {}",
                        bricks.len()
                    ));
                }
                match bricks.iter().find(|b| !brick_ok(b)) {
                    Some(bad) => Err(format!("create: {bad:?} is not HOST:/PATH")),
                    None => Ok(()),
                }
            }
            Step::Set { volume, key, value } => {
                if !volume_ok(volume) {
                    return Err(format!("set: {volume:?} is not a volume name"));
                }
                if !SETTABLE_OPTIONS.contains(&key.as_str()) {
                    return Err(format!(
                        "set: option {key:?} is not one Triad manages ({})",
                        SETTABLE_OPTIONS.join(", ")
                    ));
                }
                if value.is_empty()
                    || value.len() > 4096
                    || !value.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | ',' | '-' | ':' | '*')
                    })
                {
                    return Err(format!(
                        "set: value {value:?} for {key} has characters outside [A-Za-z0-9.,-:*]"
                    ));
                }
                Ok(())
            }
            Step::Start(volume) | Step::Heal(volume) if !volume_ok(volume) => {
                Err(format!("{volume:?} is not a volume name"))
            }
            _ => Ok(()),
        }
    }

    pub fn args(&self) -> Vec<String> {
        match self {
            Step::Probe(host) => vec!["peer".into(), "probe".into(), host.clone()],
            Step::Create {
                volume,
                replica,
                bricks,
                force,
            } => {
                let mut args = vec![
                    "volume".into(),
                    "create".into(),
                    volume.clone(),
                    "replica".into(),
                    replica.to_string(),
                ];
                args.extend(bricks.iter().cloned());
                if *force {
                    args.push("force".into());
                }
                args
            }
            Step::Set { volume, key, value } => vec![
                "volume".into(),
                "set".into(),
                volume.clone(),
                key.clone(),
                value.clone(),
            ],
            Step::Start(volume) => vec!["volume".into(), "start".into(), volume.clone()],
            Step::Heal(volume) => vec!["volume".into(), "heal".into(), volume.clone()],
        }
    }

    pub async fn run(&self, cli_: &dyn GlusterCli) -> Result<String, CliError> {
        let args = self.args();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        cli::command(cli_, &refs).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_steps_and_managed_options_pass() {
        assert!(Step::Probe("10.214.0.12".into()).validate().is_ok());
        assert!(Step::Probe("n2; rm -rf /".into()).validate().is_err());
        assert!(Step::Probe("--help".into()).validate().is_err());
        let create = Step::Create {
            volume: "www".into(),
            replica: 3,
            bricks: vec![
                "10.0.0.1:/bricks/www".into(),
                "10.0.0.2:/bricks/www".into(),
                "10.0.0.3:/bricks/www".into(),
            ],
            force: true,
        };
        assert!(create.validate().is_ok());
        assert_eq!(create.args().last().map(String::as_str), Some("force"));
        let short = Step::Create {
            volume: "www".into(),
            replica: 3,
            bricks: vec!["10.0.0.1:/b".into()],
            force: false,
        };
        assert!(short.validate().unwrap_err().contains("replica 3"));
        let set = |key: &str, value: &str| Step::Set {
            volume: "www".into(),
            key: key.into(),
            value: value.into(),
        };
        assert!(set("auth.allow", "10.0.0.1,10.0.0.2").validate().is_ok());
        assert!(set("network.ping-timeout", "5").validate().is_ok());
        assert!(set("storage.owner-uid", "0")
            .validate()
            .unwrap_err()
            .contains("not one Triad manages"));
        assert!(set("auth.allow", "a b").validate().is_err());
        assert!(Step::Start("www".into()).validate().is_ok());
        assert!(Step::Heal("../x".into()).validate().is_err());
    }
}
