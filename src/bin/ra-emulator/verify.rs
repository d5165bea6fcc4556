//! The CreateSession checks, in the order the service applies them, from the raw
//! request as received. [`verify`] is a pure function of the request, the policy and
//! the current time; the first failed check decides the AWS-style error.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::HeaderMap;
use ring::signature::UnparsedPublicKey;
use serde_json::Value;

use crate::arn::{self, Arn, Kind};
use crate::clock;
use crate::pki::{self, Cert, ChainError, PublicKey};
use crate::sigv4::{self, Algorithm, CanonicalRequest};

/// Shortest session the service grants.
pub(crate) const MIN_DURATION: u64 = 900;
/// Longest session the service grants.
pub(crate) const MAX_DURATION: u64 = 43_200;
/// Default session length when `durationSeconds` is absent.
pub(crate) const DEFAULT_DURATION: u64 = 3600;

/// What the emulated account is configured with.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Trust anchor CA certificates.
    pub anchors: Vec<Cert>,
    /// The one trust anchor that exists.
    pub trust_anchor: Arn,
    /// The one profile that exists.
    pub profile: Arn,
    /// Roles the profile may assume.
    pub roles: Vec<Arn>,
    /// The profile's session limit in seconds.
    pub max_duration: u64,
    /// Whether the profile refuses `roleSessionName`.
    pub deny_role_session_name: bool,
    /// Allowed |X-Amz-Date − now| in seconds.
    pub clock_skew: u64,
}

/// The request as received.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path, without the query.
    pub path: &'a str,
    /// Raw query string (without `?`), if any.
    pub query: Option<&'a str>,
    /// Headers as received.
    pub headers: &'a HeaderMap,
    /// Body bytes.
    pub body: &'a [u8],
}

/// A request that passed every check.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    /// The signing algorithm.
    pub alg: Algorithm,
    /// The leaf certificate.
    pub leaf: Cert,
    /// The role to assume (one of the policy's roles).
    pub role: Arn,
    /// Granted session length in seconds.
    pub duration: u64,
    /// `roleSessionName`, when given.
    pub role_session_name: Option<String>,
}

/// The first failed check, as the service answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// HTTP status.
    pub status: u16,
    /// AWS error code (`x-amzn-ErrorType` before the colon).
    pub code: &'static str,
    /// Message for the body.
    pub message: String,
    /// Stable name of the failed check, for logs and tests.
    pub check: &'static str,
    /// Serial claimed in the Credential, once known.
    pub serial: Option<String>,
    /// Algorithm from the Authorization header, once known.
    pub alg: Option<Algorithm>,
}

/// Context accumulated while checking, so rejections carry serial and algorithm.
#[derive(Default)]
struct Seen {
    serial: Option<String>,
    alg: Option<Algorithm>,
}

impl Seen {
    fn reject(
        &self,
        status: u16,
        code: &'static str,
        check: &'static str,
        message: impl Into<String>,
    ) -> Rejection {
        Rejection {
            status,
            code,
            message: message.into(),
            check,
            serial: self.serial.clone(),
            alg: self.alg,
        }
    }

    fn denied(&self, check: &'static str, message: impl Into<String>) -> Rejection {
        self.reject(403, "AccessDeniedException", check, message)
    }

    fn invalid(&self, check: &'static str, message: impl Into<String>) -> Rejection {
        self.reject(400, "ValidationException", check, message)
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Runs every check on a CreateSession request at time `now` (Unix seconds).
pub(crate) fn verify(req: &Request<'_>, policy: &Policy, now: u64) -> Result<Accepted, Rejection> {
    let mut seen = Seen::default();

    // 1. Authorization header syntax.
    let auth_value = header(req.headers, "authorization")
        .ok_or_else(|| seen.denied("authorization", "Missing Authentication Token"))?;
    let auth =
        sigv4::parse_authorization(auth_value).map_err(|m| seen.denied("authorization", m))?;
    seen.serial = Some(auth.serial.clone());
    seen.alg = Some(auth.alg);
    if req.headers.contains_key(sigv4::CHAIN_HEADER)
        && !auth.signed_headers.iter().any(|h| h == sigv4::CHAIN_HEADER)
    {
        return Err(seen.denied(
            "authorization",
            "SignedHeaders must include 'x-amz-x509-chain' when that header is sent",
        ));
    }

    // 2. Date, skew, scope date and region.
    let amz_date = header(req.headers, "x-amz-date")
        .ok_or_else(|| seen.denied("date", "Missing X-Amz-Date header"))?;
    let signed_at = clock::parse_amz_date(amz_date).ok_or_else(|| {
        seen.denied(
            "date",
            format!("X-Amz-Date '{amz_date}' is not YYYYMMDD'T'HHMMSS'Z'"),
        )
    })?;
    if signed_at + policy.clock_skew < now {
        return Err(seen.denied(
            "date",
            format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - {} sec.)",
                clock::amz_date(now - policy.clock_skew),
                clock::amz_date(now),
                policy.clock_skew
            ),
        ));
    }
    if signed_at > now + policy.clock_skew {
        return Err(seen.denied(
            "date",
            format!(
                "Signature not yet current: {amz_date} is still later than {} ({} + {} sec.)",
                clock::amz_date(now + policy.clock_skew),
                clock::amz_date(now),
                policy.clock_skew
            ),
        ));
    }
    if auth.date != amz_date[..8] {
        return Err(seen.denied(
            "date",
            format!(
                "Date in Credential scope does not match YYYYMMDD from X-Amz-Date: '{}' != '{}'",
                auth.date,
                &amz_date[..8]
            ),
        ));
    }
    if auth.region != policy.trust_anchor.region {
        return Err(seen.denied(
            "region",
            format!(
                "Credential should be scoped to a valid region: '{}', not '{}'",
                policy.trust_anchor.region, auth.region
            ),
        ));
    }

    // 3. The leaf certificate and its serial.
    let x509 = header(req.headers, "x-amz-x509")
        .ok_or_else(|| seen.denied("certificate", "Missing X-Amz-X509 header"))?;
    let leaf_der = STANDARD
        .decode(x509)
        .map_err(|_| seen.denied("certificate", "X-Amz-X509 is not base64"))?;
    let leaf = Cert::from_der(leaf_der)
        .map_err(|e| seen.denied("certificate", format!("X-Amz-X509: {e}")))?;
    let leaf_serial = leaf.serial_decimal();
    if leaf_serial != auth.serial {
        return Err(seen.denied(
            "serial",
            format!(
                "Credential serial {} does not match the X-Amz-X509 certificate's serial {leaf_serial}",
                auth.serial
            ),
        ));
    }

    // 4. Algorithm against key type.
    let key_matches = matches!(
        (auth.alg, leaf.key()),
        (Algorithm::Rsa, PublicKey::Rsa(_))
            | (
                Algorithm::Ecdsa,
                PublicKey::EcP256(_) | PublicKey::EcP384(_)
            )
            | (
                Algorithm::MlDsa,
                PublicKey::MlDsa44(_) | PublicKey::MlDsa65(_) | PublicKey::MlDsa87(_)
            )
    );
    if !key_matches {
        return Err(seen.denied(
            "algorithm",
            format!(
                "Signing algorithm {} does not match the certificate's {} key",
                auth.alg.name(),
                leaf.key()
            ),
        ));
    }

    // 5. The signature over the re-canonicalised request.
    let query =
        sigv4::canonical_query(req.query.unwrap_or("")).map_err(|m| seen.invalid("query", m))?;
    let headers = sigv4::canonical_headers(req.headers, &auth.signed_headers)
        .map_err(|m| seen.denied("signature", m))?;
    let canonical = CanonicalRequest {
        method: req.method.to_string(),
        path: req.path.to_string(),
        query,
        headers,
        signed_headers: auth.signed_headers.join(";"),
        payload_hash: sigv4::sha256_hex(req.body),
    };
    let to_sign = sigv4::string_to_sign(auth.alg, amz_date, &auth.scope(), &canonical);
    if auth.alg == Algorithm::MlDsa {
        if !pki::ml_dsa_verify(leaf.key(), to_sign.as_bytes(), &auth.signature) {
            return Err(seen.denied("signature", "Invalid signature"));
        }
    } else {
        let (ring_alg, key) = pki::request_verification_alg(leaf.key())
            .ok_or_else(|| seen.denied("algorithm", "Unsupported certificate key"))?;
        UnparsedPublicKey::new(ring_alg, key)
            .verify(to_sign.as_bytes(), &auth.signature)
            .map_err(|_| seen.denied("signature", "Invalid signature"))?;
    }

    // 6. The chain to a trust anchor.
    let intermediates = match header(req.headers, sigv4::CHAIN_HEADER) {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|b64| {
                let der = STANDARD.decode(b64.trim()).map_err(|_| {
                    seen.denied("chain", "X-Amz-X509-Chain is not comma-separated base64")
                })?;
                Cert::from_der(der)
                    .map_err(|e| seen.denied("chain", format!("X-Amz-X509-Chain: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    match pki::build_path(&leaf, &intermediates, &policy.anchors, now) {
        Ok(_) => {}
        Err(ChainError::Untrusted) => {
            return Err(seen.denied("chain", "Untrusted Signing Certificate"));
        }
        Err(ChainError::Expired(m)) => return Err(seen.denied("expired", m)),
        Err(ChainError::NotYetValid(m)) => return Err(seen.denied("not-yet-valid", m)),
    }

    // 7. ARNs: query first, JSON body second.
    let body: serde_json::Map<String, Value> = if req.body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        match serde_json::from_slice(req.body) {
            Ok(Value::Object(map)) => map,
            _ => return Err(seen.invalid("body", "Request body is not a JSON object")),
        }
    };
    let params =
        sigv4::query_params(req.query.unwrap_or("")).map_err(|m| seen.invalid("query", m))?;
    let param = |kind: Kind| -> Result<Arn, Rejection> {
        let name = kind.param();
        let from_query = params
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        let value = match from_query {
            Some(v) => v,
            None => match body.get(name) {
                Some(Value::String(s)) => s.clone(),
                None | Some(Value::Null) => {
                    return Err(seen.invalid(
                        "arn",
                        format!("1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"),
                    ));
                }
                Some(_) => return Err(seen.invalid("arn", format!("'{name}' must be a string"))),
            },
        };
        arn::parse(&value, kind).map_err(|m| seen.invalid("arn", m))
    };
    let trust_anchor = param(Kind::TrustAnchor)?;
    let profile = param(Kind::Profile)?;
    let role = param(Kind::Role)?;
    if trust_anchor != policy.trust_anchor {
        return Err(seen.reject(
            404,
            "ResourceNotFoundException",
            "trust-anchor",
            format!("Trust anchor {trust_anchor} not found"),
        ));
    }
    if profile != policy.profile {
        return Err(seen.reject(
            404,
            "ResourceNotFoundException",
            "profile",
            format!("Profile {profile} not found"),
        ));
    }
    if !policy.roles.contains(&role) {
        return Err(seen.denied(
            "role",
            format!("Profile does not allow assuming role {role}"),
        ));
    }

    // 8. Duration and session name.
    let duration = match body.get("durationSeconds") {
        None | Some(Value::Null) => DEFAULT_DURATION,
        Some(v) => v.as_u64().ok_or_else(|| {
            seen.invalid(
                "duration",
                format!("durationSeconds {v} is not a whole number of seconds"),
            )
        })?,
    };
    if duration < MIN_DURATION {
        return Err(seen.invalid("duration", format!("1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to {MIN_DURATION}")));
    }
    if duration > MAX_DURATION {
        return Err(seen.invalid("duration", format!("1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to {MAX_DURATION}")));
    }
    if duration > policy.max_duration {
        return Err(seen.invalid(
            "duration",
            format!("The requested durationSeconds ({duration}) exceeds the profile's session limit ({})", policy.max_duration),
        ));
    }
    let role_session_name = match body.get("roleSessionName") {
        None | Some(Value::Null) => None,
        Some(_) if policy.deny_role_session_name => {
            return Err(seen.denied(
                "role-session-name",
                "Not authorized to set roleSessionName.",
            ));
        }
        Some(Value::String(s)) if valid_session_name(s) => Some(s.clone()),
        Some(v) => {
            return Err(seen.invalid(
                "role-session-name",
                format!("1 validation error detected: Value {v} at 'roleSessionName' failed to satisfy constraint: Member must match [\\w+=,.@-]{{2,64}}"),
            ));
        }
    };

    Ok(Accepted {
        alg: auth.alg,
        leaf,
        role,
        duration,
        role_session_name,
    })
}

fn valid_session_name(s: &str) -> bool {
    (2..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}
