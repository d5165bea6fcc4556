//! Fault injection: `KIND[:COUNT]` specs, given with `--fault` or replaced at run time
//! through `POST /_emulator/faults`. Faults are consulted for every `POST /sessions`
//! before any verification.

use std::fmt;
use std::str::FromStr;

/// What a fault does to one CreateSession request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Answer this 4xx/5xx status with an AWS-style error body.
    Status(u16),
    /// 429 `ThrottlingException` "Rate exceeded".
    Throttle,
    /// Sleep this many milliseconds, then answer normally (combines with the others).
    Delay(u64),
    /// 201 with a body that is not JSON.
    Garbage,
    /// 201 with `{"credentialSet":[]}`.
    EmptySet,
    /// Drop the connection without answering.
    Close,
    /// 201 with credentials a hostile endpoint would send: a secret that carries a new INI
    /// section, for clients that must refuse it.
    Hostile,
    /// 201 with well-formed credentials that expired an hour ago.
    Expired,
    /// 201 with a body that never ends, for clients that must bound what they read.
    EndlessBody,
    /// 201 at once, then a body that never ends, one byte every 200 ms.
    SlowBody,
    /// 403 `AccessDeniedException` with a message of about 900 KB (under a 1 MiB body
    /// bound), for clients that must cut what they echo.
    HugeMessage,
    /// 403 `AccessDeniedException` whose message holds a newline, a carriage return, a
    /// forged `ra-signer:` line, `ESC[2J`, BEL and a bidi override, and whose request id
    /// holds a tab and non-ASCII bytes, for clients that must escape remote text.
    ControlChars,
}

/// One fault and how many more requests it applies to (`None`: forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fault {
    /// What it does.
    pub kind: Kind,
    /// Remaining requests; `None` for forever.
    pub remaining: Option<u64>,
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(spec: &str) -> Result<Fault, String> {
        let bad = |why: &str| {
            format!(
                "invalid fault '{spec}': {why} (expected status=NNN, throttle, delay=MS, garbage, empty-set, close, hostile, expired, endless-body, slow-body, huge-message or control-chars, optionally followed by :COUNT)"
            )
        };
        let (kind, count) = match spec.rsplit_once(':') {
            Some((k, c)) => (k, Some(c)),
            None => (spec, None),
        };
        let remaining = match count {
            None => None,
            Some(c) => match c.parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(bad("COUNT must be a positive integer")),
            },
        };
        let kind = match kind.split_once('=') {
            None => match kind {
                "throttle" => Kind::Throttle,
                "garbage" => Kind::Garbage,
                "empty-set" => Kind::EmptySet,
                "close" => Kind::Close,
                "hostile" => Kind::Hostile,
                "expired" => Kind::Expired,
                "endless-body" => Kind::EndlessBody,
                "slow-body" => Kind::SlowBody,
                "huge-message" => Kind::HugeMessage,
                "control-chars" => Kind::ControlChars,
                _ => return Err(bad("unknown kind")),
            },
            Some(("status", n)) => match n.parse::<u16>() {
                Ok(code) if (400..=599).contains(&code) => Kind::Status(code),
                _ => return Err(bad("status must be 400..599")),
            },
            Some(("delay", ms)) => match ms.parse::<u64>() {
                Ok(ms) if ms <= 600_000 => Kind::Delay(ms),
                _ => return Err(bad("delay must be 0..600000 milliseconds")),
            },
            Some(_) => return Err(bad("unknown kind")),
        };
        Ok(Fault { kind, remaining })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Status(code) => write!(f, "status={code}")?,
            Kind::Throttle => f.write_str("throttle")?,
            Kind::Delay(ms) => write!(f, "delay={ms}")?,
            Kind::Garbage => f.write_str("garbage")?,
            Kind::EmptySet => f.write_str("empty-set")?,
            Kind::Close => f.write_str("close")?,
            Kind::Hostile => f.write_str("hostile")?,
            Kind::Expired => f.write_str("expired")?,
            Kind::EndlessBody => f.write_str("endless-body")?,
            Kind::SlowBody => f.write_str("slow-body")?,
            Kind::HugeMessage => f.write_str("huge-message")?,
            Kind::ControlChars => f.write_str("control-chars")?,
        }
        match self.remaining {
            Some(n) => write!(f, ":{n}"),
            None => Ok(()),
        }
    }
}

/// Parses a list of specs, failing on the first bad one.
pub(crate) fn parse_all<S: AsRef<str>>(specs: &[S]) -> Result<Vec<Fault>, String> {
    specs.iter().map(|s| s.as_ref().parse()).collect()
}

/// What the active faults decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Applied {
    /// Total delay before answering, in milliseconds.
    pub delay_ms: u64,
    /// The answering fault (anything but a delay), if one applies.
    pub answer: Option<Kind>,
}

/// The active fault list.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    list: Vec<Fault>,
}

impl Faults {
    /// A list with these faults.
    pub(crate) fn new(list: Vec<Fault>) -> Faults {
        Faults { list }
    }

    /// Replaces the list.
    pub(crate) fn replace(&mut self, list: Vec<Fault>) {
        self.list = list;
    }

    /// The active faults as specs (counts are what remains).
    pub(crate) fn specs(&self) -> Vec<String> {
        self.list.iter().map(ToString::to_string).collect()
    }

    /// Decides the faults for the next CreateSession request and uses up their counts:
    /// every active delay applies (their sum), plus the first active answering fault in
    /// list order. Exhausted faults are removed.
    pub(crate) fn next_request(&mut self) -> Applied {
        let mut applied = Applied::default();
        for fault in &mut self.list {
            let applies = match fault.kind {
                Kind::Delay(ms) => {
                    applied.delay_ms = applied.delay_ms.saturating_add(ms);
                    true
                }
                kind if applied.answer.is_none() => {
                    applied.answer = Some(kind);
                    true
                }
                _ => false,
            };
            if applies && let Some(n) = fault.remaining.as_mut() {
                *n -= 1;
            }
        }
        self.list.retain(|f| f.remaining != Some(0));
        applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_specs() {
        for spec in [
            "status=503",
            "status=500:2",
            "throttle:1",
            "delay=250",
            "garbage",
            "empty-set:3",
            "close",
            "endless-body",
            "slow-body:1",
            "huge-message:2",
            "control-chars",
        ] {
            let f: Fault = spec.parse().expect(spec);
            assert_eq!(f.to_string(), spec);
        }
        assert_eq!(
            "status=503:2".parse::<Fault>(),
            Ok(Fault {
                kind: Kind::Status(503),
                remaining: Some(2)
            })
        );
        for bad in [
            "",
            "status=200",
            "status=abc",
            "throttle:0",
            "throttle:-1",
            "delay=x",
            "boom",
            "close:",
            "garbage=1",
        ] {
            assert!(bad.parse::<Fault>().is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_down_and_combines_delay() {
        let mut f =
            Faults::new(parse_all(&["delay=10:1", "status=503:2", "throttle"]).expect("specs"));
        assert_eq!(
            f.next_request(),
            Applied {
                delay_ms: 10,
                answer: Some(Kind::Status(503))
            }
        );
        assert_eq!(
            f.next_request(),
            Applied {
                delay_ms: 0,
                answer: Some(Kind::Status(503))
            }
        );
        assert_eq!(f.specs(), ["throttle"]);
        assert_eq!(f.next_request().answer, Some(Kind::Throttle));
        assert_eq!(f.next_request().answer, Some(Kind::Throttle));
        f.replace(Vec::new());
        assert_eq!(f.next_request(), Applied::default());
    }
}
