//! A throwaway public-key infrastructure for TLS tests: an authority, a server certificate
//! for 127.0.0.1 and localhost, and client certificates (valid, expired, or from another
//! authority), written as PEM files into a directory of the test's own.

use std::path::{Path, PathBuf};

use rcgen::{date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pem {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// A certificate authority that signs what the test asks for.
pub struct Authority {
    dir: PathBuf,
    name: String,
    issuer: Issuer<'static, KeyPair>,
    /// The authority's own certificate, PEM: what a peer trusts.
    pub cert: PathBuf,
}

impl Authority {
    /// A new authority named `name`, its files in a fresh directory.
    pub fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "socksgate-pki-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let cert = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&cert, certificate.pem()).unwrap();
        Self {
            dir,
            name: name.to_owned(),
            issuer: Issuer::new(params, key),
            cert,
        }
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A server certificate for 127.0.0.1, ::1 and localhost.
    pub fn server(&self, file_stem: &str) -> Pem {
        let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{} server", self.name));
        self.sign(params, file_stem)
    }

    /// A client certificate whose subject's common name is `user`.
    pub fn client(&self, user: &str) -> Pem {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, user);
        self.sign(params, user)
    }

    /// A client certificate that expired in 2020.
    pub fn expired_client(&self, user: &str) -> Pem {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, user);
        params.not_before = date_time_ymd(2019, 1, 1);
        params.not_after = date_time_ymd(2020, 1, 1);
        self.sign(params, &format!("{user}-expired"))
    }

    fn sign(&self, params: CertificateParams, file_stem: &str) -> Pem {
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        let pem = Pem {
            cert: self.dir.join(format!("{file_stem}.pem")),
            key: self.dir.join(format!("{file_stem}.key")),
        };
        std::fs::write(&pem.cert, certificate.pem()).unwrap();
        std::fs::write(&pem.key, key.serialize_pem()).unwrap();
        pem
    }
}

impl Drop for Authority {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS connection to `proxy` trusting `ca` and presenting `client`'s certificate.
pub async fn tls_with_certificate(
    proxy: std::net::SocketAddr,
    ca: &Authority,
    client: &Pem,
) -> socksgate_tls::tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let options = socksgate_tls::ClientTls {
        ca: Some(ca.cert.clone()),
        cert: Some(client.cert.clone()),
        key: Some(client.key.clone()),
        ..socksgate_tls::ClientTls::default()
    };
    let tls_config = socksgate_tls::client_config(&options).unwrap();
    let tcp = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let name = socksgate_tls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    socksgate_tls::tokio_rustls::TlsConnector::from(tls_config)
        .connect(name, tcp)
        .await
        .unwrap()
}
