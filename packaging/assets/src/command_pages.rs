//! The man pages of a program and of each of its subcommands at any depth, named as
//! clap_mangen's SUBCOMMANDS section refers to them (`triadctl-pki-init(1)`): clap_mangen's
//! sections, then EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO.

use clap_mangen::roff::Roff;

use crate::page::{self, FileEntry, Page};

/// A program and what its pages add to its clap definition.
pub struct Program {
    pub command: clap::Command,
    /// The man section: 8 for the daemons, 1 for triadctl.
    pub section: &'static str,
    /// The exit codes, the same on every page of the program.
    pub exit_codes: &'static [(u8, &'static str)],
    /// The program's `after_help` when it is the exit codes in one line: not shown again as
    /// clap_mangen's EXTRA section.
    pub exit_status_help: Option<String>,
    /// Environment variables besides those of clap's options: (name, what it does).
    pub environment: Vec<(String, String)>,
    pub files: Vec<FileEntry>,
    /// SEE ALSO of every page, after the parent command's page.
    pub see_also: Vec<String>,
}

/// A generated page: its file name and contents.
pub struct Rendered {
    pub file: String,
    pub text: Vec<u8>,
}

/// Every page of `program`: its own, then its subcommands', depth first.
pub fn render(program: &Program) -> std::io::Result<Vec<Rendered>> {
    // no `help` subcommand: clap adds one when building, and it has no page
    let mut command = without_help_subcommand(program.command.clone());
    // sets each subcommand's display name (`triadctl-pki-init`) and bin name
    // (`triadctl pki init`)
    command.build();
    let mut pages = Vec::new();
    render_tree(program, &command, None, &mut pages)?;
    Ok(pages)
}

fn without_help_subcommand(command: clap::Command) -> clap::Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect();
    names
        .iter()
        .fold(command.disable_help_subcommand(true), |command, name| {
            command.mut_subcommand(name, without_help_subcommand)
        })
}

/// The page name of a built command: `triadctl`, `triadctl-pki-init`.
pub fn page_name(command: &clap::Command) -> &str {
    command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
}

fn render_tree(
    program: &Program,
    command: &clap::Command,
    parent: Option<&str>,
    pages: &mut Vec<Rendered>,
) -> std::io::Result<()> {
    let name = page_name(command);
    pages.push(Rendered {
        file: format!("{name}.{}", program.section),
        text: render_page(program, command, parent)?,
    });
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        render_tree(program, sub, Some(name), pages)?;
    }
    Ok(())
}

/// A clap_mangen section renderer.
type Section = fn(&clap_mangen::Man, &mut dyn std::io::Write) -> std::io::Result<()>;

fn render_page(
    program: &Program,
    command: &clap::Command,
    parent: Option<&str>,
) -> std::io::Result<Vec<u8>> {
    use clap_mangen::Man;
    let man = Man::new(command.clone()).section(program.section);
    let mut page = Page::new(page_name(command), program.section);
    let push = |page: &mut Page, sections: &[Section]| -> std::io::Result<()> {
        for section in sections {
            let mut part = Vec::new();
            section(&man, &mut part)?;
            page.push_rendered(&part);
        }
        Ok(())
    };

    let mut sections: Vec<Section> = vec![
        Man::render_name_section,
        Man::render_synopsis_section,
        Man::render_description_section,
    ];
    if command.get_arguments().any(|arg| !arg.is_hide_set()) {
        sections.push(Man::render_options_section);
    }
    if command.get_subcommands().any(|sub| !sub.is_hide_set()) {
        sections.push(Man::render_subcommands_section);
    }
    let after_help = command
        .get_after_long_help()
        .or_else(|| command.get_after_help())
        .map(|text| text.to_string());
    if after_help.is_some() && after_help != program.exit_status_help {
        sections.push(Man::render_extra_section);
    }
    push(&mut page, &sections)?;

    let mut roff = Roff::default();
    page::exit_status(&mut roff, program.exit_codes);
    let environment = environment(command, &program.environment);
    if !environment.is_empty() {
        page::tagged_section(&mut roff, "ENVIRONMENT", &environment);
    }
    page::files(&mut roff, &program.files);
    page.push(&roff);

    let mut sections: Vec<Section> = Vec::new();
    if command
        .get_version()
        .or(command.get_long_version())
        .is_some()
    {
        sections.push(Man::render_version_section);
    }
    if command.get_author().is_some() {
        sections.push(Man::render_authors_section);
    }
    push(&mut page, &sections)?;

    let mut references: Vec<String> = parent
        .map(|parent| format!("{parent}({})", program.section))
        .into_iter()
        .collect();
    references.extend(program.see_also.iter().cloned());
    let mut roff = Roff::default();
    page::see_also(&mut roff, &references);
    page.push(&roff);
    Ok(page.into_bytes())
}

/// The variables of the command's options (`env = ...`), then the program's own.
fn environment(command: &clap::Command, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut items: Vec<(String, String)> = command
        .get_arguments()
        .filter(|arg| !arg.is_hide_set())
        .filter_map(|arg| {
            let variable = arg.get_env()?.to_string_lossy().into_owned();
            let option = match arg.get_long() {
                Some(long) => format!("--{long}"),
                None => arg.get_id().to_string(),
            };
            Some((variable, format!("Sets {option} when it is not given.")))
        })
        .collect();
    items.extend(extra.iter().cloned());
    items
}
