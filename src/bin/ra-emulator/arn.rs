//! The three ARN shapes CreateSession takes, parsed just enough to check them and to
//! build the response (partition, region, account, role name).

use std::fmt;

/// A parsed ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arn {
    /// `aws`, `aws-cn`, `aws-us-gov`, ...
    pub partition: String,
    /// `rolesanywhere` or `iam`.
    pub service: String,
    /// Empty for IAM.
    pub region: String,
    /// Twelve digits.
    pub account: String,
    /// `trust-anchor/<id>`, `profile/<id>`, `role/<path>/<name>`.
    pub resource: String,
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

/// Which ARN a CreateSession parameter must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `arn:<p>:rolesanywhere:<region>:<acct>:trust-anchor/<id>`
    TrustAnchor,
    /// `arn:<p>:rolesanywhere:<region>:<acct>:profile/<id>`
    Profile,
    /// `arn:<p>:iam::<acct>:role/[<path>/]<name>`
    Role,
}

impl Kind {
    /// The parameter name on the wire.
    pub(crate) fn param(self) -> &'static str {
        match self {
            Kind::TrustAnchor => "trustAnchorArn",
            Kind::Profile => "profileArn",
            Kind::Role => "roleArn",
        }
    }
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Parses `s` as an ARN of the given kind; the error explains what is wrong.
pub(crate) fn parse(s: &str, kind: Kind) -> Result<Arn, String> {
    let bad = |why: &str| format!("Invalid {}: '{s}' {why}", kind.param());
    let mut it = s.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return Err(bad(
            "is not arn:<partition>:<service>:<region>:<account>:<resource>",
        ));
    };
    if !partition.starts_with("aws") || !is_id(partition) {
        return Err(bad("has an unknown partition"));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("does not name a 12-digit account"));
    }
    match kind {
        Kind::TrustAnchor | Kind::Profile => {
            let prefix = if kind == Kind::TrustAnchor {
                "trust-anchor/"
            } else {
                "profile/"
            };
            if service != "rolesanywhere" {
                return Err(bad("is not a rolesanywhere ARN"));
            }
            if !is_id(region) {
                return Err(bad("has no valid region"));
            }
            match resource.strip_prefix(prefix) {
                Some(id) if is_id(id) => {}
                _ => return Err(bad(&format!("does not end in {prefix}<id>"))),
            }
        }
        Kind::Role => {
            if service != "iam" || !region.is_empty() {
                return Err(bad(
                    "is not an IAM ARN (arn:aws:iam::<account>:role/<name>)",
                ));
            }
            let ok = resource.strip_prefix("role/").is_some_and(|rest| {
                !rest.is_empty()
                    && !rest.ends_with('/')
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
            });
            if !ok {
                return Err(bad("does not end in role/<name>"));
            }
        }
    }
    Ok(Arn {
        partition: partition.to_string(),
        service: service.to_string(),
        region: region.to_string(),
        account: account.to_string(),
        resource: resource.to_string(),
    })
}

impl Arn {
    /// The last path segment of the resource: the role name for a role ARN.
    pub(crate) fn name(&self) -> &str {
        self.resource.rsplit('/').next().unwrap_or(&self.resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_kinds() {
        let ta = parse(
            "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/0f2d-aa",
            Kind::TrustAnchor,
        )
        .expect("ta");
        assert_eq!(ta.region, "us-east-1");
        assert_eq!(ta.account, "123456789012");
        let role = parse(
            "arn:aws-cn:iam::123456789012:role/path/To/MyRole",
            Kind::Role,
        )
        .expect("role");
        assert_eq!(role.name(), "MyRole");
        assert_eq!(role.partition, "aws-cn");
        assert_eq!(
            role.to_string(),
            "arn:aws-cn:iam::123456789012:role/path/To/MyRole"
        );
        assert!(
            parse(
                "arn:aws:rolesanywhere:eu-west-1:123456789012:profile/abc",
                Kind::Profile
            )
            .is_ok()
        );
    }

    #[test]
    fn rejects_malformed() {
        for (s, kind) in [
            (
                "arn:aws:rolesanywhere:us-east-1:123456789012:profile/abc",
                Kind::TrustAnchor,
            ),
            (
                "arn:aws:rolesanywhere::123456789012:trust-anchor/abc",
                Kind::TrustAnchor,
            ),
            (
                "arn:aws:rolesanywhere:us-east-1:12345:trust-anchor/abc",
                Kind::TrustAnchor,
            ),
            ("arn:aws:iam:us-east-1:123456789012:role/x", Kind::Role),
            ("arn:aws:iam::123456789012:user/x", Kind::Role),
            ("arn:aws:iam::123456789012:role/", Kind::Role),
            ("not-an-arn", Kind::Profile),
            ("", Kind::Profile),
        ] {
            assert!(parse(s, kind).is_err(), "{s}");
        }
    }
}
