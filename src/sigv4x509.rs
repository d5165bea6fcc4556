//! SigV4-X509 request signing, as pure code: the caller passes the time and the request
//! parts; nothing here reads a clock, a file or the network.
//!
//! Each stage is a plain struct whose `Display` is the exact canonical text, so tests can
//! check the canonical request, the string to sign and the Authorization header separately.

use std::fmt;

use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::cert::hex_lower;
use crate::config::Region;
use crate::signer::{Digest, Identity, SignError};
use crate::time::UtcTime;

/// The service name in the credential scope.
pub(crate) const SERVICE: &str = "rolesanywhere";

/// The request to sign: everything that goes into the canonical request.
#[derive(Debug, Clone)]
pub(crate) struct RequestParts<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path, already canonical (`/sessions`).
    pub path: &'a str,
    /// Query parameters, unencoded; they are sorted and encoded here.
    pub query: Vec<(&'a str, &'a str)>,
    /// The `Host` header: host, plus `:port` when the port is not the scheme's default.
    pub host: &'a str,
    /// The `Content-Type` header.
    pub content_type: &'a str,
    /// The body.
    pub body: &'a [u8],
}

/// What SigV4 percent-encodes: every byte but the RFC 3986 unreserved `A-Za-z0-9-_.~`.
const SIGV4_ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes per RFC 3986: everything except `A-Za-z0-9-_.~`, uppercase hex.
pub(crate) fn uri_encode(s: &str) -> String {
    utf8_percent_encode(s, SIGV4_ENCODED).to_string()
}

/// The canonical query string: `name=value` pairs, encoded, sorted by name then value.
pub(crate) fn canonical_query(params: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The headers the signer adds and signs, in canonical (sorted, lower-case) order.
#[derive(Debug, Clone)]
pub(crate) struct SignedHeaders {
    /// `(name, value)` pairs, names lower-case, sorted.
    pub headers: Vec<(&'static str, String)>,
}

impl SignedHeaders {
    /// The `SignedHeaders` list: names joined by `;`.
    pub(crate) fn names(&self) -> String {
        self.headers
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// The canonical request of SigV4.
#[derive(Debug, Clone)]
pub(crate) struct CanonicalRequest {
    method: String,
    path: String,
    query: String,
    headers: SignedHeaders,
    payload_hash: String,
}

impl fmt::Display for CanonicalRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.method)?;
        writeln!(f, "{}", self.path)?;
        writeln!(f, "{}", self.query)?;
        for (name, value) in &self.headers.headers {
            writeln!(f, "{name}:{}", value.trim())?;
        }
        writeln!(f)?;
        writeln!(f, "{}", self.headers.names())?;
        write!(f, "{}", self.payload_hash)
    }
}

/// The credential scope: `YYYYMMDD/<region>/rolesanywhere/aws4_request`.
pub(crate) fn credential_scope(time: UtcTime, region: &Region) -> String {
    format!("{}/{}/{SERVICE}/aws4_request", time.scope_date(), region)
}

/// The string to sign of SigV4-X509.
#[derive(Debug, Clone)]
pub(crate) struct StringToSign {
    algorithm: &'static str,
    amz_date: String,
    scope: String,
    canonical_request_hash: String,
}

impl fmt::Display for StringToSign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n{}\n{}\n{}",
            self.algorithm, self.amz_date, self.scope, self.canonical_request_hash
        )
    }
}

/// A signed request: the headers to send, and the intermediate stages for `--debug`.
#[derive(Debug, Clone)]
pub(crate) struct SignedRequest {
    /// Headers to add to the request, Authorization included.
    pub headers: Vec<(&'static str, String)>,
    /// The canonical request that was signed.
    pub canonical_request: CanonicalRequest,
    /// The string that was signed.
    pub string_to_sign: StringToSign,
}

/// Builds the canonical request for `parts`, as signed by `identity` at `time`.
pub(crate) fn canonical_request(
    parts: &RequestParts<'_>,
    identity: &Identity,
    time: UtcTime,
) -> CanonicalRequest {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut headers: Vec<(&'static str, String)> = vec![
        ("content-type", parts.content_type.to_owned()),
        ("host", parts.host.to_owned()),
        ("x-amz-date", time.amz_date()),
        ("x-amz-x509", b64.encode(identity.leaf().der())),
    ];
    if !identity.chain().is_empty() {
        let chain = identity
            .chain()
            .iter()
            .map(|c| b64.encode(c.der()))
            .collect::<Vec<_>>()
            .join(",");
        headers.push(("x-amz-x509-chain", chain));
    }
    CanonicalRequest {
        method: parts.method.to_owned(),
        path: parts.path.to_owned(),
        query: canonical_query(&parts.query),
        headers: SignedHeaders { headers },
        payload_hash: hex_lower(&Digest::Sha256.hash(parts.body)),
    }
}

/// Builds the string to sign from a canonical request.
pub(crate) fn string_to_sign(
    canonical: &CanonicalRequest,
    identity: &Identity,
    region: &Region,
    time: UtcTime,
) -> StringToSign {
    StringToSign {
        algorithm: identity.signer().algorithm().sigv4_name(),
        amz_date: time.amz_date(),
        scope: credential_scope(time, region),
        canonical_request_hash: hex_lower(&Digest::Sha256.hash(canonical.to_string().as_bytes())),
    }
}

/// The Authorization header value for a signature.
pub(crate) fn authorization(
    identity: &Identity,
    canonical: &CanonicalRequest,
    sts: &StringToSign,
    signature: &[u8],
) -> String {
    format!(
        "{} Credential={}/{}, SignedHeaders={}, Signature={}",
        sts.algorithm,
        identity.leaf().serial_decimal(),
        sts.scope,
        canonical.headers.names(),
        hex_lower(signature)
    )
}

/// Signs `parts` for `region` at `time`: one signature by the identity's key.
pub(crate) fn sign(
    parts: &RequestParts<'_>,
    identity: &Identity,
    region: &Region,
    time: UtcTime,
) -> Result<SignedRequest, SignError> {
    let canonical_request = canonical_request(parts, identity, time);
    let string_to_sign = string_to_sign(&canonical_request, identity, region, time);
    let signature = identity
        .signer()
        .sign(Digest::Sha256, string_to_sign.to_string().as_bytes())?;
    let auth = authorization(identity, &canonical_request, &string_to_sign, &signature);
    let mut headers: Vec<(&'static str, String)> = canonical_request
        .headers
        .headers
        .iter()
        // The HTTP client sets Host and Content-Type itself, to the same values.
        .filter(|(name, _)| *name != "host" && *name != "content-type")
        .cloned()
        .collect();
    headers.push(("authorization", auth));
    Ok(SignedRequest {
        headers,
        canonical_request,
        string_to_sign,
    })
}

#[cfg(test)]
mod tests {
    //! Golden vectors from tests/fixtures/golden, made by OpenSSL and a standard-library
    //! Python rendering of the protocol (see make.sh there), not by this code.

    use super::*;
    use crate::cert::Cert;
    use crate::signer::Identity;

    const TA: &str = "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/0b3b1c2d-aaaa-bbbb-cccc-000000000001";
    const PROFILE: &str =
        "arn:aws:rolesanywhere:us-east-1:123456789012:profile/5d6f7a8b-aaaa-bbbb-cccc-000000000002";
    const ROLE: &str = "arn:aws:iam::123456789012:role/path/Golden+Role=,.@-_";
    const BODY: &[u8] = br#"{"durationSeconds":3600}"#;
    // 2025-12-11T16:34:25Z
    const TIME: u64 = 1_765_470_865;

    fn golden(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/golden/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn identity(leaf: &str, chain: &[&str]) -> Identity {
        let dir = format!("{}/tests/fixtures/golden", env!("CARGO_MANIFEST_DIR"));
        let key = leaf.replace(".pem", ".key");
        let loaded =
            crate::signer::file::load(std::path::Path::new(&format!("{dir}/{key}")), &mut || {
                panic!("no password needed")
            })
            .expect("golden key");
        let cert = |n: &str| {
            Cert::first_from_file(std::path::Path::new(&format!("{dir}/{n}"))).expect("cert")
        };
        Identity::new(
            cert(leaf),
            chain.iter().map(|c| cert(c)).collect(),
            loaded.signer,
            "golden key",
        )
        .expect("matching key")
    }

    fn parts(host: &str) -> RequestParts<'_> {
        RequestParts {
            method: "POST",
            path: "/sessions",
            query: vec![
                ("trustAnchorArn", TA),
                ("roleArn", ROLE),
                ("profileArn", PROFILE),
            ],
            host,
            content_type: "application/json",
            body: BODY,
        }
    }

    fn region() -> Region {
        "us-east-1".parse().expect("region")
    }

    #[test]
    fn body_hash_matches_protocol_doc() {
        assert_eq!(
            hex_lower(&Digest::Sha256.hash(BODY)),
            "1a15f67f6619aa540b13e9a4c37d149fb2c9bdea25d82b73a3878826694dfe27"
        );
    }

    #[test]
    fn uri_encoding_is_rfc3986() {
        assert_eq!(uri_encode("a-Z_0.~ /:+=@,"), "a-Z_0.~%20%2F%3A%2B%3D%40%2C");
        assert_eq!(canonical_query(&[("b", "2"), ("a", "1 1")]), "a=1%201&b=2");
    }

    /// The hand-written encoder `uri_encode` replaced, kept as the oracle.
    fn uri_encode_by_hand(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 2048,
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        #[test]
        fn uri_encode_is_the_hand_written_encoder(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            text in proptest::prelude::any::<String>(),
        ) {
            let lossy = String::from_utf8_lossy(&bytes);
            proptest::prop_assert_eq!(uri_encode(&lossy), uri_encode_by_hand(&lossy));
            proptest::prop_assert_eq!(uri_encode(&text), uri_encode_by_hand(&text));
        }
    }

    #[test]
    fn rsa_vectors_every_stage() {
        let time = UtcTime::from_unix(TIME);
        for (name, host, leaf, chain) in [
            (
                "rsa-nochain",
                "rolesanywhere.us-east-1.amazonaws.com",
                "rsa.pem",
                &[][..],
            ),
            (
                "rsa-chain-port",
                "127.0.0.1:8443",
                "rsa.pem",
                &["inter.pem", "root.pem"][..],
            ),
        ] {
            let id = identity(leaf, chain);
            let p = parts(host);
            let creq = canonical_request(&p, &id, time);
            assert_eq!(
                creq.to_string(),
                golden(&format!("{name}.creq")),
                "{name}: canonical request"
            );
            let sts = string_to_sign(&creq, &id, &region(), time);
            assert_eq!(
                sts.to_string(),
                golden(&format!("{name}.sts")),
                "{name}: string to sign"
            );
            let signed = sign(&p, &id, &region(), time).expect("sign");
            let auth = signed
                .headers
                .iter()
                .find(|(n, _)| *n == "authorization")
                .map(|(_, v)| v.clone())
                .expect("authorization");
            assert_eq!(
                auth,
                golden(&format!("{name}.auth")),
                "{name}: Authorization"
            );
        }
    }

    #[test]
    fn ecdsa_vectors_serials_and_chain() {
        let time = UtcTime::from_unix(TIME);
        for (name, host, leaf, chain, curve) in [
            (
                "p256-nochain",
                "rolesanywhere.us-east-1.amazonaws.com",
                "p256.pem",
                &[][..],
                &ring::signature::ECDSA_P256_SHA256_ASN1,
            ),
            (
                "p384-chain",
                "127.0.0.1:8443",
                "p384.pem",
                &["inter.pem"][..],
                &ring::signature::ECDSA_P384_SHA256_ASN1,
            ),
        ] {
            let id = identity(leaf, chain);
            let p = parts(host);
            let signed = sign(&p, &id, &region(), time).expect("sign");
            assert_eq!(
                signed.canonical_request.to_string(),
                golden(&format!("{name}.creq"))
            );
            assert_eq!(
                signed.string_to_sign.to_string(),
                golden(&format!("{name}.sts"))
            );
            let auth = &signed
                .headers
                .iter()
                .find(|(n, _)| *n == "authorization")
                .expect("auth")
                .1;
            let prefix = golden(&format!("{name}.auth-prefix-ecdsa"));
            let sig_hex = auth
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{name}: {auth}"));
            let sig: Vec<u8> = (0..sig_hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&sig_hex[i..i + 2], 16).expect("hex"))
                .collect();
            ring::signature::UnparsedPublicKey::new(curve, id.leaf().public_key_bits())
                .verify(signed.string_to_sign.to_string().as_bytes(), &sig)
                .expect("ECDSA signature over SHA-256 verifies");
        }
    }

    #[test]
    fn chain_header_only_when_there_is_a_chain() {
        let time = UtcTime::from_unix(TIME);
        let id = identity("p256.pem", &[]);
        let signed = sign(&parts("h"), &id, &region(), time).expect("sign");
        let names: Vec<&str> = signed.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["x-amz-date", "x-amz-x509", "authorization"]);
    }
}
