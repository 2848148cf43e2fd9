//! triad-coordinator: one per cluster. It observes gossip into a typed cluster view and
//! runs the control loops over it: Galera recovery, the balancer's membership, the Gluster
//! volume, autoscaling. Every loop has the shape of `runner` (a pass, then the time of the
//! next look, backoff on failure) and calls agents through `agent_client`.
//!
//! Modules: `config` (the coordinator's TOML), `view` (pure: gossip snapshots → members and
//! events), `observer` (the gossip loop that feeds the view), `runner` (the loop shape),
//! `agent_client` (one typed way to call an agent), `recovery` (Galera formation and
//! full-outage recovery: election, decision store), `balancer` (membership planner,
//! HAProxy and Octavia), `volume` (Gluster formation planner and loop), `autoscale` (policy,
//! scaler flows, Nova), `app` (the app's database, account and password file), `openstack` (Keystone sessions, Nova and Octavia clients), `status`
//! (the gRPC status answer), `grpc` (CoordinatorService), `metrics` (`/metrics`), `dashboard`
//! (the web dashboard over HTTPS), `cli`
//! (the command line).

#![forbid(unsafe_code)]

pub mod agent_client;
pub mod app;
pub mod app_run;
pub mod autoscale;
pub mod backup;
pub mod balancer;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod drain;
pub mod events;
pub mod grpc;
#[cfg(test)]
pub(crate) mod hostile_toml;
pub mod http_server;
pub mod jobs;
pub mod maintenance;
pub mod metrics;
pub mod node_maintenance;
pub mod observer;
pub mod openstack;
pub mod quiesce;
pub mod recovery;
pub mod runner;
pub mod status;
pub mod view;
pub mod volume;
