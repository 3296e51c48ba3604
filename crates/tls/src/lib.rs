//! TLS for socksgate: rustls configurations built from PEM files, for TLS listeners (SOCKS
//! inside TLS, optionally with client certificates) and for client hops that reach a proxy
//! over TLS; the user a client certificate names; public-key pins in curl's form.
//!
//! Files are read here, when a configuration is built: at start and at every reload, so a
//! renewed certificate is picked up without a restart.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use sha2::{Digest, Sha256};

pub use rustls;
pub use tokio_rustls;

/// A TLS configuration that could not be built: which file, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// The file at fault, when one is.
    pub path: Option<PathBuf>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}: {}", path.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for TlsError {}

impl TlsError {
    fn file(path: &Path, message: impl fmt::Display) -> Self {
        Self {
            path: Some(path.to_path_buf()),
            message: message.to_string(),
        }
    }

    fn other(message: impl fmt::Display) -> Self {
        Self {
            path: None,
            message: message.to_string(),
        }
    }
}

/// The one crypto provider socksgate uses (ring), whatever else the process links.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file, in order.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| TlsError::file(path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::file(path, error))?;
    if certificates.is_empty() {
        return Err(TlsError::file(path, "no certificate in this file"));
    }
    Ok(certificates)
}

/// The first private key in a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| TlsError::file(path, error))
}

fn root_store(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in load_certificates(path)? {
        roots
            .add(certificate)
            .map_err(|error| TlsError::file(path, error))?;
    }
    Ok(roots)
}

/// A TLS listener's configuration: its certificate chain and key, and, with `client_ca`, a
/// requirement that clients present a certificate issued by one of those authorities.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = load_certificates(cert)?;
    let key_der = load_private_key(key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::other)?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(ca)?), provider())
                    .build()
                    .map_err(|error| TlsError::file(ca, error))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key_der)
        .map_err(|error| TlsError::file(key, format!("does not match the certificate: {error}")))?;
    Ok(Arc::new(config))
}

/// The user a client certificate names: its subject's common name, or the whole subject
/// when it has none.
pub fn certificate_user(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let subject = parsed.subject();
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|name| name.as_str().ok());
    match common_name {
        Some(name) if !name.is_empty() => Some(name.to_owned()),
        _ => Some(subject.to_string()).filter(|subject| !subject.is_empty()),
    }
}

/// How a client checks the proxies it reaches over TLS, and the certificate it presents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// Trust these authorities instead of the system's.
    pub ca: Option<PathBuf>,
    /// Accept only a server whose public key has this SHA-256 digest (curl's
    /// `--proxy-pinnedpubkey sha256//BASE64`); the certificate's issuer is then not checked.
    pub pin: Option<PublicKeyPin>,
    /// A client certificate chain (PEM) to present, with `key`.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key: Option<PathBuf>,
}

/// The SHA-256 digest of a DER SubjectPublicKeyInfo.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKeyPin([u8; 32]);

impl fmt::Debug for PublicKeyPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for PublicKeyPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoded = base64::engine::general_purpose::STANDARD.encode(self.0);
        write!(f, "sha256//{encoded}")
    }
}

impl std::str::FromStr for PublicKeyPin {
    type Err = TlsError;

    /// `sha256//` followed by the base64 digest, as curl writes it.
    fn from_str(text: &str) -> Result<Self, TlsError> {
        let encoded = text
            .strip_prefix("sha256//")
            .ok_or_else(|| TlsError::other("a pin is sha256// followed by a base64 digest"))?;
        let digest = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|error| TlsError::other(format!("pin: {error}")))?;
        let digest: [u8; 32] = digest
            .try_into()
            .map_err(|_| TlsError::other("pin: a SHA-256 digest is 32 bytes"))?;
        Ok(Self(digest))
    }
}

impl PublicKeyPin {
    /// The pin of a certificate's public key.
    pub fn of(certificate: &CertificateDer<'_>) -> Option<Self> {
        let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
        Some(Self(Sha256::digest(parsed.public_key().raw).into()))
    }
}

/// A client configuration for TLS hops.
pub fn client_config(options: &ClientTls) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::other)?;
    let builder = match (&options.pin, &options.ca) {
        (Some(pin), _) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedKey {
                pin: *pin,
                provider: provider(),
            })),
        (None, Some(ca)) => builder.with_root_certificates(root_store(ca)?),
        (None, None) => builder.with_root_certificates(system_roots()?),
    };
    let config = match (&options.cert, &options.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(load_certificates(cert)?, load_private_key(key)?)
            .map_err(|error| TlsError::file(key, error))?,
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(TlsError::other(
                "a client certificate needs both cert and key",
            ))
        }
    };
    Ok(Arc::new(config))
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsError::other(
            "no trusted authorities found on this system: give a CA file",
        ));
    }
    Ok(roots)
}

/// Accepts exactly the server whose public key matches the pin; signatures are still checked,
/// so only the holder of that key can complete the handshake.
#[derive(Debug)]
struct PinnedKey {
    pin: PublicKeyPin,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match PublicKeyPin::of(end_entity) {
            Some(pin) if pin == self.pin => Ok(ServerCertVerified::assertion()),
            Some(pin) => Err(rustls::Error::General(format!(
                "the proxy's public key {pin} does not match the pin {}",
                self.pin
            ))),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A connection that may be wrapped in TLS: `P` as it is, or `T`, a TLS stream around it.
/// The server's client connections and the client's chains both take this shape.
pub enum MaybeTls<P, T> {
    /// Plain.
    Plain(P),
    /// TLS (boxed: its state is large, and plain connections should not carry its room).
    Tls(Box<T>),
}

impl<P, T> tokio::io::AsyncRead for MaybeTls<P, T>
where
    P: tokio::io::AsyncRead + Unpin,
    T: tokio::io::AsyncRead + Unpin,
{
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => std::pin::Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => std::pin::Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<P, T> tokio::io::AsyncWrite for MaybeTls<P, T>
where
    P: tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncWrite + Unpin,
{
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => std::pin::Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => std::pin::Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => std::pin::Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => std::pin::Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => std::pin::Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => std::pin::Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
