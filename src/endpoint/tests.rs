use super::*;

const CFG: &str = "/home/u/.aws/config";

fn cfg(text: &str) -> ConfigFile {
    ConfigFile::parse(Path::new(CFG), text).expect("config")
}

fn run(
    flags: Flags<'_>,
    env: &[(&str, &str)],
    config: Option<&ConfigFile>,
) -> Result<Resolved, ConfigError> {
    let region: Region = "us-east-1".parse().expect("region");
    resolve(&Inputs {
        flags,
        arn_region: &region,
        arn_partition: "aws",
        env: &Env::from_pairs(env.iter().copied()),
        config,
    })
}

fn url(flags: Flags<'_>, env: &[(&str, &str)], config: Option<&ConfigFile>) -> String {
    run(flags, env, config).expect("resolves").url
}

const NONE: Flags<'static> = Flags {
    endpoint: None,
    region: None,
    fips: false,
};

#[test]
fn the_partition_endpoint_by_default() {
    let r = run(NONE, &[], None).expect("resolves");
    assert_eq!(r.url, "https://rolesanywhere.us-east-1.amazonaws.com");
    assert_eq!(r.region.as_str(), "us-east-1");
    assert!(r.why.contains("partition aws"), "{}", r.why);
    assert!(r.warnings.is_empty());
}

#[test]
fn precedence_flag_env_service_env_global_services_profile() {
    let file = cfg(
        "[default]\nservices = s\nendpoint_url = https://profile.example\n[services s]\nrolesanywhere =\n  endpoint_url = https://services.example\n",
    );
    let flag = Flags {
        endpoint: Some("https://flag.example"),
        ..NONE
    };
    let both = [
        (ENV_ENDPOINT_URL_SERVICE, "https://service-env.example"),
        (ENV_ENDPOINT_URL, "https://global-env.example"),
    ];
    assert_eq!(url(flag, &both, Some(&file)), "https://flag.example");
    assert_eq!(url(NONE, &both, Some(&file)), "https://service-env.example");
    assert_eq!(
        url(NONE, &both[1..], Some(&file)),
        "https://global-env.example"
    );
    let r = run(NONE, &[], Some(&file)).expect("services");
    assert_eq!(r.url, "https://services.example");
    assert!(
        r.why.contains("[services s]") && r.why.contains(CFG),
        "{}",
        r.why
    );
    let top = cfg("[default]\nendpoint_url = https://profile.example\n");
    assert_eq!(url(NONE, &[], Some(&top)), "https://profile.example");
    // A services section without a rolesanywhere block falls through to the profile.
    let other = cfg(
        "[default]\nservices = s\nendpoint_url = https://p.example\n[services s]\nsts =\n  endpoint_url = https://sts.example\n",
    );
    assert_eq!(url(NONE, &[], Some(&other)), "https://p.example");
}

#[test]
fn aws_profile_chooses_the_profile() {
    let file = cfg(
        "[default]\nendpoint_url = https://default.example\n[profile ra]\nendpoint_url = https://ra.example\n",
    );
    assert_eq!(
        url(NONE, &[(ENV_PROFILE, "ra")], Some(&file)),
        "https://ra.example"
    );
    let r = run(NONE, &[(ENV_PROFILE, "missing")], Some(&file)).expect("missing profile");
    assert_eq!(r.url, "https://rolesanywhere.us-east-1.amazonaws.com");
    assert!(r.notes.iter().any(|n| n.contains("profile missing")));
}

#[test]
fn ignore_configured_endpoint_urls_keeps_only_the_flag() {
    let file = cfg("[default]\nendpoint_url = https://profile.example\n");
    let env = [
        (ENV_ENDPOINT_URL, "https://global-env.example"),
        (ENV_IGNORE_CONFIGURED_ENDPOINT_URLS, "TRUE"),
    ];
    assert_eq!(
        url(NONE, &env, Some(&file)),
        "https://rolesanywhere.us-east-1.amazonaws.com"
    );
    let flag = Flags {
        endpoint: Some("https://flag.example"),
        ..NONE
    };
    assert_eq!(url(flag, &env, Some(&file)), "https://flag.example");
    let in_file = cfg(
        "[default]\nendpoint_url = https://profile.example\nignore_configured_endpoint_urls = true\n",
    );
    assert_eq!(
        url(NONE, &[], Some(&in_file)),
        "https://rolesanywhere.us-east-1.amazonaws.com"
    );
    // The variable beats the file.
    assert_eq!(
        url(
            NONE,
            &[(ENV_IGNORE_CONFIGURED_ENDPOINT_URLS, "false")],
            Some(&in_file)
        ),
        "https://profile.example"
    );
}

#[test]
fn fips_and_dual_stack_from_every_source() {
    let fips = "https://rolesanywhere-fips.us-east-1.amazonaws.com";
    assert_eq!(url(Flags { fips: true, ..NONE }, &[], None), fips);
    assert_eq!(url(NONE, &[(ENV_USE_FIPS_ENDPOINT, "True")], None), fips);
    let file = cfg("[default]\nuse_fips_endpoint = true\nuse_dualstack_endpoint = true\n");
    assert_eq!(
        url(NONE, &[], Some(&file)),
        "https://rolesanywhere-fips.us-east-1.api.aws"
    );
    // The variables beat the file.
    assert_eq!(
        url(
            NONE,
            &[
                (ENV_USE_FIPS_ENDPOINT, "false"),
                (ENV_USE_DUALSTACK_ENDPOINT, "false")
            ],
            Some(&file)
        ),
        "https://rolesanywhere.us-east-1.amazonaws.com"
    );
    assert_eq!(
        url(NONE, &[(ENV_USE_DUALSTACK_ENDPOINT, "true")], None),
        "https://rolesanywhere.us-east-1.api.aws"
    );
}

#[test]
fn fips_pseudo_regions_sign_for_the_plain_region() {
    for pseudo in ["fips-us-east-1", "us-east-1-fips"] {
        let r = run(
            Flags {
                region: Some(pseudo),
                ..NONE
            },
            &[],
            None,
        )
        .expect(pseudo);
        assert_eq!(r.url, "https://rolesanywhere-fips.us-east-1.amazonaws.com");
        assert_eq!(r.region.as_str(), "us-east-1");
    }
}

#[test]
fn a_configured_url_wins_over_fips_and_the_flag_is_warned_about() {
    let env = [
        (ENV_ENDPOINT_URL, "http://127.0.0.1:8080"),
        (ENV_USE_FIPS_ENDPOINT, "true"),
    ];
    let r = run(NONE, &env, None).expect("resolves");
    assert_eq!(r.url, "http://127.0.0.1:8080");
    assert!(r.warnings.is_empty());
    let r = run(Flags { fips: true, ..NONE }, &env[..1], None).expect("resolves");
    assert_eq!(r.url, "http://127.0.0.1:8080");
    assert!(r.warnings.iter().any(|w| w.contains("--fips is ignored")));
}

#[test]
fn junk_is_refused_with_the_setting_named() {
    for (env, want) in [
        (
            vec![(ENV_USE_FIPS_ENDPOINT, "yes")],
            "$AWS_USE_FIPS_ENDPOINT is \"yes\"",
        ),
        (
            vec![(ENV_USE_DUALSTACK_ENDPOINT, "1")],
            "$AWS_USE_DUALSTACK_ENDPOINT",
        ),
        (
            vec![(ENV_IGNORE_CONFIGURED_ENDPOINT_URLS, "on")],
            "$AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        ),
        (
            vec![(ENV_ENDPOINT_URL, "ftp://x.example")],
            "must start with https://",
        ),
        (
            vec![(ENV_ENDPOINT_URL_SERVICE, "rolesanywhere.example")],
            "is not a URL",
        ),
        (vec![(ENV_ENDPOINT_URL, "https://h/x?y=1")], "query"),
        (vec![(ENV_ENDPOINT_URL, "https://h/prefix")], "path"),
        (vec![(ENV_ENDPOINT_URL, "https://h#f")], "fragment"),
    ] {
        let e = run(NONE, &env, None).expect_err(want).message;
        assert!(e.contains(want), "{e}");
        assert!(!e.contains('\n'));
    }
    let file = cfg("[default]\nuse_fips_endpoint = maybe\n");
    let e = run(NONE, &[], Some(&file))
        .expect_err("config junk")
        .message;
    assert!(
        e.contains("use_fips_endpoint of profile default in") && e.contains("\"maybe\""),
        "{e}"
    );
    // Junk in the environment is refused even when --endpoint decides.
    let flag = Flags {
        endpoint: Some("https://flag.example"),
        ..NONE
    };
    assert!(run(flag, &[(ENV_USE_FIPS_ENDPOINT, "junk")], None).is_err());
    // Empty counts as unset.
    assert_eq!(
        url(
            NONE,
            &[(ENV_USE_FIPS_ENDPOINT, ""), (ENV_ENDPOINT_URL, "")],
            None
        ),
        "https://rolesanywhere.us-east-1.amazonaws.com"
    );
}

#[test]
fn missing_services_section_is_an_error() {
    let file = cfg("[default]\nservices = nope\n");
    let e = run(NONE, &[], Some(&file)).expect_err("missing").message;
    assert!(e.contains("[services nope]"), "{e}");
    let flat = cfg("[default]\nservices = s\n[services s]\nrolesanywhere = https://x\n");
    let e = run(NONE, &[], Some(&flat)).expect_err("flat").message;
    assert!(e.contains("indented block"), "{e}");
}

#[test]
fn user_and_password_never_appear() {
    for text in [
        "https://alice:s3cr3t@host.example",
        "https://alice:s3cr3t@host.example/path?q",
        "alice:s3cr3t@host.example",
        "https://alice:s3cr3t@[::1",
    ] {
        for (flags, env) in [
            (
                Flags {
                    endpoint: Some(text),
                    ..NONE
                },
                vec![],
            ),
            (NONE, vec![(ENV_ENDPOINT_URL, text)]),
        ] {
            let e = run(flags, &env, None).expect_err(text).message;
            assert!(!e.contains("s3cr3t") && !e.contains("alice"), "{text}: {e}");
        }
    }
    assert_eq!(
        redact_url("https://u:p@h.example:1"),
        "https://***@h.example:1"
    );
    assert_eq!(redact_url("https://h.example"), "https://h.example");
}

#[test]
fn partition_from_the_region_and_arn_disagreement() {
    let region: Region = "us-east-1".parse().expect("region");
    let env = Env::default();
    let gov = |arn_partition| {
        resolve(&Inputs {
            flags: Flags {
                region: Some("us-gov-west-1"),
                ..NONE
            },
            arn_region: &region,
            arn_partition,
            env: &env,
            config: None,
        })
    };
    assert_eq!(
        gov("aws-us-gov").expect("gov").url,
        "https://rolesanywhere.us-gov-west-1.amazonaws.com"
    );
    let e = gov("aws").expect_err("mismatch").message;
    assert!(
        e.contains("partition aws-us-gov") && e.contains("--endpoint"),
        "{e}"
    );
    let cn: Region = "cn-north-1".parse().expect("region");
    let r = resolve(&Inputs {
        flags: NONE,
        arn_region: &cn,
        arn_partition: "aws-cn",
        env: &env,
        config: None,
    })
    .expect("cn");
    assert_eq!(r.url, "https://rolesanywhere.cn-north-1.amazonaws.com.cn");
    // A configured URL is not checked against the partition (emulators, private links).
    let r = resolve(&Inputs {
        flags: Flags {
            endpoint: Some("https://127.0.0.1:1"),
            region: Some("us-gov-west-1"),
            fips: false,
        },
        arn_region: &region,
        arn_partition: "aws",
        env: &env,
        config: None,
    })
    .expect("flag");
    assert_eq!(r.region.as_str(), "us-gov-west-1");
}

#[test]
fn a_fips_region_without_a_listed_host_is_warned_about() {
    let r = run(
        Flags {
            region: Some("eu-west-1"),
            fips: true,
            ..NONE
        },
        &[],
        None,
    )
    .expect("eu fips");
    assert_eq!(r.url, "https://rolesanywhere-fips.eu-west-1.amazonaws.com");
    assert!(r.warnings.iter().any(|w| w.contains("eu-west-1")));
}

#[test]
fn the_table_is_whole() {
    let ids: Vec<&str> = partitions().iter().map(|p| p.id).collect();
    for want in [
        "aws",
        "aws-cn",
        "aws-us-gov",
        "aws-iso",
        "aws-iso-b",
        "aws-iso-e",
        "aws-iso-f",
        "aws-eusc",
    ] {
        assert!(ids.contains(&want), "{want} missing from {ids:?}");
    }
    for (p, re) in partitions().iter().zip(REGEXES.iter()) {
        assert!(re.is_some(), "{} regex {} compiles", p.id, p.region_regex);
    }
    assert_eq!(partition_of("us-isob-east-1").0.id, "aws-iso-b");
    assert_eq!(partition_of("us-isob-zzz-9").0.id, "aws-iso-b");
    let (p, matched) = partition_of("xx-zzz-9");
    assert_eq!((p.id, matched), ("aws", false));
}

#[test]
fn config_path_from_env() {
    let env = Env::from_pairs([("HOME", "/h")]);
    assert_eq!(env.config_path(), Some(PathBuf::from("/h/.aws/config")));
    let env = Env::from_pairs([("HOME", "/h"), (ENV_CONFIG_FILE, "~/c")]);
    assert_eq!(env.config_path(), Some(PathBuf::from("/h/c")));
    assert_eq!(Env::default().config_path(), None);
    assert_eq!(Env::default().profile(), "default");
}
