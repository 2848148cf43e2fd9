//! The command line of `triadctl` (clap), kept in the library so the man page and the shell
//! completions are generated from the same definition (`triad-gen-assets`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Refused (by the coordinator, or by a check such as an existing file), or degraded.
pub const EXIT_REFUSED: u8 = 1;
/// Could not ask: nothing was decided.
pub const EXIT_COULD_NOT_ASK: u8 = 2;

/// The exit codes, the same for every command (docs/status.md); `--help` and the man pages
/// show them.
pub const EXIT_CODES: [(u8, &str); 3] = [
    (0, "done (status: every node live and ready)"),
    (
        EXIT_REFUSED,
        "refused by the coordinator or a check (status: the cluster is degraded)",
    ),
    (
        EXIT_COULD_NOT_ASK,
        "could not ask (the coordinator unreachable or silent within --timeout, bad TLS \
         arguments, a file that cannot be written)",
    ),
];

/// `--help`'s last line: [`EXIT_CODES`] in one sentence.
pub fn exit_status_help() -> String {
    let codes: Vec<String> = EXIT_CODES
        .iter()
        .map(|(code, meaning)| format!("{code} {meaning}"))
        .collect();
    format!("Exit status: {}.", codes.join("; "))
}

/// Operate a Triad cluster through its coordinator.
#[derive(Debug, Parser)]
#[command(
    name = "triadctl",
    version,
    about = "Operate a Triad cluster through its coordinator",
    after_help = exit_status_help()
)]
pub struct CtlCli {
    /// The coordinator's gRPC endpoint.
    #[arg(
        long,
        env = "TRIAD_COORDINATOR",
        default_value = "http://127.0.0.1:7422",
        global = true
    )]
    pub coordinator: String,
    /// How long to wait for the coordinator.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub timeout: Duration,
    /// Mutual TLS: the cluster CA (with --cert and --key; see `triadctl pki`).
    #[arg(long, env = "TRIAD_CA", global = true, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Mutual TLS: this operator's certificate (`triadctl pki issue NAME --role operator`).
    #[arg(long, env = "TRIAD_CERT", global = true, value_name = "PEM")]
    pub cert: Option<PathBuf>,
    /// Mutual TLS: the key of --cert.
    #[arg(long, env = "TRIAD_KEY", global = true, value_name = "PEM")]
    pub key: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum DashboardCommand {
    /// Print a login link for a browser: it works once, within 60 s, and gives the browser
    /// a 12 h session. Needs a viewer or operator certificate (--ca, --cert, --key).
    Url {
        /// The dashboard's address ([dashboard] listen); default the --coordinator host,
        /// port 9466.
        #[arg(long, env = "TRIAD_DASHBOARD", value_name = "HOST:PORT")]
        address: Option<String>,
    },
}

/// The dashboard's port when `[dashboard] listen` is left at its default.
pub const DEFAULT_DASHBOARD_PORT: u16 = 9466;

/// Where `triadctl pki` keeps the CA and what it issues.
pub const PKI_DIR: &str = "/etc/triad/pki";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PkiRole {
    /// A node's agent (its name is the node id; also give its address with --ip).
    Node,
    /// The coordinator (named triad-coordinator for triadctl; give its address with --ip).
    Coordinator,
    /// A person or tool running triadctl.
    Operator,
    /// Reads status and events only (a dashboard, monitoring): every other call is refused.
    Viewer,
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create the cluster CA (ca.pem, and ca.key readable by root only).
    Init {
        /// The cluster's name (in the CA's name).
        #[arg(long)]
        cluster: String,
        #[arg(long, default_value = PKI_DIR)]
        dir: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Replace an existing CA (every certificate it signed stops working).
        #[arg(long)]
        force: bool,
    },
    /// Issue NAME.pem and NAME.key (root only), signed by the cluster CA.
    Issue {
        /// A node id, the coordinator's id, or an operator's name.
        name: String,
        #[arg(long, value_enum)]
        role: PkiRole,
        /// An address the holder serves on (repeatable).
        #[arg(long)]
        ip: Vec<std::net::IpAddr>,
        /// A DNS name the holder serves as (repeatable).
        #[arg(long)]
        dns: Vec<String>,
        #[arg(long, default_value = PKI_DIR)]
        dir: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Replace existing files of that name.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Run a command once on one ready node (the app's upgrade, a migration), as a
    /// transient systemd unit there; its output is streamed here and the coordinator
    /// records the run (runs.jsonl in its state directory). Leaving does not stop it. Exit
    /// status: the command's once it ran.
    Run {
        /// A name for the run: a-z, 0-9, '-' and '_' (it names the node's systemd unit).
        name: String,
        /// The node to run on (default: the first live and ready one by id).
        #[arg(long)]
        node: Option<String>,
        /// The OS user to run as.
        #[arg(long, default_value = "www-data")]
        user: String,
        /// systemd stops the command after this long.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        max_time: Duration,
        /// The command and its arguments, after `--` (not through a shell).
        #[arg(last = true, required = true, value_name = "ARGV")]
        argv: Vec<String>,
    },
    /// Maintenance mode: `on` makes the balancer answer clients 503 with Retry-After and a
    /// message (your own address and --allow ones still reach the app; health checks go on)
    /// and pauses the cluster jobs; `off` undoes both. Answers once the balancer has it.
    Maintenance {
        #[arg(value_enum)]
        state: OnOff,
        /// The text clients get with the 503.
        #[arg(long)]
        message: Option<String>,
        /// Retry-After, in seconds.
        #[arg(long, default_value_t = 300)]
        retry_after: u32,
        /// Another address that still reaches the app (repeatable).
        #[arg(long, value_name = "IP")]
        allow: Vec<std::net::IpAddr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Cluster summary and one row per node. Exit code: 0 healthy, 1 degraded, 2 error.
    Status {
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Galera full-outage recovery now. Without --bootstrap: run the automatic election at
    /// once (no grace period). With --bootstrap NODE: bootstrap that node (refused when a
    /// reachable node is more advanced, unless --force). Logged by the coordinator.
    Recover {
        /// The node to bootstrap.
        #[arg(long, value_name = "NODE")]
        bootstrap: Option<String>,
        /// Bootstrap NODE even when another node reports a higher seqno (loses its writes).
        #[arg(long, requires = "bootstrap")]
        force: bool,
    },
    /// Autoscaling: reach N nodes (core nodes included) now, within [autoscale] min and max;
    /// the request-rate policy resumes after its stabilization window. Logged.
    Scale {
        /// The number of nodes wanted.
        #[arg(long, value_name = "N")]
        to: u32,
    },
    /// The timeline: what changed and what was decided, with who asked (kept across
    /// coordinator restarts). With --follow, new events as they happen until interrupted.
    Events {
        /// Only events since this long ago ("10m", "2h") or this time (RFC 3339).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        #[arg(long, short)]
        follow: bool,
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Take NODE out of the balancer once its requests have finished; its services keep
    /// running (kept across an agent restart). Refused for the only node serving.
    Drain { node: String },
    /// Let NODE take traffic again (after `drain`).
    Undrain { node: String },
    /// Node maintenance, for a planned stop or reboot: `on` drains NODE and takes it out
    /// of the Galera cluster when its turn comes (one node at a time, so the others stay
    /// Primary; the volume's quorum is relaxed when fewer than a majority stay), and
    /// answers once it may be stopped; it stays out across reboots. `off` brings it back.
    Maintenance {
        node: String,
        #[arg(value_enum)]
        state: OnOff,
    },
    /// The Gluster volume: resolve a file in split-brain (`triadctl status` lists them).
    Volume {
        #[command(subcommand)]
        command: VolumeCommand,
    },
    /// The application: one-off operations (`app run`), maintenance mode.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Backups of the database and the files ([backup] in the coordinator's config).
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// The web dashboard (served by the coordinator over HTTPS, read-only).
    Dashboard {
        #[command(subcommand)]
        command: DashboardCommand,
    },
    /// The cluster PKI for mutual TLS: `pki init` makes the CA, `pki issue` certificates.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a backup now: the database (mariadb-backup from one Synced core node, desynced
    /// meanwhile) and then the volume's files, compressed, encrypted and stored in parts at
    /// the target; progress is shown here. Leaving does not stop it (the timeline says how
    /// it ended). Refused while another backup runs.
    Now {
        /// Maintenance mode for the duration: clients get 503 with Retry-After and cluster
        /// jobs pause, so that no request changes the database or the files between the two
        /// (an app's rows that name files then match its files). An operator's maintenance
        /// already on is left on. Refused without a balancer.
        #[arg(long)]
        quiesce: bool,
    },
    /// The complete backups at the target, oldest first.
    List {
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Read every part of backup ID back and check it against its manifest (checksums,
    /// decryption, decompression), without touching the cluster.
    Verify { id: String },
    /// Restore backup ID onto this cluster: it is verified first; the database is copied
    /// back on one core node and bootstrapped there, the other core nodes join it by state
    /// transfers, then the files go onto the volume. Refused when the cluster holds data
    /// (tables outside the system schemas, files on the volume) unless --force: then each
    /// node's datadir is kept aside as <datadir>.before-restore-ID and the volume's files
    /// in .triad-before-restore-ID/. Every core node must be live.
    Restore {
        id: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Make one copy of FILE, in split-brain, the copy on every brick (gluster's
    /// split-brain resolution; the others are overwritten). Recorded in the timeline.
    Resolve {
        /// The file as `triadctl status` lists it: a path from the volume's root
        /// ("/dir/file") or "gfid:UUID".
        file: String,
        /// Which copy wins: the one modified last, the larger one, or the one on --brick.
        #[arg(long, value_enum)]
        policy: SplitBrainPolicy,
        /// With --policy source-brick: HOST:/PATH of the brick whose copy wins.
        #[arg(long, value_name = "HOST:/PATH")]
        brick: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitBrainPolicy {
    LatestMtime,
    BiggerFile,
    SourceBrick,
}

impl SplitBrainPolicy {
    /// gluster's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            SplitBrainPolicy::LatestMtime => "latest-mtime",
            SplitBrainPolicy::BiggerFile => "bigger-file",
            SplitBrainPolicy::SourceBrick => "source-brick",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// `--since`: an RFC 3339 time, or a duration back from `now_ms` (Unix ms).
pub fn since_unix_ms(text: &str, now_ms: u64) -> Result<u64, String> {
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Ok(time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64));
    }
    match humantime::parse_duration(text) {
        Ok(back) => Ok(now_ms.saturating_sub(back.as_millis() as u64)),
        Err(_) => Err(format!(
            "--since {text:?}: give a duration back from now (\"10m\", \"2h\") or a time (\"2026-12-05T14:00:00Z\")"
        )),
    }
}

/// `triadctl`'s clap command (for the man page and completions).
pub fn ctl_command() -> clap::Command {
    <CtlCli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        ctl_command().debug_assert();
        let ctl = CtlCli::try_parse_from(["triadctl", "status", "--output", "json"]).unwrap();
        assert!(matches!(
            ctl.command,
            CtlCommand::Status {
                output: Output::Json
            }
        ));
        assert_eq!(ctl.timeout, Duration::from_secs(5));
        // `--help` ends with the exit codes (the man pages show them as EXIT STATUS instead)
        assert_eq!(
            ctl_command().get_after_help().map(ToString::to_string),
            Some(exit_status_help())
        );
        assert!(exit_status_help().starts_with("Exit status: 0 done (status: "));
        let ctl = CtlCli::try_parse_from([
            "triadctl",
            "app",
            "run",
            "upgrade",
            "--user",
            "root",
            "--",
            "/usr/bin/php",
            "occ",
            "upgrade",
            "--no-interaction",
        ])
        .unwrap();
        let CtlCommand::App {
            command:
                AppCommand::Run {
                    name,
                    user,
                    argv,
                    max_time,
                    node,
                },
        } = ctl.command
        else {
            panic!("app run");
        };
        assert_eq!(
            (name.as_str(), user.as_str(), node),
            ("upgrade", "root", None)
        );
        assert_eq!(argv, ["/usr/bin/php", "occ", "upgrade", "--no-interaction"]);
        assert_eq!(max_time, Duration::from_secs(3600));
        assert!(
            CtlCli::try_parse_from(["triadctl", "app", "run", "x"]).is_err(),
            "argv is required"
        );
    }
}
