//! Validated configuration: newtypes that cannot hold invalid values. The CLI parses flags
//! into these; nothing below the CLI sees raw strings for ARNs, regions or durations.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::pkcs11_uri::TokenUri;
use crate::secret::SecretSource;

/// A bad configuration value: what is wrong and, when there is more to say than the
/// message does, what to do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct ConfigError {
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl ConfigError {
    /// A bad value.
    pub fn new(message: String) -> ConfigError {
        ConfigError {
            message,
            hint: None,
        }
    }

    /// Adds what to do about it.
    pub fn with_hint(mut self, hint: &str) -> ConfigError {
        self.hint = Some(hint.to_owned());
        self
    }
}

/// An AWS region name such as `us-east-1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region(String);

impl Region {
    /// The region name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Region {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.split('-').count() >= 3
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Region(s.to_owned()))
        } else {
            Err(ConfigError::new(format!(
                "\"{s}\" is not an AWS region name (expected something like \"us-east-1\")"
            )))
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which IAM Roles Anywhere or IAM resource an ARN must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArnKind {
    /// `arn:<partition>:rolesanywhere:<region>:<account>:trust-anchor/<uuid>`.
    TrustAnchor,
    /// `arn:<partition>:rolesanywhere:<region>:<account>:profile/<uuid>`.
    Profile,
    /// `arn:<partition>:iam::<account>:role/<path/name>`.
    Role,
}

impl ArnKind {
    fn flag(self) -> &'static str {
        match self {
            ArnKind::TrustAnchor => "--trust-anchor-arn",
            ArnKind::Profile => "--profile-arn",
            ArnKind::Role => "--role-arn",
        }
    }

    fn example(self) -> &'static str {
        match self {
            ArnKind::TrustAnchor => {
                "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/0b3b1c2d-…"
            }
            ArnKind::Profile => "arn:aws:rolesanywhere:us-east-1:123456789012:profile/5d6f7a8b-…",
            ArnKind::Role => "arn:aws:iam::123456789012:role/MyRole",
        }
    }
}

/// A checked ARN of a given kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    text: String,
    partition: String,
    region: Option<Region>,
    resource: String,
}

impl Arn {
    /// Parses `text` as an ARN of `kind`.
    pub fn parse(text: &str, kind: ArnKind) -> Result<Self, ConfigError> {
        let bad = |why: &str| {
            ConfigError::new(format!(
                "{} \"{text}\" is malformed: {why} (expected e.g. {})",
                kind.flag(),
                kind.example()
            ))
        };
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        if parts.len() != 6 || parts[0] != "arn" {
            return Err(bad(
                "an ARN has six ':'-separated parts and starts with \"arn:\"",
            ));
        }
        let (partition, service, region, account, resource) =
            (parts[1], parts[2], parts[3], parts[4], parts[5]);
        if !matches!(
            partition,
            "aws" | "aws-cn" | "aws-us-gov" | "aws-iso" | "aws-iso-b"
        ) && !partition.starts_with("aws-")
        {
            return Err(bad("unknown partition"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the account id must be 12 digits"));
        }
        let (want_service, prefix) = match kind {
            ArnKind::TrustAnchor => ("rolesanywhere", "trust-anchor/"),
            ArnKind::Profile => ("rolesanywhere", "profile/"),
            ArnKind::Role => ("iam", "role/"),
        };
        if service != want_service {
            return Err(bad(&format!("the service must be \"{want_service}\"")));
        }
        let rest = resource
            .strip_prefix(prefix)
            .ok_or_else(|| bad(&format!("the resource must start with \"{prefix}\"")))?;
        if rest.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the resource id is empty or has spaces"));
        }
        let region = match kind {
            ArnKind::Role => {
                if !region.is_empty() {
                    return Err(bad("IAM role ARNs have an empty region"));
                }
                None
            }
            _ => Some(
                region
                    .parse()
                    .map_err(|_| bad("the region is missing or invalid"))?,
            ),
        };
        Ok(Arn {
            text: text.to_owned(),
            partition: partition.to_owned(),
            region,
            resource: resource.to_owned(),
        })
    }

    /// The ARN text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The region part (none for IAM roles).
    pub fn region(&self) -> Option<&Region> {
        self.region.as_ref()
    }

    /// The partition (`aws`, `aws-cn`, …).
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// The resource part (`role/MyRole`).
    pub fn resource(&self) -> &str {
        &self.resource
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A session duration in seconds, 900..=43200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionDuration(u32);

impl SessionDuration {
    /// The smallest duration the service accepts.
    pub const MIN: u32 = 900;
    /// The largest duration the service accepts.
    pub const MAX: u32 = 43200;

    /// Checks `seconds`.
    pub fn new(seconds: u32) -> Result<Self, ConfigError> {
        if (Self::MIN..=Self::MAX).contains(&seconds) {
            Ok(SessionDuration(seconds))
        } else {
            Err(ConfigError::new(format!(
                "--session-duration {seconds} is out of range: IAM Roles Anywhere accepts {}..{} seconds",
                Self::MIN,
                Self::MAX
            )))
        }
    }

    /// Seconds.
    pub fn seconds(self) -> u32 {
        self.0
    }
}

impl Default for SessionDuration {
    fn default() -> Self {
        SessionDuration(3600)
    }
}

/// The three ARNs and session options of one CreateSession call.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    /// The trust anchor.
    pub trust_anchor_arn: Arn,
    /// The profile.
    pub profile_arn: Arn,
    /// The role to assume.
    pub role_arn: Arn,
    /// How long the credentials last.
    pub duration: SessionDuration,
    /// An optional role session name.
    pub role_session_name: Option<String>,
}

impl SessionRequest {
    /// Builds a request, refusing a trust anchor and profile in different regions or
    /// partitions (the service would reject it after a signature).
    pub fn new(
        trust_anchor_arn: Arn,
        profile_arn: Arn,
        role_arn: Arn,
        duration: SessionDuration,
        role_session_name: Option<String>,
    ) -> Result<Self, ConfigError> {
        if trust_anchor_arn.region() != profile_arn.region() {
            return Err(ConfigError::new(format!(
                "the trust anchor is in {} but the profile is in {}: both must be in the same region",
                trust_anchor_arn.region().map(Region::as_str).unwrap_or("?"),
                profile_arn.region().map(Region::as_str).unwrap_or("?"),
            )));
        }
        if trust_anchor_arn.partition() != profile_arn.partition()
            || trust_anchor_arn.partition() != role_arn.partition()
        {
            return Err(ConfigError::new(
                "the trust anchor, profile and role ARNs must be in the same partition".into(),
            ));
        }
        if let Some(name) = &role_session_name {
            let ok = (2..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"=,.@-_".contains(&b));
            if !ok {
                return Err(ConfigError::new(format!(
                    "--role-session-name \"{name}\" is invalid: 2 to 64 characters of letters, digits and =,.@-_"
                )));
            }
        }
        Ok(SessionRequest {
            trust_anchor_arn,
            profile_arn,
            role_arn,
            duration,
            role_session_name,
        })
    }

    /// The region the request is signed for, from the trust anchor unless overridden.
    pub fn default_region(&self) -> Region {
        self.trust_anchor_arn
            .region()
            .cloned()
            .unwrap_or_else(|| Region("us-east-1".into()))
    }
}

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// A PEM or DER file (possibly holding the key too).
    File(PathBuf),
    /// A certificate object on a PKCS#11 token.
    Pkcs11(TokenUri),
}

/// Where the private key lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivateKeySource {
    /// A key file (PEM, DER, PKCS#12, or a TSS2 key file).
    File(PathBuf),
    /// A private key object on a PKCS#11 token.
    Pkcs11(TokenUri),
    /// The private key on the certificate's token whose public key is the certificate's
    /// (`--certificate pkcs11:URI` without `--private-key`, as the Go helper takes it).
    MatchingTokenCertificate,
    /// A persistent TPM key, `handle:0x81000101`.
    TpmHandle(u32),
}

/// Settings of the PKCS#11 backend.
#[derive(Debug, Clone, Default)]
pub struct Pkcs11Settings {
    /// `--pkcs11-lib`: the module to load unless the URI names one.
    pub module: Option<PathBuf>,
    /// Where the user PIN comes from, in order (after the URI's own `pin-source`/`pin-value`).
    pub pin_sources: Vec<SecretSource>,
    /// `--reuse-pin`: answer a context-specific login with the user PIN.
    pub reuse_pin: bool,
    /// Where the context-specific PIN of a `CKA_ALWAYS_AUTHENTICATE` key comes from when
    /// `reuse_pin` is off.
    pub context_pin_sources: Vec<SecretSource>,
}

/// Which TPM, and how long one command to it may take: chosen where flags are lowered,
/// from `--tpm-tcti`, then `TPM2TOOLS_TCTI`, `TSS2_TCTI`, `TPM_DEVICE` (a device path or a
/// UNIX socket, as `device:PATH`), then `device:/dev/tpmrm0`; the limit from
/// `RA_SIGNER_TPM_TIMEOUT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmConnection {
    /// The TCTI string.
    pub tcti: String,
    /// Where it came from, for messages.
    pub origin: &'static str,
    /// How long one TPM operation may take (0: for ever).
    pub timeout: Duration,
}

impl TpmConnection {
    /// The TCTI when nothing names one.
    pub const DEFAULT_TCTI: &'static str = "device:/dev/tpmrm0";
    /// The limit on one TPM operation by default: RSA key generation on a discrete TPM takes
    /// tens of seconds.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

    /// The TPM `flag` names, else the one `env` names (a lookup of a variable by name).
    pub fn resolve(flag: Option<&str>, env: impl Fn(&str) -> Option<String>) -> TpmConnection {
        let timeout = env(crate::env::TPM_TIMEOUT)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(Self::DEFAULT_TIMEOUT, Duration::from_secs);
        let pick = |tcti: String, origin: &'static str| TpmConnection {
            tcti,
            origin,
            timeout,
        };
        if let Some(flag) = flag {
            return pick(flag.trim().to_owned(), "--tpm-tcti");
        }
        for name in [crate::env::TPM2TOOLS_TCTI, crate::env::TSS2_TCTI] {
            if let Some(value) = env(name) {
                return pick(value.trim().to_owned(), name);
            }
        }
        if let Some(device) = env(crate::env::TPM_DEVICE) {
            let device = device.trim();
            let text = if device.contains(':') {
                device.to_owned()
            } else {
                format!("device:{device}")
            };
            return pick(text, crate::env::TPM_DEVICE);
        }
        pick(Self::DEFAULT_TCTI.to_owned(), "the default")
    }

    /// A TCTI given as `--tpm-tcti` would give it, with the default limit.
    pub fn explicit(tcti: &str) -> TpmConnection {
        TpmConnection {
            tcti: tcti.to_owned(),
            origin: "--tpm-tcti",
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

impl Default for TpmConnection {
    fn default() -> Self {
        TpmConnection {
            tcti: Self::DEFAULT_TCTI.to_owned(),
            origin: "the default",
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

/// Settings of the TPM backend.
#[derive(Debug, Clone, Default)]
pub struct TpmSettings {
    /// Which TPM.
    pub connection: TpmConnection,
    /// Where the parent's (or hierarchy's) password comes from.
    pub parent_password_sources: Vec<SecretSource>,
    /// Where the key password comes from.
    pub key_password_sources: Vec<SecretSource>,
    /// `--no-tpm-key-password`: the key has no password; never ask.
    pub no_key_password: bool,
}

/// Everything needed to open an [`Identity`](crate::signer::Identity).
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// The certificate, when not taken from the key's file or token.
    pub certificate: Option<CertificateSource>,
    /// The key.
    pub private_key: PrivateKeySource,
    /// `--intermediates`: a PEM bundle sent as the chain (overrides any found elsewhere).
    pub intermediates: Option<PathBuf>,
    /// Where the password of an encrypted key file comes from.
    pub key_password_sources: Vec<SecretSource>,
    /// PKCS#11 settings.
    pub pkcs11: Pkcs11Settings,
    /// TPM settings.
    pub tpm: TpmSettings,
    /// `--require-hardware-key`: refuse a key file, and a token or TPM key that can leave
    /// (or once could have left) its hardware, before signing.
    pub require_hardware_key: bool,
}

/// `text` as a `pkcs11:` URI when it is one: the scheme matched case-insensitively, around
/// spaces trimmed, so that `PKCS11:…` or ` pkcs11:…` are never taken for file names (whose
/// errors would echo a `pin-value`).
pub fn as_pkcs11_uri(text: &str) -> Option<&str> {
    let trimmed = text.trim();
    trimmed
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("pkcs11:"))
        .then_some(trimmed)
}

/// Parses a `--private-key` value's TPM handle form, `handle:0x81000101` or
/// `handle:81000101`.
pub fn parse_tpm_handle(s: &str) -> Option<Result<u32, ConfigError>> {
    let rest = s.strip_prefix("handle:")?;
    let hex = rest
        .strip_prefix("0x")
        .or_else(|| rest.strip_prefix("0X"))
        .unwrap_or(rest);
    Some(
        u32::from_str_radix(hex, 16)
            .ok()
            .filter(|h| h >> 24 == 0x81)
            .ok_or_else(|| {
                ConfigError::new(format!(
                    "\"{s}\" is not a persistent TPM handle (expected handle:0x81000000..0x81FFFFFF)"
                ))
            }),
    )
}

/// How to reach the endpoint.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The endpoint URL, `https://host[:port]` (checked by [`crate::endpoint`]; a bare host
    /// gets `https://`).
    pub endpoint: String,
    /// The region in the credential scope.
    pub region: Region,
    /// Trust only these CA certificates (PEM bundle), instead of the system store.
    pub ca_bundle: Option<PathBuf>,
    /// Where the system store is, when there is no `ca_bundle`: `$SSL_CERT_FILE` and
    /// `$SSL_CERT_DIR` when either is set, else (`None`) the platform's usual places.
    pub system_trust: Option<TrustPaths>,
    /// Skip TLS certificate verification (`--no-verify-ssl`).
    pub danger_accept_invalid_certs: bool,
    /// TCP+TLS connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one attempt, connect included.
    pub request_timeout: Duration,
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// Print the canonical request and string to sign on stderr.
    pub debug: bool,
}

/// The files of a system trust store, as OpenSSL's variables name them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustPaths {
    /// A PEM bundle (`$SSL_CERT_FILE`).
    pub file: Option<PathBuf>,
    /// Directories of PEM files (`$SSL_CERT_DIR`, separated by `:`).
    pub dirs: Vec<PathBuf>,
}

/// One role's session: what to ask CreateSession for and how to reach it.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The request.
    pub request: SessionRequest,
    /// The endpoint, region and transport.
    pub client: ClientOptions,
}

/// When a refresh loop renews credentials and how soon it tries again after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshTiming {
    /// Renew this many seconds before the credentials expire.
    pub refresh_before: u64,
    /// The first wait after a failed refresh, in seconds (it doubles, up to 300 s).
    pub retry_interval: u64,
}

impl RefreshTiming {
    /// 5 minutes before expiry (the shortest session is 15 minutes), and 30 s after a first
    /// failure.
    pub const DEFAULT: RefreshTiming = RefreshTiming {
        refresh_before: 300,
        retry_interval: 30,
    };
}

/// `credential-process`.
#[derive(Debug, Clone)]
pub struct CredentialProcessConfig {
    /// The certificate and key.
    pub identity: IdentityConfig,
    /// The session.
    pub session: SessionConfig,
    /// With `--cache`: the least validity, in seconds, of a cached answer.
    pub cache_min_validity: Option<u64>,
    /// With `--cache --refresh`: skip the cached entry, sign, and replace it.
    pub cache_refresh: bool,
}

/// How `doctor` prints its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoctorFormat {
    /// One line per check, with the fix under each failure.
    Text,
    /// A JSON object `{"ok", "checks": [{name, status, detail, fix}]}`.
    Json,
}

/// The endpoint `doctor` reports, and why it was chosen.
#[derive(Debug, Clone)]
pub struct EndpointChoice {
    /// The URL.
    pub url: String,
    /// Which setting chose it.
    pub why: String,
    /// The signing region.
    pub region: Region,
}

/// `doctor`: the identity and session of `credential-process`, checked instead of used.
#[derive(Debug)]
pub struct DoctorConfig {
    /// The `--identity` the values were taken from, and where each came from.
    pub identity_source: Option<IdentitySource>,
    /// The certificate and key.
    pub identity: IdentityConfig,
    /// The session, or why its flags cannot make a request (reported as the request
    /// check).
    pub session: Result<(SessionConfig, EndpointChoice), ConfigError>,
    /// `--trust-anchor-ca`: the CA the trust anchor was made from.
    pub trust_anchor_ca: Option<PathBuf>,
    /// `--call`: make one real CreateSession.
    pub call: bool,
    /// How to print the checks.
    pub format: DoctorFormat,
}

/// One role `serve` serves, under its name.
#[derive(Debug, Clone)]
pub struct ServedRole {
    /// The name in the IMDS path: the last segment of the role ARN.
    pub name: String,
    /// Its CreateSession request.
    pub request: SessionRequest,
}

/// How `serve` hands out credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeProtocol {
    /// IMDSv2: a session token first, then the credentials.
    Imds,
    /// The ECS container-credentials endpoint, with the token kept in this file.
    Ecs {
        /// The authorization token's file.
        token_file: PathBuf,
    },
}

/// `serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The certificate and key.
    pub identity: IdentityConfig,
    /// The roles, in the order given, with distinct names.
    pub roles: Vec<ServedRole>,
    /// The endpoint, region and transport (the same for every role).
    pub client: ClientOptions,
    /// Where to listen: loopback, or anything with a hop limit of 1.
    pub listen: std::net::SocketAddr,
    /// The IP TTL (IPv6 hop limit) of the answers.
    pub hop_limit: u8,
    /// IMDSv2 or ECS.
    pub protocol: ServeProtocol,
    /// When to refresh.
    pub timing: RefreshTiming,
    /// Worker threads answering requests.
    pub threads: u8,
    /// Where to serve `/metrics` and `/healthz` (always loopback), if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
}

/// `update`.
#[derive(Debug, Clone)]
pub struct UpdateConfig {
    /// The certificate and key.
    pub identity: IdentityConfig,
    /// The session.
    pub session: SessionConfig,
    /// The shared credentials file.
    pub credentials_file: PathBuf,
    /// The profile to keep fresh in it (a name botocore reads as a profile).
    pub profile: String,
    /// Write once and exit.
    pub once: bool,
    /// When to refresh.
    pub timing: RefreshTiming,
}

// ---------------------------------------------------------------------------------------
// keygen

/// The key types `keygen` makes on a PKCS#11 token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeygenKeyType {
    /// RSA, 2048 bits.
    Rsa2048,
    /// RSA, 3072 bits.
    Rsa3072,
    /// ECDSA on NIST P-256.
    P256,
    /// ECDSA on NIST P-384.
    P384,
}

/// The key types `keygen --tpm` makes (not RSA-3072, which TPMs commonly lack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TpmKeyType {
    /// RSA 2048-bit (RSASSA-PKCS1-v1_5 signatures).
    Rsa2048,
    /// ECDSA on NIST P-256.
    P256,
    /// ECDSA on NIST P-384.
    P384,
}

/// `ra-signer keygen`, checked: one job, and whether to say on stderr what it does.
#[derive(Debug, Clone)]
pub struct KeygenConfig {
    /// What to make or store, where.
    pub job: KeygenJob,
    /// `--debug`: say on stderr what is generated where (never a secret).
    pub debug: bool,
}

/// What `keygen` does.
#[derive(Debug, Clone)]
pub enum KeygenJob {
    /// Generate a key pair on a token and write a CSR signed by it.
    TokenKey {
        /// The token, the new key's label and id, and how to log in.
        token: TokenKeygen,
        /// The key.
        key_type: KeygenKeyType,
        /// `--always-auth`: mark the key CKA_ALWAYS_AUTHENTICATE.
        always_authenticate: bool,
        /// The CSR.
        csr: CsrRequest,
    },
    /// Store an issued certificate (a PEM bundle's further certificates as its chain) beside
    /// the existing key on a token.
    TokenCertificate {
        /// The token, the key, and how to log in.
        token: TokenKeygen,
        /// The certificate file (PEM or DER).
        certificate: PathBuf,
    },
    /// Create a key inside a TPM and write a CSR signed by it.
    TpmKey {
        /// The TPM, the key and where it goes.
        tpm: TpmKeygen,
        /// The CSR.
        csr: CsrRequest,
    },
}

/// The token `keygen` works on.
#[derive(Debug, Clone)]
pub struct TokenKeygen {
    /// `--pkcs11-uri`: the token, and the key's `object=` label and `id=`.
    pub uri: TokenUri,
    /// The module and where the user PIN comes from.
    pub pkcs11: Pkcs11Settings,
}

/// The certificate signing request `keygen` writes.
#[derive(Debug, Clone)]
pub struct CsrRequest {
    /// `--subject`, parsed.
    pub subject: crate::subject::Subject,
    /// `--csr-out`: where the PEM CSR goes (`None`: standard output).
    pub out: Option<PathBuf>,
    /// Whether an existing file at `out` is replaced.
    pub replace: bool,
}

/// Where `keygen --tpm` puts the new key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TpmKeyTarget {
    /// `--out`: a TSS2 key file (the key wrapped by its parent; useless on another TPM).
    File(PathBuf),
    /// `--persistent`: a persistent handle (`0x81xxxxxx`), made with the owner hierarchy's
    /// authorization.
    Persistent(u32),
}

/// The parent of a new TPM key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TpmParent {
    /// The standard ECC storage primary under the owner hierarchy.
    Owner,
    /// The standard ECC storage primary under the endorsement hierarchy.
    Endorsement,
    /// A persistent storage key (`handle:0x81xxxxxx`).
    Persistent(u32),
}

/// `keygen --tpm`, checked.
#[derive(Debug, Clone)]
pub struct TpmKeygen {
    /// Which TPM.
    pub connection: TpmConnection,
    /// Where the parent's (or hierarchy's) password comes from.
    pub parent_password_sources: Vec<SecretSource>,
    /// The key.
    pub key_type: TpmKeyType,
    /// Where the key goes.
    pub target: TpmKeyTarget,
    /// `--parent`.
    pub parent: TpmParent,
    /// Where the new key's password comes from (none given: the key has no password).
    pub key_password_sources: Vec<SecretSource>,
    /// Where the owner hierarchy's password comes from (`--persistent`; none given: the
    /// parent password when the parent is the owner hierarchy).
    pub owner_password_sources: Vec<SecretSource>,
    /// `--force`: replace existing output files.
    pub replace: bool,
}

/// The command `exec` runs: a program (found in `$PATH` unless it holds a `/`) and its
/// arguments, passed on as given, never through a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCommand {
    /// The program.
    pub program: std::ffi::OsString,
    /// Its arguments.
    pub args: Vec<std::ffi::OsString>,
}

impl ExecCommand {
    /// The command of `exec -- CMD ARGS…`: refuses an empty one.
    pub fn new(mut argv: Vec<std::ffi::OsString>) -> Result<ExecCommand, ConfigError> {
        if argv.is_empty() || argv[0].is_empty() {
            return Err(
                ConfigError::new("exec needs a command to run".into()).with_hint(
                    "put it after the flags and `--`: ra-signer exec [FLAGS] -- aws s3 ls",
                ),
            );
        }
        let program = argv.remove(0);
        Ok(ExecCommand {
            program,
            args: argv,
        })
    }
}

/// `exec`: the credentials as `credential-process` gets them (cache included), then the
/// command with them in its environment.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// How the credentials are got.
    pub credentials: CredentialProcessConfig,
    /// What runs with them.
    pub command: ExecCommand,
    /// `--override-env`: replace AWS credentials and profile already in the environment
    /// instead of refusing to run.
    pub override_env: bool,
}

/// `cache clear`: one entry (the one the identity and session flags would use) or all.
#[derive(Debug, Clone)]
pub enum CacheClearConfig {
    /// The entry of this identity and session.
    Entry {
        /// The certificate and key.
        identity: Box<IdentityConfig>,
        /// The session.
        session: Box<SessionConfig>,
    },
    /// Every entry ra-signer made in the user keyring.
    All,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TA: &str = "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/abc";
    const PR: &str = "arn:aws:rolesanywhere:us-east-1:123456789012:profile/def";
    const RO: &str = "arn:aws:iam::123456789012:role/path/Role";

    #[test]
    fn pkcs11_scheme_is_case_insensitive_and_trimmed() {
        assert_eq!(as_pkcs11_uri("pkcs11:token=a"), Some("pkcs11:token=a"));
        assert_eq!(as_pkcs11_uri("PKCS11:token=a"), Some("PKCS11:token=a"));
        assert_eq!(as_pkcs11_uri(" \tPkcs11:x \n"), Some("Pkcs11:x"));
        assert_eq!(as_pkcs11_uri("pkcs11"), None);
        assert_eq!(as_pkcs11_uri("./pkcs11:x"), None);
        assert_eq!(as_pkcs11_uri("cert.pem"), None);
        assert_eq!(as_pkcs11_uri("pkcs1é:x"), None);
    }

    #[test]
    fn arns_parse() {
        let ta = Arn::parse(TA, ArnKind::TrustAnchor).expect("ta");
        assert_eq!(ta.region().map(Region::as_str), Some("us-east-1"));
        assert!(Arn::parse(RO, ArnKind::Role).is_ok());
        assert!(Arn::parse(PR, ArnKind::Profile).is_ok());
    }

    #[test]
    fn malformed_arns_say_why() {
        for (text, kind, why) in [
            ("nope", ArnKind::Role, "six"),
            (PR, ArnKind::TrustAnchor, "trust-anchor/"),
            ("arn:aws:iam::12345:role/x", ArnKind::Role, "12 digits"),
            ("arn:aws:s3::123456789012:role/x", ArnKind::Role, "\"iam\""),
            (
                "arn:aws:rolesanywhere::123456789012:profile/x",
                ArnKind::Profile,
                "region",
            ),
            ("arn:aws:iam::123456789012:role/", ArnKind::Role, "empty"),
        ] {
            let err = Arn::parse(text, kind).expect_err(text).message;
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn regions_must_agree() {
        let ta = Arn::parse(TA, ArnKind::TrustAnchor).expect("ta");
        let pr = Arn::parse(
            "arn:aws:rolesanywhere:eu-west-1:123456789012:profile/def",
            ArnKind::Profile,
        )
        .expect("pr");
        let ro = Arn::parse(RO, ArnKind::Role).expect("ro");
        let err = SessionRequest::new(ta, pr, ro, SessionDuration::default(), None)
            .expect_err("mismatch");
        assert!(err.message.contains("us-east-1") && err.message.contains("eu-west-1"));
    }

    #[test]
    fn the_tpm_is_the_flags_then_the_environments() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let all: &[(&str, &str)] = &[
            ("TPM2TOOLS_TCTI", "swtpm:port=1"),
            ("TSS2_TCTI", "mssim:port=2"),
            ("TPM_DEVICE", "/dev/tpm0"),
            ("RA_SIGNER_TPM_TIMEOUT", " 7 "),
        ];
        let pick = |flag, vars| {
            let c = TpmConnection::resolve(flag, env(vars));
            (c.tcti, c.origin)
        };
        let t = |a: &str, b: &'static str| (a.to_owned(), b);
        assert_eq!(
            pick(Some("device:/dev/tpmrm1"), all),
            t("device:/dev/tpmrm1", "--tpm-tcti")
        );
        assert_eq!(pick(None, all), t("swtpm:port=1", "TPM2TOOLS_TCTI"));
        assert_eq!(pick(None, &all[1..]), t("mssim:port=2", "TSS2_TCTI"));
        assert_eq!(pick(None, &all[2..]), t("device:/dev/tpm0", "TPM_DEVICE"));
        assert_eq!(
            pick(None, &[]),
            t(TpmConnection::DEFAULT_TCTI, "the default")
        );
        let limit = |vars| TpmConnection::resolve(None, env(vars)).timeout;
        assert_eq!(limit(all), Duration::from_secs(7));
        assert_eq!(limit(&[("RA_SIGNER_TPM_TIMEOUT", "0")]), Duration::ZERO);
        assert_eq!(
            limit(&[("RA_SIGNER_TPM_TIMEOUT", "soon")]),
            TpmConnection::DEFAULT_TIMEOUT
        );
        assert_eq!(limit(&[]), TpmConnection::DEFAULT_TIMEOUT);
    }

    #[test]
    fn durations_and_handles() {
        assert!(SessionDuration::new(899).is_err());
        assert!(SessionDuration::new(43201).is_err());
        assert_eq!(SessionDuration::new(900).map(|d| d.seconds()), Ok(900));
        assert_eq!(parse_tpm_handle("handle:0x81000101"), Some(Ok(0x8100_0101)));
        assert_eq!(parse_tpm_handle("handle:81000101"), Some(Ok(0x8100_0101)));
        assert!(matches!(
            parse_tpm_handle("handle:0x40000001"),
            Some(Err(_))
        ));
        assert_eq!(parse_tpm_handle("key.pem"), None);
    }
}

/// The session duration when neither a flag nor the config file gives one.
pub const DEFAULT_SESSION_SECONDS: u32 = 3600;
/// The connect timeout, in seconds, when none is given.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 5;
/// The timeout of one attempt, in seconds, when none is given.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 20;
/// The attempts in all when none is given.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The longest connect or attempt timeout accepted, in seconds: a longer one only hides a
/// dead endpoint (and would overflow a deadline).
pub const MAX_TIMEOUT_SECS: u64 = 3600;
/// The attempts accepted in all.
pub const MAX_ATTEMPTS: std::ops::RangeInclusive<u32> = 1..=10;

/// Where one value of a command came from (`doctor` shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Its flag.
    Flag,
    /// The `--identity` table of the config file, at this line.
    File {
        /// 1-based line.
        line: usize,
    },
    /// An environment variable.
    Environment(&'static str),
    /// The built-in default, shown.
    Default(String),
}

/// One value and where it came from; `key` is the flag's name without `--`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueOrigin {
    /// The flag's name without `--`.
    pub key: &'static str,
    /// Where its value came from.
    pub origin: Origin,
}

/// The identity of the config file a command used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySource {
    /// Its name (`--identity NAME`).
    pub name: String,
    /// The config file.
    pub path: PathBuf,
    /// Where each value came from, in the order of the flags.
    pub origins: Vec<ValueOrigin>,
}
