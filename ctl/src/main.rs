//! `triadctl`: the operator's CLI.
//!
//! Exit codes, the same for every command: `triadctl::cli::EXIT_CODES`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use triad_daemon::pki;
use triad_daemon::tls::PeerRole;
use triad_proto::v1;
use triad_proto::v1::coordinator_service_client::CoordinatorServiceClient;
use triadctl::cli::{
    AppCommand, BackupCommand, CtlCli as Cli, CtlCommand as Command, DashboardCommand, OnOff,
    Output, PkiCommand, PkiRole, SplitBrainPolicy, VolumeCommand, EXIT_COULD_NOT_ASK, EXIT_REFUSED,
};
use triadctl::report::StatusReport;

/// Why a call did not succeed, which decides the exit code.
enum Failure {
    /// The coordinator answered no.
    Refused(String),
    /// The coordinator could not be reached, or did not answer in time.
    CouldNotAsk(String),
}

impl Failure {
    /// A gRPC error: a transport failure (unreachable, a TLS handshake refused, a timeout)
    /// is "could not ask"; a status the coordinator chose is a refusal.
    fn from_status(target: &Target, what: &str, status: &tonic::Status) -> Failure {
        let text = format!("{what}: {}", refusal(target, status));
        match status.code() {
            tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::Unknown => Failure::CouldNotAsk(text),
            _ => Failure::Refused(text),
        }
    }

    /// Prints the error and gives the exit code.
    fn exit(self) -> ExitCode {
        let (message, code) = match self {
            Failure::Refused(message) => (message, EXIT_REFUSED),
            Failure::CouldNotAsk(message) => (message, EXIT_COULD_NOT_ASK),
        };
        eprintln!("triadctl: error: {message}");
        ExitCode::from(code)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("triadctl: error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_COULD_NOT_ASK);
        }
    };
    let target = match Target::from_cli(&cli) {
        Ok(target) => target,
        Err(error) => {
            eprintln!("triadctl: error: {error}");
            return ExitCode::from(EXIT_COULD_NOT_ASK);
        }
    };
    match cli.command {
        Command::Status { output } => runtime.block_on(status(&target, cli.timeout, output)),
        Command::Recover { bootstrap, force } => {
            runtime.block_on(recover(&target, cli.timeout, bootstrap, force))
        }
        Command::Scale { to } => runtime.block_on(scale(&target, cli.timeout, to)),
        Command::Events {
            since,
            follow,
            output,
        } => runtime.block_on(events(&target, cli.timeout, since, follow, output)),
        Command::Drain { node } => runtime.block_on(node_drain(&target, cli.timeout, node, true)),
        Command::Volume {
            command:
                VolumeCommand::Resolve {
                    file,
                    policy,
                    brick,
                },
        } => runtime.block_on(volume_resolve(&target, cli.timeout, file, policy, brick)),
        Command::Maintenance { node, state } => runtime.block_on(node_maintenance(
            &target,
            cli.timeout,
            node,
            state == OnOff::On,
        )),
        Command::Undrain { node } => {
            runtime.block_on(node_drain(&target, cli.timeout, node, false))
        }
        Command::App {
            command:
                AppCommand::Run {
                    name,
                    node,
                    user,
                    max_time,
                    argv,
                },
        } => runtime.block_on(app_run(
            &target,
            cli.timeout,
            v1::AppRunRequest {
                name,
                argv,
                user,
                timeout_ms: max_time.as_millis() as u64,
                node: node.unwrap_or_default(),
            },
        )),
        Command::App {
            command:
                AppCommand::Maintenance {
                    state,
                    message,
                    retry_after,
                    allow,
                },
        } => runtime.block_on(maintenance(
            &target,
            cli.timeout,
            v1::MaintenanceRequest {
                on: state == OnOff::On,
                message: message.unwrap_or_default(),
                retry_after_secs: retry_after,
                allow: allow.iter().map(ToString::to_string).collect(),
            },
        )),
        Command::Backup { command } => match command {
            BackupCommand::Now { quiesce } => runtime.block_on(backup_progress(
                &target,
                cli.timeout,
                BackupOp::Now { quiesce },
            )),
            BackupCommand::Verify { id } => {
                runtime.block_on(backup_progress(&target, cli.timeout, BackupOp::Verify(id)))
            }
            BackupCommand::Restore { id, force } => runtime.block_on(backup_progress(
                &target,
                cli.timeout,
                BackupOp::Restore { id, force },
            )),
            BackupCommand::List { output } => {
                runtime.block_on(backup_list(&target, cli.timeout, output))
            }
        },
        Command::Dashboard {
            command: DashboardCommand::Url { address },
        } => runtime.block_on(dashboard_url(
            &target,
            cli.timeout,
            triadctl::dashboard::dashboard_address(address.as_deref(), &cli.coordinator),
        )),
        Command::Pki { command } => run_pki(command),
    }
}

/// `dashboard url`: a login link, printed alone on stdout (for `xdg-open "$(...)"`).
async fn dashboard_url(target: &Target, timeout: Duration, address: String) -> ExitCode {
    use triadctl::dashboard::{login_link, LinkError};
    let Some(files) = &target.tls else {
        return Failure::CouldNotAsk(
            "the dashboard needs a viewer or operator certificate: give --ca, --cert and --key (or TRIAD_CA, TRIAD_CERT, TRIAD_KEY)".into(),
        )
        .exit();
    };
    match login_link(files, &address, timeout).await {
        Ok(url) => {
            println!("{url}");
            ExitCode::SUCCESS
        }
        Err(LinkError::Refused(why)) => Failure::Refused(why).exit(),
        Err(LinkError::CouldNotAsk(why)) => Failure::CouldNotAsk(why).exit(),
    }
}

/// The coordinator to call, and how.
struct Target {
    endpoint: String,
    tls: Option<triad_daemon::tls::TlsFiles>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.endpoint)
    }
}

impl Target {
    fn from_cli(cli: &Cli) -> Result<Target, String> {
        let tls = match (&cli.ca, &cli.cert, &cli.key) {
            (None, None, None) => None,
            (Some(ca), Some(cert), Some(key)) => Some(triad_daemon::tls::TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => return Err("mutual TLS needs all of --ca, --cert and --key".into()),
        };
        let endpoint = match (&tls, cli.coordinator.strip_prefix("http://")) {
            (Some(_), Some(rest)) => format!("https://{rest}"),
            _ => cli.coordinator.clone(),
        };
        Ok(Target { endpoint, tls })
    }
}

fn run_pki(command: PkiCommand) -> ExitCode {
    let result = match command {
        PkiCommand::Init {
            cluster,
            dir,
            days,
            force,
        } => pki::init(&dir, &cluster, days, force),
        PkiCommand::Issue {
            name,
            role,
            ip,
            dns,
            dir,
            days,
            force,
        } => pki::issue(
            &dir,
            &pki::IssueRequest {
                name,
                role: match role {
                    PkiRole::Node => PeerRole::Node,
                    PkiRole::Coordinator => PeerRole::Coordinator,
                    PkiRole::Operator => PeerRole::Operator,
                    PkiRole::Viewer => PeerRole::Viewer,
                },
                ips: ip,
                dns,
                days,
                force,
            },
        ),
    };
    match result {
        Ok(written) => {
            println!(
                "{}\n{} (root only)",
                written.cert.display(),
                written.key.display()
            );
            ExitCode::SUCCESS
        }
        Err(error @ pki::PkiError::Exists { .. }) | Err(error @ pki::PkiError::Invalid(_)) => {
            Failure::Refused(error.to_string()).exit()
        }
        Err(error) => Failure::CouldNotAsk(error.to_string()).exit(),
    }
}

/// What a refused call says: the status message, the transport's cause when there is one
/// (a TLS alert such as UnknownCA), and a hint when plaintext met a TLS server.
fn refusal(target: &Target, status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    if let Some(source) = std::error::Error::source(status) {
        text = format!("{text}: {}", triad_daemon::tls::error_chain(source));
        if text.contains("UnknownCA") || text.contains("BadCertificate") {
            text.push_str(
                " (the coordinator refused this certificate: is it issued by the cluster CA?)",
            );
        }
    }
    if target.tls.is_none() && status.code() == tonic::Code::Unknown {
        text.push_str(" (if the coordinator runs [tls], give --ca, --cert and --key)");
    }
    text
}

/// A client of the coordinator at `endpoint`; `call_timeout` bounds each call (none for
/// calls that may take long, like a recovery's bootstrap).
async fn client(
    target: &Target,
    connect_timeout: Duration,
    call_timeout: Option<Duration>,
) -> Result<CoordinatorServiceClient<tonic::transport::Channel>, Failure> {
    let endpoint = &target.endpoint;
    let endpoint_config = triad_daemon::tls::client_endpoint(
        endpoint,
        target.tls.as_ref(),
        triad_daemon::tls::COORDINATOR_SERVER_NAME,
        connect_timeout,
        call_timeout,
    )
    .map_err(Failure::CouldNotAsk)?;
    let channel = endpoint_config.connect().await.map_err(|error| {
        Failure::CouldNotAsk(format!(
            "cannot reach the coordinator at {endpoint}: {}",
            triad_daemon::tls::error_chain(&error)
        ))
    })?;
    Ok(CoordinatorServiceClient::new(channel))
}

/// `app run`: the run's output to stdout and stderr as it comes, a line on stderr naming
/// the node and unit, and the command's exit status as triadctl's.
async fn app_run(endpoint: &Target, timeout: Duration, request: v1::AppRunRequest) -> ExitCode {
    use std::io::Write as _;
    use triad_proto::v1::run_once_event::Event;
    let name = request.name.clone();
    let stream = async {
        client(endpoint, timeout, None)
            .await?
            .app_run(request)
            .await
            .map(|reply| reply.into_inner())
            .map_err(|status| Failure::from_status(endpoint, "app run refused", &status))
    }
    .await;
    let mut stream = match stream {
        Ok(stream) => stream,
        Err(failure) => return failure.exit(),
    };
    loop {
        let event = match stream.message().await {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(status) => {
                return Failure::from_status(endpoint, &format!("app run {name}"), &status).exit()
            }
        };
        match event.event {
            Some(Event::Started(started)) => {
                eprintln!(
                    "triadctl: {name}: running on {} as {}",
                    started.node, started.unit
                )
            }
            Some(Event::Stdout(bytes)) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&bytes).and_then(|_| out.flush());
            }
            Some(Event::Stderr(bytes)) => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(&bytes).and_then(|_| err.flush());
            }
            Some(Event::Exited(exited)) => {
                eprintln!(
                    "triadctl: {name}: exit status {} after {:.1}s",
                    exited.exit_status,
                    exited.duration_ms as f64 / 1000.0
                );
                return ExitCode::from(u8::try_from(exited.exit_status).unwrap_or(u8::MAX));
            }
            None => {}
        }
    }
    Failure::CouldNotAsk(format!(
        "app run {name}: the coordinator's stream ended without the run's exit (the coordinator's runs.jsonl records how it ended)"
    ))
    .exit()
}

/// The backup commands that stream progress.
#[derive(Debug, Clone)]
enum BackupOp {
    Now { quiesce: bool },
    Verify(String),
    Restore { id: String, force: bool },
}

/// `backup now`, `backup verify ID` and `backup restore ID`: progress on stderr as one line
/// rewritten in place on a terminal (otherwise a line per new step or message, and every
/// 10 s), the result on stdout.
async fn backup_progress(endpoint: &Target, timeout: Duration, op: BackupOp) -> ExitCode {
    use std::io::IsTerminal as _;
    let what = match &op {
        BackupOp::Verify(id) => format!("backup verify {id}"),
        BackupOp::Now { quiesce } => {
            format!("backup now{}", if *quiesce { " --quiesce" } else { "" })
        }
        BackupOp::Restore { id, force } => {
            format!(
                "backup restore {id}{}",
                if *force { " --force" } else { "" }
            )
        }
    };
    let stream = async {
        let mut client = client(endpoint, timeout, None).await?;
        let reply = match op.clone() {
            BackupOp::Verify(id) => client.backup_verify(v1::BackupVerifyRequest { id }).await,
            BackupOp::Now { quiesce } => client.backup_now(v1::BackupNowRequest { quiesce }).await,
            BackupOp::Restore { id, force } => {
                client
                    .backup_restore(v1::BackupRestoreRequest { id, force })
                    .await
            }
        };
        reply
            .map(|reply| reply.into_inner())
            .map_err(|status| Failure::from_status(endpoint, &what, &status))
    }
    .await;
    let mut stream = match stream {
        Ok(stream) => stream,
        Err(failure) => return failure.exit(),
    };
    let terminal = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let mut printed = std::time::Instant::now() - Duration::from_secs(60);
    let mut step = String::new();
    // each step's first sight (time, bytes): steps interleave (files while nodes join)
    let mut step_starts: std::collections::HashMap<String, (std::time::Instant, u64)> =
        std::collections::HashMap::new();
    let mut message = String::new();
    loop {
        let progress = match stream.message().await {
            Ok(Some(progress)) => progress,
            Ok(None) => break,
            Err(status) => {
                if terminal {
                    eprintln!();
                }
                return Failure::from_status(endpoint, &what, &status).exit();
            }
        };
        if let Some(done) = progress.done {
            if terminal {
                eprintln!();
            }
            println!(
                "{} {}: {} from {} (Galera {}:{}), {} stored in {} parts, {:.1}s",
                match op {
                    BackupOp::Verify(_) => "verified",
                    BackupOp::Now { .. } => "backup",
                    BackupOp::Restore { .. } => "restored",
                },
                done.id,
                triadctl::report::bytes(done.plain_bytes),
                done.node,
                done.galera_uuid,
                done.galera_seqno,
                triadctl::report::bytes(done.stored_bytes),
                done.parts,
                started.elapsed().as_secs_f64()
            );
            return ExitCode::SUCCESS;
        }
        if progress.step != step {
            if terminal && !step.is_empty() {
                eprintln!();
            }
            step = progress.step.clone();
        }
        let step_start = *step_starts
            .entry(progress.step.clone())
            .or_insert((std::time::Instant::now(), progress.bytes));
        let secs = step_start.0.elapsed().as_secs_f64();
        // no rate before there is one to tell (a step seen once, or bytes not moving yet)
        let rate = if secs > 0.5 {
            progress.bytes.saturating_sub(step_start.1) as f64 / secs
        } else {
            0.0
        };
        let rate_text = if rate > 0.0 {
            format!(", {}/s", triadctl::report::bytes(rate as u64))
        } else {
            String::new()
        };
        let left = if progress.total > progress.bytes && rate > 0.0 {
            format!(
                ", {:.0}s left",
                (progress.total - progress.bytes) as f64 / rate
            )
        } else {
            String::new()
        };
        // a step without bytes (stopping a node, waiting for joins) says its message only
        let line = if progress.bytes == 0 && progress.total == 0 {
            format!(
                "{} ({:.0}s)",
                progress.message,
                started.elapsed().as_secs_f64()
            )
        } else {
            format!(
                "{}: {}{rate_text}{left} ({:.0}s)",
                progress.message,
                triadctl::report::bytes(progress.bytes),
                started.elapsed().as_secs_f64()
            )
        };
        let new_message = progress.message != message;
        message = progress.message.clone();
        if terminal {
            eprint!("\r\x1b[K{line}");
        } else if new_message || printed.elapsed() >= Duration::from_secs(10) {
            printed = std::time::Instant::now();
            eprintln!("{line}");
        }
    }
    if terminal {
        eprintln!();
    }
    Failure::CouldNotAsk(format!(
        "{what}: the coordinator's stream ended without the result (`triadctl events` says how it ended)"
    ))
    .exit()
}

async fn backup_list(endpoint: &Target, timeout: Duration, output: Output) -> ExitCode {
    let result = async {
        client(
            endpoint,
            timeout,
            Some(timeout.max(Duration::from_secs(30))),
        )
        .await?
        .backup_list(v1::BackupListRequest {})
        .await
        .map(|reply| reply.into_inner())
        .map_err(|status| Failure::from_status(endpoint, "backup list", &status))
    }
    .await;
    match result {
        Ok(reply) => {
            match output {
                Output::Json => println!("{}", triadctl::report::backups_json(&reply)),
                Output::Text => print!("{}", triadctl::report::backups_text(&reply)),
            }
            ExitCode::SUCCESS
        }
        Err(failure) => failure.exit(),
    }
}

async fn events(
    endpoint: &Target,
    timeout: Duration,
    since: Option<String>,
    follow: bool,
    output: Output,
) -> ExitCode {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let since_unix_ms = match since
        .as_deref()
        .map(|s| triadctl::cli::since_unix_ms(s, now_ms))
    {
        None => 0,
        Some(Ok(ms)) => ms,
        Some(Err(error)) => return Failure::CouldNotAsk(error).exit(),
    };
    let stream = async {
        // a followed stream is not bounded in time
        client(
            endpoint,
            timeout,
            (!follow).then_some(timeout.max(Duration::from_secs(15))),
        )
        .await?
        .timeline(v1::TimelineRequest {
            since_unix_ms,
            follow,
        })
        .await
        .map(|reply| reply.into_inner())
        .map_err(|status| Failure::from_status(endpoint, "events", &status))
    }
    .await;
    let mut stream = match stream {
        Ok(stream) => stream,
        Err(failure) => return failure.exit(),
    };
    loop {
        match stream.message().await {
            Ok(Some(event)) => match output {
                Output::Text => println!("{}", triadctl::report::event_line(&event)),
                Output::Json => {
                    match serde_json::to_string(&triadctl::report::EventReport::from_proto(&event))
                    {
                        Ok(line) => println!("{line}"),
                        Err(error) => return Failure::CouldNotAsk(error.to_string()).exit(),
                    }
                }
            },
            Ok(None) => return ExitCode::SUCCESS,
            Err(status) => return Failure::from_status(endpoint, "events", &status).exit(),
        }
    }
}

/// The coordinator's one-sentence answer on stdout (exit 0), or the failure (its code).
fn said(result: Result<String, Failure>) -> ExitCode {
    match result {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(failure) => failure.exit(),
    }
}

async fn maintenance(
    endpoint: &Target,
    timeout: Duration,
    request: v1::MaintenanceRequest,
) -> ExitCode {
    // the coordinator answers once the balancer has it in place (at most 15 s)
    let limit = timeout.max(Duration::from_secs(20));
    let result = async {
        client(endpoint, timeout, Some(limit))
            .await?
            .maintenance(request)
            .await
            .map(|reply| reply.into_inner())
            .map_err(|status| Failure::from_status(endpoint, "maintenance", &status))
    }
    .await;
    said(result.map(|reply| reply.message))
}

async fn node_drain(endpoint: &Target, timeout: Duration, node: String, drain: bool) -> ExitCode {
    let what = if drain { "drain" } else { "undrain" };
    let result = async {
        client(
            endpoint,
            timeout,
            Some(timeout.max(Duration::from_secs(15))),
        )
        .await?
        .node_drain(v1::NodeDrainRequest { node, drain })
        .await
        .map(|reply| reply.into_inner())
        .map_err(|status| Failure::from_status(endpoint, &format!("{what} refused"), &status))
    }
    .await;
    said(result.map(|reply| reply.message))
}

async fn node_maintenance(
    endpoint: &Target,
    timeout: Duration,
    node: String,
    on: bool,
) -> ExitCode {
    let result = async {
        // `on` answers once the node has left Galera (up to 90 s)
        client(
            endpoint,
            timeout,
            Some(timeout.max(Duration::from_secs(120))),
        )
        .await?
        .node_maintenance(v1::NodeMaintenanceRequest { node, on })
        .await
        .map(|reply| reply.into_inner())
        .map_err(|status| Failure::from_status(endpoint, "maintenance refused", &status))
    }
    .await;
    said(result.map(|reply| reply.message))
}

async fn volume_resolve(
    endpoint: &Target,
    timeout: Duration,
    file: String,
    policy: SplitBrainPolicy,
    brick: Option<String>,
) -> ExitCode {
    let result = async {
        client(
            endpoint,
            timeout,
            Some(timeout.max(Duration::from_secs(60))),
        )
        .await?
        .volume_resolve(v1::VolumeResolveRequest {
            file,
            policy: policy.as_str().to_string(),
            brick: brick.unwrap_or_default(),
        })
        .await
        .map(|reply| reply.into_inner())
        .map_err(|status| Failure::from_status(endpoint, "resolve refused", &status))
    }
    .await;
    said(result.map(|reply| reply.message))
}

async fn scale(endpoint: &Target, timeout: Duration, to: u32) -> ExitCode {
    let result = async {
        client(endpoint, timeout, None)
            .await?
            .scale(v1::ScaleRequest { to })
            .await
            .map(|reply| reply.into_inner())
            .map_err(|status| Failure::from_status(endpoint, "scale refused", &status))
    }
    .await;
    said(result.map(|reply| reply.message))
}

async fn recover(
    endpoint: &Target,
    timeout: Duration,
    bootstrap_node: Option<String>,
    force: bool,
) -> ExitCode {
    let result = async {
        client(endpoint, timeout, None)
            .await?
            .recover(v1::RecoverRequest {
                bootstrap_node,
                force,
            })
            .await
            .map(|reply| reply.into_inner())
            .map_err(|status| Failure::from_status(endpoint, "recovery refused", &status))
    }
    .await;
    match result {
        Ok(reply) => {
            println!("epoch {}: {}", reply.epoch, reply.message);
            ExitCode::SUCCESS
        }
        Err(failure) => failure.exit(),
    }
}

async fn status(endpoint: &Target, timeout: Duration, output: Output) -> ExitCode {
    let reply = async {
        client(endpoint, timeout, Some(timeout))
            .await?
            .cluster_status(v1::ClusterStatusRequest {})
            .await
            .map(|reply| reply.into_inner())
            // without the status nothing is known: "could not ask", whatever the reason
            .map_err(|status| {
                Failure::CouldNotAsk(format!(
                    "coordinator at {endpoint} refused ClusterStatus: {}",
                    refusal(endpoint, &status)
                ))
            })
    };
    let status = match tokio::time::timeout(timeout, reply).await {
        Ok(Ok(status)) => status,
        Ok(Err(failure)) => return failure.exit(),
        Err(_) => {
            return Failure::CouldNotAsk(format!(
                "the coordinator at {endpoint} did not answer within {timeout:?}"
            ))
            .exit()
        }
    };
    let report = StatusReport::from_proto(&status);
    match output {
        Output::Text => print!("{}", report.render_text()),
        Output::Json => match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("triadctl: error: cannot encode the status as JSON: {error}");
                return ExitCode::from(EXIT_COULD_NOT_ASK);
            }
        },
    }
    if report.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_REFUSED)
    }
}
