//! A cloud whose certificate comes from the operator's own CA: trusted through the
//! system store (here `SSL_CERT_FILE`, which rustls-native-certs reads instead of the
//! platform store) without `cacert` in clouds.yaml, or through `cacert`; refused with an
//! error naming the certificate problem otherwise. The fake serves HTTPS on 127.0.0.1.
//!
//! One test in its own binary: `SSL_CERT_FILE` is process-wide, and it is read when a
//! session builds its HTTP client, so each step builds a new session after setting it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use triad_coordinator::openstack::config::{load_cloud, CloudSources};
use triad_coordinator::openstack::octavia::Octavia;
use triad_coordinator::openstack::session::Session;
use triad_openstack_fake::{FakeCloud, FakeOptions};

/// A CA (PEM) and a server certificate for 127.0.0.1 it issued (chain PEM, key PEM).
fn test_pki() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Operator test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "openstack.test");
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Keystone authentication and an Octavia list through a new session on `clouds`.
async fn auth_and_list(clouds: &Path) -> Result<usize, String> {
    let sources = CloudSources::file(clouds);
    let config = load_cloud(&sources, Some("fake")).map_err(|e| e.to_string())?;
    let session =
        Arc::new(Session::new(config, Duration::from_secs(5)).map_err(|e| e.to_string())?);
    session.check().await.map_err(|e| e.to_string())?;
    Octavia::new(session)
        .list_load_balancers()
        .await
        .map(|lbs| lbs.len())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_private_ca_is_trusted_from_the_system_store_or_cacert_and_refused_otherwise() {
    std::env::remove_var("SSL_CERT_DIR");
    let dir = tempfile::tempdir().unwrap();
    let (ca, chain, key) = test_pki();
    let ca_file = dir.path().join("operator-ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let fake = FakeCloud::start_https(FakeOptions::default(), &chain, &key).await;
    assert!(fake.auth_url().starts_with("https://127.0.0.1:"));
    let plain = dir.path().join("clouds.yaml");
    std::fs::write(&plain, fake.clouds_yaml("fake")).unwrap();

    // the CA is in no store: refused, and the error says it is the certificate
    std::env::remove_var("SSL_CERT_FILE");
    let error = auth_and_list(&plain).await.unwrap_err();
    assert!(
        error.contains(&fake.auth_url())
            && error.contains("invalid peer certificate")
            && error.contains("UnknownIssuer")
            && error.contains("cacert"),
        "{error}"
    );

    // the CA in the system store (SSL_CERT_FILE stands for it), no cacert in clouds.yaml
    std::env::set_var("SSL_CERT_FILE", &ca_file);
    assert_eq!(auth_and_list(&plain).await, Ok(0));

    // not in the store, but named as cacert
    std::env::remove_var("SSL_CERT_FILE");
    let with_cacert = dir.path().join("clouds-cacert.yaml");
    std::fs::write(
        &with_cacert,
        fake.clouds_yaml("fake").replacen(
            "  fake:\n",
            &format!("  fake:\n    cacert: {}\n", ca_file.display()),
            1,
        ),
    )
    .unwrap();
    assert_eq!(auth_and_list(&with_cacert).await, Ok(0));
    assert!(fake.tokens_issued() >= 2);
}
