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
use crate::model::{Account, DEFAULT_DURATION, MAX_DURATION, MIN_DURATION};
use crate::pki::{self, Cert, ChainError, PublicKey};
use crate::policy::{self, Context, Decision};
use crate::sigv4::{self, Algorithm, CanonicalRequest};

/// What the emulated account is configured with.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Trust anchors, profiles and roles.
    pub account: Account,
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

impl<'a> Request<'a> {
    /// The request whose head is `parts` and whose body is `body`.
    pub(crate) fn of(parts: &'a hyper::http::request::Parts, body: &'a [u8]) -> Self {
        Request {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
            body,
        }
    }
}

/// A request that passed every check.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    /// The signing algorithm.
    pub alg: Algorithm,
    /// The leaf certificate.
    pub leaf: Cert,
    /// The role to assume (one of the profile's roles).
    pub role: Arn,
    /// Granted session length in seconds.
    pub duration: u64,
    /// `roleSessionName`, when given.
    pub role_session_name: Option<String>,
    /// The trust anchor used.
    pub trust_anchor: Arn,
    /// The profile used.
    pub profile: Arn,
    /// Session tags from the profile's attribute mappings.
    pub session_tags: Vec<(String, String)>,
    /// The trust policy statement that allowed the role (none for a role without policy).
    pub statement: Option<String>,
    /// The profile's session policy and managed policies, for the log.
    pub session_policy: Option<String>,
    /// The profile's managed policy ARNs, for the log.
    pub managed_policy_arns: Vec<String>,
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
    /// For the log only: which condition, CRL or setting refused (never sent).
    pub detail: Option<String>,
}

impl Rejection {
    fn with_detail(mut self, detail: impl Into<String>) -> Rejection {
        self.detail = Some(detail.into());
        self
    }
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
            detail: None,
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
    if auth.region != policy.account.region {
        return Err(seen.denied(
            "region",
            format!(
                "Credential should be scoped to a valid region: '{}', not '{}'",
                policy.account.region, auth.region
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
    let chain_problem = |e: ChainError| match e {
        ChainError::Untrusted => seen.denied("chain", UNTRUSTED),
        ChainError::Expired(m) => seen.denied("expired", m),
        ChainError::NotYetValid(m) => seen.denied("not-yet-valid", m),
    };
    pki::build_path(&leaf, &intermediates, &policy.account.all_certs, now)
        .map_err(chain_problem)?;

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
    let account = &policy.account;
    let Some(anchor) = account.anchors.iter().find(|a| a.arn == trust_anchor) else {
        return Err(seen.reject(
            404,
            "ResourceNotFoundException",
            "trust-anchor",
            format!("Trust anchor {trust_anchor} not found"),
        ));
    };
    if !anchor.enabled {
        return Err(seen.denied(
            "trust-anchor-disabled",
            format!("Trust anchor {trust_anchor} is disabled"),
        ));
    }
    // The path found above may end at another anchor's certificate: this one must hold it.
    let path = pki::build_path(&leaf, &intermediates, &anchor.certs, now).map_err(|e| {
        chain_problem(e).with_detail(format!("no path to a certificate of {trust_anchor}"))
    })?;
    // The anchor's own certificate is not checked against the CRLs it signs.
    for (i, cert) in path.iter().take(path.len() - 1).enumerate() {
        if let Some(crl) = anchor.crls.iter().find(|c| c.enabled && c.revokes(cert)) {
            let which = if i == 0 { "signing" } else { "intermediate CA" };
            return Err(seen.denied("revoked", REVOKED).with_detail(format!(
                "the {which} certificate {} (serial {}) is revoked by CRL \"{}\"",
                cert.subject_text(),
                cert.serial_hex(),
                crl.name
            )));
        }
    }
    let Some(profile) = account.profiles.iter().find(|p| p.arn == profile) else {
        return Err(seen.reject(
            404,
            "ResourceNotFoundException",
            "profile",
            format!("Profile {profile} not found"),
        ));
    };
    if !profile.enabled {
        return Err(seen.denied(
            "profile-disabled",
            format!("Profile {} is disabled", profile.arn),
        ));
    }
    if !profile.role_arns.contains(&role) {
        return Err(seen.denied(
            "role",
            format!("Profile does not allow assuming role {role}"),
        ));
    }
    if profile.require_instance_properties
        && body
            .get("instanceProperties")
            .and_then(Value::as_object)
            .is_none_or(serde_json::Map::is_empty)
    {
        return Err(seen.denied(
            "instance-properties",
            "Profile requires instanceProperties in the request",
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
    if duration > profile.duration_seconds {
        return Err(seen.invalid(
            "duration",
            format!("The requested durationSeconds ({duration}) exceeds the profile's session limit ({})", profile.duration_seconds),
        ));
    }
    let role_session_name = match body.get("roleSessionName") {
        None | Some(Value::Null) => None,
        Some(_) if !profile.accept_role_session_name => {
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

    // 9. The role's trust policy, over the session tags the profile maps.
    let session_tags = profile.mappings.tags(leaf.der());
    let source_identity = source_identity(&leaf);
    let mut statement = None;
    if let Some(trust) = account
        .roles
        .iter()
        .find(|r| r.arn == role)
        .and_then(|r| r.trust_policy.as_ref())
    {
        let ctx = context(&session_tags, &trust_anchor, &source_identity);
        match trust.evaluate(&policy::ACTIONS, &ctx) {
            Decision::Allowed { statement: s } => statement = Some(s),
            Decision::Refused { reason } => {
                return Err(seen
                    .denied("trust-policy", format!("Unable to assume role for {role}"))
                    .with_detail(reason));
            }
        }
    }

    Ok(Accepted {
        alg: auth.alg,
        leaf,
        role,
        duration,
        role_session_name,
        trust_anchor,
        profile: profile.arn.clone(),
        session_tags,
        statement,
        session_policy: profile.session_policy.clone(),
        managed_policy_arns: profile.managed_policy_arns.clone(),
    })
}

/// The message of a path that reaches no trust anchor.
const UNTRUSTED: &str = "Untrusted Signing Certificate";
/// The message of a certificate on an enabled CRL of the trust anchor.
const REVOKED: &str = "Certificate revoked";

/// `sourceIdentity` as the service sets it: `CN=<common name>`, or the whole subject.
pub(crate) fn source_identity(leaf: &Cert) -> String {
    match leaf.common_name() {
        Some(cn) => format!("CN={cn}"),
        None => leaf.subject_text().to_string(),
    }
}

/// The request context the trust policy sees.
fn context(tags: &[(String, String)], trust_anchor: &Arn, source_identity: &str) -> Context {
    let mut ctx = Context::default();
    for (k, v) in tags {
        ctx.set(&format!("aws:PrincipalTag/{k}"), vec![v.clone()]);
        ctx.set(&format!("aws:RequestTag/{k}"), vec![v.clone()]);
    }
    ctx.set("aws:TagKeys", tags.iter().map(|(k, _)| k.clone()).collect());
    ctx.set("aws:SourceArn", vec![trust_anchor.to_string()]);
    ctx.set("aws:SourceAccount", vec![trust_anchor.account.clone()]);
    ctx.set("sts:SourceIdentity", vec![source_identity.to_owned()]);
    ctx
}

fn valid_session_name(s: &str) -> bool {
    (2..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}
