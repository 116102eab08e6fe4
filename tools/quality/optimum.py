#!/usr/bin/env python3
"""Minimum number of migrations for each fleet of a quality-fleet file (OR-Tools CP-SAT). Offline only: not part
of the product or CI; `sandpiper bench quality` and the planner tests read the optima it writes.

Usage: pip install ortools
       sandpiper bench quality --write-fleets /tmp/fleets.json --count 20
       python3 tools/quality/optimum.py /tmp/fleets.json Tests/Data/quality/fleets.json

Model (the default policy with headroom 0, constant demand): each VM on exactly one host; every host's CPU at
most 75% and memory at most 90% of its capacity; CPU demand = the sample (at most the vCPUs), memory = used +
32 MiB (gray-box free target, at most the VM's memory); pinned VMs stay; anti-affinity pairs on different hosts.
Minimise the number of VMs whose host changes. Integers: CPU in hundredths of a core, memory in MiB, thresholds as
exact fractions (75/100, 9/10), so no rounding decides a fit.
"""
import json
import sys

from ortools.sat.python import cp_model


def solve(fleet):
    hosts = fleet["hosts"]
    vms = fleet["vms"]
    hidx = {h["name"]: i for i, h in enumerate(hosts)}
    m = cp_model.CpModel()
    x = [[m.NewBoolVar(f"x{v}_{h}") for h in range(len(hosts))] for v in range(len(vms))]
    cpu = [round(min(v["cpu"], v["vcpus"]) * 100) for v in vms]
    mem = [round(min(v["memMiB"] + 32, v["memoryMiB"])) for v in vms]
    for v, vm in enumerate(vms):
        m.AddExactlyOne(x[v])
        if vm["pinned"]:
            m.Add(x[v][hidx[vm["host"]]] == 1)
    for h, host in enumerate(hosts):
        # 100 * cpu_load <= 75 * cpus * 100  and  10 * mem_load <= 9 * memoryMiB
        m.Add(100 * sum(cpu[v] * x[v][h] for v in range(len(vms))) <= round(75 * host["cpus"] * 100))
        m.Add(10 * sum(mem[v] * x[v][h] for v in range(len(vms))) <= round(9 * host["memoryMiB"]))
    names = {vm["name"]: i for i, vm in enumerate(vms)}
    for pair in fleet.get("antiAffinity", []):
        a, b = names[pair[0]], names[pair[1]]
        for h in range(len(hosts)):
            m.Add(x[a][h] + x[b][h] <= 1)
    moved = [1 - x[v][hidx[vm["host"]]] for v, vm in enumerate(vms)]
    m.Minimize(sum(moved))
    s = cp_model.CpSolver()
    s.parameters.max_time_in_seconds = 120
    s.parameters.num_workers = 1
    s.parameters.random_seed = 1
    status = s.Solve(m)
    if status == cp_model.OPTIMAL:
        return True, round(s.ObjectiveValue())
    if status == cp_model.INFEASIBLE:
        return False, None
    raise SystemExit(f"{fleet['name']}: solver stopped without proof ({s.StatusName(status)})")


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    data = json.load(open(sys.argv[1]))
    for f in data["fleets"]:
        feasible, opt = solve(f)
        f["feasible"] = feasible
        f["optimum"] = opt
        print(f"{f['name']}: {len(f['hosts'])} hosts, {len(f['vms'])} VMs, "
              + (f"minimum {opt} migrations" if feasible else "infeasible"))
    import ortools
    data["solver"] = f"tools/quality/optimum.py, OR-Tools {ortools.__version__} CP-SAT, proven optimal"
    with open(sys.argv[2], "w") as out:
        json.dump(data, out, indent=2, sort_keys=True)
        out.write("\n")


if __name__ == "__main__":
    main()
