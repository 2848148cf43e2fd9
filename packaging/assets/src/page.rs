//! What every generated man page shares: the title line and the sections Triad adds to
//! clap_mangen's (EXIT STATUS, ENVIRONMENT, FILES, SEE ALSO).

use clap_mangen::roff::{bold, italic, roman, Roff};

/// The roff crate's preamble (the `\*(Aq` apostrophe), which every `to_writer` call starts
/// with; a page keeps the first only.
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// A man page being assembled from roff fragments.
pub struct Page {
    text: Vec<u8>,
}

impl Page {
    /// The preamble and `.TH`, written here rather than by clap_mangen, whose `.TH` drops an
    /// empty date so that the footer shows the source as the date; then, as systemd's pages
    /// do, no hyphenation (paths, keys, page names) and ragged-right text.
    pub fn new(title: &str, section: &str) -> Page {
        let mut text = PREAMBLE.as_bytes().to_vec();
        text.extend_from_slice(
            format!(
                ".TH {title} {section} \"\" \"Triad {}\" Triad\n.nh\n.ad l\n",
                env!("CARGO_PKG_VERSION")
            )
            .as_bytes(),
        );
        Page { text }
    }

    /// Appends rendered roff, without its preamble.
    pub fn push_rendered(&mut self, rendered: &[u8]) {
        self.text.extend_from_slice(
            rendered
                .strip_prefix(PREAMBLE.as_bytes())
                .unwrap_or(rendered),
        );
    }

    pub fn push(&mut self, roff: &Roff) {
        let mut rendered = Vec::new();
        roff.to_writer(&mut rendered)
            .expect("writing to a Vec cannot fail");
        self.push_rendered(&rendered);
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.text
    }
}

/// A `.TP` list under `.SH heading`: (tag, text) pairs; the tag in bold.
pub fn tagged_section(roff: &mut Roff, heading: &str, items: &[(String, String)]) {
    roff.control("SH", [heading]);
    for (tag, text) in items {
        roff.control("TP", []);
        roff.text([bold(tag.as_str())]);
        roff.text([roman(text.as_str())]);
    }
}

/// `.SH "EXIT STATUS"` from a program's (code, meaning) table.
pub fn exit_status(roff: &mut Roff, codes: &[(u8, &str)]) {
    let items: Vec<(String, String)> = codes
        .iter()
        .map(|(code, meaning)| (code.to_string(), meaning.to_string()))
        .collect();
    tagged_section(roff, "EXIT STATUS", &items);
}

/// A file of FILES: its path (a directory ends with `/`) and what it is.
#[derive(Debug, Clone)]
pub struct FileEntry {
    pub path: String,
    pub text: String,
}

impl FileEntry {
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> FileEntry {
        FileEntry {
            path: path.into(),
            text: text.into(),
        }
    }
}

pub fn files(roff: &mut Roff, entries: &[FileEntry]) {
    roff.control("SH", ["FILES"]);
    for entry in entries {
        roff.control("TP", []);
        roff.text([italic(entry.path.as_str())]);
        roff.text([roman(entry.text.as_str())]);
    }
}

/// `.SH "SEE ALSO"`: references written `name(section)`, the names in bold.
pub fn see_also(roff: &mut Roff, references: &[String]) {
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, reference) in references.iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        match reference.split_once('(') {
            Some((name, section)) => {
                line.push(bold(name));
                line.push(roman(format!("({section}")));
            }
            None => line.push(bold(reference.as_str())),
        }
    }
    roff.text(line);
}
