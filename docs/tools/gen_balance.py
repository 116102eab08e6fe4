#!/usr/bin/env python3
"""Regenerates Clusters/balance (node files and trace): a calm but uneven fleet for `balance:` (Policies/balance.yaml).

4 hosts x 8 cores / 16 GiB; every host under its thresholds, CPU from ~65% (pm1) down to ~8% (pm4), constant
demand with +-3% seeded noise, 60 intervals of 10 s. Run from the repository root: python3 docs/tools/gen_balance.py
"""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from testdriver import node_xml  # noqa: E402  (docs/tools/testdriver.py)

layout = {"pm1": ["a1", "a2", "a3", "a4"], "pm2": ["b1", "b2", "b3"], "pm3": ["c1", "c2"], "pm4": ["d1"]}
cores = {"a": 1.25, "b": 1.1, "c": 0.9, "d": 0.6}
for host, names in layout.items():
    open(f"Clusters/balance/hosts/{host}.xml", "w").write(node_xml(8, 16384, [(n, 4, 2048) for n in names]))

rng = random.Random(16)
rows = ["time_s,vm,cpu_cores,net_mbps,mem_mib,swap_kbps,guest_free_mib"]
vms = sorted(n for names in layout.values() for n in names)
for i in range(60):
    for vm in vms:
        cpu = cores[vm[0]] * (1 + rng.uniform(-0.03, 0.03))
        rows.append(f"{i * 10},{vm},{cpu:.3f},20.0,1200,,800")
open("Clusters/balance/traces/balance.csv", "w").write("\n".join(rows) + "\n")
