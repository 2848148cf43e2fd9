//! Gluster: what the local glusterd, the trusted pool, the volume and the local brick look
//! like, from the gluster CLI's `--xml` output (parsed into types; errors name the command).
//! The control loop that keeps glusterd and the brick up, and the coordinator's volume
//! formation, build on these types (issue 5).

pub mod xml;
