//! Which endpoint CreateSession goes to, chosen as the AWS SDKs choose it.
//!
//! In order: `--endpoint`; `AWS_ENDPOINT_URL_ROLESANYWHERE`; `AWS_ENDPOINT_URL`; in the AWS
//! config file's profile (`AWS_PROFILE`, else `default`), `endpoint_url` under
//! `rolesanywhere` in the `[services NAME]` section the profile names, then the profile's own
//! `endpoint_url`; else the partition's endpoint for the region, built by the rule set of
//! botocore's endpoint data (FIPS from `--fips`, a `fips-` region, `AWS_USE_FIPS_ENDPOINT`
//! or `use_fips_endpoint`; dual-stack from `AWS_USE_DUALSTACK_ENDPOINT` or
//! `use_dualstack_endpoint`). `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` (or
//! `ignore_configured_endpoint_urls`) turns off the environment and config-file URLs.
//!
//! [`resolve`] is pure: it takes a snapshot of the flags, the environment and the parsed
//! config file. [`resolve_from_environment`] takes that snapshot.

pub mod config_file;
mod partitions;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

pub use config_file::ConfigFile;
use config_file::{Section, Value};

use crate::config::{ConfigError, Region};

/// The service's own endpoint URL variable.
pub const ENV_ENDPOINT_URL_SERVICE: &str = crate::env::AWS_ENDPOINT_URL_ROLESANYWHERE;
/// The endpoint URL variable for every service.
pub const ENV_ENDPOINT_URL: &str = crate::env::AWS_ENDPOINT_URL;
/// Turns off the endpoint URLs of the environment and the config file.
pub const ENV_IGNORE_CONFIGURED_ENDPOINT_URLS: &str = crate::env::AWS_IGNORE_CONFIGURED_ENDPOINT_URLS;
/// Chooses the FIPS endpoint.
pub const ENV_USE_FIPS_ENDPOINT: &str = crate::env::AWS_USE_FIPS_ENDPOINT;
/// Chooses the dual-stack (IPv4 and IPv6) endpoint.
pub const ENV_USE_DUALSTACK_ENDPOINT: &str = crate::env::AWS_USE_DUALSTACK_ENDPOINT;
/// The config-file profile.
pub const ENV_PROFILE: &str = crate::env::AWS_PROFILE;
/// The config file's path.
pub const ENV_CONFIG_FILE: &str = crate::env::AWS_CONFIG_FILE;

const ENV_VARS: [&str; 8] = [
    ENV_ENDPOINT_URL_SERVICE,
    ENV_ENDPOINT_URL,
    ENV_IGNORE_CONFIGURED_ENDPOINT_URLS,
    ENV_USE_FIPS_ENDPOINT,
    ENV_USE_DUALSTACK_ENDPOINT,
    ENV_PROFILE,
    ENV_CONFIG_FILE,
    "HOME",
];

/// The service's key in a `[services NAME]` section.
const SERVICE_KEY: &str = "rolesanywhere";

/// One partition of botocore's `partitions.json`.
#[derive(Debug)]
pub struct Partition {
    /// `aws`, `aws-cn`, `aws-us-gov`, …
    pub id: &'static str,
    /// Regions not listed below belong here when they match this (Python `re.match`).
    pub region_regex: &'static str,
    /// The regions listed for the partition.
    pub regions: &'static [&'static str],
    /// `amazonaws.com`, …
    pub dns_suffix: &'static str,
    /// `api.aws`, …
    pub dual_stack_dns_suffix: &'static str,
    /// Whether FIPS endpoints exist in the partition.
    pub supports_fips: bool,
    /// Whether dual-stack endpoints exist in the partition.
    pub supports_dual_stack: bool,
    /// The region of the partition's global endpoints.
    pub implicit_global_region: &'static str,
}

/// What the rule set gives for one combination of settings and partition capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A URL template with `{region}`, `{dnsSuffix}` and `{dualStackDnsSuffix}`.
    Url(&'static str),
    /// The rule set's error message.
    Error(&'static str),
}

/// Every partition of the table, in botocore's order.
pub fn partitions() -> &'static [Partition] {
    partitions::PARTITIONS
}

/// The rule set's outcomes, indexed `[use_fips][use_dual_stack][supports_fips]
/// [supports_dual_stack]`.
pub fn rules() -> &'static [[[[Rule; 2]; 2]; 2]; 2] {
    &partitions::RULES
}

/// The regions whose FIPS host botocore's endpoint list names.
pub fn listed_fips_regions() -> &'static [&'static str] {
    partitions::LISTED_FIPS_REGIONS
}

/// The botocore release the table was generated from.
pub fn table_version() -> &'static str {
    partitions::BOTOCORE_VERSION
}

static REGEXES: LazyLock<Vec<Option<regex_lite::Regex>>> = LazyLock::new(|| {
    partitions::PARTITIONS
        .iter()
        .map(|p| regex_lite::Regex::new(p.region_regex).ok())
        .collect()
});

/// The partition of `region` as the rule set's `aws.partition` finds it: the partition
/// listing it, else the first whose regex matches, else `aws` (`matched` false).
pub fn partition_of(region: &str) -> (&'static Partition, bool) {
    let all = partitions::PARTITIONS;
    if let Some(p) = all.iter().find(|p| p.regions.contains(&region)) {
        return (p, true);
    }
    for (p, re) in all.iter().zip(REGEXES.iter()) {
        // Python's `re.match`: a match that starts at the beginning (the leftmost match
        // starts there when any does).
        if re
            .as_ref()
            .and_then(|re| re.find(region))
            .is_some_and(|m| m.start() == 0)
        {
            return (p, true);
        }
    }
    (&all[0], false)
}

/// The rule set's endpoint for `region` with the FIPS and dual-stack settings, or the rule
/// set's error for a combination the partition does not support.
pub fn partition_endpoint(
    region: &str,
    fips: bool,
    dual_stack: bool,
) -> Result<(String, &'static Partition), &'static str> {
    let (p, _) = partition_of(region);
    endpoint_in(p, region, fips, dual_stack).map(|url| (url, p))
}

/// The rule set's endpoint for `region` in partition `p`, or the rule set's error.
pub fn endpoint_in(
    p: &Partition,
    region: &str,
    fips: bool,
    dual_stack: bool,
) -> Result<String, &'static str> {
    let rule = partitions::RULES[usize::from(fips)][usize::from(dual_stack)]
        [usize::from(p.supports_fips)][usize::from(p.supports_dual_stack)];
    match rule {
        Rule::Url(template) => Ok(template
            .replace("{region}", region)
            .replace("{dualStackDnsSuffix}", p.dual_stack_dns_suffix)
            .replace("{dnsSuffix}", p.dns_suffix)),
        Rule::Error(e) => Err(e),
    }
}

/// The environment variables the choice reads, captured once.
#[derive(Debug, Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    /// Captures the variables from the process environment; a value that is not UTF-8 is
    /// an error.
    pub fn from_process() -> Result<Env, ConfigError> {
        let mut map = BTreeMap::new();
        for name in ENV_VARS {
            match std::env::var(name) {
                Ok(v) => {
                    map.insert(name.to_owned(), v);
                }
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(ConfigError(format!("${name} is not valid UTF-8")));
                }
            }
        }
        Ok(Env(map))
    }

    /// An environment holding `pairs` (tests, and callers with their own environment).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Env {
        Env(pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }

    /// A variable's value; an empty one counts as unset, as in the Go SDK.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The profile whose settings apply: `$AWS_PROFILE`, else `default`.
    pub fn profile(&self) -> &str {
        self.get(ENV_PROFILE).unwrap_or("default")
    }

    /// The config file: `$AWS_CONFIG_FILE` (a leading `~` is the home directory), else
    /// `~/.aws/config`; none without a home directory.
    pub fn config_path(&self) -> Option<PathBuf> {
        let home = self.get("HOME");
        match self.get(ENV_CONFIG_FILE) {
            Some("~") => home.map(PathBuf::from),
            Some(p) => match p.strip_prefix("~/") {
                Some(rest) => home.map(|h| Path::new(h).join(rest)),
                None => Some(PathBuf::from(p)),
            },
            None => home.map(|h| Path::new(h).join(".aws").join("config")),
        }
    }
}

/// The flags that bear on the endpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags<'a> {
    /// `--endpoint`.
    pub endpoint: Option<&'a str>,
    /// `--region`.
    pub region: Option<&'a str>,
    /// `--fips`.
    pub fips: bool,
}

/// Everything the choice depends on.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The flags.
    pub flags: Flags<'a>,
    /// The trust anchor's region (the default signing region).
    pub arn_region: &'a Region,
    /// The ARNs' partition.
    pub arn_partition: &'a str,
    /// The environment.
    pub env: &'a Env,
    /// The parsed config file, when there is one (not read when `--endpoint` is given).
    pub config: Option<&'a ConfigFile>,
}

/// The chosen endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `scheme://host[:port]`, never with a user name or password.
    pub url: String,
    /// The region in the credential scope.
    pub region: Region,
    /// Which setting won, for `--debug`.
    pub why: String,
    /// What else was looked at, for `--debug`.
    pub notes: Vec<String>,
    /// What the user should hear about even without `--debug`.
    pub warnings: Vec<String>,
}

/// `text` with anything before an `@` in its authority replaced by `***`, so that a
/// `user:pass@` never reaches a message. Unparseable text is treated the same way.
pub fn redact_url(text: &str) -> String {
    let (scheme, rest) = match text.find("://") {
        Some(i) => text.split_at(i + 3),
        None => ("", text),
    };
    match rest.rfind('@') {
        Some(at) => format!("{scheme}***@{}", &rest[at + 1..]),
        None => text.to_owned(),
    }
}

/// A value quoted for a message, cut short.
fn shown(value: &str) -> String {
    let cut: String = value.chars().take(64).collect();
    if cut.len() < value.len() {
        format!("{:?}…", cut)
    } else {
        format!("{cut:?}")
    }
}

/// Checks an endpoint URL: http or https, a host, nothing after it but an optional `/`,
/// and no user name or password. Returns `scheme://host[:port]`.
fn endpoint_url(text: &str, source: &str, bare_host_ok: bool) -> Result<String, ConfigError> {
    let trimmed = text.trim();
    let full = if bare_host_ok && !trimmed.contains("://") {
        format!("https://{trimmed}")
    } else {
        trimmed.to_owned()
    };
    let bad = |why: &str| {
        ConfigError(format!(
            "the endpoint URL {} from {source} {why}",
            shown(&redact_url(trimmed))
        ))
    };
    let url = url::Url::parse(&full).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must start with https:// or http://"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "carries a user name or password, which ra-signer does not send (CreateSession is signed with the certificate)",
        ));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(bad("has no host"));
    };
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query (?…) or fragment (#…)"));
    }
    if !matches!(url.path(), "" | "/") {
        return Err(bad(
            "must not have a path: CreateSession is POST /sessions at the endpoint's root",
        ));
    }
    Ok(match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// botocore's parsing of a boolean setting (`true`/`false`, any case), refusing what it
/// would silently read as false.
fn parse_bool(value: &str, what: &str) -> Result<bool, ConfigError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(ConfigError(format!(
            "{what} is {}: expected true or false",
            shown(value)
        )))
    }
}

/// The profile as found in the config file.
struct Profile<'a> {
    name: &'a str,
    file: &'a ConfigFile,
    section: &'a Section,
}

impl<'a> Profile<'a> {
    fn describe(&self, key: &str) -> String {
        format!(
            "{key} of profile {} in {}",
            self.name,
            self.file.path().display()
        )
    }

    /// A plain value of the profile; empty counts as unset.
    fn text(&self, key: &str) -> Result<Option<&'a str>, ConfigError> {
        match self.section.get(key) {
            None => Ok(None),
            Some(Value::Text(t)) => Ok(Some(t.as_str()).filter(|t| !t.is_empty())),
            Some(Value::Nested(_)) => Err(ConfigError(format!(
                "{} is an indented block; it must be a single value",
                self.describe(key)
            ))),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.text(key)?
            .map(|v| parse_bool(v, &self.describe(key)))
            .transpose()
    }
}

/// A boolean setting: the environment variable, else the profile's key.
fn setting(
    env: &Env,
    profile: Option<&Profile<'_>>,
    var: &str,
    key: &str,
) -> Result<Option<(bool, String)>, ConfigError> {
    if let Some(v) = env.get(var) {
        return Ok(Some((parse_bool(v, &format!("${var}"))?, var.to_owned())));
    }
    match profile {
        Some(p) => Ok(p.bool(key)?.map(|b| (b, p.describe(key)))),
        None => Ok(None),
    }
}

/// botocore's handling of the pseudo-regions `fips-us-east-1` and `us-east-1-fips`: the
/// plain region, with FIPS on.
fn strip_fips(region: &str) -> (String, bool) {
    let plain = region.replace("fips-", "").replace("-fips", "");
    let fips = plain != region;
    (plain, fips)
}

/// Chooses the endpoint and signing region from `inputs`.
pub fn resolve(inputs: &Inputs<'_>) -> Result<Resolved, ConfigError> {
    let Inputs {
        flags, env, config, ..
    } = *inputs;
    let (region_text, region_source) = match flags.region {
        Some(r) => (r.to_owned(), "--region"),
        None => (inputs.arn_region.to_string(), "the trust anchor ARN"),
    };
    let (plain, pseudo_fips) = strip_fips(&region_text);
    let region: Region = plain
        .parse()
        .map_err(|e: ConfigError| ConfigError(format!("{} ({region_source})", e.0)))?;
    // botocore lists `aws-global`, `aws-cn-global`, … as regions, for services with one
    // global endpoint; IAM Roles Anywhere has none, and no credential scope names them.
    if region.as_str().ends_with("-global") {
        return Err(ConfigError(format!(
            "\"{region}\" ({region_source}) is a partition's global pseudo-region, not a region IAM Roles Anywhere runs in: give the region of the trust anchor"
        )));
    }
    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    if pseudo_fips {
        notes.push(format!(
            "region {region_text} ({region_source}) means the FIPS endpoint of {region}, signed for {region}"
        ));
    }
    // Junk in these variables is refused whichever source wins, as the Go SDK refuses it.
    for var in [
        ENV_USE_FIPS_ENDPOINT,
        ENV_USE_DUALSTACK_ENDPOINT,
        ENV_IGNORE_CONFIGURED_ENDPOINT_URLS,
    ] {
        if let Some(v) = env.get(var) {
            parse_bool(v, &format!("${var}"))?;
        }
    }

    let done = |url: String, why: String, notes: Vec<String>, warnings: Vec<String>| Resolved {
        url,
        region: region.clone(),
        why,
        notes,
        warnings,
    };

    if let Some(e) = flags.endpoint {
        let url = endpoint_url(e, "--endpoint", true)?;
        if pseudo_fips {
            notes.push("a configured endpoint URL is used as given: FIPS does not apply".into());
        }
        return Ok(done(url, "from --endpoint".into(), notes, warnings));
    }

    let profile = find_profile(env, config, &mut notes);
    let fips = setting(
        env,
        profile.as_ref(),
        ENV_USE_FIPS_ENDPOINT,
        "use_fips_endpoint",
    )?;
    let dual = setting(
        env,
        profile.as_ref(),
        ENV_USE_DUALSTACK_ENDPOINT,
        "use_dualstack_endpoint",
    )?;
    let ignore = setting(
        env,
        profile.as_ref(),
        ENV_IGNORE_CONFIGURED_ENDPOINT_URLS,
        "ignore_configured_endpoint_urls",
    )?;

    let configured = match &ignore {
        Some((true, source)) => {
            notes.push(format!(
                "configured endpoint URLs are ignored ({source} is true)"
            ));
            None
        }
        _ => configured_url(env, profile.as_ref())?,
    };
    if let Some((url, why)) = configured {
        let wanted_fips = fips.as_ref().is_some_and(|(b, _)| *b) || pseudo_fips;
        let wanted_dual = dual.as_ref().is_some_and(|(b, _)| *b);
        if flags.fips {
            warnings.push(format!(
                "--fips is ignored: the endpoint URL comes {why} (unset it, or pass --endpoint with the FIPS host)"
            ));
        } else if wanted_fips || wanted_dual {
            notes.push(
                "a configured endpoint URL is used as given: FIPS and dual-stack settings do not apply"
                    .into(),
            );
        }
        return Ok(done(url, why, notes, warnings));
    }

    let use_fips = if flags.fips {
        Some((true, "--fips".to_owned()))
    } else if pseudo_fips {
        Some((true, format!("region {region_text}")))
    } else {
        fips
    };
    let (url, why) = from_partition(
        &region,
        region_source,
        inputs.arn_partition,
        use_fips,
        dual,
        &mut notes,
        &mut warnings,
    )?;
    Ok(done(url, why, notes, warnings))
}

/// The profile `$AWS_PROFILE` (else `default`) of the config file, noting why there is none.
fn find_profile<'a>(
    env: &'a Env,
    config: Option<&'a ConfigFile>,
    notes: &mut Vec<String>,
) -> Option<Profile<'a>> {
    let name = env.profile();
    let Some(file) = config else {
        notes.push(match env.config_path() {
            Some(p) => format!("no readable AWS config file at {}", p.display()),
            None => "no AWS config file (no HOME, no $AWS_CONFIG_FILE)".into(),
        });
        return None;
    };
    let section = file.profile(name);
    if section.is_none() {
        notes.push(format!(
            "profile {name} is not in {}",
            file.path().display()
        ));
    }
    section.map(|section| Profile {
        name,
        file,
        section,
    })
}

/// The partition's endpoint for `region`, refusing a region outside the ARNs' partition.
/// Returns the URL and why.
fn from_partition(
    region: &Region,
    region_source: &str,
    arn_partition: &str,
    fips: Option<(bool, String)>,
    dual: Option<(bool, String)>,
    notes: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<(String, String), ConfigError> {
    let (use_fips, fips_why) = fips.unwrap_or((false, "default".to_owned()));
    let (use_dual, dual_why) = dual.unwrap_or((false, "default".to_owned()));
    let (matched_partition, matched) = partition_of(region.as_str());
    if matched_partition.id != arn_partition {
        return Err(ConfigError(if matched {
            format!(
                "the region {region} ({region_source}) is in partition {}, but the ARNs are in {arn_partition}: IAM Roles Anywhere would refuse them there; give a region of {arn_partition} or --endpoint URL",
                matched_partition.id
            )
        } else {
            format!(
                "the region {region} ({region_source}) is in no partition ra-signer knows (its table comes from botocore {}), and the ARNs are in {arn_partition}: give --endpoint URL",
                partitions::BOTOCORE_VERSION
            )
        }));
    }
    let (url, partition) = partition_endpoint(region.as_str(), use_fips, use_dual)
        .map_err(|e| ConfigError(format!("{e} (partition {arn_partition}, region {region})")))?;
    if !matched {
        notes.push(format!(
            "region {region} matches no partition; using aws, as botocore does"
        ));
    }
    if use_fips && !listed_fips_regions().contains(&region.as_str()) {
        warnings.push(format!(
            "botocore's endpoint list names no IAM Roles Anywhere FIPS endpoint in {region} (it does for {}); trying {url} as the endpoint rule set builds it",
            listed_fips_regions().join(", ")
        ));
    }
    let why = format!(
        "built for partition {} from region {region} ({region_source}); FIPS {} ({fips_why}), dual-stack {} ({dual_why})",
        partition.id,
        if use_fips { "on" } else { "off" },
        if use_dual { "on" } else { "off" },
    );
    Ok((url, why))
}

/// The endpoint URL from the environment or the config file, in the SDKs' order.
fn configured_url(
    env: &Env,
    profile: Option<&Profile<'_>>,
) -> Result<Option<(String, String)>, ConfigError> {
    for var in [ENV_ENDPOINT_URL_SERVICE, ENV_ENDPOINT_URL] {
        if let Some(v) = env.get(var) {
            let source = format!("${var}");
            return Ok(Some((
                endpoint_url(v, &source, false)?,
                format!("from {source}"),
            )));
        }
    }
    let Some(p) = profile else {
        return Ok(None);
    };
    if let Some(services) = p.text("services")? {
        let section = p
            .file
            .services(services)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ConfigError(format!(
                    "{} names [services {services}], which is not in the file (or is empty)",
                    p.describe("services")
                ))
            })?;
        match section.get(SERVICE_KEY) {
            Some(Value::Nested(block)) => {
                if let Some(v) = block.get("endpoint_url").filter(|v| !v.is_empty()) {
                    let source = format!(
                        "endpoint_url under {SERVICE_KEY} in [services {services}] of {} (profile {})",
                        p.file.path().display(),
                        p.name
                    );
                    return Ok(Some((
                        endpoint_url(v, &source, false)?,
                        format!("from {source}"),
                    )));
                }
            }
            Some(Value::Text(_)) => {
                return Err(ConfigError(format!(
                    "{SERVICE_KEY} in [services {services}] of {} must be an indented block (rolesanywhere =, then indented endpoint_url = URL)",
                    p.file.path().display()
                )));
            }
            None => {}
        }
    }
    if let Some(v) = p.text("endpoint_url")? {
        let source = p.describe("endpoint_url");
        return Ok(Some((
            endpoint_url(v, &source, false)?,
            format!("from {source}"),
        )));
    }
    Ok(None)
}

/// [`resolve`] with the process environment and, unless `--endpoint` is given, the AWS
/// config file it names.
pub fn resolve_from_environment(
    flags: Flags<'_>,
    arn_region: &Region,
    arn_partition: &str,
) -> Result<Resolved, ConfigError> {
    let env = Env::from_process()?;
    let config = match (flags.endpoint, env.config_path()) {
        (None, Some(path)) => ConfigFile::load(&path)?,
        _ => None,
    };
    resolve(&Inputs {
        flags,
        arn_region,
        arn_partition,
        env: &env,
        config: config.as_ref(),
    })
}

#[cfg(test)]
mod tests;
