//! `serve --metrics`: a real serve against the emulator, scraped with a real HTTP client,
//! the text parsed by the Prometheus Python client (`text_string_to_metric_families`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::serve::{Daemon, http, imds_credentials, role_name, serve_args};

/// The address of the metrics listener, from the log line.
fn metrics_addr(d: &mut Daemon) -> String {
    let line = d.wait_for("metrics on http://", Duration::from_secs(10));
    let rest = &line[line.find("http://").expect("url") + 7..];
    rest[..rest.find('/').expect("slash")].to_owned()
}

/// Scrapes `/metrics` and parses it with the Prometheus client: one
/// `name{labels} value` line per sample, labels sorted, for easy matching.
fn scrape(addr: &str) -> Vec<String> {
    let r = http()
        .get(format!("http://{addr}/metrics"))
        .send()
        .expect("scrape");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().expect("body");
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{f.type} {s.name}{{{labels}}} {s.value}")
"#;
    let mut child = Command::new(python())
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python");
    assert_exit(&out, 0);
    stdout(&out).lines().map(str::to_owned).collect()
}

/// The value of the sample starting with `prefix` (type, name and labels), if present.
fn value(samples: &[String], prefix: &str) -> Option<f64> {
    samples.iter().find(|s| s.starts_with(prefix)).map(|s| {
        s.rsplit(' ')
            .next()
            .expect("value")
            .parse()
            .expect("number")
    })
}

#[test]
fn metrics_count_refreshes_failures_and_requests_and_healthz_follows_the_credentials() {
    let w = World::new(&[]);
    let leaf = w.leaf("metrics", KeyKind::P256);
    let extra = [
        "--metrics",
        "127.0.0.1:0",
        "--max-attempts",
        "2",
        "--request-timeout",
        "1",
        "--session-duration",
        "900",
    ];
    let mut d = Daemon::start(w.dir.path(), &serve_args(&w, &leaf, &extra), &[]);
    let maddr = metrics_addr(&mut d);
    let role = format!("role=\"{}\"", role_name());

    let s = scrape(&maddr);
    let left = value(
        &s,
        &format!("gauge ra_signer_credentials_expiry_seconds{{{role}}}"),
    )
    .unwrap_or_else(|| panic!("no expiry gauge: {s:?}"));
    assert!(left > 0.0 && left <= 900.0, "{left}");
    assert_eq!(
        value(&s, &format!("counter ra_signer_refreshes_total{{{role}}}")),
        Some(0.0)
    );
    assert!(
        value(
            &s,
            &format!("gauge ra_signer_create_session_duration_seconds{{{role}}}")
        )
        .is_some_and(|v| v > 0.0)
    );
    assert!(
        s.iter()
            .any(|l| l.starts_with("gauge ra_signer_build_info{version=")),
        "{s:?}"
    );

    // A refresh is counted.
    d.refresh_now("refreshed the credentials of role");
    let s = scrape(&maddr);
    assert_eq!(
        value(&s, &format!("counter ra_signer_refreshes_total{{{role}}}")),
        Some(1.0)
    );

    // A failed refresh is counted by class; the old credentials keep /healthz at 200.
    w.emulator.set_faults(&["status=500"]);
    d.refresh_now(&format!("refresh 1 of role {} failed", role_name()));
    let s = scrape(&maddr);
    assert_eq!(
        value(
            &s,
            &format!("counter ra_signer_refresh_failures_total{{class=\"network\",{role}}}")
        ),
        Some(1.0),
        "{s:?}"
    );
    let h = http()
        .get(format!("http://{maddr}/healthz"))
        .send()
        .expect("healthz");
    assert_eq!(h.status(), 200);
    assert_eq!(h.text().expect("body"), "ok\n");
    w.emulator.set_faults(&[]);

    // Requests on the IMDS listener: a token PUT and a credentials GET (200s), an
    // unauthenticated GET (401), a random path as route "other", never the path itself.
    let (status, _) = imds_credentials(&d.url(), role_name());
    assert_eq!(status, 200);
    let c = http();
    let token = crate::serve::imds_token(&c, &d.url());
    let r = c
        .get(format!("{}/random-path-7f3a9", d.url()))
        .header("X-aws-ec2-metadata-token", &token)
        .send()
        .expect("GET");
    assert_eq!(r.status(), 404);
    let s = scrape(&maddr);
    let req = |route: &str, status: &str| {
        value(
            &s,
            &format!(
                "counter ra_signer_http_requests_total{{route=\"{route}\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(req("token", "200"), Some(2.0), "{s:?}");
    assert_eq!(req("role_credentials", "200"), Some(1.0), "{s:?}");
    assert_eq!(req("other", "404"), Some(1.0), "{s:?}");
    assert!(!s.iter().any(|l| l.contains("random-path")), "{s:?}");
    // The metrics listener is not counted, and holds no secret.
    let (_, creds) = imds_credentials(&d.url(), role_name());
    let text = http()
        .get(format!("http://{maddr}/metrics"))
        .send()
        .expect("scrape")
        .text()
        .expect("text");
    for k in ["AccessKeyId", "SecretAccessKey", "Token"] {
        assert!(
            !text.contains(creds[k].as_str().expect("str")),
            "{k} in metrics"
        );
    }

    // Routes and methods of the metrics listener.
    assert_eq!(
        http()
            .get(format!("http://{maddr}/latest/api/token"))
            .send()
            .expect("GET")
            .status(),
        404
    );
    assert_eq!(
        http()
            .post(format!("http://{maddr}/metrics"))
            .send()
            .expect("POST")
            .status(),
        405
    );

    // A huge request on the metrics port is refused, and the IMDS listener still answers.
    let mut big = TcpStream::connect(&maddr).expect("connect");
    big.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = big.write_all(huge.as_bytes());
    let mut answer = Vec::new();
    let _ = big.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (status, _) = imds_credentials(&d.url(), role_name());
    assert_eq!(status, 200);
}

#[test]
fn non_loopback_metrics_is_refused_before_any_signature() {
    let w = World::new(&[]);
    let leaf = w.leaf("metrics-bind", KeyKind::P256);
    for addr in ["0.0.0.0:9912", "10.1.2.3:9912"] {
        let out = run(ra_signer(w.dir.path()).args(serve_args(
            &w,
            &leaf,
            &["--metrics", addr, "--hop-limit", "1"],
        )));
        assert_exit(&out, 2);
        let err = stderr(&out);
        assert!(
            err.contains("is not a loopback address") && err.contains("hint:"),
            "{err}"
        );
    }
    assert_eq!(w.emulator.stats()["requests"], 0, "nothing signed");
}
