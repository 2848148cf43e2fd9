//! triad-cluster: how Triad's nodes and coordinator see each other.
//!
//! Modules: `membership` (the only chitchat user: join, publish keys, observe members),
//! `settings` (the `[gossip]` section both daemons' configs hold).

#![forbid(unsafe_code)]

pub mod membership;
pub mod settings;
