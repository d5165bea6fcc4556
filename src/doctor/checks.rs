//! The checks that need neither the key nor the network: the certificate, the chain up to
//! the trust anchor's CA, and the request. Each takes the time as an argument.

use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

use super::report::{Report, Status};
use crate::cert::Cert;
use crate::config::{ConfigError, EndpointChoice, SessionConfig, SessionDuration};
use crate::time::UtcTime;

/// A certificate expiring sooner than this is a warning.
const EXPIRY_WARNING_SECS: u64 = 7 * 86_400;

/// The longest chain followed: far more than any real PKI uses.
const MAX_CHAIN: usize = 8;

/// The signature algorithms AWS refuses, by OID.
const WEAK_SIGNATURES: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.2", "md2WithRSAEncryption"),
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10040.4.3", "dsa-with-SHA1"),
];

/// Names of the signature algorithms a chain commonly uses.
const SIGNATURE_NAMES: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.11", "sha256WithRSAEncryption"),
    ("1.2.840.113549.1.1.12", "sha384WithRSAEncryption"),
    ("1.2.840.113549.1.1.13", "sha512WithRSAEncryption"),
    ("1.2.840.113549.1.1.10", "RSASSA-PSS"),
    ("1.2.840.10045.4.3.2", "ecdsa-with-SHA256"),
    ("1.2.840.10045.4.3.3", "ecdsa-with-SHA384"),
    ("1.2.840.10045.4.3.4", "ecdsa-with-SHA512"),
    ("2.16.840.1.101.3.4.3.17", "ML-DSA-44"),
    ("2.16.840.1.101.3.4.3.18", "ML-DSA-65"),
    ("2.16.840.1.101.3.4.3.19", "ML-DSA-87"),
];

fn signature_oid(cert: &Cert) -> String {
    cert.parsed().signature_algorithm().oid.to_string()
}

/// The name of a certificate's signature algorithm, and whether it is too weak.
fn signature_algorithm(cert: &Cert) -> (String, bool) {
    let oid = signature_oid(cert);
    if let Some((_, name)) = WEAK_SIGNATURES.iter().find(|(o, _)| *o == oid) {
        return ((*name).to_owned(), true);
    }
    let name = SIGNATURE_NAMES
        .iter()
        .find(|(o, _)| *o == oid)
        .map_or_else(|| format!("OID {oid}"), |(_, n)| (*n).to_owned());
    (name, false)
}

fn date(unix: u64) -> String {
    UtcTime::from_unix(unix).rfc3339()
}

/// The certificate checks: it parses (the caller has it), its validity at `now`, its key
/// usage, that it is no CA, its signature algorithm; the serial in decimal, as AWS's
/// CloudTrail records show it.
pub(super) fn certificate(report: &mut Report, leaf: &Cert, now: UtcTime) {
    report.pass(
        "certificate",
        format!(
            "\"{}\", issued by \"{}\", serial {} (decimal, as AWS logs it), {} key",
            leaf.subject(),
            leaf.issuer(),
            leaf.serial_decimal(),
            leaf.key_type()
        ),
    );
    validity(report, "certificate validity", leaf, now);
    let tbs = leaf.parsed().tbs_certificate();
    match tbs.get_extension::<KeyUsage>() {
        Ok(Some((_, usage))) if usage.digital_signature() => {
            report.pass("certificate key usage", "digitalSignature is set");
        }
        Ok(Some(_)) => report.fail(
            "certificate key usage",
            "the keyUsage extension lacks digitalSignature: AWS refuses the certificate for signing",
            "issue a certificate with keyUsage = critical, digitalSignature",
        ),
        Ok(None) => report.warn(
            "certificate key usage",
            "the certificate has no keyUsage extension",
            "issue certificates with keyUsage = critical, digitalSignature, as IAM Roles Anywhere expects",
        ),
        Err(e) => report.fail(
            "certificate key usage",
            format!("the keyUsage extension cannot be read: {e}"),
            "issue a certificate with keyUsage = critical, digitalSignature",
        ),
    }
    match tbs.get_extension::<BasicConstraints>() {
        Ok(Some((_, constraints))) if constraints.ca => report.fail(
            "certificate basic constraints",
            "it is a CA certificate (basicConstraints cA=TRUE): CreateSession needs an end-entity certificate",
            "issue an end-entity certificate (basicConstraints CA:FALSE) from this CA and use that",
        ),
        Ok(_) => report.pass("certificate basic constraints", "not a CA"),
        Err(e) => report.fail(
            "certificate basic constraints",
            format!("the basicConstraints extension cannot be read: {e}"),
            "issue an end-entity certificate (basicConstraints CA:FALSE)",
        ),
    }
    let (name, weak) = signature_algorithm(leaf);
    if weak {
        report.fail(
            "certificate signature algorithm",
            format!("signed with {name}, which AWS refuses (MD5 and SHA-1 are broken)"),
            "have the CA sign the certificate with SHA-256 or stronger",
        );
    } else {
        report.pass("certificate signature algorithm", name);
    }
}

/// A certificate's validity window against `now`.
fn validity(report: &mut Report, name: &'static str, cert: &Cert, now: UtcTime) {
    let (status, detail, fix) = validity_outcome(cert, now);
    report.push(name, status, &detail, fix.as_deref());
}

/// What [`validity`] reports, for lines that say more.
fn validity_outcome(cert: &Cert, now: UtcTime) -> (Status, String, Option<String>) {
    let (from, to) = (cert.not_before(), cert.not_after());
    let window = format!("valid from {} to {}", date(from), date(to));
    if now.unix() > to {
        (
            Status::Fail,
            format!(
                "\"{}\" expired on {} (now {})",
                cert.subject(),
                date(to),
                now.rfc3339()
            ),
            Some("renew the certificate with your CA".into()),
        )
    } else if now.unix() < from {
        (
            Status::Fail,
            format!(
                "\"{}\" is not valid before {} (now {})",
                cert.subject(),
                date(from),
                now.rfc3339()
            ),
            Some("check this machine's clock, or wait until the certificate is valid".into()),
        )
    } else if to - now.unix() < EXPIRY_WARNING_SECS {
        (
            Status::Warn,
            format!("{window}: {} hours left", (to - now.unix()) / 3600),
            Some("renew the certificate soon".into()),
        )
    } else {
        (
            Status::Pass,
            format!("{window} ({} days left)", (to - now.unix()) / 86_400),
            None,
        )
    }
}

/// Whether `issuer`'s key made `cert`'s signature: `Some(false)` when it did not, `None`
/// when the algorithm is not one ring verifies here (ML-DSA, PSS).
pub(super) fn signed_by(cert: &Cert, issuer: &Cert) -> Option<bool> {
    use crate::cert::KeyType;
    use der::Encode;
    use ring::signature as sig;

    let algorithm: &dyn sig::VerificationAlgorithm =
        match (signature_oid(cert).as_str(), issuer.key_type()) {
            ("1.2.840.113549.1.1.11", KeyType::Rsa) => &sig::RSA_PKCS1_2048_8192_SHA256,
            ("1.2.840.113549.1.1.12", KeyType::Rsa) => &sig::RSA_PKCS1_2048_8192_SHA384,
            ("1.2.840.113549.1.1.13", KeyType::Rsa) => &sig::RSA_PKCS1_2048_8192_SHA512,
            ("1.2.840.10045.4.3.2", KeyType::EcP256) => &sig::ECDSA_P256_SHA256_ASN1,
            ("1.2.840.10045.4.3.3", KeyType::EcP256) => &sig::ECDSA_P256_SHA384_ASN1,
            ("1.2.840.10045.4.3.2", KeyType::EcP384) => &sig::ECDSA_P384_SHA256_ASN1,
            ("1.2.840.10045.4.3.3", KeyType::EcP384) => &sig::ECDSA_P384_SHA384_ASN1,
            _ => return None,
        };
    let tbs = cert.parsed().tbs_certificate().to_der().ok()?;
    let signature = cert.parsed().signature().raw_bytes();
    Some(
        sig::UnparsedPublicKey::new(algorithm, issuer.public_key_bits())
            .verify(&tbs, signature)
            .is_ok(),
    )
}

/// What a signature check says, for a detail line.
fn signature_words(verified: Option<bool>) -> &'static str {
    match verified {
        Some(true) => "signature verifies",
        Some(false) => "signature does NOT verify",
        None => "signature not verified here (algorithm)",
    }
}

/// The chain: from the leaf through `intermediates` (in any order) to `anchor`, the CA
/// the trust anchor was made from, each link's signature and validity. `anchor` is `Err`
/// with why it could not be read, `None` when not given.
pub(super) fn chain(
    report: &mut Report,
    leaf: &Cert,
    intermediates: &[Cert],
    anchor: Option<Result<Cert, String>>,
    now: UtcTime,
) {
    let anchor = match anchor {
        Some(Ok(a)) => Some(a),
        Some(Err(why)) => {
            report.fail(
                "chain",
                format!("the --trust-anchor-ca file cannot be used: {why}"),
                "pass the CA certificate (PEM or DER) the trust anchor was made from",
            );
            return;
        }
        None => None,
    };
    let mut current = leaf.clone();
    let mut path = vec![leaf.subject()];
    for _ in 0..MAX_CHAIN {
        if let Some(anchor) = &anchor
            && current.is_issued_by(anchor)
        {
            let verified = signed_by(&current, anchor);
            if verified == Some(false) {
                report.fail(
                    "chain",
                    format!(
                        "\"{}\" names the trust anchor CA \"{}\" as its issuer, but that CA's key did not sign it",
                        current.subject(),
                        anchor.subject()
                    ),
                    "the trust anchor holds another CA of the same name: recreate the trust anchor from the CA that issued this certificate",
                );
                return;
            }
            path.push(anchor.subject());
            report.pass(
                "chain",
                format!(
                    "{} ({}; the last is the trust anchor CA)",
                    path.iter()
                        .map(|s| format!("\"{s}\""))
                        .collect::<Vec<_>>()
                        .join(" <- "),
                    signature_words(verified)
                ),
            );
            validity(report, "chain trust anchor validity", anchor, now);
            return;
        }
        let next = intermediates
            .iter()
            .find(|c| current.is_issued_by(c) && c.der() != current.der());
        let Some(next) = next else {
            break;
        };
        if next.is_issued_by(next) && anchor.is_some() {
            // A self-signed root among the intermediates that is not the anchor's CA.
            break;
        }
        let verified = signed_by(&current, next);
        if verified == Some(false) {
            report.fail(
                "chain link",
                format!(
                    "\"{}\" names \"{}\" as its issuer, but that certificate's key did not sign it",
                    current.subject(),
                    next.subject()
                ),
                "pass the intermediate CA certificate that really issued it with --intermediates",
            );
            return;
        }
        let (status, window, fix) = validity_outcome(next, now);
        report.push(
            "chain link",
            status,
            &format!(
                "\"{}\" issued by \"{}\" ({}); the issuer {window}",
                current.subject(),
                next.subject(),
                signature_words(verified)
            ),
            fix.as_deref(),
        );
        path.push(next.subject());
        current = next.clone();
    }
    let Some(anchor) = anchor else {
        report.warn(
            "chain",
            format!(
                "{} (up to the trust anchor: not checked)",
                path.iter()
                    .map(|s| format!("\"{s}\""))
                    .collect::<Vec<_>>()
                    .join(" <- ")
            ),
            "pass --trust-anchor-ca FILE, the CA certificate the trust anchor was made from, to check the whole chain",
        );
        return;
    };
    if current.is_issued_by(&current) {
        report.fail(
            "chain",
            format!(
                "the chain ends at the self-signed \"{}\", which is not the trust anchor CA \"{}\"",
                current.subject(),
                anchor.subject()
            ),
            "the trust anchor was made from another CA: recreate it from the CA that issued this certificate, or use a certificate issued under the trust anchor's CA",
        );
    } else {
        report.fail(
            "chain",
            format!(
                "missing intermediate: no certificate for \"{}\", the issuer of \"{}\" (the trust anchor CA is \"{}\")",
                current.issuer(),
                current.subject(),
                anchor.subject()
            ),
            format!(
                "pass the certificate of \"{}\" with --intermediates FILE (a PEM bundle), or store it on the token; if no such CA leads to \"{}\", the trust anchor holds the wrong CA",
                current.issuer(),
                anchor.subject()
            ),
        );
    }
}

/// The request: the ARNs, their partition and region, the duration, the endpoint and why.
pub(super) fn request(
    report: &mut Report,
    session: &Result<(SessionConfig, EndpointChoice), ConfigError>,
) {
    match session {
        Err(e) => report.fail(
            "request",
            e.message.clone(),
            e.hint.clone().unwrap_or_else(|| {
                "check --trust-anchor-arn, --profile-arn, --role-arn and --session-duration".into()
            }),
        ),
        Ok((config, endpoint)) => {
            let r = &config.request;
            let seconds = r.duration.seconds();
            report.pass(
                "request",
                format!(
                    "trust anchor {}, profile {}, role {}: one partition ({}) and region ({}); session duration {seconds} s (within {}..{}; the profile may allow less)",
                    r.trust_anchor_arn,
                    r.profile_arn,
                    r.role_arn,
                    r.trust_anchor_arn.partition(),
                    r.default_region(),
                    SessionDuration::MIN,
                    SessionDuration::MAX,
                ),
            );
            report.pass(
                "endpoint",
                format!(
                    "{} ({}), signing region {}",
                    endpoint.url, endpoint.why, endpoint.region
                ),
            );
        }
    }
}
