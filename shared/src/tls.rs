//! The one TLS client configuration of every outbound connection this crate makes (provider APIs, chatbot
//! webhooks, IMAP): rustls with aws-lc-rs, verified against the platform's certificate roots.
//!
//! Built once per process and cheap to build: reading and parsing the platform's roots (the system store,
//! a few hundred files on some distributions, several milliseconds) waits for the first handshake that
//! needs them, and happens once however many clients share the configuration. So a Lambda that never calls
//! a provider never pays for it, and one that does pays once, not once per client at start-up.

use std::sync::{Arc, LazyLock, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// The shared configuration, without ALPN (each protocol sets its own on a clone).
pub fn client_config() -> Arc<ClientConfig> {
    static CONFIG: LazyLock<Arc<ClientConfig>> = LazyLock::new(|| {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            Arc::new(LazyPlatformVerifier { provider: Arc::clone(&provider), inner: OnceLock::new() });
        let config = ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions().map(
            |builder| builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth(),
        );
        // `with_safe_default_protocol_versions` fails only for a provider without cipher suites; aws-lc-rs's
        // default provider has them. Should it ever fail, the fallback trusts no root: every handshake fails
        // (closed, never open).
        Arc::new(config.unwrap_or_else(|_| {
            ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        }))
    });
    Arc::clone(&CONFIG)
}

/// A reqwest client builder on the shared configuration (HTTP/1.1), with our user agent.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    let mut config = ClientConfig::clone(&client_config());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .user_agent(concat!("omnichat/", env!("CARGO_PKG_VERSION")))
}

/// The platform verifier, created (and the roots read) at the first certificate to verify. Signatures are
/// checked with the provider's algorithms, as the platform verifier itself does on Linux.
#[derive(Debug)]
struct LazyPlatformVerifier {
    provider: Arc<CryptoProvider>,
    inner: OnceLock<Result<rustls_platform_verifier::Verifier, rustls::Error>>,
}

impl LazyPlatformVerifier {
    fn verifier(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.inner
            .get_or_init(|| rustls_platform_verifier::Verifier::new(Arc::clone(&self.provider)))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LazyPlatformVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
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
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_is_built_once() {
        let first = client_config();
        let second = client_config();
        assert!(Arc::ptr_eq(&first, &second), "one configuration per process");
        assert!(first.alpn_protocols.is_empty(), "ALPN is each protocol's own");
    }

    #[test]
    fn reqwest_takes_the_configuration() {
        // A configuration reqwest did not accept would fail here (callers fall back to a default client).
        let built = http_client_builder().build();
        assert!(built.is_ok(), "{built:?}");
    }

    #[test]
    fn roots_are_read_at_the_first_certificate_and_an_unknown_issuer_is_refused() {
        // A self-signed certificate is not in any platform store.
        let verifier = LazyPlatformVerifier {
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            inner: OnceLock::new(),
        };
        let schemes = verifier.supported_verify_schemes();
        assert!(schemes.contains(&SignatureScheme::ECDSA_NISTP256_SHA256), "{schemes:?}");
        assert!(schemes.contains(&SignatureScheme::RSA_PSS_SHA256), "{schemes:?}");
        assert!(verifier.inner.get().is_none(), "no roots read before a certificate arrives");
        let name = ServerName::try_from("example.com").expect("a valid name");
        let der =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, SELF_SIGNED.replace('\n', ""))
                .expect("the test certificate is base64");
        let outcome =
            verifier.verify_server_cert(&CertificateDer::from(der), &[], &name, &[], UnixTime::now());
        assert_eq!(
            outcome.err(),
            Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)),
            "a well-formed certificate for the right name, but issued by nobody the platform trusts"
        );
        assert!(verifier.inner.get().is_some(), "the roots were read at the first verification");
    }

    /// `openssl req -x509 -newkey ec -subj /CN=example.com -addext subjectAltName=DNS:example.com
    /// -addext basicConstraints=critical,CA:FALSE -days 36500 -outform DER`, base64
    const SELF_SIGNED: &str = "\
MIIBmDCCAT6gAwIBAgIUYcHB7nbslaLIzbuzG5N/uFFl/UswCgYIKoZIzj0EAwIwFjEUMBIGA1UEAwwLZXhhbXBsZS5jb20wIBcN
MjYxMTI3MDUxNjM3WhgPMjEyNjExMDMwNTE2MzdaMBYxFDASBgNVBAMMC2V4YW1wbGUuY29tMFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAED89JTN0wJEkX0CQ6AsL3yXPNdlgIlm4ce4pr8BO/6+qiqtXAGr0Fv5J6qS31gJPV8WjaicuZIElEsAGQOy34r6NoMGYw
HQYDVR0OBBYEFGVFRi4DhSjcgUdbJdyLIJ6K6FgUMB8GA1UdIwQYMBaAFGVFRi4DhSjcgUdbJdyLIJ6K6FgUMBYGA1UdEQQPMA2C
C2V4YW1wbGUuY29tMAwGA1UdEwEB/wQCMAAwCgYIKoZIzj0EAwIDSAAwRQIhAMQsXm2srwmiTQw2lVdQ86fIR1WCxJ8jbLXK+LSr
NV/fAiB2mPRgtJz/JOOay1at5SyB6jPJ8eldqJ84p+zJvSXSpw==";
}
