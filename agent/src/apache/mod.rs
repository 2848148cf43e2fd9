//! Apache: health and request counters of the local apache2.
//!
//! Inputs: an HTTP GET of the health path through the node's own address (what the
//! balancer sees), and mod_status `?auto` for `Total Accesses` and `BusyWorkers` (the
//! autoscaler's input). Publishes `apache` (ok|down), `req_total` and `busy_workers`.
//! A failed probe is a fact (`down`), never an agent error.

pub mod config;
pub mod driver;
pub mod probe;
pub mod status;

pub use status::{parse_server_status, ServerStatus};
