//! TLS termination: certificate validation on upload, and the SNI resolver
//! that picks among all uploaded certificates per handshake.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;

use super::{ParsedCertificate, TlsCertificate};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate ready to serve, with what it was parsed to.
#[derive(Clone)]
struct Loaded {
    key: Arc<CertifiedKey>,
    info: ParsedCertificate,
}

fn load(cert_pem: &str, key_pem: &str) -> Result<Loaded, String> {
    let mut chain = Vec::new();
    for item in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        chain.push(item.map_err(|e| format!("the certificate PEM text is not valid: {e}"))?);
    }
    let Some(leaf) = chain.first() else {
        return Err("no certificate found in the PEM text".into());
    };
    let info = describe(leaf)?;
    let key = match PrivateKeyDer::from_pem_slice(key_pem.as_bytes()) {
        Ok(k) => k,
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            return Err("no private key found in the PEM text (expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)".into())
        }
        Err(e) => return Err(format!("the private key PEM text is not valid: {e}")),
    };
    let signing = provider().key_provider.load_private_key(key).map_err(|_| {
        "the private key is not a supported RSA, ECDSA (P-256, P-384) or Ed25519 key".to_string()
    })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err("the private key does not belong to the certificate".into())
        }
        // The key cannot tell its public half: nothing to compare, accept.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => return Err(format!("the certificate could not be read: {e}")),
    }
    Ok(Loaded {
        key: Arc::new(certified),
        info,
    })
}

/// Names (DNS SANs, else the subject's common name) and validity of a leaf.
fn describe(leaf: &CertificateDer<'_>) -> Result<ParsedCertificate, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| format!("the certificate could not be read: {e}"))?;
    let mut domains = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(d) = name {
                let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
                if !d.is_empty() && !domains.contains(&d) {
                    domains.push(d);
                }
            }
        }
    }
    if domains.is_empty() {
        if let Some(cn) = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
        {
            domains.push(cn.trim().to_ascii_lowercase());
        }
    }
    if domains.is_empty() {
        return Err("the certificate names no DNS domain (no subject alternative name)".into());
    }
    let validity = cert.validity();
    Ok(ParsedCertificate {
        domains,
        not_before: validity.not_before.timestamp().saturating_mul(1000),
        not_after: validity.not_after.timestamp().saturating_mul(1000),
    })
}

/// Validation on upload: the PEM chain parses, the private key parses and
/// belongs to the leaf certificate. Returns the leaf's names and validity.
pub fn parse_certificate(cert_pem: &str, key_pem: &str) -> Result<ParsedCertificate, String> {
    load(cert_pem, key_pem).map(|l| l.info)
}

/// The certificates of one `apply`, indexed by name.
#[derive(Default)]
struct Store {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    fallback: Option<Arc<CertifiedKey>>,
}

impl Store {
    /// `cache` holds the certificates of the previous apply by content, so
    /// an apply that changes routes only does not parse every key again.
    fn compile(certs: &[TlsCertificate], cache: &mut HashMap<[u8; 32], Loaded>) -> Store {
        let mut loaded: Vec<Loaded> = Vec::with_capacity(certs.len());
        let mut fresh = HashMap::with_capacity(certs.len());
        for c in certs {
            let digest: [u8; 32] = Sha256::new()
                .chain_update(c.cert_pem.as_bytes())
                .chain_update([0u8])
                .chain_update(c.key_pem.as_bytes())
                .finalize()
                .into();
            let result = match cache.remove(&digest) {
                Some(l) => Ok(l),
                None => load(&c.cert_pem, &c.key_pem),
            };
            match result {
                Ok(l) => {
                    fresh.insert(digest, l.clone());
                    loaded.push(l);
                }
                Err(e) => {
                    tracing::warn!(certificate = %c.name, team = %c.team, error = %e, "certificate skipped")
                }
            }
        }
        *cache = fresh;
        let mut store = Store {
            fallback: loaded.first().map(|l| l.key.clone()),
            ..Store::default()
        };
        // When several certificates cover a name, serve the one valid now
        // that lasts longest: a renewal wins over the certificate it renews.
        let now = super::upstream::now_ms() as i64;
        loaded.sort_by_key(|l| {
            let current = l.info.not_before <= now && now <= l.info.not_after;
            std::cmp::Reverse((current, l.info.not_after))
        });
        for l in &loaded {
            for d in &l.info.domains {
                let (map, key) = match d.strip_prefix("*.") {
                    Some(suffix) => (&mut store.wildcard, suffix),
                    None => (&mut store.exact, d.as_str()),
                };
                map.entry(key.to_string()).or_insert_with(|| l.key.clone());
            }
        }
        store
    }

    fn resolve(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(k) = self.exact.get(&name) {
                return Some(k.clone());
            }
            // A wildcard covers exactly one label.
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(k) = self.wildcard.get(parent) {
                    return Some(k.clone());
                }
            }
        }
        self.fallback.clone()
    }
}

/// Chooses the certificate by SNI; swapped whole by `apply`.
#[derive(Default)]
pub(crate) struct Resolver {
    store: RwLock<Arc<Store>>,
    cache: Mutex<HashMap<[u8; 32], Loaded>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolver {
    pub(crate) fn set(&self, certs: &[TlsCertificate]) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let store = Arc::new(Store::compile(certs, &mut cache));
        *self.store.write().unwrap_or_else(|e| e.into_inner()) = store;
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let store = self.store.read().unwrap_or_else(|e| e.into_inner()).clone();
        store.resolve(hello.server_name())
    }
}

pub(crate) fn server_config(resolver: Arc<Resolver>) -> std::io::Result<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
