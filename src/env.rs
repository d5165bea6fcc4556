//! Every environment variable ra-signer reads, by name, in one place. Only the
//! configuration layer (flags lowered into `config` types), the endpoint resolver, the proxy
//! finder, the secret reader, `sdnotify` (the service manager's socket) and `exec` (which
//! checks and edits the environment its command inherits) look them up; backends are handed values, never names.

// ra-signer's own secrets: read once at start-up and removed from the environment
// (`secret::capture_environment`).

/// Password of an encrypted key file.
pub const PKCS8_PASSWORD: &str = "RA_SIGNER_PKCS8_PASSWORD";
/// The PKCS#11 user PIN.
pub const PKCS11_PIN: &str = "RA_SIGNER_PKCS11_PIN";
/// The PKCS#11 context-specific PIN (CKA_ALWAYS_AUTHENTICATE keys).
pub const PKCS11_CONTEXT_PIN: &str = "RA_SIGNER_PKCS11_CONTEXT_PIN";
/// Password of a TPM key.
pub const TPM_KEY_PASSWORD: &str = "RA_SIGNER_TPM_KEY_PASSWORD";
/// Password of a TPM key's parent.
pub const TPM_PARENT_PASSWORD: &str = "RA_SIGNER_TPM_PARENT_PASSWORD";
/// A file holding the password of a TPM key's parent.
pub const TPM_PARENT_PASSWORD_FILE: &str = "RA_SIGNER_TPM_PARENT_PASSWORD_FILE";
/// The tpm2-openssl provider's parent password, accepted for interoperability.
pub const OPENSSL_PARENT_AUTH: &str = "TPM2OPENSSL_PARENT_AUTH";
/// The owner-hierarchy password (`keygen --persistent`).
pub const TPM_OWNER_PASSWORD: &str = "RA_SIGNER_TPM_OWNER_PASSWORD";

/// The variables that hold secrets.
pub const SECRETS: &[&str] = &[
    PKCS8_PASSWORD,
    PKCS11_PIN,
    PKCS11_CONTEXT_PIN,
    TPM_KEY_PASSWORD,
    TPM_PARENT_PASSWORD,
    TPM_OWNER_PASSWORD,
    OPENSSL_PARENT_AUTH,
];

// ra-signer's knobs.

/// Seconds one TPM command may take before ra-signer gives up (0: wait for ever).
pub const TPM_TIMEOUT: &str = "RA_SIGNER_TPM_TIMEOUT";

// The TPM's TCTI, as tpm2-tools and the TSS name it, in the order they are tried.

/// tpm2-tools' TCTI.
pub const TPM2TOOLS_TCTI: &str = "TPM2TOOLS_TCTI";
/// The TSS's TCTI.
pub const TSS2_TCTI: &str = "TSS2_TCTI";
/// A TPM device path or a swtpm UNIX socket.
pub const TPM_DEVICE: &str = "TPM_DEVICE";
/// The TSS's log levels (silenced unless set: it would print to stderr).
pub const TSS2_LOG: &str = "TSS2_LOG";

// The AWS SDKs' variables, read as they read them.

/// The service's own endpoint URL.
pub const AWS_ENDPOINT_URL_ROLESANYWHERE: &str = "AWS_ENDPOINT_URL_ROLESANYWHERE";
/// The endpoint URL for every service.
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// Turns off the endpoint URLs of the environment and the config file.
pub const AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: &str = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS";
/// Chooses the FIPS endpoint.
pub const AWS_USE_FIPS_ENDPOINT: &str = "AWS_USE_FIPS_ENDPOINT";
/// Chooses the dual-stack (IPv4 and IPv6) endpoint.
pub const AWS_USE_DUALSTACK_ENDPOINT: &str = "AWS_USE_DUALSTACK_ENDPOINT";
/// The config-file profile.
pub const AWS_PROFILE: &str = "AWS_PROFILE";
/// The config file's path.
pub const AWS_CONFIG_FILE: &str = "AWS_CONFIG_FILE";
/// The shared credentials file's path (`update`).
pub const AWS_SHARED_CREDENTIALS_FILE: &str = "AWS_SHARED_CREDENTIALS_FILE";
/// CAs to trust for the endpoint, unless `--ca-bundle` or the config file names a bundle.
pub const AWS_CA_BUNDLE: &str = "AWS_CA_BUNDLE";
/// The system trust store's bundle, as OpenSSL reads it (without `--ca-bundle`).
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
/// The system trust store's directories, `:`-separated, as OpenSSL reads them.
pub const SSL_CERT_DIR: &str = "SSL_CERT_DIR";

// What `exec` gives its command, and what it takes away (see `exec`): the SDKs' credential
// variables, and those that would make an SDK choose other credentials.

/// The access key id.
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// The secret access key.
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// The session token.
pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// The session token under its old name (boto 2, older botocore read it).
pub const AWS_SECURITY_TOKEN: &str = "AWS_SECURITY_TOKEN";
/// When the credentials expire (RFC 3339), as botocore and the Rust SDK read it.
pub const AWS_CREDENTIAL_EXPIRATION: &str = "AWS_CREDENTIAL_EXPIRATION";
/// The config-file profile under botocore's older name.
pub const AWS_DEFAULT_PROFILE: &str = "AWS_DEFAULT_PROFILE";
/// The region, as most SDKs read it.
pub const AWS_REGION: &str = "AWS_REGION";
/// The region, as botocore and the AWS CLI read it.
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";

// Proxies, in the order reqwest tries them.

/// Proxies for https URLs.
pub const HTTPS_PROXY: [&str; 4] = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];
/// Proxies for http URLs.
pub const HTTP_PROXY: [&str; 4] = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

// Where files go.

/// The user's home.
pub const HOME: &str = "HOME";
/// Where `exec` looks for a command named without a `/`.
pub const PATH: &str = "PATH";
/// The per-user config directory (the config file of `--identity`).
pub const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";
/// The per-user runtime directory (`--cache` locks).
pub const XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";

// The service manager's (systemd's sd_notify protocol), read by `sdnotify`.

/// The datagram socket to notify: a path, or `@name` in the abstract namespace.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// The watchdog's period in microseconds: a ping is due at least this often.
pub const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// The process the watchdog is meant for (when unset: this one).
pub const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// The value of `name`, when it is set and not blank.
pub fn non_blank(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name this module holds.
    const ALL: &[&str] = &[
        PKCS8_PASSWORD,
        PKCS11_PIN,
        PKCS11_CONTEXT_PIN,
        TPM_KEY_PASSWORD,
        TPM_PARENT_PASSWORD,
        TPM_PARENT_PASSWORD_FILE,
        OPENSSL_PARENT_AUTH,
        TPM_OWNER_PASSWORD,
        TPM_TIMEOUT,
    ];

    /// Messages and hints name variables in their text: each name they give must be one
    /// this module holds (and so one that is read), or the hint sends users nowhere.
    #[test]
    fn every_variable_a_message_names_is_read() {
        let sources = [
            include_str!("error.rs"),
            include_str!("cli.rs"),
            include_str!("keygen/tpm.rs"),
            include_str!("signer/mod.rs"),
            include_str!("signer/tpm/mod.rs"),
            include_str!("signer/tpm/signer.rs"),
            include_str!("signer/tpm/create.rs"),
            include_str!("signer/pkcs11/mod.rs"),
        ];
        for text in sources {
            for (at, _) in text.match_indices("RA_SIGNER_") {
                let name: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if name.starts_with("RA_SIGNER_TEST_") {
                    continue;
                }
                assert!(
                    ALL.contains(&name.as_str()),
                    "{name} is named but never read"
                );
            }
        }
    }
}
