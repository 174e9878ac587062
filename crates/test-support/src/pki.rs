//! A test PKI made with rcgen: a CA, a server certificate for loopback, client certificates, and a
//! second CA nobody trusts, written as PEM files into a directory of the test's own.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A CA and the certificates it signed, as files in `dir`.
pub struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// Makes a CA (`ca.pem`) and a server certificate (`server.pem`, `server.key`) for
    /// `localhost` and `127.0.0.1` in `dir`.
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("pki dir");
        let (issuer, ca_pem) = ca("mcp test CA");
        std::fs::write(dir.join("ca.pem"), ca_pem).expect("write ca.pem");
        let pki = Self {
            dir: dir.to_owned(),
            issuer,
        };
        pki.issue("server", &["localhost", "127.0.0.1"]);
        pki
    }

    /// The file `name` in the PKI's directory (`ca.pem`, `server.pem`, `server.key`, ...).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Signs a certificate for `names` (DNS names or IP addresses; the first one names a client)
    /// and writes `<file>.pem` and `<file>.key`.
    pub fn issue(&self, file: &str, names: &[&str]) {
        let key = KeyPair::generate().expect("key");
        let params =
            CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        std::fs::write(self.dir.join(format!("{file}.pem")), cert.pem()).expect("write cert");
        std::fs::write(self.dir.join(format!("{file}.key")), key.serialize_pem())
            .expect("write key");
    }

    /// A certificate for `names` signed by a CA nobody trusts, as `<file>.pem` and `<file>.key`.
    pub fn issue_untrusted(&self, file: &str, names: &[&str]) {
        let (issuer, _) = ca("untrusted test CA");
        let key = KeyPair::generate().expect("key");
        let params =
            CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.signed_by(&key, &issuer).expect("sign");
        std::fs::write(self.dir.join(format!("{file}.pem")), cert.pem()).expect("write cert");
        std::fs::write(self.dir.join(format!("{file}.key")), key.serialize_pem())
            .expect("write key");
    }
}

fn ca(name: &str) -> (Issuer<'static, KeyPair>, String) {
    let key = KeyPair::generate().expect("ca key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("self-sign ca");
    (Issuer::new(params, key), cert.pem())
}

impl Pki {
    /// An HTTPS client builder trusting this CA (besides the system roots) and presenting the
    /// certificate `<cert>.pem` / `<cert>.key` when given.
    pub fn client_builder(&self, cert: Option<&str>) -> reqwest::ClientBuilder {
        let ca = std::fs::read(self.path("ca.pem")).expect("read ca.pem");
        let mut b = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA certificate"));
        if let Some(c) = cert {
            let mut pem = std::fs::read(self.path(&format!("{c}.pem"))).expect("read cert");
            pem.extend(std::fs::read(self.path(&format!("{c}.key"))).expect("read key"));
            b = b.identity(reqwest::Identity::from_pem(&pem).expect("client identity"));
        }
        b
    }
}
