//! Command-line flags (clap) and their translation into validated configuration. No I/O
//! happens here beyond reading the environment and the AWS config file for defaults.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{
    Arn, ArnKind, CacheClearConfig, CertificateSource, ClientOptions, ConfigError,
    CredentialProcessConfig, CsrRequest, DEFAULT_CONNECT_TIMEOUT_SECS, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_REQUEST_TIMEOUT_SECS, DEFAULT_SESSION_SECONDS, DoctorConfig, DoctorFormat,
    EndpointChoice, ExecCommand, ExecConfig, IdentityConfig, IdentitySource, KeygenConfig,
    KeygenJob, KeygenKeyType, MAX_ATTEMPTS, MAX_TIMEOUT_SECS, Origin, Pkcs11Settings,
    PrivateKeySource, RefreshTiming, ServeConfig, ServeProtocol, ServedRole, SessionConfig,
    SessionDuration, SessionRequest, TokenKeygen, TpmConnection, TpmKeyTarget, TpmKeyType,
    TpmKeygen, TpmParent, TpmSettings, TrustPaths, UpdateConfig, ValueOrigin, as_pkcs11_uri,
    parse_tpm_handle,
};
use crate::endpoint;
use crate::env;
use crate::identity_file;
use crate::pkcs11_uri::TokenUri;
use crate::secret::{Secret, SecretSource};
use crate::subject::Subject;

/// ra-signer: AWS IAM Roles Anywhere credentials from keys that stay in hardware.
#[derive(Debug, Parser)]
#[command(
    name = "ra-signer",
    args_override_self = true,
    version,
    about = "AWS IAM Roles Anywhere credential helper: signs CreateSession with a key in a PKCS#11 token, a TPM 2.0 or a key file",
    after_help = "Exit codes: 0 success, 1 other failure, 2 usage, 3 certificate/key/token problem, 4 rejected by AWS, 5 network or service failure, 6 serve cannot listen, 7 doctor found a failed check, 126 and 127 exec cannot run or find the command.\nDocumentation: docs/ in the source tree."
)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

const ABOUT_CREDENTIAL_PROCESS: &str =
    "Get credentials once and print them as credential_process JSON on stdout";
const ABOUT_SIGN_STRING: &str = "Sign the fixed test string with the key (checks that a key works)";
const ABOUT_READ_CERTIFICATE_DATA: &str = "Print a certificate's data: JSON for a file or PKCS#12, the Go helper's listing of every matching certificate for a pkcs11: URI";
const ABOUT_SERVE: &str =
    "Serve credentials on an IMDSv2-style (or ECS) endpoint, refreshed before expiry";
const ABOUT_UPDATE: &str = "Keep a profile of the shared credentials file fresh";
const ABOUT_KEYGEN: &str = "Generate a key pair inside a token or TPM (non-extractable) and write a PKCS#10 CSR for it; for tokens, store the issued certificate beside the key";
const ABOUT_EXEC: &str = "Run a command with the credentials in its environment (AWS_ACCESS_KEY_ID, …), never on its command line: ra-signer exec [FLAGS] -- CMD [ARGS]…";
const ABOUT_CACHE: &str = "List or clear the credentials `--cache` keeps in the kernel keyring";
const ABOUT_COMPLETIONS: &str = "Print the shell completion script for bash, zsh or fish on stdout";
const ABOUT_MAN: &str =
    "Print the manual page (roff) on stdout, or write one page per command to --out-dir";
const ABOUT_DOCTOR: &str = "Check, in order, everything that can make CreateSession fail: the certificate, the key, the chain, the request and the network (and with --call one real call)";

/// The subcommands. Each one's flags are defined only when it runs (`defer`): a
/// `credential-process` does not pay for building `serve`'s and `keygen`'s. A deferred
/// subcommand's own `--help` takes its `about` from its arguments struct, the command list
/// from the variant: both name the same text.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// `credential-process`.
    #[command(about = ABOUT_CREDENTIAL_PROCESS)]
    CredentialProcess(CredentialProcessArgs),
    /// `sign-string`.
    #[command(about = ABOUT_SIGN_STRING)]
    SignString(SignStringArgs),
    /// `read-certificate-data`.
    #[command(about = ABOUT_READ_CERTIFICATE_DATA)]
    ReadCertificateData(ReadCertificateDataArgs),
    /// `serve`.
    #[command(about = ABOUT_SERVE)]
    Serve(ServeArgs),
    /// `update`.
    #[command(about = ABOUT_UPDATE)]
    Update(UpdateArgs),
    /// `keygen`.
    #[command(about = ABOUT_KEYGEN)]
    Keygen(KeygenArgs),
    /// Print the version.
    Version,
    /// `exec`.
    #[command(about = ABOUT_EXEC)]
    Exec(ExecArgs),
    /// `cache`.
    #[command(about = ABOUT_CACHE)]
    Cache(CacheArgs),
    /// `doctor`.
    #[command(about = ABOUT_DOCTOR)]
    Doctor(DoctorArgs),
    /// `completions`.
    #[command(about = ABOUT_COMPLETIONS)]
    Completions(CompletionsArgs),
    /// `man`.
    #[command(about = ABOUT_MAN)]
    Man(ManArgs),
}

/// `completions` (its help: [`ABOUT_COMPLETIONS`]).
#[derive(Debug, Clone, Args)]
#[command(about = ABOUT_COMPLETIONS)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// The shells `completions` writes for: those a Debian package installs completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// bash (bash-completion).
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
}

/// `man` (its help: [`ABOUT_MAN`]).
#[derive(Debug, Clone, Args)]
#[command(about = ABOUT_MAN)]
pub struct ManArgs {
    /// Write ra-signer.1 and one ra-signer-COMMAND.1 per command into this directory
    /// (created if missing) instead of printing the top-level page.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Where the certificate and key come from.
#[derive(Debug, Clone, Args)]
pub struct IdentityArgs {
    /// Take every value not given as a flag from the identity NAME of the config file
    /// (`[identity.NAME]`; see docs/config.md).
    #[arg(long = "identity", id = "identity", value_name = "NAME")]
    pub named: Option<String>,
    /// The config file --identity reads (default: $XDG_CONFIG_HOME/ra-signer/config.toml,
    /// else ~/.config/ra-signer/config.toml).
    #[arg(long = "config", value_name = "FILE", requires = "identity")]
    pub config_file: Option<PathBuf>,
    /// Certificate: a PEM/DER file, env:NAME (a variable holding PEM or base64 DER), or a
    /// pkcs11: URI.
    #[arg(long, value_name = "FILE|URI")]
    pub certificate: Option<String>,
    /// Private key: a key file (PKCS#8, SEC1, PKCS#1, encrypted PKCS#8, PKCS#12, TSS2) or
    /// env:NAME holding one, a pkcs11: URI, or handle:0x81… for a persistent TPM key.
    #[arg(long, value_name = "FILE|URI|HANDLE")]
    pub private_key: Option<String>,
    /// PEM bundle of intermediate CA certificates to send (overrides any found with the key).
    #[arg(long, value_name = "FILE")]
    pub intermediates: Option<PathBuf>,
    /// One RFC 7512 URI naming the key on a PKCS#11 token (and its certificate, when that
    /// is on the token too).
    #[arg(long, value_name = "URI")]
    pub pkcs11_uri: Option<String>,
    /// PKCS#11 module to load (default: p11-kit's proxy); module-path in the URI wins.
    #[arg(long, value_name = "PATH")]
    pub pkcs11_lib: Option<PathBuf>,
    /// File whose first line is the token user PIN (else $RA_SIGNER_PKCS11_PIN, else a
    /// prompt when a terminal is attached).
    #[arg(long, value_name = "FILE")]
    pub pkcs11_pin_file: Option<PathBuf>,
    /// Answer the context-specific login of CKA_ALWAYS_AUTHENTICATE keys with the user PIN.
    #[arg(long)]
    pub reuse_pin: bool,
    /// File holding the context-specific PIN (else $RA_SIGNER_PKCS11_CONTEXT_PIN, else a
    /// prompt when a terminal is attached).
    #[arg(long, value_name = "FILE")]
    pub pkcs11_context_pin_file: Option<PathBuf>,
    /// Password of an encrypted key file (visible to other users in the process list:
    /// prefer --pkcs8-password-file or $RA_SIGNER_PKCS8_PASSWORD).
    #[arg(long, value_name = "PASSWORD", conflicts_with = "pkcs8_password_file")]
    pub pkcs8_password: Option<String>,
    /// File whose first line is the password of an encrypted key file.
    #[arg(long, value_name = "FILE")]
    pub pkcs8_password_file: Option<PathBuf>,
    /// TPM TCTI: device:PATH (a TPM device, or a swtpm UNIX socket), swtpm:host=H,port=P,
    /// tabrmd (else $TPM2TOOLS_TCTI, $TSS2_TCTI, $TPM_DEVICE, device:/dev/tpmrm0).
    #[arg(long, value_name = "TCTI")]
    pub tpm_tcti: Option<String>,
    /// Password of the TPM key (visible in the process list: prefer
    /// --tpm-key-password-file or $RA_SIGNER_TPM_KEY_PASSWORD).
    #[arg(
        long,
        value_name = "PASSWORD",
        conflicts_with = "tpm_key_password_file"
    )]
    pub tpm_key_password: Option<String>,
    /// File whose first line is the TPM key password.
    #[arg(long, value_name = "FILE")]
    pub tpm_key_password_file: Option<PathBuf>,
    /// The TPM key has no password: never ask for one.
    #[arg(long, conflicts_with_all = ["tpm_key_password", "tpm_key_password_file"])]
    pub no_tpm_key_password: bool,
    /// The Go helper's certificate-store selector (JSON): Windows and macOS only, refused here.
    #[arg(long, value_name = "JSON", help_heading = OS_STORE_HEADING)]
    pub cert_selector: Option<String>,
    /// The Go helper's Windows store name: refused here.
    #[arg(long, value_name = "NAME", help_heading = OS_STORE_HEADING)]
    pub system_store_name: Option<String>,
    /// The Go helper's Windows store location: refused here.
    #[arg(long, value_name = "LOCATION", help_heading = OS_STORE_HEADING)]
    pub system_store_location: Option<String>,
    /// The Go helper's choice among several store certificates: refused here.
    #[arg(long, help_heading = OS_STORE_HEADING)]
    pub use_latest_expiring_certificate: bool,
    /// Refuse, before signing, a key file, a token key that is or ever was extractable or
    /// not sensitive, and a TPM key without fixedTPM, fixedParent and sensitiveDataOrigin.
    #[arg(long)]
    pub require_hardware_key: bool,
}

/// The first of `flags` that was given: for refusing flags that mean nothing here.
pub fn first_given<'a>(flags: &[(&'a str, bool)]) -> Option<&'a str> {
    flags.iter().find(|(_, set)| *set).map(|(flag, _)| *flag)
}

const OS_STORE_HEADING: &str = "OS certificate stores (Windows and macOS only: refused on Linux)";

/// The CreateSession request and how to reach the service.
#[derive(Debug, Clone, Args)]
pub struct SessionArgs {
    /// ARN of the trust anchor.
    #[arg(long, value_name = "ARN", required_unless_present = "identity")]
    pub trust_anchor_arn: Option<String>,
    /// ARN of the profile.
    #[arg(long, value_name = "ARN", required_unless_present = "identity")]
    pub profile_arn: Option<String>,
    /// ARN of the role to assume.
    #[arg(long, value_name = "ARN", required_unless_present = "identity")]
    pub role_arn: Option<String>,
    /// Everything but the ARNs.
    #[command(flatten)]
    pub options: SessionOptions,
}

/// The session options and transport settings shared by every command that calls
/// CreateSession (`serve` takes several roles, the others one).
#[derive(Debug, Clone, Args)]
pub struct SessionOptions {
    /// Session duration in seconds (900..43200, and at most the profile's limit; default
    /// 3600).
    #[arg(long, value_name = "SECONDS")]
    pub session_duration: Option<u32>,
    /// Role session name (the profile must allow it).
    #[arg(long, value_name = "NAME")]
    pub role_session_name: Option<String>,
    /// Signing region (default: the trust anchor's); fips-REGION and REGION-fips mean
    /// REGION's FIPS endpoint.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Endpoint URL (default: $AWS_ENDPOINT_URL_ROLESANYWHERE, $AWS_ENDPOINT_URL,
    /// endpoint_url in ~/.aws/config, else the region's endpoint).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Use the FIPS endpoint of the region (also $AWS_USE_FIPS_ENDPOINT; the signing region
    /// stays the plain one).
    #[arg(long, conflicts_with = "endpoint")]
    pub fips: bool,
    /// PEM bundle of CAs to trust for the endpoint instead of the system store (else
    /// $AWS_CA_BUNDLE).
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
    /// Do not verify the endpoint's TLS certificate (dangerous: tests only).
    #[arg(long)]
    pub no_verify_ssl: bool,
    /// Accepted for compatibility: proxies from HTTPS_PROXY/NO_PROXY are always honoured
    /// (never for loopback endpoints).
    #[arg(long)]
    pub with_proxy: bool,
    /// Connect timeout in seconds (default 5).
    #[arg(long, value_name = "SECONDS")]
    pub connect_timeout: Option<u64>,
    /// Timeout of one attempt in seconds (default 20).
    #[arg(long, value_name = "SECONDS")]
    pub request_timeout: Option<u64>,
    /// Attempts in all on throttling, 5xx or network failure (1..=10, 1 = no retry; default
    /// 3).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10))]
    pub max_attempts: Option<u32>,
    /// Print the canonical request and string to sign on stderr (no secrets are printed).
    #[arg(long)]
    pub debug: bool,
}

/// `credential-process` (its help: [`ABOUT_CREDENTIAL_PROCESS`]).
#[derive(Debug, Clone, Args)]
#[command(about = ABOUT_CREDENTIAL_PROCESS)]
pub struct CredentialProcessArgs {
    /// The certificate and key.
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// The session.
    #[command(flatten)]
    pub session: SessionArgs,
    /// Reuse unexpired credentials kept in the kernel keyring (at least 5 minutes from
    /// expiry), instead of signing again; see docs/cache.md.
    #[arg(long)]
    pub cache: bool,
    /// With --cache: the minimum validity, in seconds, of a cached answer (tests).
    #[arg(long, value_name = "SECONDS", default_value_t = crate::cache::MIN_VALIDITY, hide = true)]
    pub cache_min_validity: u64,
    /// With --cache: do not use the cached entry; sign, and replace it with the new
    /// credentials.
    #[arg(long, requires = "cache")]
    pub refresh: bool,
    /// Output: json (credential_process JSON), or env (`export NAME='value'` lines for
    /// eval "$(ra-signer credential-process --format env …)").
    #[arg(long, value_enum, default_value = "json", hide_possible_values = true)]
    pub format: ProcessFormat,
}

/// Output format for `credential-process`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProcessFormat {
    /// The credential_process JSON the AWS SDKs read.
    Json,
    /// POSIX shell: `unset` of the variables that would choose other credentials, then
    /// `export NAME='value'` lines.
    Env,
}

/// `exec` (its help: [`ABOUT_EXEC`]).
#[derive(Debug, Clone, Args)]
#[command(about = ABOUT_EXEC)]
pub struct ExecArgs {
    /// The certificate and key.
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// The session.
    #[command(flatten)]
    pub session: SessionArgs,
    /// Reuse unexpired credentials kept in the kernel keyring, as credential-process
    /// --cache does; see docs/cache.md.
    #[arg(long)]
    pub cache: bool,
    /// With --cache: the minimum validity, in seconds, of a cached answer (tests).
    #[arg(long, value_name = "SECONDS", default_value_t = crate::cache::MIN_VALIDITY, hide = true)]
    pub cache_min_validity: u64,
    /// With --cache: do not use the cached entry; sign, and replace it with the new
    /// credentials.
    #[arg(long, requires = "cache")]
    pub refresh: bool,
    /// Run even when AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
    /// AWS_SECURITY_TOKEN, AWS_PROFILE or AWS_DEFAULT_PROFILE is set: the command gets
    /// these credentials instead, and no profile.
    #[arg(long)]
    pub override_env: bool,
    /// The command and its arguments, after `--` (run directly, not through a shell).
    #[arg(value_name = "CMD", required = true, last = true, num_args = 1..)]
    pub command: Vec<std::ffi::OsString>,
}

/// `cache` (its help: [`ABOUT_CACHE`]).
#[derive(Debug, Clone, Args)]
#[command(about = ABOUT_CACHE)]
pub struct CacheArgs {
    /// What to do with the cache.
    #[command(subcommand)]
    pub command: CacheCommand,
}

/// The subcommands of `cache`.
#[derive(Debug, Clone, Subcommand)]
pub enum CacheCommand {
    /// One line per cached entry: role ARN, expiry, the identity's fingerprint (never a
    /// secret).
    List(CacheListArgs),
    /// Remove the entry the identity and session flags would use, or every entry with
    /// --all.
    Clear(Box<CacheClearArgs>),
}

/// Output format for `cache list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CacheListFormat {
    /// One line per entry.
    Text,
    /// A JSON array of objects.
    Json,
}

/// `cache list`.
#[derive(Debug, Clone, Args)]
pub struct CacheListArgs {
    /// Output: text (one line per entry) or json (an array of objects).
    #[arg(long, value_enum, default_value = "text", hide_possible_values = true)]
    pub format: CacheListFormat,
}

/// `cache clear`: the flags of `credential-process`, whose ARNs only `--all` may leave out.
#[derive(Debug, Clone, Args)]
pub struct CacheClearArgs {
    /// Remove every entry ra-signer made in the user keyring.
    #[arg(long)]
    pub all: bool,
    /// The certificate and key of the entry.
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// ARN of the trust anchor of the entry.
    #[arg(long, value_name = "ARN")]
    pub trust_anchor_arn: Option<String>,
    /// ARN of the profile of the entry.
    #[arg(long, value_name = "ARN")]
    pub profile_arn: Option<String>,
    /// ARN of the role of the entry.
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// The session options of the entry.
    #[command(flatten)]
    pub options: SessionOptions,
}

/// Digest for `sign-string`.
#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum DigestArg {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// Output format for `sign-string`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SignFormat {
    /// Lowercase hex.
    Text,
    /// A JSON string holding the hex.
    Json,
    /// Raw signature bytes.
    Bin,
}

/// `sign-string` (its help: [`ABOUT_SIGN_STRING`]).
#[derive(Debug, Clone, Args)]
#[command(about = ABOUT_SIGN_STRING)]
pub struct SignStringArgs {
    /// The certificate and key.
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Digest to sign with.
    #[arg(long, value_enum, default_value = "SHA256")]
    pub digest: DigestArg,
    /// Output format (the Go helper's code defaults to json, whatever its README says).
    #[arg(long, value_enum, default_value = "json")]
    pub format: SignFormat,
    /// Say on stderr which key signs and what is signed (never a secret).
    #[arg(long)]
    pub debug: bool,
}

/// Output format for `read-certificate-data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CertificateDataFormat {
    /// The Go helper's listing: "Matching identities", then a numbered line per certificate
    /// (SHA-1 fingerprint, subject) and the URI that selects it.
    Text,
    /// JSON: an object for a file, an array of objects (with their URIs) for a token.
    Json,
}

/// `read-certificate-data` (its help: [`ABOUT_READ_CERTIFICATE_DATA`]). The key flags it
/// refuses stay out of its help.
#[derive(Debug, Clone, Args)]
#[command(about = ABOUT_READ_CERTIFICATE_DATA)]
#[command(
    mut_arg("private_key", |a| a.hide(true)),
    mut_arg("intermediates", |a| a.hide(true)),
    mut_arg("reuse_pin", |a| a.hide(true)),
    mut_arg("pkcs11_context_pin_file", |a| a.hide(true)),
    mut_arg("tpm_tcti", |a| a.hide(true)),
    mut_arg("tpm_key_password", |a| a.hide(true)),
    mut_arg("tpm_key_password_file", |a| a.hide(true)),
    mut_arg("no_tpm_key_password", |a| a.hide(true)),
    mut_arg("require_hardware_key", |a| a.hide(true))
)]
pub struct ReadCertificateDataArgs {
    /// The certificate (file, PKCS#12 or pkcs11: URI) and, for tokens, the module and PIN.
    /// Key flags are refused: this command reads certificates only.
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Output format (default: json for a file, as the Go helper prints it; text for a
    /// pkcs11: URI).
    #[arg(long, value_enum)]
    pub format: Option<CertificateDataFormat>,
    /// Say on stderr where the certificates are read from (never a secret).
    #[arg(long)]
    pub debug: bool,
}

/// The CreateSession options of `serve`: those of `credential-process`, with `--role-arn`
/// repeatable (one credentials path per role name).
#[derive(Debug, Clone, Args)]
pub struct ServeSessionArgs {
    /// ARN of the trust anchor.
    #[arg(long, value_name = "ARN", required_unless_present = "identity")]
    pub trust_anchor_arn: Option<String>,
    /// ARN of the profile.
    #[arg(long, value_name = "ARN", required_unless_present = "identity")]
    pub profile_arn: Option<String>,
    /// ARN of a role to serve (repeatable: each role is served under its name, the last
    /// segment of the ARN).
    #[arg(long = "role-arn", value_name = "ARN", required_unless_present = "identity", action = clap::ArgAction::Append)]
    pub role_arn: Vec<String>,
    /// Everything but the ARNs, as for `credential-process`.
    #[command(flatten)]
    pub options: SessionOptions,
}

/// `serve` (its help: [`ABOUT_SERVE`]).
#[derive(Debug, Clone, Args)]
#[command(about = ABOUT_SERVE)]
pub struct ServeArgs {
    /// The certificate and key.
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// The session.
    #[command(flatten)]
    pub session: ServeSessionArgs,
    /// Port to listen on (0: any free port; the address is logged at start).
    #[arg(long, value_name = "PORT", default_value_t = 9911)]
    pub port: u16,
    /// Address to listen on. Addresses other than loopback need --hop-limit 1.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// IP TTL (IPv6 hop limit) of the answers: 1, like EC2's metadata service, keeps them
    /// from crossing a router (or a container bridge).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u8).range(1..))]
    pub hop_limit: u8,
    /// Serve the ECS container-credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI)
    /// instead of IMDSv2.
    #[arg(long)]
    pub ecs: bool,
    /// ECS mode: file holding the authorization token clients send (read if it exists,
    /// else created with mode 0600 and a new random token).
    #[arg(long, value_name = "FILE", requires = "ecs")]
    pub auth_token_file: Option<PathBuf>,
    /// Serve Prometheus metrics (GET /metrics) and a health check (GET /healthz) on this
    /// loopback address and port, e.g. 127.0.0.1:9912.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Worker threads answering requests (1..=8; default 2).
    #[arg(long, value_name = "N", default_value_t = 2, hide = true, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub threads: u8,
}

/// `update` (its help: [`ABOUT_UPDATE`]).
#[derive(Debug, Clone, Args)]
#[command(about = ABOUT_UPDATE)]
pub struct UpdateArgs {
    /// The certificate and key.
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// The session.
    #[command(flatten)]
    pub session: SessionArgs,
    /// Profile to write in the shared credentials file ($AWS_SHARED_CREDENTIALS_FILE, else
    /// ~/.aws/credentials).
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub profile: String,
    /// Write the credentials once and exit.
    #[arg(long)]
    pub once: bool,
}

impl IdentityArgs {
    /// Validates the flags into an [`IdentityConfig`].
    pub fn to_config(&self) -> Result<IdentityConfig, ConfigError> {
        self.refuse_os_store_flags()?;
        let certificate = match self.certificate.as_deref() {
            Some(c) => Some(match as_pkcs11_uri(c) {
                Some(uri) => CertificateSource::Pkcs11(token_uri(uri)?),
                None => CertificateSource::File(PathBuf::from(c)),
            }),
            None => None,
        };
        let private_key = match (&self.pkcs11_uri, self.private_key.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "give the key either as --pkcs11-uri or as --private-key, not both".into(),
                ));
            }
            (Some(uri), None) => match as_pkcs11_uri(uri) {
                Some(uri) => PrivateKeySource::Pkcs11(token_uri(uri)?),
                None => {
                    return Err(ConfigError::new(
                        "--pkcs11-uri must be a PKCS#11 URI, starting with \"pkcs11:\"".into(),
                    ));
                }
            },
            (None, Some(k)) => match (as_pkcs11_uri(k), parse_tpm_handle(k.trim())) {
                (Some(uri), _) => PrivateKeySource::Pkcs11(token_uri(uri)?),
                (None, Some(handle)) => PrivateKeySource::TpmHandle(handle?),
                (None, None) => PrivateKeySource::File(PathBuf::from(k)),
            },
            (None, None) => match &certificate {
                // A PEM or PKCS#12 file may hold both: the Go helper accepts that too.
                Some(CertificateSource::File(p)) => PrivateKeySource::File(p.clone()),
                // The Go helper's most common form: the key is the certificate's, on its token.
                Some(CertificateSource::Pkcs11(_)) => PrivateKeySource::MatchingTokenCertificate,
                None => {
                    return Err(ConfigError::new(
                        "no private key given: pass --private-key FILE|pkcs11:URI|handle:0x81…, --pkcs11-uri URI, or --certificate pkcs11:URI".into(),
                    ));
                }
            },
        };
        let mut key_password_sources = Vec::new();
        if let Some(p) = &self.pkcs8_password {
            key_password_sources.push(SecretSource::Value(Secret::new(p.clone())));
        }
        if let Some(f) = &self.pkcs8_password_file {
            key_password_sources.push(SecretSource::File(f.clone()));
        }
        key_password_sources.push(SecretSource::Env(env::PKCS8_PASSWORD));
        key_password_sources.push(SecretSource::Prompt);

        let mut pin_sources = Vec::new();
        if let Some(f) = &self.pkcs11_pin_file {
            pin_sources.push(SecretSource::File(f.clone()));
        }
        pin_sources.extend([SecretSource::Env(env::PKCS11_PIN), SecretSource::Prompt]);
        let mut context_pin_sources = Vec::new();
        if let Some(f) = &self.pkcs11_context_pin_file {
            context_pin_sources.push(SecretSource::File(f.clone()));
        }
        context_pin_sources.extend([
            SecretSource::Env(env::PKCS11_CONTEXT_PIN),
            SecretSource::Prompt,
        ]);

        let mut tpm_password_sources = Vec::new();
        if let Some(p) = &self.tpm_key_password {
            tpm_password_sources.push(SecretSource::Value(Secret::new(p.clone())));
        }
        if let Some(f) = &self.tpm_key_password_file {
            tpm_password_sources.push(SecretSource::File(f.clone()));
        }
        tpm_password_sources.extend([
            SecretSource::Env(env::TPM_KEY_PASSWORD),
            SecretSource::Prompt,
        ]);

        Ok(IdentityConfig {
            certificate,
            private_key,
            intermediates: self.intermediates.clone(),
            key_password_sources,
            pkcs11: Pkcs11Settings {
                module: self.pkcs11_lib.clone(),
                pin_sources,
                reuse_pin: self.reuse_pin,
                context_pin_sources,
            },
            tpm: TpmSettings {
                connection: TpmConnection::resolve(self.tpm_tcti.as_deref(), env::non_blank),
                parent_password_sources: parent_password_sources(),
                key_password_sources: tpm_password_sources,
                no_key_password: self.no_tpm_key_password,
            },
            require_hardware_key: self.require_hardware_key,
        })
    }

    /// The Go helper's OS certificate-store flags select from stores that exist on Windows
    /// and macOS only: a clear refusal, not a silent fall-through to other flags.
    fn refuse_os_store_flags(&self) -> Result<(), ConfigError> {
        let given = [
            ("--cert-selector", self.cert_selector.is_some()),
            ("--system-store-name", self.system_store_name.is_some()),
            (
                "--system-store-location",
                self.system_store_location.is_some(),
            ),
            (
                "--use-latest-expiring-certificate",
                self.use_latest_expiring_certificate,
            ),
        ];
        match first_given(&given) {
            Some(flag) => Err(ConfigError::new(format!(
                "{flag} selects a certificate from the Windows or macOS certificate store, which this system does not have; pass --certificate FILE|pkcs11:URI (and --private-key) instead"
            ))),
            None => Ok(()),
        }
    }

    /// Warnings about secrets given on the command line.
    pub fn warnings(&self) -> Vec<&'static str> {
        let mut w = Vec::new();
        if self.pkcs8_password.is_some() {
            w.push("--pkcs8-password is visible to other users in the process list; prefer --pkcs8-password-file or $RA_SIGNER_PKCS8_PASSWORD");
        }
        if self.tpm_key_password.is_some() {
            w.push("--tpm-key-password is visible to other users in the process list; prefer --tpm-key-password-file or $RA_SIGNER_TPM_KEY_PASSWORD");
        }
        w
    }
}

impl SessionArgs {
    /// Validates the request and chooses the endpoint.
    pub fn to_config(&self) -> Result<SessionConfig, ConfigError> {
        let request = self.to_request()?;
        let client = self.options.client_options(&request)?;
        Ok(SessionConfig { request, client })
    }

    /// Validates the ARNs and session options.
    pub fn to_request(&self) -> Result<SessionRequest, ConfigError> {
        SessionRequest::new(
            Arn::parse(
                required(&self.trust_anchor_arn, "trust-anchor-arn")?,
                ArnKind::TrustAnchor,
            )?,
            Arn::parse(
                required(&self.profile_arn, "profile-arn")?,
                ArnKind::Profile,
            )?,
            Arn::parse(required(&self.role_arn, "role-arn")?, ArnKind::Role)?,
            self.options.session_duration()?,
            self.options.role_session_name.clone(),
        )
    }
}

/// A value clap requires unless `--identity` is given, which then must have set it.
fn required<'a>(value: &'a Option<String>, key: &str) -> Result<&'a str, ConfigError> {
    value.as_deref().ok_or_else(|| {
        ConfigError::new(format!(
            "no --{key}: neither given as a flag nor set by the --identity"
        ))
        .with_hint(&format!(
            "add {key} = \"…\" to the identity's table in the config file, or give --{key}"
        ))
    })
}

impl SessionOptions {
    /// `--session-duration`, else the default.
    fn session_duration(&self) -> Result<SessionDuration, ConfigError> {
        SessionDuration::new(self.session_duration.unwrap_or(DEFAULT_SESSION_SECONDS))
    }

    /// The endpoint, region and transport options for `request`: the endpoint and signing
    /// region as [`endpoint::resolve_from_environment`] chooses them (with `--debug`, the
    /// choice and why go to stderr).
    pub fn client_options(&self, request: &SessionRequest) -> Result<ClientOptions, ConfigError> {
        let o = self;
        let chosen = endpoint::resolve_from_environment(
            endpoint::Flags {
                endpoint: o.endpoint.as_deref(),
                region: o.region.as_deref(),
                fips: o.fips,
            },
            &request.default_region(),
            request.trust_anchor_arn.partition(),
        )?;
        for w in &chosen.warnings {
            crate::diag!("ra-signer: warning: {w}");
        }
        if o.debug {
            crate::diag!(
                "ra-signer: debug: endpoint {} ({}), signing region {}",
                chosen.url,
                chosen.why,
                chosen.region
            );
            for n in &chosen.notes {
                crate::diag!("ra-signer: debug: endpoint: {n}");
            }
        }
        let (endpoint, region) = (chosen.url, chosen.region);
        Ok(ClientOptions {
            endpoint,
            region,
            ca_bundle: o
                .ca_bundle
                .clone()
                .or_else(|| std::env::var_os(env::AWS_CA_BUNDLE).map(PathBuf::from))
                .filter(|p| !p.as_os_str().is_empty()),
            system_trust: system_trust_paths(),
            danger_accept_invalid_certs: o.no_verify_ssl,
            connect_timeout: timeout(
                "connect-timeout",
                o.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS),
            )?,
            request_timeout: timeout(
                "request-timeout",
                o.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECS),
            )?,
            max_attempts: attempts(o.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS))?,
            debug: o.debug,
        })
    }
}

/// A timeout of at most [`MAX_TIMEOUT_SECS`] (0 is taken as 1 second).
fn timeout(key: &str, seconds: u64) -> Result<Duration, ConfigError> {
    if seconds > MAX_TIMEOUT_SECS {
        return Err(ConfigError::new(format!(
            "--{key} {seconds} is longer than the {MAX_TIMEOUT_SECS} seconds accepted"
        )));
    }
    Ok(Duration::from_secs(seconds.max(1)))
}

/// The attempts in all, within [`MAX_ATTEMPTS`] (clap checks the flag; this, the file).
fn attempts(n: u32) -> Result<u32, ConfigError> {
    if MAX_ATTEMPTS.contains(&n) {
        return Ok(n);
    }
    Err(ConfigError::new(format!(
        "max-attempts {n} is not in {}..={}",
        MAX_ATTEMPTS.start(),
        MAX_ATTEMPTS.end()
    )))
}

/// `$SSL_CERT_FILE` and `$SSL_CERT_DIR`, read as rustls-native-certs and OpenSSL read them;
/// `None` when neither is set (the platform's usual places are used).
fn system_trust_paths() -> Option<TrustPaths> {
    let file = std::env::var_os(env::SSL_CERT_FILE)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let dirs: Vec<PathBuf> = std::env::var_os(env::SSL_CERT_DIR)
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    (file.is_some() || !dirs.is_empty()).then_some(TrustPaths { file, dirs })
}

impl CredentialProcessArgs {
    /// Validates the flags.
    pub fn to_config(&self) -> Result<CredentialProcessConfig, ConfigError> {
        let session = self.session.to_config()?;
        Ok(CredentialProcessConfig {
            identity: self.identity.to_config()?,
            session,
            cache_min_validity: self.cache.then_some(self.cache_min_validity),
            cache_refresh: self.refresh,
        })
    }
}

impl ExecArgs {
    /// Validates the flags: the credentials as for `credential-process`, and the command.
    pub fn to_config(&self) -> Result<ExecConfig, ConfigError> {
        let command = ExecCommand::new(self.command.clone())?;
        let session = self.session.to_config()?;
        Ok(ExecConfig {
            credentials: CredentialProcessConfig {
                identity: self.identity.to_config()?,
                session,
                cache_min_validity: self.cache.then_some(self.cache_min_validity),
                cache_refresh: self.refresh,
            },
            command,
            override_env: self.override_env,
        })
    }
}

impl CacheClearArgs {
    /// One entry's flags or `--all`, never both, never neither.
    pub fn to_config(&self) -> Result<CacheClearConfig, ConfigError> {
        let id = &self.identity;
        let given = [
            ("--identity", id.named.is_some()),
            ("--certificate", id.certificate.is_some()),
            ("--private-key", id.private_key.is_some()),
            ("--pkcs11-uri", id.pkcs11_uri.is_some()),
            ("--trust-anchor-arn", self.trust_anchor_arn.is_some()),
            ("--profile-arn", self.profile_arn.is_some()),
            ("--role-arn", self.role_arn.is_some()),
        ];
        if self.all {
            return match first_given(&given) {
                Some(flag) => Err(ConfigError::new(format!(
                    "cache clear --all removes every entry: {flag} has no meaning with it"
                ))
                .with_hint("drop --all to remove one identity's entry, or the entry's flags to remove every entry")),
                None => Ok(CacheClearConfig::All),
            };
        }
        let (Some(trust_anchor_arn), Some(profile_arn), Some(role_arn)) =
            (&self.trust_anchor_arn, &self.profile_arn, &self.role_arn)
        else {
            return Err(ConfigError::new(
                "cache clear needs the entry's --trust-anchor-arn, --profile-arn and --role-arn (with its identity flags), or --all"
                    .into(),
            )
            .with_hint("give the flags of the credential-process line whose entry should go, or --all"));
        };
        let session = SessionArgs {
            trust_anchor_arn: Some(trust_anchor_arn.clone()),
            profile_arn: Some(profile_arn.clone()),
            role_arn: Some(role_arn.clone()),
            options: self.options.clone(),
        };
        Ok(CacheClearConfig::Entry {
            session: Box::new(session.to_config()?),
            identity: Box::new(id.to_config()?),
        })
    }
}

/// Output format of `doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorFormatArg {
    /// One line per check (✔ passed, ✗ failed, ! warning) and the fix under each failure.
    Text,
    /// A JSON object: "ok" and "checks", an array of {name, status, detail, fix}.
    Json,
}

/// `doctor` (its help: [`ABOUT_DOCTOR`]).
#[derive(Debug, Clone, Args)]
#[command(about = ABOUT_DOCTOR)]
pub struct DoctorArgs {
    /// The certificate and key, as for `credential-process`.
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// The session, as for `credential-process`.
    #[command(flatten)]
    pub session: SessionArgs,
    /// The CA certificate (PEM or DER) the trust anchor was made from: the chain is checked
    /// up to it.
    #[arg(long, value_name = "FILE")]
    pub trust_anchor_ca: Option<PathBuf>,
    /// Then make one real CreateSession call, and explain its error when it fails.
    #[arg(long)]
    pub call: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: DoctorFormatArg,
}

impl DoctorArgs {
    /// Lowers the flags. The identity must lower (as for `credential-process`); a session
    /// whose flags cannot make a request is kept as its error, which the request check
    /// reports.
    pub fn to_config(
        &self,
        identity_source: Option<IdentitySource>,
    ) -> Result<DoctorConfig, ConfigError> {
        let session = self.session.to_request().and_then(|request| {
            let o = &self.session.options;
            let chosen = endpoint::resolve_from_environment(
                endpoint::Flags {
                    endpoint: o.endpoint.as_deref(),
                    region: o.region.as_deref(),
                    fips: o.fips,
                },
                &request.default_region(),
                request.trust_anchor_arn.partition(),
            )?;
            let choice = EndpointChoice {
                url: chosen.url,
                why: chosen.why,
                region: chosen.region,
            };
            let client = o.client_options(&request)?;
            Ok((SessionConfig { request, client }, choice))
        });
        Ok(DoctorConfig {
            identity_source,
            identity: self.identity.to_config()?,
            session,
            trust_anchor_ca: self.trust_anchor_ca.clone(),
            call: self.call,
            format: match self.format {
                DoctorFormatArg::Text => DoctorFormat::Text,
                DoctorFormatArg::Json => DoctorFormat::Json,
            },
        })
    }
}

impl Command {
    /// Fills every identity and session flag not given from the `--identity` table of the
    /// config file, once, before anything is lowered or looked at (the TPM signal handling
    /// depends on which key it is). Returns where each value came from, for `doctor`; `None`
    /// without `--identity`, when nothing is read.
    pub fn apply_identity_file(&mut self) -> Result<Option<IdentitySource>, ConfigError> {
        let (identity, session) = match self {
            Command::CredentialProcess(a) => (&mut a.identity, Session::One(&mut a.session)),
            Command::Exec(a) => (&mut a.identity, Session::One(&mut a.session)),
            Command::Update(a) => (&mut a.identity, Session::One(&mut a.session)),
            Command::Doctor(a) => (&mut a.identity, Session::One(&mut a.session)),
            Command::Serve(a) => (&mut a.identity, Session::Serve(&mut a.session)),
            Command::SignString(a) => (&mut a.identity, Session::None),
            Command::ReadCertificateData(a) => (&mut a.identity, Session::CertificateOnly),
            Command::Cache(CacheArgs {
                command: CacheCommand::Clear(a),
            }) if !a.all => {
                let a = &mut **a;
                let arns = [&mut a.trust_anchor_arn, &mut a.profile_arn, &mut a.role_arn];
                (&mut a.identity, Session::Parts(arns, &mut a.options))
            }
            Command::Cache(_)
            | Command::Keygen(_)
            | Command::Version
            | Command::Completions(_)
            | Command::Man(_) => return Ok(None),
        };
        let Some(name) = identity.named.clone() else {
            return Ok(None);
        };
        let path = match &identity.config_file {
            Some(path) => path.clone(),
            None => identity_file::default_path()?,
        };
        let file = identity_file::load(&path, &name)?;
        let mut filler = Filler {
            file: &file,
            origins: Vec::new(),
        };
        match session {
            Session::CertificateOnly => filler.certificate(identity),
            _ => filler.identity(identity),
        }
        match session {
            Session::One(s) => {
                filler.arns([&mut s.trust_anchor_arn, &mut s.profile_arn, &mut s.role_arn]);
                filler.options(&mut s.options);
            }
            Session::Serve(s) => {
                filler.text("trust-anchor-arn", &mut s.trust_anchor_arn);
                filler.text("profile-arn", &mut s.profile_arn);
                let mut role = s.role_arn.first().cloned();
                let given = role.is_some();
                filler.text("role-arn", &mut role);
                if let (false, Some(role)) = (given, role) {
                    s.role_arn.push(role);
                }
                filler.options(&mut s.options);
            }
            Session::Parts(arns, options) => {
                filler.arns(arns);
                filler.options(options);
            }
            Session::None | Session::CertificateOnly => {}
        }
        let origins = filler.origins;
        Ok(Some(IdentitySource {
            name,
            path,
            origins,
        }))
    }
}

/// The session flags of a command, in the shapes they take.
enum Session<'a> {
    /// One request: `credential-process`, `exec`, `update`, `doctor`.
    One(&'a mut SessionArgs),
    /// `serve`: several roles.
    Serve(&'a mut ServeSessionArgs),
    /// `cache clear`: ARNs that only `--all` may leave out.
    Parts([&'a mut Option<String>; 3], &'a mut SessionOptions),
    /// No session: `sign-string`.
    None,
    /// No session, and no key either: `read-certificate-data` refuses key flags.
    CertificateOnly,
}

/// Fills flags not given from one identity of the config file, noting where each value
/// came from.
struct Filler<'a> {
    file: &'a identity_file::NamedIdentity,
    origins: Vec<ValueOrigin>,
}

impl Filler<'_> {
    fn identity(&mut self, id: &mut IdentityArgs) {
        self.text("certificate", &mut id.certificate);
        // A key given as a flag replaces the identity's key, whichever way either names it.
        if id.pkcs11_uri.is_none() {
            self.text("private-key", &mut id.private_key);
        }
        if id.private_key.is_none() {
            self.text("pkcs11-uri", &mut id.pkcs11_uri);
        }
        self.path("intermediates", &mut id.intermediates);
        self.path("pkcs11-lib", &mut id.pkcs11_lib);
        self.path("pkcs11-pin-file", &mut id.pkcs11_pin_file);
        self.flag("reuse-pin", &mut id.reuse_pin);
        self.path("pkcs11-context-pin-file", &mut id.pkcs11_context_pin_file);
        // A password given as a flag replaces the file the identity names.
        if id.pkcs8_password.is_none() {
            self.path("pkcs8-password-file", &mut id.pkcs8_password_file);
        }
        self.text("tpm-tcti", &mut id.tpm_tcti);
        if id.tpm_key_password.is_none() && !id.no_tpm_key_password {
            self.path("tpm-key-password-file", &mut id.tpm_key_password_file);
        }
        if id.tpm_key_password.is_none() && id.tpm_key_password_file.is_none() {
            self.flag("no-tpm-key-password", &mut id.no_tpm_key_password);
        }
        self.flag("require-hardware-key", &mut id.require_hardware_key);
    }

    /// What `read-certificate-data` reads: the certificate, or the token the identity's
    /// key URI names, with its module and PIN.
    fn certificate(&mut self, id: &mut IdentityArgs) {
        self.text("certificate", &mut id.certificate);
        if id.certificate.is_none() {
            self.text("pkcs11-uri", &mut id.pkcs11_uri);
        }
        self.path("pkcs11-lib", &mut id.pkcs11_lib);
        self.path("pkcs11-pin-file", &mut id.pkcs11_pin_file);
    }

    fn arns(&mut self, [trust_anchor, profile, role]: [&mut Option<String>; 3]) {
        self.text("trust-anchor-arn", trust_anchor);
        self.text("profile-arn", profile);
        self.text("role-arn", role);
    }

    fn options(&mut self, o: &mut SessionOptions) {
        self.number(
            "session-duration",
            &mut o.session_duration,
            &DEFAULT_SESSION_SECONDS,
        );
        self.text("role-session-name", &mut o.role_session_name);
        self.text("region", &mut o.region);
        if !o.fips {
            self.text("endpoint", &mut o.endpoint);
        }
        if o.endpoint.is_none() {
            self.flag("fips", &mut o.fips);
        }
        self.path("ca-bundle", &mut o.ca_bundle);
        if o.ca_bundle.is_none() && std::env::var_os(env::AWS_CA_BUNDLE).is_some() {
            self.note("ca-bundle", Origin::Environment(env::AWS_CA_BUNDLE));
        }
        self.number(
            "connect-timeout",
            &mut o.connect_timeout,
            &DEFAULT_CONNECT_TIMEOUT_SECS,
        );
        self.number(
            "request-timeout",
            &mut o.request_timeout,
            &DEFAULT_REQUEST_TIMEOUT_SECS,
        );
        self.number("max-attempts", &mut o.max_attempts, &DEFAULT_MAX_ATTEMPTS);
    }

    fn note(&mut self, key: &'static str, origin: Origin) {
        self.origins.push(ValueOrigin { key, origin });
    }

    /// The file's value of `key`, noted, when no flag gave one.
    fn take(&mut self, key: &'static str, given: bool) -> Option<&identity_file::Value> {
        if given {
            self.note(key, Origin::Flag);
            return None;
        }
        let located = self.file.get(key)?;
        self.note(key, Origin::File { line: located.line });
        Some(&located.value)
    }

    fn text(&mut self, key: &'static str, slot: &mut Option<String>) {
        let value = match self.take(key, slot.is_some()) {
            Some(identity_file::Value::Text(t)) => t.clone(),
            Some(identity_file::Value::Path(p)) => p.to_string_lossy().into_owned(),
            _ => return,
        };
        *slot = Some(value);
    }

    fn path(&mut self, key: &'static str, slot: &mut Option<PathBuf>) {
        if let Some(identity_file::Value::Path(p)) = self.take(key, slot.is_some()) {
            *slot = Some(p.clone());
        }
    }

    fn flag(&mut self, key: &'static str, slot: &mut bool) {
        if let Some(identity_file::Value::Flag(on)) = self.take(key, *slot) {
            *slot = *on;
        }
    }

    fn number<T: TryFrom<u64> + std::fmt::Display>(
        &mut self,
        key: &'static str,
        slot: &mut Option<T>,
        default: &T,
    ) {
        let given = slot.is_some();
        match self.take(key, given) {
            Some(identity_file::Value::Number(n)) => *slot = T::try_from(*n).ok(),
            _ if !given => self.note(key, Origin::Default(default.to_string())),
            _ => {}
        }
    }
}

/// Where a TPM key's parent password comes from: `RA_SIGNER_TPM_PARENT_PASSWORD`, the file
/// `RA_SIGNER_TPM_PARENT_PASSWORD_FILE` names, then the tpm2-openssl provider's variable.
fn parent_password_sources() -> Vec<SecretSource> {
    let mut sources = vec![SecretSource::Env(env::TPM_PARENT_PASSWORD)];
    if let Some(path) = std::env::var_os(env::TPM_PARENT_PASSWORD_FILE) {
        sources.push(SecretSource::File(PathBuf::from(path)));
    }
    sources.push(SecretSource::Env(env::OPENSSL_PARENT_AUTH));
    sources
}

/// Parses a `pkcs11:` URI, once, for every later use.
fn token_uri(text: &str) -> Result<TokenUri, ConfigError> {
    TokenUri::parse(text).map_err(|e| {
        ConfigError::new(e.to_string()).with_hint(
            "write it as pkcs11:token=LABEL;object=LABEL (percent-encode special characters); \
             `p11tool --list-all` prints the URI of every object",
        )
    })
}

/// The role name IMDS serves a role ARN under: the last segment of its path.
pub fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

impl ServeArgs {
    /// Validates the flags: the address rules, one request per role with distinct names,
    /// the timing, the protocol.
    pub fn to_config(&self) -> Result<ServeConfig, ConfigError> {
        check_bind(self.bind, self.hop_limit)?;
        let s = &self.session;
        let mut roles: Vec<ServedRole> = Vec::new();
        let trust_anchor_arn = required(&s.trust_anchor_arn, "trust-anchor-arn")?;
        let profile_arn = required(&s.profile_arn, "profile-arn")?;
        for arn in &s.role_arn {
            let request = SessionRequest::new(
                Arn::parse(trust_anchor_arn, ArnKind::TrustAnchor)?,
                Arn::parse(profile_arn, ArnKind::Profile)?,
                Arn::parse(arn, ArnKind::Role)?,
                s.options.session_duration()?,
                s.options.role_session_name.clone(),
            )?;
            let name = role_name(request.role_arn.as_str()).to_owned();
            if roles.iter().any(|r| r.name == name) {
                return Err(ConfigError::new(format!(
                    "two --role-arn values have the same role name \"{name}\": each role is served under its name"
                )));
            }
            roles.push(ServedRole { name, request });
        }
        let first = roles
            .first()
            .ok_or_else(|| ConfigError::new("serve needs at least one --role-arn".into()))?;
        let client = s.options.client_options(&first.request)?;
        let timing = RefreshTiming::DEFAULT;
        let protocol = match (&self.auth_token_file, self.ecs) {
            (Some(path), true) => ServeProtocol::Ecs {
                token_file: path.clone(),
            },
            (None, true) => {
                return Err(ConfigError::new("--ecs needs --auth-token-file FILE".into()).with_hint(
                    "the file is read if it exists, else created with a new random token; give it to clients as AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                ));
            }
            (_, false) => ServeProtocol::Imds,
        };
        Ok(ServeConfig {
            identity: self.identity.to_config()?,
            roles,
            client,
            listen: SocketAddr::new(self.bind, self.port),
            hop_limit: self.hop_limit,
            protocol,
            timing,
            threads: self.threads,
            metrics: self.metrics.map(check_metrics).transpose()?,
        })
    }
}

/// The address rules of `serve`: loopback, or anything with a hop limit of 1.
pub fn check_bind(bind: IpAddr, hop_limit: u8) -> Result<(), ConfigError> {
    if bind.is_loopback() || hop_limit == 1 {
        return Ok(());
    }
    Err(ConfigError::new(format!(
        "--bind {bind} is not a loopback address: anyone who can reach it would get the credentials"
    ))
    .with_hint("add --hop-limit 1 so answers cannot cross a router (as EC2's metadata service does), or bind 127.0.0.1"))
}

/// The address rule of `serve --metrics`: loopback only, whatever the hop limit (the
/// metrics name the roles and tell when credentials expire; nobody else needs them).
pub fn check_metrics(addr: SocketAddr) -> Result<SocketAddr, ConfigError> {
    if addr.ip().is_loopback() {
        return Ok(addr);
    }
    Err(ConfigError::new(format!(
        "--metrics {addr} is not a loopback address: the metrics listener serves only this machine"
    ))
    .with_hint("use --metrics 127.0.0.1:PORT (or [::1]:PORT) and let a local agent scrape it"))
}

impl UpdateArgs {
    /// Validates the flags and finds the credentials file.
    pub fn to_config(&self) -> Result<UpdateConfig, ConfigError> {
        check_profile(&self.profile)?;
        let session = self.session.to_config()?;
        let timing = RefreshTiming::DEFAULT;
        Ok(UpdateConfig {
            credentials_file: credentials_path()?,
            identity: self.identity.to_config()?,
            session,
            profile: self.profile.clone(),
            once: self.once,
            timing,
        })
    }
}

/// Whether botocore reads `name` as a profile of the credentials file.
pub fn check_profile(name: &str) -> Result<(), ConfigError> {
    // `[DEFAULT]` is no profile to botocore: its keys would go into every profile.
    let bad = name.is_empty()
        || name == crate::credentials_file::DEFAULT_SECTION
        || name != name.trim()
        || name.chars().any(|c| c.is_control() || c == '[' || c == ']');
    if bad {
        return Err(ConfigError::new(format!(
            "--profile \"{name}\" is not a usable profile name (no brackets, control characters or surrounding spaces, not DEFAULT)"
        )));
    }
    Ok(())
}

/// The shared credentials file: `$AWS_SHARED_CREDENTIALS_FILE` (with `~/` expanded), else
/// `$HOME/.aws/credentials`.
pub fn credentials_path() -> Result<PathBuf, ConfigError> {
    let home = || {
        std::env::var_os(env::HOME)
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = std::env::var_os(env::AWS_SHARED_CREDENTIALS_FILE).filter(|p| !p.is_empty()) {
        let text = p.to_string_lossy();
        if let (Some(rest), Some(home)) = (text.strip_prefix("~/"), home()) {
            return Ok(home.join(rest));
        }
        return Ok(PathBuf::from(p));
    }
    home()
        .map(|h| h.join(".aws").join("credentials"))
        .ok_or_else(|| {
            ConfigError::new(
            "neither $AWS_SHARED_CREDENTIALS_FILE nor $HOME is set: no credentials file to write"
                .into(),
        )
        })
}

/// The key types `keygen` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyTypeArg {
    /// RSA, 2048 bits.
    Rsa2048,
    /// RSA, 3072 bits.
    Rsa3072,
    /// ECDSA on NIST P-256.
    P256,
    /// ECDSA on NIST P-384.
    P384,
}

/// `keygen` (its help: [`ABOUT_KEYGEN`]).
#[derive(Debug, Clone, Args)]
#[command(about = ABOUT_KEYGEN)]
pub struct KeygenArgs {
    /// The token and the key's label and id: pkcs11:token=LABEL;object=KEY-LABEL;id=%01.
    /// Without id=, a random 8-byte id is chosen. module-path= and pin-source= are honoured.
    #[arg(
        long,
        value_name = "URI",
        required_unless_present = "tpm",
        conflicts_with = "tpm"
    )]
    pub pkcs11_uri: Option<String>,

    /// Generate the key inside the TPM instead (with --out or --persistent).
    #[arg(long, conflicts_with_all = ["import_cert", "always_auth", "pkcs11_lib", "pkcs11_pin_file"])]
    pub tpm: bool,

    /// With --tpm: write the new key as a TSS2 PRIVATE KEY file.
    #[arg(
        long,
        value_name = "KEY_FILE",
        requires = "tpm",
        conflicts_with = "persistent"
    )]
    pub out: Option<PathBuf>,

    /// With --tpm: make the new key persistent at this handle (needs the owner hierarchy;
    /// its password from $RA_SIGNER_TPM_OWNER_PASSWORD).
    #[arg(long, value_name = "handle:0x81xxxxxx", requires = "tpm")]
    pub persistent: Option<String>,

    /// With --tpm: the parent, owner (the standard ECC storage primary), endorsement, or a
    /// persistent storage key handle:0x81xxxxxx (its password from
    /// $RA_SIGNER_TPM_PARENT_PASSWORD).
    #[arg(
        long,
        value_name = "owner|endorsement|handle:0x81xxxxxx",
        default_value = "owner"
    )]
    pub parent: String,

    /// With --tpm: the TCTI, device:PATH (a TPM device or a swtpm UNIX socket),
    /// swtpm:host=H,port=P or tabrmd (else $TPM2TOOLS_TCTI, $TSS2_TCTI, $TPM_DEVICE,
    /// device:/dev/tpmrm0).
    #[arg(long, value_name = "TCTI", requires = "tpm")]
    pub tpm_tcti: Option<String>,

    /// With --tpm: a file whose first line becomes the new key's password (else
    /// $RA_SIGNER_TPM_KEY_PASSWORD; none if neither is set).
    #[arg(long, value_name = "FILE", requires = "tpm")]
    pub tpm_key_password_file: Option<PathBuf>,

    /// With --tpm: replace existing output files.
    #[arg(long, requires = "tpm")]
    pub force: bool,

    /// The key to generate.
    #[arg(long, value_enum, default_value = "p256")]
    pub key_type: KeyTypeArg,

    /// The CSR's subject: RFC 4514 ("CN=host1,O=Example\, Inc.", most specific first) or
    /// OpenSSL ("/O=Example/CN=host1"). Attributes: CN, O, OU, C, ST, L, STREET, DC, UID,
    /// serialNumber, emailAddress, or a dotted OID.
    #[arg(long, value_name = "DN")]
    pub subject: Option<String>,

    /// Say on stderr what is generated where (never a secret).
    #[arg(long)]
    pub debug: bool,

    /// Where to write the PEM CSR (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub csr_out: Option<PathBuf>,

    /// Instead of generating: store this certificate (PEM or DER; a PEM bundle's further
    /// certificates are stored as the chain) beside the existing key the URI names.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["subject", "csr_out"])]
    pub import_cert: Option<PathBuf>,

    /// Mark the new key CKA_ALWAYS_AUTHENTICATE (a PIN for every signature).
    #[arg(long)]
    pub always_auth: bool,

    /// The PKCS#11 module (default: the URI's module-path, else p11-kit's proxy).
    #[arg(long, value_name = "PATH")]
    pub pkcs11_lib: Option<PathBuf>,

    /// A file holding the user PIN (else RA_SIGNER_PKCS11_PIN, else a prompt on a terminal).
    #[arg(long, value_name = "FILE")]
    pub pkcs11_pin_file: Option<PathBuf>,
}

impl KeygenArgs {
    /// Checks the flags into a [`KeygenConfig`]: every check of a keygen flag is made here,
    /// once, but for what the PKCS#11 backend asks of the URI when it parses it (its syntax,
    /// and an `object=` label for a new key) until the URI is parsed at this boundary.
    pub fn to_config(&self) -> Result<KeygenConfig, ConfigError> {
        let job = if self.tpm {
            self.tpm_job()?
        } else {
            self.token_job()?
        };
        Ok(KeygenConfig {
            job,
            debug: self.debug,
        })
    }

    fn token_job(&self) -> Result<KeygenJob, ConfigError> {
        let mut pin_sources = Vec::new();
        if let Some(f) = &self.pkcs11_pin_file {
            pin_sources.push(SecretSource::File(f.clone()));
        }
        pin_sources.extend([SecretSource::Env(env::PKCS11_PIN), SecretSource::Prompt]);
        let token = TokenKeygen {
            // clap requires --pkcs11-uri unless --tpm.
            uri: token_uri(self.pkcs11_uri.as_deref().unwrap_or_default())?,
            pkcs11: Pkcs11Settings {
                module: self.pkcs11_lib.clone(),
                pin_sources,
                reuse_pin: false,
                context_pin_sources: Vec::new(),
            },
        };
        if let Some(certificate) = &self.import_cert {
            return Ok(KeygenJob::TokenCertificate {
                token,
                certificate: certificate.clone(),
            });
        }
        if token.uri.uri().object.is_none() {
            return Err(
                ConfigError::new("the URI must name the new key with object=LABEL".into())
                    .with_hint("e.g. --pkcs11-uri 'pkcs11:token=prod;object=ra-signer;id=%01'"),
            );
        }
        let subject = self.subject("keygen needs --subject for the CSR, e.g. --subject \"CN=host1,O=Example\" (or --import-cert to store a certificate)")?;
        Ok(KeygenJob::TokenKey {
            token,
            key_type: match self.key_type {
                KeyTypeArg::Rsa2048 => KeygenKeyType::Rsa2048,
                KeyTypeArg::Rsa3072 => KeygenKeyType::Rsa3072,
                KeyTypeArg::P256 => KeygenKeyType::P256,
                KeyTypeArg::P384 => KeygenKeyType::P384,
            },
            always_authenticate: self.always_auth,
            csr: CsrRequest {
                subject,
                out: self.csr_out.clone(),
                // --force is a TPM flag: a token's CSR file was always replaced.
                replace: true,
            },
        })
    }

    fn tpm_job(&self) -> Result<KeygenJob, ConfigError> {
        let key_type = match self.key_type {
            KeyTypeArg::Rsa2048 => TpmKeyType::Rsa2048,
            KeyTypeArg::P256 => TpmKeyType::P256,
            KeyTypeArg::P384 => TpmKeyType::P384,
            KeyTypeArg::Rsa3072 => {
                return Err(ConfigError::new(
                    "keygen --tpm makes rsa2048, p256 or p384 keys (TPMs commonly lack RSA-3072)"
                        .into(),
                ));
            }
        };
        let subject = self.subject(
            "keygen --tpm needs --subject for the CSR, e.g. --subject 'CN=host1,O=Example'",
        )?;
        let target = match (&self.out, &self.persistent) {
            (Some(path), None) => TpmKeyTarget::File(path.clone()),
            (None, Some(handle)) => TpmKeyTarget::Persistent(persistent_handle(handle)?),
            _ => {
                return Err(ConfigError::new(
                    "give either --out KEY_FILE or --persistent handle:0x81xxxxxx".into(),
                ));
            }
        };
        let parent = match self.parent.as_str() {
            "owner" | "o" => TpmParent::Owner,
            "endorsement" | "e" => TpmParent::Endorsement,
            other => TpmParent::Persistent(persistent_handle(other)?),
        };
        let mut key_password_sources = Vec::new();
        if let Some(path) = &self.tpm_key_password_file {
            key_password_sources.push(SecretSource::File(path.clone()));
        }
        key_password_sources.push(SecretSource::Env(env::TPM_KEY_PASSWORD));
        Ok(KeygenJob::TpmKey {
            tpm: TpmKeygen {
                connection: TpmConnection::resolve(self.tpm_tcti.as_deref(), env::non_blank),
                parent_password_sources: parent_password_sources(),
                key_type,
                target,
                parent,
                key_password_sources,
                owner_password_sources: vec![SecretSource::Env(env::TPM_OWNER_PASSWORD)],
                replace: self.force,
            },
            csr: CsrRequest {
                subject,
                out: self.csr_out.clone(),
                replace: self.force,
            },
        })
    }

    /// `--subject`, parsed; `missing` says what to do without one.
    fn subject(&self, missing: &str) -> Result<Subject, ConfigError> {
        let text = self
            .subject
            .as_deref()
            .ok_or_else(|| ConfigError::new(missing.to_owned()))?;
        Subject::parse(text).map_err(|e| ConfigError::new(e.to_string()).with_hint(SUBJECT_HINT))
    }
}

/// What to write instead of a malformed subject.
const SUBJECT_HINT: &str = "write e.g. --subject \"CN=host1,O=Example\" (RFC 4514, most specific \
     first; escape , + \" \\ ; < > with a backslash) or \"/O=Example/CN=host1\"";

/// A persistent TPM handle, `handle:0x81000101` or without the `handle:`.
fn persistent_handle(text: &str) -> Result<u32, ConfigError> {
    let with_prefix = if text.starts_with("handle:") {
        text.to_owned()
    } else {
        format!("handle:{text}")
    };
    parse_tpm_handle(&with_prefix)
        .unwrap_or_else(|| Err(ConfigError::new(format!("\"{text}\" is not a TPM handle"))))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct ServeCli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    const BASE: [&str; 9] = [
        "serve",
        "--certificate",
        "c.pem",
        "--private-key",
        "k.pem",
        "--trust-anchor-arn",
        "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/ta",
        "--profile-arn",
        "arn:aws:rolesanywhere:us-east-1:123456789012:profile/p",
    ];

    fn parse(extra: &[&str]) -> Result<ServeArgs, clap::Error> {
        let argv: Vec<&str> = BASE.iter().chain(extra).copied().collect();
        ServeCli::try_parse_from(argv).map(|c| c.serve)
    }

    #[test]
    fn flags_and_defaults() {
        ServeCli::command().debug_assert();
        let a = parse(&["--role-arn", "arn:aws:iam::123456789012:role/A"]).expect("parse");
        assert_eq!((a.port, a.hop_limit, a.threads), (9911, 64, 2));
        assert_eq!(a.bind, IpAddr::from([127, 0, 0, 1]));
        assert!(!a.ecs);
        let a = parse(&[
            "--role-arn",
            "arn:aws:iam::123456789012:role/A",
            "--role-arn",
            "arn:aws:iam::123456789012:role/path/B",
            "--bind",
            "::1",
            "--hop-limit",
            "1",
            "--ecs",
            "--auth-token-file",
            "t",
        ])
        .expect("parse");
        assert_eq!(a.session.role_arn.len(), 2);
        assert_eq!(role_name(&a.session.role_arn[1]), "B");
        assert!(parse(&[]).is_err(), "a role is required");
        assert!(
            parse(&[
                "--role-arn",
                "arn:aws:iam::123456789012:role/A",
                "--hop-limit",
                "0"
            ])
            .is_err()
        );
        assert!(
            parse(&[
                "--role-arn",
                "arn:aws:iam::123456789012:role/A",
                "--auth-token-file",
                "t"
            ])
            .is_err(),
            "--auth-token-file belongs to --ecs"
        );
    }

    #[test]
    fn non_loopback_needs_hop_limit_1() {
        let any: IpAddr = "0.0.0.0".parse().expect("ip");
        assert!(check_bind(any, 64).is_err());
        assert!(check_bind(any, 2).is_err());
        assert!(check_bind(any, 1).is_ok());
        assert!(check_bind("::1".parse().expect("ip"), 64).is_ok());
        assert!(check_bind("127.0.0.2".parse().expect("ip"), 64).is_ok());
        let e = check_bind("10.1.2.3".parse().expect("ip"), 64).expect_err("refused");
        assert!(e.hint.is_some_and(|h| h.contains("--hop-limit 1")));
    }

    #[test]
    fn timeouts_and_attempts_are_bounded_whoever_gives_them() {
        assert_eq!(
            timeout("connect-timeout", 0).ok(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            timeout("connect-timeout", MAX_TIMEOUT_SECS).ok(),
            Some(Duration::from_secs(MAX_TIMEOUT_SECS))
        );
        let e = timeout("request-timeout", u64::MAX).expect_err("unbounded");
        assert!(
            e.message
                .starts_with("--request-timeout 18446744073709551615 is longer"),
            "{}",
            e.message
        );
        assert_eq!(attempts(1).ok(), Some(1));
        assert_eq!(attempts(10).ok(), Some(10));
        for n in [0, 11, u32::MAX] {
            let e = attempts(n).expect_err("out of range");
            assert!(e.message.contains("not in 1..=10"), "{}", e.message);
        }
    }

    #[test]
    fn metrics_must_be_loopback_whatever_the_hop_limit() {
        for ok in ["127.0.0.1:9912", "127.0.0.2:0", "[::1]:9912"] {
            assert!(check_metrics(ok.parse().expect("addr")).is_ok(), "{ok}");
        }
        for bad in ["0.0.0.0:9912", "10.1.2.3:9912", "[::]:9912"] {
            let e = check_metrics(bad.parse().expect("addr")).expect_err(bad);
            assert!(
                e.message.contains("not a loopback address"),
                "{}",
                e.message
            );
            assert!(e.hint.is_some_and(|h| h.contains("127.0.0.1")));
        }
    }

    #[test]
    fn profile_names_are_checked() {
        assert!(check_profile("default").is_ok());
        assert!(check_profile("my-profile.1").is_ok());
        for bad in ["", " x", "a]b", "a\nb", "DEFAULT"] {
            assert!(check_profile(bad).is_err(), "{bad:?}");
        }
    }

    fn keygen(args: &[&str]) -> Result<KeygenArgs, clap::Error> {
        let cli = Cli::try_parse_from(["ra-signer", "keygen"].iter().chain(args))?;
        match cli.command {
            Command::Keygen(args) => Ok(args),
            other => panic!("not keygen: {other:?}"),
        }
    }

    fn keygen_config(args: &[&str]) -> Result<KeygenConfig, ConfigError> {
        keygen(args).expect("parses").to_config()
    }

    #[test]
    fn keygen_tpm_flags_are_lowered_once() {
        Cli::command().debug_assert();
        let config = keygen_config(&[
            "--tpm",
            "--key-type",
            "rsa2048",
            "--persistent",
            "handle:0x81000105",
            "--parent",
            "handle:0x81000001",
            "--subject",
            "CN=a",
            "--tpm-tcti",
            "swtpm:port=1",
        ])
        .expect("config");
        let KeygenJob::TpmKey { tpm, csr } = config.job else {
            panic!("not a TPM job: {:?}", config.job);
        };
        assert_eq!(tpm.key_type, TpmKeyType::Rsa2048);
        assert_eq!(tpm.target, TpmKeyTarget::Persistent(0x8100_0105));
        assert_eq!(tpm.parent, TpmParent::Persistent(0x8100_0001));
        assert_eq!(
            (tpm.connection.tcti.as_str(), tpm.connection.origin),
            ("swtpm:port=1", "--tpm-tcti")
        );
        assert!(csr.out.is_none());
        assert!(!csr.replace && !tpm.replace);
        assert!(
            keygen(&[
                "--tpm",
                "--out",
                "k",
                "--persistent",
                "handle:0x81000105",
                "--subject",
                "CN=a"
            ])
            .is_err()
        );
        let neither = keygen_config(&["--tpm", "--subject", "CN=a"]).expect_err("no target");
        assert!(
            neither.message.contains("--out KEY_FILE or --persistent"),
            "{neither}"
        );
        for (parent, want) in [
            ("owner", TpmParent::Owner),
            ("o", TpmParent::Owner),
            ("endorsement", TpmParent::Endorsement),
            ("e", TpmParent::Endorsement),
            ("81000001", TpmParent::Persistent(0x8100_0001)),
        ] {
            let config = keygen_config(&[
                "--tpm",
                "--out",
                "k",
                "--subject",
                "CN=a",
                "--parent",
                parent,
            ])
            .expect(parent);
            let KeygenJob::TpmKey { tpm, .. } = config.job else {
                panic!("not a TPM job");
            };
            assert_eq!(tpm.parent, want, "{parent}");
        }
    }

    #[test]
    fn keygen_flags_are_refused_in_the_lowering() {
        for (args, says) in [
            (
                &[
                    "--tpm",
                    "--out",
                    "k",
                    "--key-type",
                    "rsa3072",
                    "--subject",
                    "CN=a",
                ][..],
                "rsa2048, p256 or p384",
            ),
            (&["--tpm", "--out", "k"][..], "keygen --tpm needs --subject"),
            (
                &["--tpm", "--out", "k", "--subject", "CN=a;b"][..],
                r"must be escaped as \;",
            ),
            (
                &[
                    "--tpm",
                    "--persistent",
                    "handle:0x40000001",
                    "--subject",
                    "CN=a",
                ][..],
                "not a persistent TPM handle",
            ),
            (
                &[
                    "--tpm",
                    "--out",
                    "k",
                    "--subject",
                    "CN=a",
                    "--parent",
                    "platform",
                ][..],
                "not a persistent TPM handle",
            ),
            (
                &["--pkcs11-uri", "pkcs11:token=t;object=k"][..],
                "keygen needs --subject",
            ),
            (
                &[
                    "--pkcs11-uri",
                    "pkcs11:token=t;object=k",
                    "--subject",
                    "FOO=bar",
                ][..],
                "unknown attribute",
            ),
        ] {
            let err = keygen_config(args).expect_err(says);
            assert!(err.message.contains(says), "{args:?}: {err}");
        }
    }

    #[test]
    fn keygen_token_flags_are_lowered_once() {
        let config = keygen_config(&[
            "--pkcs11-uri",
            "pkcs11:token=t;object=k;id=%01",
            "--key-type",
            "rsa3072",
            "--always-auth",
            "--subject",
            "CN=a,O=b",
            "--pkcs11-pin-file",
            "pin",
            "--debug",
        ])
        .expect("config");
        assert!(config.debug);
        let KeygenJob::TokenKey {
            token,
            key_type,
            always_authenticate,
            csr,
        } = config.job
        else {
            panic!("not a token key: {:?}", config.job);
        };
        assert_eq!(token.uri.as_str(), "pkcs11:token=t;object=k;id=%01");
        assert!(matches!(
            token.pkcs11.pin_sources.as_slice(),
            [
                SecretSource::File(_),
                SecretSource::Env(_),
                SecretSource::Prompt
            ]
        ));
        assert_eq!(key_type, KeygenKeyType::Rsa3072);
        assert!(always_authenticate);
        assert_eq!(csr.subject.rdns().len(), 2);
        assert!(csr.replace, "a token's CSR file was always replaced");
        let config = keygen_config(&[
            "--pkcs11-uri",
            "pkcs11:token=t;object=k",
            "--import-cert",
            "cert.pem",
        ])
        .expect("config");
        assert!(matches!(
            config.job,
            KeygenJob::TokenCertificate { certificate, .. } if certificate == Path::new("cert.pem")
        ));
    }
}
