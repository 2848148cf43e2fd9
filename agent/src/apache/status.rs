//! mod_status `?auto` output, parsed with errors that name the line.

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerStatus {
    pub total_accesses: u64,
    pub busy_workers: u32,
    pub idle_workers: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("mod_status line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("mod_status output has no `{0}` field (is ExtendedStatus on?)")]
    Missing(&'static str),
}

/// Parse `server-status?auto`:
/// ```text
/// localhost
/// ServerVersion: Apache/2.4.71 (Debian)
/// Total Accesses: 1234
/// BusyWorkers: 1
/// IdleWorkers: 4
/// Scoreboard: _W___....
/// ```
pub fn parse_server_status(text: &str) -> Result<ServerStatus, StatusError> {
    let mut total = None;
    let mut busy = None;
    let mut idle = None;
    for (index, line) in text.lines().enumerate() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let number = |reason: &str| -> Result<u64, StatusError> {
            value.parse::<u64>().map_err(|_| StatusError::Line {
                line: index + 1,
                reason: format!("{reason} {value:?} is not a count"),
            })
        };
        match key.trim() {
            "Total Accesses" => total = Some(number("Total Accesses")?),
            "BusyWorkers" => busy = Some(number("BusyWorkers")? as u32),
            "IdleWorkers" => idle = Some(number("IdleWorkers")? as u32),
            _ => {}
        }
    }
    Ok(ServerStatus {
        total_accesses: total.ok_or(StatusError::Missing("Total Accesses"))?,
        busy_workers: busy.ok_or(StatusError::Missing("BusyWorkers"))?,
        idle_workers: idle.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "10.214.0.11\nServerVersion: Apache/2.4.71 (Debian)\nServerMPM: prefork\nServer Built: 2025-07-25T18:30:20\n\
CurrentTime: Wednesday, 25-Nov-2026 20:05:01 UTC\nTotal Accesses: 1234\nTotal kBytes: 56\nTotal Duration: 789\nUptime: 100\n\
ReqPerSec: 12.34\nBusyWorkers: 3\nGracefulWorkers: 0\nIdleWorkers: 5\nScoreboard: __W_..\n";

    #[test]
    fn counters_of_a_real_prefork_answer() {
        let status = parse_server_status(SAMPLE).unwrap();
        assert_eq!(
            status,
            ServerStatus {
                total_accesses: 1234,
                busy_workers: 3,
                idle_workers: 5
            }
        );
    }

    #[test]
    fn missing_or_malformed_counters_are_named() {
        let error = parse_server_status("BusyWorkers: 1\n").unwrap_err();
        assert_eq!(error, StatusError::Missing("Total Accesses"));
        let error = parse_server_status(&SAMPLE.replace("1234", "lots"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 6") && error.contains("lots"),
            "{error}"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in proptest::prelude::any::<String>()) {
            let _ = parse_server_status(&text);
        }
    }
}
