//! A development PKI for the acquirer link: one CA, a host (server) certificate for
//! `localhost`/`127.0.0.1`, and terminal (client) certificates. Keys are ECDSA P-256.
//!
//! This is for the emulator and tests. On a device, the terminal key belongs in a secure
//! element or TPM; here it is a PEM file with mode 0600.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use zeroize::Zeroizing;

/// Errors creating, saving or loading the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM file did not hold what it should.
    #[error("{0}")]
    Pem(String),
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// The PEM texts of a development PKI.
#[derive(Clone)]
pub struct DevPki {
    /// CA certificate.
    pub ca_cert: String,
    /// CA private key.
    pub ca_key: Zeroizing<String>,
    /// Host (server) certificate, for `localhost` and `127.0.0.1`.
    pub host_cert: String,
    /// Host private key.
    pub host_key: Zeroizing<String>,
    /// Terminal (client) certificate.
    pub terminal_cert: String,
    /// Terminal private key.
    pub terminal_key: Zeroizing<String>,
}

impl fmt::Debug for DevPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DevPki(<certificates and keys hidden>)")
    }
}

const FILES: [&str; 6] = [
    "ca.pem",
    "ca.key",
    "host.pem",
    "host.key",
    "terminal.pem",
    "terminal.key",
];

fn ca(name: &str) -> Result<(String, Zeroizing<String>, Issuer<'static, KeyPair>), PkiError> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, name);
    p.distinguished_name
        .push(DnType::OrganizationName, "Kassa development");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key)?;
    let key_pem = Zeroizing::new(key.serialize_pem());
    Ok((cert.pem(), key_pem, Issuer::new(p, key)))
}

/// Issues a leaf certificate: `server` for the host (DNS and IP names), client otherwise.
fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    common_name: &str,
    names: Vec<String>,
    server: bool,
) -> Result<(String, Zeroizing<String>), PkiError> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(names)?;
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.distinguished_name
        .push(DnType::OrganizationName, "Kassa development");
    p.use_authority_key_identifier_extension = true;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let cert = p.signed_by(&key, issuer)?;
    Ok((cert.pem(), Zeroizing::new(key.serialize_pem())))
}

/// A host certificate a terminal must refuse, for the TLS negative tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadHostCertificate {
    /// Issued by the CA for the right names, but valid only during 2019.
    Expired,
    /// Issued by the CA for another name (`acquirer.example`) than the terminal dials.
    WrongName,
    /// Signed by its own key instead of the CA's.
    SelfSigned,
}

/// Issues the host certificate `bad` describes.
fn bad_host(
    issuer: &Issuer<'_, KeyPair>,
    bad: BadHostCertificate,
) -> Result<(String, Zeroizing<String>), PkiError> {
    let key = KeyPair::generate()?;
    let names = match bad {
        BadHostCertificate::WrongName => vec!["acquirer.example".to_string()],
        _ => vec!["localhost".into(), "127.0.0.1".into()],
    };
    let mut p = CertificateParams::new(names)?;
    p.distinguished_name.push(DnType::CommonName, "localhost");
    p.use_authority_key_identifier_extension = bad != BadHostCertificate::SelfSigned;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if bad == BadHostCertificate::Expired {
        p.not_before = rcgen::date_time_ymd(2019, 1, 1);
        p.not_after = rcgen::date_time_ymd(2019, 12, 31);
    }
    let cert = if bad == BadHostCertificate::SelfSigned {
        p.self_signed(&key)?
    } else {
        p.signed_by(&key, issuer)?
    };
    Ok((cert.pem(), Zeroizing::new(key.serialize_pem())))
}

impl DevPki {
    /// A PKI like [`generate`](Self::generate) whose host certificate is bad in the way
    /// `bad` says (expired, for another name, self-signed): a terminal must refuse the host.
    pub fn generate_with_bad_host(
        ca_name: &str,
        terminal_id: &str,
        bad: BadHostCertificate,
    ) -> Result<Self, PkiError> {
        Ok(Self::assemble(ca_name, terminal_id, &[], |issuer| bad_host(issuer, bad))?.0)
    }

    /// Generates a fresh PKI: CA "`ca_name`", a host certificate and a terminal certificate
    /// whose common name is `terminal_id`.
    pub fn generate(ca_name: &str, terminal_id: &str) -> Result<Self, PkiError> {
        Ok(Self::generate_with_terminals(ca_name, terminal_id, &[])?.0)
    }

    /// Like [`generate`](Self::generate), and also issues a client certificate for each of
    /// `more_terminals` (certificate and key PEM, in order) from the same CA.
    #[allow(clippy::type_complexity)]
    pub fn generate_with_terminals(
        ca_name: &str,
        terminal_id: &str,
        more_terminals: &[&str],
    ) -> Result<(Self, Vec<(String, Zeroizing<String>)>), PkiError> {
        Self::assemble(ca_name, terminal_id, more_terminals, |issuer| {
            leaf(
                issuer,
                "localhost",
                vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
                true,
            )
        })
    }

    /// A CA, the host certificate `host` issues with it, the terminal's certificate and one
    /// for each of `more_terminals`.
    #[allow(clippy::type_complexity)]
    fn assemble(
        ca_name: &str,
        terminal_id: &str,
        more_terminals: &[&str],
        host: impl FnOnce(&Issuer<'_, KeyPair>) -> Result<(String, Zeroizing<String>), PkiError>,
    ) -> Result<(Self, Vec<(String, Zeroizing<String>)>), PkiError> {
        let (ca_cert, ca_key, issuer) = ca(ca_name)?;
        let mut extra = Vec::new();
        for id in more_terminals {
            extra.push(leaf(&issuer, &format!("terminal {id}"), Vec::new(), false)?);
        }
        let (host_cert, host_key) = host(&issuer)?;
        let (terminal_cert, terminal_key) = leaf(
            &issuer,
            &format!("terminal {terminal_id}"),
            Vec::new(),
            false,
        )?;
        Ok((
            DevPki {
                ca_cert,
                ca_key,
                host_cert,
                host_key,
                terminal_cert,
                terminal_key,
            },
            extra,
        ))
    }

    /// True if `dir` holds a complete PKI.
    pub fn exists(dir: &Path) -> bool {
        FILES.iter().all(|f| dir.join(f).is_file())
    }

    /// Writes the six PEM files into `dir` (created if needed); keys get mode 0600.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PkiError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let contents: [&str; 6] = [
            &self.ca_cert,
            &self.ca_key,
            &self.host_cert,
            &self.host_key,
            &self.terminal_cert,
            &self.terminal_key,
        ];
        for (name, text) in FILES.iter().zip(contents) {
            let path = dir.join(name);
            write_private(&path, text.as_bytes(), name.ends_with(".key")).map_err(io(&path))?;
        }
        Ok(())
    }

    /// Reads the six PEM files from `dir`.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| PkiError::Io { path, source })
        };
        Ok(DevPki {
            ca_cert: read("ca.pem")?,
            ca_key: Zeroizing::new(read("ca.key")?),
            host_cert: read("host.pem")?,
            host_key: Zeroizing::new(read("host.key")?),
            terminal_cert: read("terminal.pem")?,
            terminal_key: Zeroizing::new(read("terminal.key")?),
        })
    }

    /// Loads the PKI in `dir`, generating and saving one first if it is not there. Returns
    /// the PKI and whether it was just created.
    pub fn load_or_generate(dir: &Path, terminal_id: &str) -> Result<(Self, bool), PkiError> {
        if Self::exists(dir) {
            return Ok((Self::load(dir)?, false));
        }
        let pki = Self::generate("Kassa Development Acquirer CA", terminal_id)?;
        pki.save(dir)?;
        Ok((pki, true))
    }

    /// The host's rustls configuration: its certificate, and client certificates required and
    /// verified against `client_ca_pem` (normally this PKI's own CA).
    pub fn host_server_config(&self, client_ca_pem: &str) -> Result<ServerConfig, PkiError> {
        self.host_server_config_versions(
            client_ca_pem,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
        )
    }

    /// [`host_server_config`](Self::host_server_config) offering only `versions`.
    pub fn host_server_config_versions(
        &self,
        client_ca_pem: &str,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<ServerConfig, PkiError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
            roots.add(c.map_err(|e| PkiError::Pem(format!("client CA: {e}")))?)?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| PkiError::Pem(format!("client verifier: {e}")))?;
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.host_cert.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| PkiError::Pem(format!("host certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(self.host_key.as_bytes())
            .map_err(|e| PkiError::Pem(format!("host key: {e}")))?;
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        cfg.alpn_protocols = Vec::new();
        Ok(cfg)
    }

    /// The terminal's credentials for `acquirer::Link`.
    pub fn terminal_credentials(&self) -> acquirer::Credentials {
        acquirer::Credentials {
            ca_pem: self.ca_cert.as_bytes().to_vec(),
            cert_pem: self.terminal_cert.as_bytes().to_vec(),
            key_pem: Zeroizing::new(self.terminal_key.as_bytes().to_vec()),
        }
    }
}

/// Writes one extra terminal's certificate and key as `terminal-<id>.pem` / `.key`.
pub fn save_terminal(dir: &Path, id: &str, cert: &str, key: &str) -> Result<(), PkiError> {
    for (name, text, secret) in [
        (format!("terminal-{id}.pem"), cert, false),
        (format!("terminal-{id}.key"), key, true),
    ] {
        let path = dir.join(name);
        write_private(&path, text.as_bytes(), secret)
            .map_err(|source| PkiError::Io { path, source })?;
    }
    Ok(())
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8], secret: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8], _secret: bool) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (pki, created) = DevPki::load_or_generate(dir.path(), "KASSA001").unwrap();
        assert!(created);
        assert!(pki.ca_cert.starts_with("-----BEGIN CERTIFICATE-----"));
        let (again, created) = DevPki::load_or_generate(dir.path(), "KASSA001").unwrap();
        assert!(!created);
        assert_eq!(again.terminal_cert, pki.terminal_cert);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("terminal.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        pki.host_server_config(&pki.ca_cert).unwrap();
        acquirer::link::client_config(&pki.terminal_credentials(), false).unwrap();
        assert_eq!(format!("{pki:?}"), "DevPki(<certificates and keys hidden>)");
    }
}
