//! The webhook's PKI, generated at install: a CA whose bundle goes into the webhook
//! configuration, and a serving certificate for the webhook's address.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::error::{Error, Result};

/// PEM texts of a CA and a serving certificate it signed.
#[derive(Clone, Debug)]
pub struct WebhookPki {
    /// The CA certificate (the `caBundle`).
    pub ca_pem: String,
    /// The serving certificate.
    pub cert_pem: String,
    /// The serving certificate's private key.
    pub key_pem: String,
}

fn step(e: rcgen::Error) -> Error {
    Error::Step {
        step: "generate the webhook certificates".into(),
        detail: e.to_string(),
    }
}

/// A fresh CA and a serving certificate valid for `dns_names` and `ips`.
pub fn generate(dns_names: &[String], ips: &[IpAddr]) -> Result<WebhookPki> {
    let ca_key = KeyPair::generate().map_err(step)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(step)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "bursting webhook CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(step)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().map_err(step)?;
    let mut serving = CertificateParams::new(dns_names.to_vec()).map_err(step)?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "bursting webhook");
    serving
        .subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let cert = serving.signed_by(&key, &issuer).map_err(step)?;
    Ok(WebhookPki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serving_certificate_is_issued_by_the_ca_for_the_given_names() {
        let pki = generate(
            &["bursting-webhook.kube-system.svc".into()],
            &["127.0.0.1".parse().unwrap()],
        )
        .unwrap();
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.key_pem.contains("PRIVATE KEY"));
        assert_ne!(pki.ca_pem, pki.cert_pem);
    }
}
