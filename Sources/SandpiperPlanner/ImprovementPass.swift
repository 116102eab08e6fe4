import SandpiperModel

/// Step 5b of `Planner.plan`: the same relief with fewer migrations. Step 5's greedy picks one VM at a time by VSR,
/// so it can move more VMs than needed (a small VM first, then a large one that alone would have sufficed) or go
/// round through a staging host. On a small neighbourhood (the whole fleet while it has at most
/// `improvementMaxHosts` hosts and `improvementMaxVMs` VMs) this step:
///  1. when the greedy resolved every hotspot, reduces its moves to net moves (a VM moved twice moves once,
///     straight to where it ends) and drops every move the relief does not need (the hot hosts stay resolved
///     without it);
///  2. runs ExactSearch for fewer moves than that (or, when the greedy left a hotspot, for any plan within the
///     per-run budget that resolves them all): exchanges and evictions included (unless `swaps: false`), the
///     minimum when the node budget suffices.
/// The fewest moves win; on a tie the greedy's own plan (and its reasons) is kept. Every candidate is replayed
/// through FeasibleHosts on the ProposedLoad as it was before step 5 (`orderedRelief`), so pins, groups,
/// reservations, allocation ratios, thresholds, minimum residency, automation levels and migration modes hold
/// exactly as in the greedy, and the replay order makes every intermediate state exist.
extension PlanningContext {
    static let improvementMaxHosts = 16
    static let improvementMaxVMs = 64

    /// A copy of the context before step 5 when step 5b will look at this fleet (nil: too large, skip).
    func reliefSnapshot(_ detection: DetectionResult) -> PlanningContext? {
        let hosts = improvementHosts(detection)
        guard options.improve, hosts.count <= Self.improvementMaxHosts,
              hosts.reduce(0, { $0 + state.members[$1].count }) <= Self.improvementMaxVMs else { return nil }
        return self
    }

    /// The neighbourhood: every host that may receive VMs, plus the hot hosts.
    func improvementHosts(_ detection: DetectionResult) -> [Int] {
        fleet.hosts.indices.filter { h in
            state.receives(h, fleet: fleet) || (!detection.hostHot[h].isEmpty && fleet.hosts[h].declared)
        }
    }

    mutating func improveRelief(_ detection: DetectionResult, before snapshot: PlanningContext?) {
        guard let snapshot else { return }
        let greedyCount = builder.migrationCount - snapshot.builder.migrationCount
        // Only migrations were added (no host woken for the relief).
        guard builder.drafts.count - snapshot.builder.drafts.count == greedyCount else { return }
        let hot = fleet.hosts.indices.filter { !detection.hostHot[$0].isEmpty && fleet.hosts[$0].declared }
        // A confirmed hotspot whose profile already fits is acted on once by the greedy: leave that to it.
        guard !hot.isEmpty,
              hot.allSatisfy({ !snapshot.state.over($0, fleet: fleet, resources: detection.hostHot[$0]).isEmpty })
        else { return }
        let leftHot = hot.filter { !state.over($0, fleet: fleet, resources: detection.hostHot[$0]).isEmpty }
        guard greedyCount > 0 || !leftHot.isEmpty else { return }
        let fixed = hot.filter { !leftHot.contains($0) }

        // 1. Net moves, then drop the ones not needed (only when the greedy resolved everything: a move that
        //    only eases a host it could not resolve is kept).
        var net: [ReliefMove] = []
        for v in fleet.vms.indices where touched[v] && !snapshot.touched[v] {
            let from = snapshot.state.hostOf[v], to = state.hostOf[v]
            if from >= 0, to >= 0, from != to { net.append(ReliefMove(vm: v, from: from, to: to)) }
        }
        // Local disk bytes (MiB) moves copy: fewer moves must not copy more of them than the greedy, whose VSR
        // chose cheap copies (one 200 GiB disk is not better than two small VMs).
        func diskMiB(_ moves: [ReliefMove]) -> Double {
            moves.reduce(0) { $0 + fleet.vms[$1.vm].copyMiB - fleet.vms[$1.vm].ram }
        }
        let greedyDiskMiB = diskMiB(net)
        var best: (moves: [ReliefMove], how: String)?
        if leftHot.isEmpty, let ordered = snapshot.orderedRelief(net, mustFix: fixed, detected: detection.hostHot) {
            let kept = snapshot.withoutUnneeded(ordered, mustFix: fixed, detected: detection.hostHot)
            if kept.count < greedyCount { best = (kept, "net moves of the greedy, unneeded ones dropped") }
        }

        // 2. Exact search for fewer (or, with hotspots left, for any within the budget). Not when cost-benefit
        //    filters: the search does not weigh costs and would bring back moves it refused.
        let limit = leftHot.isEmpty ? (best?.moves.count ?? greedyCount) - 1 : snapshot.budget
        if limit >= 1, !costBenefit.filters {
            let outcome = ExactSearch(nodeBudget: options.exactSearchNodes).run(
                ctx: snapshot, hosts: snapshot.improvementHosts(detection), detected: detection.hostHot,
                maxMoves: min(limit, snapshot.budget), exchanges: fleet.policy.placement.swaps) {
                snapshot.orderedRelief($0, mustFix: hot, detected: detection.hostHot)
            }
            // (With hotspots left, resolving them is worth the copy, as in the greedy.)
            if let moves = outcome.moves, !leftHot.isEmpty || diskMiB(moves) <= greedyDiskMiB + 1e-6 {
                let kept = outcome.proven ? moves : snapshot.withoutUnneeded(moves, mustFix: hot, detected: detection.hostHot)
                if kept.count < (best?.moves.count ?? greedyCount) || !leftHot.isEmpty {
                    best = (kept, outcome.proven ? "exact search: none with fewer moves" : "exact search within its node budget")
                }
            }
        }
        guard let (moves, how) = best else { return }

        let greedyUnresolved = unresolved.dropFirst(snapshot.unresolved.count)
        self = snapshot
        let texts = hotTexts(detection)
        let hotSet = Set(hot)
        let summary = "\(moves.count) migration(s) instead of the greedy's \(greedyCount) (\(how))"
        for m in moves {
            let v = m.vm
            let fromBefore = describe(m.from), toBefore = describe(m.to)
            state.move(v, to: m.to, fleet: fleet)
            touched[v] = true
            budget -= 1
            let why = hotSet.contains(m.from)
                ? "\(hostName(m.from)) hot: \(texts[m.from] ?? "")"
                : "makes room on \(hostName(m.from)) for a VM from a hot host"
            builder.migrate(vm: fleet.vms[v].name, from: m.from, to: m.to, mode: mode(v),
                            reason: "\(why); fewest moves: \(summary); \(hostName(m.to)): \(toBefore) -> \(describe(m.to)); \(hostName(m.from)): \(fromBefore) -> \(describe(m.from))")
            decisions.append(PlacementDiagnostics(
                vm: fleet.vms[v].name, purpose: .hotspot, from: hostName(m.from), chosen: hostName(m.to),
                hostsExamined: 0, hostsTotal: fleet.hosts.count, filtered: [], examples: [summary],
                candidates: []))
        }
        for u in greedyUnresolved {
            guard let name = u.host, let h = fleet.hostIndex[name], u.vm == nil else { unresolved.append(u); continue }
            if !state.over(h, fleet: fleet, resources: detection.hostHot[h]).isEmpty { unresolved.append(u) }
        }
    }

    /// `moves` without each move the relief does not need (tried last to first), replayed and ordered.
    func withoutUnneeded(_ moves: [ReliefMove], mustFix: [Int], detected: [[ResourceKind]]) -> [ReliefMove] {
        var kept = moves
        for m in moves.reversed() {
            let without = kept.filter { $0 != m }
            if let ordered = orderedRelief(without, mustFix: mustFix, detected: detected) { kept = ordered }
        }
        return kept
    }

    /// `moves` replayed on this context's ProposedLoad, in an order where each move passes FeasibleHosts'
    /// constraint and capacity filters (a target may pass its threshold for a moment only when it can physically
    /// hold the VM and a later move takes load away, as in a swap); nil when no order exists or the result leaves a
    /// host of `mustFix` hot on a detected resource, or pushes any host above a threshold it was under.
    func orderedRelief(_ moves: [ReliefMove], mustFix: [Int], detected: [[ResourceKind]]) -> [ReliefMove]? {
        let f = search.feasible
        var s = state
        var pending = moves
        var out: [ReliefMove] = []
        while !pending.isEmpty {
            var pick: Int?, fallback: Int?
            for (k, m) in pending.enumerated() {
                guard f.constraints(m.vm, on: m.to, state: s).isEmpty else { continue }
                let caps = f.capacity(m.vm, on: m.to, state: s)
                if caps.isEmpty { pick = k; break }
                let vm = fleet.vms[m.vm]
                if fallback == nil, caps.allSatisfy({ if case .threshold = $0.detail { true } else { false } }),
                   f.canHold(m.to, extra: vm.demand, cpuResv: vm.cpuReservation, memResv: vm.memReservation,
                             vcpus: vm.vcpus, memAlloc: vm.allocatedMiB, state: s) {
                    fallback = k
                }
            }
            guard let k = pick ?? fallback else { return nil }
            let m = pending.remove(at: k)
            s.move(m.vm, to: m.to, fleet: fleet)
            out.append(m)
        }
        var check = Set(mustFix)
        for m in moves { check.insert(m.from); check.insert(m.to) }
        for h in check.sorted() {
            let u = s.utilization(h, fleet: fleet), u0 = state.utilization(h, fleet: fleet)
            for r in s.over(h, fleet: fleet) {
                if mustFix.contains(h) && detected[h].contains(r) { return nil }
                if u[r] > u0[r] + 1e-12 { return nil }
            }
        }
        return out
    }
}
