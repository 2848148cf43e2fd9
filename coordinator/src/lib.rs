//! triad-coordinator: one per cluster. It observes gossip into a typed cluster view and
//! serves it to `triadctl`; the control loops (recovery, balancer membership, volume,
//! autoscaling) build on that view as later issues land.
//!
//! Modules: `config`, `view` (pure: gossip snapshots → members and events), `observer`
//! (the gossip loop that feeds the view), `status` (the status model and its renderings),
//! `grpc` (CoordinatorService), `metrics` (the Prometheus `/metrics` endpoint).

#![forbid(unsafe_code)]

pub mod agent_client;
pub mod autoscale;
pub mod balancer;
pub mod cli;
pub mod config;
pub mod grpc;
#[cfg(test)]
pub(crate) mod hostile_toml;
pub mod metrics;
pub mod observer;
pub mod openstack;
pub mod recovery;
pub mod status;
pub mod view;
pub mod volume;
