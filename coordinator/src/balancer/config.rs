//! The `[balancer]` section of the coordinator's configuration (optional; `kind = "none"`
//! by default so existing configurations keep working).
//!
//! ```toml
//! [balancer]
//! kind = "haproxy"            # haproxy | octavia | none
//! rise_hold = "3s"            # a node must be ready this long before it is (re)added
//! drain_timeout = "30s"       # longest wait for connections to end on planned removal
//! interval = "250ms"          # reconcile period (the loop also runs on every view change)
//!
//! [balancer.haproxy]
//! admin_socket = "/run/haproxy/admin.sock"
//! backend = "be_web"
//! server_port = 80
//! check = "check inter 1s fall 2 rise 2"   # appended to `add server`; "" = no checks
//! maintenance_map = "/etc/haproxy/triad-maintenance.map"          # maintenance mode's
//! maintenance_allow = "/etc/haproxy/triad-maintenance-allow.acl"  # files, see haproxy.rs
//! # what the check requests and expects is haproxy.cfg's (`option httpchk GET /status.php`,
//! # `http-check expect status 200` in the backend): the runtime API cannot set it
//!
//! [balancer.octavia]
//! cloud = "mycloud"           # clouds.yaml entry (else OS_CLOUD / OS_* / the only cloud)
//! lb_name = "triad"
//! vip_subnet_id = "…"         # only needed to create the load balancer
//! listener_port = 80
//! algorithm = "ROUND_ROBIN"
//! session_persistence = "HTTP_COOKIE"   # none | HTTP_COOKIE | SOURCE_IP | APP_COOKIE:<name>
//! member_port = 80
//! member_subnet_id = "…"
//! active_timeout = "300s"
//! maintenance_page = "10.0.0.5:8099"  # where the coordinator serves maintenance mode's 503
//!                                     # page (listens, and is the maintenance pool's member)
//! [balancer.octavia.monitor]  # the pool's health monitor (a second line); omit = defaults
//! type = "HTTP"
//! delay = 5
//! timeout = 3
//! max_retries = 2
//! max_retries_down = 2
//! url_path = "/"             # HTTP/HTTPS: the agents' [apache] health_path
//! expected_codes = "200"      # HTTP/HTTPS: "200", "200,302" or "200-204"
//! ```
//!
//! It is parsed strictly as part of the coordinator's file (unknown keys rejected with
//! file:line:column); [`BalancerConfig::load`] reads just this section for the binary.
//! packaging/coordinator/coordinator.toml documents every key with its default (its tests,
//! `config::shipped`, fail on a key missing there).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use triad_daemon::config::{
    duration_key as duration, load_toml, parse_toml, validate_url_path, ConfigError, StatusCodes,
};

use super::haproxy::HaproxySettings;
use super::octavia::{MonitorSettings, OctaviaSettings};
use super::plan::Spec;
use super::reconcile::LoopSettings;
use crate::openstack::octavia::SessionPersistence;

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawBalancer {
    kind: Option<String>,
    rise_hold: Option<String>,
    drain_timeout: Option<String>,
    interval: Option<String>,
    haproxy: Option<RawHaproxy>,
    octavia: Option<RawOctavia>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawHaproxy {
    admin_socket: Option<String>,
    backend: Option<String>,
    server_port: Option<u16>,
    check: Option<String>,
    maintenance_map: Option<String>,
    maintenance_allow: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawOctavia {
    cloud: Option<String>,
    lb_name: Option<String>,
    vip_subnet_id: Option<String>,
    listener_name: Option<String>,
    listener_protocol: Option<String>,
    listener_port: Option<u16>,
    pool_name: Option<String>,
    algorithm: Option<String>,
    session_persistence: Option<String>,
    member_port: Option<u16>,
    member_subnet_id: Option<String>,
    active_timeout: Option<String>,
    maintenance_page: Option<String>,
    monitor: Option<RawMonitor>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawMonitor {
    #[serde(rename = "type")]
    kind: Option<String>,
    delay: Option<u32>,
    timeout: Option<u32>,
    max_retries: Option<u32>,
    max_retries_down: Option<u32>,
    url_path: Option<String>,
    expected_codes: Option<String>,
    enabled: Option<bool>,
}

/// Which balancer the coordinator drives.
#[derive(Debug, Clone, PartialEq)]
pub enum BalancerKind {
    None,
    Haproxy(HaproxySettings),
    Octavia {
        cloud: Option<String>,
        settings: Box<OctaviaSettings>,
    },
}

#[derive(Debug, Clone)]
pub struct BalancerConfig {
    pub kind: BalancerKind,
    pub loop_settings: LoopSettings,
}

#[derive(Debug, Deserialize)]
struct OnlyBalancer {
    #[serde(default)]
    balancer: Option<RawBalancer>,
}

impl BalancerConfig {
    /// Read the `[balancer]` section of the coordinator's file (other sections are the
    /// main config's business and were validated there).
    pub fn load(path: &Path) -> Result<BalancerConfig, ConfigError> {
        let raw: OnlyBalancer = load_toml(path)?;
        resolve(path, raw.balancer.as_ref())
    }

    /// [`BalancerConfig::load`] on text; `path` is only used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<BalancerConfig, ConfigError> {
        let raw: OnlyBalancer = parse_toml(path, text)?;
        resolve(path, raw.balancer.as_ref())
    }
}

/// Validate the raw section into a [`BalancerConfig`].
pub fn resolve(path: &Path, raw: Option<&RawBalancer>) -> Result<BalancerConfig, ConfigError> {
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    let empty = RawBalancer::default();
    let raw = raw.unwrap_or(&empty);
    let defaults = Spec::default();
    let spec = Spec::new(
        duration(
            path,
            "balancer.rise_hold",
            raw.rise_hold.as_deref(),
            defaults.rise_hold,
        )?,
        duration(
            path,
            "balancer.drain_timeout",
            raw.drain_timeout.as_deref(),
            defaults.drain_timeout,
        )?,
        defaults.confirm_ttl,
        defaults.settle,
    )
    .map_err(|message| invalid("balancer", message))?;
    let interval = duration(
        path,
        "balancer.interval",
        raw.interval.as_deref(),
        LoopSettings::default().interval,
    )?;
    if interval < Duration::from_millis(50) || interval > Duration::from_secs(60) {
        return Err(invalid(
            "balancer.interval",
            "must be between 50ms and 60s".into(),
        ));
    }
    let kind = match raw.kind.as_deref().unwrap_or("none") {
        "none" => BalancerKind::None,
        "haproxy" => {
            let h = raw.haproxy.clone().unwrap_or_default();
            let backend = h.backend.unwrap_or_else(|| "be_web".into());
            if !super::haproxy::valid_server_name(&backend) {
                return Err(invalid(
                    "balancer.haproxy.backend",
                    format!("{backend:?} is not a valid HAProxy name"),
                ));
            }
            let mut settings = HaproxySettings::new(
                PathBuf::from(
                    h.admin_socket
                        .unwrap_or_else(|| "/run/haproxy/admin.sock".into()),
                ),
                &backend,
                h.server_port.unwrap_or(80),
            );
            if let Some(check) = h.check {
                if check.contains('\n') {
                    return Err(invalid("balancer.haproxy.check", "must be one line".into()));
                }
                settings.check = check;
            }
            for (key, value, field) in [
                (
                    "balancer.haproxy.maintenance_map",
                    h.maintenance_map,
                    &mut settings.maintenance_map,
                ),
                (
                    "balancer.haproxy.maintenance_allow",
                    h.maintenance_allow,
                    &mut settings.maintenance_allow,
                ),
            ] {
                if let Some(path) = value {
                    if !path.starts_with('/') || path.contains(char::is_whitespace) {
                        return Err(invalid(
                            key,
                            format!("{path:?} must be an absolute path without spaces (haproxy.cfg names it)"),
                        ));
                    }
                    *field = PathBuf::from(path);
                }
            }
            BalancerKind::Haproxy(settings)
        }
        "octavia" => {
            let o = raw.octavia.clone().unwrap_or_default();
            let lb_name = o.lb_name.unwrap_or_else(|| "triad".into());
            let mut settings = OctaviaSettings::new(&lb_name, o.member_port.unwrap_or(80));
            settings.vip_subnet_id = o.vip_subnet_id;
            if let Some(name) = o.listener_name {
                settings.listener_name = name;
            }
            if let Some(protocol) = o.listener_protocol {
                settings.listener_protocol = protocol;
            }
            settings.listener_port = o.listener_port.unwrap_or(80);
            if let Some(name) = o.pool_name {
                settings.pool_name = name;
            }
            if let Some(algorithm) = o.algorithm {
                let algorithm = algorithm.to_ascii_uppercase();
                if ![
                    "ROUND_ROBIN",
                    "LEAST_CONNECTIONS",
                    "SOURCE_IP",
                    "SOURCE_IP_PORT",
                ]
                .contains(&algorithm.as_str())
                {
                    return Err(invalid(
                        "balancer.octavia.algorithm",
                        format!("{algorithm:?}: use ROUND_ROBIN, LEAST_CONNECTIONS, SOURCE_IP or SOURCE_IP_PORT"),
                    ));
                }
                settings.lb_algorithm = algorithm;
            }
            if let Some(persistence) = o.session_persistence {
                settings.session_persistence = match persistence.as_str() {
                    "none" => None,
                    "HTTP_COOKIE" | "SOURCE_IP" => Some(SessionPersistence {
                        kind: persistence.clone(),
                        cookie_name: None,
                    }),
                    other => match other.strip_prefix("APP_COOKIE:") {
                        Some(cookie) if !cookie.is_empty() => Some(SessionPersistence {
                            kind: "APP_COOKIE".into(),
                            cookie_name: Some(cookie.to_string()),
                        }),
                        _ => {
                            return Err(invalid(
                                "balancer.octavia.session_persistence",
                                format!("{other:?}: use none, HTTP_COOKIE, SOURCE_IP or APP_COOKIE:<cookie name>"),
                            ))
                        }
                    },
                };
            }
            settings.member_subnet_id = o.member_subnet_id;
            if let Some(page) = o.maintenance_page {
                let addr: std::net::SocketAddr = page.parse().map_err(|_| {
                    invalid(
                        "balancer.octavia.maintenance_page",
                        format!("{page:?} is not an address:port (e.g. \"10.0.0.5:8099\")"),
                    )
                })?;
                if addr.ip().is_unspecified() || addr.port() == 0 {
                    return Err(invalid(
                        "balancer.octavia.maintenance_page",
                        format!("{page:?}: Octavia must reach the page here, so give the coordinator's own address on the member network and a port"),
                    ));
                }
                settings.maintenance_page = Some(addr);
            }
            settings.active_timeout = duration(
                path,
                "balancer.octavia.active_timeout",
                o.active_timeout.as_deref(),
                settings.active_timeout,
            )?;
            if let Some(m) = o.monitor {
                if m.enabled == Some(false) {
                    settings.monitor = None;
                } else {
                    let d = MonitorSettings::default();
                    let http_only = [
                        ("balancer.octavia.monitor.url_path", m.url_path.is_some()),
                        (
                            "balancer.octavia.monitor.expected_codes",
                            m.expected_codes.is_some(),
                        ),
                    ];
                    if let Some(path) = &m.url_path {
                        validate_url_path(path)
                            .map_err(|e| invalid("balancer.octavia.monitor.url_path", e))?;
                    }
                    let expected_codes = match &m.expected_codes {
                        Some(codes) => StatusCodes::parse(codes)
                            .map_err(|e| invalid("balancer.octavia.monitor.expected_codes", e))?,
                        None => d.expected_codes,
                    };
                    let monitor = MonitorSettings {
                        kind: m.kind.unwrap_or(d.kind),
                        delay: m.delay.unwrap_or(d.delay),
                        timeout: m.timeout.unwrap_or(d.timeout),
                        max_retries: m.max_retries.unwrap_or(d.max_retries),
                        max_retries_down: m.max_retries_down.unwrap_or(d.max_retries_down),
                        url_path: m.url_path.unwrap_or(d.url_path),
                        expected_codes,
                    };
                    // Octavia refuses them for other types; silently dropping them would
                    // leave the operator believing the path is checked
                    if let Some(&(key, _)) = http_only.iter().find(|(_, set)| *set) {
                        if !monitor.is_http() {
                            return Err(invalid(
                                key,
                                format!("only for type HTTP or HTTPS, not {:?}", monitor.kind),
                            ));
                        }
                    }
                    if monitor.timeout >= monitor.delay {
                        return Err(invalid(
                            "balancer.octavia.monitor.timeout",
                            format!(
                                "must be below delay ({} ≥ {})",
                                monitor.timeout, monitor.delay
                            ),
                        ));
                    }
                    if !(1..=10).contains(&monitor.max_retries)
                        || !(1..=10).contains(&monitor.max_retries_down)
                    {
                        return Err(invalid(
                            "balancer.octavia.monitor.max_retries",
                            "retries are 1-10".into(),
                        ));
                    }
                    settings.monitor = Some(monitor);
                }
            }
            BalancerKind::Octavia {
                cloud: o.cloud,
                settings: Box::new(settings),
            }
        }
        other => {
            return Err(invalid(
                "balancer.kind",
                format!("{other:?}: use \"haproxy\", \"octavia\" or \"none\""),
            ))
        }
    };
    Ok(BalancerConfig {
        kind,
        loop_settings: LoopSettings { spec, interval },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostile_toml::{document, duration as toml_duration, toml_string, Schema};
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<BalancerConfig, ConfigError> {
        BalancerConfig::parse(Path::new("c.toml"), text)
    }

    #[test]
    fn absent_section_means_no_balancer() {
        assert_eq!(parse("").unwrap().kind, BalancerKind::None);
    }

    #[test]
    fn the_maintenance_page_is_an_address_octavia_can_reach() {
        let with = |page: &str| {
            parse(&format!(
                "[balancer]\nkind = \"octavia\"\n[balancer.octavia]\nmaintenance_page = \"{page}\"\n"
            ))
        };
        match with("10.0.0.5:8099").unwrap().kind {
            BalancerKind::Octavia { settings, .. } => assert_eq!(
                settings.maintenance_page,
                Some("10.0.0.5:8099".parse().unwrap())
            ),
            other => panic!("{other:?}"),
        }
        for bad in ["10.0.0.5", "0.0.0.0:8099", "10.0.0.5:0", "page:80"] {
            let error = with(bad).unwrap_err().to_string();
            assert!(
                error.contains("balancer.octavia.maintenance_page"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn haproxy_and_octavia_sections_resolve() {
        let config = parse(
            "[balancer]\nkind = \"haproxy\"\nrise_hold = \"1s\"\n[balancer.haproxy]\nadmin_socket = \"/tmp/a.sock\"\nbackend = \"be\"\nserver_port = 8081\n",
        )
        .unwrap();
        match config.kind {
            BalancerKind::Haproxy(settings) => {
                assert_eq!(settings.backend, "be");
                assert_eq!(settings.server_port, 8081);
                assert_eq!(settings.check, "check inter 1s fall 2 rise 2");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(config.loop_settings.spec.rise_hold, Duration::from_secs(1));
        let config = parse(
            "[balancer]\nkind = \"octavia\"\n[balancer.octavia]\ncloud = \"c\"\nsession_persistence = \"APP_COOKIE:sid\"\n[balancer.octavia.monitor]\ndelay = 10\ntimeout = 5\nmax_retries = 3\n",
        )
        .unwrap();
        match config.kind {
            BalancerKind::Octavia { cloud, settings } => {
                assert_eq!(cloud.as_deref(), Some("c"));
                assert_eq!(
                    settings.session_persistence.unwrap().cookie_name.as_deref(),
                    Some("sid")
                );
                let monitor = settings.monitor.unwrap();
                assert_eq!(monitor.delay, 10);
                // the defaults: GET / expecting 200, as Octavia's own
                assert_eq!(monitor.url_path, "/");
                assert_eq!(monitor.expected_codes.to_string(), "200");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_owncloud_monitor_checks_status_php() {
        let config = parse(
            "[balancer]\nkind = \"octavia\"\n[balancer.octavia.monitor]\n\
             url_path = \"/status.php\"\nexpected_codes = \"200, 302\"\n",
        )
        .unwrap();
        let BalancerKind::Octavia { settings, .. } = config.kind else {
            panic!("not octavia");
        };
        let monitor = settings.monitor.unwrap();
        assert_eq!(monitor.url_path, "/status.php");
        assert_eq!(monitor.expected_codes.to_string(), "200,302");
    }

    #[test]
    fn bad_values_name_their_key() {
        let error = parse("[balancer]\nkind = \"f5\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("balancer.kind"), "{error}");
        let error = parse(
            "[balancer]\nkind = \"octavia\"\n[balancer.octavia.monitor]\ndelay = 3\ntimeout = 5\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("balancer.octavia.monitor.timeout"),
            "{error}"
        );
        for (monitor, key) in [
            (
                "expected_codes = \"2xx\"",
                "balancer.octavia.monitor.expected_codes",
            ),
            (
                "expected_codes = \"200-\"",
                "balancer.octavia.monitor.expected_codes",
            ),
            (
                "url_path = \"status.php\"",
                "balancer.octavia.monitor.url_path",
            ),
            (
                "type = \"TCP\"\nexpected_codes = \"200\"",
                "balancer.octavia.monitor.expected_codes",
            ),
            (
                "type = \"PING\"\nurl_path = \"/status.php\"",
                "balancer.octavia.monitor.url_path",
            ),
        ] {
            let error = parse(&format!(
                "[balancer]\nkind = \"octavia\"\n[balancer.octavia.monitor]\n{monitor}\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                error.contains(&format!("key `{key}`")),
                "{monitor}: {error}"
            );
        }
        let error = parse("[balancer]\nkind = \"haproxy\"\n[balancer.haproxy]\nsocket = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `socket`"), "{error}");
    }

    /// The `[balancer]` tables and keys, plus unknown ones.
    const SCHEMA: Schema = &[
        (
            "!balancer",
            &["kind", "rise_hold", "drain_timeout", "interval", "bogus"],
        ),
        (
            "balancer.haproxy",
            &[
                "admin_socket",
                "backend",
                "server_port",
                "check",
                "maintenance_map",
                "maintenance_allow",
                "bogus",
            ],
        ),
        (
            "balancer.octavia",
            &[
                "cloud",
                "lb_name",
                "vip_subnet_id",
                "listener_name",
                "listener_protocol",
                "listener_port",
                "pool_name",
                "algorithm",
                "session_persistence",
                "member_port",
                "member_subnet_id",
                "active_timeout",
                "maintenance_page",
                "bogus",
            ],
        ),
        (
            "balancer.octavia.monitor",
            &[
                "type",
                "delay",
                "timeout",
                "max_retries",
                "max_retries_down",
                "url_path",
                "expected_codes",
                "enabled",
                "bogus",
            ],
        ),
    ];

    /// Values the resolver accepts, mostly, and its near misses.
    fn good(table: &str, key: &str) -> BoxedStrategy<String> {
        let pick = |words: &'static [&'static str]| {
            proptest::sample::select(words)
                .prop_map(toml_string)
                .boxed()
        };
        match (table, key) {
            (_, "kind") => pick(&["none", "haproxy", "octavia", "octavia", "haproxy", "f5"]),
            (_, "interval") => toml_duration(20, 70_000),
            (_, "rise_hold" | "drain_timeout" | "active_timeout") => toml_duration(0, 600_000),
            (_, "server_port" | "listener_port" | "member_port") => {
                any::<u16>().prop_map(|p| p.to_string()).boxed()
            }
            (_, "backend") => "[a-z_.:-]{0,10}( x)?".prop_map(|t| toml_string(&t)).boxed(),
            (_, "check") => pick(&["check inter 1s fall 2 rise 2", "", "check\nrise 9"]),
            (_, "algorithm") => pick(&[
                "ROUND_ROBIN",
                "least_connections",
                "SOURCE_IP",
                "source_ip_port",
                "RANDOM",
            ]),
            (_, "session_persistence") => pick(&[
                "none",
                "HTTP_COOKIE",
                "SOURCE_IP",
                "APP_COOKIE:sid",
                "APP_COOKIE:",
                "http_cookie",
            ]),
            (_, "maintenance_page") => pick(&["10.0.0.5:8099", "0.0.0.0:8099", "10.0.0.5", "x:1"]),
            (_, "type") => pick(&["HTTP", "HTTPS", "TCP", "PING"]),
            (_, "url_path") => pick(&["/", "/status.php", "status.php", "//x", "/a b"]),
            (_, "expected_codes") => pick(&["200", "200,302", "200-204", "2xx", "204-200"]),
            (_, "delay" | "timeout" | "max_retries" | "max_retries_down") => {
                prop_oneof![0u32..12, any::<u32>()]
                    .prop_map(|n| n.to_string())
                    .boxed()
            }
            (_, "enabled") => any::<bool>().prop_map(|b| b.to_string()).boxed(),
            _ => "[ -~]{0,16}".prop_map(|t| toml_string(&t)).boxed(),
        }
    }

    proptest! {
        /// Any `[balancer]` section (and any text) resolves or fails with an error naming
        /// the file, never a panic.
        #[test]
        fn balancer_config_never_panics(text in prop_oneof![1 => any::<String>(), 4 => document(SCHEMA, good)]) {
            match parse(&text) {
                Ok(config) => {
                    let interval = config.loop_settings.interval;
                    prop_assert!(interval >= Duration::from_millis(50) && interval <= Duration::from_secs(60));
                    if let BalancerKind::Octavia { settings, .. } = &config.kind {
                        if let Some(monitor) = &settings.monitor {
                            prop_assert!(monitor.timeout < monitor.delay);
                        }
                    }
                }
                Err(error) => {
                    let error = error.to_string();
                    prop_assert!(error.starts_with("config c.toml"), "{}", error);
                    prop_assert!(!error.contains('\n'), "{}", error);
                }
            }
        }

        /// Valid HAProxy and Octavia sections come back as written.
        #[test]
        fn balancer_config_round_trips(
            backend in "[A-Za-z0-9._:-]{1,20}",
            port in any::<u16>(),
            socket in "/[a-z/]{1,20}",
            interval_ms in 50u64..=60_000,
            lb in "[a-z][a-z0-9-]{0,20}",
            algorithm in proptest::sample::select(&["ROUND_ROBIN", "LEAST_CONNECTIONS", "SOURCE_IP", "SOURCE_IP_PORT"][..]),
            cookie in "[A-Za-z0-9_]{1,12}",
            (delay, timeout) in (2u32..100).prop_flat_map(|d| (Just(d), 1..d)),
            retries in 1u32..=10,
            url_path in "/([a-z0-9._-]{1,12}(/[a-z0-9._-]{1,8})?)?",
            codes in prop_oneof![
                proptest::collection::vec(100u16..=599, 1..4).prop_map(|c| c.iter().map(u16::to_string).collect::<Vec<_>>().join(",")),
                (100u16..=599).prop_flat_map(|low| (Just(low), low..=599)).prop_map(|(l, h)| format!("{l}-{h}")),
            ],
        ) {
            let config = parse(&format!(
                "[balancer]\nkind = \"haproxy\"\ninterval = \"{interval_ms}ms\"\n[balancer.haproxy]\n\
                 backend = {}\nserver_port = {port}\nadmin_socket = {}\n",
                toml_string(&backend),
                toml_string(&socket),
            ))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(config.loop_settings.interval, Duration::from_millis(interval_ms));
            prop_assert_eq!(config.kind, BalancerKind::Haproxy(HaproxySettings::new(socket.into(), &backend, port)));
            let config = parse(&format!(
                "[balancer]\nkind = \"octavia\"\n[balancer.octavia]\nlb_name = {}\nalgorithm = \"{}\"\n\
                 session_persistence = \"APP_COOKIE:{cookie}\"\nmember_port = {port}\n\
                 [balancer.octavia.monitor]\ndelay = {delay}\ntimeout = {timeout}\nmax_retries = {retries}\n\
                 url_path = {}\nexpected_codes = \"{codes}\"\n",
                toml_string(&lb),
                algorithm.to_ascii_lowercase(),
                toml_string(&url_path),
            ))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let BalancerKind::Octavia { settings, .. } = config.kind else {
                return Err(TestCaseError::fail("not octavia"));
            };
            prop_assert_eq!(&settings.lb_name, &lb);
            prop_assert_eq!(&settings.lb_algorithm, algorithm);
            prop_assert_eq!(settings.member_port, port);
            prop_assert_eq!(
                settings.session_persistence,
                Some(SessionPersistence { kind: "APP_COOKIE".into(), cookie_name: Some(cookie) })
            );
            let monitor = settings.monitor.expect("a monitor");
            prop_assert_eq!((monitor.delay, monitor.timeout, monitor.max_retries), (delay, timeout, retries));
            prop_assert_eq!(&monitor.url_path, &url_path);
            prop_assert_eq!(monitor.expected_codes.to_string(), codes);
        }
    }
}
