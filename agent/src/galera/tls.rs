//! Galera's copy of the node certificate. mysqld runs as `mysql` and cannot read the
//! agent's root-only `[tls]` files, so the agent keeps copies that it can: the CA and the
//! certificate world-readable, the key readable by the `mysql` group only. The copies are
//! rewritten only when their content or mode differs, atomically (a reader never sees half
//! a key).

use crate::exec::{at, owned_file_in_place, set_mode_and_owner, write_owned_file};

use super::{GaleraSettings, GaleraTls, SstMethod};

/// What [`install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsInstall {
    /// The copies were already equal to the sources.
    Unchanged,
    /// There were no copies before (first start with `tls = true`).
    Installed,
    /// Existing copies were replaced (a renewed certificate): a running Galera must reload.
    Replaced,
}

/// A failure naming the file at fault.
pub type TlsInstallError = crate::exec::FileError;

/// Copy the CA, certificate and key into `tls.dir` (0750, group `gid`): `ca.pem` and
/// `cert.pem` 0644, `key.pem` 0640 with group `gid`, owned by the calling user. Sources
/// that do not make a usable set (a renewal caught half-copied: a new key beside the old
/// certificate) are not installed: the copies Galera runs with stay as they are.
pub fn install(tls: &GaleraTls, gid: u32) -> Result<TlsInstall, TlsInstallError> {
    tls.source.server_config().map_err(|e| TlsInstallError {
        path: tls.source.cert.clone(),
        message: format!("not installed for Galera: {e}"),
    })?;
    let dir = &tls.dir;
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let owner = nix::unistd::geteuid().as_raw();
    set_mode_and_owner(dir, 0o750, owner, gid)?;
    let mut result = TlsInstall::Unchanged;
    for (source, target, mode) in [
        (&tls.source.ca, tls.ca(), 0o644),
        (&tls.source.cert, tls.cert(), 0o644),
        (&tls.source.key, tls.key(), 0o640),
    ] {
        let content = std::fs::read(source).map_err(at(source))?;
        if owned_file_in_place(&target, &content, mode, owner, gid) {
            continue;
        }
        let current = std::fs::read(&target).ok();
        write_owned_file(&target, &content, mode, owner, gid)?;
        result = match (result, current) {
            (TlsInstall::Replaced, _) | (_, Some(_)) => TlsInstall::Replaced,
            _ => TlsInstall::Installed,
        };
    }
    Ok(result)
}

/// Programs the state transfer needs with TLS that are not on `PATH` (the SST scripts
/// abort rather than send in plaintext without them): stunnel for rsync, socat for
/// mariabackup, openssl for both (the scripts check that key and certificate match).
pub fn missing_programs(settings: &GaleraSettings, path_var: &str) -> Vec<&'static str> {
    if settings.tls.is_none() {
        return vec![];
    }
    let needed: &[&'static str] = match settings.sst_method {
        SstMethod::Rsync => &["stunnel", "openssl"],
        SstMethod::Mariabackup => &["socat", "openssl"],
    };
    needed
        .iter()
        .copied()
        .filter(|program| !std::env::split_paths(path_var).any(|dir| dir.join(program).is_file()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;
    use triad_daemon::tls::TlsFiles;

    /// A CA and a certificate with its key for `n1`, as PEM: (ca, cert, key).
    fn pems() -> (String, String, String) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(vec![]).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.pem(), ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["n1".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (ca.pem(), cert.pem(), key.serialize_pem())
    }

    fn setup() -> (tempfile::TempDir, GaleraTls) {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = pems();
        for (name, text) in [("ca.crt", ca), ("n1.crt", cert), ("n1.key", key)] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let mut tls = GaleraTls::new(TlsFiles {
            ca: dir.path().join("ca.crt"),
            cert: dir.path().join("n1.crt"),
            key: dir.path().join("n1.key"),
        });
        tls.dir = dir.path().join("mysql-tls");
        (dir, tls)
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn copies_are_made_once_with_the_key_for_the_group_only_and_replaced_on_renewal() {
        let (_dir, tls) = setup();
        let gid = nix::unistd::getegid().as_raw();
        assert_eq!(install(&tls, gid).unwrap(), TlsInstall::Installed);
        let read = |path: &Path| std::fs::read_to_string(path).unwrap();
        assert_eq!(read(&tls.key()), read(&tls.source.key));
        assert_eq!(read(&tls.ca()), read(&tls.source.ca));
        assert_eq!(mode(&tls.key()), 0o640);
        assert_eq!(mode(&tls.cert()), 0o644);
        assert_eq!(mode(&tls.dir), 0o750);
        assert_eq!(std::fs::metadata(tls.key()).unwrap().gid(), gid);
        assert_eq!(install(&tls, gid).unwrap(), TlsInstall::Unchanged);
        // a loosened key copy is put right
        std::fs::set_permissions(tls.key(), std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(install(&tls, gid).unwrap(), TlsInstall::Replaced);
        assert_eq!(mode(&tls.key()), 0o640);
        // renewal, caught half-way: a new key beside the old certificate is not installed
        let (ca, cert, key) = pems();
        let installed_key = read(&tls.key());
        std::fs::write(&tls.source.key, &key).unwrap();
        let error = install(&tls, gid).unwrap_err().to_string();
        assert!(
            error.contains("n1.crt") && error.contains("not installed"),
            "{error}"
        );
        assert_eq!(read(&tls.key()), installed_key);
        // then the certificate (and here a new CA) arrive
        std::fs::write(&tls.source.cert, &cert).unwrap();
        std::fs::write(&tls.source.ca, &ca).unwrap();
        assert_eq!(install(&tls, gid).unwrap(), TlsInstall::Replaced);
        assert_eq!(read(&tls.cert()), cert);
        assert_eq!(read(&tls.key()), key);
        assert!(!tls.dir.join("cert.tmp").exists());
    }

    #[test]
    fn a_missing_source_is_named_and_leaves_the_copies_alone() {
        let (_dir, tls) = setup();
        let gid = nix::unistd::getegid().as_raw();
        install(&tls, gid).unwrap();
        std::fs::remove_file(&tls.source.key).unwrap();
        let installed_key = std::fs::read_to_string(tls.key()).unwrap();
        let error = install(&tls, gid).unwrap_err().to_string();
        assert!(error.contains("n1.key"), "{error}");
        assert_eq!(std::fs::read_to_string(tls.key()).unwrap(), installed_key);
    }

    #[test]
    fn the_tls_transfer_names_the_programs_it_lacks() {
        let (_dir, tls) = setup();
        let mut settings = GaleraSettings::defaults("c");
        assert!(missing_programs(&settings, "").is_empty());
        settings.tls = Some(tls);
        assert_eq!(missing_programs(&settings, ""), vec!["socat", "openssl"]);
        settings.sst_method = SstMethod::Rsync;
        assert_eq!(missing_programs(&settings, ""), vec!["stunnel", "openssl"]);
        let bin = tempfile::tempdir().unwrap();
        std::fs::write(bin.path().join("stunnel"), "").unwrap();
        let path = bin.path().display().to_string();
        assert_eq!(missing_programs(&settings, &path), vec!["openssl"]);
    }
}
