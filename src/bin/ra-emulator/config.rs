//! The emulator's validated settings: what the flags are lowered into (`cli.rs`), and all
//! the server sees.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::arn::Arn;
use crate::faults::Fault;

/// Validated settings, minus the trust anchor certificates (loaded from `anchor_files`).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Files holding the trust anchor CAs.
    pub anchor_files: Vec<PathBuf>,
    /// Trust anchor ARN.
    pub trust_anchor: Arn,
    /// Profile ARN.
    pub profile: Arn,
    /// Allowed roles.
    pub roles: Vec<Arn>,
    /// Loopback listen address.
    pub listen: SocketAddr,
    /// HTTPS unless false.
    pub tls: bool,
    /// Where to write the TLS CA PEM.
    pub tls_ca_out: Option<PathBuf>,
    /// Where to write the base URL.
    pub ready_file: Option<PathBuf>,
    /// Profile session limit.
    pub max_duration: u64,
    /// Refuse roleSessionName.
    pub deny_role_session_name: bool,
    /// Allowed clock skew in seconds.
    pub clock_skew: u64,
    /// Stop after this long, if set.
    pub exit_after: Option<Duration>,
    /// Log file, or stderr.
    pub log: Option<PathBuf>,
    /// Initial faults.
    pub faults: Vec<Fault>,
}
