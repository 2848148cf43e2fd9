//! Triad testbed harness: Debian 12 nodes with systemd as PID 1 in systemd-nspawn containers on
//! a private bridge, HAProxy and the coordinator on the host, fault primitives, and the "manual
//! formation" of Galera, GlusterFS and Apache used until the agent manages them.
//!
//! A running lab can grow and shrink by one node at a time ([`Testbed::add_node`],
//! [`Testbed::remove_last_node`], `triad-lab add-node`/`remove-node`, for autoscaling): n1..n3
//! are core nodes, added nodes are web nodes by default ([`triad::web_agent_config`]: Galera
//! member by SST, volume client without a brick, Apache).
//!
//! The measured recipe behind it is `shared/nspawn.md`; the service facts are `shared/testbed.md`.
#![forbid(unsafe_code)]

pub mod backups;
pub mod bench_app;
pub mod bench_autoscale;
pub mod bench_backup;
pub mod bench_dashboard;
pub mod bench_partition;
pub mod bench_recovery;
pub mod bench_scaleout;
pub mod bench_volume;
pub mod browser;
pub mod chaos;
pub mod cmd;
pub mod dashboard;
pub mod error;
pub mod faults;
pub mod formation;
pub mod haproxy;
pub mod host;
pub mod hostproc;
pub mod http;
pub mod image;
pub mod jobs;
pub mod net;
pub mod node;
pub mod prometheus;
pub mod sessions;
pub mod splitbrain;
pub mod testbed;
pub mod triad;
pub mod wait;
pub mod wordpress;

pub use error::{LabError, Result};
pub use node::Node;
pub use testbed::{Testbed, TestbedOptions};
