//! Galera positions: `grastate.dat` and the `--wsrep-recover` output line.
//!
//! Both come from disk or a child process and are parsed with errors, never panics. The
//! recovered-position line has several forms (reference/galera-recovery.md §4.8):
//! `uuid:seqno`, `uuid:seqno,domain-server-seqno` (wsrep GTID mode) and
//! `uuid:domain-server-seqno,seqno`; the seqno is always the plain integer, never the GTID.

use std::fmt;

/// The all-zero uuid Galera prints for an undefined position.
pub const ZERO_UUID: &str = "00000000-0000-0000-0000-000000000000";

#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Cluster state uuid, lowercase.
    pub uuid: String,
    /// Last committed seqno; -1 when unknown.
    pub seqno: i64,
}

impl Position {
    pub fn is_undefined(&self) -> bool {
        self.uuid == ZERO_UUID && self.seqno == -1
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uuid, self.seqno)
    }
}

/// The contents of `grastate.dat`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GraState {
    pub version: String,
    pub position: Position,
    pub safe_to_bootstrap: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    #[error("grastate.dat line {line}: {reason}")]
    Grastate { line: usize, reason: String },
    #[error("grastate.dat has no `{0}:` line")]
    GrastateMissing(&'static str),
    #[error("no `WSREP: Recovered position:` line in the output of mariadbd --wsrep-recover")]
    NoRecoveredLine,
    #[error("recovered position {0:?} is malformed: {1}")]
    Recovered(String, String),
}

pub fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn parse_seqno(text: &str) -> Option<i64> {
    let seqno: i64 = text.trim().parse().ok()?;
    (seqno >= -1).then_some(seqno)
}

/// Parse `grastate.dat`:
/// ```text
/// # GALERA saved state
/// version: 2.1
/// uuid:    9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31
/// seqno:   -1
/// safe_to_bootstrap: 0
/// ```
/// `safe_to_bootstrap` is absent in files of providers before 3.19; it then reads as 0.
pub fn parse_grastate(text: &str) -> Result<GraState, PositionError> {
    let mut version = None;
    let mut uuid = None;
    let mut seqno = None;
    let mut safe = None;
    for (index, raw_line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(PositionError::Grastate {
                line: line_no,
                reason: format!("{line:?} is not `key: value`"),
            });
        };
        let value = value.trim();
        let bad = |reason: String| PositionError::Grastate {
            line: line_no,
            reason,
        };
        match key.trim() {
            "version" => version = Some(value.to_string()),
            "uuid" => {
                if !is_uuid(value) {
                    return Err(bad(format!("uuid {value:?} is not a uuid")));
                }
                uuid = Some(value.to_ascii_lowercase());
            }
            "seqno" => {
                seqno = Some(parse_seqno(value).ok_or_else(|| {
                    bad(format!(
                        "seqno {value:?} is not -1 or a non-negative integer"
                    ))
                })?)
            }
            "safe_to_bootstrap" => {
                safe = Some(match value {
                    "0" => false,
                    "1" => true,
                    other => return Err(bad(format!("safe_to_bootstrap {other:?} is not 0 or 1"))),
                })
            }
            // newer providers may add keys (e.g. pc.recovery state); ignore them
            _ => {}
        }
    }
    Ok(GraState {
        version: version.unwrap_or_default(),
        position: Position {
            uuid: uuid.ok_or(PositionError::GrastateMissing("uuid"))?,
            seqno: seqno.ok_or(PositionError::GrastateMissing("seqno"))?,
        },
        safe_to_bootstrap: safe.unwrap_or(false),
    })
}

/// Rewrite `safe_to_bootstrap` in grastate text, keeping every other line as it is.
pub fn with_safe_to_bootstrap(text: &str, safe: bool) -> String {
    let value = if safe { "1" } else { "0" };
    let mut found = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("safe_to_bootstrap:") {
                found = true;
                format!("safe_to_bootstrap: {value}")
            } else {
                line.to_string()
            }
        })
        .collect();
    if !found {
        out.push(format!("safe_to_bootstrap: {value}"));
    }
    let mut joined = out.join("\n");
    joined.push('\n');
    joined
}

/// Find the last `WSREP: Recovered position:` line in `output` and parse it.
pub fn parse_recovered(output: &str) -> Result<Position, PositionError> {
    const MARKER: &str = "WSREP: Recovered position:";
    let value = output
        .lines()
        .filter_map(|line| line.split_once(MARKER).map(|(_, rest)| rest.trim()))
        .next_back()
        .ok_or(PositionError::NoRecoveredLine)?;
    parse_recovered_value(value)
}

/// Parse the value after the marker: `uuid:seqno`, `uuid:seqno,D-S-N` or `uuid:D-S-N,seqno`.
pub fn parse_recovered_value(value: &str) -> Result<Position, PositionError> {
    let bad = |reason: &str| PositionError::Recovered(value.to_string(), reason.to_string());
    let (uuid, rest) = value
        .split_once(':')
        .ok_or_else(|| bad("no `:` after the uuid"))?;
    if !is_uuid(uuid) {
        return Err(bad("the part before `:` is not a uuid"));
    }
    let is_gtid = |part: &str| {
        let pieces: Vec<&str> = part.split('-').collect();
        pieces.len() == 3
            && pieces
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    };
    let parts: Vec<&str> = rest.split(',').map(str::trim).collect();
    let seqno_text = match parts.as_slice() {
        [seqno] => *seqno,
        [first, second] if is_gtid(second) => *first,
        [first, second] if is_gtid(first) => *second,
        _ => {
            return Err(bad(
                "expected seqno, seqno,GTID or GTID,seqno after the uuid",
            ))
        }
    };
    let seqno = parse_seqno(seqno_text)
        .ok_or_else(|| bad("the seqno is not -1 or a non-negative integer"))?;
    Ok(Position {
        uuid: uuid.to_ascii_lowercase(),
        seqno,
    })
}

/// Galera refused to join: this node has applied more events than the Primary component
/// (`Reversing history: 288 -> 123, this member has applied 165 more events than the
/// primary component.Data loss is possible. Must abort.`, testbed.md 3.5). Starting it
/// again only aborts again; an SST would wipe the extra events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReversingHistory {
    /// The seqno this node has applied.
    pub local: i64,
    /// The Primary component's seqno.
    pub primary: i64,
}

impl ReversingHistory {
    /// Events this node has that the Primary component has not.
    pub fn extra_events(&self) -> i64 {
        self.local.saturating_sub(self.primary)
    }
}

impl std::fmt::Display for ReversingHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Reversing history: {} -> {}, {} events ahead of the Primary component",
            self.local,
            self.primary,
            self.extra_events()
        )
    }
}

/// The last `Reversing history: A -> B` line in a mysqld log, if any.
pub fn parse_reversing_history(log: &str) -> Option<ReversingHistory> {
    const MARKER: &str = "Reversing history:";
    log.lines()
        .filter_map(|line| line.split_once(MARKER).map(|(_, rest)| rest))
        .filter_map(|rest| {
            let (local, rest) = rest.split_once("->")?;
            let primary: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '-')
                .collect();
            Some(ReversingHistory {
                local: local.trim().parse().ok()?,
                primary: primary.parse().ok()?,
            })
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CRASHED: &str = "# GALERA saved state\nversion: 2.1\nuuid:    9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31\nseqno:   -1\nsafe_to_bootstrap: 0\n";

    #[test]
    fn grastate_after_crash_and_after_clean_stop() {
        let crashed = parse_grastate(CRASHED).unwrap();
        assert_eq!(crashed.position.seqno, -1);
        assert!(!crashed.safe_to_bootstrap);
        let clean = parse_grastate(
            &CRASHED
                .replace("seqno:   -1", "seqno:   250")
                .replace("bootstrap: 0", "bootstrap: 1"),
        )
        .unwrap();
        assert_eq!(
            clean.position,
            Position {
                uuid: "9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31".into(),
                seqno: 250
            }
        );
        assert!(clean.safe_to_bootstrap);
    }

    #[test]
    fn grastate_errors_name_the_line() {
        let error = parse_grastate(&CRASHED.replace("seqno:   -1", "seqno: banana")).unwrap_err();
        assert!(error.to_string().contains("line 4"), "{error}");
        assert_eq!(
            parse_grastate("version: 2.1\n").unwrap_err(),
            PositionError::GrastateMissing("uuid")
        );
        assert!(parse_grastate(&CRASHED.replace("bootstrap: 0", "bootstrap: yes")).is_err());
    }

    #[test]
    fn safe_to_bootstrap_is_rewritten_in_place() {
        let text = with_safe_to_bootstrap(CRASHED, true);
        assert!(text.contains("safe_to_bootstrap: 1"));
        assert_eq!(
            parse_grastate(&text).unwrap().position,
            parse_grastate(CRASHED).unwrap().position
        );
        assert!(with_safe_to_bootstrap("uuid: x\n", true).ends_with("safe_to_bootstrap: 1\n"));
    }

    #[test]
    fn every_known_recovered_line_form_parses() {
        let uuid = "808ffebd-a7f3-11f0-b6b4-b3b81fce961a";
        let cases = [
            ("2026-11-25 18:05:40 0 [Note] WSREP: Recovered position: 9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31:250", "9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31", 250),
            (&format!("[Note] WSREP: Recovered position: {uuid}:48451,201-2001-48431") as &str, uuid, 48451),
            (&format!("[Note] WSREP: Recovered position: {uuid}:201-2001-48431,48451"), uuid, 48451),
            ("WSREP: Recovered position: 00000000-0000-0000-0000-000000000000:-1", ZERO_UUID, -1),
        ];
        for (line, want_uuid, want_seqno) in cases {
            let position = parse_recovered(line).unwrap();
            assert_eq!(
                (position.uuid.as_str(), position.seqno),
                (want_uuid, want_seqno),
                "{line}"
            );
        }
        assert!(parse_recovered(cases[3].0).unwrap().is_undefined());
    }

    #[test]
    fn the_last_recovered_line_wins_and_garbage_is_refused() {
        let output = "WSREP: Recovered position: 9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31:1\nnoise\nWSREP: Recovered position: 9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31:7\n";
        assert_eq!(parse_recovered(output).unwrap().seqno, 7);
        assert_eq!(
            parse_recovered("nothing here").unwrap_err(),
            PositionError::NoRecoveredLine
        );
        for bad in [
            "x:1",
            "9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31",
            "9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31:-5",
            "9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31:1,2,3",
        ] {
            assert!(parse_recovered_value(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = parse_grastate(&text);
            let _ = parse_recovered(&text);
            let _ = parse_recovered_value(&text);
        }

        #[test]
        fn recovered_value_round_trips(seqno in -1i64..i64::MAX, d in 0u32..1000, s in 0u32..1000, n in any::<u64>()) {
            let uuid = "9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31";
            prop_assert_eq!(parse_recovered_value(&format!("{uuid}:{seqno}")).unwrap().seqno, seqno);
            prop_assert_eq!(parse_recovered_value(&format!("{uuid}:{seqno},{d}-{s}-{n}")).unwrap().seqno, seqno);
        }
    }

    /// A uuid, any case, or a near miss (short group, non-hex digit, empty).
    fn uuid_like() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            1 => Just(ZERO_UUID.to_string()),
            1 => "[0-9a-gA-G]{7,9}-[0-9a-f]{4}-[0-9a-f]{3,5}-[0-9a-f]{4}-[0-9a-f]{12}",
            1 => "[0-9a-f-]{0,40}",
        ]
    }

    /// A seqno or GTID piece as mysqld prints them, and numbers it never prints.
    fn seqno_like() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => (-1i64..100_000).prop_map(|n| n.to_string()),
            1 => any::<i64>().prop_map(|n| n.to_string()),
            1 => "-?[0-9]{19,22}",
            1 => (0u32..3, 0u32..3000, any::<u64>()).prop_map(|(d, s, n)| format!("{d}-{s}-{n}")),
            1 => "[0-9-]{0,8}",
            1 => "[ -~]{0,8}",
        ]
    }

    /// grastate.dat lines: its keys with plausible values, comments, unknown keys, garbage.
    fn grastate_like() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            2 => (Just("uuid"), uuid_like()),
            2 => (Just("seqno"), seqno_like()),
            1 => (Just("version"), "[0-9.]{0,4}".boxed()),
            1 => (Just("safe_to_bootstrap"), prop_oneof![Just("0".to_string()), Just("1".to_string()), "[ -~]{0,3}"].boxed()),
            1 => (Just("pc.recovery"), "[ -~]{0,8}".boxed()),
        ];
        let spaced = (line, "[ \t]{0,4}", "[ \t]{0,4}")
            .prop_map(|((key, value), a, b)| format!("{a}{key}:{b}{value}"));
        let any_line = prop_oneof![8 => spaced, 1 => Just("# GALERA saved state".to_string()), 1 => "[^\n]{0,20}"];
        proptest::collection::vec(any_line, 0..8).prop_map(|lines| lines.join("\n"))
    }

    /// `--wsrep-recover` output: log noise around `Recovered position:` and `Reversing
    /// history:` lines with values in all their forms.
    fn recover_output_like() -> impl Strategy<Value = String> {
        let value = prop_oneof![
            (uuid_like(), seqno_like()).prop_map(|(u, s)| format!("{u}:{s}")),
            (uuid_like(), seqno_like(), seqno_like()).prop_map(|(u, a, b)| format!("{u}:{a},{b}")),
            (uuid_like(), seqno_like(), seqno_like(), seqno_like())
                .prop_map(|(u, a, b, c)| format!("{u}:{a},{b},{c}")),
            "[ -~]{0,50}",
        ];
        let line = prop_oneof![
            3 => value.prop_map(|v| format!("2026-11-25 18:05:40 0 [Note] WSREP: Recovered position: {v}")),
            1 => (seqno_like(), "[ ]{0,2}", seqno_like(), "[ -~]{0,20}")
                .prop_map(|(a, sp, b, rest)| format!("[ERROR] WSREP: Reversing history: {a}{sp}->{sp}{b}{rest}")),
            1 => Just("WSREP: Recovered position:".to_string()),
            1 => "[^\n]{0,30}",
        ];
        proptest::collection::vec(line, 0..6).prop_map(|lines| lines.join("\n"))
    }

    proptest! {
        /// A damaged grastate.dat (crash mid-write, hand edits) is a state or an error
        /// naming a line or a key, never a panic; what parses is a real position.
        #[test]
        fn grastate_lines_never_panic(text in grastate_like()) {
            match parse_grastate(&text) {
                Ok(state) => {
                    prop_assert!(is_uuid(&state.position.uuid));
                    prop_assert_eq!(&state.position.uuid, &state.position.uuid.to_ascii_lowercase());
                    prop_assert!(state.position.seqno >= -1);
                }
                Err(error) => prop_assert!(error.to_string().starts_with("grastate.dat"), "{}", error),
            }
        }

        /// Whatever mysqld printed, the recovered position is a real one or an error, and a
        /// `Reversing history` line gives two numbers or nothing.
        #[test]
        fn recovered_lines_never_panic(text in recover_output_like()) {
            if let Ok(position) = parse_recovered(&text) {
                prop_assert!(is_uuid(&position.uuid) && position.seqno >= -1, "{:?}", position);
            }
            if let Some(ahead) = parse_reversing_history(&text) {
                prop_assert_eq!(ahead.extra_events(), ahead.local.saturating_sub(ahead.primary));
                prop_assert!(ahead.to_string().starts_with("Reversing history: "));
            }
        }

        /// A written grastate.dat reads back, and setting safe_to_bootstrap keeps the rest.
        #[test]
        fn grastate_round_trips(
            uuid in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            seqno in -1i64..=i64::MAX,
            safe in any::<bool>(),
            legacy in any::<bool>(),
        ) {
            let mut text = format!("# GALERA saved state\nversion: 2.1\nuuid:    {}\nseqno:   {seqno}\n", uuid.to_ascii_uppercase());
            if !legacy {
                text.push_str(&format!("safe_to_bootstrap: {}\n", u8::from(safe)));
            }
            let want = GraState {
                version: "2.1".into(),
                position: Position { uuid, seqno },
                safe_to_bootstrap: safe && !legacy,
            };
            prop_assert_eq!(parse_grastate(&text), Ok(want.clone()));
            let flipped = parse_grastate(&with_safe_to_bootstrap(&text, !want.safe_to_bootstrap));
            prop_assert_eq!(flipped, Ok(GraState { safe_to_bootstrap: !want.safe_to_bootstrap, ..want }));
        }

        /// mysqld's log keeps earlier recoveries: the last `Recovered position` line wins.
        #[test]
        fn the_last_recovered_line_round_trips(
            positions in proptest::collection::vec(("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", -1i64..=i64::MAX), 1..4),
            noise in "[a-zA-Z ]{0,30}",
        ) {
            let text: String = positions
                .iter()
                .map(|(uuid, seqno)| format!("{noise}\n[Note] WSREP: Recovered position: {uuid}:{seqno}\n"))
                .collect();
            let (uuid, seqno) = positions.last().unwrap();
            prop_assert_eq!(parse_recovered(&text), Ok(Position { uuid: uuid.clone(), seqno: *seqno }));
        }
    }

    #[test]
    fn reversing_history_is_found_in_the_abort_log() {
        let log = "2026-11-24 10:01:02 0 [Note] WSREP: STATE EXCHANGE: got state msg\n\
            2026-11-24 10:01:02 0 [ERROR] WSREP: ./gcs/src/gcs_group.cpp:group_post_state_exchange():453: \
            Reversing history: 288 -> 123, this member has applied 165 more events than the primary \
            component.Data loss is possible. Must abort.\n\
            2026-11-24 10:01:02 0 [ERROR] Aborting\n";
        let found = parse_reversing_history(log).unwrap();
        assert_eq!(
            found,
            ReversingHistory {
                local: 288,
                primary: 123
            }
        );
        assert_eq!(found.extra_events(), 165);
        assert!(found.to_string().contains("288 -> 123"));
        assert_eq!(
            parse_reversing_history("WSREP: Recovered position: x:5\n"),
            None
        );
        assert_eq!(
            parse_reversing_history("Reversing history: lots -> of\n"),
            None
        );
        assert_eq!(parse_reversing_history(""), None);
    }
}
