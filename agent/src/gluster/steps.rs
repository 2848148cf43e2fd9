//! Volume formation steps the coordinator may ask of this node's glusterd, checked before
//! they run: an agent runs only these typed steps, with validated arguments and only the
//! volume options Triad manages, never a command line from the wire.

use super::cli::{self, CliError, GlusterCli};

/// Options the coordinator may set (design section 6).
pub const SETTABLE_OPTIONS: &[&str] = &[
    "cluster.quorum-type",
    // client quorum fixed at one brick while nodes are away for maintenance (issue 21)
    "cluster.quorum-count",
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
    /// `gluster volume heal VOLUME split-brain POLICY [BRICK] FILE`: an operator's choice
    /// of which copy of a file in split-brain wins.
    Resolve {
        volume: String,
        policy: Resolution,
        file: String,
    },
}

/// How a split-brain is resolved (gluster's own policies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The copy modified last (refused by gluster when the times are equal).
    LatestMtime,
    /// The larger copy (refused by gluster when the sizes are equal).
    BiggerFile,
    /// The copy on this brick (HOST:/PATH).
    SourceBrick(String),
}

impl Resolution {
    /// From the operator's words: "latest-mtime", "bigger-file", "source-brick" (with
    /// `brick`).
    pub fn parse(policy: &str, brick: &str) -> Result<Resolution, String> {
        match (policy, brick) {
            ("latest-mtime", "") => Ok(Resolution::LatestMtime),
            ("bigger-file", "") => Ok(Resolution::BiggerFile),
            ("source-brick", "") => Err("policy source-brick needs the brick (HOST:/PATH)".into()),
            ("source-brick", brick) => Ok(Resolution::SourceBrick(brick.to_string())),
            ("latest-mtime" | "bigger-file", brick) => Err(format!(
                "a brick ({brick:?}) goes only with policy source-brick"
            )),
            (other, _) => Err(format!(
                "policy {other:?}: use latest-mtime, bigger-file or source-brick"
            )),
        }
    }
}

/// A file as gluster's split-brain commands take it: a path inside the volume ("/a/b")
/// or "gfid:UUID"; no "..", no control characters.
fn volume_file_ok(file: &str) -> bool {
    let path_ok = file.starts_with('/')
        && file.len() <= 4096
        && !file.split('/').any(|part| part == "..")
        && !file.chars().any(char::is_control);
    let gfid_ok = file
        .strip_prefix("gfid:")
        .is_some_and(|id| id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
    path_ok || gfid_ok
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
            Step::Resolve {
                volume,
                policy,
                file,
            } => {
                if !volume_ok(volume) {
                    return Err(format!("resolve: {volume:?} is not a volume name"));
                }
                if !volume_file_ok(file) {
                    return Err(format!(
                        "resolve: {file:?} is not a file of the volume (a path from its root, \"/dir/file\", or \"gfid:UUID\")"
                    ));
                }
                match policy {
                    Resolution::SourceBrick(brick) if !brick_ok(brick) => {
                        Err(format!("resolve: brick {brick:?} is not HOST:/PATH"))
                    }
                    _ => Ok(()),
                }
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
            Step::Resolve {
                volume,
                policy,
                file,
            } => {
                let mut args: Vec<String> = vec![
                    "volume".into(),
                    "heal".into(),
                    volume.clone(),
                    "split-brain".into(),
                ];
                match policy {
                    Resolution::LatestMtime => args.push("latest-mtime".into()),
                    Resolution::BiggerFile => args.push("bigger-file".into()),
                    Resolution::SourceBrick(brick) => {
                        args.push("source-brick".into());
                        args.push(brick.clone());
                    }
                }
                args.push(file.clone());
                args
            }
        }
    }

    pub async fn run(&self, cli_: &dyn GlusterCli) -> Result<String, CliError> {
        let args = self.args();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        match self {
            // split-brain resolution answers in text only, even with --xml
            Step::Resolve { .. } => Ok(cli_.text(&refs).await?),
            _ => cli::command(cli_, &refs).await,
        }
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

    #[test]
    fn a_resolution_names_policy_brick_and_file_or_is_refused() {
        let resolve = |policy: &str, brick: &str, file: &str| -> Result<Vec<String>, String> {
            let step = Step::Resolve {
                volume: "www".into(),
                policy: Resolution::parse(policy, brick)?,
                file: file.into(),
            };
            step.validate()?;
            Ok(step.args())
        };
        assert_eq!(
            resolve("bigger-file", "", "/sb.txt").unwrap(),
            [
                "volume",
                "heal",
                "www",
                "split-brain",
                "bigger-file",
                "/sb.txt"
            ]
        );
        assert_eq!(
            resolve(
                "source-brick",
                "10.0.0.2:/bricks/www",
                "gfid:e9b466a1-c5ad-4cd0-bcb6-9c50a083f85e"
            )
            .unwrap(),
            [
                "volume",
                "heal",
                "www",
                "split-brain",
                "source-brick",
                "10.0.0.2:/bricks/www",
                "gfid:e9b466a1-c5ad-4cd0-bcb6-9c50a083f85e"
            ]
        );
        for (policy, brick, file, why) in [
            ("newest", "", "/a", "policy \"newest\""),
            ("source-brick", "", "/a", "needs the brick"),
            (
                "latest-mtime",
                "n1:/b",
                "/a",
                "only with policy source-brick",
            ),
            ("source-brick", "n1:b", "/a", "is not HOST:/PATH"),
            ("bigger-file", "", "a", "is not a file of the volume"),
            (
                "bigger-file",
                "",
                "/a/../../etc",
                "is not a file of the volume",
            ),
            ("bigger-file", "", "/a\nb", "is not a file of the volume"),
        ] {
            let error = resolve(policy, brick, file).unwrap_err();
            assert!(error.contains(why), "{policy} {brick} {file}: {error}");
        }
    }
}
