//! Running host commands with errors that carry the command line and stderr, and with an
//! optional time limit (a hung command must never hang a test run).

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};

/// Renders a command as a shell-like line for error messages and logs.
pub fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains([' ', '\'', '"', '\n', '$', ';']) {
            s.push_str(&format!(" '{}'", a.replace('\'', "'\\''")));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

fn status_text(o: &Output) -> String {
    match o.status.code() {
        Some(c) => format!("exit code {c}"),
        None => format!("{}", o.status),
    }
}

/// Runs `cmd` to completion, capturing output (stdin is /dev/null). A non-zero exit is an error
/// carrying the command line and stderr.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = output(cmd)?;
    check(cmd, out)
}

/// Like [`run`] but returns stdout as a trimmed string.
pub fn run_stdout(cmd: &mut Command) -> Result<String> {
    let out = run(cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs `cmd` and returns its output whatever the exit status (only a spawn failure is an error).
pub fn output(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            cmd: display(cmd),
            source,
        })
}

/// Turns a non-zero exit into [`LabError::Command`].
pub fn check(cmd: &Command, out: Output) -> Result<Output> {
    if out.status.success() {
        return Ok(out);
    }
    let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if stderr.is_empty() {
        stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    if stderr.len() > 4000 {
        let cut = stderr.len() - 4000;
        let cut = (cut..stderr.len())
            .find(|i| stderr.is_char_boundary(*i))
            .unwrap_or(cut);
        stderr = format!("...{}", &stderr[cut..]);
    }
    Err(LabError::Command {
        cmd: display(cmd),
        status: status_text(&out),
        stderr,
    })
}

/// Runs `cmd` with a time limit: on expiry the child is SIGKILLed and
/// [`LabError::CommandTimeout`] is returned. Output is captured through files so a chatty
/// command cannot block on a full pipe.
pub fn output_timeout(cmd: &mut Command, limit: Duration) -> Result<Output> {
    let line = display(cmd);
    let spawn_err = |source| LabError::Spawn {
        cmd: line.clone(),
        source,
    };
    let mut out_f = tempfile_in_tmp().map_err(spawn_err)?;
    let mut err_f = tempfile_in_tmp().map_err(spawn_err)?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out_f.try_clone().map_err(spawn_err)?)
        .stderr(err_f.try_clone().map_err(spawn_err)?)
        .spawn()
        .map_err(spawn_err)?;
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait().map_err(spawn_err)? {
            Some(st) => break st,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::CommandTimeout { cmd: line, limit });
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    use std::io::{Read, Seek};
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let _ = out_f.rewind().and_then(|_| out_f.read_to_end(&mut stdout));
    let _ = err_f.rewind().and_then(|_| err_f.read_to_end(&mut stderr));
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// An anonymous temporary file (unlinked at once) for capturing output.
fn tempfile_in_tmp() -> std::io::Result<std::fs::File> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let p = std::env::temp_dir().join(format!(
        "triad-lab-out-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&p)?;
    let _ = std::fs::remove_file(&p);
    Ok(f)
}

/// Convenience: `Command::new(prog).args(args)`.
pub fn cmd<I, S>(prog: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = Command::new(prog);
    c.args(args);
    c
}
