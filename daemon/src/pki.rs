//! The cluster PKI behind mutual TLS (issue 9): `triadctl pki init` makes the cluster CA,
//! `triadctl pki issue NAME --role ROLE` a certificate signed by it. The subject says who
//! holds a certificate (CN = name, OU = role: node, coordinator or operator; see
//! `triad_daemon::tls`). A node's certificate names its node id (the coordinator checks it)
//! and its addresses; the coordinator's names `triad-coordinator` (triadctl checks it).
//! Keys are ECDSA P-256, written 0600 and never overwritten unless asked; certificates
//! 0644. Keys never leave the directory they are written to.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::tls::{PeerRole, COORDINATOR_SERVER_NAME};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca.key";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Refused: the file is there and `--force` was not given.
    #[error("{}: {message}", path.display())]
    Exists { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> PkiError {
    PkiError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Write `content` to a new file with `mode` (refusing an existing one unless `force`).
fn write_new(path: &Path, content: &str, mode: u32, force: bool) -> Result<(), PkiError> {
    if path.exists() && !force {
        return Err(PkiError::Exists {
            path: path.to_path_buf(),
            message: "already exists; not overwritten (--force replaces it)".into(),
        });
    }
    if force {
        let _ = std::fs::remove_file(path);
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| file_error(path, format!("cannot create: {e}")))?;
    file.write_all(content.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| file_error(path, format!("cannot write: {e}")))
}

fn validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    // an hour back: clocks of the cluster's machines differ a little
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
}

/// What `init` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Create the cluster CA in `dir` (created 0700 if missing).
pub fn init(dir: &Path, cluster: &str, days: u32, force: bool) -> Result<Written, PkiError> {
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, format!("cannot create: {e}")))?;
    let _ = std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    if key_path.exists() && !force {
        return Err(PkiError::Exists {
            path: key_path,
            message: "a cluster CA already exists here; not replaced (--force would invalidate every certificate it signed)".into(),
        });
    }
    let key = KeyPair::generate().map_err(|e| PkiError::Invalid(e.to_string()))?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Triad cluster CA {cluster}"));
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, days);
    let cert = params
        .self_signed(&key)
        .map_err(|e| PkiError::Invalid(e.to_string()))?;
    write_new(&key_path, &key.serialize_pem(), 0o600, force)?;
    write_new(&cert_path, &cert.pem(), 0o644, force)?;
    Ok(Written {
        cert: cert_path,
        key: key_path,
    })
}

/// What a certificate is issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    pub name: String,
    pub role: PeerRole,
    pub ips: Vec<IpAddr>,
    pub dns: Vec<String>,
    pub days: u32,
    pub force: bool,
}

/// Issue `NAME.pem` and `NAME.key` in `dir`, signed by the CA there.
pub fn issue(dir: &Path, request: &IssueRequest) -> Result<Written, PkiError> {
    let (cert, key) = issue_pem(dir, request)?;
    let name = &request.name;
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    write_new(&key_path, &key, 0o600, request.force)?;
    write_new(&cert_path, &cert, 0o644, request.force)?;
    Ok(Written {
        cert: cert_path,
        key: key_path,
    })
}

/// A certificate signed by the CA in `dir`, as (certificate PEM, key PEM), written
/// nowhere (the Nova provider puts a new node's into its user data).
pub fn issue_pem(dir: &Path, request: &IssueRequest) -> Result<(String, String), PkiError> {
    let name = &request.name;
    if name.is_empty()
        || name.len() > 63
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(PkiError::Invalid(format!(
            "{name:?}: a name is 1-63 letters, digits, '-', '_' or '.' (a node id, the coordinator's id, an operator)"
        )));
    }
    let ca_cert_path = dir.join(CA_CERT);
    let ca_key_path = dir.join(CA_KEY);
    let ca_pem = std::fs::read_to_string(&ca_cert_path).map_err(|e| {
        file_error(
            &ca_cert_path,
            format!("cannot read the cluster CA ({e}); run `triadctl pki init` first"),
        )
    })?;
    let ca_key_pem = std::fs::read_to_string(&ca_key_path)
        .map_err(|e| file_error(&ca_key_path, format!("cannot read the CA key: {e}")))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem)
        .map_err(|e| file_error(&ca_key_path, format!("not a usable key: {e}")))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)
        .map_err(|e| file_error(&ca_cert_path, format!("not a usable CA certificate: {e}")))?;

    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, name.as_str());
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, request.role.as_str());
    let mut dns: Vec<String> = request.dns.clone();
    match request.role {
        PeerRole::Node => dns.insert(0, name.clone()),
        PeerRole::Coordinator => dns.insert(0, COORDINATOR_SERVER_NAME.to_string()),
        PeerRole::Operator | PeerRole::Viewer => {}
    }
    dns.dedup();
    for d in dns {
        let san = d
            .clone()
            .try_into()
            .map_err(|e| PkiError::Invalid(format!("{d:?} is not a DNS name: {e}")))?;
        params.subject_alt_names.push(SanType::DnsName(san));
    }
    for ip in &request.ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match request.role {
        PeerRole::Operator | PeerRole::Viewer => vec![ExtendedKeyUsagePurpose::ClientAuth],
        PeerRole::Node | PeerRole::Coordinator => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, request.days);
    let key = KeyPair::generate().map_err(|e| PkiError::Invalid(e.to_string()))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| PkiError::Invalid(e.to_string()))?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_and_issue_write_root_only_keys_and_name_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let ca = init(dir.path(), "prod", 3650, false).unwrap();
        assert_eq!(mode(&ca.key), 0o600);
        assert_eq!(mode(&ca.cert), 0o644);
        let error = init(dir.path(), "prod", 3650, false)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("ca.key") && error.contains("--force"),
            "{error}"
        );
        let n1 = issue(
            dir.path(),
            &IssueRequest {
                name: "n1".into(),
                role: PeerRole::Node,
                ips: vec!["10.214.0.11".parse().unwrap()],
                dns: vec![],
                days: 365,
                force: false,
            },
        )
        .unwrap();
        assert_eq!(mode(&n1.key), 0o600);
        let certs = crate::tls::read_certs(&n1.cert).unwrap();
        let identity = crate::tls::identity_of(&certs[0]).unwrap();
        assert_eq!(
            (identity.name.as_str(), identity.role),
            ("n1", PeerRole::Node)
        );
        let in_a_year = time::OffsetDateTime::now_utc().unix_timestamp() + 365 * 86400;
        assert!((identity.not_after - in_a_year).abs() < 120, "{identity:?}");
        let error = issue(
            dir.path(),
            &IssueRequest {
                name: "n1".into(),
                role: PeerRole::Node,
                ips: vec![],
                dns: vec![],
                days: 365,
                force: false,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("n1.key") && error.contains("already exists"),
            "{error}"
        );
        let error = issue(
            &dir.path().join("elsewhere"),
            &IssueRequest {
                name: "ops".into(),
                role: PeerRole::Operator,
                ips: vec![],
                dns: vec![],
                days: 30,
                force: false,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("pki init"), "{error}");
    }
}
