//! The section-5 page of a shipped configuration file (`packaging/agent/agent.toml`,
//! `packaging/coordinator/coordinator.toml`), rendered from the file itself: its header as
//! DESCRIPTION, and under KEYS one subsection per table with each key as a `.TP` entry (the
//! example's `key = value`, then the comment above it).
//!
//! The file's convention (see `triad_daemon::shipped`): `#[table]` and `#key = value` are
//! the example, `##key = value` an alternative to it, `# text` and `## text` prose; a value
//! may go on over several lines (`#key = """` ... `#"""`). A line outside the convention is
//! an error, so the page never silently drops part of the file.

use clap_mangen::roff::{bold, italic, roman, Roff};

use crate::page::{self, FileEntry, Page};

/// A shipped configuration file and what its page adds to it.
pub struct ConfigFile {
    /// The page name, e.g. `triad-agent.toml`.
    pub name: &'static str,
    /// NAME's description.
    pub about: &'static str,
    /// Where the package installs it.
    pub path: &'static str,
    pub text: &'static str,
    pub files: Vec<FileEntry>,
    pub see_also: Vec<String>,
}

/// Prose as written: paragraphs of text, and indented lines (commands) kept as they are.
#[derive(Debug, Clone, PartialEq)]
enum Prose {
    Text(String),
    Code(String),
    Break,
}

#[derive(Debug)]
struct Key {
    name: String,
    /// The value's lines: the first after `key = `, then any continuation lines.
    value: Vec<String>,
    alternative: bool,
    prose: Vec<Prose>,
}

#[derive(Debug)]
enum Item {
    Key(Key),
    /// Prose followed by a blank line rather than by a key.
    Note(Vec<Prose>),
}

#[derive(Debug)]
struct Table {
    name: String,
    prose: Vec<Prose>,
    items: Vec<Item>,
}

#[derive(Debug, Default)]
struct Document {
    intro: Vec<Prose>,
    tables: Vec<Table>,
}

/// What one line of the file is.
enum Line<'a> {
    Blank,
    Table(&'a str),
    /// `key = value`, and whether it is an alternative (`##`).
    Setting(&'a str, bool),
    Prose(Prose),
}

fn classify(line: &str) -> Result<Line<'_>, String> {
    let line = line.trim_end();
    if line.is_empty() {
        return Ok(Line::Blank);
    }
    let Some(rest) = line.strip_prefix('#') else {
        return Err("not a comment (the shipped file is all comments)".into());
    };
    let setting = |text: &str| text.starts_with(|c: char| c.is_ascii_alphabetic());
    // an array of tables (`#[[app.jobs]]`) keeps its brackets in the name: `[[app.jobs]]`
    if let Some(array) = rest.strip_prefix("[[") {
        return match array.strip_suffix("]]") {
            Some(name) if !name.is_empty() && !name.contains(['[', ']', ' ']) => {
                Ok(Line::Table(&rest[1..rest.len() - 1]))
            }
            _ => Err("an array-of-tables header must be `#[[name]]`".into()),
        };
    }
    if let Some(table) = rest.strip_prefix('[') {
        return match table.strip_suffix(']') {
            Some(name) if !name.is_empty() && !name.contains(['[', ']', ' ']) => {
                Ok(Line::Table(name))
            }
            _ => Err("a table header must be `#[name]`".into()),
        };
    }
    if setting(rest) {
        return Ok(Line::Setting(rest, false));
    }
    let (alternative, text) = match rest.strip_prefix('#') {
        Some(text) => (true, text),
        None => (false, rest),
    };
    if alternative && setting(text) {
        return Ok(Line::Setting(text, true));
    }
    if text.is_empty() {
        return Ok(Line::Prose(Prose::Break));
    }
    match text.strip_prefix(' ') {
        Some(code) if code.starts_with(char::is_whitespace) => Ok(Line::Prose(Prose::Code(code.to_string()))),
        Some(text) => Ok(Line::Prose(Prose::Text(text.to_string()))),
        None => Err(
            "neither a setting (`#key = value`, `##key = value`, `#[table]`) nor prose (`# text`, `## text`)"
                .into(),
        ),
    }
}

/// Whether `key = value` lines are a complete TOML value yet.
fn complete(lines: &[String]) -> bool {
    lines.join("\n").parse::<toml::Table>().is_ok()
}

fn parse(text: &str) -> Result<Document, String> {
    let mut document = Document::default();
    let mut pending: Vec<Prose> = Vec::new();
    let mut lines = text.lines().enumerate();
    let at = |number: usize, line: &str, error: String| {
        format!("line {}: {error}: {line:?}", number + 1)
    };
    while let Some((number, line)) = lines.next() {
        match classify(line).map_err(|error| at(number, line, error))? {
            Line::Blank => {
                if pending.is_empty() {
                    continue;
                }
                let prose = std::mem::take(&mut pending);
                match document.tables.last_mut() {
                    Some(table) => table.items.push(Item::Note(prose)),
                    None => {
                        document.intro.extend(prose);
                        document.intro.push(Prose::Break);
                    }
                }
            }
            Line::Table(name) => document.tables.push(Table {
                name: name.to_string(),
                prose: std::mem::take(&mut pending),
                items: Vec::new(),
            }),
            Line::Setting(setting, alternative) => {
                let Some(table) = document.tables.last_mut() else {
                    return Err(at(number, line, "a key before the first table".into()));
                };
                let Some((name, value)) = setting.split_once('=') else {
                    return Err(at(number, line, "a setting without `=`".into()));
                };
                let name = name.trim();
                // bare keys, dotted ones too (`swift.cloud`: a sub-table's key shown with
                // its table's neighbours)
                if !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
                    || name.starts_with('.')
                    || name.ends_with('.')
                    || name.contains("..")
                {
                    return Err(at(number, line, "not a bare key".into()));
                }
                // a multi-line value: the next lines, less their `#` (or `##`), until the
                // whole parses as TOML
                let mut toml_lines = vec![setting.to_string()];
                let mut value = vec![value.trim().to_string()];
                let prefix = if alternative { "##" } else { "#" };
                while !complete(&toml_lines) {
                    let Some((next_number, next)) = lines.next() else {
                        return Err(at(number, line, "a value that is not valid TOML".into()));
                    };
                    let Some(more) = next.strip_prefix(prefix) else {
                        return Err(at(
                            next_number,
                            next,
                            format!("the value of {name} goes on without its `{prefix}`"),
                        ));
                    };
                    toml_lines.push(more.to_string());
                    value.push(more.to_string());
                }
                table.items.push(Item::Key(Key {
                    name: name.to_string(),
                    value,
                    alternative,
                    prose: std::mem::take(&mut pending),
                }));
            }
            Line::Prose(prose) => pending.push(prose),
        }
    }
    if !pending.is_empty() {
        match document.tables.last_mut() {
            Some(table) => table.items.push(Item::Note(pending)),
            None => document.intro.extend(pending),
        }
    }
    if document.tables.is_empty() {
        return Err("no table".into());
    }
    Ok(document)
}

/// Writes prose: text lines are filled into paragraphs, a run of indented lines is kept
/// as written (less its common indentation), `#` alone starts a new paragraph.
fn render_prose(roff: &mut Roff, prose: &[Prose], paragraph: &str) {
    let mut i = 0;
    while i < prose.len() {
        match &prose[i] {
            Prose::Text(text) => {
                roff.text([roman(text.as_str())]);
                i += 1;
            }
            Prose::Break => {
                // a break at the end would only add space before what follows
                if i + 1 < prose.len() {
                    roff.control(paragraph, []);
                }
                i += 1;
            }
            Prose::Code(_) => {
                let end = prose[i..]
                    .iter()
                    .position(|p| !matches!(p, Prose::Code(_)))
                    .map_or(prose.len(), |n| i + n);
                let code: Vec<&str> = prose[i..end]
                    .iter()
                    .filter_map(|p| match p {
                        Prose::Code(code) => Some(code.as_str()),
                        _ => None,
                    })
                    .collect();
                let indent = code
                    .iter()
                    .map(|line| line.len() - line.trim_start().len())
                    .min()
                    .unwrap_or(0);
                roff.control("RS", ["4"]);
                roff.control("nf", []);
                for line in code {
                    roff.text([roman(&line[indent..])]);
                }
                roff.control("fi", []);
                roff.control("RE", []);
                i = end;
            }
        }
    }
}

/// The page of `config`.
pub fn render(config: &ConfigFile) -> Result<Vec<u8>, String> {
    let document = parse(config.text).map_err(|error| format!("{}: {error}", config.path))?;
    let mut page = Page::new(config.name, "5");
    let mut roff = Roff::default();
    roff.control("SH", ["NAME"]);
    roff.text([roman(format!("{} - {}", config.name, config.about))]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([italic(config.path)]);

    roff.control("SH", ["DESCRIPTION"]);
    render_prose(&mut roff, &document.intro, "PP");
    roff.control("PP", []);
    roff.text([roman(format!(
        "This page is made from the file the package installs as {}. Under KEYS, each \
         table's keys are listed with the value the file shows (its comments say whether \
         that is the default or an example); a key marked (alternative) is not part of the \
         example but an alternative to it, as its comments explain.",
        config.path
    ))]);

    roff.control("SH", ["KEYS"]);
    for table in &document.tables {
        roff.control("SS", [format!("[{}]", table.name).as_str()]);
        render_prose(&mut roff, &table.prose, "PP");
        for item in &table.items {
            match item {
                Item::Key(key) => {
                    roff.control("TP", []);
                    let mut tag = vec![
                        bold(key.name.as_str()),
                        roman(format!(" = {}", key.value[0])),
                    ];
                    if key.alternative {
                        tag.push(italic(" (alternative)"));
                    }
                    roff.text(tag);
                    if key.value.len() > 1 {
                        roff.control("nf", []);
                        for line in &key.value[1..] {
                            roff.text([roman(line.as_str())]);
                        }
                        roff.control("fi", []);
                        if !key.prose.is_empty() {
                            roff.control("sp", []);
                        }
                    }
                    render_prose(&mut roff, &key.prose, "sp");
                }
                Item::Note(prose) => {
                    roff.control("PP", []);
                    render_prose(&mut roff, prose, "PP");
                }
            }
        }
    }
    page::files(&mut roff, &config.files);
    page::see_also(&mut roff, &config.see_also);
    page.push(&roff);
    Ok(page.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str) -> String {
        let config = ConfigFile {
            name: "x.toml",
            about: "a test",
            path: "/etc/x.toml",
            text: Box::leak(text.to_string().into_boxed_str()),
            files: Vec::new(),
            see_also: Vec::new(),
        };
        String::from_utf8(render(&config).unwrap()).unwrap()
    }

    #[test]
    fn keys_alternatives_multi_line_values_and_commands_are_rendered() {
        let page = sample(
            "# Intro.\n#     x validate-config\n\n## The table.\n#[t]\n## A key.\n#a = 1\n\
             ## or:\n##b = \"two\"\n#c = \"\"\"\n#[not.a.table]\n#\"\"\"\n",
        );
        assert!(page.contains(".nf\nx validate\\-config\n.fi"), "{page}");
        assert!(
            page.contains(".SS [t]\nThe table.\n.TP\n\\fBa\\fR = 1\nA key."),
            "{page}"
        );
        assert!(
            page.contains("\\fBb\\fR = \"two\"\\fI (alternative)\\fR\nor:"),
            "{page}"
        );
        assert!(
            page.contains("\\fBc\\fR = \"\"\"\n.nf\n[not.a.table]\n\"\"\"\n.fi"),
            "{page}"
        );
        assert!(!page.contains(".SS [not.a.table]"), "{page}");
    }

    #[test]
    fn lines_outside_the_convention_are_errors() {
        for text in [
            "#[t]\nkey = 1\n",
            "#[t]\n#key\n",
            "#[t]\n#-x = 1\n",
            "#[t]\n#a = \"\"\"\n",
            "#[t]\n#a = \"\"\"\nb\n",
            "#a = 1\n",
            "# only prose\n",
        ] {
            assert!(parse(text).is_err(), "{text:?} was accepted");
        }
    }
}
