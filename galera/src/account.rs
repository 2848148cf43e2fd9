//! The app's database and account (issue 17), as both daemons see them: the coordinator
//! checks the names and hashes the password it generated; the agent that runs the SQL
//! observes what exists and plans from it. An account that exists with other grants or
//! another password is reported and left alone: it may be an operator's.

use std::fmt::Write as _;

use sha1::{Digest, Sha1};

/// What the app is given: its database, and one account with every privilege on that
/// database and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppAccount {
    pub database: String,
    pub user: String,
    /// The account's host part: '%', a name, an address or a pattern ("10.0.0.%").
    pub host: String,
    /// mysql_native_password hash: '*' and 40 upper-case hex digits.
    pub password_hash: String,
}

/// A database or user name: 1-`max` ASCII letters, digits or '_' (no quoting needed, no
/// surprise in a statement, a file name or a log line).
pub fn check_identifier(text: &str, max: usize) -> Result<(), String> {
    let valid = !text.is_empty()
        && text.len() <= max
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not a plain identifier: use 1-{max} letters, digits or '_'"
        ))
    }
}

/// An account's host part: 1-255 of letters, digits, '.', '-', ':', '%' or '_'.
pub fn check_host(text: &str) -> Result<(), String> {
    let valid = !text.is_empty()
        && text.len() <= 255
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:%_".contains(c));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not a host: use '%', a name, an address or a pattern such as '10.0.0.%'"
        ))
    }
}

/// MariaDB's mysql_native_password hash of `password`: "*" + HEX(SHA1(SHA1(password))).
/// Sent instead of the password, so that it never appears in a statement.
pub fn native_password_hash(password: &str) -> String {
    let twice = Sha1::digest(Sha1::digest(password.as_bytes()));
    let mut hash = String::with_capacity(41);
    hash.push('*');
    for byte in twice {
        let _ = write!(hash, "{byte:02X}");
    }
    hash
}

pub fn is_native_hash(text: &str) -> bool {
    text.len() == 41
        && text.starts_with('*')
        && text[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
}

impl AppAccount {
    /// Every field as the statements need it; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        check_identifier(&self.database, 64).map_err(|e| format!("database: {e}"))?;
        check_identifier(&self.user, 32).map_err(|e| format!("user: {e}"))?;
        check_host(&self.host).map_err(|e| format!("host: {e}"))?;
        if !is_native_hash(&self.password_hash) {
            return Err("password_hash: not a mysql_native_password hash".into());
        }
        Ok(())
    }

    /// `SHOW GRANTS FOR` this account, as MariaDB prints them when Triad made it.
    pub fn expected_grants(&self) -> Vec<String> {
        let (user, host, database) = (&self.user, &self.host, &self.database);
        vec![
            format!(
                "GRANT USAGE ON *.* TO `{user}`@`{host}` IDENTIFIED BY PASSWORD '{}'",
                self.password_hash
            ),
            format!("GRANT ALL PRIVILEGES ON `{database}`.* TO `{user}`@`{host}`"),
        ]
    }
}

/// What the agent found on its mysqld.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub database_exists: bool,
    /// `SHOW GRANTS FOR` the account; `None` when it does not exist.
    pub grants: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Run these statements, in order (each idempotent).
    Create(Vec<String>),
    /// Database and account exist as Triad makes them.
    Present,
    /// The account exists and differs: what differs, with any password hash hidden.
    Conflict(String),
}

/// Pure: what to do about `account` given what exists.
pub fn plan(account: &AppAccount, observed: &Observed) -> Plan {
    plan_with(account, observed, false)
}

/// [`plan`], where `reset_password` (after a restore: the restored database holds the
/// password of the cluster the backup came from) turns an account that differs only by
/// its password into an `ALTER USER` to this one. Other grants are still a conflict.
pub fn plan_with(account: &AppAccount, observed: &Observed, reset_password: bool) -> Plan {
    let (user, host, database) = (&account.user, &account.host, &account.database);
    let mut statements = Vec::new();
    if !observed.database_exists {
        statements.push(format!("CREATE DATABASE IF NOT EXISTS `{database}`"));
    }
    match &observed.grants {
        None => {
            statements.push(format!(
                "CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY PASSWORD '{}'",
                account.password_hash
            ));
            statements.push(format!(
                "GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'{host}'"
            ));
        }
        Some(grants) => {
            let mut found: Vec<&str> = grants.iter().map(|g| g.trim()).collect();
            found.sort_unstable();
            let expected = account.expected_grants();
            let mut wanted: Vec<&str> = expected.iter().map(String::as_str).collect();
            wanted.sort_unstable();
            if found != wanted {
                let same_but_password = found.len() == wanted.len()
                    && found
                        .iter()
                        .zip(&wanted)
                        .all(|(f, w)| redact(f) == redact(w));
                if same_but_password && reset_password {
                    statements.push(format!(
                        "ALTER USER '{user}'@'{host}' IDENTIFIED BY PASSWORD '{}'",
                        account.password_hash
                    ));
                    return Plan::Create(statements);
                }
                let detail = if same_but_password {
                    format!("account '{user}'@'{host}' exists with another password")
                } else {
                    let shown: Vec<String> = found.iter().map(|g| redact(g)).collect();
                    format!(
                        "account '{user}'@'{host}' exists with other grants: {}",
                        shown.join("; ")
                    )
                };
                return Plan::Conflict(detail);
            }
        }
    }
    if statements.is_empty() {
        Plan::Present
    } else {
        Plan::Create(statements)
    }
}

/// A grant line with its password hash replaced, fit for a log or a status line.
fn redact(grant: &str) -> String {
    match grant.find(" IDENTIFIED BY PASSWORD '") {
        Some(at) => format!("{} IDENTIFIED BY PASSWORD <hidden>", &grant[..at]),
        None => grant.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AppAccount {
        AppAccount {
            database: "owncloud".into(),
            user: "oc_app".into(),
            host: "%".into(),
            password_hash: native_password_hash("s3cret"),
        }
    }

    #[test]
    fn the_native_hash_is_mariadbs() {
        // SELECT PASSWORD('password'), MySQL's and MariaDB's documented example
        assert_eq!(
            native_password_hash("password"),
            "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
        );
        assert!(is_native_hash(&native_password_hash("")));
        assert!(!is_native_hash("*2470c0c06dee42fd1618bb99005adca2ec9d1e19"));
        assert!(!is_native_hash("s3cret"));
    }

    #[test]
    fn names_must_be_plain_identifiers() {
        assert!(check_identifier("owncloud_1", 64).is_ok());
        for bad in ["", "own-cloud", "a`b", "x; DROP", "émoji", &"a".repeat(65)] {
            assert!(check_identifier(bad, 64).is_err(), "{bad:?}");
        }
        assert!(check_host("10.0.0.%").is_ok());
        assert!(check_host("%").is_ok());
        for bad in ["", "a'b", "x y", "h`"] {
            assert!(check_host(bad).is_err(), "{bad:?}");
        }
        let mut a = account();
        a.user = "oc-app".into();
        assert!(a.validate().unwrap_err().starts_with("user: "));
    }

    #[test]
    fn nothing_there_creates_database_then_account_then_grant() {
        let a = account();
        let plan = plan(
            &a,
            &Observed {
                database_exists: false,
                grants: None,
            },
        );
        let Plan::Create(statements) = plan else {
            panic!("expected statements, got {plan:?}")
        };
        assert_eq!(statements.len(), 3);
        assert!(statements[0].starts_with("CREATE DATABASE IF NOT EXISTS `owncloud`"));
        assert!(statements[1].contains(&a.password_hash));
        assert_eq!(
            statements[2],
            "GRANT ALL PRIVILEGES ON `owncloud`.* TO 'oc_app'@'%'"
        );
    }

    #[test]
    fn an_account_as_triad_makes_it_is_present() {
        let a = account();
        let observed = Observed {
            database_exists: true,
            grants: Some(a.expected_grants().into_iter().rev().collect()),
        };
        assert_eq!(plan(&a, &observed), Plan::Present);
        // the database dropped since: only the database is created again
        let observed = Observed {
            database_exists: false,
            ..observed
        };
        assert_eq!(
            plan(&a, &observed),
            Plan::Create(vec!["CREATE DATABASE IF NOT EXISTS `owncloud`".into()])
        );
    }

    #[test]
    fn an_account_that_differs_is_reported_never_changed() {
        let a = account();
        let mut grants = a.expected_grants();
        grants.push("GRANT SELECT ON `mysql`.* TO `oc_app`@`%`".into());
        let Plan::Conflict(detail) = plan(
            &a,
            &Observed {
                database_exists: true,
                grants: Some(grants),
            },
        ) else {
            panic!("expected a conflict")
        };
        assert!(detail.contains("other grants"), "{detail}");
        assert!(detail.contains("`mysql`.*"), "{detail}");
        assert!(!detail.contains(&a.password_hash), "{detail}");

        let mut other = a.clone();
        other.password_hash = native_password_hash("another");
        let Plan::Conflict(detail) = plan(
            &a,
            &Observed {
                database_exists: true,
                grants: Some(other.expected_grants()),
            },
        ) else {
            panic!("expected a conflict")
        };
        assert_eq!(detail, "account 'oc_app'@'%' exists with another password");
    }

    #[test]
    fn after_a_restore_only_the_password_is_set_to_this_clusters() {
        let a = account();
        let mut other = a.clone();
        other.password_hash = native_password_hash("the backed-up cluster's");
        let restored = Observed {
            database_exists: true,
            grants: Some(other.expected_grants()),
        };
        assert_eq!(
            plan_with(&a, &restored, true),
            Plan::Create(vec![format!(
                "ALTER USER 'oc_app'@'%' IDENTIFIED BY PASSWORD '{}'",
                a.password_hash
            )])
        );
        // other grants stay the operator's to decide, restore or not
        let mut grants = other.expected_grants();
        grants.push("GRANT SELECT ON `mysql`.* TO `oc_app`@`%`".into());
        let widened = Observed {
            database_exists: true,
            grants: Some(grants),
        };
        assert!(matches!(plan_with(&a, &widened, true), Plan::Conflict(_)));
    }
}
