//! SigV4-X509 as the service sees it, written from PROTOCOL.md §2 and independent of
//! the library's signer: parsing the `Authorization` header, re-canonicalising the
//! query string and headers exactly as received, and building the canonical request
//! and the string to sign. Everything here is pure.

use std::fmt;

use hyper::HeaderMap;
use ring::digest;

/// The service name in the credential scope.
pub(crate) const SERVICE: &str = "rolesanywhere";
/// The scope terminator.
pub(crate) const TERMINATOR: &str = "aws4_request";
/// Headers every request must sign.
pub(crate) const REQUIRED_SIGNED: [&str; 4] = ["content-type", "host", "x-amz-date", "x-amz-x509"];
/// The optional chain header; signed whenever it is sent.
pub(crate) const CHAIN_HEADER: &str = "x-amz-x509-chain";

/// The signing algorithms the emulator verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    /// `AWS4-X509-RSA-SHA256`: RSASSA-PKCS1-v1_5 with SHA-256.
    Rsa,
    /// `AWS4-X509-ECDSA-SHA256`: ECDSA over SHA-256 (any curve), DER signature.
    Ecdsa,
    /// `AWS4-X509-MLDSA`: pure ML-DSA-44/65/87 over the string to sign, empty context.
    MlDsa,
}

impl Algorithm {
    /// The name as it appears in the `Authorization` header and the string to sign.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Algorithm::Rsa => "AWS4-X509-RSA-SHA256",
            Algorithm::Ecdsa => "AWS4-X509-ECDSA-SHA256",
            Algorithm::MlDsa => "AWS4-X509-MLDSA",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        match s {
            "AWS4-X509-RSA-SHA256" => Some(Algorithm::Rsa),
            "AWS4-X509-ECDSA-SHA256" => Some(Algorithm::Ecdsa),
            "AWS4-X509-MLDSA" => Some(Algorithm::MlDsa),
            _ => None,
        }
    }
}

/// A syntactically valid `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authorization {
    /// The signing algorithm.
    pub alg: Algorithm,
    /// The leaf serial number in decimal, as claimed.
    pub serial: String,
    /// `YYYYMMDD` of the scope.
    pub date: String,
    /// The region of the scope.
    pub region: String,
    /// Signed header names: lower-case, sorted, unique.
    pub signed_headers: Vec<String>,
    /// The decoded signature bytes.
    pub signature: Vec<u8>,
}

impl Authorization {
    /// The credential scope `date/region/rolesanywhere/aws4_request`.
    pub(crate) fn scope(&self) -> String {
        format!("{}/{}/{SERVICE}/{TERMINATOR}", self.date, self.region)
    }
}

/// Parses `ALG Credential=<serial>/<date>/<region>/rolesanywhere/aws4_request,
/// SignedHeaders=<a;b;c>, Signature=<hex>`. Components may come in any order, separated
/// by commas with optional spaces; each must appear exactly once. The error is a
/// message fit for the client.
pub(crate) fn parse_authorization(value: &str) -> Result<Authorization, String> {
    let value = value.trim();
    let (alg_name, rest) = value.split_once(' ').ok_or_else(|| {
        "Authorization header is not 'ALGORITHM Credential=…, SignedHeaders=…, Signature=…'"
            .to_string()
    })?;
    let alg = Algorithm::from_name(alg_name).ok_or_else(|| {
        format!(
            "Unsupported signing algorithm '{alg_name}' (expected AWS4-X509-RSA-SHA256, AWS4-X509-ECDSA-SHA256 or AWS4-X509-MLDSA)"
        )
    })?;

    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        let (key, val) = part
            .split_once('=')
            .ok_or_else(|| format!("Authorization component '{part}' is not KEY=VALUE"))?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return Err(format!("Unknown Authorization component '{key}'")),
        };
        if slot.replace(val).is_some() {
            return Err(format!("Authorization component '{key}' appears twice"));
        }
    }
    let credential = credential
        .ok_or_else(|| "Authorization header requires 'Credential' parameter".to_string())?;
    let signed = signed
        .ok_or_else(|| "Authorization header requires 'SignedHeaders' parameter".to_string())?;
    let signature = signature
        .ok_or_else(|| "Authorization header requires 'Signature' parameter".to_string())?;

    let parts: Vec<&str> = credential.split('/').collect();
    let [serial, date, region, service, terminator] = parts[..] else {
        return Err(format!(
            "Credential '{credential}' is not <serial>/<YYYYMMDD>/<region>/{SERVICE}/{TERMINATOR}"
        ));
    };
    if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "Credential serial '{serial}' is not the certificate serial number in decimal"
        ));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("Credential scope date '{date}' is not YYYYMMDD"));
    }
    if region.is_empty() {
        return Err("Credential scope has an empty region".to_string());
    }
    if service != SERVICE {
        return Err(format!(
            "Credential should be scoped to correct service: '{SERVICE}', not '{service}'"
        ));
    }
    if terminator != TERMINATOR {
        return Err(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{terminator}'"
        ));
    }

    let signed_headers = parse_signed_headers(signed)?;
    let signature = decode_lower_hex(signature)
        .ok_or_else(|| "Signature is not non-empty lower-case hex".to_string())?;
    Ok(Authorization {
        alg,
        serial: serial.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        signed_headers,
        signature,
    })
}

fn parse_signed_headers(list: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = list.split(';').map(str::to_string).collect();
    for name in &names {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "SignedHeaders '{list}' must be lower-case header names separated by ';'"
            ));
        }
    }
    if names.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "SignedHeaders '{list}' must be sorted and without duplicates"
        ));
    }
    for required in REQUIRED_SIGNED {
        if !names.iter().any(|n| n == required) {
            return Err(format!("SignedHeaders '{list}' must include '{required}'"));
        }
    }
    Ok(names)
}

fn decode_lower_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Lower-case hex SHA-256 of bytes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// RFC 3986 encoding: every byte but `A-Za-z0-9-_.~` becomes `%XX` with upper-case hex.
pub(crate) fn uri_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (either case). `+` stays a literal plus (RFC 3986, not
/// form encoding). `None` for a truncated or non-hex escape.
pub(crate) fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let h = bytes.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(h).ok()?;
            out.push(u8::from_str_radix(s, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Decoded query parameters: (name, value) byte strings in the order received.
pub(crate) type QueryParams = Vec<(Vec<u8>, Vec<u8>)>;

/// The decoded query parameters, in the order received. Empty segments are skipped; a
/// segment without `=` has an empty value.
pub(crate) fn query_params(raw: &str) -> Result<QueryParams, String> {
    raw.split('&')
        .filter(|seg| !seg.is_empty())
        .map(|seg| {
            let (name, value) = seg.split_once('=').unwrap_or((seg, ""));
            let bad = || format!("Malformed percent-encoding in query parameter '{seg}'");
            Ok((
                percent_decode(name).ok_or_else(bad)?,
                percent_decode(value).ok_or_else(bad)?,
            ))
        })
        .collect()
}

/// The canonical query string: every name and value decoded, re-encoded per
/// RFC 3986 with upper-case hex, sorted by name then value, joined with `&`.
pub(crate) fn canonical_query(raw: &str) -> Result<String, String> {
    let mut pairs: Vec<(String, String)> = query_params(raw)?
        .iter()
        .map(|(n, v)| (uri_encode(n), uri_encode(v)))
        .collect();
    pairs.sort();
    Ok(pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&"))
}

/// A header value as SigV4 canonicalises it: surrounding whitespace removed and runs
/// of spaces collapsed to one.
pub(crate) fn trim_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut last_space = false;
    for c in v.trim_matches(|c| c == ' ' || c == '\t').chars() {
        if c == ' ' {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    out
}

/// The canonical headers block: `name:value\n` for each signed header, in the given
/// (sorted) order. Repeated headers are joined with `,`. Fails when a signed header is
/// absent or not text.
pub(crate) fn canonical_headers(headers: &HeaderMap, signed: &[String]) -> Result<String, String> {
    let mut out = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .get_all(name.as_str())
            .iter()
            .map(|v| {
                std::str::from_utf8(v.as_bytes())
                    .map(trim_value)
                    .map_err(|_| format!("Signed header '{name}' is not UTF-8"))
            })
            .collect::<Result<_, _>>()?;
        if values.is_empty() {
            return Err(format!(
                "Signed header '{name}' is missing from the request"
            ));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// The canonical request; its `Display` is the exact text that is hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CanonicalRequest {
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Output of [`canonical_query`].
    pub query: String,
    /// Output of [`canonical_headers`].
    pub headers: String,
    /// `a;b;c`.
    pub signed_headers: String,
    /// Lower-case hex SHA-256 of the body.
    pub payload_hash: String,
}

impl fmt::Display for CanonicalRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.method,
            self.path,
            self.query,
            self.headers,
            self.signed_headers,
            self.payload_hash
        )
    }
}

/// `ALG\nX-Amz-Date\nscope\nhex(sha256(canonical request))`.
pub(crate) fn string_to_sign(
    alg: Algorithm,
    amz_date: &str,
    scope: &str,
    canonical: &CanonicalRequest,
) -> String {
    format!(
        "{}\n{amz_date}\n{scope}\n{}",
        alg.name(),
        sha256_hex(canonical.to_string().as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    const GOOD: &str = "AWS4-X509-ECDSA-SHA256 Credential=124562745837719059303232313298209415765143613485/20250101/us-east-1/rolesanywhere/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-x509, Signature=3045aa";

    #[test]
    fn encodes_rfc3986_with_upper_hex() {
        assert_eq!(uri_encode(b"a b/c:d~e-f_g.h"), "a%20b%2Fc%3Ad~e-f_g.h");
        assert_eq!(uri_encode("é+*".as_bytes()), "%C3%A9%2B%2A");
        assert_eq!(
            uri_encode(b"arn:aws:iam::123456789012:role/x"),
            "arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fx"
        );
    }

    #[test]
    fn canonical_query_sorts_and_reencodes() {
        // Received loosely encoded (lower-case hex, raw ':' and '~', encoded '~'), unsorted.
        let raw = "trustAnchorArn=arn:aws:x%2fy&profileArn=a%20b%7Ec&roleArn=r~s&&flag";
        assert_eq!(
            canonical_query(raw).expect("valid"),
            "flag=&profileArn=a%20b~c&roleArn=r~s&trustAnchorArn=arn%3Aaws%3Ax%2Fy"
        );
        assert_eq!(canonical_query("").expect("empty"), "");
        assert_eq!(canonical_query("a=1+2").expect("plus"), "a=1%2B2");
        assert!(canonical_query("a=%zz").is_err());
        assert!(canonical_query("a=%4").is_err());
    }

    #[test]
    fn trims_and_collapses_header_values() {
        assert_eq!(trim_value("  a   b  c "), "a b c");
        assert_eq!(trim_value("\tapplication/json\t"), "application/json");
        assert_eq!(trim_value("x"), "x");
        assert_eq!(trim_value("   "), "");
    }

    #[test]
    fn canonical_headers_joins_repeats_and_requires_presence() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:8443"));
        h.append("x-multi", HeaderValue::from_static(" a  b "));
        h.append("x-multi", HeaderValue::from_static("c"));
        let signed = vec!["host".to_string(), "x-multi".to_string()];
        assert_eq!(
            canonical_headers(&h, &signed).expect("present"),
            "host:127.0.0.1:8443\nx-multi:a b,c\n"
        );
        assert!(canonical_headers(&h, &["x-absent".to_string()]).is_err());
    }

    #[test]
    fn canonical_request_has_blank_line_before_signed_headers() {
        let cr = CanonicalRequest {
            method: "POST".into(),
            path: "/sessions".into(),
            query: "a=b".into(),
            headers: "host:h\n".into(),
            signed_headers: "host".into(),
            payload_hash: sha256_hex(br#"{"durationSeconds":3600}"#),
        };
        assert_eq!(
            cr.to_string(),
            "POST\n/sessions\na=b\nhost:h\n\nhost\n1a15f67f6619aa540b13e9a4c37d149fb2c9bdea25d82b73a3878826694dfe27"
        );
    }

    #[test]
    fn parses_good_authorization() {
        let a = parse_authorization(GOOD).expect("good");
        assert_eq!(a.alg, Algorithm::Ecdsa);
        assert_eq!(a.serial, "124562745837719059303232313298209415765143613485");
        assert_eq!(a.scope(), "20250101/us-east-1/rolesanywhere/aws4_request");
        assert_eq!(
            a.signed_headers,
            ["content-type", "host", "x-amz-date", "x-amz-x509"]
        );
        assert_eq!(a.signature, [0x30, 0x45, 0xaa]);
        // No spaces after commas, components reordered, chain header signed.
        let b = parse_authorization(
            "AWS4-X509-RSA-SHA256 Signature=00,SignedHeaders=content-type;host;x-amz-date;x-amz-x509;x-amz-x509-chain,Credential=7/20250101/eu-west-1/rolesanywhere/aws4_request",
        )
        .expect("good");
        assert_eq!(b.alg, Algorithm::Rsa);
        assert_eq!(b.signed_headers.len(), 5);
    }

    #[test]
    fn rejects_bad_authorization() {
        let cases = [
            ("", "not 'ALGORITHM"),
            (
                "AWS4-HMAC-SHA256 Credential=1/20250101/us-east-1/rolesanywhere/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-x509, Signature=00",
                "Unsupported signing algorithm",
            ),
            (
                &GOOD.replace(
                    "Credential=124562745837719059303232313298209415765143613485",
                    "Credential=0x1F",
                ),
                "decimal",
            ),
            (&GOOD.replace("/rolesanywhere/", "/sts/"), "correct service"),
            (&GOOD.replace("aws4_request", "aws4_reqest"), "terminator"),
            (&GOOD.replace("20250101", "2025-01-01"), "YYYYMMDD"),
            (&GOOD.replace("/us-east-1/", "/"), "is not <serial>"),
            (
                &GOOD.replace(";x-amz-x509", ""),
                "must include 'x-amz-x509'",
            ),
            (
                &GOOD.replace("content-type;host", "host;content-type"),
                "sorted",
            ),
            (
                &GOOD.replace("content-type;", "Content-Type;"),
                "lower-case",
            ),
            (&GOOD.replace("3045aa", "3045AA"), "lower-case hex"),
            (&GOOD.replace("3045aa", "3045a"), "lower-case hex"),
            (
                &GOOD.replace(", Signature=3045aa", ""),
                "requires 'Signature'",
            ),
            (&format!("{GOOD}, Signature=00"), "appears twice"),
            (
                &format!("{GOOD}, Extra=1"),
                "Unknown Authorization component",
            ),
        ];
        for (header, want) in cases {
            let err = parse_authorization(header).expect_err(header);
            assert!(err.contains(want), "{header:?}: {err:?} lacks {want:?}");
        }
    }
}
