//! `--cluster.tls-config`: Alertmanager's gossip TLS file (`tls_server_config` as in its web
//! config, `tls_client_config` as in Prometheus's `tls_config`), turned into rustls configs for
//! `cluster::TlsTransport`. Relative paths are relative to the file's directory, unknown keys
//! are errors, and a missing `tls_server_config` is refused, as Alertmanager 0.25 does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde::Deserialize;
use web::client::{TlsConfig, TlsVersion};

/// Why the cluster TLS file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterTlsError {
    #[error("read cluster TLS config {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parse cluster TLS config {path}: {msg}")]
    Parse { path: String, msg: String },
    #[error("cluster TLS config {path}: {msg}")]
    Invalid { path: String, msg: String },
}

/// `tls_server_config:` (exporter-toolkit's web TLS settings).
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    #[serde(default)]
    pub cert_file: String,
    #[serde(default)]
    pub key_file: String,
    #[serde(default)]
    pub client_auth_type: String,
    #[serde(default)]
    pub client_ca_file: String,
    #[serde(default)]
    pub client_allowed_sans: Vec<String>,
    #[serde(default)]
    pub min_version: Option<TlsVersion>,
    #[serde(default)]
    pub max_version: Option<TlsVersion>,
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    #[serde(default)]
    pub prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    pub curve_preferences: Vec<String>,
}

/// The whole file.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterTlsConfig {
    #[serde(default)]
    pub tls_server_config: Option<ServerTls>,
    #[serde(default)]
    pub tls_client_config: Option<TlsConfig>,
}

/// What the transport needs.
pub struct Built {
    pub server: Arc<rustls::ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
    pub server_name: Option<String>,
}

fn join(dir: &Path, p: &mut String) {
    if !p.is_empty() && Path::new(p.as_str()).is_relative() {
        *p = dir.join(&*p).display().to_string();
    }
}

/// Reads, checks and builds the file at `path`.
pub fn load(path: &str) -> Result<Built, ClusterTlsError> {
    let text = std::fs::read_to_string(path).map_err(|source| ClusterTlsError::Read {
        path: path.to_string(),
        source,
    })?;
    let dir = Path::new(path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    build(&text, &dir).map_err(|e| match e {
        Failure::Parse(msg) => ClusterTlsError::Parse {
            path: path.to_string(),
            msg,
        },
        Failure::Invalid(msg) => ClusterTlsError::Invalid {
            path: path.to_string(),
            msg,
        },
    })
}

enum Failure {
    Parse(String),
    Invalid(String),
}

fn invalid(m: impl Into<String>) -> Failure {
    Failure::Invalid(m.into())
}

fn build(text: &str, dir: &Path) -> Result<Built, Failure> {
    let cfg: ClusterTlsConfig = if text.trim().is_empty() {
        ClusterTlsConfig::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| Failure::Parse(e.to_string()))?
    };
    let mut server = cfg
        .tls_server_config
        .ok_or_else(|| invalid("missing 'tls_server_config' entry in the TLS configuration"))?;
    let mut client = cfg.tls_client_config.unwrap_or_default();
    for p in [
        &mut server.cert_file,
        &mut server.key_file,
        &mut server.client_ca_file,
    ] {
        join(dir, p);
    }
    for p in [
        &mut client.ca_file,
        &mut client.cert_file,
        &mut client.key_file,
    ] {
        join(dir, p);
    }
    let server_cfg = server_config(&server)?;
    let client_cfg = client_config(&client)?;
    Ok(Built {
        server: Arc::new(server_cfg),
        client: Arc::new(client_cfg),
        server_name: Some(client.server_name).filter(|s| !s.is_empty()),
    })
}

fn versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, Failure> {
    for v in [min, max].into_iter().flatten() {
        if matches!(v, TlsVersion::TLS10 | TlsVersion::TLS11) {
            return Err(invalid(format!(
                "tls_server_config: {v:?} is not supported: vigil speaks TLS 1.2 and 1.3 only"
            )));
        }
    }
    let mut out = Vec::new();
    if min != Some(TlsVersion::TLS13) {
        out.push(&rustls::version::TLS12);
    }
    if max != Some(TlsVersion::TLS12) {
        out.push(&rustls::version::TLS13);
    }
    if out.is_empty() {
        return Err(invalid(
            "tls_server_config: max_version must be greater than or equal to min_version",
        ));
    }
    Ok(out)
}

/// rustls's provider with the key exchanges Alertmanager 0.25 (Go 1.19) offers: X25519, P-256,
/// P-384. rustls would lead with the post-quantum hybrid X25519MLKEM768, whose 1.2 KB key
/// shares (each way) nearly double the bytes of every cluster connection — a push/pull is a new
/// connection, once a minute per node — and which Alertmanager 0.25 cannot negotiate anyway.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
    let mut p = default_provider();
    p.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    Arc::new(p)
}

fn pem_or_file(inline: &str, file: &str, what: &str) -> Result<Option<Vec<u8>>, Failure> {
    if !inline.is_empty() {
        return Ok(Some(inline.as_bytes().to_vec()));
    }
    if file.is_empty() {
        return Ok(None);
    }
    std::fs::read(file)
        .map(Some)
        .map_err(|e| invalid(format!("tls_client_config: {what} {file}: {e}")))
}

fn certs_from(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Failure> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("tls_client_config: {what}: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(format!(
            "tls_client_config: {what}: no PEM certificate found"
        )));
    }
    Ok(certs)
}

/// `tls_client_config` (Prometheus's `tls_config` rules): the CA replaces the system roots,
/// `server_name` is what the transport verifies the peer against (else the peer's IP), and
/// `insecure_skip_verify` accepts any server certificate.
fn client_config(t: &TlsConfig) -> Result<rustls::ClientConfig, Failure> {
    t.validate()
        .map_err(|e| invalid(format!("tls_client_config: {e}")))?;
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(t.min_version, t.max_version)?)
        .map_err(|e| invalid(format!("tls_client_config: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if t.insecure_skip_verify {
        Arc::new(web::client::AcceptAnyCert::new(provider.clone()))
    } else if let Some(ca) = pem_or_file(&t.ca, &t.ca_file, "ca_file")? {
        let mut roots = rustls::RootCertStore::empty();
        for c in certs_from(&ca, "CA")? {
            roots
                .add(c)
                .map_err(|e| invalid(format!("tls_client_config: CA: {e}")))?;
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| invalid(format!("tls_client_config: CA: {e}")))?
    } else {
        Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| invalid(format!("tls_client_config: system roots: {e}")))?,
        )
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match pem_or_file(&t.cert, &t.cert_file, "cert_file")? {
        Some(cert) => {
            let key = pem_or_file(t.key.expose(), &t.key_file, "key_file")?
                .ok_or_else(|| invalid("tls_client_config: client key missing"))?;
            let key = PrivateKeyDer::from_pem_slice(&key)
                .map_err(|e| invalid(format!("tls_client_config: client key: {e}")))?;
            builder
                .with_client_auth_cert(certs_from(&cert, "client certificate")?, key)
                .map_err(|e| invalid(format!("tls_client_config: client certificate: {e}")))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

fn server_config(s: &ServerTls) -> Result<rustls::ServerConfig, Failure> {
    if s.cert_file.is_empty() {
        return Err(invalid("tls_server_config: missing cert_file"));
    }
    if s.key_file.is_empty() {
        return Err(invalid("tls_server_config: missing key_file"));
    }
    for (field, set) in [
        ("cipher_suites", !s.cipher_suites.is_empty()),
        ("curve_preferences", !s.curve_preferences.is_empty()),
        ("client_allowed_sans", !s.client_allowed_sans.is_empty()),
    ] {
        if set {
            return Err(invalid(format!(
                "tls_server_config: {field} is not supported by vigil (rustls picks its own safe set)"
            )));
        }
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&s.cert_file)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(format!("cert_file {}: {e}", s.cert_file)))?;
    if certs.is_empty() {
        return Err(invalid(format!(
            "cert_file {}: no PEM certificate found",
            s.cert_file
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&s.key_file)
        .map_err(|e| invalid(format!("key_file {}: {e}", s.key_file)))?;
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(s.min_version, s.max_version)?)
        .map_err(|e| invalid(format!("tls_server_config: {e}")))?;
    let roots = || -> Result<Arc<rustls::RootCertStore>, Failure> {
        if s.client_ca_file.is_empty() {
            return Err(invalid(format!(
                "tls_server_config: client_auth_type {} needs client_ca_file",
                s.client_auth_type
            )));
        }
        let mut roots = rustls::RootCertStore::empty();
        let cas = CertificateDer::pem_file_iter(&s.client_ca_file)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| invalid(format!("client_ca_file {}: {e}", s.client_ca_file)))?;
        for c in cas {
            roots
                .add(c)
                .map_err(|e| invalid(format!("client_ca_file {}: {e}", s.client_ca_file)))?;
        }
        Ok(Arc::new(roots))
    };
    let verified = |optional: bool| -> Result<Arc<dyn ClientCertVerifier>, Failure> {
        let b =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots()?, provider.clone());
        let b = if optional {
            b.allow_unauthenticated()
        } else {
            b
        };
        b.build()
            .map_err(|e| invalid(format!("client_ca_file {}: {e}", s.client_ca_file)))
    };
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match s.client_auth_type.as_str() {
        "" | "NoClientCert" => {
            if !s.client_ca_file.is_empty() {
                return Err(invalid(
                    "Client CA's have been configured without a Client Auth Policy",
                ));
            }
            None
        }
        "RequestClientCert" => Some(Arc::new(AnyClientCert::new(false, &provider))),
        "RequireAnyClientCert" | "RequireClientCert" => {
            Some(Arc::new(AnyClientCert::new(true, &provider)))
        }
        "VerifyClientCertIfGiven" => Some(verified(true)?),
        "RequireAndVerifyClientCert" => Some(verified(false)?),
        other => return Err(invalid(format!("Invalid ClientAuth: {other}"))),
    };
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid(format!("cert_file/key_file: {e}")))?;
    cfg.ignore_client_order = s.prefer_server_cipher_suites.unwrap_or(true);
    Ok(cfg)
}

/// Go's `RequestClientCert` / `RequireAnyClientCert`: a client certificate is asked for (and
/// for the latter required) but not checked against any CA; its signature over the handshake
/// still is, as `insecure_skip_verify`'s [`web::client::AcceptAnyCert`] checks a server's.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    /// Only its handshake-signature checks are used.
    signatures: web::client::AcceptAnyCert,
}

impl AnyClientCert {
    fn new(mandatory: bool, provider: &Arc<rustls::crypto::CryptoProvider>) -> Self {
        AnyClientCert {
            mandatory,
            signatures: web::client::AcceptAnyCert::new(provider.clone()),
        }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certs() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster/testdata/tls")
    }

    fn err(text: &str) -> String {
        match build(text, &certs()) {
            Ok(_) => panic!("accepted: {text}"),
            Err(Failure::Parse(m) | Failure::Invalid(m)) => m,
        }
    }

    #[test]
    fn files_relative_to_the_config_and_alertmanagers_rules() {
        let ok = "tls_server_config:\n  cert_file: node.pem\n  key_file: node-key.pem\n  \
                  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n\
                  tls_client_config:\n  ca_file: ca.pem\n  cert_file: node.pem\n  \
                  key_file: node-key.pem\n  server_name: node.cluster.test\n";
        let b = build(ok, &certs()).unwrap_or_else(|_| panic!("valid config refused"));
        assert_eq!(b.server_name.as_deref(), Some("node.cluster.test"));
        assert!(b.client.alpn_protocols.is_empty());
        // Server only: the client side defaults (system roots).
        assert!(
            build(
                "tls_server_config:\n  cert_file: node.pem\n  key_file: node-key.pem\n",
                &certs()
            )
            .is_ok()
        );
        let skip = "tls_server_config:\n  cert_file: node.pem\n  key_file: node-key.pem\n\
                    tls_client_config:\n  insecure_skip_verify: true\n";
        assert!(build(skip, &certs()).is_ok());
        assert!(err("tls_server_config:\n  cert_file: node.pem\n  key_file: node-key.pem\ntls_client_config:\n  ca_file: nowhere.pem\n").contains("nowhere.pem"));
        for auth in ["RequestClientCert", "RequireAnyClientCert", "NoClientCert"] {
            let t = format!(
                "tls_server_config:\n  cert_file: node.pem\n  key_file: node-key.pem\n  client_auth_type: {auth}\n"
            );
            assert!(build(&t, &certs()).is_ok(), "{auth}");
        }

        assert!(err("").contains("missing 'tls_server_config'"));
        assert!(
            err("tls_client_config:\n  ca_file: ca.pem\n").contains("missing 'tls_server_config'")
        );
        assert!(
            err("tls_server_config:\n  key_file: node-key.pem\n").contains("missing cert_file")
        );
        assert!(err("tls_server_config:\n  cert_file: node.pem\n").contains("missing key_file"));
        assert!(err("tls_server_config:\n  cert_file: node.pem\n  key_file: node-key.pem\n  client_ca_file: ca.pem\n").contains("without a Client Auth Policy"));
        assert!(err("tls_server_config:\n  cert_file: node.pem\n  key_file: node-key.pem\n  client_auth_type: Sometimes\n").contains("Invalid ClientAuth"));
        assert!(err("tls_server_config:\n  cert_file: node.pem\n  key_file: node-key.pem\n  client_auth_type: RequireAndVerifyClientCert\n").contains("needs client_ca_file"));
        assert!(err("tls_server_config:\n  cert_file: node.pem\n  key_file: node-key.pem\n  min_version: TLS10\n").contains("not supported"));
        assert!(err("tls_server_config:\n  cert_file: node.pem\n  key_file: node-key.pem\n  min_version: TLS13\n  max_version: TLS12\n").contains("greater than or equal"));
        assert!(err("tls_server_config:\n  cert_file: node.pem\n  key_file: node-key.pem\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n").contains("not supported"));
        assert!(
            err("tls_server_config:\n  cert_file: missing.pem\n  key_file: node-key.pem\n")
                .contains("missing.pem")
        );
        assert!(err("tls_server_config:\n  cert_file: node.pem\n  key_file: node-key.pem\n  unknown: 1\n").contains("unknown"));
        assert!(err("tls_server_config:\n  cert_file: node.pem\n  key_file: node-key.pem\ntls_client_config:\n  cert_file: node.pem\n").contains("key"));
    }

    /// Runs a handshake in memory; the first error either side raises.
    fn handshake(client: &Built, server: &Built) -> Result<(), rustls::Error> {
        let name = rustls::pki_types::ServerName::try_from("node.cluster.test")
            .expect("BUG: a valid DNS name");
        let mut c = rustls::ClientConnection::new(client.client.clone(), name)?;
        let mut s = rustls::ServerConnection::new(server.server.clone())?;
        fn pass(
            from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
            to: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
        ) -> Result<(), rustls::Error> {
            let mut buf = Vec::new();
            while from.wants_write() {
                from.write_tls(&mut buf).expect("BUG: writing to a Vec");
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                to.read_tls(&mut rd).expect("BUG: reading a slice");
                to.process_new_packets()?;
            }
            Ok(())
        }
        for _ in 0..10 {
            pass(&mut c, &mut s)?;
            pass(&mut s, &mut c)?;
            if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() {
                return Ok(());
            }
        }
        panic!("handshake did not finish")
    }

    /// `RequireAnyClientCert` takes a client certificate from any CA (its handshake signature
    /// checked, TLS 1.3 and 1.2) and refuses a client without one; `RequestClientCert` takes both.
    #[test]
    fn any_client_cert_checks_only_the_signature() {
        let server = |auth: &str, max: &str| {
            let t = format!(
                "tls_server_config:\n  cert_file: node.pem\n  key_file: node-key.pem\n  \
                 client_auth_type: {auth}\n  max_version: {max}\n"
            );
            build(&t, &certs()).unwrap_or_else(|_| panic!("refused: {t}"))
        };
        let client = |cert: &str| {
            let t = format!(
                "tls_server_config:\n  cert_file: node.pem\n  key_file: node-key.pem\n\
                 tls_client_config:\n  insecure_skip_verify: true\n{cert}"
            );
            build(&t, &certs()).unwrap_or_else(|_| panic!("refused: {t}"))
        };
        let stranger = client("  cert_file: stranger.pem\n  key_file: stranger-key.pem\n");
        let none = client("");
        for max in ["TLS13", "TLS12"] {
            let require = server("RequireAnyClientCert", max);
            assert_eq!(handshake(&stranger, &require), Ok(()), "{max}");
            assert!(
                handshake(&none, &require).is_err(),
                "{max}: no certificate taken"
            );
            let request = server("RequestClientCert", max);
            assert_eq!(handshake(&stranger, &request), Ok(()), "{max}");
            assert_eq!(handshake(&none, &request), Ok(()), "{max}");
        }
    }
}
