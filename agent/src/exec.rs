//! Running commands and writing files for the service modules: every command has a time
//! bound and its error names the command line; children never inherit the agent's systemd
//! notify socket.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct HostError {
    pub what: String,
    pub detail: String,
}

impl HostError {
    pub fn new(what: impl Into<String>, detail: impl Into<String>) -> HostError {
        HostError {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// Run a command with a time bound; stdout on success, an error naming the command and its
/// stderr otherwise.
pub async fn run(program: &str, args: &[&str], timeout: Duration) -> Result<String, HostError> {
    run_as(program, args, timeout, None).await
}

/// Like [`run`], as user and group `ids` when given (a least-privilege identity).
pub async fn run_as(
    program: &str,
    args: &[&str],
    timeout: Duration,
    ids: Option<(u32, u32)>,
) -> Result<String, HostError> {
    let output = spawn_and_wait(program, args, timeout, ids, None).await?;
    checked(program, args, output)
}

/// Like [`run`], with `input` on the child's stdin: for what must not appear on a command
/// line (/proc/PID/cmdline is world-readable), such as statements carrying a password hash.
pub async fn run_with_input(
    program: &str,
    args: &[&str],
    input: &str,
    timeout: Duration,
) -> Result<String, HostError> {
    let output = spawn_and_wait(program, args, timeout, None, Some(input)).await?;
    checked(program, args, output)
}

fn checked(
    program: &str,
    args: &[&str],
    output: std::process::Output,
) -> Result<String, HostError> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).to_string())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        Err(HostError::new(
            format!("{program} {}", args.join(" ")),
            format!("{}: {}{}", output.status, stderr.trim(), stdout.trim()),
        ))
    }
}

/// The one place commands are started: bounded by `timeout` (the child is killed when it
/// runs over), kept off the agent's systemd notify socket, optionally as `ids`, with
/// `input` on stdin (else none).
async fn spawn_and_wait(
    program: &str,
    args: &[&str],
    timeout: Duration,
    ids: Option<(u32, u32)>,
    input: Option<&str>,
) -> Result<std::process::Output, HostError> {
    let line = format!("{program} {}", args.join(" "));
    let mut command = Command::new(program);
    if let Some((uid, gid)) = ids {
        command.uid(uid).gid(gid);
    }
    let mut child = command
        .args(args)
        // children must not talk to systemd on the agent's notify socket
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| HostError::new(&line, format!("cannot run: {e}")))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        use tokio::io::AsyncWriteExt;
        let bytes = input.as_bytes().to_vec();
        // written beside the wait: a child that fills its stdout before reading all of
        // stdin must not deadlock against us
        tokio::spawn(async move {
            let _ = stdin.write_all(&bytes).await;
            let _ = stdin.shutdown().await;
        });
    }
    tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| HostError::new(&line, format!("did not finish within {timeout:?}")))?
        .map_err(|e| HostError::new(&line, e.to_string()))
}

/// Write `text` to `path` (through a temporary file and a rename) unless it already
/// holds exactly that; true when written.
pub async fn write_if_changed(path: &Path, text: &str) -> Result<bool, HostError> {
    if tokio::fs::read_to_string(path).await.ok().as_deref() == Some(text) {
        return Ok(false);
    }
    let tmp = path.with_extension("tmp");
    let what = format!("writing {}", path.display());
    tokio::fs::write(&tmp, text)
        .await
        .map_err(|e| HostError::new(&what, e.to_string()))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| HostError::new(&what, e.to_string()))?;
    Ok(true)
}

/// Like [`run`], but a non-zero exit is not an error: (success, stdout, stderr). For tools
/// such as `gluster --xml` that report failures in their output.
pub async fn run_any(
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<(bool, String, String), HostError> {
    let output = spawn_and_wait(program, args, timeout, None, None).await?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    ))
}

/// uid and gid of the OS user `user`, asked of NSS (files, LDAP, sssd: whatever the node's
/// nsswitch.conf says) through getpwnam_r. `Ok(None)`: no such user.
pub fn user_ids(user: &str) -> Result<Option<(u32, u32)>, String> {
    nix::unistd::User::from_name(user)
        .map(|found| found.map(|u| (u.uid.as_raw(), u.gid.as_raw())))
        .map_err(|e| format!("looking up the OS user {user:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_users_are_found_through_nss() {
        assert_eq!(user_ids("root"), Ok(Some((0, 0))));
        assert_eq!(user_ids("triad-no-such-user"), Ok(None));
    }
}
