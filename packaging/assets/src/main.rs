//! `triad-gen-assets [OUT_DIR]`: writes the man pages and shell completions of `triad-agent`,
//! `triad-coordinator` and `triadctl`, generated from their clap definitions, and the
//! section-5 pages of their configuration files, generated from the shipped files, into
//! OUT_DIR (default `target/release/assets`), where the packages' `[package.metadata.deb]`
//! assets point. `make deb` runs it before `cargo deb`; it is a build tool and is not packaged.
//!
//! Layout: `man/<bin>.<section>` and `man/<bin>-<subcommand>[-<subcommand>...].<section>`
//! (every subcommand at any depth), `man/triad-agent.toml.5`, `man/triad-coordinator.toml.5`,
//! `completions/<bin>.bash`, `completions/_<bin>` (zsh), `completions/<bin>.fish`.

mod command_pages;
mod config_pages;
mod page;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap_complete::Shell;

use command_pages::Program;
use config_pages::ConfigFile;
use page::FileEntry;

fn main() -> ExitCode {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/assets"));
    match generate(&out) {
        Ok(count) => {
            println!(
                "triad-gen-assets: wrote {count} files under {}",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("triad-gen-assets: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

const AGENT_TOML: &str = include_str!("../../agent/agent.toml");
const COORDINATOR_TOML: &str = include_str!("../../coordinator/coordinator.toml");

/// The agent's configuration, state and certificates.
fn agent_config_files() -> Vec<FileEntry> {
    vec![
        FileEntry::new(
            triad_agent::config::DEFAULT_PATH,
            "The configuration, triad-agent.toml(5); another file with --config or \
             $TRIAD_AGENT_CONFIG. Installed with every line a comment: the agent then waits, \
             idle, until it is filled in and reloaded.",
        ),
        FileEntry::new(
            format!("{}/", triad_agent::config::DEFAULT_STATE_DIR),
            "agent.state_dir: the agent's own state (the unit's StateDirectory), kept across \
             restarts and upgrades, removed on purge.",
        ),
        FileEntry::new(
            format!("{}/", triadctl::cli::PKI_DIR),
            "The [tls] files of the shipped example: ca.pem, the cluster CA, and NODE.pem and \
             NODE.key, this node's certificate and key (readable by root only), made by \
             triadctl-pki-init(1) and triadctl-pki-issue(1). Re-read on SIGHUP.",
        ),
    ]
}

/// [`agent_config_files`], then what the agent writes for the services it manages.
fn agent_files() -> Vec<FileEntry> {
    use triad_agent::apache::config::ApachePaths;
    use triad_agent::galera::{GaleraSettings, GaleraTls};
    use triad_agent::mount::{host::SystemdMounts, unit_name, MountSettings};
    let apache = ApachePaths::default();
    let docroot = MountSettings::default().docroot;
    let mut files = agent_config_files();
    files.extend([
        FileEntry::new(
            format!("{}/", GaleraTls::DEFAULT_DIR),
            "With [galera] tls = true: copies of the [tls] files that mysqld can read \
             (ca.pem, cert.pem, and key.pem, mode 0640, group mysql).",
        ),
        FileEntry::new(
            GaleraSettings::defaults("")
                .config_path
                .display()
                .to_string(),
            "galera.config_path: the Galera settings the agent writes on core nodes \
             (overwritten; do not edit).",
        ),
        FileEntry::new(
            format!(
                "{}, {}",
                apache.ports_conf.display(),
                apache.site_available.display()
            ),
            "With [apache] configure = true: written by the agent (Apache listens on \
             node.address only; the docroot's virtual host, enabled in place of 000-default, \
             honouring the app's .htaccess: AllowOverride All).",
        ),
        FileEntry::new(
            format!("{}/", apache.mods_enabled.display()),
            format!(
                "With [apache] configure = true: the agent enables {} there (the links \
                 a2enmod makes), for the app's .htaccess.",
                triad_agent::apache::config::MODULES
                    .iter()
                    .map(|m| format!("mod_{m}"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        ),
        FileEntry::new(
            SystemdMounts::new()
                .unit_dir
                .join(unit_name(&docroot))
                .display()
                .to_string(),
            format!(
                "[mount]: the docroot's mount unit (named after mount.docroot, here the \
                 default {}), a runtime unit: gone after a reboot, when the agent mounts again.",
                docroot.display()
            ),
        ),
    ]);
    files
}

fn coordinator_files() -> Vec<FileEntry> {
    let state_dir = triad_coordinator::config::DEFAULT_STATE_DIR;
    vec![
        FileEntry::new(
            triad_coordinator::config::DEFAULT_PATH,
            "The configuration, triad-coordinator.toml(5); another file with --config or \
             $TRIAD_COORDINATOR_CONFIG. Installed with every line a comment: the coordinator \
             then waits, idle, until it is filled in and reloaded.",
        ),
        FileEntry::new(
            format!("{state_dir}/"),
            "coordinator.state_dir: the unit's StateDirectory (mode 0700, owned by the \
             triad-coordinator user), removed on purge.",
        ),
        FileEntry::new(
            format!("{state_dir}/{}", triad_coordinator::recovery::store::FILE),
            "Galera formation and recovery: the last epoch used, the decision in flight and \
             the members of the last Primary view, so that a restarted coordinator resumes \
             the same decision.",
        ),
        FileEntry::new(
            format!("{state_dir}/{}", triad_coordinator::autoscale::STATE_FILE),
            "Autoscaling: the launch and removal steps in flight, so that a restarted \
             coordinator resumes them.",
        ),
        FileEntry::new(
            format!("{}/", triadctl::cli::PKI_DIR),
            "The [tls] files of the shipped example: ca.pem, coordinator.pem and \
             coordinator.key (made by triadctl-pki-init(1) and triadctl-pki-issue(1); re-read \
             on SIGHUP), which the triad-coordinator user must be able to read; with \
             [autoscale.nova] and [tls], also ca.key (pki_dir), to issue new nodes' \
             certificates.",
        ),
        FileEntry::new(
            "clouds.yaml",
            format!(
                "OpenStack credentials for [balancer.octavia] and [autoscale.nova]: {} Under \
                 the packaged unit, ~ is the triad-coordinator user's home, {state_dir}.",
                triad_coordinator::openstack::config::SEARCH_ORDER
            ),
        ),
        FileEntry::new(
            "/usr/share/triad/cloud-init/web-node.yaml",
            "A copy of the cloud-init template built into the coordinator for the nodes \
             [autoscale.nova] launches: a starting point for a replacement (user_data).",
        ),
    ]
}

fn triadctl_files() -> Vec<FileEntry> {
    vec![FileEntry::new(
        format!("{}/", triadctl::cli::PKI_DIR),
        "The default --dir of triadctl-pki-init(1) and triadctl-pki-issue(1), created mode \
         0700: ca.pem, the cluster CA, and ca.key, its key; NAME.pem and NAME.key for each \
         certificate issued. Keys are written mode 0600. --ca, --cert and --key have no \
         default: without them triadctl calls the coordinator in plaintext.",
    )]
}

fn daemon_environment() -> Vec<(String, String)> {
    use triad_daemon::telemetry::{LOG_FILTER_ENV, LOG_FILTER_HELP};
    vec![(LOG_FILTER_ENV.to_string(), LOG_FILTER_HELP.to_string())]
}

fn references(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// Daemons in section 8, the operator CLI in section 1.
fn programs() -> Vec<Program> {
    vec![
        Program {
            command: triad_agent::cli::command(),
            section: "8",
            exit_codes: &triad_daemon::lifecycle::EXIT_CODES,
            exit_status_help: None,
            environment: daemon_environment(),
            files: agent_files(),
            see_also: references(&["triad-agent.toml(5)", "triad-coordinator(8)", "triadctl(1)"]),
        },
        Program {
            command: triad_coordinator::cli::coordinator_command(),
            section: "8",
            exit_codes: &triad_daemon::lifecycle::EXIT_CODES,
            exit_status_help: None,
            environment: daemon_environment(),
            files: coordinator_files(),
            see_also: references(&["triad-coordinator.toml(5)", "triad-agent(8)", "triadctl(1)"]),
        },
        Program {
            command: triadctl::cli::ctl_command(),
            section: "1",
            exit_codes: &triadctl::cli::EXIT_CODES,
            exit_status_help: Some(triadctl::cli::exit_status_help()),
            environment: Vec::new(),
            files: triadctl_files(),
            see_also: references(&["triad-coordinator(8)", "triad-agent(8)"]),
        },
    ]
}

/// The shipped configuration files, each a section-5 page.
fn config_files() -> Vec<ConfigFile> {
    vec![
        ConfigFile {
            name: "triad-agent.toml",
            about: "configuration of triad-agent, the Triad node agent",
            path: triad_agent::config::DEFAULT_PATH,
            text: AGENT_TOML,
            files: agent_config_files(),
            see_also: references(&[
                "triad-agent(8)",
                "triad-agent-validate-config(8)",
                "triadctl-pki-issue(1)",
                "triad-coordinator.toml(5)",
            ]),
        },
        ConfigFile {
            name: "triad-coordinator.toml",
            about: "configuration of triad-coordinator, the Triad coordinator",
            path: triad_coordinator::config::DEFAULT_PATH,
            text: COORDINATOR_TOML,
            files: coordinator_files(),
            see_also: references(&[
                "triad-coordinator(8)",
                "triad-coordinator-validate-config(8)",
                "triadctl-pki-issue(1)",
                "triad-agent.toml(5)",
            ]),
        },
    ]
}

fn generate(out: &Path) -> anyhow::Result<usize> {
    let man_dir = out.join("man");
    let completion_dir = out.join("completions");
    for dir in [&man_dir, &completion_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut written = 0;
    for program in programs() {
        let name = program.command.get_name().to_string();
        let pages = command_pages::render(&program)
            .with_context(|| format!("rendering the man pages of {name}"))?;
        for page in pages {
            write(&man_dir.join(&page.file), &page.text)?;
            written += 1;
        }
        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut program.command.clone(), &name, &mut script);
            write(&completion_dir.join(file), &script)?;
            written += 1;
        }
    }
    for config in config_files() {
        let text = config_pages::render(&config).map_err(anyhow::Error::msg)?;
        write(&man_dir.join(format!("{}.5", config.name)), &text)?;
        written += 1;
    }
    Ok(written)
}

/// Writes only when the content changed, so repeated runs keep mtimes (and cargo-deb's
/// output) stable.
fn write(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == content) {
        return Ok(());
    }
    std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::process::Command;

    use super::*;

    fn generated() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path()).unwrap();
        let man = dir.path().join("man");
        (dir, man)
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// `name`, `name-sub`, `name-sub-subsub`, ... of every visible subcommand, from the clap
    /// definition as the programs build it (no `help` subcommand: clap adds it later).
    fn page_names(command: &clap::Command, prefix: Option<&str>, names: &mut Vec<String>) {
        let name = match prefix {
            Some(prefix) => format!("{prefix}-{}", command.get_name()),
            None => command.get_name().to_string(),
        };
        for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            page_names(sub, Some(&name), names);
        }
        names.push(name);
    }

    #[test]
    fn every_subcommand_at_every_depth_has_a_page_with_exit_status_and_files() {
        let (_dir, man) = generated();
        let mut expected = BTreeSet::new();
        for program in programs() {
            let mut names = Vec::new();
            page_names(&program.command, None, &mut names);
            for name in names {
                let file = format!("{name}.{}", program.section);
                let page = read(&man.join(&file));
                for heading in [
                    ".SH NAME",
                    ".SH SYNOPSIS",
                    ".SH \"EXIT STATUS\"",
                    ".SH FILES",
                    ".SH \"SEE ALSO\"",
                ] {
                    assert!(page.contains(heading), "{file} lacks {heading}:\n{page}");
                }
                for (code, _) in program.exit_codes {
                    assert!(page.contains(&format!(".TP\n\\fB{code}\\fR\n")), "{file}");
                }
                // triadctl's after_help is its exit codes: on the page once, as EXIT STATUS
                assert!(!page.contains(".SH EXTRA"), "{file}:\n{page}");
                expected.insert(file);
            }
        }
        assert!(expected.contains("triadctl-pki-init.1"), "{expected:?}");
        for config in config_files() {
            expected.insert(format!("{}.5", config.name));
        }
        let found: BTreeSet<String> = std::fs::read_dir(&man)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(found, expected, "pages generated vs expected");
    }

    /// The `triad...(N)` references of a page (SUBCOMMANDS, SEE ALSO, prose).
    fn references(page: &str) -> BTreeSet<String> {
        let text = page
            .replace("\\-", "-")
            .replace("\\fB", "")
            .replace("\\fI", "")
            .replace("\\fR", "");
        let mut found = BTreeSet::new();
        for (start, _) in text.match_indices("triad") {
            let rest = &text[start..];
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
                .unwrap_or(rest.len());
            let bytes = rest.as_bytes();
            if bytes.get(name_len) == Some(&b'(')
                && bytes.get(name_len + 1).is_some_and(u8::is_ascii_digit)
                && bytes.get(name_len + 2) == Some(&b')')
            {
                found.insert(format!(
                    "{}.{}",
                    &rest[..name_len],
                    bytes[name_len + 1] as char
                ));
            }
        }
        found
    }

    #[test]
    fn pages_refer_only_to_pages_that_exist() {
        let (_dir, man) = generated();
        for entry in std::fs::read_dir(&man).unwrap() {
            let path = entry.unwrap().path();
            for reference in references(&read(&path)) {
                assert!(
                    man.join(&reference).is_file(),
                    "{} refers to {reference}, which is not generated",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn config_pages_list_every_table_and_key_of_the_shipped_files() {
        let (_dir, man) = generated();
        for config in config_files() {
            let file = format!("{}.5", config.name);
            let page = read(&man.join(&file));
            for heading in [
                ".SH DESCRIPTION",
                ".SH KEYS",
                ".SH FILES",
                ".SH \"SEE ALSO\"",
            ] {
                assert!(page.contains(heading), "{file} lacks {heading}");
            }
            // the example and its alternatives, as the parser would read them
            let example = triad_daemon::shipped::uncomment_alternatives(config.text);
            let table: toml::Table = example
                .parse()
                .unwrap_or_else(|e| panic!("{}: {e}", config.path));
            let mut tables = Vec::new();
            collect_tables("", &table, &mut tables);
            assert!(tables.len() > 5, "{file}: {tables:?}");
            for (name, keys) in tables {
                // a sub-table written as dotted keys of its parent (`##swift.cloud` under
                // [backup]) is listed in the parent's section with the dotted names
                let (name, keys) = match name.rsplit_once('.') {
                    Some((parent, sub)) if !page.contains(&format!(".SS [{name}]\n")) => (
                        parent.to_string(),
                        keys.iter().map(|key| format!("{sub}.{key}")).collect(),
                    ),
                    _ => (name, keys),
                };
                let heading = format!(".SS [{name}]\n");
                let start = page
                    .find(&heading)
                    .unwrap_or_else(|| panic!("{file} lacks the table [{name}]"));
                let section = &page[start + heading.len()..];
                let end = [".SS ", ".SH "]
                    .iter()
                    .filter_map(|next| section.find(next))
                    .min()
                    .unwrap_or(section.len());
                for key in keys {
                    let tag = format!(".TP\n\\fB{}\\fR = ", key.replace('-', "\\-"));
                    assert!(
                        section[..end].contains(&tag),
                        "{file}: [{name}] lacks {key}"
                    );
                }
            }
        }
    }

    /// (dotted name, keys) of every table that holds keys.
    fn collect_tables(prefix: &str, table: &toml::Table, out: &mut Vec<(String, Vec<String>)>) {
        // an array of tables (`[[app.jobs]]`) is a table of its own, named in brackets
        let array_of_tables = |value: &toml::Value| matches!(value, toml::Value::Array(items) if items.first().is_some_and(toml::Value::is_table));
        let keys: Vec<String> = table
            .iter()
            .filter(|(_, value)| !value.is_table() && !array_of_tables(value))
            .map(|(key, _)| key.clone())
            .collect();
        if !prefix.is_empty() && !keys.is_empty() {
            out.push((prefix.to_string(), keys));
        }
        for (key, value) in table {
            let name = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => collect_tables(&name, inner, out),
                toml::Value::Array(items) if array_of_tables(value) => {
                    if let Some(toml::Value::Table(first)) = items.first() {
                        collect_tables(&format!("[{name}]"), first, out);
                    }
                }
                _ => {}
            }
        }
    }

    /// What lintian runs on each page (`groff-message` and `bad-whatis-entry` are warnings
    /// there, which fail the package test); skipped where man-db is not installed.
    #[test]
    fn pages_render_without_warnings_where_man_is_installed() {
        if Command::new("man").arg("--version").output().is_err() {
            eprintln!("man is not installed: skipped");
            return;
        }
        let (_dir, man) = generated();
        for entry in std::fs::read_dir(&man).unwrap() {
            let path = entry.unwrap().path();
            for width in ["80", "120"] {
                let out = Command::new("man")
                    .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z"])
                    .arg(&path)
                    .env("LC_ALL", "C.UTF-8")
                    .env("MANROFFSEQ", "")
                    .env("MANWIDTH", width)
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    out.status.success() && stderr.trim().is_empty(),
                    "man --warnings -l {} (MANWIDTH={width}): {}\n{stderr}",
                    path.display(),
                    out.status
                );
            }
            if let Ok(out) = Command::new("lexgrog").arg(&path).output() {
                assert!(
                    out.status.success(),
                    "lexgrog {} (the NAME section): {}{}",
                    path.display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}
