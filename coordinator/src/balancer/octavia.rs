//! Octavia backend: an OpenStack load balancer whose pool members Triad owns.
//!
//! Inputs: the configured names and settings ([`OctaviaSettings`]) and an authenticated
//! [`Octavia`] client. Drives toward: the load balancer, listener, pool (algorithm,
//! session persistence) and health monitor exist (existing ones adopted by name, created
//! otherwise), and the pool's members equal the planned set.
//! Triggers: the reconcile loop's `observe` and `apply`.
//! Rules (shared/reference/openstack.md 2.4-2.6): every change goes through one batch
//! `PUT /v2/lbaas/pools/{id}/members`, sent only when the resulting set differs from what
//! is there; changes to one load balancer are serialised (one lock per balancer); before
//! and after a change the load balancer must be ACTIVE (polled with backoff, bounded).
//! Maintenance mode: Octavia answers nothing by itself but 403 (REJECT) or redirects, and
//! its rules cannot match a client's address, so a pool `pool_name + "-maintenance"`
//! holds one member, the coordinator's page server (`maintenance_page`: 503,
//! Retry-After, the message), and while maintenance is on an L7 policy
//! `listener_name + "-maintenance"` at position 1 sends there every request that does
//! not carry the operator's bypass cookie (one COOKIE rule, inverted). Health monitors
//! still check the real members. Off deletes the policy; the pool stays (idle, reused).
//! Errors: 409 "immutable" and PENDING_* = [`BalancerError::Busy`] (the loop retries with
//! backoff); ERROR = [`BalancerError::Failed`], surfaced and not retried blindly; a batch
//! that would leave no active member while one exists now is refused (never an empty pool
//! because of a transient error elsewhere).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{Balancer, BalancerError, Member, MemberChange, MemberState};
use triad_daemon::config::StatusCodes;

use crate::maintenance::{Maintenance, BYPASS_COOKIE};
use crate::openstack::octavia::{
    HealthMonitor, L7Policy, L7Rule, MemberSpec, Octavia, SessionPersistence,
};
use crate::openstack::OpenStackError;

/// The health monitor Triad ensures on its pool (a second line behind Triad's own loop).
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSettings {
    /// HTTP, HTTPS, PING, TCP, ...
    pub kind: String,
    /// Seconds between checks; `timeout` < `delay`.
    pub delay: u32,
    pub timeout: u32,
    pub max_retries: u32,
    pub max_retries_down: u32,
    /// HTTP and HTTPS: the page requested (the agents' `[apache] health_path`; ownCloud
    /// answers "/status.php") and the statuses that pass (`[apache] health_codes`).
    pub url_path: String,
    pub expected_codes: StatusCodes,
}

impl MonitorSettings {
    /// Whether the monitor speaks HTTP (and takes `url_path` and `expected_codes`).
    pub fn is_http(&self) -> bool {
        self.kind == "HTTP" || self.kind == "HTTPS"
    }

    /// How an adopted monitor differs from these settings, in words ("url_path \"/\" is
    /// configured \"/status.php\""); empty when it agrees.
    pub fn differences(&self, existing: &HealthMonitor) -> Vec<String> {
        let mut differences = Vec::new();
        if existing.kind != self.kind {
            differences.push(format!(
                "type {:?} is configured {:?}",
                existing.kind, self.kind
            ));
        }
        if self.is_http() {
            if existing.url_path.as_deref() != Some(self.url_path.as_str()) {
                differences.push(format!(
                    "url_path {:?} is configured {:?}",
                    existing.url_path.as_deref().unwrap_or(""),
                    self.url_path
                ));
            }
            let codes = existing.expected_codes.as_deref().unwrap_or("");
            // "200, 302" and "200,302" mean the same to Octavia
            if StatusCodes::parse(codes).ok().as_ref() != Some(&self.expected_codes) {
                differences.push(format!(
                    "expected_codes {codes:?} is configured \"{}\"",
                    self.expected_codes
                ));
            }
        }
        differences
    }
}

impl Default for MonitorSettings {
    fn default() -> MonitorSettings {
        MonitorSettings {
            kind: "HTTP".into(),
            delay: 5,
            timeout: 3,
            max_retries: 2,
            max_retries_down: 2,
            url_path: "/".into(),
            expected_codes: StatusCodes::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OctaviaSettings {
    pub lb_name: String,
    /// Needed only to create the load balancer; an existing one is adopted by name.
    pub vip_subnet_id: Option<String>,
    pub listener_name: String,
    pub listener_protocol: String,
    pub listener_port: u16,
    pub pool_name: String,
    /// ROUND_ROBIN, LEAST_CONNECTIONS, SOURCE_IP, SOURCE_IP_PORT.
    pub lb_algorithm: String,
    /// HTTP_COOKIE by default: WebDAV locks are per node (design section 7).
    pub session_persistence: Option<SessionPersistence>,
    pub monitor: Option<MonitorSettings>,
    pub member_port: u16,
    pub member_subnet_id: Option<String>,
    /// Tag on everything Triad creates.
    pub tag: String,
    /// How long to wait for ACTIVE before and after a change.
    pub active_timeout: Duration,
    /// First poll interval while waiting (grows ×1.2 up to `poll_max`).
    pub poll_initial: Duration,
    pub poll_max: Duration,
    /// Where the coordinator serves maintenance mode's page (None: maintenance mode is
    /// refused with this balancer).
    pub maintenance_page: Option<SocketAddr>,
}

impl OctaviaSettings {
    pub fn new(lb_name: &str, member_port: u16) -> OctaviaSettings {
        OctaviaSettings {
            lb_name: lb_name.to_string(),
            vip_subnet_id: None,
            listener_name: format!("{lb_name}-http"),
            listener_protocol: "HTTP".into(),
            listener_port: 80,
            pool_name: format!("{lb_name}-pool"),
            lb_algorithm: "ROUND_ROBIN".into(),
            session_persistence: Some(SessionPersistence {
                kind: "HTTP_COOKIE".into(),
                cookie_name: None,
            }),
            monitor: Some(MonitorSettings::default()),
            member_port,
            member_subnet_id: None,
            tag: "triad".into(),
            active_timeout: Duration::from_secs(300),
            poll_initial: Duration::from_secs(1),
            poll_max: Duration::from_secs(10),
            maintenance_page: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Ids {
    lb: String,
    listener: String,
    pool: String,
}

/// How long a maintenance state verified in place is trusted before the next round looks
/// at Octavia again (someone may delete the policy by hand).
const MAINTENANCE_RECHECK: Duration = Duration::from_secs(60);

/// The one rule of the maintenance policy: requests whose bypass cookie is not `token`.
pub fn maintenance_rule(token: &str) -> L7Rule {
    L7Rule {
        kind: "COOKIE".into(),
        compare_type: "EQUAL_TO".into(),
        key: Some(BYPASS_COOKIE.into()),
        value: token.into(),
        invert: true,
    }
}

/// Pure: whether an existing maintenance policy and its rules are the wanted ones (else it
/// is replaced: deleted, then created as wanted).
pub fn maintenance_policy_is(
    policy: &L7Policy,
    rules: &[L7Rule],
    pool_id: &str,
    token: &str,
) -> bool {
    policy.action == "REDIRECT_TO_POOL"
        && policy.redirect_pool_id.as_deref() == Some(pool_id)
        && policy.position == 1
        && rules == [maintenance_rule(token)]
}

/// The [`Balancer`] over one Octavia pool.
#[derive(Debug)]
pub struct OctaviaBalancer {
    api: Octavia,
    settings: OctaviaSettings,
    /// Serialises every call that mutates this load balancer, and caches its ids.
    ids: Mutex<Option<Ids>>,
    last_status: std::sync::Mutex<Option<String>>,
    /// Maintenance as last verified in place, and when.
    maintenance_seen: std::sync::Mutex<Option<(Option<Maintenance>, Instant)>>,
}

fn busy_or(error: OpenStackError, object: &str) -> BalancerError {
    if error.is_immutable() {
        BalancerError::Busy {
            object: object.to_string(),
            status: "409 immutable".into(),
        }
    } else {
        BalancerError::OpenStack(error)
    }
}

impl OctaviaBalancer {
    pub fn new(api: Octavia, settings: OctaviaSettings) -> OctaviaBalancer {
        OctaviaBalancer {
            api,
            settings,
            ids: Mutex::new(None),
            last_status: std::sync::Mutex::new(None),
            maintenance_seen: std::sync::Mutex::new(None),
        }
    }

    /// The load balancer's provisioning_status as last seen (for status and metrics).
    pub fn last_status(&self) -> Option<String> {
        self.last_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn record_status(&self, status: &str) {
        *self.last_status.lock().unwrap_or_else(|p| p.into_inner()) = Some(status.to_string());
    }

    fn object(&self) -> String {
        format!("load balancer {:?}", self.settings.lb_name)
    }

    /// Poll the load balancer until ACTIVE (bounded); ERROR ends the wait at once.
    async fn wait_active(&self, lb_id: &str) -> Result<(), BalancerError> {
        let started = Instant::now();
        let mut poll = self.settings.poll_initial;
        loop {
            let lb = self.api.load_balancer(lb_id).await?;
            self.record_status(&lb.provisioning_status);
            match lb.provisioning_status.as_str() {
                "ACTIVE" => return Ok(()),
                "ERROR" | "DELETED" => {
                    return Err(BalancerError::Failed {
                        object: self.object(),
                        status: lb.provisioning_status,
                    })
                }
                _ => {}
            }
            if started.elapsed() >= self.settings.active_timeout {
                return Err(BalancerError::OpenStack(OpenStackError::WaitTimeout {
                    object: self.object(),
                    status: lb.provisioning_status,
                    waited: started.elapsed(),
                }));
            }
            tokio::time::sleep(poll).await;
            poll = (poll.mul_f64(1.2)).min(self.settings.poll_max);
        }
    }

    /// Find or create the load balancer, listener, pool and monitor; wait for ACTIVE after
    /// each creation (Octavia refuses children of a PENDING parent).
    async fn ensure(&self) -> Result<Ids, BalancerError> {
        let s = &self.settings;
        let lb = match self.api.find_load_balancer(&s.lb_name).await? {
            Some(lb) => {
                tracing::info!(lb = %s.lb_name, id = %lb.id, "adopting existing load balancer");
                lb
            }
            None => {
                let subnet = s.vip_subnet_id.clone().ok_or_else(|| {
                    BalancerError::OpenStack(OpenStackError::Config(format!(
                        "load balancer {:?} does not exist and balancer.octavia.vip_subnet_id is not set to create it",
                        s.lb_name
                    )))
                })?;
                tracing::info!(lb = %s.lb_name, "creating load balancer");
                self.api
                    .create_load_balancer(json!({
                        "name": s.lb_name, "vip_subnet_id": subnet,
                        "admin_state_up": true, "tags": [s.tag],
                    }))
                    .await
                    .map_err(|e| busy_or(e, &self.object()))?
            }
        };
        self.wait_active(&lb.id).await?;
        let listener = match self.api.find_listener(&s.listener_name).await? {
            Some(listener) => listener,
            None => {
                let listener = self
                    .api
                    .create_listener(json!({
                        "name": s.listener_name, "protocol": s.listener_protocol,
                        "protocol_port": s.listener_port, "loadbalancer_id": lb.id,
                        "tags": [s.tag],
                    }))
                    .await
                    .map_err(|e| busy_or(e, &self.object()))?;
                self.wait_active(&lb.id).await?;
                listener
            }
        };
        let pool = match self.api.find_pool(&s.pool_name).await? {
            Some(pool) => {
                if pool.lb_algorithm != s.lb_algorithm
                    || pool.session_persistence != s.session_persistence
                {
                    tracing::warn!(pool = %s.pool_name, algorithm = %pool.lb_algorithm, "adopted pool differs from the configuration; left as is");
                }
                pool
            }
            None => {
                let pool = self
                    .api
                    .create_pool(json!({
                        "name": s.pool_name, "protocol": s.listener_protocol,
                        "lb_algorithm": s.lb_algorithm, "listener_id": listener.id,
                        "session_persistence": s.session_persistence, "tags": [s.tag],
                    }))
                    .await
                    .map_err(|e| busy_or(e, &self.object()))?;
                self.wait_active(&lb.id).await?;
                pool
            }
        };
        if let Some(monitor) = &s.monitor {
            match &pool.healthmonitor_id {
                Some(id) => {
                    let existing = self.api.health_monitor(id).await?;
                    let differences = monitor.differences(&existing);
                    if !differences.is_empty() {
                        tracing::warn!(
                            pool = %s.pool_name, monitor = %id, differences = %differences.join("; "),
                            "adopted health monitor differs from [balancer.octavia.monitor]; left as is \
                             (change it with `openstack loadbalancer healthmonitor set`, or delete it \
                             and restart the coordinator to have it created as configured)"
                        );
                    }
                }
                None => {
                    let name = format!("{}-monitor", s.pool_name);
                    if self.api.find_health_monitor(&name).await?.is_none() {
                        let mut body = json!({
                            "name": name, "pool_id": pool.id, "type": monitor.kind,
                            "delay": monitor.delay, "timeout": monitor.timeout,
                            "max_retries": monitor.max_retries,
                            "max_retries_down": monitor.max_retries_down, "tags": [s.tag],
                        });
                        if monitor.is_http() {
                            body["url_path"] = json!(monitor.url_path);
                            body["http_method"] = json!("GET");
                            body["expected_codes"] = json!(monitor.expected_codes.to_string());
                        }
                        self.api
                            .create_health_monitor(body)
                            .await
                            .map_err(|e| busy_or(e, &self.object()))?;
                        self.wait_active(&lb.id).await?;
                    }
                }
            }
        }
        Ok(Ids {
            lb: lb.id,
            listener: listener.id,
            pool: pool.id,
        })
    }

    async fn ids(&self, guard: &mut Option<Ids>) -> Result<Ids, BalancerError> {
        if let Some(ids) = guard.as_ref() {
            return Ok(ids.clone());
        }
        let ids = self.ensure().await?;
        *guard = Some(ids.clone());
        Ok(ids)
    }

    /// The maintenance pool (created on the load balancer when missing), its one member
    /// the page server; returns its id.
    async fn ensure_maintenance_pool(
        &self,
        ids: &Ids,
        page: SocketAddr,
    ) -> Result<String, BalancerError> {
        let s = &self.settings;
        let name = format!("{}-maintenance", s.pool_name);
        let pool = match self.api.find_pool(&name).await? {
            Some(pool) => pool,
            None => {
                self.wait_active(&ids.lb).await?;
                tracing::info!(pool = %name, "creating the maintenance pool");
                let pool = self
                    .api
                    .create_pool(json!({
                        "name": name, "protocol": s.listener_protocol,
                        "lb_algorithm": "ROUND_ROBIN", "loadbalancer_id": ids.lb,
                        "tags": [s.tag],
                    }))
                    .await
                    .map_err(|e| busy_or(e, &self.object()))?;
                self.wait_active(&ids.lb).await?;
                pool
            }
        };
        let wanted = vec![MemberSpec {
            address: page.ip().to_string(),
            protocol_port: page.port(),
            name: "triad-maintenance-page".into(),
            weight: 1,
            admin_state_up: true,
            subnet_id: s.member_subnet_id.clone(),
            tags: vec![s.tag.clone()],
        }];
        let mut current: Vec<MemberSpec> = self
            .api
            .members(&pool.id)
            .await?
            .iter()
            .map(|m| self.spec_of(m))
            .collect();
        current.sort();
        if current != wanted {
            self.wait_active(&ids.lb).await?;
            self.api
                .replace_members(&pool.id, &wanted)
                .await
                .map_err(|e| busy_or(e, &self.object()))?;
            self.wait_active(&ids.lb).await?;
        }
        Ok(pool.id)
    }

    /// Delete the maintenance policy if it exists; true when it did.
    async fn remove_maintenance_policy(
        &self,
        ids: &Ids,
        policy: Option<L7Policy>,
    ) -> Result<bool, BalancerError> {
        let Some(policy) = policy else {
            return Ok(false);
        };
        self.wait_active(&ids.lb).await?;
        match self.api.delete_l7policy(&policy.id).await {
            Ok(()) => {}
            // gone meanwhile: what was wanted
            Err(error) if error.status() == Some(404) => return Ok(false),
            Err(error) => return Err(busy_or(error, &self.object())),
        }
        tracing::info!(policy = %policy.name, "maintenance policy deleted");
        self.wait_active(&ids.lb).await?;
        Ok(true)
    }

    fn spec_of(&self, member: &crate::openstack::octavia::Member) -> MemberSpec {
        MemberSpec {
            address: member.address.clone(),
            protocol_port: member.protocol_port,
            name: member.name.clone(),
            weight: member.weight,
            admin_state_up: member.admin_state_up,
            subnet_id: self.settings.member_subnet_id.clone(),
            tags: member.tags.clone(),
        }
    }
}

fn member_state(weight: u32, admin_state_up: bool) -> MemberState {
    if !admin_state_up {
        MemberState::Maint
    } else if weight == 0 {
        MemberState::Draining
    } else {
        MemberState::Active
    }
}

/// Pure: the member set after `changes` (by name; new members get weight 1).
pub fn apply_changes(
    current: &[MemberSpec],
    changes: &[MemberChange],
    subnet_id: Option<&str>,
    tag: &str,
) -> Vec<MemberSpec> {
    let mut next: Vec<MemberSpec> = current.to_vec();
    for change in changes {
        match change {
            MemberChange::Add {
                name,
                address,
                port,
            } => {
                next.retain(|m| m.name != *name);
                next.push(MemberSpec {
                    address: address.to_string(),
                    protocol_port: *port,
                    name: name.clone(),
                    weight: 1,
                    admin_state_up: true,
                    subnet_id: subnet_id.map(str::to_string),
                    tags: vec![tag.to_string()],
                });
            }
            MemberChange::SetActive { name } => {
                for member in next.iter_mut().filter(|m| m.name == *name) {
                    member.weight = member.weight.max(1);
                    member.admin_state_up = true;
                }
            }
            MemberChange::Drain { name } => {
                for member in next.iter_mut().filter(|m| m.name == *name) {
                    member.weight = 0;
                }
            }
            // Octavia has no cheaper "no traffic" state than leaving the pool (admin_state_up
            // semantics vary by provider), so Disable is removal; Remove is then a no-op.
            MemberChange::Disable { name, .. } | MemberChange::Remove { name } => {
                next.retain(|m| m.name != *name)
            }
        }
    }
    next.sort();
    next
}

fn active_count(members: &[MemberSpec]) -> usize {
    members
        .iter()
        .filter(|m| member_state(m.weight, m.admin_state_up) == MemberState::Active)
        .count()
}

#[async_trait]
impl Balancer for OctaviaBalancer {
    fn kind(&self) -> &'static str {
        "octavia"
    }

    fn member_port(&self) -> u16 {
        self.settings.member_port
    }

    async fn observe(&self) -> Result<Vec<Member>, BalancerError> {
        let mut guard = self.ids.lock().await;
        let ids = self.ids(&mut guard).await?;
        let lb = match self.api.load_balancer(&ids.lb).await {
            Ok(lb) => lb,
            Err(error) if error.status() == Some(404) => {
                *guard = None;
                return Err(error.into());
            }
            Err(error) => return Err(error.into()),
        };
        self.record_status(&lb.provisioning_status);
        if lb.provisioning_status == "ERROR" {
            return Err(BalancerError::Failed {
                object: self.object(),
                status: lb.provisioning_status,
            });
        }
        let members = match self.api.members(&ids.pool).await {
            Ok(members) => members,
            Err(error) if error.status() == Some(404) => {
                *guard = None;
                return Err(error.into());
            }
            Err(error) => return Err(error.into()),
        };
        Ok(members
            .into_iter()
            .filter_map(|m| {
                let address: IpAddr = m.address.parse().ok()?;
                Some(Member {
                    name: if m.name.is_empty() {
                        m.address.clone()
                    } else {
                        m.name.clone()
                    },
                    address,
                    port: m.protocol_port,
                    state: member_state(m.weight, m.admin_state_up),
                    connections: None,
                    health: Some(m.operating_status.clone()),
                })
            })
            .collect())
    }

    async fn maintenance(&self, wanted: Option<&Maintenance>) -> Result<bool, BalancerError> {
        let page = match (wanted, self.settings.maintenance_page) {
            (Some(_), None) => {
                return Err(BalancerError::OpenStack(OpenStackError::Config(
                    "maintenance mode with Octavia needs balancer.octavia.maintenance_page \
                     (the coordinator's address:port that serves the 503 page, reachable from \
                     the load balancer)"
                        .into(),
                )))
            }
            (_, page) => page,
        };
        let seen_recently = |seen: &Option<(Option<Maintenance>, Instant)>| {
            seen.as_ref()
                .is_some_and(|(m, at)| m.as_ref() == wanted && at.elapsed() < MAINTENANCE_RECHECK)
        };
        if seen_recently(
            &self
                .maintenance_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        ) {
            return Ok(false);
        }
        let mut guard = self.ids.lock().await;
        let ids = self.ids(&mut guard).await?;
        let name = format!("{}-maintenance", self.settings.listener_name);
        let existing = self.api.find_l7policy(&name).await?;
        let changed = match (wanted, page) {
            (Some(m), Some(page)) => {
                let pool = self.ensure_maintenance_pool(&ids, page).await?;
                let in_place = match &existing {
                    Some(policy) => {
                        let rules = self.api.l7rules(&policy.id).await?;
                        maintenance_policy_is(policy, &rules, &pool, &m.bypass)
                    }
                    None => false,
                };
                if in_place {
                    false
                } else {
                    self.remove_maintenance_policy(&ids, existing).await?;
                    self.wait_active(&ids.lb).await?;
                    self.api
                        .create_l7policy(json!({
                            "name": name, "listener_id": ids.listener,
                            "action": "REDIRECT_TO_POOL", "redirect_pool_id": pool,
                            "position": 1, "rules": [maintenance_rule(&m.bypass)],
                            "tags": [self.settings.tag],
                        }))
                        .await
                        .map_err(|e| busy_or(e, &self.object()))?;
                    tracing::info!(policy = %name, "maintenance policy in place");
                    self.wait_active(&ids.lb).await?;
                    true
                }
            }
            _ => self.remove_maintenance_policy(&ids, existing).await?,
        };
        *self
            .maintenance_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((wanted.cloned(), Instant::now()));
        Ok(changed)
    }

    async fn apply(&self, changes: &[MemberChange]) -> Result<(), BalancerError> {
        let mut guard = self.ids.lock().await;
        let ids = self.ids(&mut guard).await?;
        let current_members = self.api.members(&ids.pool).await?;
        let mut current: Vec<MemberSpec> =
            current_members.iter().map(|m| self.spec_of(m)).collect();
        current.sort();
        let next = apply_changes(
            &current,
            changes,
            self.settings.member_subnet_id.as_deref(),
            &self.settings.tag,
        );
        if next == current {
            tracing::debug!(pool = %self.settings.pool_name, "member set unchanged; no batch call");
            return Ok(());
        }
        if active_count(&next) == 0 && active_count(&current) > 0 {
            return Err(BalancerError::Failed {
                object: format!("pool {:?}", self.settings.pool_name),
                status: "a change that would leave no active member (refused)".into(),
            });
        }
        self.wait_active(&ids.lb).await?;
        self.api
            .replace_members(&ids.pool, &next)
            .await
            .map_err(|e| busy_or(e, &self.object()))?;
        tracing::info!(pool = %self.settings.pool_name, members = next.len(), "pool members replaced");
        self.wait_active(&ids.lb).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, weight: u32) -> MemberSpec {
        MemberSpec {
            address: format!("10.0.0.{}", &name[1..]),
            protocol_port: 80,
            name: name.into(),
            weight,
            admin_state_up: true,
            subnet_id: None,
            tags: vec!["triad".into()],
        }
    }

    #[test]
    fn changes_fold_into_the_member_set() {
        let current = vec![spec("n1", 1), spec("n2", 1)];
        let next = apply_changes(
            &current,
            &[
                MemberChange::Add {
                    name: "n3".into(),
                    address: "10.0.0.3".parse().unwrap(),
                    port: 80,
                },
                MemberChange::Drain { name: "n2".into() },
            ],
            None,
            "triad",
        );
        assert_eq!(next, vec![spec("n1", 1), spec("n2", 0), spec("n3", 1)]);
        let removed = apply_changes(
            &next,
            &[MemberChange::Remove { name: "n2".into() }],
            None,
            "triad",
        );
        assert_eq!(removed, vec![spec("n1", 1), spec("n3", 1)]);
        assert_eq!(
            apply_changes(&removed, &[], None, "triad"),
            removed,
            "no change, same set"
        );
    }

    #[test]
    fn a_maintenance_policy_is_kept_only_when_it_is_exactly_the_wanted_one() {
        let policy = L7Policy {
            id: "p".into(),
            name: "triad-http-maintenance".into(),
            listener_id: "l".into(),
            action: "REDIRECT_TO_POOL".into(),
            position: 1,
            redirect_pool_id: Some("pool-m".into()),
            provisioning_status: "ACTIVE".into(),
        };
        let rule = maintenance_rule("aa");
        assert_eq!(rule.key.as_deref(), Some(BYPASS_COOKIE));
        assert!(
            rule.invert,
            "the policy applies to requests WITHOUT the cookie"
        );
        assert!(maintenance_policy_is(
            &policy,
            std::slice::from_ref(&rule),
            "pool-m",
            "aa"
        ));
        let cases: [(&str, L7Policy, Vec<L7Rule>, &str); 6] = [
            ("another token", policy.clone(), vec![rule.clone()], "bb"),
            ("another pool", policy.clone(), vec![rule.clone()], "aa"),
            (
                "not first",
                L7Policy {
                    position: 2,
                    ..policy.clone()
                },
                vec![rule.clone()],
                "aa",
            ),
            (
                "a REJECT",
                L7Policy {
                    action: "REJECT".into(),
                    ..policy.clone()
                },
                vec![rule.clone()],
                "aa",
            ),
            ("no rule (matches nothing)", policy.clone(), vec![], "aa"),
            (
                "a rule more",
                policy.clone(),
                vec![rule.clone(), maintenance_rule("cc")],
                "aa",
            ),
        ];
        for (why, policy, rules, token) in cases {
            let pool = if why == "another pool" {
                "pool-x"
            } else {
                "pool-m"
            };
            assert!(
                !maintenance_policy_is(&policy, &rules, pool, token),
                "{why}"
            );
        }
    }

    fn existing(kind: &str, url_path: Option<&str>, codes: Option<&str>) -> HealthMonitor {
        HealthMonitor {
            id: "hm-1".into(),
            name: "triad-pool-monitor".into(),
            kind: kind.into(),
            delay: 5,
            timeout: 3,
            max_retries: 2,
            url_path: url_path.map(str::to_string),
            expected_codes: codes.map(str::to_string),
            provisioning_status: "ACTIVE".into(),
        }
    }

    #[test]
    fn an_adopted_monitor_is_compared_on_type_path_and_codes() {
        let owncloud = MonitorSettings {
            url_path: "/status.php".into(),
            expected_codes: StatusCodes::parse("200,302").unwrap(),
            ..MonitorSettings::default()
        };
        assert!(owncloud
            .differences(&existing("HTTP", Some("/status.php"), Some("200, 302")))
            .is_empty());
        assert_eq!(
            owncloud.differences(&existing("HTTP", Some("/"), Some("200"))),
            [
                "url_path \"/\" is configured \"/status.php\"",
                "expected_codes \"200\" is configured \"200,302\""
            ]
        );
        // a TCP monitor has no path or codes to compare
        let tcp = MonitorSettings {
            kind: "TCP".into(),
            ..MonitorSettings::default()
        };
        assert!(tcp.differences(&existing("TCP", None, None)).is_empty());
        assert_eq!(
            tcp.differences(&existing("HTTP", Some("/"), Some("200"))),
            ["type \"HTTP\" is configured \"TCP\""]
        );
    }
}
