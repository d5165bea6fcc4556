//! The counters `serve` keeps for `--metrics`: relaxed atomics in fixed arrays, so a
//! request on the IMDS or ECS listener costs one `fetch_add` and every label set is bounded.
//! Kept apart from their rendering ([`super::metrics`]) so that the shared state and the
//! request router below it can hold and bump them without importing what reads the state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::StatusCode;

use crate::error::ErrorClass;

/// Which part of the IMDS or ECS contract a request asked for: a bounded label, never the
/// path a client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// IMDSv2 `…/latest/api/token`.
    Token,
    /// IMDS `…/security-credentials/`: the role names.
    RoleList,
    /// IMDS `…/security-credentials/<name>`, known role or not.
    RoleCredentials,
    /// ECS `/` or `/role/<name>`.
    Ecs,
    /// Anything else.
    Other,
}

impl Route {
    pub(super) const ALL: [Route; 5] = [
        Route::Token,
        Route::RoleList,
        Route::RoleCredentials,
        Route::Ecs,
        Route::Other,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            Route::Token => "token",
            Route::RoleList => "role_list",
            Route::RoleCredentials => "role_credentials",
            Route::Ecs => "ecs",
            Route::Other => "other",
        }
    }
}

/// The statuses the IMDS and ECS listeners answer, each counted apart; any other is
/// counted as "other".
pub(crate) const STATUSES: [u16; 7] = [200, 400, 401, 403, 404, 405, 500];

/// The latency gauge before any CreateSession succeeded.
pub(super) const NO_LATENCY: u64 = u64::MAX;

/// One role's counters.
pub(super) struct RoleCounters {
    pub(super) refreshes: AtomicU64,
    pub(super) failures: [AtomicU64; ErrorClass::ALL.len()],
    /// Microseconds the last successful CreateSession took, or [`NO_LATENCY`].
    pub(super) create_session_micros: AtomicU64,
}

/// Everything `serve` counts.
pub(crate) struct Metrics {
    pub(super) requests: [[AtomicU64; STATUSES.len() + 1]; Route::ALL.len()],
    pub(super) roles: Vec<RoleCounters>,
}

impl Metrics {
    /// Zeroed counters for `roles` roles.
    pub(crate) fn new(roles: usize) -> Metrics {
        Metrics {
            requests: Default::default(),
            roles: (0..roles)
                .map(|_| RoleCounters {
                    refreshes: AtomicU64::new(0),
                    failures: Default::default(),
                    create_session_micros: AtomicU64::new(NO_LATENCY),
                })
                .collect(),
        }
    }

    /// Counts a request on the IMDS or ECS listener.
    pub(crate) fn request(&self, route: Route, status: StatusCode) {
        let s = STATUSES
            .iter()
            .position(|&s| s == status.as_u16())
            .unwrap_or(STATUSES.len());
        self.requests[route as usize][s].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a successful refresh of role `slot`.
    pub(crate) fn refreshed(&self, slot: usize) {
        self.roles[slot].refreshes.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed refresh of role `slot`.
    pub(crate) fn failed(&self, slot: usize, class: ErrorClass) {
        let c = ErrorClass::ALL
            .iter()
            .position(|&c| c == class)
            .unwrap_or(0);
        self.roles[slot].failures[c].fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long a successful CreateSession of role `slot` took.
    pub(crate) fn took(&self, slot: usize, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(NO_LATENCY - 1);
        self.roles[slot]
            .create_session_micros
            .store(micros.min(NO_LATENCY - 1), Ordering::Relaxed);
    }
}
