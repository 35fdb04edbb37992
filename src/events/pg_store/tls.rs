//! TLS to PostgreSQL with libpq's `sslmode` semantics, over rustls. The connection string may
//! carry `sslmode` (`disable`, `prefer` — the default, as with libpq —, `require`,
//! `verify-ca`, `verify-full`) and `sslrootcert` (a PEM CA bundle, such as Amazon RDS's); they
//! are taken out here, since tokio-postgres knows only some of them, and turned into its
//! `SslMode` and a rustls connector:
//!
//! - `disable`: plain only; `prefer`: TLS when the server offers it, plain otherwise;
//! - `require`: TLS, the certificate not checked (libpq's behaviour without a root file);
//! - `verify-ca`: TLS, the chain checked against `sslrootcert`, any host name;
//! - `verify-full`: TLS, the chain and the host name checked.
//!
//! As with libpq, `prefer` and `require` with a `sslrootcert` check the chain (as `verify-ca`).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error as TlsError, SignatureScheme};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(v: &str) -> Result<SslMode, String> {
        Ok(match v {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode {other:?} must be disable, prefer, require, verify-ca or verify-full"
                ))
            }
        })
    }
}

/// The TLS settings of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTls {
    pub mode: SslMode,
    pub root_cert: Option<String>,
}

/// Split `sslmode` and `sslrootcert` off a libpq connection string (key=value or URI form):
/// the rest, for tokio-postgres, and the TLS settings.
pub fn split(url: &str) -> Result<(String, PgTls), String> {
    let mut tls = PgTls {
        mode: SslMode::Prefer,
        root_cert: None,
    };
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => tls.mode = SslMode::parse(value)?,
            "sslrootcert" => tls.root_cert = Some(value.to_string()),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            if !take(k, &v)? {
                kept.push(pair);
            }
        }
        if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let mut kept = Vec::new();
        for (k, v) in key_values(url)? {
            if !take(&k, &v)? {
                kept.push(format!(
                    "{k}='{}'",
                    v.replace('\\', "\\\\").replace('\'', "\\'")
                ));
            }
        }
        kept.join(" ")
    };
    if matches!(tls.mode, SslMode::VerifyCa | SslMode::VerifyFull) && tls.root_cert.is_none() {
        return Err(format!(
            "sslmode {} needs sslrootcert, the CA bundle to check the server against",
            if tls.mode == SslMode::VerifyCa {
                "verify-ca"
            } else {
                "verify-full"
            }
        ));
    }
    Ok((rest, tls))
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `key=value` pairs of a libpq key/value string (values bare or single-quoted, with
/// backslash escapes).
fn key_values(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("{key:?} has no value (key=value expected)"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("the value of {key:?} is not closed")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    value.extend(chars.next());
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

/// The tokio-postgres mode and the connector for `tls`.
pub fn connector(
    tls: &PgTls,
) -> Result<
    (
        tokio_postgres::config::SslMode,
        Option<tokio_postgres_rustls::MakeRustlsConnect>,
    ),
    String,
> {
    use tokio_postgres::config::SslMode as Pg;
    let pg_mode = match tls.mode {
        SslMode::Disable => return Ok((Pg::Disable, None)),
        SslMode::Prefer => Pg::Prefer,
        _ => Pg::Require,
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = match &tls.root_cert {
        Some(path) => Some(load_roots(path)?),
        None => None,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match (tls.mode, roots) {
        (SslMode::VerifyFull, Some(roots)) => {
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (_, Some(roots)) => {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| e.to_string())?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
                .with_no_client_auth()
        }
        (_, None) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth(),
    };
    Ok((
        pg_mode,
        Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)),
    ))
}

fn load_roots(path: &str) -> Result<rustls::RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("sslrootcert {path}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    let mut n = 0;
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
        let cert: CertificateDer = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {path}: {e}"))?;
        n += 1;
    }
    if n == 0 {
        return Err(format!("sslrootcert {path}: no certificate in the file"));
    }
    Ok(roots)
}

/// `verify-ca`: the chain is checked, the name is not.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(TlsError::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(TlsError::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root file: encrypted, the certificate not checked (only
/// the handshake's signatures are).
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_key_value_string_then_the_tls_keys_are_taken_out() {
        let (rest, tls) = split(
            "host=db.example port=5432 user=ibsight sslmode=verify-full sslrootcert='/etc/rds ca.pem'",
        )
        .expect("split");
        assert_eq!(rest, "host='db.example' port='5432' user='ibsight'");
        assert_eq!(
            tls,
            PgTls {
                mode: SslMode::VerifyFull,
                root_cert: Some("/etc/rds ca.pem".into())
            }
        );
        let parsed: tokio_postgres::Config = rest.parse().expect("tokio-postgres reads the rest");
        assert_eq!(parsed.get_user(), Some("ibsight"));
    }

    #[test]
    fn given_a_uri_then_the_tls_keys_are_taken_out_and_the_rest_kept() {
        let (rest, tls) =
            split("postgresql://ibsight@db:5432/postgres?sslmode=require&connect_timeout=3")
                .expect("split");
        assert_eq!(
            rest,
            "postgresql://ibsight@db:5432/postgres?connect_timeout=3"
        );
        assert_eq!(tls.mode, SslMode::Require);
        let (rest, tls) =
            split("postgres://db/x?sslrootcert=%2Ftmp%2Fca.pem&sslmode=verify-ca").expect("split");
        assert_eq!(
            (rest.as_str(), tls.root_cert.as_deref()),
            ("postgres://db/x", Some("/tmp/ca.pem"))
        );
    }

    #[test]
    fn given_no_sslmode_then_tls_is_preferred_as_with_libpq() {
        let (rest, tls) = split("host=127.0.0.1 dbname=postgres").expect("split");
        assert_eq!(rest, "host='127.0.0.1' dbname='postgres'");
        assert_eq!((tls.mode, tls.root_cert), (SslMode::Prefer, None));
    }

    #[test]
    fn given_bad_tls_settings_then_the_error_names_them() {
        let e = split("host=db sslmode=allow").expect_err("allow");
        assert!(e.contains("sslmode \"allow\""), "{e}");
        let e = split("host=db sslmode=verify-full").expect_err("no root");
        assert!(e.contains("sslrootcert"), "{e}");
        let e = split("host=db sslrootcert='/x").expect_err("unclosed");
        assert!(e.contains("not closed"), "{e}");
        let e = connector(&PgTls {
            mode: SslMode::VerifyCa,
            root_cert: Some("/nonexistent/ca.pem".into()),
        })
        .err()
        .expect("missing file");
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
