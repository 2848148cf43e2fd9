//! The gluster CLI behind a narrow trait: production runs `gluster --mode=script … --xml`;
//! simulations and unit tests answer with recorded XML.

use std::time::Duration;

use super::xml::{self, GlusterError, HealBrick, Peer, StatusNode, VolumeInfo};
use crate::exec::{run_any, HostError};

/// Why a gluster call failed: the command could not run (glusterd down, timeout), or
/// gluster answered with an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Gluster(#[from] GlusterError),
}

impl CliError {
    /// gluster's errno for "volume does not exist" differs per command (30800, 30806);
    /// its message is stable.
    pub fn is_missing_volume(&self) -> bool {
        matches!(self, CliError::Gluster(GlusterError::Failed { message, .. }) if message.contains("does not exist"))
    }

    pub fn is_not_started(&self) -> bool {
        matches!(self, CliError::Gluster(GlusterError::Failed { message, .. }) if message.contains("is not started"))
    }
}

#[async_trait::async_trait]
pub trait GlusterCli: Send + Sync {
    /// `gluster --mode=script ARGS --xml`: the XML text, whether gluster succeeded or not
    /// (its failures are in the XML); `Err` only when no XML came back.
    async fn xml(&self, args: &[&str]) -> Result<String, HostError>;

    /// `gluster --mode=script ARGS` for the commands that answer only in text (split-brain
    /// resolution): its output on success, `Err` with gluster's words otherwise.
    async fn text(&self, args: &[&str]) -> Result<String, HostError> {
        Err(HostError::new(
            format!("gluster {}", args.join(" ")),
            "not available here",
        ))
    }
}

/// Production: the `gluster` binary.
#[derive(Debug, Clone)]
pub struct GlusterBinary {
    pub timeout: Duration,
}

#[async_trait::async_trait]
impl GlusterCli for GlusterBinary {
    async fn xml(&self, args: &[&str]) -> Result<String, HostError> {
        let mut full = vec!["--mode=script"];
        full.extend_from_slice(args);
        full.push("--xml");
        let (_, stdout, stderr) = run_any("gluster", &full, self.timeout).await?;
        if stdout.contains("<cliOutput") {
            Ok(stdout)
        } else {
            // glusterd down: "Connection failed. Please check if gluster daemon is operational."
            Err(HostError::new(
                format!("gluster {}", args.join(" ")),
                format!("{}{}", stdout.trim(), stderr.trim()),
            ))
        }
    }

    async fn text(&self, args: &[&str]) -> Result<String, HostError> {
        let mut full = vec!["--mode=script"];
        full.extend_from_slice(args);
        let (ok, stdout, stderr) = run_any("gluster", &full, self.timeout).await?;
        let said = format!("{} {}", stdout.trim(), stderr.trim())
            .trim()
            .to_string();
        if ok {
            Ok(said)
        } else {
            Err(HostError::new(format!("gluster {}", args.join(" ")), said))
        }
    }
}

/// Typed calls over any [`GlusterCli`].
pub async fn peers(cli: &dyn GlusterCli) -> Result<Vec<Peer>, CliError> {
    Ok(xml::peer_status(&cli.xml(&["peer", "status"]).await?)?)
}

/// `Ok(None)` when the volume does not exist.
pub async fn volume(cli: &dyn GlusterCli, name: &str) -> Result<Option<VolumeInfo>, CliError> {
    match xml::volume_info(&cli.xml(&["volume", "info", name]).await?) {
        Ok(mut volumes) => Ok(volumes.pop()),
        Err(error) => {
            let error = CliError::from(error);
            if error.is_missing_volume() {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}

/// `Ok(None)` when the volume is not started (gluster has no process status then).
pub async fn status(cli: &dyn GlusterCli, name: &str) -> Result<Option<Vec<StatusNode>>, CliError> {
    match xml::volume_status(&cli.xml(&["volume", "status", name]).await?) {
        Ok(nodes) => Ok(Some(nodes)),
        Err(error) => {
            let error = CliError::from(error);
            if error.is_not_started() || error.is_missing_volume() {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}

pub async fn heal_info(cli: &dyn GlusterCli, name: &str) -> Result<Vec<HealBrick>, CliError> {
    Ok(xml::heal_info(
        &cli.xml(&["volume", "heal", name, "info"]).await?,
    )?)
}

/// `gluster volume heal NAME info split-brain`: per brick, the entries in split-brain.
pub async fn split_brain(cli: &dyn GlusterCli, name: &str) -> Result<Vec<HealBrick>, CliError> {
    Ok(xml::heal_info(
        &cli.xml(&["volume", "heal", name, "info", "split-brain"])
            .await?,
    )?)
}

/// Run a command whose answer is only success or failure; the command is named in errors.
pub async fn command(cli: &dyn GlusterCli, args: &[&str]) -> Result<String, CliError> {
    let text = cli.xml(args).await?;
    xml::check(&args.join(" "), &text)?;
    Ok(xml::output_text(&text))
}
