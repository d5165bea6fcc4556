//! Which endpoint: the partition table and the resolver against botocore's own endpoint
//! provider and clients, then the real `ra-signer` sent to the emulator by the settings every
//! AWS SDK honours (no `--endpoint`), and the AWS CLI and boto3 reading the endpoint from the
//! same config file as the `credential_process` line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ra_signer::config::Region;
use ra_signer::endpoint::{self, ConfigFile, Env, Flags, Inputs};

use crate::common::*;
use crate::real_clients::{aws_client, boto3_credentials};

/// Runs `script` in the test virtualenv with `input` on stdin; returns its stdout as JSON.
fn python_json(script: &str, input: &serde_json::Value) -> serde_json::Value {
    let dir = tempdir();
    let mut cmd = Command::new(python());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start python");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(input.to_string().as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("python");
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).expect("python JSON")
}

/// Regions of `p` that only its regex places there: a listed region with its number
/// changed (`us-gov-west-1` → `us-gov-west-97`), and with its middle word changed too
/// (`us-gov-zzz-9`).
fn regex_only_regions(p: &endpoint::Partition) -> Vec<String> {
    let base = p
        .regions
        .iter()
        .find(|r| !r.ends_with("-global"))
        .expect("a listed region");
    let mut parts: Vec<&str> = base.split('-').collect();
    let n = parts.len();
    parts[n - 1] = "97";
    let new_number = parts.join("-");
    parts[n - 2] = "zzz";
    parts[n - 1] = "9";
    vec![new_number, parts.join("-")]
}

const BOTOCORE_TABLE: &str = r#"
import json, sys
from botocore.loaders import create_loader
from botocore.endpoint_provider import EndpointProvider
from botocore.exceptions import EndpointResolutionError
loader = create_loader()
provider = EndpointProvider(
    loader.load_service_model("rolesanywhere", "endpoint-rule-set-1"),
    loader.load_data("partitions"),
)
out = []
for case in json.load(sys.stdin):
    try:
        ep = provider.resolve_endpoint(
            Region=case["region"], UseFIPS=case["fips"], UseDualStack=case["dual"]
        )
        out.append({"url": ep.url})
    except EndpointResolutionError as e:
        out.append({"error": e.kwargs["msg"]})
print(json.dumps(out))
"#;

/// Every partition, listed and regex-only regions, FIPS and dual-stack on and off: our URL
/// (or our refusal) is botocore's.
#[test]
fn partition_table_matches_botocores_endpoint_provider() {
    let mut cases = Vec::new();
    for p in endpoint::partitions() {
        let regex_only = regex_only_regions(p);
        for r in &regex_only {
            assert!(!p.regions.contains(&r.as_str()));
            assert_eq!(
                endpoint::partition_of(r).0.id,
                p.id,
                "{r} reaches {} by its regex",
                p.id
            );
        }
        let regions = p
            .regions
            .iter()
            .map(|r| r.to_string())
            .filter(|r| !r.ends_with("-global"))
            .chain(regex_only);
        for region in regions {
            for fips in [false, true] {
                for dual in [false, true] {
                    cases.push((p.id, region.clone(), fips, dual));
                }
            }
        }
    }
    // A region no partition knows goes to aws, as in botocore.
    for fips in [false, true] {
        cases.push(("aws", "xx-zzz-9".into(), fips, false));
    }
    let input: Vec<serde_json::Value> = cases
        .iter()
        .map(|(_, r, f, d)| serde_json::json!({"region": r, "fips": f, "dual": d}))
        .collect();
    let theirs = python_json(BOTOCORE_TABLE, &serde_json::Value::from(input));
    let theirs = theirs.as_array().expect("array");
    assert_eq!(theirs.len(), cases.len());
    assert!(cases.len() > 200, "{} cases", cases.len());
    for ((partition, region, fips, dual), want) in cases.iter().zip(theirs) {
        let arn_region: Region = "us-east-1".parse().expect("region");
        let env_pairs: Vec<(&str, &str)> = [
            (*fips).then_some((endpoint::ENV_USE_FIPS_ENDPOINT, "true")),
            (*dual).then_some((endpoint::ENV_USE_DUALSTACK_ENDPOINT, "true")),
        ]
        .into_iter()
        .flatten()
        .collect();
        let env = Env::from_pairs(env_pairs);
        let ours = endpoint::resolve(&Inputs {
            flags: Flags {
                region: Some(region),
                ..Flags::default()
            },
            arn_region: &arn_region,
            arn_partition: partition,
            env: &env,
            config: None,
        });
        let label = format!("{partition} {region} fips={fips} dual={dual}");
        match (&ours, want.get("url").and_then(|u| u.as_str())) {
            (Ok(r), Some(url)) => {
                assert_eq!(r.url, url, "{label}");
                assert_eq!(r.region.as_str(), region, "{label}: signing region");
            }
            (Err(e), None) => {
                let msg = want["error"].as_str().expect("error text");
                assert!(e.message.contains(msg), "{label}: ours {e}, botocore {msg}");
            }
            _ => panic!("{label}: ours {ours:?}, botocore {want}"),
        }
        // The pure lookup agrees with the resolver.
        let direct = endpoint::partition_endpoint(region, *fips, *dual).map(|(u, _)| u);
        assert_eq!(direct.ok(), ours.ok().map(|r| r.url), "{label}");
    }
}

/// Partitions that lack FIPS, dual-stack or both (none ships today): the rule set's refusals,
/// as botocore's provider gives them for the same partition data.
#[test]
fn unsupported_combinations_are_refused_as_botocore_refuses_them() {
    let mut partitions = Vec::new();
    let mut ours = Vec::new();
    for (i, (fips_ok, dual_ok)) in [(false, false), (false, true), (true, false), (true, true)]
        .into_iter()
        .enumerate()
    {
        let p = endpoint::Partition {
            id: ["t-none", "t-dual", "t-fips", "t-both"][i],
            region_regex: "",
            regions: &[],
            dns_suffix: "example.test",
            dual_stack_dns_suffix: "dual.example.test",
            supports_fips: fips_ok,
            supports_dual_stack: dual_ok,
            implicit_global_region: "t-east-1",
        };
        let prefix = format!("t{i}");
        partitions.push(serde_json::json!({
            "id": p.id,
            "regionRegex": format!("^{prefix}\\-\\w+\\-\\d+$"),
            "regions": {},
            "outputs": {
                "name": p.id, "dnsSuffix": p.dns_suffix,
                "dualStackDnsSuffix": p.dual_stack_dns_suffix,
                "supportsFIPS": fips_ok, "supportsDualStack": dual_ok,
                "implicitGlobalRegion": p.implicit_global_region,
            },
        }));
        for fips in [false, true] {
            for dual in [false, true] {
                let region = format!("{prefix}-east-1");
                ours.push((
                    region.clone(),
                    fips,
                    dual,
                    endpoint::endpoint_in(&p, &region, fips, dual),
                ));
            }
        }
    }
    let script = r#"
import json, sys
from botocore.loaders import create_loader
from botocore.endpoint_provider import EndpointProvider
from botocore.exceptions import EndpointResolutionError
data = json.load(sys.stdin)
provider = EndpointProvider(
    create_loader().load_service_model("rolesanywhere", "endpoint-rule-set-1"),
    {"version": "1.1", "partitions": data["partitions"]},
)
out = []
for case in data["cases"]:
    try:
        out.append({"url": provider.resolve_endpoint(Region=case[0], UseFIPS=case[1], UseDualStack=case[2]).url})
    except EndpointResolutionError as e:
        out.append({"error": e.kwargs["msg"]})
print(json.dumps(out))
"#;
    let cases: Vec<serde_json::Value> = ours
        .iter()
        .map(|(r, f, d, _)| serde_json::json!([r, f, d]))
        .collect();
    let theirs = python_json(
        script,
        &serde_json::json!({"partitions": partitions, "cases": cases}),
    );
    let mut refusals = 0;
    for ((region, fips, dual, ours), want) in ours.iter().zip(theirs.as_array().expect("array")) {
        let got = match ours {
            Ok(url) => serde_json::json!({ "url": url }),
            Err(e) => {
                refusals += 1;
                serde_json::json!({ "error": e })
            }
        };
        assert_eq!(&got, want, "{region} fips={fips} dual={dual}");
    }
    // No FIPS nor dual-stack: 3 of 4 refused; only one of them: 2 each; both: none.
    assert_eq!(refusals, 7, "refused where unsupported");
}

/// The `*-global` names are listed regions in botocore's table (for services with a global
/// endpoint) but are not regions one signs for: refused as usage errors where botocore
/// would build a host for them.
#[test]
fn global_pseudo_regions_are_refused() {
    let env = Env::default();
    let arn_region: Region = "us-east-1".parse().expect("region");
    for p in endpoint::partitions() {
        for r in p.regions.iter().filter(|r| r.ends_with("-global")) {
            let e = endpoint::resolve(&Inputs {
                flags: Flags {
                    region: Some(r),
                    ..Flags::default()
                },
                arn_region: &arn_region,
                arn_partition: p.id,
                env: &env,
                config: None,
            })
            .expect_err(r);
            assert!(
                e.message.contains("is not an AWS region name")
                    || e.message.contains("global pseudo-region"),
                "{r}: {e}"
            );
        }
    }
}

/// The checked-in table holds what scripts/gen-endpoints.py makes from the virtualenv's
/// botocore (a botocore upgrade that changes the data fails here until regenerated).
#[test]
fn checked_in_table_is_the_generators_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python())
        .arg(root.join("scripts/gen-endpoints.py"))
        .arg("--json")
        .output()
        .expect("run generator");
    assert_exit(&out, 0);
    let fresh: serde_json::Value = serde_json::from_slice(&out.stdout).expect("generator JSON");
    let rule = |r: &endpoint::Rule| match r {
        endpoint::Rule::Url(u) => serde_json::json!({ "Url": u }),
        endpoint::Rule::Error(e) => serde_json::json!({ "Error": e }),
    };
    let ours = serde_json::json!({
        "botocore": endpoint::table_version(),
        "partitions": endpoint::partitions().iter().map(|p| serde_json::json!({
            "id": p.id,
            "region_regex": p.region_regex,
            "regions": p.regions,
            "dns_suffix": p.dns_suffix,
            "dual_stack_dns_suffix": p.dual_stack_dns_suffix,
            "supports_fips": p.supports_fips,
            "supports_dual_stack": p.supports_dual_stack,
            "implicit_global_region": p.implicit_global_region,
        })).collect::<Vec<_>>(),
        "rules": endpoint::rules().iter().map(|a| a.iter().map(|b| b.iter().map(|c| c.iter().map(rule).collect::<Vec<_>>()).collect::<Vec<_>>()).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "listed_fips_regions": endpoint::listed_fips_regions(),
    });
    assert_eq!(
        fresh, ours,
        "run scripts/gen-endpoints.py and commit src/endpoint/partitions.rs"
    );
}

/// botocore's real client (config store, config file, pseudo-regions) chooses the URL and
/// signing region for each scenario; so must the resolver, reading the same config text.
const BOTOCORE_CLIENT: &str = r#"
import json, os, sys, tempfile, urllib.parse
import botocore.session

class Sent(Exception):
    pass

def stop(request, **kwargs):
    auth = request.headers["Authorization"]
    raise Sent(request.url, auth.decode() if isinstance(auth, bytes) else auth)

out = []
base = dict(os.environ)
for case in json.load(sys.stdin):
    os.environ.clear()
    os.environ.update(base)
    with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as f:
        f.write(case["config"])
    os.environ["AWS_CONFIG_FILE"] = f.name
    os.environ.update(case["env"])
    s = botocore.session.Session()
    c = s.create_client(
        "rolesanywhere", region_name=case["region"],
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
    )
    c.meta.events.register("before-send", stop)
    try:
        c.list_trust_anchors()
        out.append({"error": "no request"})
    except Sent as e:
        url, auth = e.args
        u = urllib.parse.urlsplit(url)
        scope = auth.split("Credential=")[1].split(",")[0].split("/")
        out.append({"url": f"{u.scheme}://{u.netloc}", "region": scope[2]})
    os.unlink(f.name)
print(json.dumps(out))
"#;

/// A region, environment variables and config-file text.
type Scenario = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    &'static str,
);

#[test]
fn resolver_agrees_with_botocores_client() {
    let services = "[default]\nservices = local\nendpoint_url = https://profile.example\n\n[services local]\n# a comment inside\nrolesanywhere =\n  endpoint_url = https://services.example:8443\n\n\tother = 1\nsts =\n  endpoint_url = https://sts.example\n";
    let scenarios: Vec<Scenario> = vec![
        ("us-east-1", vec![], ""),
        ("us-gov-west-1", vec![], ""),
        (
            "cn-northwest-1",
            vec![("AWS_USE_DUALSTACK_ENDPOINT", "true")],
            "",
        ),
        ("fips-us-east-1", vec![], ""),
        ("us-gov-west-1-fips", vec![], ""),
        (
            "us-east-2-fips",
            vec![("AWS_USE_DUALSTACK_ENDPOINT", "TRUE")],
            "",
        ),
        (
            "us-east-1",
            vec![
                ("AWS_ENDPOINT_URL_ROLESANYWHERE", "https://svc-env.example"),
                ("AWS_ENDPOINT_URL", "https://global-env.example"),
            ],
            services,
        ),
        (
            "us-east-1",
            vec![("AWS_ENDPOINT_URL", "http://global-env.example:81")],
            services,
        ),
        ("eu-west-1", vec![], services),
        (
            "us-east-1",
            vec![("AWS_PROFILE", "ra")],
            "[profile ra]\nENDPOINT_URL : https://colon.example\n[default]\nendpoint_url = https://default.example\n",
        ),
        (
            "us-east-1",
            vec![("AWS_PROFILE", "my ra")],
            "[profile 'my ra']\nservices = my svc\n[services \"my svc\"]\nrolesanywhere =\n    endpoint_url = https://quoted.example\n",
        ),
        (
            "us-east-1",
            vec![
                ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
                ("AWS_ENDPOINT_URL", "https://global-env.example"),
            ],
            services,
        ),
        (
            "us-east-1",
            vec![],
            "[default]\nendpoint_url = https://x.example\nignore_configured_endpoint_urls = True\nuse_fips_endpoint = true\n",
        ),
        (
            "us-west-2",
            vec![("AWS_USE_FIPS_ENDPOINT", "false")],
            "[default]\nuse_fips_endpoint = true\nuse_dualstack_endpoint = true\n",
        ),
        (
            "us-east-1",
            vec![("AWS_USE_FIPS_ENDPOINT", "true")],
            "[default]\nendpoint_url = https://wins-over-fips.example\n",
        ),
        (
            "us-east-1",
            vec![],
            "[DEFAULT]\nendpoint_url = https://inherited.example\n[default]\nregion = us-east-1\n",
        ),
        (
            "us-east-1",
            vec![],
            "[default]\nendpoint_url = https://first.example\n[profile default]\nendpoint_url = https://second.example\n",
        ),
    ];
    let input: Vec<serde_json::Value> = scenarios
        .iter()
        .map(|(region, env, config)| {
            let env: serde_json::Map<String, serde_json::Value> = env
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
                .collect();
            serde_json::json!({"region": region, "env": env, "config": config})
        })
        .collect();
    let theirs = python_json(BOTOCORE_CLIENT, &serde_json::Value::from(input));
    let theirs = theirs.as_array().expect("array");
    let arn_region: Region = "us-east-1".parse().expect("region");
    for ((region, env, config), want) in scenarios.iter().zip(theirs) {
        let file = ConfigFile::parse(Path::new("/cfg"), config).expect("config parses");
        let env = Env::from_pairs(env.iter().copied());
        let plain = region.replace("fips-", "").replace("-fips", "");
        let partition = endpoint::partition_of(&plain).0.id;
        let ours = endpoint::resolve(&Inputs {
            flags: Flags {
                region: Some(region),
                ..Flags::default()
            },
            arn_region: &arn_region,
            arn_partition: partition,
            env: &env,
            config: Some(&file),
        })
        .unwrap_or_else(|e| panic!("{region} {config:?}: {e}"));
        assert_eq!(
            serde_json::json!({"url": ours.url, "region": ours.region.as_str()}),
            *want,
            "{region} {env:?} {config:?}: {}",
            ours.why
        );
    }
}

// --- the real binary against the emulator, no --endpoint ---

/// `credential-process` flags for the emulator without `--endpoint`.
fn no_endpoint_args(w: &World, leaf: &Leaf) -> Vec<String> {
    let mut args = vec!["credential-process".to_owned()];
    args.extend(leaf.file_args());
    args.extend(
        [
            "--trust-anchor-arn",
            TRUST_ANCHOR_ARN,
            "--profile-arn",
            PROFILE_ARN,
            "--role-arn",
            ROLE_ARN,
            "--ca-bundle",
        ]
        .map(String::from),
    );
    args.push(w.emulator.tls_ca.display().to_string());
    args.extend(["--max-attempts", "1", "--connect-timeout", "2"].map(String::from));
    args
}

/// An address nothing listens on.
const DEAD: &str = "https://127.0.0.1:1";

fn signer(w: &World, leaf: &Leaf, env: &[(&str, &str)], extra: &[&str]) -> Output {
    let mut cmd = ra_signer(w.dir.path());
    cmd.args(no_endpoint_args(w, leaf)).args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

fn write_config(w: &World, name: &str, text: &str) -> PathBuf {
    let path = w.dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

fn one_error_line(o: &Output) -> String {
    assert_exit(o, 2);
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].starts_with("ra-signer: error: "), "{err}");
    assert!(o.stdout.is_empty());
    err
}

#[test]
fn endpoint_from_aws_endpoint_url_rolesanywhere_then_aws_endpoint_url() {
    let w = World::new(&[]);
    let leaf = w.leaf("env-endpoint", KeyKind::P256);
    let url = w.emulator.url.as_str();
    // The service's variable beats the global one, and both beat the config file.
    let config = write_config(&w, "cfg", &format!("[default]\nendpoint_url = {DEAD}\n"));
    let cfg = config.to_str().expect("utf-8");
    let out = signer(
        &w,
        &leaf,
        &[
            ("AWS_ENDPOINT_URL_ROLESANYWHERE", url),
            ("AWS_ENDPOINT_URL", DEAD),
            ("AWS_CONFIG_FILE", cfg),
        ],
        &["--debug"],
    );
    assert_process_json(&out);
    assert!(
        stderr(&out).contains(&format!(
            "ra-signer: debug: endpoint {url} (from $AWS_ENDPOINT_URL_ROLESANYWHERE), signing region us-east-1"
        )),
        "{}",
        stderr(&out)
    );
    let out = signer(
        &w,
        &leaf,
        &[("AWS_ENDPOINT_URL", url), ("AWS_CONFIG_FILE", cfg)],
        &["--debug"],
    );
    assert_process_json(&out);
    assert!(stderr(&out).contains("(from $AWS_ENDPOINT_URL)"));
    // --endpoint beats them all.
    let out = signer(
        &w,
        &leaf,
        &[("AWS_ENDPOINT_URL_ROLESANYWHERE", DEAD)],
        &["--endpoint", url, "--debug"],
    );
    assert_process_json(&out);
    assert!(stderr(&out).contains("(from --endpoint)"));
    assert_eq!(w.emulator.stats()["issued"], 3);
}

#[test]
fn endpoint_from_the_config_file_services_section_and_profile() {
    let w = World::new(&[]);
    let leaf = w.leaf("cfg-endpoint", KeyKind::Rsa2048);
    let url = &w.emulator.url;
    // ~/.aws/config by default (HOME is the test directory), [default] profile.
    std::fs::create_dir_all(w.dir.path().join(".aws")).expect("mkdir");
    std::fs::write(
        w.dir.path().join(".aws/config"),
        format!(
            "[default]\nregion = us-east-1\nendpoint_url = {url}\n\n[profile ra]\nservices = emu\nendpoint_url = {DEAD}\n\n[services emu]\nrolesanywhere =\n  endpoint_url = {url}\n"
        ),
    )
    .expect("write");
    let out = signer(&w, &leaf, &[], &["--debug"]);
    assert_process_json(&out);
    let err = stderr(&out);
    assert!(
        err.contains("(from endpoint_url of profile default in ") && err.contains(".aws/config"),
        "{err}"
    );
    // AWS_PROFILE picks [profile ra], whose services section beats its own endpoint_url.
    let out = signer(&w, &leaf, &[("AWS_PROFILE", "ra")], &["--debug"]);
    assert_process_json(&out);
    let err = stderr(&out);
    assert!(
        err.contains("(from endpoint_url under rolesanywhere in [services emu] of ")
            && err.contains("(profile ra)"),
        "{err}"
    );
    // AWS_CONFIG_FILE names another file.
    let other = write_config(&w, "other", &format!("[profile x]\nendpoint_url={url}\n"));
    let out = signer(
        &w,
        &leaf,
        &[
            ("AWS_PROFILE", "x"),
            ("AWS_CONFIG_FILE", other.to_str().expect("utf-8")),
        ],
        &[],
    );
    assert_process_json(&out);
    assert_eq!(w.emulator.stats()["issued"], 3);
}

#[test]
fn ignore_configured_endpoint_urls_sends_to_the_partition_endpoint() {
    let w = World::new(&[]);
    let leaf = w.leaf("ignore", KeyKind::P256);
    let url = w.emulator.url.as_str();
    let config = write_config(&w, "cfg", &format!("[default]\nendpoint_url = {url}\n"));
    // A refusing proxy keeps the public endpoint from being reached for real.
    let env = [
        ("AWS_ENDPOINT_URL", url),
        ("AWS_CONFIG_FILE", config.to_str().expect("utf-8")),
        ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ("HTTPS_PROXY", "http://127.0.0.1:1"),
    ];
    let out = signer(&w, &leaf, &env, &["--debug"]);
    assert_exit(&out, 5);
    let err = stderr(&out);
    assert!(
        err.contains("ra-signer: debug: endpoint https://rolesanywhere.us-east-1.amazonaws.com (built for partition aws")
            && err.contains("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true"),
        "{err}"
    );
    // The flag is not a configured URL: it still wins.
    let out = signer(&w, &leaf, &env, &["--endpoint", url]);
    assert_process_json(&out);
    // And in the file.
    let config = write_config(
        &w,
        "cfg2",
        &format!("[default]\nendpoint_url = {url}\nignore_configured_endpoint_urls = true\n"),
    );
    let out = signer(
        &w,
        &leaf,
        &[
            ("AWS_CONFIG_FILE", config.to_str().expect("utf-8")),
            ("HTTPS_PROXY", "http://127.0.0.1:1"),
        ],
        &["--debug"],
    );
    assert_exit(&out, 5);
    assert!(stderr(&out).contains("ignore_configured_endpoint_urls of profile default"));
    assert_eq!(w.emulator.stats()["issued"], 1);
}

#[test]
fn fips_settings_choose_the_fips_host_signed_for_the_plain_region() {
    let w = World::new(&[]);
    let leaf = w.leaf("fips", KeyKind::P256);
    let proxy = [("HTTPS_PROXY", "http://127.0.0.1:1")];
    for (env, extra, host) in [
        (
            vec![("AWS_USE_FIPS_ENDPOINT", "true")],
            vec![],
            "https://rolesanywhere-fips.us-east-1.amazonaws.com (",
        ),
        (
            vec![("AWS_USE_DUALSTACK_ENDPOINT", "true")],
            vec![],
            "https://rolesanywhere.us-east-1.api.aws (",
        ),
        (
            vec![],
            vec!["--region", "fips-us-east-1"],
            "https://rolesanywhere-fips.us-east-1.amazonaws.com (",
        ),
        (
            vec![],
            vec!["--region", "us-east-2-fips"],
            "https://rolesanywhere-fips.us-east-2.amazonaws.com (",
        ),
    ] {
        let mut all = env.clone();
        all.extend(proxy);
        let mut flags = extra.clone();
        flags.push("--debug");
        let out = signer(&w, &leaf, &all, &flags);
        assert_exit(&out, 5);
        let err = stderr(&out);
        let line = err
            .lines()
            .find(|l| l.starts_with("ra-signer: debug: endpoint https"))
            .unwrap_or_else(|| panic!("no endpoint line: {err}"));
        assert!(line.contains(host), "{env:?} {extra:?}: {line}");
        let plain = if extra.contains(&"us-east-2-fips") {
            "us-east-2"
        } else {
            "us-east-1"
        };
        assert!(line.ends_with(&format!("signing region {plain}")), "{line}");
    }
}

#[test]
fn junk_values_are_usage_errors_on_one_line() {
    let w = World::new(&[]);
    let leaf = w.leaf("junk", KeyKind::P256);
    let big = w.dir.path().join("big-config");
    std::fs::write(&big, "#".repeat(1024 * 1024 + 1)).expect("write");
    let bad_bool = write_config(
        &w,
        "bad-bool",
        "[default]\nuse_dualstack_endpoint = maybe\n",
    );
    let bad_ini = write_config(&w, "bad-ini", "[default]\nthis line has no delimiter\n");
    let no_services = write_config(&w, "no-svc", "[default]\nservices = missing\n");
    for (env, want) in [
        (vec![("AWS_ENDPOINT_URL", "not a url")], "is not a URL"),
        (
            vec![("AWS_ENDPOINT_URL_ROLESANYWHERE", "ftp://127.0.0.1:1")],
            "must start with https:// or http://",
        ),
        (vec![("AWS_ENDPOINT_URL", "https://h.example/x?y")], "query"),
        (
            vec![("AWS_USE_FIPS_ENDPOINT", "yes")],
            "$AWS_USE_FIPS_ENDPOINT is \"yes\": expected true or false",
        ),
        (
            vec![("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "1")],
            "$AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        ),
        (
            vec![("AWS_CONFIG_FILE", bad_bool.to_str().expect("utf-8"))],
            "use_dualstack_endpoint of profile default in",
        ),
        (
            vec![("AWS_CONFIG_FILE", bad_ini.to_str().expect("utf-8"))],
            "line 2: not a [section] header",
        ),
        (
            vec![("AWS_CONFIG_FILE", big.to_str().expect("utf-8"))],
            "larger than 1024 KiB",
        ),
        (
            vec![("AWS_CONFIG_FILE", no_services.to_str().expect("utf-8"))],
            "[services missing]",
        ),
    ] {
        let out = signer(&w, &leaf, &env, &[]);
        let err = one_error_line(&out);
        assert!(err.contains(want), "{env:?}: {err}");
    }
    assert_eq!(w.emulator.stats()["requests"], 0);
}

#[test]
fn user_and_password_in_an_endpoint_url_are_never_echoed() {
    let w = World::new(&[]);
    let leaf = w.leaf("userinfo", KeyKind::P256);
    let port = w.emulator.url.rsplit(':').next().expect("port");
    let secret_url = format!("https://alice:s3cr3t-pw@127.0.0.1:{port}");
    let config = write_config(
        &w,
        "cfg",
        &format!("[default]\nendpoint_url = {secret_url}\n"),
    );
    let cfg = config.to_str().expect("utf-8");
    for (env, extra) in [
        (vec![("AWS_ENDPOINT_URL", secret_url.as_str())], vec![]),
        (
            vec![("AWS_ENDPOINT_URL_ROLESANYWHERE", secret_url.as_str())],
            vec![],
        ),
        (vec![("AWS_CONFIG_FILE", cfg)], vec![]),
        (vec![], vec!["--endpoint", secret_url.as_str()]),
        (vec![], vec!["--endpoint", "alice:s3cr3t-pw@127.0.0.1:1"]),
    ] {
        let mut flags = extra.clone();
        flags.push("--debug");
        let out = signer(&w, &leaf, &env, &flags);
        let err = one_error_line(&out);
        assert!(err.contains("user name or password"), "{err}");
        assert!(
            !err.contains("s3cr3t") && !err.contains("alice"),
            "{env:?} {extra:?}: {err}"
        );
        assert!(err.contains("***@127.0.0.1"), "{err}");
    }
    assert_eq!(w.emulator.stats()["requests"], 0);
}

#[test]
fn fips_flag_with_a_configured_url_is_warned_about() {
    let w = World::new(&[]);
    let leaf = w.leaf("fips-warn", KeyKind::P256);
    let out = signer(
        &w,
        &leaf,
        &[("AWS_ENDPOINT_URL", &w.emulator.url)],
        &["--fips"],
    );
    assert_process_json(&out);
    assert!(
        stderr(&out).contains(
            "ra-signer: warning: --fips is ignored: the endpoint URL comes from $AWS_ENDPOINT_URL"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn update_and_serve_take_the_endpoint_from_the_environment_too() {
    let w = World::new(&[]);
    let leaf = w.leaf("update-env", KeyKind::P256);
    let creds = w.dir.path().join("credentials");
    let mut args: Vec<String> = vec!["update".into(), "--once".into()];
    args.extend(no_endpoint_args(&w, &leaf).into_iter().skip(1));
    let out = run(ra_signer(w.dir.path())
        .args(&args)
        .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
        .env("AWS_ENDPOINT_URL_ROLESANYWHERE", &w.emulator.url));
    assert_exit(&out, 0);
    assert!(
        std::fs::read_to_string(&creds)
            .expect("credentials")
            .contains("aws_session_token")
    );
    // serve refuses a bad URL from the environment before it binds or signs.
    let mut args: Vec<String> = vec!["serve".into(), "--port".into(), "0".into()];
    args.extend(no_endpoint_args(&w, &leaf).into_iter().skip(1));
    let out = run(ra_signer(w.dir.path())
        .args(&args)
        .env("AWS_ENDPOINT_URL", "gopher://127.0.0.1:1"));
    let err = one_error_line(&out);
    assert!(err.contains("$AWS_ENDPOINT_URL"), "{err}");
    assert_eq!(w.emulator.stats()["issued"], 1);
}

// --- real clients ---

/// The config file a user would write: the `credential_process` line without
/// `--endpoint`, and the endpoint in a `[services]` section of the same file.
fn services_config(w: &World, leaf: &Leaf, profile_header: &str) -> PathBuf {
    let args = no_endpoint_args(w, leaf);
    let line: Vec<String> = std::iter::once(bin("ra-signer").display().to_string())
        .chain(args)
        .collect();
    write_config(
        w,
        "aws-config",
        &format!(
            "{profile_header}\ncredential_process = {}\nregion = us-east-1\nservices = local-ra\n\n[services local-ra]\nrolesanywhere =\n  endpoint_url = {}\n",
            line.join(" "),
            w.emulator.url
        ),
    )
}

#[test]
fn aws_cli_and_boto3_with_the_endpoint_in_the_services_section() {
    let w = World::new(&[]);
    let leaf = w.leaf("svc-cli", KeyKind::P256);
    // `[profile ra]`: the CLI does not tell the process its profile, so the user sets
    // AWS_PROFILE (which the process inherits) rather than --profile.
    let config = services_config(&w, &leaf, "[profile ra]");
    let out = aws_client("aws", w.dir.path(), &config)
        .args(["configure", "list"])
        .env("AWS_PROFILE", "ra")
        .output()
        .expect("run aws");
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("access_key") && l.contains("custom-process")),
        "{text}"
    );
    assert_eq!(w.emulator.stats()["issued"], 1);
    let got = boto3_credentials(w.dir.path(), &config, &[("AWS_PROFILE", Path::new("ra"))]);
    assert_issued_key(&got);
    assert_eq!(w.emulator.stats()["issued"], 2);
    // The same in [default], with nothing in the environment but the config file.
    let config = services_config(&w, &leaf, "[default]");
    let _ = aws_configure_list_default(w.dir.path(), &config);
    assert_eq!(w.emulator.stats()["issued"], 3);
}

fn aws_configure_list_default(dir: &Path, config: &Path) -> Output {
    let out = aws_client("aws", dir, config)
        .args(["configure", "list"])
        .output()
        .expect("run aws");
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("custom-process"), "{}", stdout(&out));
    out
}
