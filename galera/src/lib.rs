//! triad-galera: pure Galera rules, no I/O. The agent applies them to its own mysqld, the
//! coordinator to the cluster's: both must read a position, and pick the next joiner, the
//! same way.
//!
//! Modules: `position` (cluster uuid and seqno, grastate.dat, `--wsrep-recover` output, the
//! order of positions), `join` (one joiner at a time into the Primary component), `account`
//! (the app's database and account: names, the password hash, what to create), `view` (the
//! Primary view each node saved for pc.recovery, and whether Galera can re-form it alone).

#![forbid(unsafe_code)]

pub mod account;
pub mod join;
pub mod position;
pub mod view;
