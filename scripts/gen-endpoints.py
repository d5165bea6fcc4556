#!/usr/bin/env python3
"""Writes src/endpoint/partitions.rs from botocore's own endpoint data.

Run with the test virtualenv's Python (it has botocore):

    target/test-venv/bin/python scripts/gen-endpoints.py [--out PATH | --json]

(--out writes elsewhere; --json prints the table's data, which the tests compare with the
checked-in table, without needing rustfmt.)

The partition table comes from botocore/data/partitions.json. The URL templates come from
botocore/data/rolesanywhere/*/endpoint-rule-set-1.json, evaluated by botocore's own
EndpointProvider for every combination of UseFIPS, UseDualStack, supportsFIPS and
supportsDualStack over a synthetic partition whose outputs are placeholders, so the
templates are the rule set's and not a copy typed by hand. The script refuses a rule set
that uses anything beyond what this evaluation can see (a condition on the region itself,
say), and partition data whose two lookup orders (botocore's and the Go SDK's) could
disagree: then a person has to look.
"""

import copy
import json
import pathlib
import re
import subprocess
import sys

import botocore
from botocore.endpoint_provider import EndpointProvider
from botocore.exceptions import EndpointResolutionError
from botocore.loaders import create_loader

OUT = pathlib.Path(__file__).resolve().parent.parent / "src" / "endpoint" / "partitions.rs"

# Functions whose results the placeholder evaluation below covers. A rule set that calls
# anything else (stringEquals on the region, isValidHostLabel, …) may branch on the real
# region, which a placeholder cannot show.
KNOWN_FUNCTIONS = {"isSet", "booleanEquals", "getAttr", "aws.partition"}
PLACEHOLDER_REGION = "placeholder-region-1"
DNS = "dns-suffix.placeholder"
DUAL = "dual-stack-dns-suffix.placeholder"


def fail(why):
    sys.exit(f"gen-endpoints: {why}")


def functions_used(node, found):
    if isinstance(node, dict):
        if "fn" in node:
            found.add(node["fn"])
        for v in node.values():
            functions_used(v, found)
    elif isinstance(node, list):
        for v in node:
            functions_used(v, found)
    return found


def rust_str(s):
    return json.dumps(s)


def main():
    out_path = OUT
    as_json = sys.argv[1:] == ["--json"]
    if len(sys.argv) == 3 and sys.argv[1] == "--out":
        out_path = pathlib.Path(sys.argv[2])
    elif len(sys.argv) != 1 and not as_json:
        fail("usage: gen-endpoints.py [--out PATH | --json]")
    loader = create_loader()
    ruleset = loader.load_service_model("rolesanywhere", "endpoint-rule-set-1")
    partitions = loader.load_data("partitions")
    api_version = loader.determine_latest_version("rolesanywhere", "endpoint-rule-set-1")

    unknown = functions_used(ruleset["rules"], set()) - KNOWN_FUNCTIONS
    if unknown:
        fail(f"the rule set uses {sorted(unknown)}: extend this generator before trusting it")
    if set(ruleset["parameters"]) != {"Region", "UseDualStack", "UseFIPS", "Endpoint"}:
        fail(f"unexpected rule-set parameters {sorted(ruleset['parameters'])}")

    rows = []
    for p in partitions["partitions"]:
        o = p["outputs"]
        for region, entry in p["regions"].items():
            if set(entry) - {"description"}:
                # The Go SDK applies per-region overrides, botocore does not: decide by hand.
                fail(f"region {region} of {p['id']} overrides partition outputs: {entry}")
        rows.append(p)

    # Listed-region-first (the Go SDK, the brief) and botocore's partition-by-partition
    # "listed or regex" agree unless a region listed in one partition matches an earlier
    # partition's regex. Refuse such data.
    for i, p in enumerate(rows):
        for region in p["regions"]:
            for q in rows[:i]:
                if re.match(q["regionRegex"], region):
                    fail(f"{region} (listed in {p['id']}) matches {q['id']}'s regex")

    # The four rule outcomes per (UseFIPS, UseDualStack), for each partition capability.
    rules = {}
    for supports_fips in (False, True):
        for supports_ds in (False, True):
            synthetic = {
                "version": partitions.get("version", "1.1"),
                "partitions": [
                    {
                        "id": "placeholder",
                        "outputs": {
                            "dnsSuffix": DNS,
                            "dualStackDnsSuffix": DUAL,
                            "implicitGlobalRegion": PLACEHOLDER_REGION,
                            "name": "placeholder",
                            "supportsDualStack": supports_ds,
                            "supportsFIPS": supports_fips,
                        },
                        "regionRegex": "^.*$",
                        "regions": {},
                    }
                ],
            }
            provider = EndpointProvider(copy.deepcopy(ruleset), synthetic)
            for fips in (False, True):
                for ds in (False, True):
                    try:
                        ep = provider.resolve_endpoint(
                            Region=PLACEHOLDER_REGION, UseFIPS=fips, UseDualStack=ds
                        )
                    except EndpointResolutionError as e:
                        rules[(fips, ds, supports_fips, supports_ds)] = ("Error", e.kwargs["msg"])
                        continue
                    url = ep.url
                    if PLACEHOLDER_REGION not in url:
                        fail(f"template without the region: {url}")
                    url = (
                        url.replace(PLACEHOLDER_REGION, "{region}")
                        .replace(DUAL, "{dualStackDnsSuffix}")
                        .replace(DNS, "{dnsSuffix}")
                    )
                    if "placeholder" in url:
                        fail(f"unexpected template {url}")
                    rules[(fips, ds, supports_fips, supports_ds)] = ("Url", url)

    # Regions with a FIPS host in botocore's legacy endpoint data (for a warning only: the
    # rule set, which is what the SDKs follow, builds a FIPS host for every region).
    endpoints = loader.load_data("endpoints")
    fips_regions = []
    for p in endpoints["partitions"]:
        svc = p["services"].get("rolesanywhere", {})
        for region, entry in svc.get("endpoints", {}).items():
            if any("fips" in v.get("tags", []) for v in entry.get("variants", [])):
                fips_regions.append(region)

    if as_json:
        print(json.dumps({
            "botocore": botocore.__version__,
            "partitions": [
                {
                    "id": p["id"],
                    "region_regex": p["regionRegex"],
                    "regions": sorted(p["regions"]),
                    "dns_suffix": p["outputs"]["dnsSuffix"],
                    "dual_stack_dns_suffix": p["outputs"]["dualStackDnsSuffix"],
                    "supports_fips": p["outputs"]["supportsFIPS"],
                    "supports_dual_stack": p["outputs"]["supportsDualStack"],
                    "implicit_global_region": p["outputs"]["implicitGlobalRegion"],
                }
                for p in rows
            ],
            "rules": [
                [
                    [
                        [{rules[(f, d, sf, sd)][0]: rules[(f, d, sf, sd)][1]} for sd in (False, True)]
                        for sf in (False, True)
                    ]
                    for d in (False, True)
                ]
                for f in (False, True)
            ],
            "listed_fips_regions": sorted(fips_regions),
        }))
        return

    out = []
    w = out.append
    w(f"//! Generated by scripts/gen-endpoints.py from botocore {botocore.__version__}")
    w(f"//! (partitions.json, rolesanywhere/{api_version}/endpoint-rule-set-1.json): do not edit.")
    w("")
    w("use super::{Partition, Rule};")
    w("")
    w("/// The botocore release this table was made from.")
    w(f"pub const BOTOCORE_VERSION: &str = {rust_str(botocore.__version__)};")
    w("")
    w("/// Every partition botocore ships, in botocore's order.")
    w("pub const PARTITIONS: &[Partition] = &[")
    for p in rows:
        o = p["outputs"]
        w("    Partition {")
        w(f"        id: {rust_str(p['id'])},")
        w(f"        region_regex: {rust_str(p['regionRegex'])},")
        regions = ", ".join(rust_str(r) for r in sorted(p["regions"]))
        w(f"        regions: &[{regions}],")
        w(f"        dns_suffix: {rust_str(o['dnsSuffix'])},")
        w(f"        dual_stack_dns_suffix: {rust_str(o['dualStackDnsSuffix'])},")
        w(f"        supports_fips: {str(o['supportsFIPS']).lower()},")
        w(f"        supports_dual_stack: {str(o['supportsDualStack']).lower()},")
        w(f"        implicit_global_region: {rust_str(o['implicitGlobalRegion'])},")
        w("    },")
    w("];")
    w("")
    w("/// The rule set's outcome, indexed `[use_fips][use_dual_stack][supports_fips][supports_dual_stack]`.")
    w("pub const RULES: [[[[Rule; 2]; 2]; 2]; 2] = [")
    for fips in (False, True):
        w("    [")
        for ds in (False, True):
            w("        [")
            for sf in (False, True):
                w("            [")
                for sd in (False, True):
                    kind, text = rules[(fips, ds, sf, sd)]
                    w(f"                Rule::{kind}({rust_str(text)}),")
                w("            ],")
            w("        ],")
        w("    ],")
    w("];")
    w("")
    w("/// Regions whose FIPS host botocore's endpoints.json lists for IAM Roles Anywhere.")
    w(f"pub const LISTED_FIPS_REGIONS: &[&str] = &[{', '.join(rust_str(r) for r in sorted(fips_regions))}];")
    out_path.write_text("\n".join(out) + "\n")
    subprocess.run(["rustfmt", "--edition", "2024", str(out_path)], check=True)
    print(f"wrote {out_path} from botocore {botocore.__version__}")


if __name__ == "__main__":
    main()
