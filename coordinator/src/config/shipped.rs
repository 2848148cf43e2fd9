//! The shipped `packaging/coordinator/coordinator.toml` against this parser: it documents
//! every key [`RawCoordinatorConfig`] accepts (`[balancer]` and `[autoscale]` included) and
//! no other, its example is accepted with each alternative provider and balancer and shows
//! the defaults, and the file as shipped is all comments (triad_daemon::shipped has the
//! rules).

use std::path::{Path, PathBuf};

use triad_daemon::shipped::{
    check_documents_every_key, check_examples_show_defaults, get_key, leaf_keys, remove_key,
    set_key, table, to_text, uncomment_alternatives, uncomment_examples,
};

use super::{CoordinatorConfig, MetricsConfig, RawCoordinatorConfig};
use crate::autoscale::config::ProviderSettings;
use crate::backup::config::BackupConfig;
use crate::balancer::config::{BalancerConfig, BalancerKind};

const FILE: &str = "packaging/coordinator/coordinator.toml";
const SHIPPED: &str = include_str!("../../../packaging/coordinator/coordinator.toml");

/// What the coordinator runs with.
type Parsed = (
    CoordinatorConfig,
    BalancerConfig,
    MetricsConfig,
    Option<BackupConfig>,
);

/// What the coordinator runs with: its config, and the sections the binary reads apart.
fn parse(text: &str) -> Result<Parsed, String> {
    let path = Path::new("coordinator.toml");
    let config = CoordinatorConfig::parse(path, text).map_err(|e| e.to_string())?;
    let balancer = BalancerConfig::parse(path, text).map_err(|e| e.to_string())?;
    let metrics = MetricsConfig::parse(path, text).map_err(|e| e.to_string())?;
    let backup = BackupConfig::parse(path, text).map_err(|e| e.to_string())?;
    Ok((config, balancer, metrics, backup))
}

/// The shipped file uncommented by `uncomment`, with [tls]'s and the Nova provider's CA in
/// `pki` (a cluster CA made there) instead of /etc/triad/pki.
fn uncommented(pki: &Path, uncomment: fn(&str) -> String) -> toml::Table {
    let text = uncomment(SHIPPED).replace("/etc/triad/pki", &pki.display().to_string());
    table(FILE, &text).unwrap()
}

fn cluster_ca() -> tempfile::TempDir {
    let pki = tempfile::tempdir().unwrap();
    triad_daemon::pki::init(pki.path(), "prod", 1, false).unwrap();
    pki
}

/// The example, and the example with the other balancer and each autoscale provider, so
/// that every section is read.
fn variants(example: &toml::Table) -> Vec<toml::Table> {
    let with = |settings: &[(&str, &str)]| {
        let mut variant = example.clone();
        for (key, value) in settings {
            set_key(&mut variant, key, toml::Value::String(value.to_string()));
        }
        variant
    };
    vec![
        example.clone(),
        with(&[("balancer.kind", "octavia"), ("autoscale.provider", "exec")]),
        with(&[("balancer.kind", "octavia"), ("autoscale.provider", "nova")]),
    ]
}

/// The example's keys whose value is not the default: the required ones and illustrations
/// (their comment gives the default).
const NOT_DEFAULTS: &[&str] = &[
    "cluster.name",
    "cluster.seeds",
    "gossip.listen",
    "galera.nodes",
    "app.database",
    "app.jobs",
    "balancer.kind",
    "balancer.octavia.cloud",
    "balancer.octavia.vip_subnet_id",
    "balancer.octavia.member_subnet_id",
    "balancer.octavia.maintenance_page",
    "autoscale.exec.add",
    "autoscale.exec.remove",
    "autoscale.nova.cloud",
    "autoscale.nova.image",
    "autoscale.nova.flavor",
    "autoscale.nova.networks",
    "autoscale.nova.key_name",
    "autoscale.nova.security_groups",
    "autoscale.nova.availability_zone",
    "autoscale.nova.apt_source",
    "autoscale.nova.agent_config",
    "tls.ca",
    "tls.cert",
    "tls.key",
    "backup.dir",
    "backup.key_file",
    "backup.schedule",
];

#[test]
fn shipped_coordinator_toml_documents_every_key() {
    check_documents_every_key::<RawCoordinatorConfig>(FILE, SHIPPED)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn shipped_coordinator_toml_shows_the_defaults() {
    let pki = cluster_ca();
    let example = uncommented(pki.path(), uncomment_examples);
    let variants = variants(&example);
    // the variants do read what they are for
    let (_, balancer, _, backup) = parse(&to_text(&variants[0])).unwrap();
    assert!(
        matches!(balancer.kind, BalancerKind::Haproxy(_)),
        "{balancer:?}"
    );
    assert!(backup.is_some(), "the example has [backup]");
    for (variant, provider) in [(1, "exec"), (2, "nova")] {
        let (config, balancer, _, _) =
            parse(&to_text(&variants[variant])).unwrap_or_else(|e| panic!("{provider}: {e}"));
        assert!(
            matches!(balancer.kind, BalancerKind::Octavia { .. }),
            "{balancer:?}"
        );
        let provider_settings = config.autoscale.map(|a| a.provider);
        assert!(
            matches!(
                (&provider_settings, provider),
                (Some(ProviderSettings::Exec(_)), "exec")
                    | (Some(ProviderSettings::Nova(_)), "nova")
            ),
            "{provider}: {provider_settings:?}"
        );
    }
    check_examples_show_defaults(FILE, &variants, NOT_DEFAULTS, parse)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The `##` lines: what each replaces in the example, and that the result is accepted.
#[test]
fn shipped_coordinator_toml_alternatives_are_accepted() {
    let pki = cluster_ca();
    let example = uncommented(pki.path(), uncomment_examples);
    let everything = uncommented(pki.path(), uncomment_alternatives);
    let alternatives: Vec<String> = leaf_keys(&everything)
        .difference(&leaf_keys(&example))
        .cloned()
        .collect();
    assert_eq!(
        alternatives,
        [
            "autoscale.nova.apt_key_file",
            "autoscale.nova.package_url",
            "autoscale.nova.user_data",
            "backup.s3.access_key_id",
            "backup.s3.bucket",
            "backup.s3.endpoint",
            "backup.s3.region",
            "backup.s3.secret_key_file",
            "backup.s3.url_style",
            "backup.swift.cloud",
            "backup.swift.container",
            "tls.insecure",
        ],
        "a new `##` line: test it here"
    );
    let nova = &variants(&example)[2];
    let alternative = |key: &str| get_key(&everything, key).unwrap().clone();
    let accepted = |variant: &toml::Table, what: &str| {
        parse(&to_text(variant)).unwrap_or_else(|e| panic!("{what}: {e}"))
    };

    // plaintext instead of the certificate files (the Nova provider then issues none)
    let mut insecure = nova.clone();
    for key in ["tls.ca", "tls.cert", "tls.key"] {
        remove_key(&mut insecure, key).unwrap();
    }
    set_key(&mut insecure, "tls.insecure", alternative("tls.insecure"));
    let (config, _, _, _) = accepted(&insecure, "tls.insecure");
    assert_eq!(config.tls, None);

    // a Swift container instead of the backup directory
    let mut swift = nova.clone();
    remove_key(&mut swift, "backup.dir").unwrap();
    for key in ["backup.swift.cloud", "backup.swift.container"] {
        set_key(&mut swift, key, alternative(key));
    }
    let (_, _, _, backup) = accepted(&swift, "backup.swift");
    assert!(
        matches!(
            backup.map(|b| b.target),
            Some(crate::backup::config::TargetConfig::Swift { .. })
        ),
        "[backup.swift] is read"
    );

    // an S3 bucket instead of the backup directory
    let mut s3 = nova.clone();
    remove_key(&mut s3, "backup.dir").unwrap();
    for key in [
        "backup.s3.endpoint",
        "backup.s3.bucket",
        "backup.s3.region",
        "backup.s3.access_key_id",
        "backup.s3.secret_key_file",
        "backup.s3.url_style",
    ] {
        set_key(&mut s3, key, alternative(key));
    }
    let (_, _, _, backup) = accepted(&s3, "backup.s3");
    assert!(
        matches!(
            backup.map(|b| b.target),
            Some(crate::backup::config::TargetConfig::S3(_))
        ),
        "[backup.s3] is read"
    );

    // the .deb's URL instead of an apt source
    let mut url = nova.clone();
    remove_key(&mut url, "autoscale.nova.apt_source").unwrap();
    let package_url = alternative("autoscale.nova.package_url");
    set_key(&mut url, "autoscale.nova.package_url", package_url);
    accepted(&url, "autoscale.nova.package_url");

    // the apt source's key and a template of one's own: files that exist
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("triad-archive-key.asc");
    std::fs::write(&key_file, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n").unwrap();
    let template = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/cloud-init/web-node.yaml")
        .canonicalize()
        .unwrap();
    let mut files = nova.clone();
    for (key, file) in [
        ("autoscale.nova.apt_key_file", &key_file),
        ("autoscale.nova.user_data", &template),
    ] {
        assert!(alternative(key).is_str(), "{key}");
        set_key(
            &mut files,
            key,
            toml::Value::String(file.display().to_string()),
        );
    }
    accepted(&files, "autoscale.nova.apt_key_file and user_data");
}
