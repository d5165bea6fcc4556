//! The config file of named identities (`--config FILE --identity NAME`, docs/config.md):
//! TOML tables `[identity.NAME]` whose keys are the flags' names without `--`, so that a
//! `credential_process` line can be `ra-signer credential-process --identity onprem`.
//!
//! The file chooses which key signs and where credentials go, so it is read as strictly as
//! a flag: every key known and typed, an error naming its line otherwise, no secret written
//! in it (only where one is read from), and refused when other users may write it.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;

use crate::config::ConfigError;

/// The largest config file read: a few identities are a few KiB.
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;

/// Where the flags' documentation of the file lives, for hints.
const SEE_DOCS: &str = "the keys are the flags' names without --: see docs/config.md";

/// One value of an identity, as its key's type says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string (ARN, URI, region, name).
    Text(String),
    /// A path, resolved against the file's directory, `~/` expanded.
    Path(PathBuf),
    /// `true` or `false`.
    Flag(bool),
    /// A non-negative integer.
    Number(u64),
}

/// A value and the line it is written on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The value.
    pub value: Value,
    /// 1-based line of the key in the file.
    pub line: usize,
}

/// One `[identity.NAME]` table, read and checked.
#[derive(Debug, Clone)]
pub struct NamedIdentity {
    /// NAME.
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// Its values, by key (the flag's name without `--`).
    pub values: BTreeMap<&'static str, Located>,
}

impl NamedIdentity {
    /// The value of `key`, when the identity sets it.
    pub fn get(&self, key: &str) -> Option<&Located> {
        self.values.get(key)
    }
}

/// The file as written: every identity, each table checked whole.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    identity: BTreeMap<String, Spanned<RawIdentity>>,
}

/// One identity as written. The keys a secret would be written under are read only to be
/// refused with the key that replaces them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawIdentity {
    certificate: Option<Spanned<String>>,
    private_key: Option<Spanned<String>>,
    intermediates: Option<Spanned<String>>,
    pkcs11_uri: Option<Spanned<String>>,
    pkcs11_lib: Option<Spanned<String>>,
    pkcs11_pin_file: Option<Spanned<String>>,
    reuse_pin: Option<Spanned<bool>>,
    pkcs11_context_pin_file: Option<Spanned<String>>,
    pkcs8_password_file: Option<Spanned<String>>,
    tpm_tcti: Option<Spanned<String>>,
    tpm_key_password_file: Option<Spanned<String>>,
    no_tpm_key_password: Option<Spanned<bool>>,
    require_hardware_key: Option<Spanned<bool>>,
    trust_anchor_arn: Option<Spanned<String>>,
    profile_arn: Option<Spanned<String>>,
    role_arn: Option<Spanned<String>>,
    session_duration: Option<Spanned<u32>>,
    role_session_name: Option<Spanned<String>>,
    region: Option<Spanned<String>>,
    endpoint: Option<Spanned<String>>,
    fips: Option<Spanned<bool>>,
    ca_bundle: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<u64>>,
    request_timeout: Option<Spanned<u64>>,
    max_attempts: Option<Spanned<u32>>,
    // Refused: secrets are never literals in the file.
    pkcs11_pin: Option<Spanned<IgnoredAny>>,
    pkcs11_context_pin: Option<Spanned<IgnoredAny>>,
    pkcs8_password: Option<Spanned<IgnoredAny>>,
    tpm_key_password: Option<Spanned<IgnoredAny>>,
    // Refused: a setting for tests, never to be left in a file.
    no_verify_ssl: Option<Spanned<IgnoredAny>>,
}

/// The config file when `--config` is not given: `$XDG_CONFIG_HOME/ra-signer/config.toml`,
/// else `~/.config/ra-signer/config.toml`.
pub fn default_path() -> Result<PathBuf, ConfigError> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty(crate::env::XDG_CONFIG_HOME) {
        return Ok(PathBuf::from(dir).join("ra-signer/config.toml"));
    }
    match non_empty(crate::env::HOME) {
        Some(home) => Ok(PathBuf::from(home).join(".config/ra-signer/config.toml")),
        None => Err(ConfigError::new(
            "--identity without --config, and neither $XDG_CONFIG_HOME nor $HOME is set: no config file to read".into(),
        )
        .with_hint("give the file with --config FILE")),
    }
}

/// Reads `path` and returns its identity `name`, after checking the whole file.
pub fn load(path: &Path, name: &str) -> Result<NamedIdentity, ConfigError> {
    let shown = path.display();
    let bytes = crate::input::read_file(path).map_err(|e| {
        ConfigError::new(format!("cannot read the config file {shown}: {e}")).with_hint(
            "give the file with --config FILE, or write it at $XDG_CONFIG_HOME/ra-signer/config.toml (see docs/config.md)",
        )
    })?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::new(format!(
            "the config file {shown} holds {} bytes, more than the {MAX_CONFIG_BYTES} a config file may",
            bytes.len()
        )));
    }
    check_ownership(path)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ConfigError::new(format!("the config file {shown} is not UTF-8 text")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(text, path, base, name)
}

/// Refuses a file other users may write: whoever writes it chooses the key that signs and
/// the endpoint that receives the signature.
fn check_ownership(path: &Path) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        ConfigError::new(format!(
            "cannot read the config file {}: {e}",
            path.display()
        ))
    })?;
    let uid = rustix::process::getuid().as_raw();
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(ConfigError::new(format!(
            "the config file {} belongs to user {}, neither you nor root: whoever owns it chooses which key signs",
            path.display(),
            meta.uid()
        ))
        .with_hint("use a config file you or root own"));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(ConfigError::new(format!(
            "the config file {} may be written by other users (mode {:o}): whoever writes it chooses which key signs",
            path.display(),
            meta.mode() & 0o777
        ))
        .with_hint("chmod go-w the file"));
    }
    Ok(())
}

/// Parses `text` (read from `path`; relative paths in it are taken from `base`) and returns
/// its identity `name`.
pub fn parse(
    text: &str,
    path: &Path,
    base: &Path,
    name: &str,
) -> Result<NamedIdentity, ConfigError> {
    let shown = path.display();
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| format!(" line {}", line_of(s.start)))
            .unwrap_or_default();
        let key = e
            .span()
            .and_then(|s| key_on_line(text, s.start))
            .map(|k| format!(" `{k}`"))
            .unwrap_or_default();
        let message = without_value(e.message().lines().next().unwrap_or("").trim());
        ConfigError::new(format!("config file {shown}{at}{key}: {message}")).with_hint(SEE_DOCS)
    })?;
    let names: Vec<&str> = raw.identity.keys().map(String::as_str).collect();
    let Some(table) = raw.identity.get(name) else {
        let known = if names.is_empty() {
            "it has no [identity.NAME] table".to_owned()
        } else {
            format!("it has {}", names.join(", "))
        };
        return Err(ConfigError::new(format!(
            "no identity \"{name}\" in the config file {shown}: {known}"
        ))
        .with_hint("add an [identity.NAME] table, or give --identity one of the names it has"));
    };
    let mut values = BTreeMap::new();
    let mut reader = Reader {
        base,
        line_of: &line_of,
        values: &mut values,
        shown: &shown.to_string(),
        name,
    };
    reader.read(table.get_ref())?;
    Ok(NamedIdentity {
        name: name.to_owned(),
        path: path.to_path_buf(),
        values,
    })
}

/// Turns one raw identity into checked values.
struct Reader<'a> {
    base: &'a Path,
    line_of: &'a dyn Fn(usize) -> usize,
    values: &'a mut BTreeMap<&'static str, Located>,
    shown: &'a str,
    name: &'a str,
}

impl Reader<'_> {
    fn read(&mut self, raw: &RawIdentity) -> Result<(), ConfigError> {
        for (key, instead, spanned) in [
            ("pkcs11-pin", "pkcs11-pin-file", &raw.pkcs11_pin),
            (
                "pkcs11-context-pin",
                "pkcs11-context-pin-file",
                &raw.pkcs11_context_pin,
            ),
            ("pkcs8-password", "pkcs8-password-file", &raw.pkcs8_password),
            (
                "tpm-key-password",
                "tpm-key-password-file",
                &raw.tpm_key_password,
            ),
        ] {
            if let Some(s) = spanned {
                return Err(self.error(
                    s.span().start,
                    &format!("`{key}` would write a secret in the config file, which never holds one"),
                    &format!("give {instead} = \"FILE\" (a file only you can read), or the environment variable docs/config.md names"),
                ));
            }
        }
        for (a, b, one, other) in [
            (
                raw.endpoint.as_ref().map(|s| s.span().start),
                raw.fips
                    .as_ref()
                    .filter(|f| *f.get_ref())
                    .map(|s| s.span().start),
                "endpoint",
                "fips",
            ),
            (
                raw.pkcs11_uri.as_ref().map(|s| s.span().start),
                raw.private_key.as_ref().map(|s| s.span().start),
                "pkcs11-uri",
                "private-key",
            ),
            (
                raw.tpm_key_password_file.as_ref().map(|s| s.span().start),
                raw.no_tpm_key_password
                    .as_ref()
                    .filter(|f| *f.get_ref())
                    .map(|s| s.span().start),
                "tpm-key-password-file",
                "no-tpm-key-password",
            ),
        ] {
            if let (Some(_), Some(second)) = (a, b) {
                return Err(self.error(
                    second,
                    &format!("`{one}` and `{other}` exclude each other"),
                    &format!("keep one of {one} and {other}"),
                ));
            }
        }
        if let Some(s) = &raw.no_verify_ssl {
            return Err(self.error(
                s.span().start,
                "`no-verify-ssl` is not a config file key: turning TLS verification off is for a test's command line only",
                "trust the endpoint's CA with ca-bundle = \"FILE\" instead",
            ));
        }
        for (key, v) in [
            ("certificate", &raw.certificate),
            ("private-key", &raw.private_key),
        ] {
            if let Some(v) = v {
                self.source(key, v)?;
            }
        }
        if let Some(v) = &raw.pkcs11_uri {
            self.refuse_pin_value("pkcs11-uri", v)?;
            self.text("pkcs11-uri", v);
        }
        for (key, v) in [
            ("intermediates", &raw.intermediates),
            ("pkcs11-lib", &raw.pkcs11_lib),
            ("pkcs11-pin-file", &raw.pkcs11_pin_file),
            ("pkcs11-context-pin-file", &raw.pkcs11_context_pin_file),
            ("pkcs8-password-file", &raw.pkcs8_password_file),
            ("tpm-key-password-file", &raw.tpm_key_password_file),
            ("ca-bundle", &raw.ca_bundle),
        ] {
            if let Some(v) = v {
                self.path(key, v);
            }
        }
        for (key, v) in [
            ("tpm-tcti", &raw.tpm_tcti),
            ("trust-anchor-arn", &raw.trust_anchor_arn),
            ("profile-arn", &raw.profile_arn),
            ("role-arn", &raw.role_arn),
            ("role-session-name", &raw.role_session_name),
            ("region", &raw.region),
            ("endpoint", &raw.endpoint),
        ] {
            if let Some(v) = v {
                self.text(key, v);
            }
        }
        for (key, v) in [
            ("reuse-pin", &raw.reuse_pin),
            ("no-tpm-key-password", &raw.no_tpm_key_password),
            ("require-hardware-key", &raw.require_hardware_key),
            ("fips", &raw.fips),
        ] {
            if let Some(v) = v {
                self.put(key, v.span().start, Value::Flag(*v.get_ref()));
            }
        }
        for (key, v) in [
            ("session-duration", raw.session_duration.as_ref().map(widen)),
            ("connect-timeout", raw.connect_timeout.clone()),
            ("request-timeout", raw.request_timeout.clone()),
            ("max-attempts", raw.max_attempts.as_ref().map(widen)),
        ] {
            if let Some(v) = v {
                self.put(key, v.span().start, Value::Number(*v.get_ref()));
            }
        }
        Ok(())
    }

    fn put(&mut self, key: &'static str, offset: usize, value: Value) {
        let line = (self.line_of)(offset);
        self.values.insert(key, Located { value, line });
    }

    fn text(&mut self, key: &'static str, v: &Spanned<String>) {
        self.put(key, v.span().start, Value::Text(v.get_ref().clone()));
    }

    fn path(&mut self, key: &'static str, v: &Spanned<String>) {
        let path = resolve(self.base, v.get_ref());
        self.put(key, v.span().start, Value::Path(path));
    }

    /// `certificate` and `private-key`: a URI, a TPM handle or `env:NAME` as written, else a
    /// path; never the PEM text itself.
    fn source(&mut self, key: &'static str, v: &Spanned<String>) -> Result<(), ConfigError> {
        let text = v.get_ref();
        if text.contains("-----BEGIN") {
            return Err(self.error(
                v.span().start,
                &format!("`{key}` holds PEM text: a certificate or key is never written in the config file"),
                "give the file's path, env:NAME, or a pkcs11: URI",
            ));
        }
        self.refuse_pin_value(key, v)?;
        let as_written = ["pkcs11:", "handle:", "env:"]
            .iter()
            .any(|p| text.trim_start().starts_with(p));
        if as_written {
            self.text(key, v);
        } else {
            self.path(key, v);
        }
        Ok(())
    }

    /// A `pin-value` query attribute would be the PIN, written in the file.
    fn refuse_pin_value(&self, key: &str, v: &Spanned<String>) -> Result<(), ConfigError> {
        let query = v.get_ref().split_once('?').map_or("", |(_, q)| q);
        let has_pin = query.split('&').any(|attr| {
            let name = attr.split('=').next().unwrap_or("").trim();
            name.eq_ignore_ascii_case("pin-value")
        });
        if has_pin {
            return Err(self.error(
                v.span().start,
                &format!("`{key}` holds a pin-value: the config file never holds the PIN"),
                "drop pin-value from the URI and give pkcs11-pin-file = \"FILE\" (or pin-source in the URI)",
            ));
        }
        Ok(())
    }

    fn error(&self, offset: usize, message: &str, hint: &str) -> ConfigError {
        ConfigError::new(format!(
            "config file {} line {}, identity {}: {message}",
            self.shown,
            (self.line_of)(offset),
            self.name
        ))
        .with_hint(hint)
    }
}

/// The bare key of the line holding `offset`, when it has one: errors about a value do not
/// name their key.
fn key_on_line(text: &str, offset: usize) -> Option<&str> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let key = line.split_once('=')?.0.trim();
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    bare.then_some(key)
}

/// serde's message without the value it quotes (a PIN written under the wrong key must not
/// be echoed) and without the list of every key it expected (the docs list them better).
fn without_value(message: &str) -> String {
    let message = message.split(", expected one of").next().unwrap_or(message);
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let kind = rest.split([' ', ',']).next().unwrap_or("");
            let expected = rest
                .split_once(", expected ")
                .map(|(_, e)| format!(", expected {e}"))
                .unwrap_or_default();
            return format!("{prefix}{kind}{expected}");
        }
    }
    message.to_owned()
}

fn widen(v: &Spanned<u32>) -> Spanned<u64> {
    Spanned::new(v.span(), u64::from(*v.get_ref()))
}

/// A path from the file: `~/` is the home directory, a relative path is taken from the
/// file's directory (a service's working directory is not the user's).
fn resolve(base: &Path, text: &str) -> PathBuf {
    if let Some(rest) = text.strip_prefix("~/")
        && let Some(home) = std::env::var_os(crate::env::HOME).filter(|h| !h.is_empty())
    {
        return PathBuf::from(home).join(rest);
    }
    let path = Path::new(text);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str, name: &str) -> Result<NamedIdentity, ConfigError> {
        parse(
            text,
            Path::new("/etc/ra/config.toml"),
            Path::new("/etc/ra"),
            name,
        )
    }

    #[test]
    fn keys_are_typed_located_and_paths_resolved() {
        let text = "# fleet\n[identity.onprem]\ntrust-anchor-arn = \"arn:ta\"\npkcs11-lib = \"lib/p11.so\"\npkcs11-pin-file = \"pin\"\nca-bundle = \"/etc/ssl/ca.pem\"\nsession-duration = 900\nfips = true\ncertificate = \"certs/leaf.pem\"\nprivate-key = \"handle:0x81000001\"\n\n[identity.other]\nregion = \"eu-west-1\"\n";
        let id = parsed(text, "onprem").expect("parses");
        assert_eq!(id.name, "onprem");
        let get = |k: &str| id.get(k).cloned().expect(k);
        assert_eq!(
            get("trust-anchor-arn"),
            Located {
                value: Value::Text("arn:ta".into()),
                line: 3
            }
        );
        assert_eq!(
            get("pkcs11-pin-file").value,
            Value::Path("/etc/ra/pin".into())
        );
        assert_eq!(
            get("ca-bundle").value,
            Value::Path("/etc/ssl/ca.pem".into())
        );
        assert_eq!(
            get("pkcs11-lib").value,
            Value::Path("/etc/ra/lib/p11.so".into())
        );
        assert_eq!(get("session-duration").value, Value::Number(900));
        assert_eq!(get("session-duration").line, 7);
        assert_eq!(get("fips").value, Value::Flag(true));
        assert_eq!(
            get("certificate").value,
            Value::Path("/etc/ra/certs/leaf.pem".into())
        );
        assert_eq!(
            get("private-key").value,
            Value::Text("handle:0x81000001".into())
        );
        assert!(id.get("region").is_none(), "another identity's value");
    }

    #[test]
    fn unknown_keys_are_errors_with_their_line() {
        let e = parsed("[identity.a]\nregion = \"x\"\nrole-arm = \"typo\"\n", "a")
            .expect_err("refused");
        assert!(e.message.contains("line 3"), "{}", e.message);
        assert!(e.message.contains("role-arm"), "{}", e.message);
        assert!(!e.message.contains('\n'), "one line: {}", e.message);
        let e = parsed("identity = 1\n", "a").expect_err("refused");
        assert!(e.message.contains("line 1"), "{}", e.message);
        let e = parsed("[profiles.a]\n", "a").expect_err("refused");
        assert!(e.message.contains("profiles"), "{}", e.message);
        // An error in another identity is still an error: the file is checked whole.
        let e = parsed("[identity.a]\n[identity.b]\nnope = 1\n", "a").expect_err("refused");
        assert!(e.message.contains("line 3"), "{}", e.message);
    }

    #[test]
    fn wrong_types_and_bad_toml_name_the_line() {
        let e = parsed("[identity.a]\n\nsession-duration = \"1h\"\n", "a").expect_err("refused");
        assert!(e.message.contains("line 3"), "{}", e.message);
        assert!(e.message.contains("`session-duration`"), "{}", e.message);
        assert!(
            !e.message.contains("1h"),
            "the value is not echoed: {}",
            e.message
        );
        let e = parsed("[identity.a]\nsession-duration = -1\n", "a").expect_err("refused");
        assert!(e.message.contains("line 2"), "{}", e.message);
        let e = parsed("[identity.a]\npkcs11-pin-file = 918273\n", "a").expect_err("refused");
        assert!(e.message.contains("`pkcs11-pin-file`"), "{}", e.message);
        assert!(
            !e.message.contains("918273"),
            "a PIN under the wrong key: {}",
            e.message
        );
        let e = parsed("[identity.a]\nregion = \"unterminated\n", "a").expect_err("refused");
        assert!(e.message.contains("line 2"), "{}", e.message);
        let e = parsed("[identity.a]\nregion = \"x\"\nregion = \"y\"\n", "a").expect_err("refused");
        assert!(e.message.contains("line 3"), "{}", e.message);
    }

    #[test]
    fn secrets_are_refused_with_the_key_that_replaces_them() {
        for (key, instead) in [
            ("pkcs11-pin", "pkcs11-pin-file"),
            ("pkcs11-context-pin", "pkcs11-context-pin-file"),
            ("pkcs8-password", "pkcs8-password-file"),
            ("tpm-key-password", "tpm-key-password-file"),
        ] {
            let text = format!("[identity.a]\nregion = \"x\"\n{key} = \"1234\"\n");
            let e = parsed(&text, "a").expect_err("refused");
            assert!(e.message.contains("line 3"), "{}", e.message);
            assert!(e.message.contains(key), "{}", e.message);
            assert!(
                !e.message.contains("1234"),
                "no secret echoed: {}",
                e.message
            );
            assert!(e.hint.as_deref().unwrap_or("").contains(instead));
        }
        let e = parsed(
            "[identity.a]\npkcs11-uri = \"pkcs11:token=t;object=k?pin-value=1234\"\n",
            "a",
        )
        .expect_err("refused");
        assert!(e.message.contains("pin-value"), "{}", e.message);
        assert!(!e.message.contains("1234"), "{}", e.message);
        let e = parsed(
            "[identity.a]\ncertificate = \"pkcs11:object=c?module-name=x&PIN-VALUE=1\"\n",
            "a",
        )
        .expect_err("refused");
        assert!(e.message.contains("pin-value"), "{}", e.message);
        let e = parsed(
            "[identity.a]\nprivate-key = \"-----BEGIN PRIVATE KEY-----\\nMIG...\"\n",
            "a",
        )
        .expect_err("refused");
        assert!(e.message.contains("PEM text"), "{}", e.message);
        let e = parsed("[identity.a]\nno-verify-ssl = true\n", "a").expect_err("refused");
        assert!(e.message.contains("no-verify-ssl"), "{}", e.message);
    }

    #[test]
    fn settings_that_exclude_each_other_are_refused() {
        for (text, named) in [
            ("endpoint = \"https://x\"\nfips = true\n", "fips"),
            (
                "pkcs11-uri = \"pkcs11:object=k\"\nprivate-key = \"k.pem\"\n",
                "private-key",
            ),
            (
                "tpm-key-password-file = \"p\"\nno-tpm-key-password = true\n",
                "no-tpm-key-password",
            ),
        ] {
            let e = parsed(&format!("[identity.a]\n{text}"), "a").expect_err("refused");
            assert!(e.message.contains("line 3"), "{}", e.message);
            assert!(e.message.contains(named), "{}", e.message);
        }
        parsed(
            "[identity.a]\nendpoint = \"https://x\"\nfips = false\n",
            "a",
        )
        .expect("fips off");
    }

    #[test]
    fn a_missing_identity_names_the_ones_there_are() {
        let e = parsed("[identity.a]\n[identity.b]\n", "c").expect_err("refused");
        assert!(e.message.contains("\"c\""), "{}", e.message);
        assert!(e.message.contains("a, b"), "{}", e.message);
        let e = parsed("", "c").expect_err("refused");
        assert!(e.message.contains("no [identity.NAME]"), "{}", e.message);
    }
}
