//! TLS 1.3 for `https://` targets: rustls with the ring provider (smaller than aws-lc-rs, and
//! builds for static musl with musl-gcc alone).
//!
//! Nothing here runs unless an https target exists: the system's CA files are read at the first
//! https attempt, once per process. A `ca=` file is read at every attempt, because a sidecar
//! may write its certificate to the shared volume only once it has started (Elasticsearch 8
//! does); the client configuration is rebuilt only when that file changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_rustls::TlsConnector;

use super::http::Io;
use super::target::Http;

/// Where Linux distributions keep their CA bundle (the list Go's crypto/x509 reads).
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL 6
    "/etc/ssl/ca-bundle.pem",             // OpenSUSE
    "/etc/pki/tls/cacert.pem",            // OpenELEC
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
    "/etc/ssl/cert.pem",                  // Alpine, macOS
];

/// The TLS session over `stream`, the certificate verified as the target says.
pub(crate) async fn connect(
    stream: Box<dyn Io>,
    host: &str,
    h: &Http,
) -> Result<Box<dyn Io>, String> {
    let config = config(h)?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| format!("TLS: '{host}' is not a valid server name"))?;
    match TlsConnector::from(config).connect(name, stream).await {
        Ok(tls) => Ok(Box::new(tls)),
        Err(e) => Err(reason(&e, host)),
    }
}

/// What went wrong in the handshake, in the user's terms.
fn reason(e: &std::io::Error, host: &str) -> String {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return format!("TLS: {e}");
    };
    match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "TLS: certificate not trusted (give ca= or insecure)".to_owned()
            }
            // webpki's CaUsedAsEndEntity, only reachable through its Debug text: a certificate
            // made by `openssl req -x509` (CA:TRUE) presented by the server itself, i.e. a
            // self-signed one.
            CertificateError::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => {
                "TLS: certificate not trusted (give ca= or insecure)".to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("TLS: certificate not valid for {host} (give insecure, or a URL with a name it holds)")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "TLS: certificate expired (give insecure)".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "TLS: certificate not valid yet (is the clock right? give insecure)".to_owned()
            }
            other => format!("TLS: bad certificate ({other:?}; give ca= or insecure)"),
        },
        // TLS 1.2 support would cost 28 KiB of a binary at its size limit (issue 11).
        rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion)
        | rustls::Error::PeerIncompatible(_) => {
            format!(
                "TLS: the server does not speak TLS 1.3, the only version podvisor speaks ({tls})"
            )
        }
        // What a plain HTTP server's answer looks like to a TLS client.
        rustls::Error::InvalidMessage(_) => {
            format!("TLS: the server does not speak TLS ({tls}; is it http://?)")
        }
        other => format!("TLS: {other}"),
    }
}

/// The ring provider, made once.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    // Deprecated since rustls 0.23.48 only for lacking post-quantum key exchange, which guards
    // recorded traffic against future decryption: a readiness probe sends nothing secret but
    // Basic credentials to a sidecar in the same pod, and aws-lc-rs (the post-quantum provider)
    // would cost a C/C++ build and several hundred KiB.
    #[allow(deprecated)]
    PROVIDER
        .get_or_init(|| Arc::new(ring::default_provider()))
        .clone()
}

/// The client configuration for a target, built once per (ca file contents, insecure).
fn config(h: &Http) -> Result<Arc<ClientConfig>, String> {
    type Key = (Option<(PathBuf, Vec<u8>)>, bool);
    static BUILT: Mutex<Vec<(Key, Arc<ClientConfig>)>> = Mutex::new(Vec::new());
    let ca = match &h.ca {
        Some(path) => Some((path.clone(), read_ca(path)?)),
        None => None,
    };
    let key = (ca, h.insecure);
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, config)) = built.iter().find(|(k, _)| *k == key) {
        return Ok(config.clone());
    }
    let config = Arc::new(build(&key.0, key.1)?);
    // One entry per target at most, unless a ca= file keeps changing: keep the newest few.
    if built.len() >= 16 {
        built.remove(0);
    }
    built.push((key, config.clone()));
    Ok(config)
}

fn build(ca: &Option<(PathBuf, Vec<u8>)>, insecure: bool) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let verifier = if insecure {
        Verifier {
            webpki: None,
            pinned: Vec::new(),
            provider: provider(),
        }
    } else {
        let mut roots = system_roots().clone();
        if let Some((path, pem)) = ca {
            if add_pem(&mut roots, pem) == 0 {
                return Err(format!(
                    "TLS: no certificate in the ca= file {}",
                    path.display()
                ));
            }
        }
        if roots.is_empty() {
            return Err(format!(
                "TLS: no CA certificates (none of {} exists; give ca= or insecure)",
                SYSTEM_CA_FILES.join(", ")
            ));
        }
        let pinned = ca
            .as_ref()
            .map_or_else(Vec::new, |(_, pem)| certificates(pem));
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| format!("TLS: {e}"))?;
        Verifier {
            webpki: Some(webpki),
            pinned,
            provider: provider(),
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

fn read_ca(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path)
        .map_err(|e| format!("TLS: cannot read the ca= file {}: {e}", path.display()))
}

/// The certificates of a PEM text.
fn certificates(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// The certificates of a PEM text added to `roots`; how many were taken (a self-signed server
/// certificate counts, though webpki may take it as a root only).
fn add_pem(roots: &mut RootCertStore, pem: &[u8]) -> usize {
    let certs = certificates(pem);
    let n = certs.len();
    roots.add_parsable_certificates(certs);
    n
}

/// The system's CA bundle: `SSL_CERT_FILE` (as OpenSSL reads it), else the first of the usual
/// files that exists. Read once.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
        let candidates = from_env
            .into_iter()
            .chain(SYSTEM_CA_FILES.iter().map(PathBuf::from));
        for path in candidates {
            if let Ok(pem) = std::fs::read(&path) {
                let n = add_pem(&mut roots, &pem);
                tracing::debug!("{n} CA certificates from {}", path.display());
                if n > 0 {
                    break;
                }
            }
        }
        roots
    })
}

/// How a server's certificate is checked: by webpki against the roots, except that a
/// certificate found as it is in the `ca=` file is trusted (webpki refuses a certificate that is
/// its own CA as a server's, CaUsedAsEndEntity, and that is what `openssl req -x509` makes for a
/// self-signed sidecar: giving it as `ca=` says "trust this one"); with `insecure` (no webpki)
/// any certificate is accepted. The handshake's signatures are checked in every case, so the
/// session is encrypted to whoever holds the key of the certificate presented.
#[derive(Debug)]
struct Verifier {
    /// None for `insecure`.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    /// The certificates of the `ca=` file.
    pinned: Vec<CertificateDer<'static>>,
    /// The provider, for the signature algorithms.
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.webpki {
            Some(_)
                if self
                    .pinned
                    .iter()
                    .any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                Ok(ServerCertVerified::assertion())
            }
            Some(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
