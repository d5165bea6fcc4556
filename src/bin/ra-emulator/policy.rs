//! Role trust policies (IAM JSON) as the emulator evaluates them for the
//! `rolesanywhere.amazonaws.com` principal: parsed once at start-up into a small grammar
//! (anything outside it is an error naming the element, never ignored), then evaluated per
//! request against the request context. Explicit `Deny` wins; otherwise every action the
//! service asks for (`sts:AssumeRole`, `sts:TagSession`, `sts:SetSourceIdentity`) must be
//! allowed by some statement.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// The principal Roles Anywhere acts as.
pub(crate) const SERVICE_PRINCIPAL: &str = "rolesanywhere.amazonaws.com";

/// The actions CreateSession needs on the role.
pub(crate) const ACTIONS: [&str; 3] = ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"];

/// A parsed trust policy.
#[derive(Debug, Clone)]
pub(crate) struct TrustPolicy {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
struct Statement {
    /// `Statement[i]`, with the Sid when there is one: how logs name it.
    name: String,
    effect: Effect,
    /// Whether `Principal` names the Roles Anywhere service (or everyone).
    principal_matches: bool,
    /// Action patterns (`sts:AssumeRole`, `sts:*`, `*`), matched case-insensitively.
    actions: Vec<String>,
    conditions: Vec<Condition>,
}

/// The condition operators implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    ArnEquals,
    ArnNotEquals,
    ArnLike,
    ArnNotLike,
    Null,
}

impl Op {
    fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "StringEquals" => Op::StringEquals,
            "StringNotEquals" => Op::StringNotEquals,
            "StringEqualsIgnoreCase" => Op::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Op::StringNotEqualsIgnoreCase,
            "StringLike" => Op::StringLike,
            "StringNotLike" => Op::StringNotLike,
            "ArnEquals" => Op::ArnEquals,
            "ArnNotEquals" => Op::ArnNotEquals,
            "ArnLike" => Op::ArnLike,
            "ArnNotLike" => Op::ArnNotLike,
            "Null" => Op::Null,
            _ => return None,
        })
    }

    /// Negated operators hold when no value matches (and when the key is absent).
    fn negated(self) -> bool {
        matches!(
            self,
            Op::StringNotEquals
                | Op::StringNotEqualsIgnoreCase
                | Op::StringNotLike
                | Op::ArnNotEquals
                | Op::ArnNotLike
        )
    }

    /// Whether the request value `actual` matches the policy value `wanted` (the positive
    /// form of the operator).
    fn matches(self, actual: &str, wanted: &str) -> bool {
        match self {
            Op::StringEquals | Op::StringNotEquals => actual == wanted,
            Op::StringEqualsIgnoreCase | Op::StringNotEqualsIgnoreCase => {
                actual.to_lowercase() == wanted.to_lowercase()
            }
            Op::StringLike | Op::StringNotLike => glob(wanted.as_bytes(), actual.as_bytes()),
            // IAM matches each of the six ARN components separately, wildcards allowed in
            // both ArnEquals and ArnLike.
            Op::ArnEquals | Op::ArnNotEquals | Op::ArnLike | Op::ArnNotLike => {
                let a: Vec<&str> = actual.splitn(6, ':').collect();
                let w: Vec<&str> = wanted.splitn(6, ':').collect();
                a.len() == 6
                    && w.len() == 6
                    && a.iter()
                        .zip(&w)
                        .all(|(a, w)| glob(w.as_bytes(), a.as_bytes()))
            }
            Op::Null => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quantifier {
    Single,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone)]
struct Condition {
    /// The operator as written (`ForAnyValue:StringLikeIfExists`).
    operator: String,
    op: Op,
    quantifier: Quantifier,
    if_exists: bool,
    /// The key as written.
    key: String,
    values: Vec<String>,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {:?}", self.operator, self.key, self.values)
    }
}

/// The request context: condition keys (compared case-insensitively) and their values.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    values: BTreeMap<String, Vec<String>>,
}

impl Context {
    /// Sets `key` to `values` (replacing what was there).
    pub(crate) fn set(&mut self, key: &str, values: Vec<String>) {
        self.values.insert(key.to_ascii_lowercase(), values);
    }

    fn get(&self, key: &str) -> Option<&[String]> {
        self.values
            .get(&key.to_ascii_lowercase())
            .map(Vec::as_slice)
            .filter(|v| !v.is_empty())
    }
}

/// What the trust policy decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Every action allowed; the statement that allowed `sts:AssumeRole`.
    Allowed { statement: String },
    /// Refused: an explicit Deny, or no statement allowing an action (with the condition
    /// that failed in the nearest statement).
    Refused { reason: String },
}

/// Condition keys whose values the emulator sets as the service does. A key outside these
/// would evaluate as absent here but not in AWS, so it is refused at start-up.
fn known_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["aws:principaltag/", "aws:requesttag/"]
        .iter()
        .any(|p| k.starts_with(p) && k.len() > p.len())
        || matches!(
            k.as_str(),
            "aws:tagkeys" | "aws:sourcearn" | "aws:sourceaccount" | "sts:sourceidentity"
        )
}

/// `*` and `?` wildcards over bytes, case-sensitive; iterative with one backtrack point,
/// so hostile patterns stay linear-ish.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// One string or an array of strings (IAM's usual "string or list" shape).
fn strings(v: &Value, path: &str) -> Result<Vec<String>, String> {
    let one = |v: &Value| -> Result<String, String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(format!("{path}: expected a string or an array of strings")),
        }
    };
    let list = match v {
        Value::Array(items) => items.iter().map(one).collect::<Result<Vec<_>, _>>()?,
        other => vec![one(other)?],
    };
    if list.is_empty() {
        return Err(format!("{path}: must not be empty"));
    }
    Ok(list)
}

fn object<'v>(v: &'v Value, path: &str) -> Result<&'v serde_json::Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{path}: expected a JSON object"))
}

/// Parses a trust policy document (an object, or a string holding one, as the IAM API
/// stores it); `path` is where it sits in the configuration, for errors.
pub(crate) fn parse(v: &Value, path: &str) -> Result<TrustPolicy, String> {
    let parsed;
    let doc = match v {
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text)
                .map_err(|e| format!("{path}: the policy string is not JSON: {e}"))?;
            &parsed
        }
        other => other,
    };
    let top = object(doc, path)?;
    let mut statements = None;
    for (name, value) in top {
        let here = format!("{path}.{name}");
        match name.as_str() {
            "Version" => match value.as_str() {
                Some("2012-10-17" | "2008-10-17") => {}
                _ => return Err(format!("{here}: must be \"2012-10-17\" or \"2008-10-17\"")),
            },
            "Id" => {
                if !value.is_string() {
                    return Err(format!("{here}: must be a string"));
                }
            }
            "Statement" => {
                let list: Vec<&Value> = match value {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                if list.is_empty() {
                    return Err(format!("{here}: must not be empty"));
                }
                let parsed = list
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let at = if value.is_array() {
                            format!("{here}[{i}]")
                        } else {
                            here.clone()
                        };
                        statement(s, &at, i)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                statements = Some(parsed);
            }
            other => {
                return Err(format!(
                    "{here}: unsupported policy element \"{other}\" (Version, Id and Statement are)"
                ));
            }
        }
    }
    let statements = statements.ok_or_else(|| format!("{path}: has no Statement"))?;
    Ok(TrustPolicy { statements })
}

fn statement(v: &Value, path: &str, index: usize) -> Result<Statement, String> {
    let obj = object(v, path)?;
    let mut sid = None;
    let mut effect = None;
    let mut principal_matches = None;
    let mut actions = None;
    let mut conditions = Vec::new();
    for (name, value) in obj {
        let here = format!("{path}.{name}");
        match name.as_str() {
            "Sid" => {
                sid = Some(
                    value
                        .as_str()
                        .ok_or_else(|| format!("{here}: must be a string"))?
                        .to_owned(),
                );
            }
            "Effect" => {
                effect = Some(match value.as_str() {
                    Some("Allow") => Effect::Allow,
                    Some("Deny") => Effect::Deny,
                    _ => return Err(format!("{here}: must be \"Allow\" or \"Deny\"")),
                });
            }
            "Principal" => principal_matches = Some(principal(value, &here)?),
            "Action" => {
                let list = strings(value, &here)?;
                for a in &list {
                    if a != "*" && !a.contains(':') {
                        return Err(format!("{here}: \"{a}\" is not an action (service:Action)"));
                    }
                }
                actions = Some(list);
            }
            "Condition" => conditions = condition_block(value, &here)?,
            "Resource" | "NotResource" => {
                return Err(format!(
                    "{here}: a trust policy has no {name} element (IAM refuses it: \"Has prohibited field {name}\")"
                ));
            }
            other => {
                return Err(format!(
                    "{here}: unsupported policy element \"{other}\" (Sid, Effect, Principal, Action and Condition are)"
                ));
            }
        }
    }
    let name = match &sid {
        Some(s) => format!("Statement[{index}] (Sid \"{s}\")"),
        None => format!("Statement[{index}]"),
    };
    Ok(Statement {
        name,
        effect: effect.ok_or_else(|| format!("{path}: has no Effect"))?,
        principal_matches: principal_matches.ok_or_else(|| format!("{path}: has no Principal"))?,
        actions: actions.ok_or_else(|| format!("{path}: has no Action"))?,
        conditions,
    })
}

/// Whether a `Principal` element names the Roles Anywhere service.
fn principal(v: &Value, path: &str) -> Result<bool, String> {
    if v.as_str() == Some("*") {
        return Ok(true);
    }
    let obj = object(v, path)?;
    if obj.is_empty() {
        return Err(format!("{path}: must not be empty"));
    }
    let mut matches = false;
    for (kind, value) in obj {
        let here = format!("{path}.{kind}");
        let names = strings(value, &here)?;
        match kind.as_str() {
            "Service" => matches |= names.iter().any(|n| n == SERVICE_PRINCIPAL),
            "AWS" => matches |= names.iter().any(|n| n == "*"),
            "Federated" | "CanonicalUser" => {}
            other => {
                return Err(format!(
                    "{here}: unsupported principal type \"{other}\" (Service, AWS, Federated and CanonicalUser are)"
                ));
            }
        }
    }
    Ok(matches)
}

fn condition_block(v: &Value, path: &str) -> Result<Vec<Condition>, String> {
    let mut out = Vec::new();
    for (operator, keys) in object(v, path)? {
        let here = format!("{path}.{operator}");
        let (quantifier, rest) = if let Some(r) = operator.strip_prefix("ForAnyValue:") {
            (Quantifier::ForAnyValue, r)
        } else if let Some(r) = operator.strip_prefix("ForAllValues:") {
            (Quantifier::ForAllValues, r)
        } else {
            (Quantifier::Single, operator.as_str())
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (rest, false),
        };
        let op = Op::parse(base).ok_or_else(|| {
            format!(
                "{here}: unsupported condition operator \"{operator}\" (the emulator implements StringEquals, StringNotEquals, StringEqualsIgnoreCase, StringNotEqualsIgnoreCase, StringLike, StringNotLike, ArnEquals, ArnNotEquals, ArnLike, ArnNotLike and Null, with ForAnyValue:/ForAllValues: and ...IfExists)"
            )
        })?;
        if op == Op::Null && (if_exists || quantifier != Quantifier::Single) {
            return Err(format!(
                "{here}: Null takes neither IfExists nor a ForAnyValue:/ForAllValues: prefix"
            ));
        }
        let keys = object(keys, &here)?;
        if keys.is_empty() {
            return Err(format!("{here}: must name at least one condition key"));
        }
        for (key, values) in keys {
            let at = format!("{here}.{key}");
            if !known_key(key) {
                return Err(format!(
                    "{at}: unsupported condition key \"{key}\" (the emulator sets aws:PrincipalTag/..., aws:RequestTag/..., aws:TagKeys, aws:SourceArn, aws:SourceAccount and sts:SourceIdentity)"
                ));
            }
            let values = strings(values, &at)?;
            if values.iter().any(|v| v.contains("${")) {
                return Err(format!(
                    "{at}: policy variables (${{...}}) are not supported"
                ));
            }
            if op == Op::Null && values.iter().any(|v| v != "true" && v != "false") {
                return Err(format!("{at}: Null takes \"true\" or \"false\""));
            }
            out.push(Condition {
                operator: operator.clone(),
                op,
                quantifier,
                if_exists,
                key: key.clone(),
                values,
            });
        }
    }
    Ok(out)
}

impl Condition {
    /// Whether the condition holds in `ctx`; on failure, why (for the log).
    fn check(&self, ctx: &Context) -> Result<(), String> {
        let actual = ctx.get(&self.key);
        if self.op == Op::Null {
            let absent = actual.is_none();
            return if self.values.iter().any(|v| (v == "true") == absent) {
                Ok(())
            } else if absent {
                Err(format!("{self}: the key is absent"))
            } else {
                Err(format!("{self}: the key is present"))
            };
        }
        let Some(actual) = actual else {
            let holds = self.if_exists
                || self.quantifier == Quantifier::ForAllValues
                || (self.quantifier == Quantifier::Single && self.op.negated());
            return if holds {
                Ok(())
            } else {
                Err(format!("{self}: the key is absent"))
            };
        };
        // Per request value: does it satisfy the operator (positive: matches one of the
        // policy values; negated: matches none)?
        let satisfies = |a: &String| {
            let any = self.values.iter().any(|w| self.op.matches(a, w));
            any != self.op.negated()
        };
        let holds = match self.quantifier {
            Quantifier::ForAllValues => actual.iter().all(satisfies),
            Quantifier::ForAnyValue => actual.iter().any(satisfies),
            Quantifier::Single if self.op.negated() => actual.iter().all(satisfies),
            Quantifier::Single => actual.iter().any(satisfies),
        };
        if holds {
            Ok(())
        } else {
            Err(format!("{self}: the request has {actual:?}"))
        }
    }
}

fn action_matches(patterns: &[String], action: &str) -> bool {
    let action = action.to_ascii_lowercase();
    patterns
        .iter()
        .any(|p| glob(p.to_ascii_lowercase().as_bytes(), action.as_bytes()))
}

impl TrustPolicy {
    /// Decides whether the service may perform every one of `actions` on the role.
    pub(crate) fn evaluate(&self, actions: &[&str], ctx: &Context) -> Decision {
        let mut allowed_by = None;
        for action in actions {
            let applicable = self
                .statements
                .iter()
                .filter(|s| s.principal_matches && action_matches(&s.actions, action));
            let mut allow = None;
            let mut nearest_failure = None;
            for s in applicable {
                match s.conditions.iter().try_for_each(|c| c.check(ctx)) {
                    Ok(()) if s.effect == Effect::Deny => {
                        return Decision::Refused {
                            reason: format!("explicit Deny in {} for {action}", s.name),
                        };
                    }
                    Ok(()) => {
                        allow.get_or_insert_with(|| s.name.clone());
                    }
                    Err(why) if s.effect == Effect::Allow => {
                        nearest_failure.get_or_insert_with(|| format!("{}: {why}", s.name));
                    }
                    Err(_) => {}
                }
            }
            match allow {
                Some(name) => {
                    allowed_by.get_or_insert(name);
                }
                None => {
                    return Decision::Refused {
                        reason: match nearest_failure {
                            Some(why) => format!("no statement allows {action}; {why}"),
                            None => format!(
                                "no statement allows {action} to the principal {SERVICE_PRINCIPAL}"
                            ),
                        },
                    };
                }
            }
        }
        Decision::Allowed {
            statement: allowed_by.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(condition: &Value) -> TrustPolicy {
        parse(
            &json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "T",
                    "Effect": "Allow",
                    "Principal": {"Service": SERVICE_PRINCIPAL},
                    "Action": ACTIONS,
                    "Condition": condition,
                }]
            }),
            "$",
        )
        .expect("policy")
    }

    fn ctx(pairs: &[(&str, &[&str])]) -> Context {
        let mut c = Context::default();
        for (k, v) in pairs {
            c.set(k, v.iter().map(|s| (*s).to_owned()).collect());
        }
        c
    }

    fn allows(p: &TrustPolicy, c: &Context) -> bool {
        matches!(p.evaluate(&ACTIONS, c), Decision::Allowed { .. })
    }

    const CN: &str = "aws:PrincipalTag/x509Subject/CN";
    const OU: &str = "aws:PrincipalTag/x509Subject/OU";

    #[test]
    fn glob_matches_star_and_question_mark() {
        for (p, t, want) in [
            ("backup-*", "backup-01", true),
            ("backup-*", "backup-", true),
            ("backup-*", "Backup-01", false),
            ("b?ckup", "backup", true),
            ("b?ckup", "bckup", false),
            ("*a*b*c*", "xxaxxbxxcxx", true),
            ("*a*b*c*", "xxaxxcxxbxx", false),
            ("", "", true),
            ("*", "", true),
            ("a", "", false),
        ] {
            assert_eq!(glob(p.as_bytes(), t.as_bytes()), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn string_operators() {
        let c = ctx(&[(CN, &["backup-01"]), (OU, &["storage"])]);
        let other = ctx(&[(CN, &["web-01"]), (OU, &["storage"])]);
        let none = ctx(&[]);
        for (cond, on_c, on_other, on_none) in [
            (
                json!({"StringEquals": {CN: "backup-01"}}),
                true,
                false,
                false,
            ),
            (
                json!({"StringEquals": {CN: ["x", "backup-01"]}}),
                true,
                false,
                false,
            ),
            (
                json!({"StringEquals": {CN: "BACKUP-01"}}),
                false,
                false,
                false,
            ),
            (
                json!({"StringEqualsIgnoreCase": {CN: "BACKUP-01"}}),
                true,
                false,
                false,
            ),
            (
                json!({"StringNotEquals": {CN: "backup-01"}}),
                false,
                true,
                true,
            ),
            (
                json!({"StringNotEqualsIgnoreCase": {CN: "Backup-01"}}),
                false,
                true,
                true,
            ),
            (json!({"StringLike": {CN: "backup-*"}}), true, false, false),
            (json!({"StringLike": {CN: "backup-0?"}}), true, false, false),
            (
                json!({"StringNotLike": {CN: "backup-*"}}),
                false,
                true,
                true,
            ),
            (
                json!({"StringLikeIfExists": {CN: "backup-*"}}),
                true,
                false,
                true,
            ),
            (
                json!({"StringEqualsIfExists": {CN: "nope"}}),
                false,
                false,
                true,
            ),
            // Keys are case-insensitive, and two keys under one operator both must hold.
            (
                json!({"StringLike": {"AWS:principaltag/X509SUBJECT/cn": "backup-*", OU: "storage"}}),
                true,
                false,
                false,
            ),
        ] {
            let p = policy(&cond);
            assert_eq!(allows(&p, &c), on_c, "{cond} on backup");
            assert_eq!(allows(&p, &other), on_other, "{cond} on web");
            assert_eq!(allows(&p, &none), on_none, "{cond} with no keys");
        }
    }

    #[test]
    fn arn_and_null_operators() {
        let ta = "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/ta-1";
        let c = ctx(&[
            ("aws:SourceArn", &[ta]),
            ("aws:SourceAccount", &["123456789012"]),
        ]);
        for (cond, want) in [
            (json!({"ArnEquals": {"aws:SourceArn": ta}}), true),
            (
                json!({"ArnEquals": {"aws:SourceArn": ta.replace("ta-1", "ta-2")}}),
                false,
            ),
            (
                json!({"ArnLike": {"aws:SourceArn": "arn:aws:rolesanywhere:*:123456789012:trust-anchor/*"}}),
                true,
            ),
            (
                json!({"ArnLike": {"aws:SourceArn": "arn:aws:rolesanywhere:*:999999999999:*"}}),
                false,
            ),
            // The region component alone may not swallow the colons.
            (
                json!({"ArnLike": {"aws:SourceArn": "arn:aws:rolesanywhere:*"}}),
                false,
            ),
            (
                json!({"ArnNotLike": {"aws:SourceArn": "arn:aws:rolesanywhere:*:*:trust-anchor/ta-9"}}),
                true,
            ),
            (json!({"ArnNotEquals": {"aws:SourceArn": ta}}), false),
            (
                json!({"StringEquals": {"aws:SourceAccount": "123456789012"}}),
                true,
            ),
            (json!({"Null": {OU: "true"}}), true),
            (json!({"Null": {OU: "false"}}), false),
            (json!({"Null": {"aws:SourceArn": "false"}}), true),
            (json!({"Null": {"aws:SourceArn": "true"}}), false),
        ] {
            assert_eq!(allows(&policy(&cond), &c), want, "{cond}");
        }
    }

    #[test]
    fn set_quantifiers() {
        let keys = ctx(&[("aws:TagKeys", &["x509Subject/CN", "x509Subject/OU"])]);
        let none = ctx(&[]);
        for (cond, on_keys, on_none) in [
            (
                json!({"ForAllValues:StringLike": {"aws:TagKeys": "x509Subject/*"}}),
                true,
                true,
            ),
            (
                json!({"ForAllValues:StringEquals": {"aws:TagKeys": "x509Subject/CN"}}),
                false,
                true,
            ),
            (
                json!({"ForAnyValue:StringEquals": {"aws:TagKeys": "x509Subject/OU"}}),
                true,
                false,
            ),
            (
                json!({"ForAnyValue:StringEquals": {"aws:TagKeys": "x509SAN/DNS"}}),
                false,
                false,
            ),
            (
                json!({"ForAnyValue:StringNotEquals": {"aws:TagKeys": "x509Subject/CN"}}),
                true,
                false,
            ),
            (
                json!({"ForAllValues:StringNotLike": {"aws:TagKeys": "x509Issuer/*"}}),
                true,
                true,
            ),
            (
                json!({"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "nope"}}),
                false,
                true,
            ),
        ] {
            let p = policy(&cond);
            assert_eq!(allows(&p, &keys), on_keys, "{cond}");
            assert_eq!(allows(&p, &none), on_none, "{cond} with no keys");
        }
    }

    #[test]
    fn explicit_deny_wins_and_every_action_must_be_allowed() {
        let c = ctx(&[(CN, &["backup-01"]), (OU, &["storage"])]);
        let doc = json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "All", "Effect": "Allow", "Principal": {"Service": [SERVICE_PRINCIPAL]}, "Action": "sts:*"},
                {"Sid": "NoBackup", "Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole",
                 "Condition": {"StringLike": {CN: "backup-*"}}}
            ]
        });
        let p = parse(&doc, "$").expect("policy");
        match p.evaluate(&ACTIONS, &c) {
            Decision::Refused { reason } => {
                assert!(
                    reason.contains("explicit Deny in Statement[1] (Sid \"NoBackup\")"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            p.evaluate(&ACTIONS, &ctx(&[(CN, &["web"])])),
            Decision::Allowed {
                statement: "Statement[0] (Sid \"All\")".into()
            }
        );

        // sts:AssumeRole alone is not enough: the service also tags the session.
        let only_assume = parse(
            &json!({"Statement": {"Effect": "Allow", "Principal": {"Service": SERVICE_PRINCIPAL}, "Action": "sts:AssumeRole"}}),
            "$",
        )
        .expect("policy");
        match only_assume.evaluate(&ACTIONS, &c) {
            Decision::Refused { reason } => assert!(reason.contains("sts:TagSession"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // Another principal: nothing applies.
        let ec2 = parse(
            &json!({"Statement": {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:*"}}),
            "$",
        )
        .expect("policy");
        assert!(!allows(&ec2, &c));
        // The failing condition is named.
        match policy(&json!({"StringEquals": {OU: "storage"}, "StringLike": {CN: "db-*"}}))
            .evaluate(&ACTIONS, &c)
        {
            Decision::Refused { reason } => assert!(
                reason.contains("StringLike aws:PrincipalTag/x509Subject/CN [\"db-*\"]: the request has [\"backup-01\"]"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsupported_grammar_is_named() {
        for (doc, want) in [
            (
                json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:*", "Condition": {"NumericLessThan": {"aws:SourceAccount": "1"}}}]}),
                "$.Statement[0].Condition.NumericLessThan: unsupported condition operator",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:*", "Condition": {"StringEquals": {"aws:SourceIp": "1"}}}]}),
                "$.Statement[0].Condition.StringEquals.aws:SourceIp: unsupported condition key",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "NotPrincipal": "*", "Action": "sts:*"}]}),
                "$.Statement[0].NotPrincipal: unsupported policy element",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Principal": "*", "NotAction": "sts:*"}]}),
                "$.Statement[0].NotAction: unsupported policy element",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:*", "Resource": "*"}]}),
                "$.Statement[0].Resource: a trust policy has no Resource element",
            ),
            (
                json!({"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "sts:*"}]}),
                "$.Statement[0].Effect: must be",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Principal": "*"}]}),
                "$.Statement[0]: has no Action",
            ),
            (
                json!({"Version": "2020-01-01", "Statement": {"Effect": "Allow", "Principal": "*", "Action": "*"}}),
                "$.Version",
            ),
            (json!({"Statement": []}), "$.Statement: must not be empty"),
            (
                json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:*", "Condition": {"Null": {OU: "maybe"}}}]}),
                "Null takes \"true\" or \"false\"",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:*", "Condition": {"StringLike": {CN: "${aws:username}"}}}]}),
                "policy variables",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Principal": {"Robot": "x"}, "Action": "sts:*"}]}),
                "$.Statement[0].Principal.Robot: unsupported principal type",
            ),
            (json!({"Policy": 1}), "$.Policy: unsupported policy element"),
            (json!("not json"), "$: the policy string is not JSON"),
        ] {
            let err = parse(&doc, "$").expect_err(&doc.to_string());
            assert!(
                err.starts_with(want) || err.contains(want),
                "{err}\nwanted {want}"
            );
        }
        // The string form the IAM API stores is accepted.
        let text =
            json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "*"}}).to_string();
        assert!(allows(
            &parse(&Value::String(text), "$").expect("string"),
            &ctx(&[])
        ));
    }
}
