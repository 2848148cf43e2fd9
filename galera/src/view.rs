//! The Primary view each node saved in `gvwstate.dat` (`pc.recovery=true`), and whether
//! Galera could re-form that Primary component by itself after a full outage.
//!
//! Galera writes the file at every Primary view change and deletes it at a clean shutdown,
//! so after a crash of every node each one holds the last Primary view it was in. When
//! every member of one saved view is back, Galera's pc.recovery re-forms that component
//! with no bootstrap (2.6-3.7 s on the lab against Triad's election path at ~5.7 s). It
//! hangs when the saved views differ (a staggered crash) or a member never returns, which
//! is why [`outlook`] names those cases: issue 20's fast path takes Galera's way only when
//! it can finish, and the election otherwise.

use std::collections::BTreeSet;
use std::fmt;

use crate::position::is_uuid;

/// The last Primary view a node saved: its own member uuid, the view's id and members.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SavedView {
    /// This node's gcomm uuid in that view (`my_uuid:`), lowercase.
    pub my_uuid: String,
    /// The view id: its uuid and sequence number (`view_id: <type> <uuid> <seq>`).
    pub view_uuid: String,
    pub view_seq: u64,
    /// Members' gcomm uuids, sorted.
    pub members: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("gvwstate.dat line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("gvwstate.dat has no `{0}` line")]
    Missing(&'static str),
    #[error("gossiped saved view {0:?} is malformed")]
    Gossip(String),
}

/// Galera's type number for a Primary view in `view_id:` (gcomm's `V_PRIM`).
const PRIMARY_VIEW: &str = "3";

/// Parses `gvwstate.dat`. Only a Primary view is saved by Galera; another type is an error.
pub fn parse_gvwstate(text: &str) -> Result<SavedView, ViewError> {
    let mut my_uuid = None;
    let mut view = None;
    let mut members = BTreeSet::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let bad = |reason: &str| ViewError::Line {
            line,
            reason: reason.to_string(),
        };
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let Some((key, value)) = raw.split_once(':') else {
            return Err(bad("expected `key: value`"));
        };
        let fields: Vec<&str> = value.split_whitespace().collect();
        match key.trim() {
            "my_uuid" => match fields.as_slice() {
                [uuid] if is_uuid(uuid) => my_uuid = Some(uuid.to_ascii_lowercase()),
                _ => return Err(bad("my_uuid is not one uuid")),
            },
            "view_id" => match fields.as_slice() {
                [kind, uuid, seq] if is_uuid(uuid) => {
                    if *kind != PRIMARY_VIEW {
                        return Err(bad(&format!("view type {kind} is not a Primary view")));
                    }
                    let seq = seq
                        .parse::<u64>()
                        .map_err(|_| bad("view sequence is not a number"))?;
                    view = Some((uuid.to_ascii_lowercase(), seq));
                }
                _ => return Err(bad("view_id is not `<type> <uuid> <seq>`")),
            },
            "member" => match fields.first() {
                Some(uuid) if fields.len() <= 2 && is_uuid(uuid) => {
                    members.insert(uuid.to_ascii_lowercase());
                }
                _ => return Err(bad("member is not `<uuid> <segment>`")),
            },
            _ => {}
        }
    }
    let my_uuid = my_uuid.ok_or(ViewError::Missing("my_uuid:"))?;
    let (view_uuid, view_seq) = view.ok_or(ViewError::Missing("view_id:"))?;
    if members.is_empty() {
        return Err(ViewError::Missing("member:"));
    }
    Ok(SavedView {
        my_uuid,
        view_uuid,
        view_seq,
        members,
    })
}

impl SavedView {
    /// The gossip form: `<my_uuid> <view_uuid>:<seq> <member>,<member>...`.
    pub fn to_gossip(&self) -> String {
        let members: Vec<&str> = self.members.iter().map(String::as_str).collect();
        format!(
            "{} {}:{} {}",
            self.my_uuid,
            self.view_uuid,
            self.view_seq,
            members.join(",")
        )
    }

    pub fn from_gossip(raw: &str) -> Result<SavedView, ViewError> {
        let bad = || ViewError::Gossip(raw.chars().take(200).collect());
        let fields: Vec<&str> = raw.split_whitespace().collect();
        let [my_uuid, id, members] = fields.as_slice() else {
            return Err(bad());
        };
        let (view_uuid, seq) = id.split_once(':').ok_or_else(bad)?;
        let members: BTreeSet<String> = members.split(',').map(str::to_ascii_lowercase).collect();
        let uuids_ok = is_uuid(my_uuid) && is_uuid(view_uuid) && members.iter().all(|m| is_uuid(m));
        if !uuids_ok {
            return Err(bad());
        }
        Ok(SavedView {
            my_uuid: my_uuid.to_ascii_lowercase(),
            view_uuid: view_uuid.to_ascii_lowercase(),
            view_seq: seq.parse().map_err(|_| bad())?,
            members,
        })
    }

    /// The view's id as the fast path names it: `<view_uuid>:<seq>`.
    pub fn view_id(&self) -> String {
        format!("{}:{}", self.view_uuid, self.view_seq)
    }

    fn same_view(&self, other: &SavedView) -> bool {
        self.view_uuid == other.view_uuid
            && self.view_seq == other.view_seq
            && self.members == other.members
    }
}

/// One core member as the outlook sees it: gossip's liveness and the view it saved.
#[derive(Debug, Clone, Copy)]
pub struct MemberView<'a> {
    pub id: &'a str,
    pub live: bool,
    pub saved: Option<&'a SavedView>,
}

/// Whether Galera's pc.recovery can re-form the last Primary component by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outlook {
    /// Every member of one saved view is live and saved that same view; `joiners` (live,
    /// outside that view) join it afterwards.
    Possible {
        /// The view's id, `<view_uuid>:<seq>` ([`SavedView::view_id`]).
        view_id: String,
        view_seq: u64,
        members: Vec<String>,
        joiners: Vec<String>,
    },
    /// No member saved a view (a clean shutdown deletes it, or pc.recovery is off).
    NoSavedView,
    /// Live members saved different views (a staggered crash): pc.recovery would wait.
    ViewsDiffer(Vec<(String, u64)>),
    /// Members of the saved view not back: by node id when one claimed that uuid, else uuid.
    MembersMissing(Vec<String>),
}

impl fmt::Display for Outlook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outlook::Possible {
                view_seq,
                members,
                joiners,
                ..
            } => {
                write!(
                    f,
                    "pc.recovery can re-form view {view_seq} ({})",
                    members.join(", ")
                )?;
                if !joiners.is_empty() {
                    write!(f, "; then {} join", joiners.join(", "))?;
                }
                Ok(())
            }
            Outlook::NoSavedView => write!(f, "pc.recovery cannot: no node saved a Primary view"),
            Outlook::ViewsDiffer(views) => {
                let views: Vec<String> = views
                    .iter()
                    .map(|(node, seq)| format!("{node} view {seq}"))
                    .collect();
                write!(
                    f,
                    "pc.recovery cannot: saved views differ ({})",
                    views.join(", ")
                )
            }
            Outlook::MembersMissing(missing) => write!(
                f,
                "pc.recovery cannot: member(s) of the saved view not back: {}",
                missing.join(", ")
            ),
        }
    }
}

/// The outlook over the core members: pure, so the coordinator's status and (next) its
/// fast path read it the same way. A dead member's saved view still names its uuid.
pub fn outlook(members: &[MemberView<'_>]) -> Outlook {
    let live_views: Vec<(&str, &SavedView)> = members
        .iter()
        .filter(|m| m.live)
        .filter_map(|m| m.saved.map(|v| (m.id, v)))
        .collect();
    let Some((_, first)) = live_views.first() else {
        // nobody back yet: the views the others gossiped before they went down say who
        let mut away: Vec<String> = members
            .iter()
            .filter(|m| !m.live && m.saved.is_some())
            .map(|m| m.id.to_string())
            .collect();
        away.sort();
        return if away.is_empty() {
            Outlook::NoSavedView
        } else {
            Outlook::MembersMissing(away)
        };
    };
    if live_views.iter().any(|(_, v)| !v.same_view(first)) {
        let mut views: Vec<(String, u64)> = live_views
            .iter()
            .map(|(id, v)| (id.to_string(), v.view_seq))
            .collect();
        views.sort();
        return Outlook::ViewsDiffer(views);
    }
    let claimed = |uuid: &str| {
        members
            .iter()
            .find(|m| m.saved.is_some_and(|v| v.my_uuid == uuid))
    };
    let mut missing = Vec::new();
    let mut in_view = Vec::new();
    for uuid in &first.members {
        match claimed(uuid) {
            Some(m) if m.live => in_view.push(m.id.to_string()),
            Some(m) => missing.push(m.id.to_string()),
            None => missing.push(uuid.clone()),
        }
    }
    if !missing.is_empty() {
        missing.sort();
        return Outlook::MembersMissing(missing);
    }
    in_view.sort();
    let mut joiners: Vec<String> = members
        .iter()
        .filter(|m| m.live && !in_view.iter().any(|id| id == m.id))
        .map(|m| m.id.to_string())
        .collect();
    joiners.sort();
    Outlook::Possible {
        view_id: first.view_id(),
        view_seq: first.view_seq,
        members: in_view,
        joiners,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "b6f3ff34-f202-11f1-baf6-3a9e48dd484e";
    const B: &str = "b742c2ff-f202-11f1-a398-b72e63015a05";
    const C: &str = "b946dfe8-f202-11f1-90ac-c67bc9189718";

    /// A file as Galera 26.4 (MariaDB 10.11, the lab) wrote it.
    const LAB_FILE: &str = "my_uuid: b6f3ff34-f202-11f1-baf6-3a9e48dd484e\n#vwbeg\n\
view_id: 3 b6f3ff34-f202-11f1-baf6-3a9e48dd484e 3\nbootstrap: 0\n\
member: b6f3ff34-f202-11f1-baf6-3a9e48dd484e 0\nmember: b742c2ff-f202-11f1-a398-b72e63015a05 0\n\
member: b946dfe8-f202-11f1-90ac-c67bc9189718 0\n#vwend\n";

    fn view(me: &str, seq: u64, members: &[&str]) -> SavedView {
        SavedView {
            my_uuid: me.to_string(),
            view_uuid: A.to_string(),
            view_seq: seq,
            members: members.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn parses_the_file_galera_writes_and_round_trips_through_gossip() {
        let saved = parse_gvwstate(LAB_FILE).unwrap();
        assert_eq!(saved, view(A, 3, &[A, B, C]));
        assert_eq!(SavedView::from_gossip(&saved.to_gossip()).unwrap(), saved);
    }

    #[test]
    fn malformed_files_name_the_line_or_the_missing_key() {
        let non_primary = LAB_FILE.replace("view_id: 3 ", "view_id: 2 ");
        assert_eq!(
            parse_gvwstate(&non_primary).unwrap_err().to_string(),
            "gvwstate.dat line 3: view type 2 is not a Primary view"
        );
        let no_members: String = LAB_FILE
            .lines()
            .filter(|l| !l.starts_with("member"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            parse_gvwstate(&no_members).unwrap_err(),
            ViewError::Missing("member:")
        );
        assert!(parse_gvwstate("my_uuid: nope\n").is_err());
        assert!(SavedView::from_gossip("x y").is_err());
    }

    #[test]
    fn the_outlook_over_the_cases_of_a_full_outage() {
        let (a, b, c) = (
            view(A, 3, &[A, B, C]),
            view(B, 3, &[A, B, C]),
            view(C, 3, &[A, B, C]),
        );
        let m = |id, live, saved| MemberView { id, live, saved };
        // all at once: every member of the one saved view is back
        assert_eq!(
            outlook(&[
                m("n1", true, Some(&a)),
                m("n2", true, Some(&b)),
                m("n3", true, Some(&c))
            ]),
            Outlook::Possible {
                view_id: format!("{A}:3"),
                view_seq: 3,
                members: vec!["n1".into(), "n2".into(), "n3".into()],
                joiners: vec![],
            }
        );
        // a member not back (dead in gossip): refused, named
        let missing = outlook(&[
            m("n1", true, Some(&a)),
            m("n2", true, Some(&b)),
            m("n3", false, Some(&c)),
        ]);
        assert_eq!(missing, Outlook::MembersMissing(vec!["n3".into()]));
        assert_eq!(
            missing.to_string(),
            "pc.recovery cannot: member(s) of the saved view not back: n3"
        );
        // ... or no node claims its uuid at all
        assert_eq!(
            outlook(&[
                m("n1", true, Some(&a)),
                m("n2", true, Some(&b)),
                m("n3", true, None)
            ]),
            Outlook::MembersMissing(vec![C.into()])
        );
        // staggered: n1 went first and kept the older view
        let (b4, c4) = (view(B, 4, &[B, C]), view(C, 4, &[B, C]));
        assert_eq!(
            outlook(&[
                m("n1", true, Some(&a)),
                m("n2", true, Some(&b4)),
                m("n3", true, Some(&c4))
            ]),
            Outlook::ViewsDiffer(vec![("n1".into(), 3), ("n2".into(), 4), ("n3".into(), 4)])
        );
        // a node that left cleanly before the outage saved nothing: it joins afterwards
        assert_eq!(
            outlook(&[
                m("n1", true, None),
                m("n2", true, Some(&b4)),
                m("n3", true, Some(&c4))
            ]),
            Outlook::Possible {
                view_id: format!("{A}:4"),
                view_seq: 4,
                members: vec!["n2".into(), "n3".into()],
                joiners: vec!["n1".into()],
            }
        );
        // every node still down: the views they gossiped before name them
        assert_eq!(
            outlook(&[
                m("n1", false, Some(&a)),
                m("n2", false, Some(&b)),
                m("n3", false, None)
            ]),
            Outlook::MembersMissing(vec!["n1".into(), "n2".into()])
        );
        // every file deleted (clean shutdowns) or pc.recovery off
        assert_eq!(
            outlook(&[m("n1", true, None), m("n2", true, None)]),
            Outlook::NoSavedView
        );
    }

    proptest! {
        #[test]
        fn parse_gvwstate_never_panics(text in "\\PC{0,300}") {
            let _ = parse_gvwstate(&text);
            let _ = SavedView::from_gossip(&text);
        }

        #[test]
        fn saved_view_gossip_round_trip(seq in 0u64..1_000_000, n in 1usize..4) {
            let saved = view(B, seq, &[A, B, C][..n]);
            prop_assert_eq!(SavedView::from_gossip(&saved.to_gossip()).unwrap(), saved);
        }
    }
}
