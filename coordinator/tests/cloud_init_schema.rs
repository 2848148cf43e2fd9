//! The user data the Nova provider renders, checked by cloud-init's own schema validator
//! (`cloud-init schema --config-file`, Debian 12's cloud-init 22.4; scripts/install-host-deps.sh
//! unpacks it under /opt/triad-ci/cloud-init). Every install variant is valid, and a broken
//! document is refused (the validator really validates).

use std::path::{Path, PathBuf};
use std::process::Command;

use triad_coordinator::autoscale::cloud_init::{render, Install, NodeTls, WebNode, TEMPLATE};

const UNPACKED: &str = "/opt/triad-ci/cloud-init";

/// `cloud-init` and the PYTHONPATH it needs (none when installed as a package).
fn cloud_init() -> (PathBuf, Option<String>) {
    let unpacked = Path::new(UNPACKED).join("usr/bin/cloud-init");
    if unpacked.exists() {
        return (
            unpacked,
            Some(format!("{UNPACKED}/usr/lib/python3/dist-packages")),
        );
    }
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let installed = Path::new(dir).join("cloud-init");
        if installed.exists() {
            return (installed, None);
        }
    }
    panic!("cloud-init not found under {UNPACKED} or in /usr/bin: run scripts/install-host-deps.sh as root");
}

/// (valid, what the validator said)
fn validate(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("user-data.yaml");
    std::fs::write(&file, text).unwrap();
    let (program, pythonpath) = cloud_init();
    // Debian's python3 (cloud-init's modules are built for it), not a pyenv one
    let mut command = Command::new("/usr/bin/python3");
    command
        .arg(&program)
        .args(["schema", "--config-file"])
        .arg(&file);
    if let Some(path) = pythonpath {
        command.env("PYTHONPATH", path);
    }
    let output = command.output().expect("run cloud-init schema");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

fn web(install: Install) -> WebNode {
    WebNode {
        node: "web-3".into(),
        cluster: "prod".into(),
        seeds: vec!["10.0.0.11:7420".into(), "10.0.0.12:7420".into()],
        volume: Some("www".into()),
        extra_agent_toml: "[galera]\ngcache_size = \"256M\"\n".into(),
        install,
        tls: None,
    }
}

#[test]
fn every_install_variant_is_valid_cloud_config() {
    let variants = [
        Install::Apt {
            source: "deb [signed-by=$KEY_FILE] https://repo.example/triad bookworm main".into(),
            key: Some(
                "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGN0\n-----END PGP PUBLIC KEY BLOCK-----\n"
                    .into(),
            ),
        },
        Install::Apt {
            source: "deb [trusted=yes] http://10.0.0.2/triad ./".into(),
            key: None,
        },
        Install::Url("https://repo.example/triad-agent_0.1.0_amd64.deb".into()),
    ];
    for install in variants {
        let mut node = web(install.clone());
        let text = render(TEMPLATE, &node).unwrap();
        let (valid, said) = validate(&text);
        assert!(
            valid,
            "{install:?}: cloud-init schema refused it: {said}\n{text}"
        );
        assert!(said.contains("Valid cloud-config"), "{said}");
        node.volume = None;
        let text = render(TEMPLATE, &node).unwrap();
        let (valid, said) = validate(&text);
        assert!(valid, "{install:?} without a volume: {said}\n{text}");
        node.tls = Some(NodeTls {
            ca: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
            cert: "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n".into(),
            key: "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n".into(),
        });
        let text = render(TEMPLATE, &node).unwrap();
        let (valid, said) = validate(&text);
        assert!(valid, "{install:?} with TLS files: {said}\n{text}");
    }
}

#[test]
fn the_validator_refuses_a_broken_document() {
    let text = render(TEMPLATE, &web(Install::Url("http://x/y.deb".into())))
        .unwrap()
        .replacen(
            "\"permissions\":\"0644\"",
            "\"permissions\":\"0644\",\"bogus\":1",
            1,
        );
    assert!(
        text.contains("\"bogus\":1"),
        "the document was not broken: {text}"
    );
    let (valid, said) = validate(&text);
    assert!(
        !valid,
        "a write_files entry with an unknown key passed: {said}"
    );
    assert!(said.contains("bogus"), "{said}");
}

/// "Installs the package in the right order", checked against cloud-init's own shipped
/// configuration and code, not our belief about them: the modules the rendered document
/// uses run in the order the template's comment promises (write-files in the init stage,
/// apt-configure in the config stage, package-update-upgrade-install before scripts-user,
/// which runs runcmd, in the final stage), and cloud-init's apt installs with
/// --force-confold, so dpkg keeps the agent config written before the package.
#[test]
fn cloud_init_runs_our_modules_in_the_order_the_template_relies_on() {
    let root = match cloud_init().1 {
        Some(_) => PathBuf::from(UNPACKED),
        None => PathBuf::from("/"),
    };
    let cfg_path = root.join("etc/cloud/cloud.cfg");
    let cfg: yaml_serde::Value =
        yaml_serde::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    let stage = |name: &str| -> Vec<String> {
        cfg[name]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name} in {}", cfg_path.display()))
            .iter()
            .filter_map(|m| m.as_str().map(|s| s.replace('_', "-")))
            .collect()
    };
    let (init, config, last) = (
        stage("cloud_init_modules"),
        stage("cloud_config_modules"),
        stage("cloud_final_modules"),
    );
    let position = |modules: &[String], name: &str| {
        modules
            .iter()
            .position(|m| m == name)
            .unwrap_or_else(|| panic!("{name} not among {modules:?}"))
    };
    position(&init, "write-files");
    position(&config, "apt-configure");
    assert!(
        position(&last, "package-update-upgrade-install") < position(&last, "scripts-user"),
        "{last:?}"
    );
    let debian = root.join("usr/lib/python3/dist-packages/cloudinit/distros/debian.py");
    let code = std::fs::read_to_string(&debian).unwrap();
    assert!(code.contains("--force-confold"), "{}", debian.display());
    // and the rendered document uses exactly those modules' keys
    let text = render(TEMPLATE, &web(Install::Url("http://x/y.deb".into()))).unwrap();
    let parsed: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
    for key in ["write_files", "apt", "packages", "runcmd"] {
        assert!(parsed.get(key).is_some(), "{key} missing:\n{text}");
    }
    assert_eq!(
        parsed["write_files"][0]["defer"].as_bool(),
        None,
        "not deferred: the config is in place before the package"
    );
}
