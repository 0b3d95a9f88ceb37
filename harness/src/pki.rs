//! The webhook's PKI, generated at install: a CA whose bundle goes into the webhook
//! configuration, and a serving certificate for the webhook's address. The mock CCI's is made
//! the same way ([`generate_for`]): its CA is what the harness and the add-on trust for CCI.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::error::{Error, Result};

/// How long the add-on's certificates are valid: less than a year (BEHAVIOR.md §13), from the
/// day before they are made (a node whose clock is a little behind still accepts them).
pub const VALIDITY_DAYS: i64 = 364;

/// PEM texts of a CA and a serving certificate it signed (`Debug` shows the certificates, never
/// the private key).
#[derive(Clone)]
pub struct WebhookPki {
    /// The CA certificate (the `caBundle`).
    pub ca_pem: String,
    /// The serving certificate.
    pub cert_pem: String,
    /// The serving certificate's private key.
    pub key_pem: String,
}

impl std::fmt::Debug for WebhookPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookPki")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"(redacted)")
            .finish()
    }
}

/// Sets `params` valid from yesterday for [`VALIDITY_DAYS`].
fn valid_for_a_year(params: &mut CertificateParams) {
    use chrono::Datelike as _;
    let day = |d: chrono::DateTime<chrono::Utc>| {
        // NB: a day of the month and a month always fit a u8.
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    let now = chrono::Utc::now();
    params.not_before = day(now - chrono::Duration::days(1));
    params.not_after = day(now + chrono::Duration::days(VALIDITY_DAYS - 1));
}

/// Whether the serving certificate `cert_pem` is due for renewal at `now` (unix seconds): two
/// thirds of its validity have passed (BEHAVIOR.md §13), or it cannot be read.
pub fn renewal_due(cert_pem: &str, now: i64) -> bool {
    let Some((from, until)) = validity(cert_pem) else {
        return true;
    };
    now >= from + (until - from) * 2 / 3
}

/// The `notBefore` and `notAfter` (unix seconds) of the first certificate in `pem`.
fn validity(pem: &str) -> Option<(i64, i64)> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some((
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    ))
}

/// A short fingerprint of `pem` (hex SHA-256, first 16 digits): a pod template annotated with it
/// changes when the certificate does, so its pods are replaced with ones that read the new one.
pub fn fingerprint(pem: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(pem.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A fresh CA and a serving certificate valid for `dns_names` and `ips`: the webhook's.
pub fn generate(dns_names: &[String], ips: &[IpAddr]) -> Result<WebhookPki> {
    generate_for("bursting webhook", dns_names, ips)
}

/// A fresh CA (common name `{subject} CA`) and a serving certificate (common name `subject`)
/// valid for `dns_names` and `ips`.
pub fn generate_for(subject: &str, dns_names: &[String], ips: &[IpAddr]) -> Result<WebhookPki> {
    let step = |e: rcgen::Error| Error::Step {
        step: format!("generate the certificates of the {subject}"),
        detail: e.to_string(),
    };
    let ca_key = KeyPair::generate().map_err(step)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(step)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{subject} CA"));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    valid_for_a_year(&mut ca);
    let ca_cert = ca.self_signed(&ca_key).map_err(step)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().map_err(step)?;
    let mut serving = CertificateParams::new(dns_names.to_vec()).map_err(step)?;
    serving.distinguished_name.push(DnType::CommonName, subject);
    serving
        .subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    valid_for_a_year(&mut serving);
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

    #[test]
    fn a_certificate_is_due_for_renewal_once_two_thirds_of_its_validity_passed() {
        let pki = generate(&["bursting-webhook.kube-system.svc".into()], &[]).unwrap();
        let (from, until) = validity(&pki.cert_pem).unwrap();
        let two_thirds = from + (until - from) * 2 / 3;
        assert!(!renewal_due(&pki.cert_pem, chrono::Utc::now().timestamp()));
        assert!(!renewal_due(&pki.cert_pem, two_thirds - 1));
        assert!(renewal_due(&pki.cert_pem, two_thirds));
        assert!(renewal_due(&pki.cert_pem, until + 1));
        assert!(renewal_due("not a certificate", 0), "unreadable: made anew");
        assert_ne!(fingerprint(&pki.cert_pem), fingerprint(&pki.ca_pem));
    }

    #[test]
    fn the_certificates_expire_within_a_year_and_debug_hides_the_key() {
        let pki = generate(&["bursting-webhook.kube-system.svc".into()], &[]).unwrap();
        for pem in [&pki.ca_pem, &pki.cert_pem] {
            let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
            let cert = pem.parse_x509().unwrap();
            let (from, until) = (
                cert.validity().not_before.timestamp(),
                cert.validity().not_after.timestamp(),
            );
            assert!(until - from <= 365 * 86_400, "valid for {} s", until - from);
            assert!(from <= chrono::Utc::now().timestamp());
            assert!(until > chrono::Utc::now().timestamp() + 300 * 86_400);
        }
        let shown = format!("{pki:?}");
        assert!(!shown.contains(&pki.key_pem), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
