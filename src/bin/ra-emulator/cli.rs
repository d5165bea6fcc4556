//! Command-line flags and their validation into a [`Config`] (no I/O here: files are
//! read by `main`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::arn::{self, Kind};
use crate::config::{AccountSource, Config, ShortForm};
use crate::faults;
use crate::model::{MAX_DURATION, MIN_DURATION};
use crate::s3;

/// A local IAM Roles Anywhere CreateSession endpoint that verifies SigV4-X509 requests
/// the way the service does, for tests and offline use.
#[derive(Debug, Parser)]
#[command(name = "ra-emulator", version)]
pub(crate) struct Args {
    /// Trust anchor CA certificate(s): a PEM bundle or one DER certificate (repeatable).
    #[arg(
        long = "trust-anchor-ca",
        value_name = "FILE",
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    pub trust_anchor_ca: Vec<PathBuf>,
    /// The trust anchor ARN that exists.
    #[arg(
        long,
        value_name = "ARN",
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    pub trust_anchor_arn: Option<String>,
    /// The profile ARN that exists.
    #[arg(
        long,
        value_name = "ARN",
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    pub profile_arn: Option<String>,
    /// A role the profile may assume (repeatable).
    #[arg(
        long = "role-arn",
        value_name = "ARN",
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    pub role_arn: Vec<String>,
    /// The account as one JSON document: trust anchors with CRLs, profiles with attribute
    /// mappings, roles with trust policies (instead of the four flags above; see
    /// docs/emulator.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on; loopback only.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    pub plain_http: bool,
    /// Write the PEM of the generated TLS CA certificate here (pass it to clients as a CA bundle).
    #[arg(long, value_name = "FILE")]
    pub tls_ca_out: Option<PathBuf>,
    /// Another DNS name the TLS certificate is valid for, besides localhost and the loopback
    /// addresses (repeatable): for a client that reaches the emulator under a service-like
    /// name, through a proxy.
    #[arg(long, value_name = "NAME", action = clap::ArgAction::Append)]
    pub tls_name: Vec<String>,
    /// Once listening, atomically write the base URL and a newline here.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
    /// The profile's session limit in seconds (900..43200).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 3600,
        conflicts_with = "config"
    )]
    pub max_duration: u64,
    /// Refuse requests that set roleSessionName (403).
    #[arg(long, conflicts_with = "config")]
    pub deny_role_session_name: bool,
    /// Allowed difference between X-Amz-Date and now for CreateSession, in seconds (S3
    /// ListBuckets allows 15 minutes, as S3 does).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub clock_skew: u64,
    /// Exit by itself after this many seconds; 0 = never.
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    pub exit_after: u64,
    /// Write JSON log lines to this file (appending) instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Fault to inject: KIND[:COUNT] with KIND one of status=NNN, throttle, delay=MS,
    /// garbage, empty-set, close, hostile, expired, endless-body, slow-body, huge-message,
    /// control-chars (repeatable).
    #[arg(long = "fault", value_name = "SPEC")]
    pub fault: Vec<String>,
    /// A bucket that S3 ListBuckets (GET /, signed with credentials this emulator issued)
    /// lists (repeatable; none: an empty list).
    #[arg(long = "s3-bucket", value_name = "NAME", action = clap::ArgAction::Append)]
    pub s3_bucket: Vec<String>,
}

impl Args {
    /// Checks the flags; the error is a one-line message for stderr.
    pub(crate) fn into_config(self) -> Result<Config, String> {
        if !self.listen.ip().is_loopback() {
            return Err(format!(
                "--listen {}: refusing a non-loopback address (the emulator has no access control)",
                self.listen
            ));
        }
        let account = match self.config {
            Some(file) => AccountSource::File(file),
            None => AccountSource::Flags(Box::new(self.short_form()?)),
        };
        let faults = faults::parse_all(&self.fault).map_err(|e| format!("--fault: {e}"))?;
        for (i, name) in self.s3_bucket.iter().enumerate() {
            s3::valid_bucket_name(name).map_err(|e| format!("--s3-bucket: {e}"))?;
            if self.s3_bucket[..i].contains(name) {
                return Err(format!("--s3-bucket: '{name}' is given twice"));
            }
        }
        Ok(Config {
            account,
            listen: self.listen,
            tls: !self.plain_http,
            tls_ca_out: self.tls_ca_out,
            tls_names: self.tls_name,
            ready_file: self.ready_file,
            clock_skew: self.clock_skew,
            exit_after: (self.exit_after > 0).then(|| Duration::from_secs(self.exit_after)),
            log: self.log,
            faults,
            s3_buckets: self.s3_bucket,
        })
    }
}

impl Args {
    /// The short form: one anchor, one profile, roles without trust policies.
    fn short_form(&self) -> Result<ShortForm, String> {
        if !(MIN_DURATION..=MAX_DURATION).contains(&self.max_duration) {
            return Err(format!(
                "--max-duration {}: must be between {MIN_DURATION} and {MAX_DURATION}",
                self.max_duration
            ));
        }
        let trust_anchor = arn::parse(
            self.trust_anchor_arn.as_deref().unwrap_or_default(),
            Kind::TrustAnchor,
        )
        .map_err(|e| format!("--trust-anchor-arn: {e}"))?;
        let profile = arn::parse(
            self.profile_arn.as_deref().unwrap_or_default(),
            Kind::Profile,
        )
        .map_err(|e| format!("--profile-arn: {e}"))?;
        if profile.region != trust_anchor.region || profile.partition != trust_anchor.partition {
            return Err(format!(
                "--profile-arn is in {}/{} but --trust-anchor-arn is in {}/{}",
                profile.partition, profile.region, trust_anchor.partition, trust_anchor.region
            ));
        }
        let roles = self
            .role_arn
            .iter()
            .map(|r| arn::parse(r, Kind::Role).map_err(|e| format!("--role-arn: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ShortForm {
            anchor_files: self.trust_anchor_ca.clone(),
            trust_anchor,
            profile,
            roles,
            max_duration: self.max_duration,
            deny_role_session_name: self.deny_role_session_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    const BASE: [&str; 9] = [
        "ra-emulator",
        "--trust-anchor-ca",
        "ca.pem",
        "--trust-anchor-arn",
        "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/ta",
        "--profile-arn",
        "arn:aws:rolesanywhere:us-east-1:123456789012:profile/p",
        "--role-arn",
        "arn:aws:iam::123456789012:role/R",
    ];

    fn flags(c: &Config) -> &ShortForm {
        match &c.account {
            AccountSource::Flags(f) => f,
            AccountSource::File(_) => panic!("short form expected"),
        }
    }

    fn parse(extra: &[&str]) -> Result<Config, String> {
        let argv: Vec<&str> = BASE.iter().chain(extra).copied().collect();
        Args::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .into_config()
    }

    #[test]
    fn defaults_and_flags() {
        Args::command().debug_assert();
        let c = parse(&[]).expect("defaults");
        assert_eq!(c.listen.to_string(), "127.0.0.1:0");
        assert!(c.tls);
        assert_eq!(flags(&c).max_duration, 3600);
        assert_eq!(c.clock_skew, 300);
        assert_eq!(c.exit_after, Some(Duration::from_secs(900)));
        let c = parse(&[
            "--listen",
            "[::1]:0",
            "--plain-http",
            "--exit-after",
            "0",
            "--fault",
            "throttle:2",
            "--fault",
            "delay=5",
            "--role-arn",
            "arn:aws:iam::123456789012:role/S",
            "--trust-anchor-ca",
            "b.der",
        ])
        .expect("flags");
        assert!(!c.tls);
        assert_eq!(c.exit_after, None);
        assert_eq!(c.faults.len(), 2);
        assert_eq!(flags(&c).roles.len(), 2);
        assert_eq!(flags(&c).anchor_files.len(), 2);
        let c = parse(&[
            "--s3-bucket",
            "ra-signer-demo",
            "--s3-bucket",
            "logs.example",
        ])
        .expect("buckets");
        assert_eq!(c.s3_buckets, ["ra-signer-demo", "logs.example"]);
        assert!(parse(&[]).expect("none").s3_buckets.is_empty());
    }

    #[test]
    fn refuses_bad_settings() {
        for extra in [
            &["--listen", "0.0.0.0:8443"][..],
            &["--max-duration", "60"],
            &["--fault", "nope"],
            &["--role-arn", "arn:aws:iam::123456789012:user/u"],
            &["--s3-bucket", "Not_A_Bucket"],
            &["--s3-bucket", "ab"],
            &["--s3-bucket", "twice", "--s3-bucket", "twice"],
        ] {
            assert!(parse(extra).is_err(), "{extra:?}");
        }
        let mut argv = BASE.to_vec();
        argv[6] = "arn:aws:rolesanywhere:eu-west-1:123456789012:profile/p";
        let err = Args::try_parse_from(argv)
            .expect("syntax")
            .into_config()
            .expect_err("region");
        assert!(err.contains("eu-west-1"), "{err}");
    }

    #[test]
    fn config_replaces_the_short_form_flags() {
        let c = Args::try_parse_from(["ra-emulator", "--config", "account.json"])
            .expect("config alone")
            .into_config()
            .expect("valid");
        assert!(matches!(c.account, AccountSource::File(ref f) if f.as_os_str() == "account.json"));
        // Mixing the two forms, or neither: a usage error.
        for argv in [
            &[
                "ra-emulator",
                "--config",
                "a.json",
                "--role-arn",
                "arn:aws:iam::123456789012:role/R",
            ][..],
            &["ra-emulator", "--config", "a.json", "--max-duration", "900"],
            &[
                "ra-emulator",
                "--config",
                "a.json",
                "--deny-role-session-name",
            ],
            &["ra-emulator"],
        ] {
            assert!(Args::try_parse_from(argv).is_err(), "{argv:?}");
        }
    }
}
