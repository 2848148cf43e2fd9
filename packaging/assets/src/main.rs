//! `triad-gen-assets [OUT_DIR]`: writes the man pages and shell completions of `triad-agent`,
//! `triad-coordinator` and `triadctl`, generated from their clap definitions, into OUT_DIR
//! (default `target/release/assets`), where the packages' `[package.metadata.deb]` assets point.
//! `make deb` runs it before `cargo deb`; it is a build tool and is not packaged.
//!
//! Layout: `man/<bin>.<section>`, `man/<bin>-<subcommand>.<section>`,
//! `completions/<bin>.bash`, `completions/_<bin>` (zsh), `completions/<bin>.fish`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap_complete::Shell;

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

/// (command, man section): daemons in section 8, the operator CLI in section 1.
fn commands() -> Vec<(clap::Command, &'static str)> {
    vec![
        (triad_agent::cli::command(), "8"),
        (triad_coordinator::cli::coordinator_command(), "8"),
        (triadctl::cli::ctl_command(), "1"),
    ]
}

fn generate(out: &Path) -> anyhow::Result<usize> {
    let man_dir = out.join("man");
    let completion_dir = out.join("completions");
    for dir in [&man_dir, &completion_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut written = 0;
    for (command, section) in commands() {
        let name = command.get_name().to_string();
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone())
            .section(section)
            .manual("Triad")
            .source(format!("Triad {}", env!("CARGO_PKG_VERSION")))
            .render(&mut page)
            .with_context(|| format!("rendering the man page of {name}"))?;
        write(&man_dir.join(format!("{name}.{section}")), &page)?;
        written += 1;
        // one page per subcommand, named as the main page's SUBCOMMANDS section refers to
        // them (`triad-agent-validate-config(8)`)
        for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            let sub_name = format!("{name}-{}", sub.get_name());
            let mut page = Vec::new();
            // clap names are `&'static str` without its `string` feature; this short-lived
            // tool leaks the handful of subcommand names rather than change clap's features
            let static_name: &'static str = Box::leak(sub_name.clone().into_boxed_str());
            let sub_command = sub
                .clone()
                .name(static_name)
                .bin_name(format!("{name} {}", sub.get_name()));
            clap_mangen::Man::new(sub_command)
                .section(section)
                .manual("Triad")
                .source(format!("Triad {}", env!("CARGO_PKG_VERSION")))
                .render(&mut page)
                .with_context(|| format!("rendering the man page of {sub_name}"))?;
            write(&man_dir.join(format!("{sub_name}.{section}")), &page)?;
            written += 1;
        }
        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command.clone(), &name, &mut script);
            write(&completion_dir.join(file), &script)?;
            written += 1;
        }
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
