//! triad-daemon: what `triad-agent`, `triad-coordinator` and `triadctl` share to run, and
//! nothing of either daemon's work.
//!
//! Modules: `config` (strict TOML, one-line errors, validated values, `[cluster]` and
//! `[tls]`), `tls` (mutual TLS on gRPC: files, roles, server and client set-up), `systemd`
//! (notify, watchdog), `telemetry` (tracing to the journal or stderr), `fs` (writes that
//! survive a power cut), `pki` (the cluster CA and the certificates it signs, for
//! `triadctl pki` and the autoscaler's new nodes), `unconfigured` (the shipped all-commented
//! config's wait), `shipped` (the shipped configs against their parsers' keys, for the
//! tests), `lifecycle` (both daemons' `main`: config load, `validate-config`, signals, the
//! gRPC port, readiness, the SIGHUP re-read).

#![forbid(unsafe_code)]

pub mod config;
pub mod fs;
pub mod lifecycle;
pub mod pki;
pub mod shipped;
pub mod systemd;
pub mod telemetry;
pub mod tls;
pub mod unconfigured;
pub mod units;
