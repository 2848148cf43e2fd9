//! triad-agent: runs on every node. It keeps the node's services healthy on its own
//! (design principle 1), gossips the node's state with chitchat, and answers the
//! coordinator over gRPC.
//!
//! Modules: `config` (TOML → validated config), `membership` (the only chitchat user),
//! `runtime` (the main loop), `readiness` (pure), `metrics` (sysinfo), `grpc` (the
//! AgentService server), `systemd` (notify, watchdog), `telemetry` (tracing).

#![forbid(unsafe_code)]

pub mod apache;
pub mod app;
pub mod backup;
pub mod cli;
pub mod config;
pub mod dbrouter;
pub mod exec;
pub mod galera;
pub mod gluster;
pub mod grpc;
pub mod jobs;
pub mod metrics;
pub mod mount;
pub mod readiness;
pub mod runtime;
pub mod service;
pub mod shutdown;
pub mod state;
pub mod systemd_bus;
#[cfg(feature = "testsuite")]
pub mod testsuite;
