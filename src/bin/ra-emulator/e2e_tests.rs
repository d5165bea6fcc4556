//! End-to-end checks of [`verify::verify`]: certificates made with rcgen, requests
//! signed here with ring, the canonical request written out by hand (not with the
//! emulator's `sigv4` module), then acceptance and each kind of rejection.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::HeaderMap;
use hyper::header::HeaderValue;
use ring::digest;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};

use crate::arn::{self, Kind};
use crate::model::Account;
use crate::pki::Cert;
use crate::pki::tests::{Made, issued, issued_with_key, params, rsa_key, self_signed};
use crate::verify::{self, Policy, Rejection};

pub(crate) const NOW: u64 = 1_765_470_865;
const AMZ_DATE: &str = "20251211T163425Z";
pub(crate) const TA: &str = "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/ta-1";
pub(crate) const PROFILE: &str = "arn:aws:rolesanywhere:us-east-1:123456789012:profile/p-1";
pub(crate) const ROLE: &str = "arn:aws:iam::123456789012:role/test/Role1";
/// The three ARNs, canonically encoded and sorted.
pub(crate) const QUERY: &str = "profileArn=arn%3Aaws%3Arolesanywhere%3Aus-east-1%3A123456789012%3Aprofile%2Fp-1&roleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Ftest%2FRole1&trustAnchorArn=arn%3Aaws%3Arolesanywhere%3Aus-east-1%3A123456789012%3Atrust-anchor%2Fta-1";
pub(crate) const BODY: &str = r#"{"durationSeconds":3600}"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// Root CA → intermediate → leaf (ECDSA P-256, serial 0x15D1…702D), plus an unrelated CA.
struct Pki {
    root: Made,
    inter: Made,
    leaf: Made,
    other: Made,
}

fn pki() -> Pki {
    let root = self_signed("Test Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let inter = issued(
        &root,
        params("Test Intermediate", true, &[0x42], (2020, 2090)),
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let serial = [
        0x15, 0xD1, 0x96, 0x32, 0x23, 0x4B, 0xF7, 0x59, 0xA3, 0x28, 0x02, 0xC0, 0xDA, 0x88, 0xF9,
        0xE8, 0xAF, 0xC8, 0x70, 0x2D,
    ];
    let leaf = issued(
        &inter,
        params("workload", false, &serial, (2020, 2090)),
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let other = self_signed("Other Root", &rcgen::PKCS_ECDSA_P256_SHA256);
    Pki {
        root,
        inter,
        leaf,
        other,
    }
}

fn policy(anchors: Vec<Cert>) -> Policy {
    Policy {
        account: Account::short_form(
            anchors,
            arn::parse(TA, Kind::TrustAnchor).expect("ta"),
            arn::parse(PROFILE, Kind::Profile).expect("profile"),
            vec![arn::parse(ROLE, Kind::Role).expect("role")],
            3600,
            false,
        ),
        clock_skew: 300,
    }
}

/// What to sign and how.
pub(crate) struct Signing<'a> {
    pub(crate) leaf: &'a Made,
    pub(crate) chain: Vec<&'a Made>,
    pub(crate) alg: &'static str,
    pub(crate) serial: String,
    pub(crate) amz_date: &'a str,
    pub(crate) region: &'a str,
    pub(crate) content_type: &'a str,
    pub(crate) query: &'a str,
    pub(crate) body: &'a str,
}

impl<'a> Signing<'a> {
    pub(crate) fn new(leaf: &'a Made, chain: Vec<&'a Made>) -> Self {
        Signing {
            leaf,
            chain,
            alg: "AWS4-X509-ECDSA-SHA256",
            serial: leaf.cert.serial_decimal(),
            amz_date: AMZ_DATE,
            region: "us-east-1",
            content_type: "application/json",
            query: QUERY,
            body: BODY,
        }
    }

    /// The request headers, signed with the leaf's key.
    pub(crate) fn headers(&self) -> HeaderMap {
        let rng = SystemRandom::new();
        let x509 = STANDARD.encode(self.leaf.cert.der());
        let chain: Vec<String> = self
            .chain
            .iter()
            .map(|m| STANDARD.encode(m.cert.der()))
            .collect();
        let chain = chain.join(",");
        let mut canonical_headers = format!(
            "content-type:{}\nhost:127.0.0.1:8443\nx-amz-date:{}\nx-amz-x509:{x509}\n",
            self.content_type, self.amz_date
        );
        let mut signed = "content-type;host;x-amz-date;x-amz-x509".to_string();
        if !chain.is_empty() {
            canonical_headers.push_str(&format!("x-amz-x509-chain:{chain}\n"));
            signed.push_str(";x-amz-x509-chain");
        }
        let canonical = format!(
            "POST\n/sessions\n{}\n{canonical_headers}\n{signed}\n{}",
            // The test sends the query canonically encoded; the emulator re-canonicalises.
            self.query,
            sha256_hex(self.body.as_bytes())
        );
        let scope = format!(
            "{}/{}/rolesanywhere/aws4_request",
            &self.amz_date[..8],
            self.region
        );
        let to_sign = format!(
            "{}\n{}\n{scope}\n{}",
            self.alg,
            self.amz_date,
            sha256_hex(canonical.as_bytes())
        );
        let pkcs8 = self.leaf.key.serialize_der();
        let sig = match self.leaf.cert.key() {
            crate::pki::PublicKey::EcP256(_) => {
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng)
                    .expect("p256 key")
                    .sign(&rng, to_sign.as_bytes())
                    .expect("sign")
                    .as_ref()
                    .to_vec()
            }
            crate::pki::PublicKey::EcP384(_) => sign_p384_sha256(&pkcs8, to_sign.as_bytes()),
            crate::pki::PublicKey::Rsa(_) => {
                let kp = RsaKeyPair::from_pkcs8(&pkcs8).expect("rsa key");
                let mut sig = vec![0u8; kp.public().modulus_len()];
                kp.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    to_sign.as_bytes(),
                    &mut sig,
                )
                .expect("sign");
                sig
            }
            other => panic!("cannot sign with {other}"),
        };
        let mut h = HeaderMap::new();
        let mut put = |name: &'static str, value: String| {
            h.insert(name, HeaderValue::from_str(&value).expect("header value"));
        };
        // Extra spaces: the emulator must trim them as the signer did.
        put("content-type", format!("  {} ", self.content_type));
        put("host", "127.0.0.1:8443".into());
        put("x-amz-date", self.amz_date.into());
        put("x-amz-x509", x509);
        if !chain.is_empty() {
            put("x-amz-x509-chain", chain);
        }
        put("user-agent", "not signed".into());
        put(
            "authorization",
            format!(
                "{} Credential={}/{scope}, SignedHeaders={signed}, Signature={}",
                self.alg,
                self.serial,
                hex(&sig)
            ),
        );
        h
    }
}

/// ECDSA P-384 over SHA-256 (ring only signs P-384 with SHA-384), DER-encoded by hand.
fn sign_p384_sha256(pkcs8: &[u8], msg: &[u8]) -> Vec<u8> {
    use p384::ecdsa::signature::hazmat::PrehashSigner;
    let info = pkcs8::PrivateKeyInfoRef::try_from(pkcs8).expect("pkcs8");
    let ec = sec1::EcPrivateKey::try_from(info.private_key.as_bytes()).expect("sec1");
    let key = p384::ecdsa::SigningKey::from_slice(ec.private_key).expect("scalar");
    let digest = digest::digest(&digest::SHA256, msg);
    let sig: p384::ecdsa::Signature = key.sign_prehash(digest.as_ref()).expect("sign");
    let (r, s) = sig.split_bytes();
    let int = |b: &[u8]| {
        let b: Vec<u8> = b.iter().copied().skip_while(|&x| x == 0).collect();
        let mut v = if b.first().is_some_and(|x| x & 0x80 != 0) {
            vec![0]
        } else {
            vec![]
        };
        v.extend(b);
        let mut out = vec![0x02, u8::try_from(v.len()).expect("short")];
        out.extend(v);
        out
    };
    let body = [int(&r), int(&s)].concat();
    let mut out = vec![0x30, u8::try_from(body.len()).expect("short")];
    out.extend(body);
    out
}

pub(crate) fn run(
    headers: &HeaderMap,
    query: Option<&str>,
    body: &str,
    policy: &Policy,
    now: u64,
) -> Result<verify::Accepted, Rejection> {
    let req = verify::Request {
        method: "POST",
        path: "/sessions",
        query,
        headers,
        body: body.as_bytes(),
    };
    verify::verify(&req, policy, now)
}

pub(crate) fn check(
    result: Result<verify::Accepted, Rejection>,
) -> (u16, &'static str, &'static str, String) {
    let r = result.expect_err("must be rejected");
    (r.status, r.code, r.check, r.message)
}

#[test]
fn accepts_a_properly_signed_request_with_chain() {
    let p = pki();
    let pol = policy(vec![p.other.cert.clone(), p.root.cert.clone()]);
    let s = Signing::new(&p.leaf, vec![&p.inter]);
    let h = s.headers();
    // Sent loosely encoded and out of order: the canonical form is what counts.
    let raw_query = format!("trustAnchorArn={TA}&roleArn={ROLE}&profileArn={PROFILE}");
    let ok = run(&h, Some(&raw_query), BODY, &pol, NOW).expect("accepted");
    assert_eq!(ok.duration, 3600);
    assert_eq!(ok.role.to_string(), ROLE);
    assert_eq!(
        ok.leaf.serial_decimal(),
        "124562745837719059303232313298209415765143613485"
    );
    // Within the clock skew on either side.
    assert!(run(&h, Some(QUERY), BODY, &pol, NOW + 300).is_ok());
    assert!(run(&h, Some(QUERY), BODY, &pol, NOW - 300).is_ok());
}

#[test]
fn accepts_arns_in_the_body_and_other_key_types() {
    let p = pki();
    let pol = policy(vec![p.root.cert.clone()]);
    let body = format!(
        r#"{{"durationSeconds":900,"profileArn":"{PROFILE}","roleArn":"{ROLE}","trustAnchorArn":"{TA}","roleSessionName":"my-session"}}"#
    );
    let mut s = Signing::new(&p.leaf, vec![&p.inter]);
    s.content_type = "application/x-amz-json-1.0";
    s.query = "";
    s.body = &body;
    let ok = run(&s.headers(), None, &body, &pol, NOW).expect("body ARNs");
    assert_eq!(ok.duration, 900);
    assert_eq!(ok.role_session_name.as_deref(), Some("my-session"));

    // P-384 leaf signing SHA-256, directly under the root.
    let p384 = issued(
        &p.root,
        params("p384", false, &[7], (2020, 2090)),
        &rcgen::PKCS_ECDSA_P384_SHA384,
    );
    assert!(
        run(
            &Signing::new(&p384, vec![]).headers(),
            Some(QUERY),
            BODY,
            &pol,
            NOW
        )
        .is_ok()
    );

    // RSA leaf with the RSA algorithm; the same leaf with the ECDSA name is refused.
    let rsa = issued_with_key(&p.root, params("rsa", false, &[8], (2020, 2090)), rsa_key());
    let mut s = Signing::new(&rsa, vec![]);
    s.alg = "AWS4-X509-RSA-SHA256";
    assert!(run(&s.headers(), Some(QUERY), BODY, &pol, NOW).is_ok());
    s.alg = "AWS4-X509-ECDSA-SHA256";
    assert_eq!(
        check(run(&s.headers(), Some(QUERY), BODY, &pol, NOW)).2,
        "algorithm"
    );
}

#[test]
fn rejects_tampering_and_bad_credentials() {
    let p = pki();
    let pol = policy(vec![p.root.cert.clone()]);
    let good = Signing::new(&p.leaf, vec![&p.inter]);
    let h = good.headers();

    // Tampered body, query, host.
    let tampered = r#"{"durationSeconds":3601}"#;
    assert_eq!(
        check(run(&h, Some(QUERY), tampered, &pol, NOW)),
        (
            403,
            "AccessDeniedException",
            "signature",
            "Invalid signature".into()
        )
    );
    let q = QUERY.replace("Role1", "Role2");
    assert_eq!(check(run(&h, Some(&q), BODY, &pol, NOW)).2, "signature");
    let mut h2 = h.clone();
    h2.insert("host", HeaderValue::from_static("127.0.0.1:8444"));
    assert_eq!(check(run(&h2, Some(QUERY), BODY, &pol, NOW)).2, "signature");

    // Wrong serial in the Credential.
    let mut s = Signing::new(&p.leaf, vec![&p.inter]);
    s.serial = "124562745837719059303232313298209415765143613486".into();
    let (status, _, what, msg) = check(run(&s.headers(), Some(QUERY), BODY, &pol, NOW));
    assert_eq!((status, what), (403, "serial"), "{msg}");

    // X-Amz-Date outside the skew, scope date mismatch, wrong region.
    let (status, _, what, msg) = check(run(&h, Some(QUERY), BODY, &pol, NOW + 301));
    assert_eq!((status, what), (403, "date"));
    assert!(msg.starts_with("Signature expired"), "{msg}");
    assert!(
        check(run(&h, Some(QUERY), BODY, &pol, NOW - 301))
            .3
            .starts_with("Signature not yet current")
    );
    let mut h3 = h.clone();
    h3.insert("x-amz-date", HeaderValue::from_static("20251212T000000Z"));
    assert_eq!(
        check(run(&h3, Some(QUERY), BODY, &pol, NOW + 27_000)).2,
        "date"
    );
    let mut s = Signing::new(&p.leaf, vec![&p.inter]);
    s.region = "eu-west-1";
    assert_eq!(
        check(run(&s.headers(), Some(QUERY), BODY, &pol, NOW)).2,
        "region"
    );

    // Missing or garbled Authorization; chain sent but not signed.
    let mut h4 = h;
    h4.remove("authorization");
    assert_eq!(
        check(run(&h4, Some(QUERY), BODY, &pol, NOW)).2,
        "authorization"
    );
    h4.insert(
        "authorization",
        HeaderValue::from_static("AWS4-X509-ECDSA-SHA256 garbage"),
    );
    assert_eq!(check(run(&h4, Some(QUERY), BODY, &pol, NOW)).0, 403);
    let mut h5 = Signing::new(&p.leaf, vec![]).headers();
    h5.insert(
        "x-amz-x509-chain",
        HeaderValue::from_str(&STANDARD.encode(p.inter.cert.der())).expect("v"),
    );
    assert_eq!(
        check(run(&h5, Some(QUERY), BODY, &pol, NOW)).2,
        "authorization"
    );
}

#[test]
fn rejects_untrusted_and_expired_certificates() {
    let p = pki();
    // Untrusted CA: only an unrelated anchor configured.
    let wrong = policy(vec![p.other.cert.clone()]);
    let h = Signing::new(&p.leaf, vec![&p.inter]).headers();
    assert_eq!(
        check(run(&h, Some(QUERY), BODY, &wrong, NOW)),
        (
            403,
            "AccessDeniedException",
            "chain",
            "Untrusted Signing Certificate".into()
        )
    );
    // Intermediate missing.
    let pol = policy(vec![p.root.cert.clone()]);
    let h = Signing::new(&p.leaf, vec![]).headers();
    assert_eq!(
        check(run(&h, Some(QUERY), BODY, &pol, NOW)).3,
        "Untrusted Signing Certificate"
    );
    // Expired leaf, correctly signed otherwise.
    let old = issued(
        &p.inter,
        params("old", false, &[9], (2000, 2001)),
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let (status, _, what, msg) = check(run(
        &Signing::new(&old, vec![&p.inter]).headers(),
        Some(QUERY),
        BODY,
        &pol,
        NOW,
    ));
    assert_eq!((status, what), (403, "expired"));
    assert!(msg.starts_with("Certificate expired"), "{msg}");
}

#[test]
fn checks_arns_duration_and_session_name() {
    let p = pki();
    let mut pol = policy(vec![p.root.cert.clone()]);
    let sign_body = |body: &str, query: &str| {
        let mut s = Signing::new(&p.leaf, vec![&p.inter]);
        s.body = body;
        s.query = query;
        s.headers()
    };
    let other_ta = QUERY.replace("ta-1", "ta-2");
    assert_eq!(
        check(run(
            &sign_body(BODY, &other_ta),
            Some(&other_ta),
            BODY,
            &pol,
            NOW
        ))
        .0,
        404
    );
    let other_profile = QUERY.replace("p-1", "p-2");
    let (status, code, _, _) = check(run(
        &sign_body(BODY, &other_profile),
        Some(&other_profile),
        BODY,
        &pol,
        NOW,
    ));
    assert_eq!((status, code), (404, "ResourceNotFoundException"));
    let other_role = QUERY.replace("Role1", "Role9");
    assert_eq!(
        check(run(
            &sign_body(BODY, &other_role),
            Some(&other_role),
            BODY,
            &pol,
            NOW
        ))
        .0,
        403
    );
    let bad_arn = QUERY.replace("roleArn=arn%3Aaws%3Aiam", "roleArn=nope");
    assert_eq!(
        check(run(
            &sign_body(BODY, &bad_arn),
            Some(&bad_arn),
            BODY,
            &pol,
            NOW
        ))
        .1,
        "ValidationException"
    );

    for (body, want) in [
        (r#"{"durationSeconds":7200}"#, 400),
        (r#"{"durationSeconds":899}"#, 400),
        (r#"{"durationSeconds":43201}"#, 400),
        (r#"{"durationSeconds":"3600"}"#, 400),
        (r#"{"durationSeconds":3600,"roleSessionName":"x"}"#, 400),
        ("not json", 400),
    ] {
        assert_eq!(
            check(run(&sign_body(body, QUERY), Some(QUERY), body, &pol, NOW)).0,
            want,
            "{body}"
        );
    }
    pol.account.profiles[0].duration_seconds = 43_200;
    let long = r#"{"durationSeconds":43200}"#;
    assert_eq!(
        run(&sign_body(long, QUERY), Some(QUERY), long, &pol, NOW)
            .expect("long")
            .duration,
        43_200
    );
    let named = r#"{"durationSeconds":3600,"roleSessionName":"alice"}"#;
    assert!(run(&sign_body(named, QUERY), Some(QUERY), named, &pol, NOW).is_ok());
    pol.account.profiles[0].accept_role_session_name = false;
    assert_eq!(
        check(run(&sign_body(named, QUERY), Some(QUERY), named, &pol, NOW)),
        (
            403,
            "AccessDeniedException",
            "role-session-name",
            "Not authorized to set roleSessionName.".into()
        )
    );
}

#[test]
fn success_body_has_the_service_shape_and_no_leaks_in_rejections() {
    let p = pki();
    let pol = policy(vec![p.root.cert.clone()]);
    let h = Signing::new(&p.leaf, vec![&p.inter]).headers();
    let ok = run(&h, Some(QUERY), BODY, &pol, NOW).expect("accepted");
    let body: serde_json::Value = serde_json::from_str(&crate::response::success_body(
        &ok,
        &crate::response::new_credentials(&SystemRandom::new(), NOW + ok.duration),
        &SystemRandom::new(),
    ))
    .expect("json");
    let set = &body["credentialSet"][0];
    let creds = &set["credentials"];
    assert_eq!(creds["expiration"], "2025-12-11T17:34:25Z");
    let akid = creds["accessKeyId"].as_str().expect("akid");
    assert!(akid.starts_with("ASIA") && akid.len() == 20, "{akid}");
    assert_eq!(creds["secretAccessKey"].as_str().expect("secret").len(), 40);
    assert!(creds["sessionToken"].as_str().expect("token").len() >= 300);
    assert_eq!(set["roleArn"], ROLE);
    assert_eq!(set["sourceIdentity"], "CN=workload");
    assert_eq!(
        set["assumedRoleUser"]["arn"],
        "arn:aws:sts::123456789012:assumed-role/Role1/15d19632234bf759a32802c0da88f9e8afc8702d"
    );
    assert!(
        body["subjectArn"]
            .as_str()
            .expect("subject")
            .starts_with("arn:aws:rolesanywhere:us-east-1:123456789012:subject/")
    );
}

/// Sends one HTTP/1.1 request with `Connection: close` and returns the raw response
/// (empty when the server dropped the connection).
fn http(addr: &str, head: &str, headers: &HeaderMap, body: &str) -> String {
    use std::io::{Read, Write};
    let mut text = format!("{head} HTTP/1.1\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {}\r\n", value.to_str().expect("ascii")));
    }
    if !headers.contains_key("host") {
        text.push_str("host: 127.0.0.1\r\n");
    }
    text.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(text.as_bytes()).expect("send");
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

#[test]
fn serves_over_http_counts_faults_and_never_logs_secrets() {
    use crate::arn::{Kind, parse};
    let dir = tempfile::tempdir().expect("tempdir");
    let ready = dir.path().join("ready");
    let log = dir.path().join("log.jsonl");
    let config = crate::config::Config {
        account: crate::config::AccountSource::Flags(Box::new(crate::config::ShortForm {
            anchor_files: vec!["unused.pem".into()],
            trust_anchor: parse(TA, Kind::TrustAnchor).expect("arn"),
            profile: parse(PROFILE, Kind::Profile).expect("arn"),
            roles: vec![parse(ROLE, Kind::Role).expect("arn")],
            max_duration: 3600,
            deny_role_session_name: false,
        })),
        listen: "127.0.0.1:0".parse().expect("addr"),
        tls: false,
        tls_ca_out: None,
        tls_names: Vec::new(),
        ready_file: Some(ready.clone()),
        clock_skew: 300,
        exit_after: Some(std::time::Duration::from_secs(60)),
        log: Some(log.clone()),
        faults: vec![],
        s3_buckets: vec![],
    };
    let p = pki();
    let logger = crate::server::Logger::open(Some(&log)).expect("log");
    let state = crate::server::State::new(policy(vec![p.root.cert.clone()]), Vec::new(), logger);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(crate::server::run(&config, state))
            .expect("serve");
    });
    let mut url = String::new();
    for _ in 0..200 {
        if let Ok(s) = std::fs::read_to_string(&ready) {
            url = s;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let addr = url
        .trim()
        .strip_prefix("http://")
        .expect("ready file holds the URL")
        .to_string();

    // The real clock is used by the server: sign for now.
    let now = crate::clock::now().as_secs();
    let date = crate::clock::amz_date(now);
    let mut s = Signing::new(&p.leaf, vec![&p.inter]);
    s.amz_date = &date;
    let headers = s.headers();
    let ok = http(&addr, &format!("POST /sessions?{QUERY}"), &headers, BODY);
    assert!(ok.starts_with("HTTP/1.1 201"), "{ok}");
    assert!(
        ok.to_ascii_lowercase().contains("x-amzn-requestid: "),
        "{ok}"
    );
    let json: serde_json::Value =
        serde_json::from_str(ok.split("\r\n\r\n").nth(1).expect("body")).expect("json body");
    let creds = &json["credentialSet"][0]["credentials"];
    let secret = creds["secretAccessKey"]
        .as_str()
        .expect("secret")
        .to_string();
    let token = creds["sessionToken"].as_str().expect("token").to_string();

    let denied = http(
        &addr,
        &format!("POST /sessions?{QUERY}"),
        &headers,
        r#"{"durationSeconds":900}"#,
    );
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    assert!(denied.contains(
        "AccessDeniedException:http://internal.amazon.com/coral/com.amazonaws.rolesanywhere/"
    ));

    let set = http(
        &addr,
        "POST /_emulator/faults",
        &HeaderMap::new(),
        r#"["close:1"]"#,
    );
    assert!(set.contains(r#"{"faults":["close:1"]}"#), "{set}");
    assert_eq!(
        http(&addr, &format!("POST /sessions?{QUERY}"), &headers, BODY),
        ""
    );
    let stats = http(&addr, "GET /_emulator/stats", &HeaderMap::new(), "");
    assert!(
        stats.ends_with(
            r#"{"faulted":1,"issued":1,"rejected":1,"requests":3,"s3_denied":0,"s3_requests":0}"#
        ),
        "{stats}"
    );
    assert!(http(&addr, "GET /elsewhere", &HeaderMap::new(), "").starts_with("HTTP/1.1 404"));
    assert!(http(&addr, "GET /sessions", &HeaderMap::new(), "").starts_with("HTTP/1.1 405"));

    let logged = std::fs::read_to_string(&log).expect("log");
    let decisions: Vec<serde_json::Value> = logged
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .filter(|v: &serde_json::Value| v.get("decision").is_some())
        .collect();
    let kinds: Vec<&str> = decisions
        .iter()
        .map(|d| d["decision"].as_str().expect("str"))
        .collect();
    assert_eq!(kinds, ["issued", "rejected", "fault"]);
    assert_eq!(
        decisions[0]["serial"],
        "124562745837719059303232313298209415765143613485"
    );
    assert_eq!(decisions[1]["reason"], "Invalid signature");
    assert!(
        !logged.contains(&secret) && !logged.contains(&token),
        "a secret reached the log"
    );
}
