//! The wsrep configuration fragment the agent writes for mariadb.service.
//!
//! Pure rendering from the node's settings and the core peers; the caller writes the file
//! only when the content changed (an unchanged file is never rewritten, so its mtime tells
//! an operator when Triad last changed it).

use std::net::IpAddr;

use super::GaleraSettings;

/// Render the `[mysqld]` fragment. `peers` are the core nodes' addresses (self included or
/// not); they are sorted and deduplicated so the output is stable.
pub fn render(
    settings: &GaleraSettings,
    node_name: &str,
    address: IpAddr,
    peers: &[IpAddr],
) -> String {
    let mut cluster: Vec<IpAddr> = peers.to_vec();
    cluster.push(address);
    cluster.sort();
    cluster.dedup();
    let cluster_address = cluster
        .iter()
        .map(|ip| match ip {
            IpAddr::V6(v6) => format!("[{v6}]:4567"),
            IpAddr::V4(v4) => format!("{v4}:4567"),
        })
        .collect::<Vec<_>>()
        .join(",");
    let host = match address {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    let mut provider_options = vec![
        format!("gmcast.listen_addr=tcp://{host}:4567"),
        format!("ist.recv_addr={host}:4568"),
        format!("gcache.size={}", settings.gcache_size),
        "gcache.recover=yes".to_string(),
        "pc.recovery=true".to_string(),
    ];
    if let Some(tls) = &settings.tls {
        // gcomm and IST over TLS; Galera verifies the peer's chain against the cluster CA
        provider_options.push(format!("socket.ssl_ca={}", tls.ca().display()));
        provider_options.push(format!("socket.ssl_cert={}", tls.cert().display()));
        provider_options.push(format!("socket.ssl_key={}", tls.key().display()));
    }
    provider_options.extend(settings.extra_provider_options.iter().cloned());
    let mut lines = vec![
        "# Written by triad-agent from /etc/triad/agent.toml and the cluster membership."
            .to_string(),
        "# Changes made here are overwritten; set [galera] options in agent.toml instead."
            .to_string(),
        "[mysqld]".to_string(),
        format!("bind-address = {address}"),
        "binlog_format = ROW".to_string(),
        "default_storage_engine = InnoDB".to_string(),
        "innodb_autoinc_lock_mode = 2".to_string(),
        "# durability: a committed write survives a crash of every node".to_string(),
        "innodb_flush_log_at_trx_commit = 1".to_string(),
        "wsrep_on = ON".to_string(),
        format!("wsrep_provider = {}", settings.provider),
        format!("wsrep_cluster_name = {}", settings.cluster_name),
        format!("wsrep_cluster_address = gcomm://{cluster_address}"),
        format!("wsrep_node_name = {node_name}"),
        format!("wsrep_node_address = {host}:4567"),
        format!(
            "wsrep_provider_options = \"{}\"",
            provider_options.join(";")
        ),
        format!("wsrep_sst_method = {}", settings.sst_method.as_str()),
        format!("wsrep_sst_receive_address = {host}:4444"),
    ];
    if settings.sst_method == SstMethod::Mariabackup {
        // the donor runs mariabackup as OS user mysql; mysql@localhost authenticates through
        // the unix socket, so no password exists to be copied between nodes
        lines.push("wsrep_sst_auth = mysql:".to_string());
    }
    if let Some(pool) = &settings.innodb_buffer_pool_size {
        lines.push(format!("innodb_buffer_pool_size = {pool}"));
    }
    if let Some(tls) = &settings.tls {
        // Read by wsrep_sst_rsync (stunnel) and wsrep_sst_mariabackup (socat openssl):
        // the joiner listens with TLS and both ends verify the other's chain against the
        // cluster CA (VERIFY_CA: the donor dials an address, not a name); either script
        // aborts rather than fall back to plaintext when ssl-mode is set.
        lines.extend([
            String::new(),
            "[sst]".to_string(),
            "ssl-mode = VERIFY_CA".to_string(),
            format!("tca = {}", tls.ca().display()),
            format!("tcert = {}", tls.cert().display()),
            format!("tkey = {}", tls.key().display()),
        ]);
    }
    lines.push(String::new());
    lines.join("\n")
}

/// How a joiner receives a full state transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SstMethod {
    /// Physical copy that blocks the donor only briefly (default).
    Mariabackup,
    /// Physical copy that blocks the donor for the whole copy; faster on small data.
    Rsync,
}

impl SstMethod {
    pub fn as_str(&self) -> &'static str {
        match self {
            SstMethod::Mariabackup => "mariabackup",
            SstMethod::Rsync => "rsync",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_puts_replication_and_the_state_transfer_on_the_cluster_ca() {
        let mut settings = GaleraSettings::defaults("prod");
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        let plain = render(&settings, "n2", a, &[]);
        assert!(!plain.contains("ssl"), "{plain}");
        settings.tls = Some(super::super::GaleraTls::new(triad_daemon::tls::TlsFiles {
            ca: "/etc/triad/pki/ca.crt".into(),
            cert: "/etc/triad/pki/n2.crt".into(),
            key: "/etc/triad/pki/n2.key".into(),
        }));
        let text = render(&settings, "n2", a, &[]);
        let options = text
            .lines()
            .find_map(|l| l.strip_prefix("wsrep_provider_options = "))
            .unwrap();
        for option in [
            "socket.ssl_ca=/etc/mysql/triad-tls/ca.pem",
            "socket.ssl_cert=/etc/mysql/triad-tls/cert.pem",
            "socket.ssl_key=/etc/mysql/triad-tls/key.pem",
        ] {
            assert!(options.contains(option), "{option} in {options}");
        }
        // mysqld reads the copies, never the agent's root-only files
        assert!(!text.contains("/etc/triad/pki"), "{text}");
        let sst = text.split("[sst]\n").nth(1).expect("an [sst] section");
        for line in [
            "ssl-mode = VERIFY_CA",
            "tca = /etc/mysql/triad-tls/ca.pem",
            "tcert = /etc/mysql/triad-tls/cert.pem",
            "tkey = /etc/mysql/triad-tls/key.pem",
        ] {
            assert!(sst.lines().any(|l| l == line), "{line} in [sst]: {sst}");
        }
        // the [mysqld] settings all come before [sst]
        let mysqld = text.split("[sst]").next().unwrap();
        assert!(mysqld.contains("wsrep_sst_method"), "{mysqld}");
    }

    #[test]
    fn fragment_has_durable_settings_and_a_stable_cluster_address() {
        let settings = GaleraSettings::defaults("prod");
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        let peers: Vec<IpAddr> = vec!["10.0.0.3".parse().unwrap(), "10.0.0.1".parse().unwrap(), a];
        let text = render(&settings, "n2", a, &peers);
        for needle in [
            "innodb_flush_log_at_trx_commit = 1",
            "binlog_format = ROW",
            "innodb_autoinc_lock_mode = 2",
            "wsrep_cluster_address = gcomm://10.0.0.1:4567,10.0.0.2:4567,10.0.0.3:4567",
            "gmcast.listen_addr=tcp://10.0.0.2:4567",
            "wsrep_sst_method = mariabackup",
            "wsrep_sst_auth = mysql:",
            "gcache.recover=yes",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
        let reordered = render(&settings, "n2", a, &[peers[2], peers[0], peers[1]]);
        assert_eq!(text, reordered, "peer order must not change the file");
    }
}
