//! Bifrost's TLS certificate: given files, or a self-signed one made on first start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// The certificate chain and key Bifrost serves.
pub struct Identity {
    /// Chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Private key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// SHA-256 of the leaf certificate: 32 upper-case hex pairs joined by colons.
    pub fn fingerprint(&self) -> String {
        let der = self.chain.first().map(|c| c.as_ref()).unwrap_or_default();
        Sha256::digest(der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Reads a PEM chain and key.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let pem = std::fs::read(cert)
            .with_context(|| format!("cannot read certificate {}", cert.display()))?;
        let chain = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{} is not a PEM certificate", cert.display()))?;
        anyhow::ensure!(
            !chain.is_empty(),
            "{} holds no PEM certificate",
            cert.display()
        );
        let pem =
            std::fs::read(key).with_context(|| format!("cannot read key {}", key.display()))?;
        let key = rustls_pemfile::private_key(&mut pem.as_slice())
            .with_context(|| format!("{} is not a PEM private key", key.display()))?
            .with_context(|| format!("{} holds no private key", key.display()))?;
        Ok(Self { chain, key })
    }

    /// Loads the self-signed certificate in `dir`, making it on first use for `names`.
    pub fn self_signed(dir: &Path, names: &[String]) -> anyhow::Result<Self> {
        let (cert, key) = (dir.join("tls-cert.pem"), dir.join("tls-key.pem"));
        if !cert.exists() || !key.exists() {
            let mut params = rcgen::CertificateParams::new(names.to_vec())
                .context("invalid certificate name")?;
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "Bifrost");
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::days(1);
            params.not_after = now + time::Duration::days(3652);
            let pair = rcgen::KeyPair::generate().context("cannot make a key pair")?;
            let made = params
                .self_signed(&pair)
                .context("cannot make the certificate")?;
            write_private(&key, pair.serialize_pem().as_bytes())?;
            std::fs::write(&cert, made.pem())
                .with_context(|| format!("cannot write {}", cert.display()))?;
        }
        Self::load(&cert, &key)
    }

    /// A rustls server config serving this identity with HTTP/2 and HTTP/1.1.
    pub fn server_config(self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain, self.key)
            .context("the certificate does not match its key")?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Writes a secret file readable only by its owner.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Where the given certificate files are, if both were given.
pub fn given(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some((c, k))),
        (None, None) => Ok(None),
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    }
}
