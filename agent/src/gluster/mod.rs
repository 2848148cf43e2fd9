//! Gluster: what the local glusterd, the trusted pool, the volume and the local brick look
//! like, from the gluster CLI's `--xml` output (parsed into types; errors name the command).
//! `driver` keeps glusterd and the brick up and publishes their state, judging the brick
//! from `local` evidence only; `steps` are the typed formation steps the coordinator may ask
//! for over gRPC; `stalled` destroys Gluster's TCP connections to a returned peer that still
//! wait on the kernel's retransmission backoff.

pub mod cli;
pub mod driver;
pub mod local;
pub mod stalled;
pub mod steps;
pub mod xml;
