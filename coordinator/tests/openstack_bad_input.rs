//! Bad OpenStack input gives clear errors that name the cloud, the file or the URL and
//! never print a secret: clouds.yaml missing, wrong cloud name, wrong password (against
//! the in-process fake on 127.0.0.1), wrong application credential secret.

use std::sync::Arc;
use std::time::Duration;

use triad_coordinator::balancer::octavia::{OctaviaBalancer, OctaviaSettings};
use triad_coordinator::balancer::Balancer;
use triad_coordinator::openstack::config::{load_cloud, CloudSources};
use triad_coordinator::openstack::octavia::Octavia;
use triad_coordinator::openstack::session::Session;
use triad_openstack_fake::{FakeCloud, FakeOptions};

fn sources_for(file: &std::path::Path, dirs: Vec<std::path::PathBuf>) -> CloudSources {
    CloudSources {
        dirs,
        ..CloudSources::file(file)
    }
}

#[test]
fn missing_clouds_yaml_names_the_places_searched() {
    let dir = tempfile::tempdir().unwrap();
    let sources = sources_for(
        &dir.path().join("absent.yaml"),
        vec![dir.path().join("etc-openstack")],
    );
    let error = load_cloud(&sources, Some("prod")).unwrap_err().to_string();
    assert!(error.contains("no clouds.yaml found"), "{error}");
    assert!(
        error.contains("absent.yaml") && error.contains("etc-openstack"),
        "{error}"
    );
}

#[test]
fn wrong_cloud_name_lists_the_clouds_there() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clouds.yaml");
    std::fs::write(
        &file,
        "clouds:\n  prod:\n    auth:\n      auth_url: http://k/v3\n      username: u\n      password: very-secret\n",
    )
    .unwrap();
    let error = load_cloud(&sources_for(&file, vec![]), Some("staging"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("\"staging\" not found"), "{error}");
    assert!(
        error.contains("prod") && error.contains("clouds.yaml"),
        "{error}"
    );
    assert!(!error.contains("very-secret"), "{error}");
}

async fn failing_auth(
    cloud_name: &str,
    yaml: impl FnOnce(&FakeCloud) -> String,
) -> (String, String) {
    let fake = FakeCloud::start(FakeOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clouds.yaml");
    std::fs::write(&file, yaml(&fake)).unwrap();
    let config = load_cloud(&sources_for(&file, vec![]), Some(cloud_name)).unwrap();
    let debug = format!("{config:?}");
    let session = Arc::new(Session::new(config, Duration::from_secs(2)).unwrap());
    let balancer = OctaviaBalancer::new(Octavia::new(session), OctaviaSettings::new("lb", 80));
    let error = balancer.observe().await.unwrap_err().to_string();
    (error, debug)
}

#[tokio::test]
async fn loopback_wrong_password_names_cloud_and_auth_url_without_the_secret() {
    let (error, debug) = failing_auth("fake", |fake| {
        fake.clouds_yaml("fake")
            .replace("correct-horse", "wrong-battery-staple")
    })
    .await;
    println!("wrong password error: {error}");
    assert!(error.contains("\"fake\""), "names the cloud: {error}");
    assert!(
        error.contains("/identity/v3"),
        "names the auth URL: {error}"
    );
    assert!(error.contains("401"), "{error}");
    assert!(!error.contains("wrong-battery-staple"), "{error}");
    assert!(
        !debug.contains("wrong-battery-staple"),
        "Debug of the config redacts: {debug}"
    );
}

#[tokio::test]
async fn loopback_wrong_application_credential_secret_is_refused_clearly() {
    let (error, debug) = failing_auth("fake-appcred", |fake| {
        fake.clouds_yaml("fake")
            .replace("app-secret", "not-the-app-secret")
    })
    .await;
    assert!(
        error.contains("\"fake-appcred\"") && error.contains("401"),
        "{error}"
    );
    assert!(!error.contains("not-the-app-secret") && !debug.contains("not-the-app-secret"));
}
