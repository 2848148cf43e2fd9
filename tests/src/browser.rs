//! Headless Chromium (Debian's `chromium`) driven over the DevTools protocol for the
//! dashboard's tests and bench: no client library, the protocol's own pipe transport
//! (`--remote-debugging-pipe`: JSON messages ended by NUL, commands on the browser's fd 3,
//! answers and events on its fd 4), through two FIFOs in a throwaway directory that is also
//! the browser's profile. The browser runs in its own process group, which [`Drop`] kills
//! by its id, so a failing test leaves no Chromium behind.
//!
//! The coordinator's certificate is pinned by its public key
//! (`--ignore-certificate-errors-spki-list`, which Chromium honours with `--user-data-dir`),
//! rather than installing the lab CA in an NSS database: the page is reached as
//! https://127.0.0.1:PORT, a name the certificate does not carry.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use crate::error::{IoContext, LabError, Result};
use crate::wait::{self, Poll};

/// How long one DevTools command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(20);

fn browser_error(message: impl Into<String>) -> LabError {
    LabError::Other(format!("chromium: {}", message.into()))
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of the first certificate in `pem`, the form
/// `--ignore-certificate-errors-spki-list` takes (computed by openssl, as Chromium's docs
/// show).
pub fn spki_hash(pem: &Path) -> Result<String> {
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
        pem.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .map_err(|source| LabError::Spawn {
            cmd: script.clone(),
            source,
        })?;
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || hash.len() != 44 {
        return Err(browser_error(format!(
            "the public key hash of {}: {}",
            pem.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(hash)
}

/// A headless Chromium with one page.
pub struct Browser {
    child: Child,
    /// The process group (= the browser's PID).
    group: i32,
    commands: std::fs::File,
    answers: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium trusting a server whose certificate has public key hash `spki`,
    /// with one blank page attached.
    pub fn launch(spki: &str) -> Result<Browser> {
        let profile = tempfile::Builder::new()
            .prefix("triad-chromium-")
            .tempdir()
            .io("create", Path::new("/tmp/triad-chromium-*"))?;
        let dir = profile.path().to_path_buf();
        let (to_browser, from_browser) = (dir.join("in"), dir.join("out"));
        for fifo in [&to_browser, &from_browser] {
            nix::unistd::mkfifo(
                fifo,
                nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
            )
            .map_err(|e| browser_error(format!("mkfifo {}: {e}", fifo.display())))?;
        }
        let args = [
            "--headless".to_string(),
            // as root, Chromium's sandbox needs user namespaces it may not have
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            // talk to the dashboard only: no update checks, sync, translation, field trials
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-features=Translate,OptimizationHints,MediaRouter".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", dir.join("profile").display()),
            format!("--ignore-certificate-errors-spki-list={spki}"),
            "--remote-debugging-pipe".into(),
            "about:blank".into(),
        ];
        let log = dir.join("chromium.log");
        let log_file = std::fs::File::create(&log).io("create", &log)?;
        let mut command = Command::new("sh");
        command
            .arg("-c")
            // the FIFOs become the browser's fd 3 and 4; exec keeps the PID
            .arg("exec chromium \"$@\" 3<\"$TRIAD_CDP_IN\" 4>\"$TRIAD_CDP_OUT\"")
            .arg("chromium")
            .args(&args)
            .env("TRIAD_CDP_IN", &to_browser)
            .env("TRIAD_CDP_OUT", &from_browser)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().io("open", &log)?)
            .stderr(log_file)
            .process_group(0);
        let child = command.spawn().map_err(|source| LabError::Spawn {
            cmd: "chromium --headless --remote-debugging-pipe".into(),
            source,
        })?;
        let group = child.id() as i32;
        // open in the order the shell does, or both wait forever: its fd 3, then its fd 4
        let commands = std::fs::OpenOptions::new()
            .write(true)
            .open(&to_browser)
            .io("open", &to_browser)?;
        let answers_file = std::fs::File::open(&from_browser).io("open", &from_browser)?;
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(answers_file);
            loop {
                let mut message = Vec::new();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        message.pop_if(|b| *b == 0);
                        if let Ok(value) = serde_json::from_slice::<Value>(&message) {
                            if tx.send(value).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        let mut browser = Browser {
            child,
            group,
            commands,
            answers,
            next_id: 0,
            session: String::new(),
            profile,
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}), false)?;
        let target_id = target["targetId"]
            .as_str()
            .ok_or_else(|| browser_error(format!("no targetId in {target}")))?
            .to_string();
        let attached = browser.call(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
            false,
        )?;
        browser.session = attached["sessionId"]
            .as_str()
            .ok_or_else(|| browser_error(format!("no sessionId in {attached}")))?
            .to_string();
        browser.call("Page.enable", json!({}), true)?;
        Ok(browser)
    }

    /// The browser's PID (its process group).
    pub fn pid(&self) -> i32 {
        self.group
    }

    /// The browser's own log (stderr), for failures.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default()
    }

    /// One DevTools command; `on_page`: to the page's session, else to the browser.
    pub fn call(&mut self, method: &str, params: Value, on_page: bool) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if on_page {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("JSON");
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .map_err(|e| browser_error(format!("{method}: the browser's pipe: {e}")))?;
        let deadline = Instant::now() + COMMAND_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = self.answers.recv_timeout(left).map_err(|_| {
                browser_error(format!(
                    "{method}: no answer within {COMMAND_LIMIT:?}; its log:\n{}",
                    self.log()
                ))
            })?;
            if answer["id"] != json!(id) {
                continue; // an event, or an answer to an abandoned command
            }
            if let Some(error) = answer.get("error") {
                return Err(browser_error(format!("{method}: {error}")));
            }
            return Ok(answer["result"].clone());
        }
    }

    /// Open `url` in the page and wait until its document has loaded.
    pub fn navigate(&mut self, url: &str) -> Result<()> {
        let result = self.call("Page.navigate", json!({"url": url}), true)?;
        if let Some(error) = result["errorText"].as_str() {
            return Err(browser_error(format!("opening {url}: {error}")));
        }
        wait::until(
            &format!("{url} loaded"),
            Duration::from_secs(20),
            Duration::from_millis(50),
            || {
                let state = self.eval("document.readyState")?;
                Ok(if state == "complete" {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!("readyState {state}"))
                })
            },
        )
    }

    /// The value of a JavaScript expression in the page.
    pub fn eval(&mut self, expression: &str) -> Result<Value> {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
            true,
        )?;
        if let Some(exception) = result.get("exceptionDetails") {
            return Err(browser_error(format!("{expression}: {exception}")));
        }
        Ok(result["result"]["value"].clone())
    }

    /// A PNG of the page as it is now, written to `path`.
    pub fn screenshot(&mut self, path: &Path) -> Result<PathBuf> {
        use base64::Engine;
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
            true,
        )?;
        let data = shot["data"]
            .as_str()
            .ok_or_else(|| browser_error("no screenshot data"))?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| browser_error(format!("screenshot: {e}")))?;
        std::fs::write(path, png).io("write", path)?;
        Ok(path.to_path_buf())
    }
}

impl Drop for Browser {
    /// Ask it to close, then kill its process group by id (renderers and the zygote are
    /// in it) and reap it.
    fn drop(&mut self) {
        let _ = self.call("Browser.close", json!({}), false);
        let closed = wait::until(
            "chromium to exit",
            Duration::from_secs(5),
            Duration::from_millis(50),
            || {
                Ok(match self.child.try_wait() {
                    Ok(Some(_)) => Poll::Ready(()),
                    _ => Poll::Pending("running".into()),
                })
            },
        );
        let _ = killpg(Pid::from_raw(self.group), Signal::SIGKILL);
        if closed.is_err() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
