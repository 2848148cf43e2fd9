//! Retention: which backups a policy deletes. Pure: the backups' ids and `now` in, the ids
//! to delete out; the coordinator lists, plans and deletes.
//!
//! Kept: the newest `keep_last`; the newest backup of each of the last `keep_daily` UTC
//! days and of each of the last `keep_weekly` ISO weeks (Monday to Sunday, UTC), counted
//! back from `now`'s day and week (today is the first); always the newest backup of all,
//! whatever the policy; and any backup dated after `now` (the clock was stepped back: it
//! cannot be placed, so it is not judged). Everything else is deleted.
//!
//! The day and week windows are calendar ones, so a schedule that stopped for a while lets
//! old dailies go; `keep_last` is what guarantees a number of backups.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::id::BackupId;

const DAY_SECONDS: i64 = 86_400;

/// How many backups to keep; see the module's doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Policy {
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
}

/// The backups among `backups` that `policy` deletes at `now`, oldest first. Duplicates in
/// `backups` count once.
pub fn plan(backups: &[BackupId], now: SystemTime, policy: &Policy) -> Vec<BackupId> {
    let mut newest_first: Vec<BackupId> = backups.to_vec();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    newest_first.dedup();
    let now_seconds = unix_seconds(now);
    let today = day_of(now_seconds);
    let this_week = week_of(now_seconds);

    let mut keep: BTreeSet<BackupId> = newest_first
        .iter()
        .take(policy.keep_last.max(1) as usize)
        .copied()
        .collect();
    let mut days_kept = BTreeSet::new();
    let mut weeks_kept = BTreeSet::new();
    for id in &newest_first {
        let seconds = id.unix_seconds();
        if seconds > now_seconds {
            keep.insert(*id);
            continue;
        }
        // Newest first, so the first backup seen of a day or week is its newest.
        let day = day_of(seconds);
        if today - day < i64::from(policy.keep_daily) && days_kept.insert(day) {
            keep.insert(*id);
        }
        let week = week_of(seconds);
        if this_week - week < i64::from(policy.keep_weekly) && weeks_kept.insert(week) {
            keep.insert(*id);
        }
    }
    let mut delete: Vec<BackupId> = newest_first
        .into_iter()
        .filter(|id| !keep.contains(id))
        .collect();
    delete.reverse();
    delete
}

fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Days since 1970-01-01 (UTC).
fn day_of(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(DAY_SECONDS)
}

/// Weeks since the Monday before 1970-01-01 (a Thursday): the same week number for the
/// same ISO week.
fn week_of(unix_seconds: i64) -> i64 {
    (day_of(unix_seconds) + 3).div_euclid(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Datelike, Utc};
    use proptest::prelude::*;
    use std::time::Duration;

    fn id(text: &str) -> BackupId {
        text.parse().unwrap()
    }

    fn at(text: &str) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(id(text).unix_seconds() as u64)
    }

    /// What `plan` left of `backups` when it deletes `delete`.
    fn kept(backups: &[BackupId], delete: &[BackupId]) -> Vec<BackupId> {
        backups
            .iter()
            .filter(|b| !delete.contains(b))
            .copied()
            .collect()
    }

    fn texts(ids: &[BackupId]) -> Vec<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    fn policy(keep_last: u32, keep_daily: u32, keep_weekly: u32) -> Policy {
        Policy {
            keep_last,
            keep_daily,
            keep_weekly,
        }
    }

    /// Three backups a day (02:00, 10:00, 18:00) from 2026-11-20 to 2026-12-06.
    fn three_a_day() -> Vec<BackupId> {
        let mut ids = Vec::new();
        for day in 0..17 {
            for hour in [2, 10, 18] {
                let seconds =
                    id("20261120T000000Z").unix_seconds() + day * DAY_SECONDS + hour * 3600;
                ids.push(BackupId::from_unix_seconds(seconds).unwrap());
            }
        }
        ids
    }

    #[test]
    fn nothing_to_plan_for_no_backups() {
        assert!(plan(&[], at("20261206T190000Z"), &policy(3, 7, 4)).is_empty());
    }

    #[test]
    fn the_newest_is_kept_even_by_an_empty_policy() {
        let backups = three_a_day();
        let delete = plan(&backups, at("20261206T190000Z"), &Policy::default());
        assert_eq!(delete.len(), backups.len() - 1);
        assert!(!delete.contains(&id("20261206T180000Z")));
    }

    #[test]
    fn keep_last_keeps_the_newest_ones() {
        let backups = three_a_day();
        let delete = plan(&backups, at("20261206T190000Z"), &policy(4, 0, 0));
        let kept = kept(&backups, &delete);
        assert_eq!(
            texts(&kept),
            [
                "20261205T180000Z",
                "20261206T020000Z",
                "20261206T100000Z",
                "20261206T180000Z"
            ]
        );
    }

    #[test]
    fn daily_keeps_the_newest_of_each_of_the_last_days() {
        let backups = three_a_day();
        let delete = plan(&backups, at("20261206T190000Z"), &policy(0, 3, 0));
        let kept = kept(&backups, &delete);
        assert_eq!(
            texts(&kept),
            ["20261204T180000Z", "20261205T180000Z", "20261206T180000Z"]
        );
    }

    #[test]
    fn weekly_keeps_the_newest_of_each_iso_week() {
        // 2026-12-06 is a Sunday: its ISO week began on Monday 2026-11-30.
        let backups = three_a_day();
        let delete = plan(&backups, at("20261206T190000Z"), &policy(0, 0, 3));
        let kept = kept(&backups, &delete);
        assert_eq!(
            texts(&kept),
            ["20261122T180000Z", "20261129T180000Z", "20261206T180000Z"]
        );
    }

    #[test]
    fn rules_combine_and_deletions_come_oldest_first() {
        let backups = three_a_day();
        let delete = plan(&backups, at("20261206T190000Z"), &policy(2, 2, 2));
        let kept = kept(&backups, &delete);
        assert_eq!(
            texts(&kept),
            [
                "20261129T180000Z",
                "20261205T180000Z",
                "20261206T100000Z",
                "20261206T180000Z"
            ]
        );
        assert!(delete.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(delete.len() + kept.len(), backups.len());
    }

    #[test]
    fn windows_count_back_from_now_not_from_the_newest_backup() {
        // Backups stopped on 2026-12-01; on 2026-12-06 the last 3 days hold none.
        let backups = [id("20261130T020000Z"), id("20261201T020000Z")];
        let delete = plan(&backups, at("20261206T190000Z"), &policy(0, 3, 0));
        assert_eq!(texts(&delete), ["20261130T020000Z"]);
    }

    #[test]
    fn backups_dated_after_now_are_kept() {
        let backups = [
            id("20261201T020000Z"),
            id("20261205T020000Z"),
            id("20261207T020000Z"),
        ];
        let delete = plan(&backups, at("20261206T000000Z"), &policy(1, 0, 0));
        assert_eq!(texts(&delete), ["20261201T020000Z", "20261205T020000Z"]);
    }

    fn arbitrary_ids() -> impl Strategy<Value = Vec<BackupId>> {
        let base = id("20260101T000000Z").unix_seconds();
        prop::collection::vec(0i64..(120 * DAY_SECONDS), 0..40).prop_map(move |offsets| {
            offsets
                .into_iter()
                .map(|offset| BackupId::from_unix_seconds(base + offset).unwrap())
                .collect()
        })
    }

    proptest! {
        #[test]
        fn never_deletes_the_newest_or_anything_not_given(
            backups in arbitrary_ids(),
            now_offset in 0i64..(150 * DAY_SECONDS),
            keep_last in 0u32..5,
            keep_daily in 0u32..10,
            keep_weekly in 0u32..6,
        ) {
            let now = UNIX_EPOCH
                + Duration::from_secs((id("20260101T000000Z").unix_seconds() + now_offset) as u64);
            let delete = plan(&backups, now, &policy(keep_last, keep_daily, keep_weekly));
            if let Some(newest) = backups.iter().max() {
                prop_assert!(!delete.contains(newest));
            }
            prop_assert!(delete.iter().all(|id| backups.contains(id)));
            prop_assert!(delete.windows(2).all(|pair| pair[0] < pair[1]));
            let mut newest_first = backups.clone();
            newest_first.sort_unstable_by(|a, b| b.cmp(a));
            newest_first.dedup();
            for kept in newest_first.iter().take(keep_last as usize) {
                prop_assert!(!delete.contains(kept));
            }
        }

        #[test]
        fn week_numbers_match_iso_weeks(
            a in 0i64..4_000_000_000,
            apart in -(15 * DAY_SECONDS)..(15 * DAY_SECONDS),
        ) {
            let b = (a + apart).max(0);
            let iso = |seconds: i64| {
                let week = DateTime::<Utc>::from_timestamp(seconds, 0).unwrap().iso_week();
                (week.year(), week.week())
            };
            prop_assert_eq!(week_of(a) == week_of(b), iso(a) == iso(b));
            prop_assert_eq!(week_of(a) < week_of(b), iso(a) < iso(b));
        }
    }
}
