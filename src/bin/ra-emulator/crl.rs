//! Certificate revocation lists imported into a trust anchor (ImportCrl): parsed with
//! `x509-cert`, their signature checked at start-up against the anchor's CA certificates
//! (the same verification as for certificates, `pki::signed_by`), then consulted for every
//! certificate of a path below the anchor.

use std::collections::BTreeSet;

use x509_cert::crl::CertificateList;
use x509_cert::der::{Decode, Encode, pem};

use crate::pki::{self, Cert};

/// Largest CRL accepted (decoded `crlData`): the API's limit on the base64 text.
pub(crate) const MAX_CRL_BYTES: usize = 300_000;

/// A CRL whose signature was verified by one of its trust anchor's certificates.
#[derive(Debug, Clone)]
pub(crate) struct Crl {
    /// The `name` it was imported with.
    pub name: String,
    /// Whether it is consulted.
    pub enabled: bool,
    /// The issuer name's DER.
    issuer: Vec<u8>,
    /// The anchor certificate whose key signed it.
    signer: Cert,
    /// Revoked serial numbers (DER INTEGER contents).
    revoked: BTreeSet<Vec<u8>>,
}

impl Crl {
    /// Parses `bytes` (PEM `X509 CRL` or DER) and checks its signature against `anchors`.
    pub(crate) fn load(
        name: String,
        enabled: bool,
        bytes: &[u8],
        anchors: &[Cert],
    ) -> Result<Crl, String> {
        if bytes.len() > MAX_CRL_BYTES {
            return Err(format!("the CRL is larger than {MAX_CRL_BYTES} bytes"));
        }
        let pem = std::str::from_utf8(bytes).is_ok_and(|s| s.contains("-----BEGIN"));
        let der = if pem {
            let (label, der) =
                pem::decode_vec(bytes).map_err(|e| format!("the CRL is not valid PEM: {e}"))?;
            if label != "X509 CRL" {
                return Err(format!("the PEM block is \"{label}\", not \"X509 CRL\""));
            }
            der
        } else {
            bytes.to_vec()
        };
        let list = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der)
            .map_err(|e| format!("the CRL is not a DER CertificateList: {e}"))?;
        let tbs = pki::tbs_range(&der).ok_or("the CRL is not a DER CertificateList")?;
        let issuer = list
            .tbs_cert_list
            .issuer
            .to_der()
            .map_err(|e| format!("the CRL issuer cannot be encoded: {e}"))?;
        let signature = list.signature.as_bytes().unwrap_or_default();
        let signer = anchors
            .iter()
            .find(|a| {
                a.subject_der() == issuer.as_slice()
                    && pki::signed_by(
                        &der[tbs.clone()],
                        list.signature_algorithm.oid,
                        signature,
                        a,
                    )
            })
            .cloned()
            .ok_or_else(|| {
                format!(
                    "the CRL (issuer {}) is not signed by a certificate of this trust anchor",
                    list.tbs_cert_list.issuer
                )
            })?;
        let revoked = list
            .tbs_cert_list
            .revoked_certificates
            .iter()
            .flatten()
            .map(|r| r.serial_number.as_bytes().to_vec())
            .collect();
        Ok(Crl {
            name,
            enabled,
            issuer,
            signer,
            revoked,
        })
    }

    /// Whether this CRL lists `cert` (issued by the CRL's signer).
    pub(crate) fn revokes(&self, cert: &Cert) -> bool {
        cert.issuer_der() == self.issuer.as_slice()
            && self.revoked.contains(cert.serial_bytes())
            && cert.is_signed_by(&self.signer)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pki::tests::{Made, issued, params, self_signed};
    use rcgen::{
        CertificateRevocationListParams, Issuer, KeyIdMethod, RevokedCertParams, SerialNumber,
        date_time_ymd,
    };

    /// A CRL signed by `ca` revoking `serials`: (DER, PEM).
    pub(crate) fn make_crl(ca: &Made, serials: &[&[u8]]) -> (Vec<u8>, String) {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2024, 1, 1),
            next_update: date_time_ymd(2090, 1, 1),
            crl_number: SerialNumber::from_slice(&[1]),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(s),
                    revocation_time: date_time_ymd(2024, 1, 1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let issuer = Issuer::from_params(&ca.params, &ca.key);
        let crl = params.signed_by(&issuer).expect("crl");
        (crl.der().to_vec(), crl.pem().expect("pem"))
    }

    #[test]
    fn loads_pem_and_der_checks_the_signer_and_finds_serials() {
        let root = self_signed("root", &rcgen::PKCS_ECDSA_P256_SHA256);
        let other = self_signed("root", &rcgen::PKCS_ECDSA_P256_SHA256);
        let revoked = issued(
            &root,
            params("gone", false, &[0x42], (2020, 2090)),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        let kept = issued(
            &root,
            params("kept", false, &[0x43], (2020, 2090)),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        // Same issuer name and serial, another CA's key: not covered.
        let lookalike = issued(
            &other,
            params("gone", false, &[0x42], (2020, 2090)),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        let (der, pem) = make_crl(&root, &[&[0x42]]);
        let anchors = std::slice::from_ref(&root.cert);
        for bytes in [der.clone(), pem.into_bytes()] {
            let crl = Crl::load("c".into(), true, &bytes, anchors).expect("crl");
            assert!(crl.revokes(&revoked.cert));
            assert!(!crl.revokes(&kept.cert));
            assert!(!crl.revokes(&lookalike.cert));
        }
        // Signed by a CA that is not the anchor (same name, other key).
        let err = Crl::load("c".into(), true, &der, std::slice::from_ref(&other.cert))
            .expect_err("signer");
        assert!(
            err.contains("not signed by a certificate of this trust anchor"),
            "{err}"
        );
        // Tampered, garbage, wrong PEM label, too large.
        let mut bad = der;
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(Crl::load("c".into(), true, &bad, anchors).is_err());
        assert!(Crl::load("c".into(), true, b"junk", anchors).is_err());
        let cert_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(
            Crl::load("c".into(), true, cert_pem.as_bytes(), anchors)
                .expect_err("label")
                .contains("not \"X509 CRL\"")
        );
        assert!(
            Crl::load("c".into(), true, &vec![0u8; MAX_CRL_BYTES + 1], anchors)
                .expect_err("size")
                .contains("larger")
        );
    }
}
