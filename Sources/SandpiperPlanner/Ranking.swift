import SandpiperModel

// Placement, used by steps 4-7 of `Planner.plan` (PlacementSearch, part 2 of 2): VolumeRank -> soft-rule penalties -> Select, and the search that wires them to FeasibleHosts
// (Nomad's stack: feasibility iterators, then rankers, then select-max; here select-min Volume).

/// Score of a feasible host: its Volume once the VM is on it (lower is better).
struct VolumeRank: Sendable {
    let fleet: Fleet
    func volumeAfter(_ v: Int, on h: Int, state: ProposedLoad) -> Double {
        Volume.of((state.load[h] + fleet.vms[v].demand).fraction(of: fleet.hosts[h].capacity))
    }
}

/// Should-rules: one penalty per anti-affinity group with a member already on the host, and per affinity group
/// whose members run elsewhere but not here. Each penalty doubles the score (Volume after the move), so a
/// penalized host wins only when the alternatives are much more loaded.
struct SoftRules: Sendable {
    static let penaltyPerRule = 1.0
    let fleet: Fleet
    static func score(volumeAfter: Double, penalty: Double) -> Double {
        var s = volumeAfter
        var p = penalty
        while p > 0 { s *= 2; p -= 1 }
        return s
    }

    func penalty(_ v: Int, on h: Int, state: ProposedLoad) -> Double {
        var p = 0.0
        for g in fleet.vms[v].groups where fleet.groups[g].enforcement == .should {
            let others = fleet.groups[g].members.filter { $0 != v && state.hostOf[$0] >= 0 }
            switch fleet.groups[g].rule {
            case .antiAffinity:
                if others.contains(where: { state.hostOf[$0] == h }) { p += Self.penaltyPerRule }
            case .affinity:
                if !others.isEmpty, !others.contains(where: { state.hostOf[$0] == h }) { p += Self.penaltyPerRule }
            }
        }
        return p
    }
}

/// Lowest score wins; ties go to the lower Volume before, then the host name.
enum Select {
    static func best(_ c: [PlacementDiagnostics.Candidate]) -> [PlacementDiagnostics.Candidate] {
        c.sorted { a, b in
            if a.score != b.score { return a.score < b.score }
            if a.volumeBefore != b.volumeBefore { return a.volumeBefore < b.volumeBefore }
            return a.host < b.host
        }
    }
}

struct SearchResult: Sendable {
    var chosen: Int?
    var diagnostics: PlacementDiagnostics
    /// Hosts rejected only for capacity, lowest Volume first: where a swap could make room.
    var resolvable: [Int]
}

/// One placement decision: walk eligible hosts from the lowest Volume up, filter, rank, penalize, select.
/// The walk stops once `enough` unpenalized feasible hosts were seen (the walk is in current-Volume order, so a
/// later host rarely scores better) or after `scanLimit` hosts (Nomad's limit iterator; reported in diagnostics).
/// A pinned VM looks at its pin only.
struct PlacementSearch: Sendable {
    let fleet: Fleet
    let feasible: FeasibleHosts
    let rank: VolumeRank
    let soft: SoftRules
    var enough = 3
    var scanLimit: Int
    var keepResolvable = 16
    var keepExamples = 4

    init(fleet: Fleet, scanLimit: Int) {
        self.fleet = fleet; feasible = FeasibleHosts(fleet: fleet); rank = VolumeRank(fleet: fleet)
        soft = SoftRules(fleet: fleet); self.scanLimit = max(1, scanLimit)
    }

    /// `staticCounts`: rejections of hosts that never enter the walk (unknown, maintenance, undeclared).
    func run(_ v: Int, purpose: PlacementDiagnostics.Purpose, state: ProposedLoad, excluding: [Int] = [],
             staticCounts: [String: Int]) -> SearchResult {
        let current = state.hostOf[v]
        // A handful of distinct reasons: a small array beats hashing a key per rejected host.
        var counts: [(reason: String, count: Int)] = []
        func count(_ reason: String, _ n: Int = 1) {
            if let i = counts.firstIndex(where: { $0.reason == reason }) { counts[i].count += n } else {
                counts.append((reason, n))
            }
        }
        if fleet.vms[v].pin == nil { for (k, n) in staticCounts { count(k, n) } }
        var examples: [String] = []
        var candidates: [PlacementDiagnostics.Candidate] = []
        var resolvable: [Int] = []
        var examined = 0, unpenalized = 0
        var scanCut = 0

        func consider(_ h: Int) {
            examined += 1
            switch feasible.verdict(v, on: h, state: state) {
            case .fits:
                let pen = soft.penalty(v, on: h, state: state)
                let after = rank.volumeAfter(v, on: h, state: state)
                candidates.append(.init(host: fleet.hosts[h].name, volumeBefore: state.volume[h], volumeAfter: after,
                                        penalty: pen, score: SoftRules.score(volumeAfter: after, penalty: pen)))
                if pen == 0 { unpenalized += 1 }
            case .rejected(let rs, let res):
                for r in rs { count(r.reason) }
                if examples.count < keepExamples, let r = rs.first { examples.append(r.text(fleet)) }
                if res, resolvable.count < keepResolvable { resolvable.append(h) }
            }
        }

        // Exhausted: no eligible host has room for one of the VM's resources, whatever its load elsewhere.
        var exhausted: [ResourceKind] = []
        if fleet.vms[v].pin == nil {
            let d = fleet.vms[v].demand
            for r in ResourceKind.allCases where d[r] > 0 {
                guard let best = state.headroom.best(r) else { exhausted.append(r); continue }
                if d[r] > best.room + 1e-9 {
                    exhausted.append(r)
                    if examples.count < keepExamples {
                        examples.append("no host has \(Fmt.amount(d[r], r)) of \(r.rawValue) below its threshold; most room: \(Fmt.amount(max(0, best.room), r)) on \(fleet.hosts[best.host].name)")
                    }
                }
            }
        }

        if !exhausted.isEmpty {
            let others = state.order.keys.count - (current >= 0 && fleet.hosts[current].eligible
                                                     && fleet.hosts[current].schedulable ? 1 : 0)
            for r in exhausted { count("exhausted \(r.rawValue)", others) }
            // Swaps still need colder hosts the VM could use if room were made: the lowest-Volume ones that
            // pass every constraint.
            var looked = 0
            for key in state.order.keys where looked < 2 * keepResolvable && resolvable.count < keepResolvable {
                let h = key.host
                if h == current || excluding.contains(h) { continue }
                looked += 1
                if feasible.constraints(v, on: h, state: state).isEmpty { resolvable.append(h) }
            }
        } else if let pin = fleet.vms[v].pin {
            if pin >= 0, pin != current, !excluding.contains(pin) { consider(pin) }
            let others = fleet.hosts.count - (pin >= 0 ? 1 : 0)
            if others > 0 { count("pinned elsewhere", others) }
        } else {
            let keys = state.order.keys
            var i = 0
            while i < keys.count {
                let h = keys[i].host
                i += 1
                if h == current || excluding.contains(h) { continue }
                if unpenalized >= enough { break }
                if examined >= scanLimit {
                    scanCut = 1 + keys[i...].filter { $0.host != current && !excluding.contains($0.host) }.count
                    break
                }
                consider(h)
            }
            // The walk was cut short without a fit: also try the hosts with the most room per resource.
            if candidates.isEmpty && scanCut > 0 {
                var extra: [Int] = []
                for r in ResourceKind.allCases where fleet.vms[v].demand[r] > 0 {
                    if let b = state.headroom.best(r), b.host != current, !excluding.contains(b.host),
                       !extra.contains(b.host) { extra.append(b.host) }
                }
                for h in extra {
                    let before = examined
                    consider(h)
                    if examined > before { scanCut -= 1 }
                }
            }
        }
        if scanCut > 0 { count("scan limit (not examined)", scanCut) }
        let ranked = Select.best(candidates)
        let chosen = ranked.first.flatMap { fleet.hostIndex[$0.host] }
        let diag = PlacementDiagnostics(
            vm: fleet.vms[v].name, purpose: purpose, from: current >= 0 ? fleet.hosts[current].name : nil,
            chosen: ranked.first?.host, hostsExamined: examined, hostsTotal: fleet.hosts.count,
            filtered: counts.filter { $0.count > 0 }
                .map { PlacementDiagnostics.Count(reason: $0.reason, count: $0.count) }
                .sorted { $0.reason < $1.reason },
            examples: examples, candidates: Array(ranked.prefix(enough)))
        return SearchResult(chosen: chosen, diagnostics: diag, resolvable: resolvable)
    }
}
