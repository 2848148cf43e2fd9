//! HAProxy backend: membership through the runtime API on HAProxy's admin unix socket.
//!
//! One command per connection (HAProxy's non-interactive mode: write the command and a
//! newline, read the answer until HAProxy closes the socket). This costs one connect per
//! command, which is negligible on a unix socket, and it means a half-read answer can never
//! desynchronise the next command, which `prompt` mode would risk after a timeout.
//!
//! Commands used (measured on HAProxy 2.6.12, `shared/testbed.md` section 7):
//! `show servers state BACKEND` (adopted at start and observed every round),
//! `show stat` (current sessions per server, for draining), `add server BE/NAME ADDR:PORT
//! check inter 1s fall 2 rise 2` + `enable health` + `enable server` (dynamic servers do not
//! inherit `default-server`, so the check settings are explicit; the checks stay on as a
//! second line of defence), `set server BE/NAME state ready|drain|maint` + `shutdown sessions server`
//! (Disable after a drain; not for a member that failed, whose pending requests HAProxy
//! retries elsewhere), `enable dynamic-cookie backend BE` after each add (session persistence:
//! the backend's `cookie ... dynamic`; HAProxy 2.6 refuses `cookie` on `add server`), and
//! `del server` (Remove, only accepted in maint). Deletion is planned only
//! after the server has been in maint for a while: HAProxy 2.6.12 crashed (SIGSEGV, no log
//! line) in the failover bench when a server was deleted ~0.3 s after its backend died
//! under load, presumably on a stream still waiting to retry on it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::{Balancer, BalancerError, Member, MemberChange, MemberState};

/// Settings of one managed HAProxy backend.
#[derive(Debug, Clone, PartialEq)]
pub struct HaproxySettings {
    pub admin_socket: PathBuf,
    pub backend: String,
    pub server_port: u16,
    /// Appended to `add server` (e.g. `check inter 1s fall 2 rise 2`); empty = no checks.
    pub check: String,
    pub timeout: Duration,
    /// Maintenance mode's map and allow list, as haproxy.cfg loads them
    /// ([`maintenance_frontend_line`]).
    pub maintenance_map: PathBuf,
    pub maintenance_allow: PathBuf,
}

/// The default paths of maintenance mode's map and allow list.
pub const MAINTENANCE_MAP: &str = "/etc/haproxy/triad-maintenance.map";
pub const MAINTENANCE_ALLOW: &str = "/etc/haproxy/triad-maintenance-allow.acl";

/// The frontend rule that makes maintenance mode work: while the map has the key `on`,
/// a client not in the allow list gets 503 with the map's `retry-after` and its
/// url-encoded `message`. Both files must exist (empty) when HAProxy starts.
pub fn maintenance_frontend_line(map: &Path, allow: &Path) -> String {
    let map = map.display();
    format!(
        "http-request return status 503 content-type \"text/plain; charset=utf-8\" lf-string \"%[str(message),map({map}),url_dec]\" hdr Retry-After \"%[str(retry-after),map({map})]\" if {{ str(on),map({map}) -m found }} !{{ src -f {} }}",
        allow.display()
    )
}

/// The backend lines that send a request whose node just failed to another node instead
/// of answering an error: up to 3 retries, each on another server; on a refused or timed-out
/// connection, an empty or broken answer, a 5xx, and a 403, which is Apache's answer
/// (AH00036) when a lookup on the volume fails for a moment as a replica vanishes
/// (ENOTCONN); never for a POST, which may have been acted on.
pub const RETRY_LINES: [&str; 4] = [
    "retries 3",
    "option redispatch 1",
    "retry-on all-retryable-errors 403",
    "http-request disable-l7-retry if METH_POST",
];

/// Retry-After of HAProxy's own 503 (no server can serve).
pub const NO_SERVER_RETRY_AFTER: u32 = 30;

/// The `defaults` (or frontend) line that gives HAProxy's own 503, sent when no server of
/// the backend is up (every node down or failing its check, the kept last member too),
/// a Retry-After and a plain message instead of HAProxy's HTML error page.
pub fn no_server_error_line() -> String {
    format!(
        "http-error status 503 content-type \"text/plain; charset=utf-8\" string \"The service is recovering; please retry shortly.\" hdr Retry-After {NO_SERVER_RETRY_AFTER}"
    )
}

/// `text` percent-encoded but for unreserved ASCII (map values must not hold spaces).
pub fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The entries of `show map FILE` (key, value), or why the answer is not a map's.
pub fn parse_map(answer: &str) -> Result<Vec<(String, String)>, String> {
    answer
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(id), Some(key), value) if id.starts_with("0x") => {
                    Ok((key.to_string(), value.unwrap_or("").to_string()))
                }
                _ => Err(line.trim().to_string()),
            }
        })
        .collect()
}

/// Pure: the runtime API commands that turn `map` and `allow` (as observed) into `wanted`.
/// On: the allow list first, then the message and Retry-After, `on` last (clients never see
/// a 503 without them); off: `on` removed first.
pub fn maintenance_commands(
    map_file: &Path,
    allow_file: &Path,
    map: &[(String, String)],
    allow: &[String],
    wanted: Option<&crate::maintenance::Maintenance>,
) -> Vec<String> {
    let (map_file, allow_file) = (map_file.display(), allow_file.display());
    let values = |key: &str| -> Vec<&str> {
        map.iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let mut commands = Vec::new();
    let wanted_allow: Vec<String> = wanted
        .map(|m| m.allow.iter().map(|ip| ip.to_string()).collect())
        .unwrap_or_default();
    let allow_commands = |commands: &mut Vec<String>| {
        for ip in &wanted_allow {
            if !allow.contains(ip) {
                commands.push(format!("add acl {allow_file} {ip}"));
            }
        }
        for ip in allow {
            if !wanted_allow.contains(ip) {
                commands.push(format!("del acl {allow_file} {ip}"));
            }
        }
    };
    match wanted {
        Some(m) => {
            allow_commands(&mut commands);
            for (key, value) in [
                ("message", url_encode(&m.message)),
                ("retry-after", m.retry_after_secs.to_string()),
                ("on", "1".to_string()),
            ] {
                let present = values(key);
                if present.is_empty() {
                    commands.push(format!("add map {map_file} {key} {value}"));
                } else if present.iter().any(|v| *v != value) {
                    commands.push(format!("set map {map_file} {key} {value}"));
                }
            }
        }
        None => {
            for key in ["on", "message", "retry-after"] {
                if !values(key).is_empty() {
                    commands.push(format!("del map {map_file} {key}"));
                }
            }
            allow_commands(&mut commands);
        }
    }
    commands
}

impl HaproxySettings {
    pub fn new(admin_socket: PathBuf, backend: &str, server_port: u16) -> HaproxySettings {
        HaproxySettings {
            admin_socket,
            backend: backend.to_string(),
            server_port,
            check: "check inter 1s fall 2 rise 2".into(),
            timeout: Duration::from_secs(2),
            maintenance_map: PathBuf::from(MAINTENANCE_MAP),
            maintenance_allow: PathBuf::from(MAINTENANCE_ALLOW),
        }
    }
}

/// A thin client for the runtime API: one command per connection.
#[derive(Debug, Clone)]
pub struct RuntimeApi {
    socket: PathBuf,
    timeout: Duration,
}

impl RuntimeApi {
    pub fn new(socket: &Path, timeout: Duration) -> RuntimeApi {
        RuntimeApi {
            socket: socket.to_path_buf(),
            timeout,
        }
    }

    /// Send one command and return HAProxy's whole answer.
    pub async fn command(&self, command: &str) -> Result<String, BalancerError> {
        debug_assert!(!command.contains('\n'), "one command per connection");
        let socket_error = |message: String| BalancerError::HaproxySocket {
            socket: self.socket.display().to_string(),
            message,
        };
        let exchange = async {
            let mut stream = UnixStream::connect(&self.socket)
                .await
                .map_err(|e| socket_error(connect_error(&e)))?;
            stream
                .write_all(format!("{command}\n").as_bytes())
                .await
                .map_err(|e| socket_error(format!("cannot send `{command}`: {e}")))?;
            let mut answer = String::new();
            stream
                .read_to_string(&mut answer)
                .await
                .map_err(|e| socket_error(format!("cannot read the answer to `{command}`: {e}")))?;
            Ok(answer)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                socket_error(format!(
                    "no answer to `{command}` within {:?}",
                    self.timeout
                ))
            })?
    }

    /// A command whose success is an empty answer or one of `ok_answers`.
    async fn expect(&self, command: &str, ok_answers: &[&str]) -> Result<(), BalancerError> {
        let answer = self.command(command).await?;
        let trimmed = answer.trim();
        if trimmed.is_empty() || ok_answers.iter().any(|ok| trimmed.starts_with(ok)) {
            Ok(())
        } else {
            Err(BalancerError::HaproxyRefused {
                command: command.to_string(),
                answer: trimmed.to_string(),
            })
        }
    }

    pub async fn servers_state(&self, backend: &str) -> Result<Vec<ServerState>, BalancerError> {
        let command = format!("show servers state {backend}");
        let answer = self.command(&command).await?;
        parse_servers_state(&answer)
            .map_err(|message| BalancerError::HaproxyParse { command, message })
    }

    /// Current sessions per server of `backend`, from `show stat`.
    pub async fn sessions(&self, backend: &str) -> Result<BTreeMap<String, u64>, BalancerError> {
        let answer = self.command("show stat").await?;
        parse_stat_sessions(&answer, backend).map_err(|message| BalancerError::HaproxyParse {
            command: "show stat".into(),
            message,
        })
    }
}

/// Why connecting failed, with what to do when the coordinator lacks the permission: the
/// packaged coordinator runs as `triad-coordinator`, and Debian's haproxy gives its admin
/// socket to group haproxy (`mode 660`), which the package adds that user to; a membership
/// added while the coordinator runs counts only from its next start.
fn connect_error(error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::PermissionDenied {
        format!(
            "cannot connect: {error} (the coordinator's user needs read and write access to \
             the socket: for Debian's haproxy, membership of group haproxy, which the \
             triad-coordinator package adds; then restart the coordinator)"
        )
    } else {
        format!("cannot connect: {error}")
    }
}

/// One row of `show servers state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    pub backend: String,
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    /// 0 stopped, 1 starting, 2 running, 3 stopping.
    pub op_state: u8,
    /// Bit mask: 0x01 forced maint, 0x02 inherited maint, 0x04 maint from the config,
    /// 0x08 forced drain, 0x10 inherited drain, 0x20 maint by DNS resolution, 0x40 maint
    /// of a hidden server.
    pub admin_state: u8,
    pub weight: u32,
}

impl ServerState {
    pub fn member_state(&self) -> MemberState {
        if self.admin_state & (0x01 | 0x02 | 0x04 | 0x20 | 0x40) != 0 {
            MemberState::Maint
        } else if self.admin_state & (0x08 | 0x10) != 0 {
            MemberState::Draining
        } else {
            MemberState::Active
        }
    }
}

/// Parse `show servers state` (format version 1): a version line, a `# ` header naming
/// the columns, then one row per server. Columns are found by name, so extra columns in
/// later versions do not break the parser.
pub fn parse_servers_state(text: &str) -> Result<Vec<ServerState>, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let version = lines.next().ok_or("empty answer")?;
    if version != "1" {
        return Err(format!(
            "unsupported format version line {version:?} (expected \"1\")"
        ));
    }
    let header = lines
        .next()
        .and_then(|l| l.strip_prefix('#'))
        .ok_or("missing `# be_id ...` header line")?;
    let columns: Vec<&str> = header.split_whitespace().collect();
    let column = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| format!("header has no column {name}"))
    };
    let (be, name, addr, op, admin, weight, port) = (
        column("be_name")?,
        column("srv_name")?,
        column("srv_addr")?,
        column("srv_op_state")?,
        column("srv_admin_state")?,
        column("srv_uweight")?,
        column("srv_port")?,
    );
    let mut servers = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .copied()
                .ok_or_else(|| format!("row {line:?} has no column {}", columns[i]))
        };
        let number = |i: usize| -> Result<u32, String> {
            let text = field(i)?;
            text.parse()
                .map_err(|_| format!("row {line:?}: {} = {text:?} is not a number", columns[i]))
        };
        let address_text = field(addr)?;
        servers.push(ServerState {
            backend: field(be)?.to_string(),
            name: field(name)?.to_string(),
            address: address_text
                .parse()
                .map_err(|_| format!("row {line:?}: srv_addr {address_text:?} is not an IP"))?,
            port: u16::try_from(number(port)?)
                .map_err(|_| format!("row {line:?}: bad srv_port"))?,
            // refused rather than truncated: 256 must not read as 0 (active)
            op_state: u8::try_from(number(op)?)
                .map_err(|_| format!("row {line:?}: bad srv_op_state"))?,
            admin_state: u8::try_from(number(admin)?)
                .map_err(|_| format!("row {line:?}: bad srv_admin_state"))?,
            weight: number(weight)?,
        });
    }
    Ok(servers)
}

/// Parse `show stat` CSV: current sessions (`scur`) per server of `backend`.
pub fn parse_stat_sessions(text: &str, backend: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut lines = text.lines();
    let header = lines
        .next()
        .and_then(|l| l.strip_prefix("# "))
        .ok_or("missing `# pxname,svname,...` header")?;
    let columns: Vec<&str> = header.split(',').collect();
    let index = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| format!("show stat header has no {name} column"))
    };
    let (px, sv, scur) = (index("pxname")?, index("svname")?, index("scur")?);
    let mut sessions = BTreeMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.get(px) != Some(&backend) {
            continue;
        }
        let Some(server) = fields.get(sv) else {
            continue;
        };
        if *server == "BACKEND" || *server == "FRONTEND" {
            continue;
        }
        let count = fields
            .get(scur)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("row for {backend}/{server} has no numeric scur"))?;
        sessions.insert(server.to_string(), count);
    }
    Ok(sessions)
}

/// HAProxy names: letters, digits, '-', '_', '.', ':' (the node id becomes the name).
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// The [`Balancer`] over one HAProxy backend. Every server in that backend is Triad's: the
/// backend is dedicated to the service.
#[derive(Debug, Clone)]
pub struct HaproxyBalancer {
    settings: HaproxySettings,
    api: RuntimeApi,
}

impl HaproxyBalancer {
    pub fn new(settings: HaproxySettings) -> HaproxyBalancer {
        let api = RuntimeApi::new(&settings.admin_socket, settings.timeout);
        HaproxyBalancer { settings, api }
    }

    pub fn api(&self) -> &RuntimeApi {
        &self.api
    }

    fn server(&self, name: &str) -> Result<String, BalancerError> {
        if !valid_server_name(name) {
            return Err(BalancerError::HaproxyRefused {
                command: format!("(server name {name:?})"),
                answer: "not a valid HAProxy server name; node ids must use [A-Za-z0-9._:-]".into(),
            });
        }
        Ok(format!("{}/{}", self.settings.backend, name))
    }

    async fn apply_one(&self, change: &MemberChange) -> Result<(), BalancerError> {
        let server = self.server(change.name())?;
        match change {
            MemberChange::Add { address, port, .. } => {
                let target = match address {
                    IpAddr::V4(v4) => format!("{v4}:{port}"),
                    IpAddr::V6(v6) => format!("[{v6}]:{port}"),
                };
                let command = format!("add server {server} {target} {}", self.settings.check);
                self.api
                    .expect(command.trim_end(), &["New server registered."])
                    .await?;
                if !self.settings.check.is_empty() {
                    self.api
                        .expect(&format!("enable health {server}"), &[])
                        .await?;
                }
                self.api
                    .expect(&format!("enable server {server}"), &[])
                    .await?;
                // HAProxy 2.6 refuses `cookie` on a dynamic server: a backend with
                // `cookie NAME insert ... dynamic` and a `dynamic-cookie-key` gives each
                // server a cookie from its address, computed when dynamic cookies are
                // (re-)enabled. Clients then stay on the node that served them while it is
                // up. Answered with nothing, also by a backend without cookies.
                self.api
                    .expect(
                        &format!("enable dynamic-cookie backend {}", self.settings.backend),
                        &[],
                    )
                    .await
            }
            MemberChange::SetActive { .. } => {
                self.api
                    .expect(&format!("set server {server} state ready"), &[])
                    .await
            }
            MemberChange::Drain { .. } => {
                self.api
                    .expect(&format!("set server {server} state drain"), &[])
                    .await
            }
            MemberChange::Disable { shut_sessions, .. } => {
                self.api
                    .expect(&format!("set server {server} state maint"), &[])
                    .await?;
                // A drain that ended or timed out: close what is still attached so nothing
                // waits on it. A member that stopped serving unplanned keeps its streams:
                // HAProxy retries the pending ones elsewhere (retries, redispatch), which
                // shutting them would turn into empty replies.
                if *shut_sessions {
                    self.api
                        .expect(&format!("shutdown sessions server {server}"), &[])
                        .await?;
                }
                Ok(())
            }
            MemberChange::Remove { .. } => {
                // Only ever planned for a server that has been in maint for a while.
                self.api
                    .expect(&format!("del server {server}"), &["Server deleted."])
                    .await
            }
        }
    }
}

#[async_trait]
impl Balancer for HaproxyBalancer {
    fn kind(&self) -> &'static str {
        "haproxy"
    }

    fn member_port(&self) -> u16 {
        self.settings.server_port
    }

    async fn observe(&self) -> Result<Vec<Member>, BalancerError> {
        let servers = self.api.servers_state(&self.settings.backend).await?;
        let sessions = self.api.sessions(&self.settings.backend).await?;
        Ok(servers
            .into_iter()
            .filter(|s| s.backend == self.settings.backend)
            .map(|s| Member {
                connections: sessions.get(&s.name).copied(),
                state: s.member_state(),
                health: Some(
                    match s.op_state {
                        0 => "DOWN",
                        1 => "STARTING",
                        2 => "UP",
                        3 => "STOPPING",
                        _ => "UNKNOWN",
                    }
                    .to_string(),
                ),
                name: s.name,
                address: s.address,
                port: s.port,
            })
            .collect())
    }

    async fn maintenance(
        &self,
        wanted: Option<&crate::maintenance::Maintenance>,
    ) -> Result<bool, BalancerError> {
        let (map_file, allow_file) = (
            &self.settings.maintenance_map,
            &self.settings.maintenance_allow,
        );
        let not_loaded = |file: &Path, answer: String| {
            BalancerError::HaproxyRefused {
            command: format!("show map|acl {}", file.display()),
            answer: format!(
                "{answer}: haproxy.cfg does not load {}; maintenance mode needs both files (empty) and this rule in the frontend: {}",
                file.display(),
                maintenance_frontend_line(map_file, allow_file)
            ),
        }
        };
        let answer = self
            .api
            .command(&format!("show map {}", map_file.display()))
            .await?;
        let map = parse_map(&answer).map_err(|line| not_loaded(map_file, line))?;
        let answer = self
            .api
            .command(&format!("show acl {}", allow_file.display()))
            .await?;
        let allow: Vec<String> = parse_map(&answer)
            .map_err(|line| not_loaded(allow_file, line))?
            .into_iter()
            .map(|(pattern, _)| pattern)
            .collect();
        let commands = maintenance_commands(map_file, allow_file, &map, &allow, wanted);
        for command in &commands {
            self.api.expect(command, &[]).await?;
        }
        if !commands.is_empty() {
            tracing::info!(
                balancer = "haproxy",
                on = wanted.is_some(),
                ?commands,
                "maintenance mode applied"
            );
        }
        Ok(!commands.is_empty())
    }

    /// Applies the changes in order and stops at the first error (the planner orders
    /// additions before removals, so a failure never leaves fewer members than planned).
    async fn apply(&self, changes: &[MemberChange]) -> Result<(), BalancerError> {
        for change in changes {
            self.apply_one(change).await?;
            tracing::info!(balancer = "haproxy", backend = %self.settings.backend, change = ?change, "member changed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STATE: &str = "1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 be_web 1 n1 127.0.1.1 2 0 1 1 2 15 3 3 6 0 0 0 - 80 - 0 0 - - 0
3 be_web 2 n2 127.0.1.2 2 8 1 1 2 15 3 3 6 0 0 0 - 80 - 0 0 - - 0
3 be_web 3 n3 127.0.1.3 0 1 1 1 2 15 3 3 6 0 0 0 - 80 - 0 0 - - 0
";

    #[test]
    fn a_refused_connection_says_how_to_get_the_permission() {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let message = connect_error(&denied);
        assert!(message.starts_with("cannot connect: "), "{message}");
        assert!(message.contains("group haproxy"), "{message}");
        assert!(message.contains("restart the coordinator"), "{message}");
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(
            connect_error(&missing),
            format!("cannot connect: {missing}")
        );
    }

    #[test]
    fn the_shipped_config_shows_the_haproxy_lines_as_the_code_writes_them() {
        let shipped = include_str!("../../../packaging/coordinator/coordinator.toml");
        for line in [
            maintenance_frontend_line(Path::new(MAINTENANCE_MAP), Path::new(MAINTENANCE_ALLOW)),
            no_server_error_line(),
        ]
        .into_iter()
        .chain(RETRY_LINES.iter().map(|l| format!("    {l}")))
        {
            assert!(
                shipped.contains(&format!("##   {line}\n")),
                "coordinator.toml lacks {line}"
            );
        }
    }

    #[test]
    fn maintenance_goes_on_allow_list_and_message_first_and_off_on_first() {
        use crate::maintenance::Maintenance;
        let (map, acl) = (Path::new("/m.map"), Path::new("/a.acl"));
        let on = Maintenance {
            message: "Upgrading, back at 14:00".into(),
            retry_after_secs: 120,
            allow: vec!["10.0.0.9".parse().unwrap()],
            since: 0,
            bypass: String::new(),
        };
        assert_eq!(
            maintenance_commands(map, acl, &[], &[], Some(&on)),
            [
                "add acl /a.acl 10.0.0.9",
                "add map /m.map message Upgrading%2C%20back%20at%2014%3A00",
                "add map /m.map retry-after 120",
                "add map /m.map on 1",
            ]
        );
        let applied: Vec<(String, String)> = [
            ("message", "Upgrading%2C%20back%20at%2014%3A00"),
            ("retry-after", "60"),
            ("on", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let allowed = vec!["10.0.0.9".to_string(), "10.0.0.1".to_string()];
        assert_eq!(
            maintenance_commands(map, acl, &applied, &allowed, Some(&on)),
            ["del acl /a.acl 10.0.0.1", "set map /m.map retry-after 120"],
            "only what differs"
        );
        assert_eq!(
            maintenance_commands(map, acl, &applied, &allowed, None),
            [
                "del map /m.map on",
                "del map /m.map message",
                "del map /m.map retry-after",
                "del acl /a.acl 10.0.0.9",
                "del acl /a.acl 10.0.0.1",
            ]
        );
        assert!(maintenance_commands(map, acl, &[], &[], None).is_empty());
    }

    #[test]
    fn map_answers_are_parsed_and_an_unknown_map_is_an_error() {
        assert_eq!(
            parse_map("0x7fc5 message Down%20now\n0x5605 on 1\n\n").unwrap(),
            [
                ("message".to_string(), "Down%20now".to_string()),
                ("on".into(), "1".into())
            ]
        );
        assert_eq!(parse_map("0x56 127.0.0.1\n").unwrap()[0].0, "127.0.0.1");
        assert!(parse_map("").unwrap().is_empty());
        assert!(parse_map("Unknown map identifier. Please use #<id> or <file>.\n").is_err());
        assert_eq!(url_encode("a b/é"), "a%20b%2F%C3%A9");
    }

    #[test]
    fn servers_state_is_parsed_by_column_name() {
        let servers = parse_servers_state(STATE).unwrap();
        assert_eq!(servers.len(), 3);
        assert_eq!(servers[0].name, "n1");
        assert_eq!(servers[0].address, "127.0.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(servers[0].port, 80);
        assert_eq!(servers[0].member_state(), MemberState::Active);
        assert_eq!(servers[1].member_state(), MemberState::Draining);
        assert_eq!(servers[2].member_state(), MemberState::Maint);
        assert_eq!(servers[2].op_state, 0);
    }

    #[test]
    fn an_empty_backend_and_garbage_are_told_apart() {
        let empty = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_port\n";
        assert!(parse_servers_state(empty).unwrap().is_empty());
        let error = parse_servers_state("Can't find backend.\n").unwrap_err();
        assert!(error.contains("format version"), "{error}");
        let error = parse_servers_state("1\n# be_name srv_name\nbe n1\n").unwrap_err();
        assert!(error.contains("srv_addr"), "{error}");
        let bad_row = "1\n# be_name srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_port\nbe n1 notanip 2 0 1 80\n";
        assert!(parse_servers_state(bad_row)
            .unwrap_err()
            .contains("not an IP"));
    }

    #[test]
    fn stat_sessions_are_read_for_the_backend_only() {
        let stat = "# pxname,svname,qcur,qmax,scur,smax\nfe,FRONTEND,,,4,9\nbe_web,n1,0,0,2,5\nbe_web,n2,0,0,0,1\nbe_web,BACKEND,0,0,2,5\nother,n1,0,0,7,7\n";
        let sessions = parse_stat_sessions(stat, "be_web").unwrap();
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions["n1"], 2);
        assert_eq!(sessions["n2"], 0);
    }

    /// Found while writing the properties: states were cast with `as u8`, so an admin
    /// state of 256 (maint bits beyond the mask) read as 0, an active server.
    #[test]
    fn out_of_range_states_are_refused_not_truncated() {
        let header =
            "1\n# be_name srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_port\n";
        let error =
            parse_servers_state(&format!("{header}be n1 10.0.0.1 2 256 1 80\n")).unwrap_err();
        assert!(error.contains("srv_admin_state"), "{error}");
        let error =
            parse_servers_state(&format!("{header}be n1 10.0.0.1 258 0 1 80\n")).unwrap_err();
        assert!(error.contains("srv_op_state"), "{error}");
    }

    #[test]
    fn server_names_are_checked() {
        assert!(valid_server_name("node-1.a_b:2"));
        assert!(!valid_server_name("n 1"));
        assert!(!valid_server_name(""));
        assert!(!valid_server_name("a/b"));
    }

    /// Columns of `show servers state` (format 1) the parser reads, and some it skips.
    const STATE_COLUMNS: [&str; 7] = [
        "be_name",
        "srv_name",
        "srv_addr",
        "srv_op_state",
        "srv_admin_state",
        "srv_uweight",
        "srv_port",
    ];
    const OTHER_COLUMNS: [&str; 4] = ["be_id", "srv_id", "srv_iweight", "srv_fqdn"];

    /// A field as HAProxy might print it, or not.
    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u64..300).prop_map(|n| n.to_string()),
            Just("4294967296".to_string()),
            Just("65536".to_string()),
            Just("-1".to_string()),
            Just("-".to_string()),
            any::<std::net::IpAddr>().prop_map(|ip| ip.to_string()),
            "[a-z_]{1,8}",
            "[^ \\n]{1,10}",
        ]
    }

    /// A field of `column` as HAProxy prints it; now and then any field, or none.
    fn typed_field(column: &str) -> BoxedStrategy<Option<String>> {
        let good = match column {
            "srv_addr" => any::<std::net::IpAddr>()
                .prop_map(|ip| ip.to_string())
                .boxed(),
            "be_name" | "srv_name" | "srv_fqdn" => "[a-z_]{1,8}".boxed(),
            _ => prop_oneof![12 => 0u32..4, 1 => 0u32..300, 1 => Just(65_535), 1 => Just(65_536)]
                .prop_map(|n| n.to_string())
                .boxed(),
        };
        prop_oneof![30 => good.prop_map(Some), 1 => field().prop_map(Some), 1 => Just(None)].boxed()
    }

    /// Answers shaped like `show servers state`: a version line, a header of known and
    /// unknown columns (some missing, in any order), rows of mostly well-typed fields.
    fn servers_state_like() -> impl Strategy<Value = String> {
        let header = (
            prop_oneof![3 => Just(STATE_COLUMNS.to_vec()), 1 => proptest::sample::subsequence(STATE_COLUMNS.to_vec(), 5..=7)],
            proptest::sample::subsequence(OTHER_COLUMNS.to_vec(), 0..=4),
        )
            .prop_flat_map(|(a, b)| Just([a, b].concat()).prop_shuffle());
        let version = prop_oneof![16 => Just("1"), 1 => Just("2"), 1 => Just("")];
        (version, header)
            .prop_flat_map(|(version, header)| {
                let row: Vec<_> = header.iter().map(|c| typed_field(c)).collect();
                (
                    Just(version),
                    Just(header),
                    proptest::collection::vec(row, 0..4),
                )
            })
            .prop_map(|(version, header, rows)| {
                let rows: Vec<String> = rows
                    .iter()
                    .map(|r| r.iter().flatten().cloned().collect::<Vec<_>>().join(" "))
                    .collect();
                format!("{version}\n# {}\n{}\n", header.join(" "), rows.join("\n"))
            })
    }

    /// `show stat` CSV: a header naming pxname/svname/scur among others, rows of any fields.
    fn stat_like() -> impl Strategy<Value = String> {
        let header = proptest::sample::subsequence(
            vec!["pxname", "svname", "qcur", "scur", "smax", "status"],
            3..=6,
        )
        .prop_shuffle();
        let name = prop_oneof![
            Just("be_web".to_string()),
            Just("BACKEND".to_string()),
            Just("FRONTEND".to_string()),
            "[a-z0-9_]{0,6}"
        ];
        let value = prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            Just(String::new()),
            Just("-1".to_string()),
            "[^,\\n]{0,8}"
        ];
        let row = proptest::collection::vec(prop_oneof![name, value], 0..8);
        (
            prop_oneof![Just("# "), Just("#"), Just("")],
            header,
            proptest::collection::vec(row, 0..6),
        )
            .prop_map(|(hash, header, rows)| {
                let rows: Vec<String> = rows.iter().map(|r| r.join(",")).collect();
                format!("{hash}{}\n{}\n", header.join(","), rows.join("\n"))
            })
    }

    proptest! {
        /// The admin socket's answer is read as text from another process: any answer gives
        /// servers or an error, and every row becomes a server or fails the whole answer.
        #[test]
        fn servers_state_never_panics(text in prop_oneof![any::<String>(), servers_state_like()]) {
            if let Ok(servers) = parse_servers_state(&text) {
                let rows = text.lines().map(str::trim).filter(|l| !l.is_empty()).count();
                prop_assert_eq!(servers.len() + 2, rows);
            }
        }

        /// Servers written with the columns in any order, among unknown ones, read back.
        #[test]
        fn servers_state_round_trips(
            servers in proptest::collection::vec(
                ("[a-z_]{1,8}", "[A-Za-z0-9._:-]{1,12}", any::<std::net::IpAddr>(), any::<u16>(), any::<u8>(), any::<u8>(), any::<u32>()),
                0..5,
            ),
            order in Just([STATE_COLUMNS.as_slice(), OTHER_COLUMNS.as_slice()].concat()).prop_shuffle(),
        ) {
            let want: Vec<ServerState> = servers
                .into_iter()
                .map(|(backend, name, address, port, op_state, admin_state, weight)| ServerState { backend, name, address, port, op_state, admin_state, weight })
                .collect();
            let mut text = format!("1\n# {}\n", order.join(" "));
            for s in &want {
                let row: Vec<String> = order
                    .iter()
                    .map(|column| match *column {
                        "be_name" => s.backend.clone(),
                        "srv_name" => s.name.clone(),
                        "srv_addr" => s.address.to_string(),
                        "srv_op_state" => s.op_state.to_string(),
                        "srv_admin_state" => s.admin_state.to_string(),
                        "srv_uweight" => s.weight.to_string(),
                        "srv_port" => s.port.to_string(),
                        _ => "-".to_string(),
                    })
                    .collect();
                text.push_str(&row.join(" "));
                text.push('\n');
            }
            prop_assert_eq!(parse_servers_state(&text), Ok(want));
        }

        /// Any `show stat` answer gives per-server counts of real servers, or an error.
        #[test]
        fn stat_sessions_never_panics(
            text in prop_oneof![any::<String>(), stat_like()],
            backend in prop_oneof![Just("be_web".to_string()), Just(String::new()), any::<String>()],
        ) {
            if let Ok(sessions) = parse_stat_sessions(&text, &backend) {
                prop_assert!(!sessions.contains_key("BACKEND") && !sessions.contains_key("FRONTEND"));
                prop_assert!(sessions.len() <= text.lines().count());
            }
        }

        /// The backend's servers and their `scur`, among other proxies' rows, read back.
        #[test]
        fn stat_sessions_round_trip(
            servers in proptest::collection::btree_map("[a-z0-9_.:-]{1,10}", any::<u64>(), 0..6),
            others in proptest::collection::btree_map("[a-z0-9_]{1,10}", any::<u64>(), 0..3),
        ) {
            let mut text = String::from("# pxname,svname,qcur,qmax,scur,smax,status\n");
            text.push_str("fe,FRONTEND,,,4,9,OPEN\n");
            for (name, scur) in &servers {
                text.push_str(&format!("be_web,{name},0,0,{scur},0,UP\n"));
            }
            for (name, scur) in &others {
                text.push_str(&format!("be_other,{name},,,{scur},,UP\n"));
            }
            text.push_str("be_web,BACKEND,0,0,7,9,UP\n");
            prop_assert_eq!(parse_stat_sessions(&text, "be_web"), Ok(servers));
        }
    }
}
