import SandpiperModel

/// One migration of the relief step, by index: `vm` from host `from` to host `to`.
struct ReliefMove: Sendable, Equatable {
    var vm: Int
    var from: Int
    var to: Int
}

/// Step 5b, second half: the fewest migrations that relieve every hot host of a small neighbourhood, by branch and
/// bound. Iterative deepening on the number of moves k: at each node the violated host with the largest lower
/// bound must lose one of its movable VMs (the branch), to any host of the neighbourhood that its constraints admit
/// (an arrival may push a host over its threshold, which a later move must then fix: exchanges and evictions come
/// out of the same rule). Lower bound: per violated host, the fewest of its remaining movable VMs whose demand
/// covers the excess; moves out of one host never help another, so the bounds add up. Symmetry: each host's VMs
/// leave in one fixed order. Every VM moves at most once.
/// The local model (loads and thresholds) only prunes; every solution is checked by replaying its moves through
/// FeasibleHosts on a ProposedLoad (`orderedRelief`), which also orders them so every intermediate state exists.
/// Deterministic: the budget counts nodes, not time; among solutions with k moves found within `tieNodes` more
/// nodes, the one copying the fewest MiB wins (then the first found).
struct ExactSearch {
    var nodeBudget = 60_000
    var tieNodes = 4_000

    struct Outcome {
        var moves: [ReliefMove]?
        var nodes: Int
        /// Every smaller k was searched to the end.
        var proven: Bool
    }

    /// `hosts`: the neighbourhood (global indices); `detected`: confirmed hot resources per global host; at most
    /// `maxMoves` moves; `verify` replays a candidate and returns it ordered, or nil.
    func run(ctx: PlanningContext, hosts: [Int], detected: [[ResourceKind]], maxMoves: Int,
             verify: ([ReliefMove]) -> [ReliefMove]?) -> Outcome {
        let fleet = ctx.fleet, state = ctx.state
        let n = hosts.count
        let cap = hosts.map { fleet.hosts[$0].capacity }
        var load = hosts.map { state.load[$0] }
        let initial = load
        var members = hosts.map { state.members[$0] }
        let hot = hosts.map { detected[$0] }
        let defaults = fleet.policy.thresholds
        let minGain = fleet.policy.placement.minGain

        // Departable VMs per host, in the fixed order they may leave: largest Volume first (fewest moves), then
        // least RAM (least copied), then name.
        var departable: [[Int]] = []
        var destinations: [Int: [Int]] = [:]
        for (i, h) in hosts.enumerated() {
            let vs = state.members[h].filter { ctx.immovable($0) == nil }
            departable.append(vs.sorted { a, b in
                let va = ctx.vmVolume(a, relativeTo: h), vb = ctx.vmVolume(b, relativeTo: h)
                if va != vb { return va > vb }
                if fleet.vms[a].ram != fleet.vms[b].ram { return fleet.vms[a].ram < fleet.vms[b].ram }
                return fleet.vms[a].name < fleet.vms[b].name
            })
            for v in vs {
                destinations[v] = (0..<n).filter { t in
                    t != i && state.receives(hosts[t], fleet: fleet)
                        && ctx.search.feasible.constraints(v, on: hosts[t], state: state).isEmpty
                        && ctx.search.feasible.capacity(v, on: hosts[t], state: state).allSatisfy {
                            if case .threshold = $0.detail { true } else { false }
                        }
                }
            }
        }
        var moved = Set<Int>()
        var nextDeparture = [Int](repeating: 0, count: n)

        func thresholds(_ i: Int) -> ResolvedThresholds {
            ProposedLoad.thresholds(of: members[i], fleet: fleet, default: defaults)
        }
        func violated(_ i: Int) -> [ResourceKind] {
            let t = thresholds(i)
            let u = load[i].fraction(of: cap[i]), u0 = initial[i].fraction(of: cap[i])
            return ResourceKind.allCases.filter { r in
                u[r] > t[r] + 1e-12 && (hot[i].contains(r) || u[r] > u0[r] + 1e-12)
            }
        }
        /// The host's thresholds can only get looser than the strictest of the VMs that stay for sure.
        func loosest(_ i: Int) -> ResolvedThresholds {
            let stay = members[i].filter { moved.contains($0) || !departable[i].contains($0) }
            if !stay.isEmpty { return ProposedLoad.thresholds(of: stay, fleet: fleet, default: defaults) }
            var t = defaults
            for v in members[i] {
                let x = fleet.vms[v].thresholds
                t = ResolvedThresholds(cpu: max(t.cpu, x.cpu), net: max(t.net, x.net), mem: max(t.mem, x.mem))
            }
            return t
        }
        func remaining(_ i: Int) -> ArraySlice<Int> { departable[i][nextDeparture[i]...] }
        /// Fewest departures that can bring host i under its thresholds (Int.max: none can).
        func lowerBound(_ i: Int, _ over: [ResourceKind]) -> Int {
            let t = loosest(i)
            var need = 0
            for r in over {
                var excess = load[i][r] - t[r] * cap[i][r]
                guard excess > 1e-9 else { continue }
                let demands = remaining(i).filter { !moved.contains($0) }.map { fleet.vms[$0].demand[r] }.sorted(by: >)
                var k = 0
                for d in demands where excess > 1e-9 { excess -= d; k += 1 }
                if excess > 1e-9 { return .max }
                need = max(need, k)
            }
            return max(need, 1)
        }
        func shift(_ v: Int, from i: Int, to j: Int) {
            let d = fleet.vms[v].demand
            load[i] -= d; load[j] += d
            members[i].removeAll { $0 == v }
            members[j].append(v)
        }

        var nodes = 0
        var path: [ReliefMove] = []
        var best: (moves: [ReliefMove], cost: Double)?
        var foundAt: Int?
        var stop = false

        func dfs(_ depth: Int) {
            if stop { return }
            nodes += 1
            if nodes > nodeBudget || (foundAt.map { nodes > $0 + tieNodes } ?? false) { stop = true; return }
            var worst: (host: Int, over: [ResourceKind], lb: Int)?
            var bound = 0
            for i in 0..<n {
                let over = violated(i)
                guard !over.isEmpty else { continue }
                let lb = lowerBound(i, over)
                if lb == .max { return }
                bound += lb
                if worst == nil || lb > worst!.lb { worst = (i, over, lb) }
            }
            if bound > depth { return }
            guard let (i, over, _) = worst else {
                // Every host fits: a candidate; the replay decides.
                if let ordered = verify(path) {
                    let cost = path.reduce(0) { $0 + fleet.vms[$1.vm].copyMiB }
                    if best == nil || cost < best!.cost - 1e-9 { best = (ordered, cost) }
                    if foundAt == nil { foundAt = nodes }
                }
                return
            }
            let saved = nextDeparture[i]
            defer { nextDeparture[i] = saved }
            let volBefore = Volume.of(load[i].fraction(of: cap[i]))
            for pos in saved..<departable[i].count {
                let v = departable[i][pos]
                if moved.contains(v) { continue }
                let d = fleet.vms[v].demand
                guard over.contains(where: { d[$0] > 0 }) else { continue }
                let volAfter = Volume.of((load[i] - d).fraction(of: cap[i]))
                if volBefore > 0, (volBefore - volAfter) / volBefore < minGain { continue }
                nextDeparture[i] = pos + 1
                let targets = (destinations[v] ?? []).sorted { a, b in
                    let va = Volume.of((load[a] + d).fraction(of: cap[a]))
                    let vb = Volume.of((load[b] + d).fraction(of: cap[b]))
                    return va != vb ? va < vb : a < b
                }
                for j in targets {
                    moved.insert(v)
                    shift(v, from: i, to: j)
                    path.append(ReliefMove(vm: v, from: hosts[i], to: hosts[j]))
                    dfs(depth - 1)
                    path.removeLast()
                    shift(v, from: j, to: i)
                    moved.remove(v)
                    if stop { return }
                }
            }
        }

        var proven = true
        var k = 0
        while k <= maxMoves, best == nil, !stop {
            dfs(k)
            k += 1
        }
        if stop && best == nil { proven = false }
        return Outcome(moves: best?.moves, nodes: nodes, proven: proven)
    }
}
