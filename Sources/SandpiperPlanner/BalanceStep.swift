import SandpiperModel

/// Step 7b of `Planner.plan` (issue 16 item 4): load balancing under the thresholds, like DRS load balance or
/// OpenStack Watcher's workload_stabilization; only when `policy.balance.enabled` (off by default).
///
/// - **Spread**: over the powered, schedulable, declared hosts, the utilization of the *dominant* resource (the
///   one with the highest mean utilization over those hosts, fixed for the plan), max - min.
/// - **When**: only in a calm plan (no hot host, nothing moved or powered by an earlier step, consolidation
///   included), and only while the spread exceeds `balance.maxSpread`.
/// - **What**: a movable VM (the same `immovable` test as relief: declared, automation on, not pinned here,
///   not moved within `minResidency`) from a host above the mean to a less loaded one, the move that lowers
///   the hosts' variance the most; the target passes every filter (thresholds, reservations, must-rules), breaks
///   no `should` rule the VM kept at home, and the move must narrow the gap between the two hosts
///   (|source after - target after| < source before - target before), so moving the VM back could never pass
///   the same test: no ping-pong on constant load. Each move must pass cost-benefit (CostBenefit: the source's
///   Volume gain over the whole forecast horizon). At most `balance.maxMoves` moves per plan, within the budget.
/// - **Never against consolidation**: with consolidation enabled, a power-managed host that is low (a candidate
///   for evacuation) is never a target, and a plan in which consolidation moves or powers anything does not
///   balance; a VM that moved (by either) within `minResidency` is not moved.
extension PlanningContext {
    /// Hosts balance looks at: declared, up, powered and schedulable in the plan built so far.
    func balanceHosts() -> [Int] {
        fleet.hosts.indices.filter { h in
            fleet.hosts[h].declared && fleet.hosts[h].status == .up && state.receives(h, fleet: fleet)
        }
    }

    /// The resource with the highest mean utilization over `hosts` (ties: cpu, net, mem), among those every
    /// host has capacity for.
    func dominantResource(_ hosts: [Int]) -> ResourceKind? {
        var best: (ResourceKind, Double)?
        for r in ResourceKind.allCases where hosts.allSatisfy({ fleet.hosts[$0].capacity[r] > 0 }) {
            let mean = hosts.reduce(0.0) { $0 + state.utilization($1, fleet: fleet)[r] } / Double(max(hosts.count, 1))
            if best == nil || mean > best!.1 + 1e-12 { best = (r, mean) }
        }
        return best?.0
    }

    mutating func balance(_ detection: DetectionResult) {
        let b = fleet.policy.balance
        guard b.enabled, budget > 0, detection.hostHot.allSatisfy(\.isEmpty), builder.migrationCount == 0,
              !state.awake.contains(true), !state.asleep.contains(true) else { return }
        let hosts = balanceHosts()
        guard hosts.count >= 2, let r = dominantResource(hosts) else { return }
        let c = fleet.policy.consolidation
        // Consolidation's candidates for evacuation are never balance targets.
        let targetable = Set(hosts.filter { h in
            guard c.enabled, fleet.hosts[h].powerManaged else { return true }
            let u = state.utilization(h, fleet: fleet)
            return !c.isLow(cpu: u.cpu, net: u.net, mem: u.mem)
        })
        let soft = SoftRules(fleet: fleet)
        let cb = costBenefit
        let horizon = Double(CostBenefit.horizonSamples) * cb.interval
        var moves = 0
        var rejectedForCost: [(vm: Int, from: Int, why: String)] = []
        while moves < b.maxMoves, budget > 0 {
            let u = Dictionary(uniqueKeysWithValues: hosts.map { ($0, state.utilization($0, fleet: fleet)[r]) })
            let values = hosts.map { u[$0]! }
            let spreadBefore = values.max()! - values.min()!
            guard spreadBefore > b.maxSpread + 1e-12 else { break }
            let mean = values.reduce(0, +) / Double(values.count)
            // Most loaded sources, least loaded targets (ties: index), bounded so a large fleet stays fast.
            let sources = hosts.filter { u[$0]! > mean }.sorted { u[$0]! != u[$1]! ? u[$0]! > u[$1]! : $0 < $1 }
            let targets = hosts.filter { targetable.contains($0) }
                .sorted { u[$0]! != u[$1]! ? u[$0]! < u[$1]! : $0 < $1 }
            var best: (v: Int, s: Int, t: Int, varianceDrop: Double)?
            for s in sources.prefix(4) {
                for v in state.members[s] where fleet.vms[v].demand[r] > 0 && immovable(v) == nil {
                    let home = soft.penalty(v, on: s, state: state)
                    for t in targets.prefix(8) where u[t]! < u[s]! {
                        let us = u[s]!, ut = u[t]!
                        let usAfter = us - fleet.vms[v].demand[r] / fleet.hosts[s].capacity[r]
                        let utAfter = ut + fleet.vms[v].demand[r] / fleet.hosts[t].capacity[r]
                        // Narrows the gap between the two, both staying within it (so the spread never widens):
                        // the reverse move would widen it again.
                        guard abs(usAfter - utAfter) < (us - ut) - 1e-9, usAfter >= ut, utAfter <= us else { continue }
                        let drop = (us - mean) * (us - mean) + (ut - mean) * (ut - mean)
                            - (usAfter - mean) * (usAfter - mean) - (utAfter - mean) * (utAfter - mean)
                        guard drop > 1e-12 else { continue }
                        if let cur = best, !(drop > cur.varianceDrop + 1e-12) { continue }
                        guard search.feasible.verdict(v, on: t, state: state).fits,
                              soft.penalty(v, on: t, state: state) <= home else { continue }
                        if let why = costExceedsBenefit(moving: v, from: s, to: t, gain: gain(removing: v, from: s),
                                                        duration: horizon) {
                            rejectedForCost.append((v, s, why))
                            continue
                        }
                        best = (v, s, t, drop)
                    }
                }
            }
            guard let m = best else { break }
            let sBefore = describe(m.s), tBefore = describe(m.t)
            state.move(m.v, to: m.t, fleet: fleet)
            // Never push a host over a threshold (verdict checked it; this guards the invariant itself).
            guard state.over(m.t, fleet: fleet).isEmpty else {
                state.move(m.v, to: m.s, fleet: fleet); break
            }
            let after = hosts.map { state.utilization($0, fleet: fleet)[r] }
            touched[m.v] = true
            budget -= 1
            moves += 1
            builder.migrate(vm: fleet.vms[m.v].name, from: m.s, to: m.t, mode: mode(m.v),
                            reason: "balance: \(r.rawValue) spread \(Fmt.pct(spreadBefore)) > maxSpread \(Fmt.pct(b.maxSpread)) over \(hosts.count) powered hosts; \(fleet.vms[m.v].name) from above-mean \(hostName(m.s)) to less loaded \(hostName(m.t)) lowers the hosts' variance the most (spread -> \(Fmt.pct(after.max()! - after.min()!))); \(hostName(m.s)): \(sBefore) -> \(describe(m.s)); \(hostName(m.t)): \(tBefore) -> \(describe(m.t))")
        }
        // Left imbalanced because moves cost more than they gain: say so in the plan's decisions.
        let left = hosts.map { state.utilization($0, fleet: fleet)[r] }
        if let first = rejectedForCost.first, left.max()! - left.min()! > b.maxSpread + 1e-12 {
            decisions.append(PlacementDiagnostics(
                vm: fleet.vms[first.vm].name, purpose: .balance, from: hostName(first.from), chosen: nil,
                hostsExamined: hosts.count, hostsTotal: fleet.hosts.count,
                filtered: [.init(reason: "cost-benefit", count: rejectedForCost.count)],
                examples: rejectedForCost.prefix(4).map(\.why), candidates: []))
        }
    }
}
