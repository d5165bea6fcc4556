//! Attribute mappings: which fields of the end-entity certificate become session tags
//! (`x509Subject/CN`, `x509Issuer/O`, `x509SAN/DNS`, `x509SAN/Name/CN`, ...), with the
//! service's defaults (every supported RDN of subject and issuer; the first DNS name, URI
//! and directory name of the SAN) and a profile's PutAttributeMapping rules replacing the
//! default rules of the field they name.

use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::der::asn1::{Ia5StringRef, ObjectIdentifier};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::{DirectoryString, GeneralName};
use x509_cert::name::Name;

/// The relative distinguished names mapped, by short name and OID.
const RDNS: [(&str, &str); 10] = [
    ("CN", "2.5.4.3"),
    ("OU", "2.5.4.11"),
    ("O", "2.5.4.10"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("C", "2.5.4.6"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("serialNumber", "2.5.4.5"),
    ("emailAddress", "1.2.840.113549.1.9.1"),
];

/// Longest tag value STS accepts.
const MAX_TAG_VALUE: usize = 256;

/// A certificate field mapping rules apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    /// The subject's RDNs.
    Subject,
    /// The issuer's RDNs.
    Issuer,
    /// The subject alternative names.
    San,
}

impl Field {
    /// The API's name (`certificateField`).
    pub(crate) fn parse(name: &str) -> Option<Field> {
        match name {
            "x509Subject" => Some(Field::Subject),
            "x509Issuer" => Some(Field::Issuer),
            "x509SAN" => Some(Field::San),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Field::Subject => "x509Subject",
            Field::Issuer => "x509Issuer",
            Field::San => "x509SAN",
        }
    }
}

/// The mapping rules of a profile, per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mappings {
    subject: Vec<String>,
    issuer: Vec<String>,
    san: Vec<String>,
}

impl Default for Mappings {
    /// The rules a new profile has.
    fn default() -> Mappings {
        Mappings {
            subject: vec!["*".into()],
            issuer: vec!["*".into()],
            san: vec!["DNS".into(), "URI".into(), "Name/*".into()],
        }
    }
}

/// Whether `specifier` is one the service knows for `field`.
fn valid_specifier(field: Field, specifier: &str) -> bool {
    let rdn = |s: &str| s == "*" || RDNS.iter().any(|(n, _)| *n == s);
    match field {
        Field::Subject | Field::Issuer => rdn(specifier),
        Field::San => match specifier.strip_prefix("Name/") {
            Some(inner) => rdn(inner),
            None => matches!(specifier, "DNS" | "URI"),
        },
    }
}

impl Mappings {
    /// Replaces the rules of `field` (PutAttributeMapping); the error names the bad
    /// specifier.
    pub(crate) fn put(&mut self, field: Field, specifiers: Vec<String>) -> Result<(), String> {
        if let Some(bad) = specifiers.iter().find(|s| !valid_specifier(field, s)) {
            let known = match field {
                Field::San => "DNS, URI, Name/* or Name/<RDN>".to_owned(),
                _ => format!(
                    "* or one of {}",
                    RDNS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ),
            };
            return Err(format!(
                "unsupported {} specifier \"{bad}\" (expected {known})",
                field.name()
            ));
        }
        match field {
            Field::Subject => self.subject = specifiers,
            Field::Issuer => self.issuer = specifiers,
            Field::San => self.san = specifiers,
        }
        Ok(())
    }

    /// The session tags for a certificate (DER), in a stable order, each name once.
    pub(crate) fn tags(&self, der: &[u8]) -> Vec<(String, String)> {
        let Ok(cert) = Certificate::from_der(der) else {
            return Vec::new();
        };
        let tbs = cert.tbs_certificate();
        let mut tags = Vec::new();
        rdn_tags(tbs.subject(), &self.subject, "x509Subject", &mut tags);
        rdn_tags(tbs.issuer(), &self.issuer, "x509Issuer", &mut tags);
        if let Ok(Some((_, SubjectAltName(names)))) = tbs.get_extension::<SubjectAltName>() {
            let first_dns = names.iter().find_map(|n| match n {
                GeneralName::DnsName(s) => Some(s.to_string()),
                _ => None,
            });
            let first_uri = names.iter().find_map(|n| match n {
                GeneralName::UniformResourceIdentifier(s) => Some(s.to_string()),
                _ => None,
            });
            let first_dn = names.iter().find_map(|n| match n {
                GeneralName::DirectoryName(dn) => Some(dn),
                _ => None,
            });
            for spec in &self.san {
                match spec.as_str() {
                    "DNS" => push(&mut tags, "x509SAN/DNS".into(), first_dns.clone()),
                    "URI" => push(&mut tags, "x509SAN/URI".into(), first_uri.clone()),
                    _ => {}
                }
            }
            if let Some(dn) = first_dn {
                let inner: Vec<String> = self
                    .san
                    .iter()
                    .filter_map(|s| s.strip_prefix("Name/").map(str::to_owned))
                    .collect();
                rdn_tags(dn, &inner, "x509SAN/Name", &mut tags);
            }
        }
        tags
    }
}

fn push(tags: &mut Vec<(String, String)>, key: String, value: Option<String>) {
    if let Some(mut v) = value
        && !tags.iter().any(|(k, _)| *k == key)
    {
        if v.len() > MAX_TAG_VALUE {
            let mut end = MAX_TAG_VALUE;
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            v.truncate(end);
        }
        tags.push((key, v));
    }
}

/// The first value of each mapped RDN of `name`, as `prefix/<short name>`.
fn rdn_tags(name: &Name, specifiers: &[String], prefix: &str, tags: &mut Vec<(String, String)>) {
    for (short, oid) in RDNS {
        if !specifiers.iter().any(|s| s == "*" || s == short) {
            continue;
        }
        let Ok(oid) = ObjectIdentifier::new(oid) else {
            continue;
        };
        let value = name.iter().filter(|atv| atv.oid == oid).find_map(|atv| {
            atv.value
                .decode_as::<DirectoryString>()
                .map(|d| d.value().into_owned())
                .or_else(|_| {
                    atv.value
                        .decode_as::<Ia5StringRef<'_>>()
                        .map(|s| s.to_string())
                })
                .ok()
        });
        push(tags, format!("{prefix}/{short}"), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};
    use x509_cert::der::Encode;
    use x509_cert::der::asn1::Ia5String;

    fn cert() -> Vec<u8> {
        let issuer_key = KeyPair::generate().expect("key");
        let mut ip = CertificateParams::default();
        ip.distinguished_name = rcgen::DistinguishedName::new();
        ip.distinguished_name
            .push(DnType::CommonName, "Issuing CA 2");
        ip.distinguished_name
            .push(DnType::OrganizationName, "Example");
        ip.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer = rcgen::Issuer::new(ip, issuer_key);
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, "backup-01");
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "storage");
        p.distinguished_name.push(DnType::CountryName, "DE");
        // rcgen writes no directoryName SAN: the extension is encoded here.
        let ia5 = |s: &str| Ia5String::new(s).expect("ia5");
        let san = SubjectAltName(vec![
            GeneralName::DnsName(ia5("b1.example.com")),
            GeneralName::DnsName(ia5("b2.example.com")),
            GeneralName::UniformResourceIdentifier(ia5("spiffe://example/backup")),
            GeneralName::DirectoryName("CN=inner".parse().expect("dn")),
        ]);
        p.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            &[2, 5, 29, 17],
            Encode::to_der(&san).expect("san"),
        )];
        p.signed_by(&key, &issuer).expect("cert").der().to_vec()
    }

    fn get<'t>(tags: &'t [(String, String)], k: &str) -> Option<&'t str> {
        tags.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn default_rules_map_subject_issuer_and_first_sans() {
        let tags = Mappings::default().tags(&cert());
        assert_eq!(get(&tags, "x509Subject/CN"), Some("backup-01"));
        assert_eq!(get(&tags, "x509Subject/OU"), Some("storage"));
        assert_eq!(get(&tags, "x509Subject/C"), Some("DE"));
        assert_eq!(get(&tags, "x509Issuer/CN"), Some("Issuing CA 2"));
        assert_eq!(get(&tags, "x509Issuer/O"), Some("Example"));
        assert_eq!(get(&tags, "x509SAN/DNS"), Some("b1.example.com"));
        assert_eq!(get(&tags, "x509SAN/URI"), Some("spiffe://example/backup"));
        assert_eq!(get(&tags, "x509SAN/Name/CN"), Some("inner"));
    }

    #[test]
    fn put_replaces_one_field_and_refuses_unknown_specifiers() {
        let mut m = Mappings::default();
        m.put(Field::Subject, vec!["CN".into()]).expect("put");
        m.put(Field::San, vec![]).expect("put");
        let tags = m.tags(&cert());
        assert_eq!(get(&tags, "x509Subject/CN"), Some("backup-01"));
        assert_eq!(get(&tags, "x509Subject/OU"), None, "OU is no longer mapped");
        assert_eq!(get(&tags, "x509Issuer/CN"), Some("Issuing CA 2"));
        assert_eq!(get(&tags, "x509SAN/DNS"), None);
        let err = m.put(Field::Subject, vec!["XX".into()]).expect_err("bad");
        assert!(
            err.contains("unsupported x509Subject specifier \"XX\""),
            "{err}"
        );
        assert!(
            m.put(Field::San, vec!["Name/OU".into(), "DNS".into()])
                .is_ok()
        );
        assert!(m.put(Field::San, vec!["CN".into()]).is_err());
        assert_eq!(Field::parse("x509Foo"), None);
    }
}
