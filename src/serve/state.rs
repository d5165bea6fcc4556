//! What the HTTP side reads: per role, the last good credentials rendered once into the
//! exact response bodies (in buffers zeroized when the last reader lets go), and why the
//! last refresh failed, if it did.
//!
//! The refresher replaces a role's [`Published`] snapshot whole; requests clone the `Arc`
//! under a read lock held for a few nanoseconds, so a GET never waits on a signature.

use std::sync::{Arc, PoisonError, RwLock};

use hyper::body::Bytes;
use zeroize::Zeroizing;

use crate::credentials::Credentials;
use crate::secret::Secret;
use crate::time::UtcTime;

/// A response body holding secrets: zeroized when the last `Bytes` pointing at it drops.
struct SecretBody(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for SecretBody {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Serializes `value` into a buffer sized up front (so no reallocation leaves a copy of
/// the secrets behind) that is zeroized when the last `Bytes` clone drops.
fn secret_json<T: serde::Serialize>(value: &T, secrets_len: usize) -> Bytes {
    let mut buf = Zeroizing::new(Vec::with_capacity(512 + 2 * secrets_len));
    // Serializing strings into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, value);
    Bytes::from_owner(SecretBody(buf))
}

/// Credentials rendered for both endpoints.
pub(crate) struct Rendered {
    /// The IMDS body: `{"Code":"Success","LastUpdated",…,"Expiration"}`.
    pub imds: Bytes,
    /// The ECS body: `{"AccessKeyId","SecretAccessKey","Token","Expiration"}`.
    pub ecs: Bytes,
    /// When they expire.
    pub expiration: UtcTime,
}

/// The IMDS body: the ECS fields behind three of its own.
#[derive(serde::Serialize)]
struct ImdsBody<'a> {
    #[serde(rename = "Code")]
    code: &'static str,
    #[serde(rename = "LastUpdated")]
    last_updated: String,
    #[serde(rename = "Type")]
    kind: &'static str,
    #[serde(flatten)]
    credentials: &'a EcsBody<'a>,
}

#[derive(serde::Serialize)]
struct EcsBody<'a> {
    #[serde(rename = "AccessKeyId")]
    access_key_id: &'a str,
    #[serde(rename = "SecretAccessKey")]
    secret_access_key: &'a str,
    #[serde(rename = "Token")]
    token: &'a str,
    #[serde(rename = "Expiration")]
    expiration: String,
}

impl Rendered {
    /// Renders `creds`, obtained at `updated`.
    pub(crate) fn new(creds: &Credentials, updated: UtcTime) -> Rendered {
        let ecs = EcsBody {
            access_key_id: &creds.access_key_id,
            secret_access_key: creds.secret_access_key.expose(),
            token: creds.session_token.expose(),
            expiration: creds.expiration.rfc3339(),
        };
        let imds = ImdsBody {
            code: "Success",
            last_updated: updated.rfc3339(),
            kind: "AWS-HMAC",
            credentials: &ecs,
        };
        let secrets_len = creds.access_key_id.len()
            + creds.secret_access_key.expose().len()
            + creds.session_token.expose().len();
        Rendered {
            imds: secret_json(&imds, secrets_len),
            ecs: secret_json(&ecs, secrets_len),
            expiration: creds.expiration,
        }
    }
}

/// One role's current state.
#[derive(Default)]
pub(crate) struct Published {
    /// The last good credentials (kept until they expire, whatever refreshes do).
    pub creds: Option<Rendered>,
    /// Why the last refresh failed (cleared by a success).
    pub error: Option<String>,
}

impl Published {
    /// The credentials if they are still valid at `now`.
    pub(crate) fn valid(&self, now: UtcTime) -> Option<&Rendered> {
        self.creds.as_ref().filter(|c| c.expiration > now)
    }
}

/// A role served by name.
pub(crate) struct RoleSlot {
    /// The role name: the last segment of the role ARN's path.
    pub name: String,
    state: RwLock<Arc<Published>>,
}

impl RoleSlot {
    /// A role with nothing published yet.
    pub(crate) fn new(name: String) -> RoleSlot {
        RoleSlot {
            name,
            state: RwLock::new(Arc::new(Published::default())),
        }
    }

    /// The current snapshot.
    pub(crate) fn current(&self) -> Arc<Published> {
        // A poisoned lock still holds a whole Arc: a panic cannot tear it.
        Arc::clone(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Publishes new credentials (clearing any error).
    pub(crate) fn publish(&self, creds: &Credentials, updated: UtcTime) {
        let next = Arc::new(Published {
            creds: Some(Rendered::new(creds, updated)),
            error: None,
        });
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = next;
    }

    /// Records a failed refresh, keeping the last good credentials.
    pub(crate) fn fail(&self, reason: String) {
        let mut guard = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let creds = guard.creds.as_ref().map(|c| Rendered {
            imds: c.imds.clone(),
            ecs: c.ecs.clone(),
            expiration: c.expiration,
        });
        *guard = Arc::new(Published {
            creds,
            error: Some(reason),
        });
    }
}

/// How clients authenticate.
pub(crate) enum Mode {
    /// IMDSv2: session tokens from `PUT /latest/api/token`.
    Imds(std::sync::Mutex<super::tokens::TokenTable>),
    /// ECS container credentials: one shared authorization token.
    Ecs(Secret),
}

/// Everything the HTTP side needs.
pub(crate) struct Shared {
    /// The roles, in the order given.
    pub roles: Vec<RoleSlot>,
    /// The IMDS role list body (`name\nname…`).
    pub role_list: Bytes,
    /// The endpoint flavour.
    pub mode: Mode,
    /// What `serve --metrics` reports.
    pub metrics: super::counters::Metrics,
}

impl Shared {
    /// Builds the shared state for the roles named `names` in `mode`.
    pub(crate) fn new(names: Vec<String>, mode: Mode) -> Shared {
        let role_list = Bytes::from(names.join("\n"));
        let metrics = super::counters::Metrics::new(names.len());
        Shared {
            roles: names.into_iter().map(RoleSlot::new).collect(),
            role_list,
            mode,
            metrics,
        }
    }

    /// The role named `name`.
    pub(crate) fn role(&self, name: &str) -> Option<&RoleSlot> {
        self.roles.iter().find(|r| r.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(exp: u64) -> Credentials {
        Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("SECRET/KEY+".into()),
            session_token: Secret::new("TOKEN==".into()),
            expiration: UtcTime::from_unix(exp),
        }
    }

    #[test]
    fn renders_both_bodies() {
        let r = Rendered::new(&creds(1_765_470_865), UtcTime::from_unix(1_765_467_265));
        assert_eq!(
            std::str::from_utf8(&r.imds).expect("utf-8"),
            r#"{"Code":"Success","LastUpdated":"2025-12-11T15:34:25Z","Type":"AWS-HMAC","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"SECRET/KEY+","Token":"TOKEN==","Expiration":"2025-12-11T16:34:25Z"}"#
        );
        assert_eq!(
            std::str::from_utf8(&r.ecs).expect("utf-8"),
            r#"{"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"SECRET/KEY+","Token":"TOKEN==","Expiration":"2025-12-11T16:34:25Z"}"#
        );
    }

    #[test]
    fn failures_keep_the_last_good_credentials_until_expiry() {
        let slot = RoleSlot::new("R".into());
        assert!(slot.current().valid(UtcTime::from_unix(0)).is_none());
        slot.publish(&creds(1000), UtcTime::from_unix(100));
        slot.fail("HTTP 503".into());
        let p = slot.current();
        assert_eq!(p.error.as_deref(), Some("HTTP 503"));
        assert!(p.valid(UtcTime::from_unix(999)).is_some());
        assert!(p.valid(UtcTime::from_unix(1000)).is_none());
        slot.publish(&creds(2000), UtcTime::from_unix(900));
        assert!(slot.current().error.is_none());
    }
}
