//! PEM files for TLS: certificate chains and private keys, read once at
//! start-up (and on reload), each failure naming the file.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

/// The bytes of `path`; `what` says which file it is (`"certificate"`...).
fn read(what: &str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        Error::Tls(format!(
            "cannot read the TLS {what} {}: {e}",
            path.display()
        ))
    })
}

/// Every certificate in the PEM file `path`, at least one.
pub(crate) fn certificates(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("the TLS {what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "the TLS {what} {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in the PEM file `path`.
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let bytes = read("key", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        Error::Tls(format!(
            "the TLS key {} holds no usable PEM private key: {e}",
            path.display()
        ))
    })
}

/// A root store of every certificate in the PEM file `path`.
pub(crate) fn roots(what: &str, path: &Path) -> Result<rustls::RootCertStore, Error> {
    let mut store = rustls::RootCertStore::empty();
    for cert in certificates(what, path)? {
        store
            .add(cert)
            .map_err(|e| Error::Tls(format!("the TLS {what} {}: {e}", path.display())))?;
    }
    Ok(store)
}

/// The crypto provider of every TLS config here: ring, TLS 1.2 and 1.3.
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// The protocol versions offered and accepted: TLS 1.3 and 1.2, nothing older.
pub(crate) const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
