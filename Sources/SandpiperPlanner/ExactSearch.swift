import SandpiperModel

/// One migration of the relief step, by index: `vm` from host `from` to host `to`.
struct ReliefMove: Sendable, Equatable {
    var vm: Int
    var from: Int
    var to: Int
}

/// Step 5b, second half: the fewest migrations that relieve every hot host of a small neighbourhood, by branch and
/// bound. At each node a violated host (the one with the smallest lower bound: the cheapest to settle) must lose
/// one of its movable VMs (the branch), to any host of the neighbourhood its constraints admit; an arrival may push
/// a host over its threshold, which a later move must then fix, so exchanges and evictions come out of the same
/// rule. Lower bound: per violated host, the fewest of its remaining movable VMs whose demand covers the excess;
/// moves out of one host never help another, so the bounds add up. Symmetry: each host's VMs leave in one fixed
/// order; every VM moves at most once.
/// Half the node budget goes to iterative deepening on the number of moves (its first solution is a proven
/// minimum); if that finds none, the rest to depth limits 3 apart, each searched with branch and bound (a solution
/// lowers the limit).
/// The local model (loads and thresholds) only prunes; every solution is checked by replaying its moves through
/// FeasibleHosts on a ProposedLoad (`orderedRelief`), which also orders them so every intermediate state exists.
/// Deterministic: the budget counts nodes, not time; children come in a fixed order (VMs by Volume, then RAM,
/// then name; targets that stay under their thresholds first, then by Volume), and the first solution of a count
/// wins.
struct ExactSearch {
    var nodeBudget: Int

    struct Outcome {
        var moves: [ReliefMove]?
        var nodes: Int
        /// Every smaller k was searched to the end.
        var proven: Bool
    }

    /// `hosts`: the neighbourhood (global indices); `detected`: confirmed hot resources per global host; at most
    /// `maxMoves` moves; `verify` replays a candidate and returns it ordered, or nil.
    /// `exchanges` false (policy `swaps: false`): only VMs of hot hosts move, and never onto another hot host.
    func run(ctx: PlanningContext, hosts: [Int], detected: [[ResourceKind]], maxMoves: Int, exchanges: Bool,
             verify: ([ReliefMove]) -> [ReliefMove]?) -> Outcome {
        let fleet = ctx.fleet, state = ctx.state
        let n = hosts.count
        let cap = hosts.map { fleet.hosts[$0].capacity }
        var load = hosts.map { state.load[$0] }
        let initial = load
        let hot = hosts.map { detected[$0] }
        let defaults = fleet.policy.thresholds
        let minGain = fleet.policy.placement.minGain

        // Local VM ids: the residents of the neighbourhood, with their demand and thresholds copied once.
        var global: [Int] = []
        var members: [[Int]] = []
        for h in hosts {
            members.append(state.members[h].map { v in global.append(v); return global.count - 1 })
        }
        let demand = global.map { fleet.vms[$0].demand }
        let vmThresholds = global.map { fleet.vms[$0].thresholds }
        let copy = global.map { fleet.vms[$0].copyMiB }

        // Departable VMs per host, in the fixed order they may leave: largest Volume first (fewest moves), then
        // least RAM (least copied), then name.
        var departable: [[Int]] = []
        var canLeave = [Bool](repeating: false, count: global.count)
        var destinations = [[Int]](repeating: [], count: global.count)
        for (i, h) in hosts.enumerated() {
            let vs = exchanges || !hot[i].isEmpty ? members[i].filter { ctx.immovable(global[$0]) == nil } : []
            departable.append(vs.sorted { a, b in
                let va = ctx.vmVolume(global[a], relativeTo: h), vb = ctx.vmVolume(global[b], relativeTo: h)
                if va != vb { return va > vb }
                if copy[a] != copy[b] { return copy[a] < copy[b] }
                return fleet.vms[global[a]].name < fleet.vms[global[b]].name
            })
            for v in vs {
                canLeave[v] = true
                destinations[v] = (0..<n).filter { t in
                    t != i && state.receives(hosts[t], fleet: fleet) && (exchanges || hot[t].isEmpty)
                        && ctx.search.feasible.constraints(global[v], on: hosts[t], state: state).isEmpty
                        && ctx.search.feasible.capacity(global[v], on: hosts[t], state: state).allSatisfy {
                            if case .threshold = $0.detail { true } else { false }
                        }
                }
            }
        }
        var moved = [Bool](repeating: false, count: global.count)
        var nextDeparture = [Int](repeating: 0, count: n)

        func strictest(_ vs: [Int]) -> ResolvedThresholds {
            guard let first = vs.first else { return defaults }
            var t = vmThresholds[first]
            for v in vs.dropFirst() { t = t.strictest(with: vmThresholds[v]) }
            return t
        }
        func violated(_ i: Int) -> [ResourceKind] {
            let t = strictest(members[i])
            let u = load[i].fraction(of: cap[i]), u0 = initial[i].fraction(of: cap[i])
            var out: [ResourceKind] = []
            for r in ResourceKind.allCases where u[r] > t[r] + 1e-12 && (hot[i].contains(r) || u[r] > u0[r] + 1e-12) {
                out.append(r)
            }
            return out
        }
        /// The host's thresholds can only get looser than the strictest of the VMs that stay for sure.
        func loosest(_ i: Int) -> ResolvedThresholds {
            let stay = members[i].filter { moved[$0] || !canLeave[$0] }
            if !stay.isEmpty { return strictest(stay) }
            var t = defaults
            for v in members[i] {
                let x = vmThresholds[v]
                t = ResolvedThresholds(cpu: max(t.cpu, x.cpu), net: max(t.net, x.net), mem: max(t.mem, x.mem))
            }
            return t
        }
        /// Fewest departures that can bring host i under its thresholds (Int.max: none can).
        func lowerBound(_ i: Int, _ over: [ResourceKind]) -> Int {
            let t = loosest(i)
            var need = 0
            for r in over {
                var excess = load[i][r] - t[r] * cap[i][r]
                guard excess > 1e-9 else { continue }
                var demands: [Double] = []
                for v in departable[i][nextDeparture[i]...] where !moved[v] { demands.append(demand[v][r]) }
                demands.sort(by: >)
                var k = 0
                for d in demands where excess > 1e-9 { excess -= d; k += 1 }
                if excess > 1e-9 { return .max }
                need = max(need, k)
            }
            return max(need, 1)
        }
        func shift(_ v: Int, from i: Int, to j: Int) {
            load[i] -= demand[v]; load[j] += demand[v]
            members[i].removeAll { $0 == v }
            members[j].append(v)
        }

        var nodes = 0
        var path: [ReliefMove] = []
        var best: [ReliefMove]?
        var limit = 0
        var stop = false
        var phaseBudget = nodeBudget / 2

        func dfs() {
            if stop { return }
            nodes += 1
            if nodes > phaseBudget { stop = true; return }
            var worst: (host: Int, over: [ResourceKind], lb: Int)?
            var bound = 0
            for i in 0..<n {
                let over = violated(i)
                guard !over.isEmpty else { continue }
                let lb = lowerBound(i, over)
                if lb == .max { return }
                bound += lb
                if worst == nil || lb < worst!.lb { worst = (i, over, lb) }
            }
            if path.count + bound > limit { return }
            guard let (i, over, _) = worst else {
                // Every host fits: a candidate; the replay decides. Later candidates must be smaller.
                if let ordered = verify(path) {
                    best = ordered
                    limit = path.count - 1
                }
                return
            }
            let saved = nextDeparture[i]
            defer { nextDeparture[i] = saved }
            let volBefore = Volume.of(load[i].fraction(of: cap[i]))
            for pos in saved..<departable[i].count {
                let v = departable[i][pos]
                if moved[v] { continue }
                let d = demand[v]
                guard over.contains(where: { d[$0] > 0 }) else { continue }
                let volAfter = Volume.of((load[i] - d).fraction(of: cap[i]))
                if volBefore > 0, (volBefore - volAfter) / volBefore < minGain { continue }
                nextDeparture[i] = pos + 1
                // Hosts that stay under their thresholds first, then the lowest Volume after the move.
                var targets: [(host: Int, over: Bool, volume: Double)] = []
                for j in destinations[v] {
                    let t = strictest(members[j]).strictest(with: vmThresholds[v])
                    let u = (load[j] + d).fraction(of: cap[j])
                    let over = u.cpu > t.cpu + 1e-12 || u.net > t.net + 1e-12 || u.mem > t.mem + 1e-12
                    targets.append((j, over, Volume.of(u)))
                }
                targets.sort { a, b in
                    if a.over != b.over { return !a.over }
                    if a.volume != b.volume { return a.volume < b.volume }
                    return a.host < b.host
                }
                for (j, _, _) in targets {
                    moved[v] = true
                    shift(v, from: i, to: j)
                    path.append(ReliefMove(vm: global[v], from: hosts[i], to: hosts[j]))
                    dfs()
                    path.removeLast()
                    shift(v, from: j, to: i)
                    moved[v] = false
                    if stop { return }
                }
            }
        }

        // Phase 1, iterative deepening (half the budget): the first solution is a proven minimum.
        var proven = false
        var k = 0
        while k <= maxMoves, best == nil, !stop {
            limit = k
            dfs()
            if best != nil && !stop { proven = true }
            k += 1
        }
        if best == nil && !stop { proven = true }  // no solution within maxMoves
        // Phase 2, depth-first branch and bound from maxMoves (the rest): some solution, then smaller ones.
        // Phase 2, the rest of the budget: depth limits 3 apart from where phase 1 stopped, each searched depth
        // first with branch and bound (a solution lowers the limit), until one holds a solution.
        if best == nil && stop {
            phaseBudget = nodeBudget
            var reach = k - 1
            while best == nil, reach < maxMoves, nodes < phaseBudget {
                stop = false
                reach = min(maxMoves, reach + 3)
                limit = reach
                dfs()
            }
        }
        return Outcome(moves: best, nodes: nodes, proven: proven)
    }
}
