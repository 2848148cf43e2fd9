//! triad-jobs: the pure rules of cluster jobs (issue 18), no I/O and no clock of its own.
//! The coordinator decides which node may run a job and when its next run is due; the agent
//! holding a job's lease decides whether it may start a run now. Both must apply the same
//! rules, so they live here, below both daemons.
//!
//! Modules: `schedule` (an interval or a calendar expression, and the next due time, with
//! missed runs caught up once), `lease` (the fenced per-job lease: the coordinator's planner,
//! the holder's check, and why two runs of one job never overlap), `spec` (the shape of a
//! job's fields, checked by both daemons).

#![forbid(unsafe_code)]

pub mod lease;
pub mod schedule;
pub mod spec;
