//! Logging: structured fields to journald when run under systemd, plain text otherwise.
//! The level comes from `TRIAD_LOG` (tracing's env-filter syntax), default `info`.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The environment variable that sets the log filter.
pub const LOG_FILTER_ENV: &str = "TRIAD_LOG";
/// What [`LOG_FILTER_ENV`] does, for the daemons' man pages.
pub const LOG_FILTER_HELP: &str =
    "The log filter, in the env-filter syntax of Rust's tracing (e.g. debug, or \
     info,triad_agent=debug); default info. Logs go to the journal under systemd, else to stderr.";

pub fn init(program: &str) {
    let filter = EnvFilter::try_from_env(LOG_FILTER_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    if crate::systemd::under_journald() {
        match tracing_journald::layer() {
            Ok(journald) => {
                tracing_subscriber::registry()
                    .with(filter)
                    .with(journald.with_syslog_identifier(program.to_string()))
                    .init();
                return;
            }
            Err(error) => eprintln!("{program}: journald unavailable ({error}); logging to stderr"),
        }
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // colours only on a terminal: log files stay greppable
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
}
