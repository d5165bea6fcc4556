//! Command-line flags (clap) and their translation into validated configuration. No I/O
//! happens here beyond reading the environment and the AWS config file for defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{
    Arn, ArnKind, CertificateSource, ConfigError, IdentityConfig, Pkcs11Settings, PrivateKeySource,
    SessionDuration, SessionRequest, TpmSettings, as_pkcs11_uri, parse_tpm_handle,
};
use crate::endpoint;
use crate::env;
use crate::rolesanywhere::ClientOptions;
use crate::secret::{Secret, SecretSource};

/// ra-signer: AWS IAM Roles Anywhere credentials from keys that stay in hardware.
#[derive(Debug, Parser)]
#[command(
    name = "ra-signer",
    args_override_self = true,
    version,
    about = "AWS IAM Roles Anywhere credential helper: signs CreateSession with a key in a PKCS#11 token, a TPM 2.0 or a key file",
    after_help = "Exit codes: 0 success, 1 other failure, 2 usage, 3 certificate/key/token problem, 4 rejected by AWS, 5 network or service failure, 6 serve cannot listen.\nDocumentation: docs/ in the source tree."
)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Get credentials once and print them as credential_process JSON on stdout.
    CredentialProcess(CredentialProcessArgs),
    /// Sign the fixed test string with the key (checks that a key works).
    SignString(SignStringArgs),
    /// Print a certificate's data: JSON for a file or PKCS#12, the Go helper's listing of every
    /// matching certificate for a pkcs11: URI.
    ReadCertificateData(ReadCertificateDataArgs),
    /// Serve credentials on an IMDSv2-style (or ECS) endpoint, refreshed before expiry.
    Serve(crate::serve::ServeArgs),
    /// Keep a profile of the shared credentials file fresh.
    Update(crate::update::UpdateArgs),
    /// Generate a key pair inside a token or TPM (non-extractable) and write a PKCS#10 CSR
    /// for it; for tokens, store the issued certificate beside the key.
    Keygen(crate::keygen::KeygenArgs),
    /// Print the version.
    Version,
}

/// Where the certificate and key come from.
#[derive(Debug, Clone, Args)]
pub struct IdentityArgs {
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
    #[arg(long, value_name = "ARN")]
    pub trust_anchor_arn: String,
    /// ARN of the profile.
    #[arg(long, value_name = "ARN")]
    pub profile_arn: String,
    /// ARN of the role to assume.
    #[arg(long, value_name = "ARN")]
    pub role_arn: String,
    /// Everything but the ARNs.
    #[command(flatten)]
    pub options: SessionOptions,
}

/// The session options and transport settings shared by every command that calls
/// CreateSession (`serve` takes several roles, the others one).
#[derive(Debug, Clone, Args)]
pub struct SessionOptions {
    /// Session duration in seconds (900..43200, and at most the profile's limit).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub session_duration: u32,
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
    /// PEM bundle of CAs to trust for the endpoint instead of the system store (also
    /// $AWS_CA_BUNDLE).
    #[arg(
        long,
        value_name = "FILE",
        env = "AWS_CA_BUNDLE",
        hide_env_values = true
    )]
    pub ca_bundle: Option<PathBuf>,
    /// Do not verify the endpoint's TLS certificate (dangerous: tests only).
    #[arg(long)]
    pub no_verify_ssl: bool,
    /// Accepted for compatibility: proxies from HTTPS_PROXY/NO_PROXY are always honoured
    /// (never for loopback endpoints).
    #[arg(long)]
    pub with_proxy: bool,
    /// Connect timeout in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub connect_timeout: u64,
    /// Timeout of one attempt in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 20)]
    pub request_timeout: u64,
    /// Attempts in all on throttling, 5xx or network failure (1 = no retry).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub max_attempts: u32,
    /// Print the canonical request and string to sign on stderr (no secrets are printed).
    #[arg(long)]
    pub debug: bool,
}

/// `credential-process`.
#[derive(Debug, Clone, Args)]
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

/// `sign-string`.
#[derive(Debug, Clone, Args)]
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

/// `read-certificate-data`. The key flags it refuses stay out of its help.
#[derive(Debug, Clone, Args)]
#[command(
    mut_arg("private_key", |a| a.hide(true)),
    mut_arg("intermediates", |a| a.hide(true)),
    mut_arg("reuse_pin", |a| a.hide(true)),
    mut_arg("pkcs11_context_pin_file", |a| a.hide(true)),
    mut_arg("tpm_tcti", |a| a.hide(true)),
    mut_arg("tpm_key_password", |a| a.hide(true)),
    mut_arg("tpm_key_password_file", |a| a.hide(true)),
    mut_arg("no_tpm_key_password", |a| a.hide(true))
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

impl IdentityArgs {
    /// Validates the flags into an [`IdentityConfig`].
    pub fn to_config(&self) -> Result<IdentityConfig, ConfigError> {
        self.refuse_os_store_flags()?;
        let certificate = self.certificate.as_deref().map(|c| match as_pkcs11_uri(c) {
            Some(uri) => CertificateSource::Pkcs11(uri.to_owned()),
            None => CertificateSource::File(PathBuf::from(c)),
        });
        let private_key = match (&self.pkcs11_uri, self.private_key.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "give the key either as --pkcs11-uri or as --private-key, not both".into(),
                ));
            }
            (Some(uri), None) => match as_pkcs11_uri(uri) {
                Some(uri) => PrivateKeySource::Pkcs11(uri.to_owned()),
                None => {
                    return Err(ConfigError(
                        "--pkcs11-uri must be a PKCS#11 URI, starting with \"pkcs11:\"".into(),
                    ));
                }
            },
            (None, Some(k)) => match (as_pkcs11_uri(k), parse_tpm_handle(k.trim())) {
                (Some(uri), _) => PrivateKeySource::Pkcs11(uri.to_owned()),
                (None, Some(handle)) => PrivateKeySource::TpmHandle(handle?),
                (None, None) => PrivateKeySource::File(PathBuf::from(k)),
            },
            (None, None) => match &certificate {
                // A PEM or PKCS#12 file may hold both: the Go helper accepts that too.
                Some(CertificateSource::File(p)) => PrivateKeySource::File(p.clone()),
                // The Go helper's most common form: the key is the certificate's, on its token.
                Some(CertificateSource::Pkcs11(_)) => PrivateKeySource::MatchingTokenCertificate,
                None => {
                    return Err(ConfigError(
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
                tcti: self.tpm_tcti.clone(),
                key_password_sources: tpm_password_sources,
                no_key_password: self.no_tpm_key_password,
            },
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
            Some(flag) => Err(ConfigError(format!(
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
    /// Validates the ARNs and session options.
    pub fn to_request(&self) -> Result<SessionRequest, ConfigError> {
        SessionRequest::new(
            Arn::parse(&self.trust_anchor_arn, ArnKind::TrustAnchor)?,
            Arn::parse(&self.profile_arn, ArnKind::Profile)?,
            Arn::parse(&self.role_arn, ArnKind::Role)?,
            SessionDuration::new(self.options.session_duration)?,
            self.options.role_session_name.clone(),
        )
    }

    /// The endpoint, region and transport options for `request`: the endpoint and signing
    /// region as [`endpoint::resolve_from_environment`] chooses them (with `--debug`, the
    /// choice and why go to stderr).
    pub fn client_options(&self, request: &SessionRequest) -> Result<ClientOptions, ConfigError> {
        let o = &self.options;
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
            ca_bundle: o.ca_bundle.clone().filter(|p| !p.as_os_str().is_empty()),
            danger_accept_invalid_certs: o.no_verify_ssl,
            connect_timeout: Duration::from_secs(o.connect_timeout.max(1)),
            request_timeout: Duration::from_secs(o.request_timeout.max(1)),
            max_attempts: o.max_attempts,
            debug: o.debug,
        })
    }
}
