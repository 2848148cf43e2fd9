//! The application Triad serves (issue 17, `[app]`): its database and account, created
//! once on the Primary component through one agent, and its database password, generated
//! here once, kept in the state directory (0600) and handed to every node's agent, which
//! keeps it in a file for the web server. The password never leaves this process except in
//! those requests (mutual TLS): not in a log line, the status or gossip.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use triad_galera::account::{native_password_hash, AppAccount};
use triad_proto::gossip::{AppSecret, GaleraState};
use triad_proto::v1;
use triad_proto::v1::agent_service_client::AgentServiceClient;

use crate::agent_client::{answer, AgentError};
use crate::observer::Coordinator;
use crate::runner;
use crate::view::ClusterView;

/// `[app]` as configured (the config's type: the config module reads it, this one runs it).
pub use crate::config::AppSpec;

/// The password's file in the coordinator's state directory.
pub const SECRET_FILE: &str = "app-db.password";

/// The app's database password: read from `state_dir`, or generated (32 characters of
/// [A-Za-z0-9] from the kernel's random source, about 190 bits) and written 0600 first.
pub fn load_or_create_password(state_dir: &Path) -> Result<String, String> {
    let path = state_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => return Err(format!("{} is empty: remove it to generate a new password (the app's account then needs it set by hand)", path.display())),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("reading {}: {e}", path.display()))
        }
        Err(_) => {}
    }
    let password = generate_password().map_err(|e| format!("reading /dev/urandom: {e}"))?;
    triad_daemon::fs::durable_write_private(&path, &format!("{password}\n"), 0o600)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    tracing::info!(file = %path.display(), "generated the app's database password");
    Ok(password)
}

fn generate_password() -> std::io::Result<String> {
    use std::io::Read as _;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut random = std::fs::File::open("/dev/urandom")?;
    let mut password = String::with_capacity(32);
    let mut byte = [0u8; 1];
    while password.len() < 32 {
        random.read_exact(&mut byte)?;
        // 248 = 4 * 62: rejecting the rest keeps every character equally likely
        if byte[0] < 248 {
            password.push(ALPHABET[(byte[0] % 62) as usize] as char);
        }
    }
    Ok(password)
}

/// The database endpoint's route: the writer first, then the other Galera members by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub members: Vec<(String, std::net::IpAddr)>,
}

impl Route {
    pub fn writer(&self) -> &str {
        &self.members[0].0
    }
}

fn in_primary(member: &crate::view::MemberView) -> bool {
    member.live && member.keys.galera.synced_in_primary()
}

/// Pure: the writer most live nodes' endpoints route to now (`db.writer` in gossip; the
/// lowest id on a tie); `None` when no node says.
pub fn routed_writer(view: &ClusterView) -> Option<&str> {
    let mut votes: std::collections::BTreeMap<&str, usize> = Default::default();
    for m in view.members().filter(|m| m.live) {
        if let Some(writer) = m.keys.db_writer.as_deref() {
            *votes.entry(writer).or_default() += 1;
        }
    }
    votes
        .into_iter()
        .max_by_key(|(id, n)| (*n, std::cmp::Reverse(*id)))
        .map(|(id, _)| id)
}

/// Pure: the route every node's endpoint should follow. The writer stays while it is a
/// live member Synced in the Primary component (`current`, else the one most nodes route
/// to now, so a restarted coordinator keeps it); otherwise the first such member by id.
/// `None` while no member is Synced in a Primary component.
pub fn route(view: &ClusterView, current: Option<&str>) -> Option<Route> {
    let mut galera: Vec<&crate::view::MemberView> = view
        .members()
        .filter(|m| {
            !matches!(
                m.keys.galera.state,
                GaleraState::NotManaged | GaleraState::Unknown
            )
        })
        .collect();
    galera.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    let routed_now = routed_writer(view);
    let eligible = |id: &str| galera.iter().any(|m| m.node_id == id && in_primary(m));
    let writer = current
        .filter(|id| eligible(id))
        .or(routed_now.filter(|id| eligible(id)))
        .map(str::to_string)
        .or_else(|| {
            galera
                .iter()
                .find(|m| in_primary(m))
                .map(|m| m.node_id.clone())
        })?;
    let mut members = Vec::new();
    for m in &galera {
        if m.node_id == writer {
            members.insert(0, (m.node_id.clone(), m.address()));
        } else {
            members.push((m.node_id.clone(), m.address()));
        }
    }
    Some(Route { members })
}

/// What the agents are asked.
#[async_trait::async_trait]
pub trait AppAgents: Send + Sync {
    async fn ensure_database(
        &self,
        node: &str,
        grpc: SocketAddr,
        account: &AppAccount,
    ) -> Result<(v1::AppDatabaseOutcome, String), AgentError>;
    async fn keep_secret(
        &self,
        node: &str,
        grpc: SocketAddr,
        spec: &AppSpec,
        password: &str,
    ) -> Result<bool, AgentError>;
    async fn db_route(
        &self,
        node: &str,
        grpc: SocketAddr,
        route: &Route,
    ) -> Result<bool, AgentError>;
}

/// Agents over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcAppAgents {
    pub connect_timeout: Duration,
}

impl GrpcAppAgents {
    async fn client(
        &self,
        node: &str,
        grpc: SocketAddr,
        call: Duration,
    ) -> Result<AgentServiceClient<tonic::transport::Channel>, AgentError> {
        crate::agent_client::connect(node, grpc, self.connect_timeout, call).await
    }
}

#[async_trait::async_trait]
impl AppAgents for GrpcAppAgents {
    async fn ensure_database(
        &self,
        node: &str,
        grpc: SocketAddr,
        account: &AppAccount,
    ) -> Result<(v1::AppDatabaseOutcome, String), AgentError> {
        let mut client = self.client(node, grpc, Duration::from_secs(30)).await?;
        let reply = answer(
            node,
            client
                .app_database(v1::AppDatabaseRequest {
                    database: account.database.clone(),
                    user: account.user.clone(),
                    host: account.host.clone(),
                    password_hash: account.password_hash.clone(),
                    reset_password: false,
                })
                .await,
        )?;
        Ok((reply.outcome(), reply.detail))
    }

    async fn keep_secret(
        &self,
        node: &str,
        grpc: SocketAddr,
        spec: &AppSpec,
        password: &str,
    ) -> Result<bool, AgentError> {
        let mut client = self.client(node, grpc, Duration::from_secs(10)).await?;
        let reply = answer(
            node,
            client
                .app_secret(v1::AppSecretRequest {
                    path: spec.password_file.display().to_string(),
                    password: password.to_string(),
                    group: spec.group.clone(),
                })
                .await,
        )?;
        Ok(reply.written)
    }

    async fn db_route(
        &self,
        node: &str,
        grpc: SocketAddr,
        route: &Route,
    ) -> Result<bool, AgentError> {
        let mut client = self.client(node, grpc, Duration::from_secs(30)).await?;
        let reply = answer(
            node,
            client
                .db_route(v1::DbRouteRequest {
                    members: route
                        .members
                        .iter()
                        .map(|(node, address)| v1::DbMember {
                            node: node.clone(),
                            address: address.to_string(),
                        })
                        .collect(),
                })
                .await,
        )?;
        Ok(reply.changed)
    }
}

/// Where the app stands, as the last pass saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppState {
    /// Waiting for a node Synced in the Primary component.
    Waiting,
    /// The account exists and differs: left as it is, the operator decides.
    Conflict,
    /// Database and account in place; some live nodes lack the password file.
    Delivering,
    /// Database and account in place, the password on every live node.
    Ready,
}

impl AppState {
    pub fn as_str(self) -> &'static str {
        match self {
            AppState::Waiting => "waiting",
            AppState::Conflict => "conflict",
            AppState::Delivering => "delivering",
            AppState::Ready => "ready",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppStatus {
    /// The line `triadctl status` shows.
    pub line: String,
    pub state: AppState,
}

/// A node to call: its id and gRPC address.
pub type Target = (String, SocketAddr);

/// Pure: the node to create the database through (a live member Synced in the Primary
/// component, the first by id), and the live nodes whose password file is not known to
/// be in place.
pub fn targets(view: &ClusterView) -> (Option<Target>, Vec<Target>) {
    // live members that can be called, by id
    let mut members: Vec<(&crate::view::MemberView, SocketAddr)> = view
        .members()
        .filter(|m| m.live)
        .filter_map(|m| m.keys.grpc.map(|addr| (m, addr)))
        .collect();
    members.sort_by(|a, b| a.0.node_id.cmp(&b.0.node_id));
    let target = |(m, addr): &(&crate::view::MemberView, SocketAddr)| (m.node_id.clone(), *addr);
    let primary = members.iter().find(|(m, _)| in_primary(m)).map(target);
    let secrets = members
        .iter()
        .filter(|(m, _)| m.keys.app_secret != AppSecret::Ok)
        .map(target)
        .collect();
    (primary, secrets)
}

pub struct AppLoop {
    spec: AppSpec,
    password: String,
    agents: Arc<dyn AppAgents>,
    status: watch::Sender<AppStatus>,
    /// The database and account were found in place (or created) at this time.
    database_done: Option<Instant>,
    /// A conflict was reported at this time: asked again only after [`CONFLICT_RECHECK`].
    conflict_at: Option<Instant>,
    /// The endpoint's route last handed out.
    route: Option<Route>,
}

impl std::fmt::Debug for AppLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppLoop").field("spec", &self.spec).finish()
    }
}

/// How often a database in place is looked at again (an account dropped by hand comes
/// back): each look runs the `mariadb` client as root on a node, so a slow cadence.
const RECHECK: Duration = Duration::from_secs(300);

/// How often a conflict is looked at again: the operator is fixing it and waits.
const CONFLICT_RECHECK: Duration = Duration::from_secs(60);

impl AppLoop {
    pub fn new(spec: AppSpec, password: String, agents: Arc<dyn AppAgents>) -> AppLoop {
        AppLoop {
            status: watch::channel(AppStatus {
                line: format!("database {}: not observed yet", spec.database),
                state: AppState::Waiting,
            })
            .0,
            spec,
            password,
            agents,
            database_done: None,
            conflict_at: None,
            route: None,
        }
    }

    pub fn status(&self) -> watch::Receiver<AppStatus> {
        self.status.subscribe()
    }

    fn account(&self) -> AppAccount {
        AppAccount {
            database: self.spec.database.clone(),
            user: self.spec.user.clone(),
            host: self.spec.client_host.clone(),
            password_hash: native_password_hash(&self.password),
        }
    }

    fn set_status(&self, line: String, state: AppState) {
        self.status.send_if_modified(|old| {
            if old.line == line && old.state == state {
                return false;
            }
            tracing::info!(state = state.as_str(), "app: {line}");
            *old = AppStatus { line, state };
            true
        });
    }

    /// One pass: the database (until in place, then every [`RECHECK`]), then the password
    /// file on every live node that does not report it.
    pub async fn pass(&mut self, view: &ClusterView) {
        let (primary, secrets) = targets(view);
        let account = self.account();
        let who = format!(
            "database {}, account '{}'@'{}'",
            account.database, account.user, account.host
        );
        let due = |at: Option<Instant>, every| at.is_none_or(|t| t.elapsed() >= every);
        if due(self.database_done, RECHECK) && due(self.conflict_at, CONFLICT_RECHECK) {
            match &primary {
                None => {
                    if self.database_done.is_none() {
                        self.set_status(
                            format!("{who}: waiting for a node Synced in the Primary component"),
                            AppState::Waiting,
                        );
                        return;
                    }
                }
                Some((node, grpc)) => {
                    match self.agents.ensure_database(node, *grpc, &account).await {
                        Ok((v1::AppDatabaseOutcome::Conflict, detail)) => {
                            self.conflict_at = Some(Instant::now());
                            self.database_done = None;
                            self.set_status(
                                format!("{detail} (left as it is: grant it as Triad would, or drop it, or set [app] user)"),
                                AppState::Conflict,
                            );
                            return;
                        }
                        Ok((outcome, _)) => {
                            if outcome == v1::AppDatabaseOutcome::Created {
                                tracing::info!(via = %node, "app: {who} created");
                            }
                            self.conflict_at = None;
                            self.database_done = Some(Instant::now());
                        }
                        Err(error) => {
                            if self.database_done.is_none() {
                                self.set_status(
                                    format!("{who}: {node} could not create it: {error}"),
                                    AppState::Waiting,
                                );
                                return;
                            }
                            tracing::warn!("app: re-checking {who} through {node}: {error}");
                        }
                    }
                }
            }
        }
        if self.conflict_at.is_some() {
            return;
        }
        let mut failed = Vec::new();
        for (node, grpc) in &secrets {
            if let Err(error) = self
                .agents
                .keep_secret(node, *grpc, &self.spec, &self.password)
                .await
            {
                tracing::warn!("app: password file on {node}: {error}");
                failed.push(format!("{node}: {error}"));
            }
        }
        let endpoint = self.pass_route(view).await;
        let live = view.members().filter(|m| m.live).count();
        if secrets.is_empty() && endpoint.is_ok() {
            self.set_status(
                format!(
                    "{who} in place; password file on {live} live node(s); {}",
                    endpoint.unwrap_or_default()
                ),
                AppState::Ready,
            );
        } else if let Err(endpoint) = endpoint {
            self.set_status(format!("{who} in place; {endpoint}"), AppState::Delivering);
        } else if failed.is_empty() {
            self.set_status(
                format!(
                    "{who} in place; password file delivered to {}",
                    secrets
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                AppState::Delivering,
            );
        } else {
            self.set_status(
                format!(
                    "{who} in place; password file not delivered ({})",
                    failed.join("; ")
                ),
                AppState::Delivering,
            );
        }
    }

    /// Hand the endpoint's route to every live node that does not follow it yet. Ok: the
    /// sentence for the status; Err: what is not done.
    async fn pass_route(&mut self, view: &ClusterView) -> Result<String, String> {
        let Some(route) = route(view, self.route.as_ref().map(Route::writer)) else {
            return Err("database endpoint: no member Synced in the Primary component".into());
        };
        if self.route.as_ref() != Some(&route) {
            tracing::info!(
                "app: database writer {} (then {})",
                route.writer(),
                route.members[1..]
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            self.route = Some(route.clone());
        }
        let mut failed = Vec::new();
        for m in view.members().filter(|m| m.live) {
            if m.keys.db_writer.as_deref() == Some(route.writer()) {
                continue;
            }
            let Some(grpc) = m.keys.grpc else { continue };
            if let Err(error) = self.agents.db_route(&m.node_id, grpc, &route).await {
                tracing::warn!("app: database endpoint on {}: {error}", m.node_id);
                failed.push(format!("{}: {error}", m.node_id));
            }
        }
        if failed.is_empty() {
            Ok(format!("database writer {}", route.writer()))
        } else {
            Err(format!(
                "database writer {}, not routed on {}",
                route.writer(),
                failed.join("; ")
            ))
        }
    }

    pub fn spawn(
        self,
        coordinator: Arc<Coordinator>,
        stop: watch::Receiver<bool>,
    ) -> watch::Receiver<AppStatus> {
        let status = self.status();
        let pass = AppPass {
            app: self,
            coordinator,
        };
        tokio::spawn(runner::run(
            "app",
            pass,
            runner::Backoff::NEVER_USED,
            runner::Inputs::default(),
            stop,
        ));
        status
    }
}

struct AppPass {
    app: AppLoop,
    coordinator: Arc<Coordinator>,
}

#[async_trait::async_trait]
impl runner::Reconciler for AppPass {
    type Command = ();

    async fn pass(&mut self) -> runner::Next {
        self.app.pass(&self.coordinator.view()).await;
        runner::Next::After(Duration::from_secs(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(
        id: &str,
        live: bool,
        synced: bool,
        secret: AppSecret,
    ) -> triad_cluster::membership::ObservedMember {
        let mut keys = triad_proto::gossip::NodeKeys::initial(
            triad_proto::gossip::Role::Core,
            "10.0.0.1:7421".parse().unwrap(),
            "0.1.0",
        );
        if synced {
            keys.galera.state = GaleraState::Synced;
            keys.galera.cluster_status = Some("Primary".into());
        }
        keys.app_secret = secret;
        triad_cluster::membership::ObservedMember {
            node_id: id.into(),
            generation: 1,
            gossip_addr: "10.0.0.1:7420".parse().unwrap(),
            live,
            is_self: false,
            keys,
            decode_errors: vec![],
        }
    }

    #[test]
    fn the_database_goes_through_a_synced_member_and_the_file_to_live_nodes_without_it() {
        let mut view = ClusterView::default();
        view.apply(
            &[
                member("n1", false, true, AppSecret::None),
                member("n2", true, false, AppSecret::Ok),
                member("n3", true, true, AppSecret::Missing),
                member("web-1", true, false, AppSecret::None),
            ],
            tokio::time::Instant::now(),
        );
        let (primary, secrets) = targets(&view);
        assert_eq!(primary.map(|(id, _)| id).as_deref(), Some("n3"));
        let ids: Vec<String> = secrets.into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["n3", "web-1"], "live, and not reporting the file");
    }

    #[test]
    fn the_writer_stays_while_it_is_synced_and_moves_to_the_first_synced_member() {
        let at = tokio::time::Instant::now();
        let mut view = ClusterView::default();
        let synced = |id: &str, live: bool| member(id, live, true, AppSecret::Ok);
        view.apply(
            &[synced("n1", true), synced("n2", true), synced("n3", true)],
            at,
        );
        let first = route(&view, None).expect("a route");
        let order: Vec<&str> = first.members.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(order, ["n1", "n2", "n3"]);
        // kept while eligible, even when another would come first by id
        assert_eq!(route(&view, Some("n2")).unwrap().writer(), "n2");
        // the writer dies: the next by id, the dead one still listed to stand by
        view.apply(
            &[synced("n1", true), synced("n2", false), synced("n3", true)],
            at,
        );
        let moved = route(&view, Some("n2")).unwrap();
        let order: Vec<&str> = moved.members.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(order, ["n1", "n2", "n3"]);
        // a donor or a node out of Primary is not chosen; no Synced member, no route
        let mut donor = synced("n1", true);
        donor.keys.galera.state = GaleraState::Donor;
        view.apply(
            &[donor.clone(), synced("n2", false), synced("n3", true)],
            at,
        );
        assert_eq!(route(&view, None).unwrap().writer(), "n3");
        let mut cut = synced("n3", true);
        cut.keys.galera.cluster_status = Some("non-Primary".into());
        view.apply(&[donor, synced("n2", false), cut], at);
        assert_eq!(route(&view, None), None);
    }

    #[test]
    fn a_restarted_coordinator_keeps_the_writer_the_nodes_route_to() {
        let at = tokio::time::Instant::now();
        let mut view = ClusterView::default();
        let routed = |id: &str| {
            let mut m = member(id, true, true, AppSecret::Ok);
            m.keys.db_writer = Some("n3".into());
            m
        };
        view.apply(&[routed("n1"), routed("n2"), routed("n3")], at);
        assert_eq!(route(&view, None).unwrap().writer(), "n3");
    }

    #[test]
    fn a_generated_password_is_kept_and_reread() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_password(dir.path()).unwrap();
        assert_eq!(first.len(), 32);
        assert!(first.chars().all(|c| c.is_ascii_alphanumeric()));
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
            .unwrap()
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
        assert_eq!(load_or_create_password(dir.path()).unwrap(), first);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create_password(other.path()).unwrap(), first);
    }

    #[test]
    fn an_empty_password_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SECRET_FILE), "\n").unwrap();
        let error = load_or_create_password(dir.path()).unwrap_err();
        assert!(error.contains(SECRET_FILE), "{error}");
    }
}
