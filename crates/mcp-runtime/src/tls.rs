//! TLS on both sides of a service: serving HTTPS (certificate files read again when they change,
//! optional or required client certificates whose name becomes the caller) and the HTTPS client
//! settings a service uses to call another (extra CA, client certificate).
//!
//! Serving: [`TlsListener`] accepts TCP connections and runs each handshake in its own task, so one
//! slow or hostile client never holds up the accept loop. A plain-HTTP request on the TLS port is
//! answered with a readable 400 instead of a reset. The certificate is resolved per handshake by
//! [`CertFiles`], which compares the files' stamps (inode, size, modification time) with the ones
//! it loaded and loads them again when they differ; a pair that does not load (a renewal caught
//! half-written) keeps the previous certificate until the files change again.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use axum::serve::Listener;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::{ClientAuth, ServerConfig, TlsVersion};
use crate::files::FileStamp;

/// Longest a client may take from connecting to finishing its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One crypto provider for every listener and client of the process (aws-lc-rs, the one reqwest's
/// rustls uses too).
static PROVIDER: LazyLock<Arc<CryptoProvider>> =
    LazyLock::new(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));

/// Errors from TLS files and settings. Each names the setting and the file; none carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read {setting} {path}: {source}")]
    Read {
        setting: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{setting} {path}: {message}")]
    Invalid {
        setting: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("TLS settings: {0}")]
    Setup(String),
}

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        setting,
        path: path.to_owned(),
        source,
    })
}

fn invalid(setting: &'static str, path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::Invalid {
        setting,
        path: path.to_owned(),
        message: message.into(),
    }
}

/// The certificates of a PEM file (at least one).
fn load_certs(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_certs(setting, path, &read(setting, path)?)
}

/// The certificates in `pem`, the contents of `path` (at least one).
fn parse_certs(
    setting: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(setting, path, format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(invalid(setting, path, "holds no CERTIFICATE block"));
    }
    Ok(certs)
}

fn load_key(setting: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    parse_key(setting, path, &read(setting, path)?)
}

/// The private key in `pem`, the contents of `path`.
fn parse_key(
    setting: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<PrivateKeyDer<'static>, TlsError> {
    // The parser's message never includes the key's bytes.
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
        invalid(
            setting,
            path,
            "holds no private key (a PKCS#8, PKCS#1 or SEC1 PEM block)",
        )
    })
}

/// The file's stamp now; `None` while it cannot be read.
fn stamp(path: &Path) -> Option<FileStamp> {
    FileStamp::of(path).ok()
}

/// A served certificate and key, loaded again when their files change.
#[derive(Debug)]
pub(crate) struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    service: String,
    current: Mutex<Current>,
}

#[derive(Debug)]
struct Current {
    stamps: (Option<FileStamp>, Option<FileStamp>),
    key: Arc<CertifiedKey>,
}

impl CertFiles {
    /// Loads the pair now: a service does not start with a certificate it cannot serve.
    pub(crate) fn load(cert: &Path, key: &Path, service: &str) -> Result<Self, TlsError> {
        let stamps = (stamp(cert), stamp(key));
        let loaded = Self::read_pair(cert, key)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            service: service.to_owned(),
            current: Mutex::new(Current {
                stamps,
                key: Arc::new(loaded),
            }),
        })
    }

    fn read_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
        let chain = load_certs("tls_cert_file", cert)?;
        let der = load_key("tls_key_file", key)?;
        CertifiedKey::from_der(chain, der, &PROVIDER).map_err(|e| {
            invalid(
                "tls_key_file",
                key,
                format!("does not fit tls_cert_file {} ({e})", cert.display()),
            )
        })
    }

    /// The certificate to serve now, loaded again first when a file changed.
    fn now(&self) -> Arc<CertifiedKey> {
        let mut cur = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let stamps = (stamp(&self.cert), stamp(&self.key));
        if stamps != cur.stamps && stamps.0.is_some() && stamps.1.is_some() {
            // Remember the stamps either way: a pair that does not load is tried again only
            // once a file changes again, not on every handshake.
            cur.stamps = stamps;
            match Self::read_pair(&self.cert, &self.key) {
                Ok(k) => {
                    cur.key = Arc::new(k);
                    tracing::info!(
                        message = "Serving the renewed TLS certificate.",
                        service = %self.service,
                        cert = %self.cert.display(),
                    );
                }
                Err(e) => tracing::warn!(
                    message = "TLS certificate files changed but do not load; still serving the previous certificate.",
                    service = %self.service,
                    error = %e,
                ),
            }
        }
        cur.key.clone()
    }
}

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.now())
    }
}

/// The rustls server settings of a TLS listener, from `[server]` (`None` when TLS is off).
pub(crate) fn server_config(
    server: &ServerConfig,
    service: &str,
) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    let (Some(cert), Some(key)) = (&server.tls_cert_file, &server.tls_key_file) else {
        return Ok(None);
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match server.tls_min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder = rustls::ServerConfig::builder_with_provider(PROVIDER.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let builder = match (server.tls_client_auth, &server.tls_client_ca_file) {
        (ClientAuth::Off, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(TlsError::Setup(
                "tls_client_auth needs tls_client_ca_file".to_owned(),
            ));
        }
        (mode, Some(ca)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in load_certs("tls_client_ca_file", ca)? {
                roots.add(c).map_err(|e| {
                    invalid("tls_client_ca_file", ca, format!("not a usable CA ({e})"))
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), PROVIDER.clone());
            let verifier = if mode == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| invalid("tls_client_ca_file", ca, e.to_string()))?,
            )
        }
    };
    let files = CertFiles::load(cert, key, service)?;
    let mut cfg = builder.with_cert_resolver(Arc::new(files));
    // The HTTP server speaks HTTP/1.1 (MCP's streamable HTTP and SSE need nothing else).
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(cfg)))
}

/// Accepts TCP connections and hands out those that completed a TLS handshake.
pub(crate) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    pub(crate) fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            tcp,
            acceptor: TlsAcceptor::from(config),
            handshakes: JoinSet::new(),
        }
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                (tcp, addr) = Listener::accept(&mut self.tcp) => {
                    // See `bind`: small MCP frames must not wait for Nagle.
                    let _ = tcp.set_nodelay(true);
                    self.handshakes.spawn(handshake(self.acceptor.clone(), tcp, addr));
                }
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    addr: SocketAddr,
) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] != TLS_HANDSHAKE_RECORD => {
            refuse_plain_http(tcp).await;
            return None;
        }
        Ok(Ok(1)) => {}
        _ => return None,
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some((stream, addr)),
        Ok(Err(e)) => {
            tracing::info!(message = "TLS handshake refused.", peer = %addr, error = %e);
            None
        }
        Err(_) => {
            tracing::info!(message = "TLS handshake timed out.", peer = %addr);
            None
        }
    }
}

/// Answers a plain-HTTP request on the TLS port with a 400 that says what to do.
async fn refuse_plain_http(mut tcp: TcpStream) {
    // Read what the client sent first: closing a socket with unread data resets it, and the
    // client would see "connection reset" instead of the answer.
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buf)).await;
    let body = "This port serves HTTPS only: use an https:// URL.\n";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(answer.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

/// Who is on the other end of a TLS connection: when it presented a verified client certificate,
/// the certificate's name (its first DNS subject alternative name).
#[derive(Debug, Clone)]
pub struct TlsPeer {
    pub certificate_name: Option<String>,
}

impl TlsPeer {
    /// The peer of an accepted TLS connection.
    pub(crate) fn of(io: &TlsStream<TcpStream>) -> Self {
        let (_, conn) = io.get_ref();
        let certificate_name = conn
            .peer_certificates()
            .and_then(<[_]>::first)
            .and_then(certificate_name);
        Self { certificate_name }
    }
}

/// The first DNS subject alternative name of a certificate.
fn certificate_name(cert: &CertificateDer<'_>) -> Option<String> {
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    cert.valid_dns_names().next().map(str::to_owned)
}

/// How a service calls others over HTTPS: CA bundle trusted besides the system roots, and the
/// client certificate it presents. Unset fields fall back to `[server]`'s `tls_ca_file`,
/// `tls_client_cert_file` and `tls_client_key_file`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl ClientTls {
    /// The outbound settings of `[server]`.
    pub fn from_server(server: &ServerConfig) -> Self {
        Self {
            ca_file: server.tls_ca_file.clone(),
            cert_file: server.tls_client_cert_file.clone(),
            key_file: server.tls_client_key_file.clone(),
        }
    }

    /// These settings, with unset fields taken from `defaults` (the certificate and key as a pair).
    pub fn or(&self, defaults: &Self) -> Self {
        let (cert_file, key_file) = if self.cert_file.is_some() || self.key_file.is_some() {
            (self.cert_file.clone(), self.key_file.clone())
        } else {
            (defaults.cert_file.clone(), defaults.key_file.clone())
        };
        Self {
            ca_file: self.ca_file.clone().or_else(|| defaults.ca_file.clone()),
            cert_file,
            key_file,
        }
    }

    /// A reqwest client builder that trusts the system roots plus `ca_file` and presents the
    /// client certificate, when set. Reads the files now, so a bad file is reported at start-up.
    pub fn builder(&self) -> Result<reqwest::ClientBuilder, TlsError> {
        let mut b = reqwest::Client::builder();
        if let Some(ca) = &self.ca_file {
            let pem = read("ca_file", ca)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| invalid("ca_file", ca, format!("not a PEM CA bundle ({e})")))?;
            if certs.is_empty() {
                return Err(invalid("ca_file", ca, "holds no CERTIFICATE block"));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        match (&self.cert_file, &self.key_file) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                // Each file is read once and checked on its own, for an error that names the
                // right one; reqwest takes the two as one PEM buffer.
                let mut pem = read("client_cert_file", cert)?;
                parse_certs("client_cert_file", cert, &pem)?;
                let key_pem = read("client_key_file", key)?;
                parse_key("client_key_file", key, &key_pem)?;
                pem.push(b'\n');
                pem.extend(key_pem);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|_| {
                    invalid(
                        "client_key_file",
                        key,
                        "does not make a client identity with client_cert_file",
                    )
                })?;
                b = b.identity(identity);
            }
            _ => {
                return Err(TlsError::Setup(
                    "client_cert_file and client_key_file go together: set both or neither"
                        .to_owned(),
                ));
            }
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use mcp_test_support::pki::Pki;

    fn pki() -> (tempfile::TempDir, Pki) {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        (dir, pki)
    }

    #[test]
    fn a_certificate_names_its_first_dns_name() {
        let (_d, p) = pki();
        p.issue("master", &["master", "master.mcp.svc"]);
        let certs = load_certs("t", &p.path("master.pem")).unwrap();
        assert_eq!(certificate_name(&certs[0]).as_deref(), Some("master"));
    }

    #[test]
    fn files_that_are_not_pem_are_named_and_no_key_bytes_are_echoed() {
        let (_d, p) = pki();
        std::fs::write(p.path("junk"), "SECRET-CANARY-93 not pem").unwrap();
        let e = load_certs("tls_cert_file", &p.path("junk")).unwrap_err();
        assert!(e.to_string().contains("holds no CERTIFICATE block"), "{e}");
        let e = load_key("tls_key_file", &p.path("junk")).unwrap_err();
        assert!(e.to_string().contains("holds no private key"), "{e}");
        assert!(!e.to_string().contains("SECRET-CANARY-93"), "{e}");
        // A key that does not belong to the certificate.
        p.issue("other", &["localhost"]);
        let e = CertFiles::read_pair(&p.path("server.pem"), &p.path("other.key")).unwrap_err();
        assert!(e.to_string().contains("does not fit tls_cert_file"), "{e}");
        let e = load_certs("tls_cert_file", &p.path("missing.pem")).unwrap_err();
        assert!(e.to_string().contains("cannot read tls_cert_file"), "{e}");
    }

    #[test]
    fn a_changed_pair_is_served_and_a_broken_one_keeps_the_previous() {
        let (_d, p) = pki();
        let files = CertFiles::load(&p.path("server.pem"), &p.path("server.key"), "t").unwrap();
        let first = files.now();
        assert!(
            Arc::ptr_eq(&first, &files.now()),
            "unchanged files: same key"
        );
        // A half-written renewal: the new certificate, the old key.
        p.issue("renewed", &["localhost"]);
        std::fs::copy(p.path("renewed.pem"), p.path("server.pem")).unwrap();
        assert_eq!(
            files.now().cert,
            first.cert,
            "a mismatched pair is not served"
        );
        std::fs::copy(p.path("renewed.key"), p.path("server.key")).unwrap();
        let second = files.now();
        assert_ne!(second.cert, first.cert, "the renewed pair is served");
        assert_eq!(
            second.cert[0].as_ref(),
            load_certs("t", &p.path("renewed.pem")).unwrap()[0].as_ref()
        );
    }

    #[test]
    fn client_settings_fall_back_to_the_server_defaults_as_a_pair() {
        let defaults = ClientTls {
            ca_file: Some("ca".into()),
            cert_file: Some("c".into()),
            key_file: Some("k".into()),
        };
        let own = ClientTls {
            cert_file: Some("own.pem".into()),
            ..ClientTls::default()
        };
        let merged = own.or(&defaults);
        assert_eq!(merged.ca_file.as_deref(), Some(Path::new("ca")));
        assert_eq!(merged.cert_file.as_deref(), Some(Path::new("own.pem")));
        assert_eq!(
            merged.key_file, None,
            "a pair is never mixed from two places"
        );
        assert_eq!(ClientTls::default().or(&defaults), defaults);
    }
}
