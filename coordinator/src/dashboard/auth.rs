//! Who may read the dashboard. A caller proves it holds a cluster certificate with role
//! viewer or operator, either on the connection (mutual TLS: curl, a browser with the
//! certificate installed) or through a session cookie. The cookie is got by a login link
//! that only a certificate holder can mint (`POST /login-link`, what `triadctl dashboard
//! url` asks for): browsers make client certificates awkward, a link is one click. Links
//! are single-use and short-lived; sessions live in the coordinator's memory only, so a
//! restart logs every browser out (nothing to steal from the state directory).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use triad_daemon::tls::{PeerIdentity, PeerRole};

/// The roles that may read the dashboard (and mint a login link).
pub const DASHBOARD_ROLES: &[PeerRole] = &[PeerRole::Viewer, PeerRole::Operator];

/// How long a login link may wait to be opened.
pub const LINK_LIFETIME: Duration = Duration::from_secs(60);

/// How long a browser's session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Links waiting to be opened, at most; a minter beyond it is refused until some expire.
pub const MAX_LINKS: usize = 32;

/// Live sessions, at most; the oldest is dropped for a new one.
pub const MAX_SESSIONS: usize = 256;

/// The session cookie's name.
pub const COOKIE: &str = "triad_dashboard";

/// What the connection and the request say about the caller.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The client certificate's identity (already checked against the cluster CA by the
    /// handshake), or why it could not be read.
    pub certificate: Option<Result<PeerIdentity, String>>,
    /// Who the session cookie stands for, when it names a live session.
    pub session: Option<String>,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let through; who it is, for the logs.
    Allow(String),
    /// 401: no credentials at all.
    Unauthenticated(String),
    /// 403: credentials, but not ones that may read the dashboard.
    Forbidden(String),
}

const HOW_TO_LOG_IN: &str = "run `triadctl dashboard url` (a viewer or operator certificate) and open the link it prints, or present a viewer or operator client certificate";

fn certificate_decision(certificate: &Result<PeerIdentity, String>) -> Decision {
    match certificate {
        Ok(identity) if DASHBOARD_ROLES.contains(&identity.role) => {
            Decision::Allow(identity.to_string())
        }
        Ok(identity) => Decision::Forbidden(format!(
            "the certificate of {identity} may not read the dashboard: only viewer and operator certificates may"
        )),
        Err(why) => Decision::Forbidden(format!("the client certificate is not usable: {why}")),
    }
}

/// May the caller read the dashboard? A live session is enough; otherwise the
/// certificate decides.
pub fn decide(credentials: &Credentials) -> Decision {
    if let Some(who) = &credentials.session {
        return Decision::Allow(who.clone());
    }
    match &credentials.certificate {
        Some(certificate) => certificate_decision(certificate),
        None => Decision::Unauthenticated(format!("not logged in: {HOW_TO_LOG_IN}")),
    }
}

/// May the caller mint a login link? Only with a certificate: a session cannot extend
/// itself or hand out others.
pub fn decide_link(credentials: &Credentials) -> Decision {
    match &credentials.certificate {
        Some(certificate) => certificate_decision(certificate),
        None => Decision::Unauthenticated(
            "a login link is given only to a viewer or operator client certificate (`triadctl dashboard url`)"
                .to_string(),
        ),
    }
}

#[derive(Debug, Clone)]
struct Grant {
    who: String,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Grants {
    links: HashMap<String, Grant>,
    sessions: HashMap<String, Grant>,
}

/// Login links and sessions, in memory.
#[derive(Debug, Default)]
pub struct Sessions {
    grants: Mutex<Grants>,
}

/// A new random token: 256 bits, hex.
fn new_token() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    fn grants(&self) -> std::sync::MutexGuard<'_, Grants> {
        self.grants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A single-use link token for `who`, valid [`LINK_LIFETIME`]; `None` when
    /// [`MAX_LINKS`] are waiting.
    pub fn mint_link(&self, who: &str, now: Instant) -> Option<String> {
        let mut grants = self.grants();
        grants.links.retain(|_, grant| grant.expires > now);
        if grants.links.len() >= MAX_LINKS {
            return None;
        }
        let token = new_token();
        grants.links.insert(
            token.clone(),
            Grant {
                who: who.to_string(),
                expires: now + LINK_LIFETIME,
            },
        );
        Some(token)
    }

    /// Spend a link token: a new session token and who it is for; `None` when the link is
    /// unknown, used or expired.
    pub fn redeem(&self, link: &str, now: Instant) -> Option<(String, String)> {
        let mut grants = self.grants();
        let grant = grants.links.remove(link)?;
        if grant.expires <= now {
            return None;
        }
        grants.sessions.retain(|_, g| g.expires > now);
        if grants.sessions.len() >= MAX_SESSIONS {
            let oldest = grants
                .sessions
                .iter()
                .min_by_key(|(_, g)| g.expires)
                .map(|(token, _)| token.clone());
            if let Some(oldest) = oldest {
                grants.sessions.remove(&oldest);
            }
        }
        let token = new_token();
        let who = format!("{} (dashboard session)", grant.who);
        grants.sessions.insert(
            token.clone(),
            Grant {
                who: who.clone(),
                expires: now + SESSION_LIFETIME,
            },
        );
        Some((token, who))
    }

    /// Who a session token stands for, while it lives.
    pub fn session(&self, token: &str, now: Instant) -> Option<String> {
        let grants = self.grants();
        grants
            .sessions
            .get(token)
            .filter(|grant| grant.expires > now)
            .map(|grant| grant.who.clone())
    }
}

/// The session cookie's value in a `Cookie` header, if any.
pub fn cookie_value(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` header for a new session: not readable by scripts, sent only over
/// HTTPS and only by this site's own pages.
pub fn set_cookie(token: &str) -> String {
    format!(
        "{COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        SESSION_LIFETIME.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(role: PeerRole) -> Option<Result<PeerIdentity, String>> {
        Some(Ok(PeerIdentity {
            name: "alice".into(),
            role,
            not_after: 0,
        }))
    }

    #[test]
    fn viewer_and_operator_certificates_may_read() {
        for role in [PeerRole::Viewer, PeerRole::Operator] {
            let decision = decide(&Credentials {
                certificate: cert(role),
                session: None,
            });
            assert_eq!(decision, Decision::Allow(format!("alice ({role})")));
        }
    }

    #[test]
    fn node_and_coordinator_certificates_are_forbidden() {
        for role in [PeerRole::Node, PeerRole::Coordinator] {
            let credentials = Credentials {
                certificate: cert(role),
                session: None,
            };
            assert!(
                matches!(decide(&credentials), Decision::Forbidden(ref why) if why.contains("only viewer and operator")),
                "{role}"
            );
            assert!(matches!(decide_link(&credentials), Decision::Forbidden(_)));
        }
    }

    #[test]
    fn unreadable_certificate_is_forbidden_with_why() {
        let decision = decide(&Credentials {
            certificate: Some(Err("the certificate has no OU (its role)".into())),
            session: None,
        });
        assert_eq!(
            decision,
            Decision::Forbidden(
                "the client certificate is not usable: the certificate has no OU (its role)".into()
            )
        );
    }

    #[test]
    fn no_credentials_is_unauthenticated_and_says_how_to_log_in() {
        let decision = decide(&Credentials::default());
        assert!(
            matches!(decision, Decision::Unauthenticated(ref why) if why.contains("triadctl dashboard url")),
            "{decision:?}"
        );
    }

    #[test]
    fn a_session_reads_but_cannot_mint_links() {
        let credentials = Credentials {
            certificate: None,
            session: Some("alice (viewer) (dashboard session)".into()),
        };
        assert!(matches!(decide(&credentials), Decision::Allow(_)));
        assert!(matches!(
            decide_link(&credentials),
            Decision::Unauthenticated(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn link_is_single_use_and_short_lived() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let link = sessions.mint_link("alice (viewer)", now).unwrap();
        assert_eq!(link.len(), 64);
        let (session, who) = sessions.redeem(&link, now).expect("fresh link");
        assert_eq!(who, "alice (viewer) (dashboard session)");
        assert_eq!(sessions.redeem(&link, now), None, "a link works once");
        assert_eq!(
            sessions.session(&session, now).as_deref(),
            Some(who.as_str())
        );
        assert_eq!(sessions.session("forged", now), None);
        assert_eq!(
            sessions.session(&session, now + SESSION_LIFETIME),
            None,
            "sessions end"
        );

        let late = sessions.mint_link("alice (viewer)", now).unwrap();
        assert_eq!(
            sessions.redeem(&late, now + LINK_LIFETIME),
            None,
            "links expire"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_links_are_bounded() {
        let sessions = Sessions::default();
        let now = Instant::now();
        for _ in 0..MAX_LINKS {
            assert!(sessions.mint_link("bob (operator)", now).is_some());
        }
        assert_eq!(sessions.mint_link("bob (operator)", now), None);
        assert!(
            sessions
                .mint_link("bob (operator)", now + LINK_LIFETIME)
                .is_some(),
            "expired links make room"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_are_bounded_oldest_dropped() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let mut first = None;
        for i in 0..=MAX_SESSIONS {
            let now = start + Duration::from_millis(i as u64);
            let link = sessions.mint_link("carol (viewer)", now).unwrap();
            let (token, _) = sessions.redeem(&link, now).unwrap();
            first.get_or_insert(token);
        }
        let now = start + Duration::from_secs(1);
        assert_eq!(sessions.session(first.as_ref().unwrap(), now), None);
        assert_eq!(sessions.grants().sessions.len(), MAX_SESSIONS);
    }

    #[test]
    fn cookie_is_found_among_others_and_set_safely() {
        assert_eq!(cookie_value("a=1; triad_dashboard=abc; b=2"), Some("abc"));
        assert_eq!(cookie_value("a=1"), None);
        let header = set_cookie("abc");
        for part in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(header.contains(part), "{header}");
        }
    }
}
