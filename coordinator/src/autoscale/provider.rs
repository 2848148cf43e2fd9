//! Providers: what adds and removes nodes. `exec` runs the operator's commands (plain VMs,
//! any provisioning tool; the lab's `triad-lab add-node` / `remove-node`).
//!
//! A provider is asked to `launch` a named node (with its role) and to `delete` it. Both
//! must be idempotent: the scaler repeats a step it cannot prove finished (a coordinator
//! that restarted mid-launch launches again), so "already there" and "already gone" are
//! success.

use std::time::Duration;

/// A provider call that failed, with what to show the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct ProviderError {
    pub what: String,
    pub detail: String,
}

/// Where a launch stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// The node exists (its agent installs and starts on its own from here).
    Done,
    /// Under way (a server still building): ask again on the next round.
    Pending(String),
}

#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    fn kind(&self) -> &'static str;
    /// Create the node `name` with `role` (it installs and starts its agent), or report
    /// how far an earlier call got. Never blocks for a whole boot.
    async fn launch(&self, name: &str, role: &str) -> Result<Launch, ProviderError>;
    /// Destroy the node `name` (its services were already stopped cleanly).
    async fn delete(&self, name: &str) -> Result<(), ProviderError>;
    /// The nodes this provider created that still exist, by name, for the sweep (only
    /// what carries the provider's own marks); `None` when it cannot tell (exec).
    async fn list(&self) -> Result<Option<Vec<String>>, ProviderError> {
        Ok(None)
    }
}

/// `[autoscale.exec]`: argv templates; `{node}` and `{role}` are replaced, and the command
/// also gets TRIAD_NODE and TRIAD_ROLE in its environment. No shell is involved.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecProvider {
    pub add: Vec<String>,
    pub remove: Vec<String>,
    /// Bound on one command's run time (it is killed after).
    pub timeout: Duration,
}

impl ExecProvider {
    fn argv(template: &[String], name: &str, role: &str) -> Vec<String> {
        template
            .iter()
            .map(|arg| arg.replace("{node}", name).replace("{role}", role))
            .collect()
    }

    async fn run(
        &self,
        what: &str,
        template: &[String],
        name: &str,
        role: &str,
    ) -> Result<(), ProviderError> {
        let argv = Self::argv(template, name, role);
        let error = |detail: String| ProviderError {
            what: format!("{what} {name}: `{}`", argv.join(" ")),
            detail,
        };
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| error("empty command".into()))?;
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env("TRIAD_NODE", name)
            .env("TRIAD_ROLE", role)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|e| error(format!("cannot start: {e}")))?;
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| error(format!("still running after {:?}; killed", self.timeout)))?
            .map_err(|e| error(e.to_string()))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(error(format!(
            "{} (stderr: {})",
            output.status,
            tail.join(" | ")
        )))
    }
}

#[async_trait::async_trait]
impl Provider for ExecProvider {
    fn kind(&self) -> &'static str {
        "exec"
    }

    async fn launch(&self, name: &str, role: &str) -> Result<Launch, ProviderError> {
        self.run("add", &self.add, name, role).await?;
        Ok(Launch::Done)
    }

    async fn delete(&self, name: &str) -> Result<(), ProviderError> {
        self.run("remove", &self.remove, name, "web").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec![
            "/bin/sh".into(),
            "-c".into(),
            script.into(),
            "sh".into(),
            "{node}".into(),
            "{role}".into(),
        ]
    }

    #[tokio::test]
    async fn commands_get_the_node_and_role_and_failures_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let provider = ExecProvider {
            add: sh(&format!(
                "echo \"add $1 $2 $TRIAD_NODE\" >> {}",
                log.display()
            )),
            remove: sh("echo 'no such node' >&2; exit 3"),
            timeout: Duration::from_secs(10),
        };
        provider.launch("n4", "web").await.unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "add n4 web n4\n");
        let error = provider.delete("n4").await.unwrap_err().to_string();
        assert!(
            error.contains("remove n4")
                && error.contains("exit status: 3")
                && error.contains("no such node"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_hung_command_is_killed_at_the_bound() {
        let provider = ExecProvider {
            add: sh("sleep 30"),
            remove: vec![],
            timeout: Duration::from_millis(300),
        };
        let started = std::time::Instant::now();
        let error = provider.launch("n4", "web").await.unwrap_err().to_string();
        assert!(error.contains("still running after"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let error = provider.delete("n4").await.unwrap_err().to_string();
        assert!(error.contains("empty command"), "{error}");
    }
}
