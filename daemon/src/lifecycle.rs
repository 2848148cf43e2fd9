//! A daemon's life from `main` to exit, written once for `triad-agent` and
//! `triad-coordinator`: config load (exit 2 on a bad file), `validate-config`, the
//! unconfigured wait, signals, the gRPC port, readiness and the SIGHUP re-read. Each daemon
//! keeps only its own wiring in the `run` it hands to [`main`].

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::ConfigError;
use crate::unconfigured::{self, ConfigState};
use crate::{systemd, telemetry};

/// What the shared start-up and reload need of a daemon's configuration.
pub trait DaemonConfig: PartialEq + Sized {
    /// The strict parser of a file that has settings.
    fn parse(path: &Path, text: &str) -> Result<Self, ConfigError>;
    /// Who this node is, e.g. `cluster c1`: `validate-config` prints `ok (<summary>)` and
    /// systemd's status reads `running: <summary>`.
    fn summary(&self) -> String;
    /// The settings a re-read file changes, by their operator-facing names, for the SIGHUP
    /// log line; none listed by default.
    fn changed_settings(&self, _reread: &Self) -> Vec<&'static str> {
        Vec::new()
    }
}

/// Start-up or `run` failed.
pub const EXIT_FAILED: u8 = 1;
/// The configuration cannot be read or is invalid.
pub const EXIT_BAD_CONFIG: u8 = 2;

/// The exit codes [`main`] gives, for both daemons' man pages.
pub const EXIT_CODES: [(u8, &str); 3] = [
    (
        0,
        "stopped cleanly (SIGTERM or SIGINT); validate-config: the file is valid, or all \
         comments (not configured yet)",
    ),
    (
        EXIT_FAILED,
        "start-up or run failure (one <program>: error: line on stderr)",
    ),
    (
        EXIT_BAD_CONFIG,
        "bad configuration: the file cannot be read or is invalid (one <program>: error: \
         line on stderr, naming the key; what ExecStartPre and validate-config show)",
    ),
];

/// The body of a daemon's `main` once its command line is parsed; exits with
/// [`EXIT_CODES`]. With the shipped all-commented file it waits for SIGHUP before
/// calling `run` (see [`unconfigured`]). `runtime` is the daemon's choice of tokio
/// scheduler (I/O and timers are enabled here).
pub fn main<C, E, Fut>(
    program: &str,
    path: PathBuf,
    validate_only: bool,
    mut runtime: tokio::runtime::Builder,
    run: impl FnOnce(PathBuf, C) -> Fut,
) -> ExitCode
where
    C: DaemonConfig,
    E: Display,
    Fut: Future<Output = Result<(), E>>,
{
    let config = match unconfigured::load_config(&path, C::parse) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{program}: error: {error}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if validate_only {
        println!("{}", validate_line(&path, &config, program));
        return ExitCode::SUCCESS;
    }
    telemetry::init(program);
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{program}: error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let outcome = runtime.block_on(async {
        let config = match config {
            ConfigState::Configured(config) => config,
            ConfigState::Unconfigured => {
                match unconfigured::wait_until_configured(&path, program, C::parse).await {
                    Ok(Some(config)) => config,
                    Ok(None) => return Ok(()),
                    Err(error) => return Err(format!("installing signal handlers: {error}")),
                }
            }
        };
        run(path, config)
            .await
            .map_err(|error| format!("{error:#}"))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // at error priority in the journal, and on stderr for a terminal or a test
            tracing::error!("{message}");
            eprintln!("{program}: error: {message}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// `validate-config`'s one line.
fn validate_line<C: DaemonConfig>(path: &Path, config: &ConfigState<C>, program: &str) -> String {
    match config {
        ConfigState::Configured(config) => format!("{}: ok ({})", path.display(), config.summary()),
        ConfigState::Unconfigured => unconfigured::unconfigured_message(path, program),
    }
}

/// What a signal asks of a running daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP: re-read TLS files and the config.
    Reload,
}

/// The stop and reload signals, installed before the daemon binds or joins anything so an
/// early SIGTERM is not lost to the default handler.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

#[derive(Debug, thiserror::Error)]
#[error("installing the {signal} handler")]
pub struct SignalError {
    signal: &'static str,
    source: std::io::Error,
}

impl Signals {
    pub fn install() -> Result<Signals, SignalError> {
        let install = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|source| SignalError {
                signal: name,
                source,
            })
        };
        Ok(Signals {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            int: install(SignalKind::interrupt(), "SIGINT")?,
            hup: install(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// The next signal. Cancel-safe: a branch of a `select!` beside the daemon's own timers.
    pub async fn recv(&mut self) -> Event {
        tokio::select! {
            _ = self.term.recv() => Event::Stop,
            _ = self.int.recv() => Event::Stop,
            _ = self.hup.recv() => Event::Reload,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen for gRPC on {addr} (grpc.listen)")]
pub struct BindError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// Binds the gRPC port; the error names the setting to fix.
pub async fn bind_grpc(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Tells systemd the daemon is up, with `running: <summary>` as its status.
pub fn notify_running(config: &impl DaemonConfig) {
    systemd::notify_ready();
    unconfigured::notify_status(&format!("running: {}", config.summary()));
}

/// What a SIGHUP's re-read found. Only TLS files reload live; a changed config needs a
/// restart, so the running one is always kept.
#[derive(Debug)]
enum Reread {
    Unchanged,
    Changed(Vec<&'static str>),
    Unconfigured,
    Invalid(ConfigError),
}

impl Reread {
    fn classify<C: DaemonConfig>(
        running: &C,
        reread: Result<ConfigState<C>, ConfigError>,
    ) -> Reread {
        match reread {
            Ok(ConfigState::Configured(new)) if new == *running => Reread::Unchanged,
            Ok(ConfigState::Configured(new)) => Reread::Changed(running.changed_settings(&new)),
            Ok(ConfigState::Unconfigured) => Reread::Unconfigured,
            Err(error) => Reread::Invalid(error),
        }
    }
}

/// Re-reads `path` on SIGHUP and logs how it compares with `running`; `to_apply` ends the
/// "changed" line (e.g. `restart the coordinator to apply it`).
pub fn reread_config<C: DaemonConfig>(path: &Path, running: &C, to_apply: &str) {
    match Reread::classify(running, unconfigured::load_config(path, C::parse)) {
        Reread::Unchanged => tracing::info!("SIGHUP: configuration unchanged"),
        Reread::Changed(changed) if changed.is_empty() => tracing::warn!(
            path = %path.display(),
            "SIGHUP: configuration changed; {to_apply}"
        ),
        Reread::Changed(changed) => tracing::warn!(
            path = %path.display(),
            changed = changed.join(", "),
            "SIGHUP: configuration changed; {to_apply}"
        ),
        Reread::Unconfigured => tracing::warn!(
            path = %path.display(),
            "SIGHUP: configuration is now all comments; keeping the running one"
        ),
        Reread::Invalid(error) => {
            tracing::error!(%error, "SIGHUP: configuration invalid; keeping the running one")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Config {
        name: String,
        port: u16,
    }

    impl DaemonConfig for Config {
        fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
            let (name, port) = text.trim().split_once(':').unwrap_or((text, ""));
            let port = port.parse().map_err(|_| ConfigError::Invalid {
                path: path.to_path_buf(),
                key: "port",
                message: format!("{port:?} is not a port"),
            })?;
            Ok(Config {
                name: name.to_string(),
                port,
            })
        }

        fn summary(&self) -> String {
            format!("cluster {}", self.name)
        }

        fn changed_settings(&self, reread: &Config) -> Vec<&'static str> {
            let mut changed = Vec::new();
            if self.name != reread.name {
                changed.push("name");
            }
            if self.port != reread.port {
                changed.push("port");
            }
            changed
        }
    }

    fn running() -> Config {
        Config {
            name: "c1".into(),
            port: 7421,
        }
    }

    fn reread(text: &str) -> Reread {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.toml");
        std::fs::write(&path, text).unwrap();
        Reread::classify(&running(), unconfigured::load_config(&path, Config::parse))
    }

    #[test]
    fn a_reread_is_unchanged_changed_with_its_settings_unconfigured_or_invalid() {
        assert!(matches!(reread("c1:7421"), Reread::Unchanged));
        match reread("c2:7421") {
            Reread::Changed(changed) => assert_eq!(changed, ["name"]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(reread("# all comments\n"), Reread::Unconfigured));
        match reread("c1:x") {
            Reread::Invalid(error) => assert!(error.to_string().contains("port"), "{error}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn validate_line_says_ok_with_the_summary_or_not_configured_yet() {
        let path = Path::new("/etc/triad/d.toml");
        assert_eq!(
            validate_line(path, &ConfigState::Configured(running()), "triad-d"),
            "/etc/triad/d.toml: ok (cluster c1)"
        );
        let waiting = validate_line::<Config>(path, &ConfigState::Unconfigured, "triad-d");
        assert!(waiting.contains("not configured yet"), "{waiting}");
    }

    #[tokio::test]
    async fn a_taken_grpc_port_names_the_address_and_the_setting() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let error = bind_grpc(addr).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot listen for gRPC on {addr} (grpc.listen)")
        );
        assert!(std::error::Error::source(&error).is_some());
    }

    #[tokio::test]
    async fn sighup_is_a_reload_and_sigterm_a_stop() {
        let mut signals = Signals::install().unwrap();
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGHUP).unwrap();
        assert_eq!(signals.recv().await, Event::Reload);
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM).unwrap();
        assert_eq!(signals.recv().await, Event::Stop);
    }
}
