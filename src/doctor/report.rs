//! The checks `doctor` ran, in order, and their two renderings: one line per check for a
//! person, JSON for a script.

use serde_json::json;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    /// ✔: nothing to do.
    Pass,
    /// !: works, but worth knowing (or a check that could not be made).
    Warn,
    /// ✗: CreateSession would fail (or the policy refuses the key).
    Fail,
}

impl Status {
    fn mark(self) -> &'static str {
        match self {
            Status::Pass => "✔",
            Status::Warn => "!",
            Status::Fail => "✗",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One check.
#[derive(Debug, Clone)]
pub(super) struct Check {
    /// What was checked ("certificate validity").
    pub(super) name: &'static str,
    /// The outcome.
    pub(super) status: Status,
    /// What was found, one line.
    pub(super) detail: String,
    /// What to do, for a failure or a warning.
    pub(super) fix: Option<String>,
}

/// The checks, in the order they ran.
#[derive(Debug, Default)]
pub(super) struct Report {
    checks: Vec<Check>,
}

impl Report {
    /// Records a passed check.
    pub(super) fn pass(&mut self, name: &'static str, detail: impl Into<String>) {
        self.push(name, Status::Pass, &detail.into(), None);
    }

    /// Records a warning and what would remove it.
    pub(super) fn warn(
        &mut self,
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(name, Status::Warn, &detail.into(), Some(&fix.into()));
    }

    /// Records a failure and its fix.
    pub(super) fn fail(
        &mut self,
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(name, Status::Fail, &detail.into(), Some(&fix.into()));
    }

    /// Records a check with the status given.
    pub(super) fn push(
        &mut self,
        name: &'static str,
        status: Status,
        detail: &str,
        fix: Option<&str>,
    ) {
        // Details quote certificates' names and the endpoint's text: one printable line each.
        self.checks.push(Check {
            name,
            status,
            detail: crate::display::remote_within(detail, 2000),
            fix: fix.map(|f| crate::display::remote_within(f, 2000)),
        });
    }

    /// The checks so far.
    pub(super) fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// How many failed.
    pub(super) fn failures(&self) -> usize {
        self.count(Status::Fail)
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// One line per check, `✔ name: detail`, with `fix: …` indented under failures and
    /// warnings, and a count at the end.
    pub(super) fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!("{} {}: {}\n", c.status.mark(), c.name, c.detail));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("    fix: {fix}\n"));
            }
        }
        out.push_str(&format!(
            "{} passed, {} warnings, {} failed\n",
            self.count(Status::Pass),
            self.count(Status::Warn),
            self.count(Status::Fail)
        ));
        out
    }

    /// `{"ok": bool, "checks": [{"name", "status", "detail", "fix"}]}`; `status` is
    /// `pass`, `warn` or `fail`, `fix` null when there is nothing to do.
    pub(super) fn json(&self) -> serde_json::Value {
        json!({
            "ok": self.failures() == 0,
            "checks": self.checks.iter().map(|c| json!({
                "name": c.name,
                "status": c.status.name(),
                "detail": c.detail,
                "fix": c.fix,
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_and_json() {
        let mut r = Report::default();
        r.pass("certificate", "parses");
        r.warn("key storage", "on disk", "use a token");
        r.fail("chain", "missing \"CN=x\"\u{1b}[2J", "pass --intermediates");
        assert_eq!(r.failures(), 1);
        let text = r.text();
        assert!(text.starts_with("✔ certificate: parses\n! key storage: on disk\n    fix: use a token\n✗ chain: missing \"CN=x\"\\u{1b}[2J\n"), "{text}");
        assert!(text.ends_with("1 passed, 1 warnings, 1 failed\n"), "{text}");
        let v = r.json();
        assert_eq!(v["ok"], false);
        assert_eq!(v["checks"][0]["fix"], serde_json::Value::Null);
        assert_eq!(v["checks"][2]["status"], "fail");
        assert_eq!(v["checks"][1]["fix"], "use a token");
    }
}
