//! Logging: structured fields to journald when run under systemd, plain text otherwise.
//! The level comes from `TRIAD_LOG` (tracing's env-filter syntax), default `info`.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub fn init(program: &str) {
    let filter = EnvFilter::try_from_env("TRIAD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
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
