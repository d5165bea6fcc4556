//! The account the emulator serves: trust anchors (with CRLs), profiles (with attribute
//! mappings) and roles (with trust policies). Read from the `--config` JSON document, whose
//! shapes are the IAM Roles Anywhere API's request bodies (CreateTrustAnchor, ImportCrl,
//! CreateProfile, PutAttributeMapping) and IAM policy JSON, or lowered from the short-form
//! flags (one anchor, one profile, roles without policies). Every error in the document
//! names its JSON path (`$.profiles[0].attributeMappings[1].certificateField: ...`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;

use crate::arn::{self, Arn, Kind};
use crate::crl::{self, Crl};
use crate::mapping::{Field, Mappings};
use crate::pki::{self, Cert};
use crate::policy::{self, TrustPolicy};

/// Shortest session the service grants.
pub(crate) const MIN_DURATION: u64 = 900;
/// Longest session the service grants.
pub(crate) const MAX_DURATION: u64 = 43_200;
/// Default session length when `durationSeconds` is absent (in a request or a profile).
pub(crate) const DEFAULT_DURATION: u64 = 3600;

/// Largest configuration file read.
pub(crate) const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// The API's limit on `x509CertificateData`.
const MAX_CERTIFICATE_DATA: usize = 8000;

/// A trust anchor and what was imported into it.
#[derive(Debug, Clone)]
pub(crate) struct TrustAnchor {
    /// Its ARN (`aws:SourceArn` in trust policies).
    pub arn: Arn,
    /// Whether CreateSession may use it.
    pub enabled: bool,
    /// The CA certificates of its source.
    pub certs: Vec<Cert>,
    /// Imported CRLs.
    pub crls: Vec<Crl>,
}

/// A profile.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    /// Its ARN.
    pub arn: Arn,
    /// Whether CreateSession may use it.
    pub enabled: bool,
    /// Roles it may assume.
    pub role_arns: Vec<Arn>,
    /// Session limit in seconds.
    pub duration_seconds: u64,
    /// Whether requests must carry `instanceProperties`.
    pub require_instance_properties: bool,
    /// Whether requests may set `roleSessionName`.
    pub accept_role_session_name: bool,
    /// Inline session policy (recorded in the log).
    pub session_policy: Option<String>,
    /// Managed policy ARNs (recorded in the log).
    pub managed_policy_arns: Vec<String>,
    /// Which certificate fields become session tags.
    pub mappings: Mappings,
}

/// A role.
#[derive(Debug, Clone)]
pub(crate) struct Role {
    /// Its ARN.
    pub arn: Arn,
    /// Its trust policy; `None` (short form only) trusts the service unconditionally.
    pub trust_policy: Option<TrustPolicy>,
}

/// Everything CreateSession decides against, in one partition and region.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    /// The region requests must be signed for.
    pub region: String,
    /// Trust anchors.
    pub anchors: Vec<TrustAnchor>,
    /// Profiles.
    pub profiles: Vec<Profile>,
    /// Roles.
    pub roles: Vec<Role>,
    /// Every anchor certificate, for the first (ARN-independent) path check.
    pub all_certs: Vec<Cert>,
}

impl Account {
    /// The short form: one enabled anchor holding `certs`, one enabled profile allowing
    /// `roles` (which have no trust policy), default mappings.
    pub(crate) fn short_form(
        certs: Vec<Cert>,
        trust_anchor: Arn,
        profile: Arn,
        roles: Vec<Arn>,
        max_duration: u64,
        deny_role_session_name: bool,
    ) -> Account {
        Account {
            region: trust_anchor.region.clone(),
            all_certs: certs.clone(),
            anchors: vec![TrustAnchor {
                arn: trust_anchor,
                enabled: true,
                certs,
                crls: Vec::new(),
            }],
            profiles: vec![Profile {
                arn: profile,
                enabled: true,
                role_arns: roles.clone(),
                duration_seconds: max_duration,
                require_instance_properties: false,
                accept_role_session_name: !deny_role_session_name,
                session_policy: None,
                managed_policy_arns: Vec::new(),
                mappings: Mappings::default(),
            }],
            roles: roles
                .into_iter()
                .map(|arn| Role {
                    arn,
                    trust_policy: None,
                })
                .collect(),
        }
    }
}

// The document, as written. Unknown fields are errors; API fields the emulator has no use
// for (tags, notificationSettings, name) are accepted so the same JSON drives both.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Document {
    trust_anchors: Vec<AnchorDoc>,
    profiles: Vec<ProfileDoc>,
    roles: Vec<RoleDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AnchorDoc {
    arn: String,
    #[allow(dead_code)] // accepted, not used
    name: Option<String>,
    enabled: Option<bool>,
    source: SourceDoc,
    #[allow(dead_code)] // accepted, not used
    tags: Option<Vec<TagDoc>>,
    #[allow(dead_code)] // accepted, not used
    notification_settings: Option<Value>,
    #[serde(default)]
    crls: Vec<CrlDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SourceDoc {
    #[allow(dead_code)] // one variant: checked by parsing
    source_type: SourceType,
    source_data: SourceDataDoc,
}

/// Only a certificate bundle: an AWS Private CA source needs the AWS API.
#[derive(Debug, Deserialize)]
enum SourceType {
    #[serde(rename = "CERTIFICATE_BUNDLE")]
    CertificateBundle,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SourceDataDoc {
    x509_certificate_data: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // accepted, not used
struct TagDoc {
    key: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CrlDoc {
    name: String,
    crl_data: String,
    enabled: Option<bool>,
    trust_anchor_arn: Option<String>,
    #[allow(dead_code)] // accepted, not used
    tags: Option<Vec<TagDoc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProfileDoc {
    arn: String,
    #[allow(dead_code)] // accepted, not used
    name: Option<String>,
    enabled: Option<bool>,
    role_arns: Vec<String>,
    duration_seconds: Option<u64>,
    require_instance_properties: Option<bool>,
    accept_role_session_name: Option<bool>,
    session_policy: Option<String>,
    managed_policy_arns: Option<Vec<String>>,
    #[allow(dead_code)] // accepted, not used
    tags: Option<Vec<TagDoc>>,
    #[serde(default)]
    attribute_mappings: Vec<MappingDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MappingDoc {
    certificate_field: String,
    mapping_rules: Vec<RuleDoc>,
    #[allow(dead_code)] // accepted, not used
    profile_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    specifier: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RoleDoc {
    arn: String,
    trust_policy: Value,
}

/// The JSON path of the value being read at byte `offset` of `text`: a small scanner that
/// tracks the object keys and array indexes open at that point.
fn json_path_at(text: &str, offset: usize) -> String {
    enum Frame {
        Object { key: Option<String>, want_key: bool },
        Array { index: usize },
    }
    let bytes = text.as_bytes();
    let end = offset.min(bytes.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < end {
        match bytes[i] {
            b'{' => stack.push(Frame::Object {
                key: None,
                want_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key, want_key }) => {
                    *key = None;
                    *want_key = true;
                }
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            b':' => {
                if let Some(Frame::Object { want_key, .. }) = stack.last_mut() {
                    *want_key = false;
                }
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < end && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if let Some(Frame::Object {
                    key,
                    want_key: true,
                }) = stack.last_mut()
                {
                    *key = Some(String::from_utf8_lossy(&bytes[start..i.min(end)]).into_owned());
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::from("$");
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                path.push('.');
                path.push_str(k);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

/// Parses the document; a syntax or shape error names the JSON path it is at.
fn parse_document(text: &str) -> Result<Document, String> {
    serde_json::from_str(text).map_err(|e| {
        let offset = text
            .split_inclusive('\n')
            .take(e.line().saturating_sub(1))
            .map(str::len)
            .sum::<usize>()
            + e.column();
        let message = e.to_string();
        let location = format!(" at line {} column {}", e.line(), e.column());
        let message = message.strip_suffix(&location).unwrap_or(&message);
        format!(
            "{}: {message} (line {}, column {})",
            json_path_at(text, offset),
            e.line(),
            e.column()
        )
    })
}

fn parse_arn(value: &str, kind: Kind, path: &str) -> Result<Arn, String> {
    arn::parse(value, kind).map_err(|e| format!("{path}: {e}"))
}

/// Reads and checks the whole document.
pub(crate) fn load(text: &str) -> Result<Account, String> {
    let doc = parse_document(text)?;
    let mut region: Option<(String, String, String)> = None;
    let mut same_region = |arn: &Arn, path: &str| -> Result<(), String> {
        match &region {
            None => {
                region = Some((arn.partition.clone(), arn.region.clone(), path.to_owned()));
                Ok(())
            }
            Some((p, r, first)) if *p != arn.partition || *r != arn.region => Err(format!(
                "{path}: {arn} is in {}/{}, but {first} is in {p}/{r} (one emulator is one regional endpoint)",
                arn.partition, arn.region
            )),
            Some(_) => Ok(()),
        }
    };

    if doc.trust_anchors.is_empty() {
        return Err("$.trustAnchors: must hold at least one trust anchor".into());
    }
    let mut anchors: Vec<TrustAnchor> = Vec::new();
    for (i, a) in doc.trust_anchors.iter().enumerate() {
        let at = format!("$.trustAnchors[{i}]");
        let arn = parse_arn(&a.arn, Kind::TrustAnchor, &format!("{at}.arn"))?;
        same_region(&arn, &format!("{at}.arn"))?;
        if anchors.iter().any(|b| b.arn == arn) {
            return Err(format!("{at}.arn: {arn} is declared twice"));
        }
        let data_at = format!("{at}.source.sourceData.x509CertificateData");
        let data = &a.source.source_data.x509_certificate_data;
        if data.is_empty() || data.len() > MAX_CERTIFICATE_DATA {
            return Err(format!(
                "{data_at}: must be 1 to {MAX_CERTIFICATE_DATA} characters (a PEM bundle)"
            ));
        }
        let certs = pki::load_anchors(data.as_bytes(), &data_at)?;
        let mut crls = Vec::new();
        for (j, c) in a.crls.iter().enumerate() {
            let c_at = format!("{at}.crls[{j}]");
            if let Some(ta) = &c.trust_anchor_arn {
                let named = parse_arn(ta, Kind::TrustAnchor, &format!("{c_at}.trustAnchorArn"))?;
                if named != arn {
                    return Err(format!(
                        "{c_at}.trustAnchorArn: {named} is not the trust anchor it is imported into ({arn})"
                    ));
                }
            }
            if c.name.is_empty() || c.name.len() > 255 {
                return Err(format!("{c_at}.name: must be 1 to 255 characters"));
            }
            if c.crl_data.len() > crl::MAX_CRL_BYTES {
                return Err(format!(
                    "{c_at}.crlData: longer than {} characters",
                    crl::MAX_CRL_BYTES
                ));
            }
            let bytes = STANDARD
                .decode(c.crl_data.trim())
                .map_err(|e| format!("{c_at}.crlData: not base64 ({e})"))?;
            let loaded = Crl::load(c.name.clone(), c.enabled.unwrap_or(false), &bytes, &certs)
                .map_err(|e| format!("{c_at}.crlData: {e}"))?;
            crls.push(loaded);
        }
        anchors.push(TrustAnchor {
            arn,
            enabled: a.enabled.unwrap_or(false),
            certs,
            crls,
        });
    }

    let mut roles: Vec<Role> = Vec::new();
    for (i, r) in doc.roles.iter().enumerate() {
        let at = format!("$.roles[{i}]");
        let arn = parse_arn(&r.arn, Kind::Role, &format!("{at}.arn"))?;
        if roles.iter().any(|o| o.arn == arn) {
            return Err(format!("{at}.arn: {arn} is declared twice"));
        }
        let trust_policy = policy::parse(&r.trust_policy, &format!("{at}.trustPolicy"))?;
        roles.push(Role {
            arn,
            trust_policy: Some(trust_policy),
        });
    }

    if doc.profiles.is_empty() {
        return Err("$.profiles: must hold at least one profile".into());
    }
    let mut profiles: Vec<Profile> = Vec::new();
    for (i, p) in doc.profiles.iter().enumerate() {
        let at = format!("$.profiles[{i}]");
        let arn = parse_arn(&p.arn, Kind::Profile, &format!("{at}.arn"))?;
        same_region(&arn, &format!("{at}.arn"))?;
        if profiles.iter().any(|o| o.arn == arn) {
            return Err(format!("{at}.arn: {arn} is declared twice"));
        }
        if p.role_arns.is_empty() {
            return Err(format!("{at}.roleArns: must name at least one role"));
        }
        let mut role_arns = Vec::new();
        for (j, r) in p.role_arns.iter().enumerate() {
            let r_at = format!("{at}.roleArns[{j}]");
            let role = parse_arn(r, Kind::Role, &r_at)?;
            if !roles.iter().any(|o| o.arn == role) {
                return Err(format!(
                    "{r_at}: {role} is not declared in $.roles (with its trust policy)"
                ));
            }
            role_arns.push(role);
        }
        let duration_seconds = p.duration_seconds.unwrap_or(DEFAULT_DURATION);
        if !(MIN_DURATION..=MAX_DURATION).contains(&duration_seconds) {
            return Err(format!(
                "{at}.durationSeconds: {duration_seconds} is not between {MIN_DURATION} and {MAX_DURATION}"
            ));
        }
        if let Some(policy) = &p.session_policy
            && serde_json::from_str::<Value>(policy).is_err()
        {
            return Err(format!("{at}.sessionPolicy: not a JSON policy document"));
        }
        let mut mappings = Mappings::default();
        let mut seen: Vec<Field> = Vec::new();
        for (j, m) in p.attribute_mappings.iter().enumerate() {
            let m_at = format!("{at}.attributeMappings[{j}]");
            let field = Field::parse(&m.certificate_field).ok_or_else(|| {
                format!(
                    "{m_at}.certificateField: \"{}\" is not x509Subject, x509Issuer or x509SAN",
                    m.certificate_field
                )
            })?;
            if seen.contains(&field) {
                return Err(format!(
                    "{m_at}.certificateField: {} is mapped twice",
                    m.certificate_field
                ));
            }
            seen.push(field);
            mappings
                .put(
                    field,
                    m.mapping_rules
                        .iter()
                        .map(|r| r.specifier.clone())
                        .collect(),
                )
                .map_err(|e| format!("{m_at}.mappingRules: {e}"))?;
        }
        profiles.push(Profile {
            arn,
            enabled: p.enabled.unwrap_or(false),
            role_arns,
            duration_seconds,
            require_instance_properties: p.require_instance_properties.unwrap_or(false),
            accept_role_session_name: p.accept_role_session_name.unwrap_or(false),
            session_policy: p.session_policy.clone(),
            managed_policy_arns: p.managed_policy_arns.clone().unwrap_or_default(),
            mappings,
        });
    }

    let region = region.map(|(_, r, _)| r).unwrap_or_default();
    let all_certs = anchors.iter().flat_map(|a| a.certs.clone()).collect();
    Ok(Account {
        region,
        anchors,
        profiles,
        roles,
        all_certs,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crl::tests::make_crl;
    use crate::pki::tests::self_signed;
    use serde_json::json;

    pub(crate) const TA: &str = "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/ta-1";
    pub(crate) const PROFILE: &str = "arn:aws:rolesanywhere:us-east-1:123456789012:profile/p-1";
    pub(crate) const ROLE: &str = "arn:aws:iam::123456789012:role/backup";

    fn pem(der: &[u8]) -> String {
        let b64 = STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    fn doc(ca_pem: &str, crl_b64: &str) -> Value {
        json!({
            "trustAnchors": [{
                "arn": TA, "name": "ta", "enabled": true,
                "source": {"sourceType": "CERTIFICATE_BUNDLE", "sourceData": {"x509CertificateData": ca_pem}},
                "crls": [{"name": "crl-1", "crlData": crl_b64, "enabled": true, "trustAnchorArn": TA}]
            }],
            "profiles": [{
                "arn": PROFILE, "name": "p", "enabled": true, "roleArns": [ROLE],
                "durationSeconds": 7200, "acceptRoleSessionName": true,
                "sessionPolicy": "{\"Version\":\"2012-10-17\",\"Statement\":[]}",
                "managedPolicyArns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
                "attributeMappings": [{"certificateField": "x509Subject", "mappingRules": [{"specifier": "CN"}]}]
            }],
            "roles": [{"arn": ROLE, "trustPolicy": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "rolesanywhere.amazonaws.com"},
                               "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]}]
            }}]
        })
    }

    fn fixture() -> (String, String) {
        let ca = self_signed("Root", &rcgen::PKCS_ECDSA_P256_SHA256);
        let (crl, _) = make_crl(&ca, &[&[9]]);
        (pem(ca.cert.der()), STANDARD.encode(crl))
    }

    #[test]
    fn loads_a_full_document() {
        let (ca, crl) = fixture();
        let account = load(&doc(&ca, &crl).to_string()).expect("load");
        assert_eq!(account.region, "us-east-1");
        assert_eq!(account.anchors[0].crls.len(), 1);
        assert!(account.anchors[0].crls[0].enabled);
        let p = &account.profiles[0];
        assert_eq!(p.duration_seconds, 7200);
        assert!(p.accept_role_session_name && p.enabled);
        assert_eq!(p.managed_policy_arns.len(), 1);
        assert!(account.roles[0].trust_policy.is_some());
        // Pretty-printed as people keep it: same result.
        assert!(load(&serde_json::to_string_pretty(&doc(&ca, &crl)).expect("pretty")).is_ok());
    }

    #[test]
    // The edits below are assignments written as closures, one per case.
    #[allow(clippy::semicolon_if_nothing_returned)]
    fn errors_name_their_json_path() {
        let (ca, crl) = fixture();
        let base = doc(&ca, &crl);
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut d = base.clone();
            edit(&mut d);
            serde_json::to_string_pretty(&d).expect("json")
        };
        let cases: Vec<(String, &str)> = vec![
            (
                with(&|d| d["trustAnchors"][0]["enabeld"] = json!(true)),
                "$.trustAnchors[0].enabeld: unknown field `enabeld`",
            ),
            (
                with(&|d| d["trustAnchors"][0]["enabled"] = json!("yes")),
                "$.trustAnchors[0].enabled: invalid type: string \"yes\", expected a boolean",
            ),
            (
                with(&|d| d["trustAnchors"][0]["source"]["sourceType"] = json!("AWS_ACM_PCA")),
                "$.trustAnchors[0].source.sourceType: unknown variant `AWS_ACM_PCA`",
            ),
            (
                with(&|d| {
                    d["trustAnchors"][0]["source"]["sourceData"]["x509CertificateData"] =
                        json!("junk")
                }),
                "$.trustAnchors[0].source.sourceData.x509CertificateData: ",
            ),
            (
                with(&|d| {
                    d["trustAnchors"][0]
                        .as_object_mut()
                        .expect("o")
                        .remove("arn");
                }),
                "$.trustAnchors[0]: missing field `arn`",
            ),
            (
                with(&|d| {
                    d["trustAnchors"][0]["arn"] =
                        json!("arn:aws:rolesanywhere:us-east-1:123456789012:profile/p")
                }),
                "$.trustAnchors[0].arn: Invalid trustAnchorArn",
            ),
            (
                with(&|d| d["trustAnchors"][0]["crls"][0]["crlData"] = json!("%%%")),
                "$.trustAnchors[0].crls[0].crlData: not base64",
            ),
            (
                with(&|d| {
                    d["trustAnchors"][0]["crls"][0]["crlData"] = json!(STANDARD.encode(b"junk"))
                }),
                "$.trustAnchors[0].crls[0].crlData: the CRL is not a DER CertificateList",
            ),
            (
                with(&|d| {
                    d["trustAnchors"][0]["crls"][0]["trustAnchorArn"] =
                        json!(TA.replace("ta-1", "ta-2"))
                }),
                "$.trustAnchors[0].crls[0].trustAnchorArn: ",
            ),
            (
                with(&|d| {
                    d["profiles"][0]["roleArns"] = json!(["arn:aws:iam::123456789012:role/other"])
                }),
                "$.profiles[0].roleArns[0]: arn:aws:iam::123456789012:role/other is not declared in $.roles",
            ),
            (
                with(&|d| d["profiles"][0]["durationSeconds"] = json!(60)),
                "$.profiles[0].durationSeconds: 60 is not between 900 and 43200",
            ),
            (
                with(&|d| d["profiles"][0]["durationSeconds"] = json!(-1)),
                "$.profiles[0].durationSeconds: invalid value: integer `-1`",
            ),
            (
                with(&|d| {
                    d["profiles"][0]["arn"] = json!(PROFILE.replace("us-east-1", "eu-west-1"))
                }),
                "$.profiles[0].arn: arn:aws:rolesanywhere:eu-west-1:123456789012:profile/p-1 is in aws/eu-west-1, but $.trustAnchors[0].arn is in aws/us-east-1",
            ),
            (
                with(&|d| {
                    d["profiles"][0]["attributeMappings"][0]["certificateField"] = json!("x509Foo")
                }),
                "$.profiles[0].attributeMappings[0].certificateField: \"x509Foo\" is not",
            ),
            (
                with(&|d| {
                    d["profiles"][0]["attributeMappings"][0]["mappingRules"][0]["specifier"] =
                        json!("XX")
                }),
                "$.profiles[0].attributeMappings[0].mappingRules: unsupported x509Subject specifier \"XX\"",
            ),
            (
                with(&|d| {
                    d["profiles"][0]["attributeMappings"][0]["mappingRules"][0]["spec"] =
                        json!("CN")
                }),
                "$.profiles[0].attributeMappings[0].mappingRules[0].spec: unknown field `spec`",
            ),
            (
                with(&|d| d["profiles"][0]["sessionPolicy"] = json!("{")),
                "$.profiles[0].sessionPolicy: not a JSON policy document",
            ),
            (
                with(&|d| {
                    d["roles"][0]["trustPolicy"]["Statement"][0]["Condition"] =
                        json!({"DateLessThan": {"aws:SourceArn": "x"}})
                }),
                "$.roles[0].trustPolicy.Statement[0].Condition.DateLessThan: unsupported condition operator",
            ),
            (
                with(&|d| {
                    let r = d["roles"][0].clone();
                    d["roles"].as_array_mut().expect("a").push(r);
                }),
                "$.roles[1].arn: arn:aws:iam::123456789012:role/backup is declared twice",
            ),
            (
                with(&|d| {
                    d.as_object_mut().expect("o").remove("roles");
                }),
                "$: missing field `roles`",
            ),
            (
                with(&|d| d["trustAnchors"] = json!([])),
                "$.trustAnchors: must hold at least one trust anchor",
            ),
            (
                "{\"trustAnchors\": [".into(),
                "$.trustAnchors[0]: EOF while parsing",
            ),
        ];
        for (text, want) in cases {
            let err = load(&text).expect_err(want);
            assert!(err.starts_with(want), "{err}\nwanted: {want}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn json_path_scanner_tracks_keys_and_indexes() {
        let text = r#"{"a": [1, {"b": "x,\"y"}, [2, 3]], "c": {"d": 1}}"#;
        let at =
            |needle: &str| json_path_at(text, text.find(needle).expect("needle") + needle.len());
        assert_eq!(at(r#""b": "x,\"y""#), "$.a[1].b");
        assert_eq!(at("[2, 3"), "$.a[2][1]");
        assert_eq!(at(r#""d": 1"#), "$.c.d");
        assert_eq!(json_path_at(text, 0), "$");
    }
}
