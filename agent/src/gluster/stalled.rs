//! Gluster's TCP connections to a peer that is back but still waiting on the kernel's
//! retransmission backoff, destroyed so their owners reconnect at once.
//!
//! glusterd, the FUSE client and the self-heal daemon reach a peer through non-blocking
//! connects. While the peer is cut off or down, each SYN goes unanswered and the kernel backs
//! off (1, 2, 4 … 120 s; glusterd's sockets were seen with 9 retransmits), and a connection
//! with unacknowledged data does the same. When the path returns, such a socket waits for
//! nothing but its timer. Measured on the lab (n1 cut off 45 s): n2 and n3 still held
//! SYN-SENT sockets to n1's glusterd 5 s after the heal, their next SYN 19 s away, and n3's
//! glusterd saw n1 again only 27.5 s after the heal; in a CI run, n1 counted itself out of
//! server quorum ("brick healing") for more than 150 s after a 20 s cut. Destroying the
//! sockets (the kernel's SOCK_DESTROY, through `ss -K`) hands their owners an error, and
//! glusterd reconnects on its 3 s timer: connected 3.1 s after the kill.
//!
//! Only a socket towards a peer whose gossip is live again after an absence is touched: the
//! path demonstrably works (chitchat's UDP gets through), so a SYN that went unanswered or
//! data unacknowledged for several retransmits is stale, not slow. Only Gluster's ports.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use triad_cluster::membership::{Membership, ObservedMember};

/// glusterd's management port.
pub const GLUSTERD_PORT: u16 = 24007;
/// The bricks' ports: glusterd's default `base-port` to `max-port`.
pub const BRICK_PORTS: std::ops::RangeInclusive<u16> = 49152..=60999;
/// How long after a peer's return its stale sockets are looked for. The longest SYN
/// backoff step is 120 s; past this window glusterd's own retries have long caught up.
pub const RETURN_WINDOW: Duration = Duration::from_secs(300);
/// For this long after a peer's return the sockets are looked at every tick; later in the
/// window every [`LATE_LOOK_EVERY`]. A socket TCP backs off on already waits when its peer
/// returns, so the first looks find it; later ones catch only a connection whose third
/// retransmit came after the return. Each look reads the whole of /proc/net/tcp{,6}, which
/// the kernel answers by walking the host's entire connection hash (~3 ms on the lab).
pub const EARLY_LOOKS: Duration = Duration::from_secs(30);
pub const LATE_LOOK_EVERY: Duration = Duration::from_secs(10);

/// Pure: is a look due, given how long ago the most recent return among the peers looked at
/// was and how long ago the last look was?
pub fn look_due(youngest_return: Duration, since_last_look: Option<Duration>) -> bool {
    youngest_return < EARLY_LOOKS || since_last_look.is_none_or(|d| d >= LATE_LOOK_EVERY)
}

/// A connected socket counts as stalled after this many unanswered retransmits with data
/// queued (the backoff then already exceeds a few seconds; a live LAN peer acks within ms).
pub const ESTABLISHED_RETRANSMITS: u32 = 3;

/// TCP states as `/proc/net/tcp` numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    Established,
    SynSent,
    Listen,
    Other(u8),
}

impl TcpState {
    fn from_hex(field: &str) -> Option<TcpState> {
        Some(match u8::from_str_radix(field, 16).ok()? {
            0x01 => TcpState::Established,
            0x02 => TcpState::SynSent,
            0x0A => TcpState::Listen,
            n => TcpState::Other(n),
        })
    }

    /// The state's name in `ss`'s filter language.
    fn ss_name(self) -> &'static str {
        match self {
            TcpState::Established => "established",
            TcpState::SynSent => "syn-sent",
            TcpState::Listen => "listening",
            TcpState::Other(_) => "all",
        }
    }
}

/// One row of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSocket {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: TcpState,
    /// Bytes sent and not acknowledged (`tx_queue`).
    pub unacked: u64,
    /// Unanswered retransmission timeouts in a row (`retrnsmt`).
    pub retransmits: u32,
}

/// The rows of `PROC/net/tcp` then `tcp6`, read a line at a time and handed to `visit`
/// until it breaks. Not read whole: a node serving 100 requests a second holds thousands
/// of TIME_WAIT rows, a megabyte of text the allocator kept after each look (issue 24);
/// and the kernel lists listening sockets first, so a search for a listener stops before
/// the walk over every connection.
pub fn scan_tables(proc_dir: &Path, mut visit: impl FnMut(TcpSocket) -> ControlFlow<()>) {
    let mut line = String::new();
    for table in ["net/tcp", "net/tcp6"] {
        let Ok(file) = std::fs::File::open(proc_dir.join(table)) else {
            continue;
        };
        let mut reader = std::io::BufReader::with_capacity(8192, file);
        let mut header = true;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if std::mem::take(&mut header) {
                continue;
            }
            if let Some(row) = parse_row(&line) {
                if visit(row).is_break() {
                    return;
                }
            }
        }
    }
}

fn parse_row(line: &str) -> Option<TcpSocket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // sl local rem st tx:rx tr:when retrnsmt …
    let local = parse_endpoint(fields.get(1)?)?;
    let remote = parse_endpoint(fields.get(2)?)?;
    let state = TcpState::from_hex(fields.get(3)?)?;
    let unacked = u64::from_str_radix(fields.get(4)?.split(':').next()?, 16).ok()?;
    let retransmits = u32::from_str_radix(fields.get(6)?, 16).ok()?;
    Some(TcpSocket {
        local,
        remote,
        state,
        unacked,
        retransmits,
    })
}

/// `0B00D60A:5DC7` (IPv4) or 32 hex digits (IPv6), each 32-bit word in host byte order
/// (little-endian on every architecture Debian ships the agent for), then the port.
fn parse_endpoint(field: &str) -> Option<SocketAddr> {
    let (address, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = address.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_le_bytes())
    };
    let ip = match address.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(bytes);
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Pure: Gluster's sockets towards `peers` (live again after an absence) that wait on the
/// retransmission backoff: a SYN unanswered at least once, or data unacknowledged through
/// [`ESTABLISHED_RETRANSMITS`] retransmits.
pub fn stalled<'a>(sockets: &'a [TcpSocket], peers: &HashSet<IpAddr>) -> Vec<&'a TcpSocket> {
    sockets
        .iter()
        .filter(|s| peers.contains(&s.remote.ip()))
        .filter(|s| s.remote.port() == GLUSTERD_PORT || BRICK_PORTS.contains(&s.remote.port()))
        .filter(|s| match s.state {
            TcpState::SynSent => s.retransmits >= 1,
            TcpState::Established => s.unacked > 0 && s.retransmits >= ESTABLISHED_RETRANSMITS,
            TcpState::Listen | TcpState::Other(_) => false,
        })
        .collect()
}

/// Remembers when each peer was last seen absent (not live, or not in gossip at all), so
/// only peers that came back within [`RETURN_WINDOW`] are looked at.
#[derive(Debug, Default)]
pub struct Returns {
    absent_at: HashMap<String, Instant>,
    /// Every peer gossip has named (a peer gone from gossip is absent).
    known: HashSet<String>,
    /// Peers seen live at least once (the first sighting counts as a return).
    seen_live: HashSet<String>,
}

impl Returns {
    /// Pure but for `now`: records this look and answers the addresses of the peers live
    /// now that were absent within the window, each with how long ago it was last seen
    /// absent. A peer never seen before counts as just returned (the agent may have
    /// started while it was away).
    pub fn observe(&mut self, members: &[ObservedMember], now: Instant) -> Vec<(IpAddr, Duration)> {
        let mut live: HashMap<&str, IpAddr> = HashMap::new();
        for m in members.iter().filter(|m| !m.is_self) {
            if m.live {
                let ip = m.keys.grpc.map(|a| a.ip()).unwrap_or(m.gossip_addr.ip());
                live.insert(m.node_id.as_str(), ip);
            }
        }
        for m in members.iter().filter(|m| !m.is_self) {
            self.known.insert(m.node_id.clone());
        }
        for id in &self.known {
            if !live.contains_key(id.as_str()) {
                self.absent_at.insert(id.clone(), now);
            }
        }
        for id in live.keys() {
            if self.seen_live.insert(id.to_string()) {
                self.absent_at.entry(id.to_string()).or_insert(now);
            }
        }
        self.absent_at
            .retain(|_, at| now.saturating_duration_since(*at) < RETURN_WINDOW);
        live.into_iter()
            .filter_map(|(id, ip)| {
                let at = self.absent_at.get(id)?;
                Some((ip, now.saturating_duration_since(*at)))
            })
            .collect()
    }
}

/// The node's TCP sockets: read and destroyed. `/proc` and `ss -K` in production.
pub trait Sockets: Send + Sync + std::fmt::Debug {
    fn table(&self) -> Vec<TcpSocket>;
    fn destroy(&self, socket: &TcpSocket) -> Result<(), String>;
}

/// Production: `/proc/net/tcp{,6}` of the agent's network namespace (the node's), and
/// iproute2's `ss -K`, which asks the kernel to destroy the matching socket.
#[derive(Debug, Clone)]
pub struct ProcSockets {
    pub proc_dir: PathBuf,
}

impl Default for ProcSockets {
    fn default() -> Self {
        ProcSockets {
            proc_dir: PathBuf::from("/proc"),
        }
    }
}

impl Sockets for ProcSockets {
    /// Only the rows [`stalled`] can pick (SYN-SENT, established): not the listeners nor
    /// the thousands of TIME_WAIT rows of a busy web server.
    fn table(&self) -> Vec<TcpSocket> {
        let mut rows = Vec::new();
        scan_tables(&self.proc_dir, |row| {
            if matches!(row.state, TcpState::SynSent | TcpState::Established) {
                rows.push(row);
            }
            ControlFlow::Continue(())
        });
        rows
    }

    fn destroy(&self, socket: &TcpSocket) -> Result<(), String> {
        let out = crate::exec::blocking_command("ss")
            .args(ss_kill_args(socket))
            .output()
            .map_err(|e| format!("ss: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ss -K exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

/// Pure: `ss` arguments that destroy exactly this socket (state and both endpoints).
pub fn ss_kill_args(socket: &TcpSocket) -> Vec<String> {
    vec![
        "-K".into(),
        "-tnH".into(),
        "state".into(),
        socket.state.ss_name().into(),
        "src".into(),
        socket.local.to_string(),
        "dst".into(),
        socket.remote.to_string(),
    ]
}

/// The loop: every tick, the peers back within the window; when there are any, the stalled
/// sockets towards them are destroyed.
#[derive(Debug)]
pub struct StalledConnections {
    pub node_id: String,
    pub membership: Arc<Membership>,
    pub sockets: Arc<dyn Sockets>,
    returns: std::sync::Mutex<Returns>,
    /// Sockets destroyed on the last tick: seen again means `ss -K` could not (a kernel
    /// without CONFIG_INET_DIAG_DESTROY); warned once.
    last: std::sync::Mutex<(Vec<(SocketAddr, SocketAddr)>, bool)>,
    /// When the sockets were last looked at (see [`look_due`]).
    last_look: std::sync::Mutex<Option<Instant>>,
}

impl StalledConnections {
    pub fn new(node_id: String, membership: Arc<Membership>) -> StalledConnections {
        StalledConnections {
            node_id,
            membership,
            sockets: Arc::new(ProcSockets::default()),
            returns: Default::default(),
            last: Default::default(),
            last_look: Default::default(),
        }
    }

    pub async fn tick(&self) {
        let members = self.membership.members().await;
        let now = Instant::now();
        let returned = self
            .returns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(&members, now);
        let Some(youngest) = returned.iter().map(|(_, age)| *age).min() else {
            return;
        };
        {
            let mut last_look = self.last_look.lock().unwrap_or_else(|p| p.into_inner());
            let since = last_look.map(|at| now.saturating_duration_since(at));
            if !look_due(youngest, since) {
                return;
            }
            *last_look = Some(now);
        }
        let peers: HashSet<IpAddr> = returned.into_iter().map(|(ip, _)| ip).collect();
        let sockets = self.sockets.clone();
        let Ok(table) = tokio::task::spawn_blocking(move || sockets.table()).await else {
            return;
        };
        let found: Vec<TcpSocket> = stalled(&table, &peers).into_iter().cloned().collect();
        let tuples: Vec<(SocketAddr, SocketAddr)> =
            found.iter().map(|s| (s.local, s.remote)).collect();
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if !last.1 && tuples.iter().any(|t| last.0.contains(t)) {
                tracing::warn!(node = %self.node_id, "a socket destroyed with `ss -K` is still there: the kernel may lack CONFIG_INET_DIAG_DESTROY; Gluster then reconnects only when TCP's backoff runs out");
                last.1 = true;
            }
            last.0 = tuples;
        }
        for socket in found {
            tracing::info!(
                node = %self.node_id,
                "{} is back but Gluster's connection {} -> {} ({:?}, {} retransmits) still waits on TCP's retransmission backoff: destroying it so its process reconnects now",
                socket.remote.ip(),
                socket.local,
                socket.remote,
                socket.state,
                socket.retransmits
            );
            let sockets = self.sockets.clone();
            let result = tokio::task::spawn_blocking(move || sockets.destroy(&socket)).await;
            if let Ok(Err(error)) = result {
                tracing::warn!(node = %self.node_id, "destroying a stalled socket failed: {error}");
            }
        }
    }

    pub async fn run(self: Arc<Self>, interval: Duration, stop: watch::Receiver<bool>) {
        crate::state::every(interval, stop, || self.tick()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_proto::gossip::NodeKeys;

    /// The rows of a whole `/proc/net/tcp{,6}` text (production streams them:
    /// [`scan_tables`]); malformed rows are skipped.
    fn parse_table(text: &str) -> Vec<TcpSocket> {
        text.lines().skip(1).filter_map(parse_row).collect()
    }

    /// Rows as n2 held them 1 s after n1's 45 s cut healed (lab, glusterd 10.3).
    const N2: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n \
 87: 0C00D60A:BFFB 0B00D60A:CDB2 04 00000671:00000000 01:000002AA 00000007     0        0 0 3 0000000095eab5f9 2611 4 25 1 -1\n \
157: 0C00D60A:11D7 0B00D60A:AAAB 04 00000447:00000000 01:000002DD 00000007   101        0 0 2 0000000014c13304 2611 4 24 1 -1\n \
167: 0C00D60A:BFFA 0B00D60A:5DC7 02 00000001:00000000 01:00000083 00000008     0        0 19000507 2 000000005c7c6a58 1600 0 0 1 -1\n \
168: 0C00D60A:BFFC 0B00D60A:5DC7 02 00000001:00000000 01:000000C6 00000006     0        0 19006649 2 00000000177eee50 400 0 0 1 -1\n \
169: 0C00D60A:BFFF 0B00D60A:5DC7 01 0000036C:00000000 01:00000410 00000007     0        2 18988607 3 0000000023c36eac 2611 4 22 1 -1\n \
170: 0C00D60A:BFF0 0D00D60A:5DC7 01 00000000:00000000 02:00000410 00000000     0        2 18988608 3 0000000023c36ead 2611 4 22 1 -1\n \
171: 0C00D60A:BFF1 0B00D60A:C000 02 00000001:00000000 01:00000083 00000002     0        0 19000509 2 000000005c7c6a59 1600 0 0 1 -1\n";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn proc_net_tcp_rows_are_read() {
        let rows = parse_table(N2);
        assert_eq!(rows.len(), 7);
        assert_eq!(rows[2].local, "10.214.0.12:49146".parse().unwrap());
        assert_eq!(rows[2].remote, "10.214.0.11:24007".parse().unwrap());
        assert_eq!(rows[2].state, TcpState::SynSent);
        assert_eq!(rows[2].retransmits, 8);
        assert_eq!(rows[4].state, TcpState::Established);
        assert_eq!(rows[4].unacked, 876);
        assert_eq!(rows[0].state, TcpState::Other(4));
        assert!(parse_table("header only\n").is_empty());
        assert!(parse_table("h\n 0: garbage\n").is_empty());
    }

    #[test]
    fn the_production_table_streams_both_files_and_keeps_only_what_can_be_stalled() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("net")).unwrap();
        std::fs::write(dir.path().join("net/tcp"), N2).unwrap();
        let v6 = "h\n 0: 00000000000000000000000001000000:5DC7 0000000000000000FFFF00000B00D60A:C000 02 00000001:00000000 01:00000083 00000002 0 0 1 2 0 1600 0 0 1 -1\n";
        std::fs::write(dir.path().join("net/tcp6"), v6).unwrap();
        let sockets = ProcSockets {
            proc_dir: dir.path().to_path_buf(),
        };
        let rows = sockets.table();
        // N2's two FIN-WAIT rows are left out; its five SYN-SENT and established ones
        // and the IPv6 file's SYN-SENT one are kept, in file order
        let states: Vec<TcpState> = rows.iter().map(|r| r.state).collect();
        use TcpState::{Established as E, SynSent as S};
        assert_eq!(states, vec![S, S, E, E, S, S]);
        assert_eq!(rows[5].remote, "10.214.0.11:49152".parse().unwrap());
        // the selection over them is the one over the whole text
        let n1: HashSet<IpAddr> = [ip("10.214.0.11")].into();
        let all = parse_table(N2);
        assert_eq!(
            stalled(&rows[..5], &n1)
                .iter()
                .map(|s| s.local)
                .collect::<Vec<_>>(),
            stalled(&all, &n1)
                .iter()
                .map(|s| s.local)
                .collect::<Vec<_>>()
        );
        // a missing table is no rows, not an error
        let empty = tempfile::tempdir().unwrap();
        let none = ProcSockets {
            proc_dir: empty.path().to_path_buf(),
        };
        assert!(none.table().is_empty());
    }

    #[test]
    fn ipv6_and_mapped_addresses_are_read() {
        // ::1 port 24007, and ::ffff:10.214.0.11 port 49152
        let table = "h\n 0: 00000000000000000000000001000000:5DC7 0000000000000000FFFF00000B00D60A:C000 02 00000001:00000000 01:00000083 00000002 0 0 1 2 0 1600 0 0 1 -1\n";
        let rows = parse_table(table);
        assert_eq!(rows[0].local, "[::1]:24007".parse().unwrap());
        assert_eq!(rows[0].remote, "10.214.0.11:49152".parse().unwrap());
    }

    #[test]
    fn only_gluster_sockets_towards_a_returned_peer_waiting_on_backoff_are_stalled() {
        let rows = parse_table(N2);
        let n1: HashSet<IpAddr> = [ip("10.214.0.11")].into();
        let found: Vec<u16> = stalled(&rows, &n1).iter().map(|s| s.local.port()).collect();
        // both SYN-SENT to glusterd, the connection with 876 bytes unacked through 7
        // retransmits, and the SYN to n1's brick port; not Galera's (4567) nor closing ones,
        // nor the healthy connection to n3
        assert_eq!(found, vec![49146, 49148, 49151, 49137]);
        // n1 not back (or back long ago): nothing
        assert!(stalled(&rows, &HashSet::new()).is_empty());
        // a SYN not yet retransmitted, or data retransmitted twice, is in progress
        let mut young = rows.clone();
        young[2].retransmits = 0;
        young[3].retransmits = 0;
        young[4].retransmits = ESTABLISHED_RETRANSMITS - 1;
        young[6].retransmits = 0;
        assert!(stalled(&young, &n1).is_empty());
    }

    fn member(id: &str, live: bool) -> ObservedMember {
        ObservedMember {
            node_id: id.into(),
            generation: 1,
            gossip_addr: format!("10.214.0.{}:7946", 10 + id[1..].parse::<u8>().unwrap())
                .parse()
                .unwrap(),
            live,
            is_self: id == "n2",
            keys: NodeKeys::default(),
            decode_errors: vec![],
        }
    }

    /// The addresses [`Returns::observe`] answers, without their ages.
    fn returned(
        returns: &mut Returns,
        members: &[ObservedMember],
        now: Instant,
    ) -> HashSet<IpAddr> {
        returns
            .observe(members, now)
            .into_iter()
            .map(|(ip, _)| ip)
            .collect()
    }

    #[test]
    fn a_peer_is_looked_at_within_the_window_after_its_return() {
        let mut returns = Returns::default();
        let t0 = Instant::now();
        let all = [member("n1", true), member("n2", true), member("n3", true)];
        // first look: peers never seen before count as just returned (agent restarted)
        assert_eq!(returned(&mut returns, &all, t0).len(), 2);
        let later = t0 + RETURN_WINDOW + Duration::from_secs(1);
        assert!(
            returned(&mut returns, &all, later).is_empty(),
            "steady: nothing"
        );
        // n1 cut off, then back
        let cut = [member("n1", false), member("n2", true), member("n3", true)];
        assert!(returned(&mut returns, &cut, later + Duration::from_secs(1)).is_empty());
        let back = later + Duration::from_secs(21);
        assert_eq!(
            returned(&mut returns, &all, back),
            [ip("10.214.0.11")].into_iter().collect()
        );
        // its age counts from the last look that saw it absent
        assert_eq!(
            returns.observe(&all, back + Duration::from_secs(4)),
            vec![(ip("10.214.0.11"), Duration::from_secs(24))]
        );
        // gone from gossip altogether (a reboot) counts as absent too
        let gone = [member("n2", true), member("n3", true)];
        returned(&mut returns, &gone, back + RETURN_WINDOW);
        assert_eq!(
            returned(
                &mut returns,
                &all,
                back + RETURN_WINDOW + Duration::from_secs(5)
            ),
            [ip("10.214.0.11")].into_iter().collect()
        );
        assert!(returned(&mut returns, &all, back + RETURN_WINDOW * 3).is_empty());
    }

    #[test]
    fn sockets_are_looked_at_every_tick_right_after_a_return_then_slowly() {
        let s = Duration::from_secs;
        assert!(look_due(s(0), None));
        assert!(look_due(s(5), Some(s(1))), "early: every tick");
        assert!(look_due(s(29), Some(s(1))));
        assert!(!look_due(s(30), Some(s(1))), "late: not every tick");
        assert!(!look_due(s(200), Some(s(9))));
        assert!(look_due(s(200), Some(LATE_LOOK_EVERY)));
        assert!(look_due(s(200), None), "the first look is never held back");
    }

    #[test]
    fn ss_names_exactly_one_socket() {
        let rows = parse_table(N2);
        assert_eq!(
            ss_kill_args(&rows[2]).join(" "),
            "-K -tnH state syn-sent src 10.214.0.12:49146 dst 10.214.0.11:24007"
        );
    }
}
