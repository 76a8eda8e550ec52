//! Outbound https for this crate (identity providers, upstream OAuth
//! providers, client metadata documents): one TLS provider for the process,
//! the system's roots, and any extra roots the operator trusts.

use std::sync::OnceLock;

/// Extra root certificates, set once at start.
static EXTRA_ROOTS: OnceLock<Vec<reqwest::Certificate>> = OnceLock::new();

/// Makes `ring` the process's TLS provider, once; a provider installed
/// earlier stays.
pub fn install_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Trusts these PEM root certificates (a private CA) beside the system's
/// for every outbound https request of this crate. Only the first call
/// counts; call it at start.
pub fn trust_extra_roots(pems: &[Vec<u8>]) -> Result<(), String> {
    let mut roots = Vec::new();
    for pem in pems {
        roots.extend(reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("not PEM certificates: {e}"))?);
    }
    let _ = EXTRA_ROOTS.set(roots);
    Ok(())
}

/// A client builder with the provider installed and the extra roots added.
pub(crate) fn client_builder() -> reqwest::ClientBuilder {
    install_tls();
    let mut builder = reqwest::Client::builder();
    for cert in EXTRA_ROOTS.get().into_iter().flatten() {
        builder = builder.add_root_certificate(cert.clone());
    }
    builder
}
