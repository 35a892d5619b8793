//! Certificates for the TLS tests, made with rcgen at run time, and the
//! blocking rustls client config of [`Conn`](crate::Conn) for `tls:`.
//!
//! [`Pki`] is a CA with a server certificate for `localhost` and
//! `127.0.0.1` and a client certificate, as PEM files in a temporary
//! directory; [`Pki::issue`] makes more (expired, other names, another CA).
//! In the `contract_tls` test binary (or with `TESTS_TRANSPORT=tls`),
//! [`ServerProcess::tcp`](crate::ServerProcess::tcp) serves `tls:` with
//! [`shared`]'s files, so the contract suite runs unchanged over TLS.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// A test CA and the certificates it issued, in a temporary directory.
pub struct Pki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM): what clients trust, and mutual TLS's client CA.
    pub ca: PathBuf,
    /// The server's certificate, for `localhost` and `127.0.0.1`.
    pub server: Issued,
    /// A client certificate: subject `CN=test client, O=rpc tests`, SANs
    /// `DNS:client.test`, `email:client@rpc.test`.
    pub client: Issued,
}

/// The validity of an issued certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Valid from 1975 to 4096.
    Current,
    /// Valid only in 2000.
    Expired,
}

impl Pki {
    /// A new CA named `name`, with a server and a client certificate, in a
    /// temporary directory removed on drop.
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("rpc-tls-")
            .tempdir()
            .expect("temp dir");
        Self::in_dir(name, dir)
    }

    fn in_dir(name: &str, dir: tempfile::TempDir) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.pem()).expect("write CA");
        let issuer = Issuer::new(params, key);
        let mut pki = Pki {
            dir,
            issuer,
            ca,
            server: Issued {
                cert: PathBuf::new(),
                key: PathBuf::new(),
            },
            client: Issued {
                cert: PathBuf::new(),
                key: PathBuf::new(),
            },
        };
        pki.server = pki.issue("server", &["localhost", "127.0.0.1"], Validity::Current);
        pki.client = pki.issue_client("client", "test client");
        pki
    }

    /// The directory of the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A server certificate for `names` (DNS names or IP addresses),
    /// written as `STEM.pem` and `STEM.key`.
    pub fn issue(&self, stem: &str, names: &[&str], validity: Validity) -> Issued {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, stem);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if validity == Validity::Expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2000, 12, 31);
        }
        self.write(stem, &params)
    }

    /// A client certificate whose subject is `CN=COMMON_NAME, O=rpc tests`.
    pub fn issue_client(&self, stem: &str, common_name: &str) -> Issued {
        let mut params = CertificateParams::new(vec!["client.test".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "rpc tests");
        params.subject_alt_names.push(rcgen::SanType::Rfc822Name(
            "client@rpc.test".try_into().expect("ia5 string"),
        ));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.write(stem, &params)
    }

    fn write(&self, stem: &str, params: &CertificateParams) -> Issued {
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let issued = Issued {
            cert: self.dir.path().join(format!("{stem}.pem")),
            key: self.dir.path().join(format!("{stem}.key")),
        };
        std::fs::write(&issued.cert, cert.pem()).expect("write cert");
        std::fs::write(&issued.key, key.serialize_pem()).expect("write key");
        issued
    }

    /// `RPC_TLS_CERT` and `RPC_TLS_KEY` for the server certificate.
    pub fn server_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RPC_TLS_CERT", self.server.cert.display().to_string()),
            ("RPC_TLS_KEY", self.server.key.display().to_string()),
        ]
    }

    /// A blocking rustls client config trusting this CA, presenting `client`
    /// when given.
    pub fn client_config(&self, client: Option<&Issued>) -> Arc<rustls::ClientConfig> {
        client_config(&self.ca, client)
    }
}

/// A rustls client config (ring, TLS 1.2 and 1.3) trusting the CA file `ca`.
pub fn client_config(ca: &Path, client: Option<&Issued>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let config = match client {
        Some(issued) => {
            let chain = CertificateDer::pem_file_iter(&issued.cert)
                .expect("cert file")
                .collect::<Result<Vec<_>, _>>()
                .expect("cert PEM");
            let key = PrivateKeyDer::from_pem_file(&issued.key).expect("key PEM");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client certificate")
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// The certificates of this test process, made once: what
/// `TESTS_TRANSPORT=tls` servers present and [`Conn`](crate::Conn) trusts.
///
/// A static is never dropped, so its directory is named after the process
/// (`rpc-tls-shared-PID`) and those of processes that have exited are
/// removed when the next one starts (Linux, where `/proc` tells).
pub fn shared() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        const PREFIX: &str = "rpc-tls-shared-";
        let tmp = std::env::temp_dir();
        if Path::new("/proc/self").exists() {
            for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
                let name = entry.file_name();
                let pid = name.to_str().and_then(|n| n.strip_prefix(PREFIX));
                if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = tmp.join(format!("{PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("shared PKI dir");
        let dir = tempfile::TempDir::with_prefix_in("pki-", &dir).expect("temp dir");
        Pki::in_dir("rpc tests CA", dir)
    })
}

/// Whether the TCP helpers serve and connect over TLS: in the test binary
/// `contract_tls` (cargo names it `contract_tls-HASH`), or with
/// `TESTS_TRANSPORT=tls` in the environment (any suite).
pub fn transport_is_tls() -> bool {
    static TLS: OnceLock<bool> = OnceLock::new();
    *TLS.get_or_init(|| {
        let in_contract_tls = std::env::current_exe().ok().is_some_and(|exe| {
            exe.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("contract_tls-"))
        });
        in_contract_tls || std::env::var("TESTS_TRANSPORT").is_ok_and(|t| t == "tls")
    })
}
