//! Certificate verification that also accepts a server certificate the user trusts by itself.
//!
//! Docker's "deploy a registry" recipe makes a self-signed certificate with `openssl req -x509`,
//! which marks it `CA:TRUE`. Given to ferry with `--ca-file` or certs.d, WebPKI refuses it as
//! the server's certificate (`CaUsedAsEndEntity`), while Go (docker, containerd, skopeo) and
//! OpenSSL (curl) accept it. This verifier asks the usual chain verifier first; only when it
//! refuses a certificate for being a CA and that certificate is byte for byte one the user said
//! to trust, does it accept it, after checking the name and the validity period itself.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

/// A chain verifier plus certificates trusted as they are.
#[derive(Debug)]
pub(crate) struct PinnedOrChain {
    chain: Arc<dyn ServerCertVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl PinnedOrChain {
    /// `chain` decides, except for the `CaUsedAsEndEntity` refusal of a certificate in `pinned`.
    pub fn new(chain: Arc<dyn ServerCertVerifier>, pinned: Vec<CertificateDer<'static>>) -> Self {
        PinnedOrChain { chain, pinned }
    }
}

/// Whether rustls refused a certificate because it is a CA certificate.
fn is_ca_used_as_end_entity(e: &Error) -> bool {
    match e {
        Error::InvalidCertificate(CertificateError::Other(other)) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

/// notBefore and notAfter, in seconds since the epoch.
fn validity(der: &[u8]) -> Option<(u64, u64)> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let v = &cert.tbs_certificate.validity;
    Some((
        v.not_before.to_unix_duration().as_secs(),
        v.not_after.to_unix_duration().as_secs(),
    ))
}

/// The checks a pinned certificate still gets: it names the server, and `now` is within its
/// validity period. (Its signature over the handshake is checked by rustls as always.)
pub(crate) fn verify_pinned(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<ServerCertVerified, Error> {
    let cert = webpki::EndEntityCert::try_from(end_entity)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    cert.verify_is_valid_for_subject_name(server_name)
        .map_err(|_| Error::InvalidCertificate(CertificateError::NotValidForName))?;
    let (not_before, not_after) =
        validity(end_entity).ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
    if now.as_secs() < not_before {
        return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now.as_secs() > not_after {
        return Err(Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(ServerCertVerified::assertion())
}

impl ServerCertVerifier for PinnedOrChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(e)
                if is_ca_used_as_end_entity(&e)
                    && self
                        .pinned
                        .iter()
                        .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                verify_pinned(end_entity, server_name, now)
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ca_refusal_is_overridden() {
        let ca = Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
            webpki::Error::CaUsedAsEndEntity,
        ))));
        assert!(is_ca_used_as_end_entity(&ca));
        assert!(!is_ca_used_as_end_entity(&Error::InvalidCertificate(
            CertificateError::UnknownIssuer
        )));
        assert!(!is_ca_used_as_end_entity(&Error::InvalidCertificate(
            CertificateError::Other(rustls::OtherError(Arc::new(
                webpki::Error::EndEntityUsedAsCa
            )))
        )));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x01, 0x01, 0xff]);
        let name = ServerName::try_from("localhost").unwrap();
        assert!(verify_pinned(&junk, &name, UnixTime::now()).is_err());
        assert_eq!(validity(b"junk"), None);
    }
}
