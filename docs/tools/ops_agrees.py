#!/usr/bin/env python3
"""Checks docs/ops/prometheus.yml and docs/ops/alerts.yml against what the controller exports (run by
Tests/SandpiperCLITests/OpsFilesTests.swift; needs PyYAML).

usage: ops_agrees.py PROMETHEUS_YML ALERTS_YML METRICS_FILE
  METRICS_FILE  the Prometheus text `sandpiper run --metrics-file` wrote after a round.
Checks: both files are YAML of the expected shape; the scrape job targets 127.0.0.1:9464 and loads the alert
file; every rule has alert, expr, for and a severity; every sandpiper_* series an expression names is exported;
every job="..." matcher names the scrape job; the controller-down and 10-minute hotspot alerts exist.
Prints one line per problem and exits 1 if there is any.
"""
import os, re, sys
import yaml


def main():
    prom_path, alerts_path, metrics_path = sys.argv[1:4]
    prom, alerts = yaml.safe_load(open(prom_path)), yaml.safe_load(open(alerts_path))
    exported = set()
    for line in open(metrics_path):
        if line.strip() and not line.startswith("#"):
            exported.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    problems = []

    jobs = [j for j in prom.get("scrape_configs", []) if j.get("job_name") == "sandpiper"]
    if len(jobs) != 1:
        problems.append("prometheus.yml: expected one scrape job named sandpiper")
    else:
        targets = [t for c in jobs[0].get("static_configs", []) for t in c.get("targets", [])]
        if targets != ["127.0.0.1:9464"]:
            problems.append(f"prometheus.yml: sandpiper targets {targets}, expected 127.0.0.1:9464 (the unit's --listen)")
        if jobs[0].get("metrics_path", "/metrics") != "/metrics":
            problems.append("prometheus.yml: metrics_path must be /metrics")
    if os.path.basename(alerts_path) not in prom.get("rule_files", []):
        problems.append(f"prometheus.yml: rule_files does not load {os.path.basename(alerts_path)}")

    rules = [r for g in alerts.get("groups", []) for r in g.get("rules", [])]
    names = {}
    for r in rules:
        name = r.get("alert", "?")
        for key in ("alert", "expr", "for"):
            if key not in r:
                problems.append(f"alerts.yml: rule {name} has no {key}")
        if "severity" not in r.get("labels", {}):
            problems.append(f"alerts.yml: rule {name} has no severity label")
        expr = str(r.get("expr", ""))
        names[name] = (expr, r.get("for"))
        for series in sorted(set(re.findall(r"\bsandpiper_[a-zA-Z0-9_]+", expr))):
            if series not in exported:
                problems.append(f"alerts.yml: {name} uses {series}, which the controller does not export")
        for job in re.findall(r'job="([^"]*)"', expr):
            if job != "sandpiper":
                problems.append(f"alerts.yml: {name} matches job=\"{job}\", the scrape job is sandpiper")

    down = names.get("SandpiperControllerDown")
    if not down or "up{" not in down[0] or "absent(" not in down[0]:
        problems.append("alerts.yml: SandpiperControllerDown must fire on up == 0 and on an absent target")
    hot = names.get("SandpiperHotspotUnresolved")
    if not hot or "sandpiper_hotspots_unresolved" not in hot[0] or hot[1] != "10m":
        problems.append("alerts.yml: SandpiperHotspotUnresolved must use sandpiper_hotspots_unresolved for 10m")

    print(f"{len(rules)} rules, {len(exported)} exported series")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
