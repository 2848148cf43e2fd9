//! Test-only proptest strategies for hostile coordinator.toml text (the agent's config tests
//! carry the same generator; test code of one crate is not visible to another).
//!
//! A document is made of the file's own tables and keys with valid values, about one of
//! which is replaced by any TOML value, so a case usually fails deep in the resolver
//! rather than on the first key; extreme but well-formed durations are "valid" here.

use proptest::prelude::*;

/// Tables and their keys; `!` marks a required table, or a key required in its table.
pub type Schema = &'static [(&'static str, &'static [&'static str])];

/// A TOML basic string holding `text` exactly, whatever it contains.
pub fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML array of strings.
pub fn toml_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<String> = items.iter().map(|t| toml_string(t.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// A TOML float literal (Rust's `NaN`/`inf` spellings are not TOML's).
pub fn toml_float(value: f64) -> String {
    match value {
        v if v.is_nan() => "nan".into(),
        v if v.is_infinite() && v > 0.0 => "inf".into(),
        v if v.is_infinite() => "-inf".into(),
        v => format!("{v:?}"),
    }
}

/// A quoted duration: mostly `lo..=hi` milliseconds, sometimes one humantime accepts
/// but no timer can hold (up to u64::MAX seconds).
pub fn duration(lo_ms: u64, hi_ms: u64) -> BoxedStrategy<String> {
    prop_oneof![
        8 => (lo_ms..=hi_ms).prop_map(|ms| toml_string(&format!("{ms}ms"))),
        1 => (any::<u64>(), proptest::sample::select(&["s", "ns", "h", "years"][..]))
            .prop_map(|(n, unit)| toml_string(&format!("{n}{unit}"))),
        1 => Just(toml_string(&format!("{}s", u64::MAX))),
    ]
    .boxed()
}

/// Text string keys take, valid or nearly: durations, addresses, names, paths, words.
pub fn plausible_text() -> BoxedStrategy<String> {
    let number = prop_oneof![0u64..100, 0u64..100_000, any::<u64>(), Just(u64::MAX)];
    let unit =
        proptest::sample::select(&["ns", "ms", "s", "m", "h", "d", "years", "", " s", "fast"][..]);
    prop_oneof![
        (number, unit).prop_map(|(n, u)| format!("{n}{u}")),
        any::<std::net::IpAddr>().prop_map(|ip| ip.to_string()),
        any::<std::net::SocketAddr>().prop_map(|a| a.to_string()),
        ("[a-z0-9.-]{0,12}", any::<u32>()).prop_map(|(h, p)| format!("{h}:{p}")),
        proptest::sample::select(
            &[
                "0.0.0.0:7420",
                "[::]:7421",
                "none",
                "haproxy",
                "octavia",
                "exec",
                "APP_COOKIE:",
                "/",
                ""
            ][..]
        )
        .prop_map(str::to_string),
        "[A-Za-z0-9._: -]{0,70}",
        "/?[a-z./]{0,20}",
    ]
    .boxed()
}

/// Any TOML value, as its literal: plausible strings, every scalar type, arrays, garbage.
pub fn toml_value() -> BoxedStrategy<String> {
    prop_oneof![
        4 => plausible_text().prop_map(|t| toml_string(&t)),
        1 => any::<String>().prop_map(|t| toml_string(&t)),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => (-2i64..70_000).prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(toml_float),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        2 => proptest::collection::vec(plausible_text(), 0..4).prop_map(|v| toml_list(&v)),
        1 => "[^\n]{0,20}",
    ]
    .boxed()
}

/// A document over `schema`, `good(table, key)` giving the valid values.
pub fn document(
    schema: Schema,
    good: fn(&str, &str) -> BoxedStrategy<String>,
) -> BoxedStrategy<String> {
    let tables: Vec<BoxedStrategy<String>> = schema
        .iter()
        .map(|&(table, keys)| {
            let (presence, table) = match table.strip_prefix('!') {
                Some(table) => (0.98, table),
                None => (0.5, table),
            };
            let entries: Vec<BoxedStrategy<Option<String>>> = keys
                .iter()
                .map(|key| {
                    let (presence, key) = match key.strip_prefix('!') {
                        Some(key) => (0.98, key),
                        None if *key == "bogus" => (0.01, *key),
                        None => (0.6, *key),
                    };
                    let value = prop_oneof![70 => good(table, key), 1 => toml_value()];
                    proptest::option::weighted(presence, value)
                        .prop_map(move |v| v.map(|v| format!("{key} = {v}\n")))
                        .boxed()
                })
                .collect();
            proptest::option::weighted(presence, entries)
                .prop_map(move |e| match e {
                    Some(lines) => format!(
                        "[{table}]\n{}\n",
                        lines.into_iter().flatten().collect::<String>()
                    ),
                    None => String::new(),
                })
                .boxed()
        })
        .collect();
    (tables, proptest::option::weighted(0.03, "[^\n]{0,30}"))
        .prop_map(|(tables, garbage)| tables.concat() + garbage.as_deref().unwrap_or(""))
        .boxed()
}
