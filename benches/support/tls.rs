//! A TLS identity for local test upstreams (the broker's benchmark and tests): a throwaway CA
//! and one leaf for the given names, served through tokio-rustls.

use std::sync::Arc;

/// The server side and the CA a client must trust.
pub(crate) struct TestTls {
    /// Accepts TLS with the leaf.
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    /// The CA certificate as a PEM file (for `LATCH_CA_CERT`), removed when dropped.
    pub(crate) ca_file: tempfile::NamedTempFile,
}

/// A new CA and a leaf for `names`.
pub(crate) fn test_tls(names: &[&str]) -> TestTls {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "latch test upstream CA");
    let ca = rcgen::CertifiedIssuer::self_signed(params, ca_key).expect("ca");
    let leaf_key = rcgen::KeyPair::generate().expect("key");
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let leaf = rcgen::CertificateParams::new(names)
        .expect("params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf");
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .expect("cert");
    let mut ca_file = tempfile::NamedTempFile::new().expect("temp");
    std::io::Write::write_all(&mut ca_file, ca.pem().as_bytes()).expect("write");
    TestTls {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        ca_file,
    }
}
