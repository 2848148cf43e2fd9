//! A thin typed OpenStack client: Keystone v3 authentication and the service catalog
//! ([`session`]), clouds.yaml and `OS_*` configuration ([`config`]), and the Octavia v2
//! calls Triad needs ([`octavia`]). Hand-written on reqwest rather than a generated SDK
//! (shared/reference/openstack.md section 5): the 409/PENDING state machine, the diff
//! before the batch member call and the single-flight re-authentication are ours to get
//! right anyway, and these types double as the wire contract of the test fake.
//!
//! Secrets (passwords, application credential secrets, tokens) are held in [`Secret`],
//! whose `Debug` and `Display` print `<redacted>`, and never appear in errors.

pub mod config;
#[cfg(test)]
mod hostile_tests;
pub mod nova;
pub mod octavia;
pub mod session;

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// The value under `key` of an OpenStack answer (`{"server": {...}}`), typed; errors name
/// the request and the key.
pub(crate) fn decode<T: DeserializeOwned>(
    value: Value,
    key: &str,
    method: &reqwest::Method,
    path: &str,
) -> Result<T, OpenStackError> {
    let inner = value
        .get(key)
        .cloned()
        .ok_or_else(|| OpenStackError::Decode {
            method: method.to_string(),
            url: path.into(),
            message: format!("no `{key}` in the answer"),
        })?;
    serde_json::from_value(inner).map_err(|e| OpenStackError::Decode {
        method: method.to_string(),
        url: path.into(),
        message: format!("`{key}`: {e}"),
    })
}

/// A secret string: readable only through [`Secret::expose`], redacted everywhere else.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Errors of the OpenStack client. Each names the cloud, URL or object at fault and never
/// carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum OpenStackError {
    #[error("clouds.yaml: {0}")]
    Config(String),
    #[error("authentication to cloud {cloud:?} at {auth_url} failed: {message}")]
    Auth {
        cloud: String,
        auth_url: String,
        message: String,
    },
    #[error("cloud {cloud:?}: no {service_type} endpoint with interface {interface}{region} in the catalog")]
    NoEndpoint {
        cloud: String,
        service_type: String,
        interface: String,
        region: String,
    },
    #[error("{method} {url}: {message}")]
    Transport {
        method: String,
        url: String,
        message: String,
        timeout: bool,
    },
    #[error("{method} {url} answered {status}: {message}")]
    Http {
        method: String,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{method} {url}: the answer is not the expected JSON: {message}")]
    Decode {
        method: String,
        url: String,
        message: String,
    },
    /// A paginated list whose `next` links do not end (a repeated marker, or more pages
    /// than [`session::MAX_PAGES`]).
    #[error("GET {url}: {message}")]
    Pagination { url: String, message: String },
    /// Several objects answer to one name: Triad cannot tell which is its own and acts on
    /// none (terminal: an operator renames or deletes the extra ones).
    #[error(
        "{url}: {count} {collection} are named {name:?} ({ids}); rename or delete all but one"
    )]
    Ambiguous {
        url: String,
        collection: String,
        name: String,
        count: usize,
        ids: String,
    },
    #[error(
        "{object} did not become ACTIVE within {waited:?} (last provisioning_status {status})"
    )]
    WaitTimeout {
        object: String,
        status: String,
        waited: std::time::Duration,
    },
}

impl OpenStackError {
    /// Worth retrying later: timeouts, connection errors, 5xx, 409 (Octavia immutable
    /// while PENDING_*), 401 after the one re-authentication already tried.
    pub fn is_transient(&self) -> bool {
        match self {
            OpenStackError::Transport { .. } | OpenStackError::WaitTimeout { .. } => true,
            OpenStackError::Http { status, .. } => *status >= 500 || *status == 409,
            _ => false,
        }
    }

    /// Octavia's 409 "... is immutable and cannot be updated." (an object is PENDING_*).
    pub fn is_immutable(&self) -> bool {
        matches!(self, OpenStackError::Http { status: 409, message, .. } if message.contains("immutable"))
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            OpenStackError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_and_display() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "<redacted> <redacted>");
        assert_eq!(secret.expose(), "hunter2");
    }
}
