//! triadctl: the operator's command line for a Triad cluster. It talks to the coordinator
//! over gRPC (the wire contracts of `triad-proto`) and links neither daemon.
//!
//! Modules: `cli` (the clap definition, also read by `triad-gen-assets`), `report` (the
//! status answer as text or JSON), `dashboard` (the dashboard's login link, over HTTPS). The CA and certificates of `triadctl pki` are made by
//! `triad_daemon::pki`.

#![forbid(unsafe_code)]

pub mod cli;
pub mod dashboard;
pub mod report;
