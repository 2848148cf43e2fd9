//! Configuration basics both daemons and `triadctl` share: strict TOML with one-line
//! errors that name the file, line and key ([`ConfigError`]); validated values (names,
//! durations, addresses, seeds, a health check's path and status codes); and the
//! `[cluster]` and `[tls]` sections, which mean the same in every config file.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("config {path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

/// Read and parse a TOML file into `T`, mapping errors to one line with file:line:column.
pub fn load_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_toml(path, &text)
}

/// Parse TOML text; `path` is only used in error messages.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|error| {
        let offset = error.span().map(|span| span.start).unwrap_or(0);
        let (line, column) = line_and_column(text, offset);
        let context = table_context(text, offset);
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: format!("{}{context}", error.message().trim().replace('\n', " ")),
        }
    })
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// " (in [table], at `key = value`)": tells which key a type error is about, since the
/// TOML error message names only the expected type.
fn table_context(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('['))
        .map(|line| line.to_string());
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let this_line = text[line_start..].lines().next().unwrap_or("").trim();
    let mut parts = Vec::new();
    if let Some(table) = table {
        parts.push(format!("in {table}"));
    }
    if this_line.contains('=') && !this_line.starts_with('[') {
        parts.push(format!("at `{this_line}`"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub name: String,
    #[serde(default)]
    pub seeds: Vec<String>,
}

/// `[tls]`, shared by the agent and the coordinator: mutual TLS on gRPC.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    /// Plaintext gRPC, said explicitly (warned at every start).
    pub insecure: Option<bool>,
}

/// `[tls]` resolved: the files (paths absolute), or `None` for plaintext, which must be
/// asked for (`insecure = true`; the daemon warns at every start). A config without
/// `[tls]` is refused: gRPC commands bootstrap databases and stop nodes.
pub fn resolve_tls(
    path: &Path,
    raw: Option<&RawTls>,
) -> Result<Option<crate::tls::TlsFiles>, ConfigError> {
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    let Some(raw) = raw else {
        return Err(invalid(
            "tls",
            "missing: gRPC needs mutual TLS ([tls] ca, cert and key; see `triadctl pki`), or plaintext asked for explicitly with [tls] insecure = true".into(),
        ));
    };
    let given = [&raw.ca, &raw.cert, &raw.key];
    if raw.insecure == Some(true) {
        if given.iter().any(|f| f.is_some()) {
            return Err(invalid(
                "tls.insecure",
                "insecure = true together with certificate files: choose one".into(),
            ));
        }
        return Ok(None);
    }
    let file = |key: &'static str, value: &Option<String>| -> Result<PathBuf, ConfigError> {
        let text = value.as_deref().ok_or_else(|| {
            invalid(
                key,
                "required in [tls] (ca, cert and key; or insecure = true for plaintext)".into(),
            )
        })?;
        let path = PathBuf::from(text);
        if !path.is_absolute() {
            return Err(invalid(key, format!("{text:?} must be an absolute path")));
        }
        Ok(path)
    };
    Ok(Some(crate::tls::TlsFiles {
        ca: file("tls.ca", &raw.ca)?,
        cert: file("tls.cert", &raw.cert)?,
        key: file("tls.key", &raw.key)?,
    }))
}

/// A name of 1-`max` ASCII letters, digits and the `allowed` punctuation (a volume, a
/// user, a name prefix); the error is one line, for the caller to prefix with the key:
/// `"a b": use 1-64 letters, digits, '-' or '_'`.
pub fn check_name(text: &str, max: usize, allowed: &[char]) -> Result<(), String> {
    let valid = !text.is_empty()
        && text.len() <= max
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || allowed.contains(&c));
    if valid {
        return Ok(());
    }
    let quoted: Vec<String> = allowed.iter().map(|c| format!("'{c}'")).collect();
    let punctuation = match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => format!(" or {last}"),
        Some((last, rest)) => format!(", {} or {last}", rest.join(", ")),
    };
    Err(format!(
        "{text:?}: use 1-{max} letters, digits{punctuation}"
    ))
}

/// A node id or cluster name: 1-63 letters, digits, '-', '_' or '.' (it ends up in
/// hostnames, certificate names and file names).
pub fn validate_node_id(id: &str) -> Result<(), String> {
    let valid_chars = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if id.is_empty() || id.len() > 63 || !valid_chars {
        return Err(format!(
            "{id:?} must be 1-63 characters of letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(())
}

/// `address = "auto"` (nodes launched by the autoscaler, whose address the cloud's DHCP
/// picks): the source address the kernel would use toward the first seed that is an IP
/// address. A UDP `connect` only looks up the route; no packet is sent.
pub fn auto_address(seeds: &[String]) -> Result<IpAddr, String> {
    let seed: SocketAddr = seeds
        .iter()
        .find_map(|seed| seed.parse().ok())
        .ok_or_else(|| {
            "\"auto\" needs a seed given as an IP address:port in cluster.seeds".to_string()
        })?;
    let any: SocketAddr = if seed.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let socket = std::net::UdpSocket::bind(any).map_err(|e| format!("\"auto\": {e}"))?;
    socket
        .connect(seed)
        .map_err(|e| format!("\"auto\": no route to the seed {seed}: {e}"))?;
    let local = socket
        .local_addr()
        .map_err(|e| format!("\"auto\": {e}"))?
        .ip();
    if local.is_unspecified() {
        return Err(format!("\"auto\": no source address toward {seed}"));
    }
    Ok(local)
}

/// `[cluster]`: name and seeds, validated. Shared with the coordinator.
pub fn resolve_cluster(
    path: &Path,
    raw: &RawCluster,
) -> Result<(String, Vec<String>), ConfigError> {
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    validate_node_id(&raw.name).map_err(|m| invalid("cluster.name", m))?;
    for seed in &raw.seeds {
        validate_seed(seed).map_err(|m| invalid("cluster.seeds", m))?;
    }
    Ok((raw.name.clone(), raw.seeds.clone()))
}

pub fn validate_seed(seed: &str) -> Result<(), String> {
    if seed.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    match seed.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!("{seed:?} is not host:port")),
    }
}

pub fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an address:port (e.g. 10.0.0.5:7420)"))
}

/// The longest duration a config key accepts: beyond it, timers and deadlines overflow
/// (`Instant + Duration` panics), and no setting of ours needs more.
pub const MAX_CONFIG_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A config duration ("200ms", "5s", "1h"), at most [`MAX_CONFIG_DURATION`]; the error is
/// one line, for the caller to prefix with the file and key.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let value = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like \"200ms\", \"5s\" or \"1h\": {e}"))?;
    if value > MAX_CONFIG_DURATION {
        return Err(format!(
            "{text:?} is longer than the 365 days a duration may be"
        ));
    }
    Ok(value)
}

/// An optional duration key: `default` when absent, else [`parse_duration`] with the
/// error naming the file and `key`.
pub fn duration_key(
    path: &Path,
    key: &'static str,
    raw: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match raw {
        None => Ok(default),
        Some(text) => parse_duration(text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        }),
    }
}

/// An HTTP path a health check requests (`[apache] health_path`, the Octavia monitor's
/// `url_path`): it starts with one '/' (two would name a host), and is printable ASCII
/// without spaces or '#' (it goes on a request line as written; a fragment is never sent).
pub fn validate_url_path(text: &str) -> Result<(), String> {
    if !text.starts_with('/') || text.starts_with("//") {
        return Err(format!(
            "{text:?} must start with a single '/' (a path such as \"/status.php\")"
        ));
    }
    if let Some(bad) = text.chars().find(|c| !c.is_ascii_graphic() || *c == '#') {
        return Err(format!(
            "{text:?} must be printable ASCII without spaces or '#' (found {bad:?}; \
             percent-encode it)"
        ));
    }
    Ok(())
}

/// The HTTP status codes a health check accepts, in the syntax Octavia's `expected_codes`
/// and HAProxy's `http-check expect status` share: one code (`"200"`), a list
/// (`"200,302"`; Octavia also allows spaces after the commas) or one range (`"200-204"`).
/// Codes are 100-599 and a range runs upwards. Displayed without spaces, which both accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusCodes {
    List(Vec<u16>),
    Range(u16, u16),
}

impl Default for StatusCodes {
    /// `"200"`, Octavia's default.
    fn default() -> StatusCodes {
        StatusCodes::List(vec![200])
    }
}

impl StatusCodes {
    /// Parse `text`; the error is one line, for the caller to prefix with the file and key.
    pub fn parse(text: &str) -> Result<StatusCodes, String> {
        let refused = || {
            format!(
                "{text:?}: use one code (\"200\"), a list (\"200,302\") or a range \
                 (\"200-204\") of HTTP status codes 100-599"
            )
        };
        let code = |part: &str| -> Result<u16, String> {
            if part.len() != 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(refused());
            }
            let code: u16 = part.parse().map_err(|_| refused())?;
            if (100..=599).contains(&code) {
                Ok(code)
            } else {
                Err(refused())
            }
        };
        if let Some((low, high)) = text.split_once('-') {
            let (low, high) = (code(low)?, code(high)?);
            if low > high {
                return Err(format!("{text:?}: a range runs upwards (\"{high}-{low}\")"));
            }
            return Ok(StatusCodes::Range(low, high));
        }
        // Octavia: `\d{3}(\s*,\s*\d{3})*`, white space around the commas only
        if text.trim() != text {
            return Err(refused());
        }
        let codes = text
            .split(',')
            .map(|part| code(part.trim()))
            .collect::<Result<Vec<u16>, String>>()?;
        Ok(StatusCodes::List(codes))
    }

    /// Whether a response with `status` passes.
    pub fn contains(&self, status: u16) -> bool {
        match self {
            StatusCodes::List(codes) => codes.contains(&status),
            StatusCodes::Range(low, high) => (*low..=*high).contains(&status),
        }
    }
}

impl std::fmt::Display for StatusCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusCodes::List(codes) => {
                let codes: Vec<String> = codes.iter().map(u16::to_string).collect();
                f.write_str(&codes.join(","))
            }
            StatusCodes::Range(low, high) => write!(f, "{low}-{high}"),
        }
    }
}

impl std::str::FromStr for StatusCodes {
    type Err = String;

    fn from_str(text: &str) -> Result<StatusCodes, String> {
        StatusCodes::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_with_one_rule_and_one_message() {
        assert!(check_name("www_1-a", 64, &['-', '_']).is_ok());
        assert_eq!(
            check_name("a b", 64, &['-', '_']).unwrap_err(),
            "\"a b\": use 1-64 letters, digits, '-' or '_'"
        );
        assert_eq!(
            check_name("", 32, &['-']).unwrap_err(),
            "\"\": use 1-32 letters, digits or '-'"
        );
        assert!(check_name(&"x".repeat(33), 32, &['-']).is_err());
        assert!(check_name("x", 32, &[]).is_ok());
    }

    #[test]
    fn status_codes_take_octavias_syntax_and_print_haproxys() {
        for (text, shown) in [
            ("200", "200"),
            ("200,302", "200,302"),
            ("200, 302 ,404", "200,302,404"),
            ("200-204", "200-204"),
            ("599-599", "599-599"),
        ] {
            let codes = StatusCodes::parse(text).unwrap();
            assert_eq!(codes.to_string(), shown, "{text:?}");
            assert_eq!(StatusCodes::parse(shown).unwrap(), codes, "{text:?}");
        }
        let list = StatusCodes::parse("200,302").unwrap();
        assert!(list.contains(200) && list.contains(302) && !list.contains(301));
        let range = StatusCodes::parse("200-204").unwrap();
        assert!(range.contains(200) && range.contains(204) && !range.contains(205));
        assert_eq!(StatusCodes::default().to_string(), "200");
        for bad in [
            "",
            " 200",
            "200 ",
            "2000",
            "20",
            "20x",
            "200,",
            ",200",
            "200;302",
            "200-",
            "-204",
            "200 - 204",
            "200-204,300",
            "204-200",
            "099",
            "600",
            "2xx",
            "+200",
            "２00",
        ] {
            let error = StatusCodes::parse(bad).unwrap_err();
            assert!(error.starts_with(&format!("{bad:?}")), "{bad:?}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn url_paths_are_one_rule_for_every_health_check() {
        for good in [
            "/",
            "/status.php",
            "/health.html",
            "/server-status?auto",
            "/a%20b",
        ] {
            assert_eq!(validate_url_path(good), Ok(()), "{good:?}");
        }
        for bad in [
            "",
            "status.php",
            "//host/x",
            "/a b",
            "/a\tb",
            "/x#frag",
            "/é",
            "http://h/",
        ] {
            let error = validate_url_path(bad).unwrap_err();
            assert!(error.starts_with(&format!("{bad:?}")), "{bad:?}: {error}");
        }
    }
}
