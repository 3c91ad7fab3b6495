//! Forward-proxy mode's per-run certificate authority (DESIGN §13): made when the run starts,
//! held only in latch's (locked, non-dumpable) memory, and **name-constrained** to the brokered
//! hosts, so that even its key, were it taken from latch, could not make the command trust a
//! certificate for any other host. It issues one leaf per brokered host, on first use.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CidrSubnet, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, KeyPair, KeyUsagePurpose, NameConstraints,
    SanType,
};
use rustls::ServerConfig;
#[cfg(test)]
use rustls::pki_types::CertificateDer;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::BrokerError;
use crate::core::broker::Host;

/// How long the run CA and its leaves are valid: a run that lasts longer needs a new one.
const VALID_DAYS: i64 = 30;

/// The run's CA and the TLS settings of each host it has issued a leaf for.
pub(super) struct RunCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem: String,
    configs: Mutex<HashMap<Host, Arc<ServerConfig>>>,
}

impl std::fmt::Debug for RunCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunCa(..)")
    }
}

fn failed(e: &rcgen::Error) -> BrokerError {
    BrokerError::Config(format!("cannot make the run's CA: {e}"))
}

fn subtree(host: &Host) -> GeneralSubtree {
    match host.ip() {
        Some(IpAddr::V4(ip)) => GeneralSubtree::IpAddress(CidrSubnet::V4(ip.octets(), [255; 4])),
        Some(IpAddr::V6(ip)) => GeneralSubtree::IpAddress(CidrSubnet::V6(ip.octets(), [255; 16])),
        None => GeneralSubtree::DnsName(host.name().to_owned()),
    }
}

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(VALID_DAYS);
}

impl RunCa {
    /// A new CA whose certificates can name only `hosts`.
    ///
    /// # Errors
    /// [`BrokerError::Config`] if a key or a certificate cannot be made.
    pub(super) fn new(hosts: &[Host]) -> Result<Self, BrokerError> {
        let key = KeyPair::generate().map_err(|e| failed(&e))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| failed(&e))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::CommonName, "latch run CA (this run only)");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let mut permitted: Vec<GeneralSubtree> = Vec::new();
        for host in hosts {
            let subtree = subtree(host);
            if !permitted.contains(&subtree) {
                permitted.push(subtree);
            }
        }
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: permitted,
            excluded_subtrees: Vec::new(),
        });
        validity(&mut params);
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(|e| failed(&e))?;
        let pem = issuer.pem();
        Ok(Self {
            issuer,
            pem,
            configs: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate, PEM (public).
    pub(super) fn pem(&self) -> &str {
        &self.pem
    }

    /// The TLS settings that present a leaf for `host` (made on first use, then kept).
    ///
    /// # Errors
    /// [`BrokerError::Config`] if the leaf cannot be made.
    pub(super) fn server_config(&self, host: &Host) -> Result<Arc<ServerConfig>, BrokerError> {
        let mut configs = self
            .configs
            .lock()
            .map_err(|_| BrokerError::Config("the run CA's cache was poisoned".into()))?;
        if let Some(config) = configs.get(host) {
            return Ok(Arc::clone(config));
        }
        let config = Arc::new(self.leaf_config(host)?);
        configs.insert(host.clone(), Arc::clone(&config));
        Ok(config)
    }

    fn leaf_config(&self, host: &Host) -> Result<ServerConfig, BrokerError> {
        let key = KeyPair::generate().map_err(|e| failed(&e))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| failed(&e))?;
        params.subject_alt_names = vec![match host.ip() {
            Some(ip) => SanType::IpAddress(ip),
            None => SanType::DnsName(
                host.name()
                    .to_owned()
                    .try_into()
                    .map_err(|e: rcgen::Error| failed(&e))?,
            ),
        }];
        params
            .distinguished_name
            .push(DnType::CommonName, host.name());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params);
        let leaf = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| failed(&e))?;
        let chain = vec![leaf.der().clone(), self.issuer.der().clone()];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BrokerError::Config(format!("cannot set up TLS: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| BrokerError::Config(format!("cannot use the leaf for {host}: {e}")))?;
        // HTTP/1.1 only: every request's authority is checked against the tunnel's host, and a
        // client that speaks only h2 fails its handshake instead of sending what is unread.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The DER of the CA certificate.
    #[cfg(test)]
    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a client that trusts only the run CA says of `leaf` for `name`.
    use rustls::client::danger::ServerCertVerifier as _;

    fn verify(ca: &RunCa, leaf: &CertificateDer<'_>, name: &str) -> Result<(), rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der()).expect("root");
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("verifier");
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).expect("name");
        verifier
            .verify_server_cert(leaf, &[], &name, &[], rustls::pki_types::UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn leaves_verify_for_brokered_hosts_and_the_constraints_refuse_any_other() {
        let hosts = [
            Host::parse("api.openai.com").expect("host"),
            Host::parse("10.1.2.3:8443").expect("host"),
        ];
        let ca = RunCa::new(&hosts).expect("ca");
        assert!(ca.pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let config = ca.server_config(&hosts[0]).expect("leaf");
        assert!(Arc::ptr_eq(
            &config,
            &ca.server_config(&hosts[0]).expect("kept")
        ));
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
        let leaf = |host: &Host| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(vec![host.name().to_owned()]).expect("params");
            if let Some(ip) = host.ip() {
                params.subject_alt_names = vec![SanType::IpAddress(ip)];
            }
            params
                .signed_by(&key, &ca.issuer)
                .expect("signed")
                .der()
                .clone()
        };
        verify(&ca, &leaf(&hosts[0]), "api.openai.com").expect("a brokered name verifies");
        verify(&ca, &leaf(&hosts[1]), "10.1.2.3").expect("a brokered address verifies");
        // Even with the CA's own key, a leaf for another host is refused by the client: the
        // name constraints, not latch's good behaviour, keep the CA to the brokered hosts.
        let evil = Host::parse("evil.example").expect("host");
        let refused =
            verify(&ca, &leaf(&evil), "evil.example").expect_err("outside the constraints");
        assert!(
            format!("{refused:?}").contains("NameConstraintViolation"),
            "{refused:?}"
        );
        let other_ip = Host::parse("10.1.2.4").expect("host");
        let refused = verify(&ca, &leaf(&other_ip), "10.1.2.4").expect_err("outside too");
        assert!(
            format!("{refused:?}").contains("NameConstraintViolation"),
            "{refused:?}"
        );
    }
}
