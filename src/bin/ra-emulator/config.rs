//! The emulator's validated settings: what the flags are lowered into (`cli.rs`), and all
//! the server sees.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::arn::Arn;
use crate::faults::Fault;

/// The account as the short-form flags give it (files are read by `main`).
#[derive(Debug, Clone)]
pub(crate) struct ShortForm {
    /// Files holding the trust anchor CAs.
    pub anchor_files: Vec<PathBuf>,
    /// Trust anchor ARN.
    pub trust_anchor: Arn,
    /// Profile ARN.
    pub profile: Arn,
    /// Allowed roles.
    pub roles: Vec<Arn>,
    /// Profile session limit.
    pub max_duration: u64,
    /// Refuse roleSessionName.
    pub deny_role_session_name: bool,
}

/// Where the account (anchors, profiles, roles) comes from.
#[derive(Debug, Clone)]
pub(crate) enum AccountSource {
    /// The short-form flags.
    Flags(Box<ShortForm>),
    /// A `--config` JSON document (see `model.rs`).
    File(PathBuf),
}

/// Validated settings, minus the account's files (read by `main`).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The account.
    pub account: AccountSource,
    /// Loopback listen address.
    pub listen: SocketAddr,
    /// HTTPS unless false.
    pub tls: bool,
    /// Where to write the TLS CA PEM.
    pub tls_ca_out: Option<PathBuf>,
    /// DNS names the TLS certificate holds besides localhost and the loopback addresses.
    pub tls_names: Vec<String>,
    /// Where to write the base URL.
    pub ready_file: Option<PathBuf>,
    /// Allowed clock skew in seconds.
    pub clock_skew: u64,
    /// Stop after this long, if set.
    pub exit_after: Option<Duration>,
    /// Log file, or stderr.
    pub log: Option<PathBuf>,
    /// Initial faults.
    pub faults: Vec<Fault>,
    /// The buckets S3 ListBuckets answers with (valid names).
    pub s3_buckets: Vec<String>,
}
