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

/// A child of the agent: kept off the agent's systemd notify socket and watchdog (a child
/// that inherited them could tell systemd the agent is ready, or stopping). Every command
/// the agent starts is made here.
pub fn command(program: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    command
}

/// [`command`] for the few places without the async runtime (a guard's last resort).
pub fn blocking_command(program: &str) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    command
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    command
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
    let mut command = command(program);
    if let Some((uid, gid)) = ids {
        command.uid(uid).gid(gid);
    }
    let mut child = command
        .args(args)
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

/// A file operation that failed, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct FileError {
    pub path: std::path::PathBuf,
    pub message: String,
}

/// An `io::Error` on `path` as a [`FileError`].
pub fn at(path: &Path) -> impl Fn(std::io::Error) -> FileError + '_ {
    move |e| FileError {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// `path` holds `content` with `mode`, owner `uid` and group `gid` already.
pub fn owned_file_in_place(path: &Path, content: &[u8], mode: u32, uid: u32, gid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::read(path).ok().as_deref() == Some(content)
        && std::fs::metadata(path)
            .is_ok_and(|m| m.mode() & 0o7777 == mode && m.uid() == uid && m.gid() == gid)
}

pub fn set_mode_and_owner(path: &Path, mode: u32, uid: u32, gid: u32) -> Result<(), FileError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(at(path))?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(at(path))
}

/// Write `content` to `path` for readers other than the agent (a key, a password): a
/// temporary file created 0600, given its owner and mode before the content, fsync,
/// renamed over `path` (a reader never sees half of it, nobody else ever more of it).
pub fn write_owned_file(
    path: &Path,
    content: &[u8],
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<(), FileError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(at(&tmp))?;
    set_mode_and_owner(&tmp, mode, uid, gid)?;
    file.write_all(content).map_err(at(&tmp))?;
    file.sync_all().map_err(at(&tmp))?;
    std::fs::rename(&tmp, path).map_err(at(path))
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

/// `/proc/PID/cmdline`: NUL-separated arguments (how the modules recognise the processes
/// of the services they manage: a brick, a state-transfer script).
pub fn split_cmdline(raw: &[u8]) -> Vec<String> {
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
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
