#!/usr/bin/env python3
"""Regenerates the bundled clusters' libvirt test-driver node files and traces.

Deterministic (seeded noise). Run from the repository root: python3 docs/tools/gen_fixtures.py
"""
import random

def node_xml(cpus, mem_mib, domains):
    doms = []
    for i, (name, vcpus, mib) in enumerate(domains):
        uuid = "%08x-0000-4000-8000-%012x" % (abs(hash_name(name)) % (1 << 32), i + 1)
        doms.append(f"""  <domain type='test'>
    <name>{name}</name>
    <uuid>{uuid}</uuid>
    <memory unit='MiB'>{mib}</memory>
    <currentMemory unit='MiB'>{mib}</currentMemory>
    <vcpu>{vcpus}</vcpu>
    <os><type arch='x86_64'>hvm</type></os>
  </domain>""")
    return f"""<?xml version='1.0'?>
<!-- libvirt test-driver host: CPUs, memory and the domains running on it when Sandpiper first looks. -->
<node>
  <cpu>
    <mhz>2400</mhz>
    <model>x86_64</model>
    <nodes>1</nodes>
    <sockets>1</sockets>
    <cores>{cpus}</cores>
    <threads>1</threads>
    <active>{cpus}</active>
  </cpu>
  <memory>{mem_mib * 1024}</memory>
{chr(10).join(doms)}
</node>
"""

def hash_name(s):
    h = 2166136261
    for c in s.encode():
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h

def write_trace(path, vms, intervals, step, demand, seed):
    rng = random.Random(seed)
    rows = ["time_s,vm,cpu_cores,net_mbps,mem_mib,swap_kbps,guest_free_mib"]
    for i in range(intervals):
        t = i * step
        for vm in vms:
            cpu, net, mem, free = demand(vm, t)
            cpu = max(0.05, cpu * (1 + rng.uniform(-0.03, 0.03)))
            rows.append(f"{t},{vm},{cpu:.3f},{net:.1f},{mem:.0f},,{free:.0f}")
    open(path, "w").write("\n".join(rows) + "\n")

# ---- demo: 3 hosts x 8 cores / 16 GiB; 5 VMs ----
demo_vms = {"web1": (2, 2048), "web2": (2, 2048), "db1": (4, 4096), "batch1": (6, 4096), "batch2": (4, 2048)}
layout = {"pm1": ["web1", "db1"], "pm2": ["web2", "batch1"], "pm3": ["batch2"]}
for host, names in layout.items():
    open(f"Clusters/demo/hosts/{host}.xml", "w").write(
        node_xml(8, 16384, [(n, *demo_vms[n]) for n in names]))

def demo_demand(vm, t):
    base = {"web1": 1.0, "web2": 1.2, "db1": 1.5, "batch1": 1.0, "batch2": 0.5}[vm]
    # hotspot A on pm1 (db1 + web1 rise, t=100..190), then calm
    if 100 <= t < 200 and vm == "db1": base = 3.8
    if 100 <= t < 200 and vm == "web1": base = 1.9
    # a transient spike on pm3 that must not trigger anything
    if t == 60 and vm == "batch2": base = 5.5
    # hotspot B on pm2: batch1 sustained from t=250 to the end
    if t >= 250 and vm == "batch1": base = 4.6
    mem = {"web1": 1400, "web2": 1400, "db1": 3300, "batch1": 2500, "batch2": 1200}[vm]
    net = {"web1": 120, "web2": 110, "db1": 60, "batch1": 20, "batch2": 15}[vm]
    alloc = demo_vms[vm][1]
    return base, net, mem, alloc - mem
write_trace("Clusters/demo/traces/demo.csv", sorted(demo_vms), 36, 10, demo_demand, 1)

# ---- paper-3pm: 3 hosts x 4 cores / 4 GiB; 5 VMs of 1.5 GiB (NSDI'07 section 6 style) ----
paper_vms = {f"vm{i}": (2, 1536) for i in range(1, 6)}
paper_layout = {"pm1": ["vm1", "vm2"], "pm2": ["vm3", "vm4"], "pm3": ["vm5"]}
for host, names in paper_layout.items():
    open(f"Clusters/paper-3pm/hosts/{host}.xml", "w").write(
        node_xml(4, 4096, [(n, *paper_vms[n]) for n in names]))

def paper_demand(vm, t):
    cpu = 0.2
    # hotspot 1: vm1 on pm1 (t=50..190) -> one migration
    if 50 <= t < 200:
        cpu = {"vm1": 2.2, "vm2": 1.0}.get(vm, cpu)
    # hotspot 2: vm3 on pm2 (t=250..390) -> one migration
    if 250 <= t < 400:
        cpu = {"vm3": 2.2, "vm4": 1.0}.get(vm, cpu)
    # hotspot 3 (t>=500): vm5 and vm1 busy together, vm4 busy: memory is tight everywhere -> swap
    if t >= 500:
        cpu = {"vm5": 2.2, "vm1": 1.0, "vm4": 2.0}.get(vm, cpu)
    mem = 1100
    return cpu, 30.0, mem, 1536 - mem
write_trace("Clusters/paper-3pm/traces/paper.csv", sorted(paper_vms), 80, 10, paper_demand, 2)
