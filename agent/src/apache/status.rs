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

/// Apache's request counter without the agent's own probes (its health GET and this
/// status GET every tick), which would otherwise read as ~2 req/s of load per node.
///
/// Only probes made before the previous reading are subtracted: by then Apache has surely
/// counted them (a request is counted once it is logged, after its response), so the
/// published value never falls while Apache runs. A falling raw counter means Apache
/// restarted: the probe count starts again with it.
#[derive(Debug, Clone, Default)]
pub struct ClientRequests {
    last_raw: Option<u64>,
    /// The last value returned (never returned lower while Apache runs).
    last_clients: u64,
    /// Probes made before the previous reading, since the counter last started.
    probes_counted: u64,
    /// Probes made since the previous reading.
    probes_pending: u64,
}

impl ClientRequests {
    /// Note `count` answered probes since the previous reading (this tick's included).
    pub fn probing(&mut self, count: u64) {
        self.probes_pending += count;
    }

    /// A reading of `Total Accesses`; returns the clients' share.
    pub fn reading(&mut self, raw: u64) -> u64 {
        let restarted = self.last_raw.is_some_and(|last| raw < last);
        if restarted {
            self.probes_counted = 0;
            self.last_clients = 0;
        }
        // a probe Apache did not count after all must not read as a counter reset
        let clients = raw
            .saturating_sub(self.probes_counted)
            .max(self.last_clients);
        self.last_clients = clients;
        self.probes_counted += self.probes_pending;
        self.probes_pending = 0;
        self.last_raw = Some(raw);
        clients
    }
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

    #[test]
    fn the_agents_own_probes_are_not_client_requests() {
        let mut counter = ClientRequests::default();
        // Apache counted 100 client requests before the agent started
        counter.probing(2);
        assert_eq!(
            counter.reading(101),
            101,
            "the health GET may be counted already"
        );
        // each tick: health + status GETs, and here 10 client requests in between
        let mut raw = 101;
        let mut published = vec![];
        for _ in 0..5 {
            counter.probing(2);
            raw += 2 + 10;
            published.push(counter.reading(raw));
        }
        let steps: Vec<u64> = published.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(steps, vec![10, 10, 10, 10], "{published:?}");
        // Apache restarted: the counter starts again, and so does the subtraction
        counter.probing(2);
        assert_eq!(counter.reading(3), 3);
        counter.probing(2);
        assert_eq!(counter.reading(3 + 2 + 5), 8);
        // probes Apache did not count (a refused connection) never read as a fall
        counter.probing(2);
        assert_eq!(counter.reading(10), 8);
    }
}
