//! TLS for the DataRobot API: ring as the one crypto provider, Mozilla's roots compiled in (the
//! static helper cannot rely on CA files in the pod), plus an operator's own CA bundle, and an
//! opt-in switch that skips certificate checks.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};

/// `SSL_CERT_FILE`: a PEM bundle of extra CAs to trust, as OpenSSL-based tools read it.
pub const CA_FILE_VAR: &str = "SSL_CERT_FILE";

/// How to check the server's certificate. Travels in the wire request, so the CA is carried as
/// PEM text rather than as a path (the helper runs in a pod that does not have the file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsOptions {
    /// Extra CA certificates (PEM), trusted in addition to the bundled roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Accept any certificate (the signature of the handshake is still checked).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_tls_verify: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the CA bundle holds no PEM certificate")]
    NoCertificates,
    #[error("the CA bundle is not valid PEM")]
    BadPem(#[source] rustls::pki_types::pem::Error),
    #[error("a certificate of the CA bundle is not usable as a trust anchor")]
    BadCertificate(#[source] rustls::Error),
    #[error("cannot set up TLS")]
    Setup(#[source] rustls::Error),
}

/// Installs ring as the process's crypto provider (a no-op when one is installed). Every
/// binary calls this first: with two providers compiled in, rustls cannot pick one and panics.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The rustls configuration for `options`, offering HTTP/2 and HTTP/1.1.
pub fn client_config(options: &TlsOptions) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?;
    let mut config = if options.insecure_skip_tls_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = &options.ca_pem {
            let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(TlsError::BadPem)?;
            if certs.is_empty() {
                return Err(TlsError::NoCertificates);
            }
            for cert in certs {
                roots.add(cert).map_err(TlsError::BadCertificate)?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// `--insecure-skip-tls-verify`: any chain and name are accepted, but the handshake signature
/// is still verified with the provider's algorithms.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
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
    fn a_bundle_without_certificates_is_refused() {
        let options = TlsOptions {
            ca_pem: Some("not a certificate\n".into()),
            ..TlsOptions::default()
        };
        assert!(matches!(
            client_config(&options),
            Err(TlsError::NoCertificates)
        ));
        assert!(client_config(&TlsOptions::default()).is_ok());
    }
}
