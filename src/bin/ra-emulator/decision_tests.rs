//! The service's decision beyond the signature, from a `--config` document
//! ([`model::load`]) and requests signed with real certificates: the allowed machine, and
//! each refusal (revoked leaf and intermediate, disabled anchor and profile, a mapping that
//! drops the field a condition needs, explicit Deny, a role the profile does not list, a
//! duration over the profile's limit, a path to another anchor).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::DnType;
use serde_json::{Value, json};

use crate::crl::tests::make_crl;
use crate::e2e_tests::{BODY, NOW, PROFILE, QUERY, ROLE, Signing, TA, check, run};
use crate::model;
use crate::pki::tests::{Made, issued, params, self_signed};
use crate::verify::{Accepted, Policy, Rejection};

/// Root → "Issuing CA 2" → backup-01 / web-01 (OU storage); backup-03 directly under the
/// root; an unrelated root for a second anchor.
struct World {
    root: Made,
    ca2: Made,
    backup: Made,
    web: Made,
    direct: Made,
    other_root: Made,
    other_leaf: Made,
}

fn leaf(issuer: &Made, cn: &str, ou: &str, serial: &[u8]) -> Made {
    let mut p = params(cn, false, serial, (2020, 2090));
    p.distinguished_name
        .push(DnType::OrganizationalUnitName, ou);
    issued(issuer, p, &rcgen::PKCS_ECDSA_P256_SHA256)
}

fn world() -> World {
    let root = self_signed("Example Root", &rcgen::PKCS_ECDSA_P256_SHA256);
    let ca2 = issued(
        &root,
        params("Issuing CA 2", true, &[0x42], (2020, 2090)),
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let backup = leaf(&ca2, "backup-01", "storage", &[0x51]);
    let web = leaf(&ca2, "web-01", "storage", &[0x52]);
    let direct = leaf(&root, "backup-03", "storage", &[0x77]);
    let other_root = self_signed("Other Root", &rcgen::PKCS_ECDSA_P256_SHA256);
    let other_leaf = leaf(&other_root, "backup-09", "storage", &[0x53]);
    World {
        root,
        ca2,
        backup,
        web,
        direct,
        other_root,
        other_leaf,
    }
}

fn pem(m: &Made) -> String {
    let b64 = STANDARD.encode(m.cert.der());
    let lines: Vec<String> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// "only CN backup-* in OU storage, issued by Issuing CA 2, through our trust anchor".
fn backup_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "BackupHosts",
            "Effect": "Allow",
            "Principal": {"Service": "rolesanywhere.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
            "Condition": {
                "StringLike": {"aws:PrincipalTag/x509Subject/CN": "backup-*"},
                "StringEquals": {
                    "aws:PrincipalTag/x509Subject/OU": "storage",
                    "aws:PrincipalTag/x509Issuer/CN": "Issuing CA 2"
                },
                "ArnEquals": {"aws:SourceArn": TA}
            }
        }]
    })
}

fn document(w: &World) -> Value {
    json!({
        "trustAnchors": [
            {"arn": TA, "name": "corp", "enabled": true,
             "source": {"sourceType": "CERTIFICATE_BUNDLE", "sourceData": {"x509CertificateData": pem(&w.root)}},
             "crls": []},
            {"arn": TA.replace("ta-1", "ta-2"), "enabled": true,
             "source": {"sourceType": "CERTIFICATE_BUNDLE", "sourceData": {"x509CertificateData": pem(&w.other_root)}}}
        ],
        "profiles": [{
            "arn": PROFILE, "name": "backup", "enabled": true, "roleArns": [ROLE],
            "durationSeconds": 3600,
            "managedPolicyArns": ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]
        }],
        "roles": [
            {"arn": ROLE, "trustPolicy": backup_policy()},
            {"arn": "arn:aws:iam::123456789012:role/Other", "trustPolicy": backup_policy()}
        ]
    })
}

fn load(doc: &Value) -> Policy {
    Policy {
        account: model::load(&doc.to_string()).expect("document"),
        clock_skew: 300,
    }
}

fn ask(policy: &Policy, leaf: &Made, chain: Vec<&Made>, body: &str) -> Result<Accepted, Rejection> {
    let mut s = Signing::new(leaf, chain);
    s.body = body;
    run(&s.headers(), Some(QUERY), body, policy, NOW)
}

fn refused(result: Result<Accepted, Rejection>) -> Rejection {
    result.expect_err("must be refused")
}

#[test]
fn the_allowed_machine_gets_tags_and_the_statement_is_named() {
    let w = world();
    let pol = load(&document(&w));
    let ok = ask(&pol, &w.backup, vec![&w.ca2], BODY).expect("allowed");
    assert_eq!(
        ok.statement.as_deref(),
        Some("Statement[0] (Sid \"BackupHosts\")")
    );
    let tag = |k: &str| {
        ok.session_tags
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(tag("x509Subject/CN"), Some("backup-01"));
    assert_eq!(tag("x509Subject/OU"), Some("storage"));
    assert_eq!(tag("x509Issuer/CN"), Some("Issuing CA 2"));
    assert_eq!(ok.trust_anchor.to_string(), TA);
    assert_eq!(ok.managed_policy_arns.len(), 1);
    let body: Value = serde_json::from_str(&crate::response::success_body(
        &ok,
        &crate::response::new_credentials(&ring::rand::SystemRandom::new(), NOW + ok.duration),
        &ring::rand::SystemRandom::new(),
    ))
    .expect("json");
    assert_eq!(body["credentialSet"][0]["sourceIdentity"], "CN=backup-01");
    assert_eq!(
        body["credentialSet"][0]["assumedRoleUser"]["arn"],
        "arn:aws:sts::123456789012:assumed-role/Role1/51"
    );
}

#[test]
fn the_trust_policy_refuses_another_machine_naming_the_condition() {
    let w = world();
    let pol = load(&document(&w));
    let r = refused(ask(&pol, &w.web, vec![&w.ca2], BODY));
    assert_eq!(
        (r.status, r.code, r.check, r.message.as_str()),
        (
            403,
            "AccessDeniedException",
            "trust-policy",
            "Unable to assume role for arn:aws:iam::123456789012:role/test/Role1"
        )
    );
    let detail = r.detail.expect("detail");
    assert!(
        detail.contains("Statement[0] (Sid \"BackupHosts\"): StringLike aws:PrincipalTag/x509Subject/CN [\"backup-*\"]: the request has [\"web-01\"]"),
        "{detail}"
    );
}

#[test]
fn a_mapping_that_drops_the_ou_makes_its_condition_fail() {
    let w = world();
    let mut doc = document(&w);
    doc["profiles"][0]["attributeMappings"] =
        json!([{"certificateField": "x509Subject", "mappingRules": [{"specifier": "CN"}]}]);
    let r = refused(ask(&load(&doc), &w.backup, vec![&w.ca2], BODY));
    assert_eq!(r.check, "trust-policy");
    let detail = r.detail.expect("detail");
    assert!(
        detail.contains("aws:PrincipalTag/x509Subject/OU"),
        "{detail}"
    );
    assert!(detail.contains("the key is absent"), "{detail}");
}

#[test]
fn explicit_deny_wins() {
    let w = world();
    let mut doc = document(&w);
    let deny = json!({
        "Sid": "NotThisOne", "Effect": "Deny", "Principal": {"Service": "rolesanywhere.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:PrincipalTag/x509Subject/CN": "backup-01"}}
    });
    doc["roles"][0]["trustPolicy"]["Statement"]
        .as_array_mut()
        .expect("statements")
        .push(deny);
    let pol = load(&doc);
    let r = refused(ask(&pol, &w.backup, vec![&w.ca2], BODY));
    assert_eq!((r.status, r.check), (403, "trust-policy"));
    assert!(
        r.detail
            .expect("detail")
            .contains("explicit Deny in Statement[1] (Sid \"NotThisOne\")")
    );
}

#[test]
fn revoked_leaf_and_intermediate_are_refused_while_their_crl_is_enabled() {
    let w = world();
    // The leaf under the root, revoked by the root's CRL.
    let (crl, _) = make_crl(&w.root, &[&[0x77]]);
    let mut doc = document(&w);
    doc["trustAnchors"][0]["crls"] =
        json!([{"name": "root-crl", "crlData": STANDARD.encode(&crl), "enabled": true}]);
    let r = refused(ask(&load(&doc), &w.direct, vec![], BODY));
    assert_eq!(
        (r.status, r.code, r.check, r.message.as_str()),
        (
            403,
            "AccessDeniedException",
            "revoked",
            "Certificate revoked"
        )
    );
    let detail = r.detail.expect("detail");
    assert!(
        detail.contains("the signing certificate OU=storage,CN=backup-03 (serial 77)"),
        "{detail}"
    );
    assert!(detail.contains("root-crl"), "{detail}");
    // A disabled CRL is not consulted: the request goes on to the trust policy (which
    // wants Issuing CA 2 as issuer).
    doc["trustAnchors"][0]["crls"][0]["enabled"] = json!(false);
    assert_eq!(
        refused(ask(&load(&doc), &w.direct, vec![], BODY)).check,
        "trust-policy"
    );

    // Issuing CA 2 revoked (PEM this time): every leaf under it is refused.
    let (_, crl_pem) = make_crl(&w.root, &[&[0x42]]);
    doc["trustAnchors"][0]["crls"] =
        json!([{"name": "root-crl-2", "crlData": STANDARD.encode(crl_pem), "enabled": true}]);
    let r = refused(ask(&load(&doc), &w.backup, vec![&w.ca2], BODY));
    assert_eq!(r.check, "revoked");
    assert!(
        r.detail
            .expect("detail")
            .contains("the intermediate CA certificate CN=Issuing CA 2")
    );
}

#[test]
fn disabled_anchor_and_profile_and_unlisted_role_are_refused() {
    let w = world();
    let mut doc = document(&w);
    doc["trustAnchors"][0]["enabled"] = json!(false);
    let r = refused(ask(&load(&doc), &w.backup, vec![&w.ca2], BODY));
    assert_eq!(
        (r.status, r.code, r.check),
        (403, "AccessDeniedException", "trust-anchor-disabled")
    );
    assert_eq!(r.message, format!("Trust anchor {TA} is disabled"));
    // `enabled` absent: disabled, as the API creates it.
    doc["trustAnchors"][0]
        .as_object_mut()
        .expect("o")
        .remove("enabled");
    assert_eq!(
        refused(ask(&load(&doc), &w.backup, vec![&w.ca2], BODY)).check,
        "trust-anchor-disabled"
    );

    let mut doc = document(&w);
    doc["profiles"][0]["enabled"] = json!(false);
    let r = refused(ask(&load(&doc), &w.backup, vec![&w.ca2], BODY));
    assert_eq!((r.status, r.check), (403, "profile-disabled"));
    assert_eq!(r.message, format!("Profile {PROFILE} is disabled"));

    let mut doc = document(&w);
    doc["profiles"][0]["roleArns"] = json!(["arn:aws:iam::123456789012:role/Other"]);
    let r = refused(ask(&load(&doc), &w.backup, vec![&w.ca2], BODY));
    assert_eq!((r.status, r.check), (403, "role"));
    assert_eq!(
        r.message,
        format!("Profile does not allow assuming role {ROLE}")
    );
}

#[test]
fn profile_limits_duration_session_name_and_instance_properties() {
    let w = world();
    let mut doc = document(&w);
    doc["profiles"][0]["durationSeconds"] = json!(900);
    let pol = load(&doc);
    let r = refused(ask(&pol, &w.backup, vec![&w.ca2], BODY));
    assert_eq!(
        (r.status, r.code, r.check),
        (400, "ValidationException", "duration")
    );
    assert!(
        r.message
            .contains("exceeds the profile's session limit (900)"),
        "{}",
        r.message
    );
    assert_eq!(
        ask(&pol, &w.backup, vec![&w.ca2], r#"{"durationSeconds":900}"#)
            .expect("900")
            .duration,
        900
    );

    // acceptRoleSessionName absent: false, as in the API.
    let named = r#"{"durationSeconds":900,"roleSessionName":"alice"}"#;
    let r = refused(ask(&pol, &w.backup, vec![&w.ca2], named));
    assert_eq!((r.status, r.check), (403, "role-session-name"));
    doc["profiles"][0]["acceptRoleSessionName"] = json!(true);
    let ok = ask(&load(&doc), &w.backup, vec![&w.ca2], named).expect("named");
    assert_eq!(ok.role_session_name.as_deref(), Some("alice"));

    doc["profiles"][0]["requireInstanceProperties"] = json!(true);
    let pol = load(&doc);
    assert_eq!(
        refused(ask(&pol, &w.backup, vec![&w.ca2], BODY)).check,
        "instance-properties"
    );
    let with_props = r#"{"durationSeconds":900,"instanceProperties":{"host":"b1"}}"#;
    assert!(ask(&pol, &w.backup, vec![&w.ca2], with_props).is_ok());
}

#[test]
fn a_path_to_another_anchor_is_untrusted_for_this_one() {
    let w = world();
    let pol = load(&document(&w));
    // other_leaf chains to ta-2's root, but the request names ta-1.
    let r = refused(ask(&pol, &w.other_leaf, vec![], BODY));
    assert_eq!(
        (r.status, r.check, r.message.as_str()),
        (403, "chain", "Untrusted Signing Certificate")
    );
    assert!(r.detail.expect("detail").contains("ta-1"));
    // The same request for ta-2 passes the chain and meets ta-2's policy: the ArnEquals on
    // aws:SourceArn (ta-1) refuses it.
    let q = QUERY.replace("ta-1", "ta-2");
    let mut s = Signing::new(&w.other_leaf, vec![]);
    s.query = &q;
    let r = check(run(&s.headers(), Some(&q), BODY, &pol, NOW));
    assert_eq!(r.2, "trust-policy");
}
