import SandpiperModel

/// Step 5 of `Planner.plan` (the paper's *where*): Hot hosts in decreasing Volume; from each, move the movable VM with the highest
/// VSR (Volume / RAM) to the lowest-Volume host where it fits under every threshold; repeat until the host is no
/// longer hot. When no single move works, try a swap (SwapStep). Never creates a hotspot: every target is checked
/// against its thresholds on the ProposedLoad.
extension PlanningContext {
    /// Why `v` cannot be a hotspot-migration candidate, or nil when it can.
    func immovable(_ v: Int) -> String? {
        let vm = fleet.vms[v]
        if vm.declared == nil { return "\(vm.name) is not declared" }
        if vm.automation == .disabled { return "\(vm.name): automation disabled" }
        if touched[v] { return "\(vm.name) already moves in this plan" }
        if vm.migration == .never { return "\(vm.name): SLA \(slaName(v)) forbids migration" }
        if let why = coldWithLocalDisks(v) { return why }
        if let pin = vm.pin, pin == state.hostOf[v] { return "\(vm.name) is pinned here" }
        if vm.recentlyMoved, let age = vm.residencyAge {
            return "\(vm.name) arrived \(Fmt.d(age, 0)) s ago (minimum residency \(Fmt.d(fleet.policy.placement.minResidencySeconds, 0)) s)"
        }
        return nil
    }

    /// VM Volume relative to host `h`'s capacity, and VSR = Volume / RAM (MiB) (VolumeAndVSR.swift).
    func vmVolume(_ v: Int, relativeTo h: Int) -> Double {
        Volume.of(fleet.vms[v].demand.fraction(of: fleet.hosts[h].capacity))
    }
    /// The size is what the move copies: RAM, plus local disk bytes (`copyMiB`; equal to RAM on shared storage).
    func vsr(_ v: Int, on h: Int) -> Double {
        Volume.vsr(demand: fleet.vms[v].demand, ramMiB: fleet.vms[v].copyMiB, capacity: fleet.hosts[h].capacity)
    }

    /// ", 2.0 GiB to copy with its local disks" when the move copies more than RAM; "" otherwise.
    func diskNote(_ v: Int) -> String {
        fleet.vms[v].copyMiB > fleet.vms[v].ram ? ", \(Fmt.mib(fleet.vms[v].copyMiB)) to copy with its local disks" : ""
    }

    /// Why `v` cannot move at all because of its local disks: only a live move copies them, and a cold move (SLA
    /// `migration: cold`, or a VM that does not run) would start it on the target without them.
    func coldWithLocalDisks(_ v: Int) -> String? {
        let vm = fleet.vms[v]
        guard !vm.localDisks.isEmpty, mode(v) == .cold || !vm.active else { return nil }
        let why = vm.active ? "SLA \(slaName(v)) moves it cold" : "it is not running, so it would move cold"
        return "\(vm.name) has local disk(s) \(vm.localDisks.joined(separator: ", ")) and \(why): a cold move does "
            + "not copy disks, so it is not moved"
    }

    /// Movable residents of `h` with demand in one of `hot`, highest VSR first (ties: name).
    func candidates(on h: Int, hot: [ResourceKind]) -> (movable: [Int], held: [String]) {
        var movable: [(Int, Double)] = []
        var held: [String] = []
        for v in state.members[h] {
            guard hot.contains(where: { fleet.vms[v].demand[$0] > 0 }) else { continue }
            if let why = immovable(v) { held.append(why); continue }
            movable.append((v, vsr(v, on: h)))
        }
        movable.sort { $0.1 != $1.1 ? $0.1 > $1.1 : fleet.vms[$0.0].name < fleet.vms[$1.0].name }
        return (movable.map(\.0), held)
    }

    /// Source Volume reduction as a fraction, if `v` left `h`.
    func gain(removing v: Int, from h: Int) -> Double {
        let before = state.volume[h]
        let after = Volume.of((state.load[h] - fleet.vms[v].demand).fraction(of: fleet.hosts[h].capacity))
        return before > 0 ? (before - after) / before : 0
    }

    /// "cpu over 75.0% in 4 of 5 samples (AR predicts 81.2%)" per hot host, in one pass over the hotspots.
    func hotTexts(_ detection: DetectionResult) -> [Int: String] {
        var out: [Int: String] = [:]
        for s in detection.hotspots where s.vm == nil {
            guard let h = fleet.hostIndex[s.host] else { continue }
            let text = "\(s.resource.rawValue) over \(Fmt.pct(s.threshold)) in \(s.overSummary) samples"
                + (s.predicted.map { " (AR predicts \(Fmt.pct($0)))" } ?? "")
            out[h] = out[h].map { $0 + ", " + text } ?? text
        }
        return out
    }

    mutating func relieveHotspots(_ detection: DetectionResult) {
        let hot = fleet.hosts.indices.filter { !detection.hostHot[$0].isEmpty && fleet.hosts[$0].declared }
            .sorted { state.volume[$0] != state.volume[$1] ? state.volume[$0] > state.volume[$1] : $0 < $1 }
        let hotSet = Set(hot)
        let minGain = fleet.policy.placement.minGain
        let texts = hotTexts(detection)
        for h in hot {
            let resources = detection.hostHot[h]
            let detected = texts[h] ?? ""
            var attempts = 0
            // While one hot host is relieved, every other host only gains load, so a VM that found no target
            // will not find one on the next pass either: remember the failed search instead of repeating it.
            var failedSearch: [Int: SearchResult] = [:]
            // How long the hotspot lasts per the AR forecast: computed once, only when cost-benefit filters.
            var duration: Double?
            while true {
                var still = state.over(h, fleet: fleet, resources: resources)
                if still.isEmpty {
                    // Detection (on the samples) says hot, but the profiles already fit: act once anyway, so a
                    // confirmed hotspot is never silently reported as fixed without a move.
                    guard attempts == 0 else { break }
                    still = resources
                }
                attempts += 1
                // Every pass moves at least one VM that may not move again, so this is only a safety net.
                if attempts > 2 * fleet.residents[h].count + 8 { break }
                guard budget > 0 else {
                    unresolved.append(UnresolvedHotspot(host: hostName(h), resources: still,
                                                        reason: "\(detected); maxMigrationsPerRun (\(fleet.policy.placement.maxMigrationsPerRun)) reached"))
                    break
                }
                let (movable, held) = candidates(on: h, hot: still)
                var firstFailure: SearchResult?
                var failures: [(Int, SearchResult)] = []
                var lowGain: [String] = []
                var costly: [String] = []
                var moved = false
                for v in movable.prefix(options.maxCandidatesPerHost) {
                    let g = gain(removing: v, from: h)
                    if g < minGain {
                        lowGain.append("\(fleet.vms[v].name) gains \(Fmt.pct(g)) < minGain \(Fmt.pct(minGain))")
                        continue
                    }
                    if let known = failedSearch[v] {
                        if firstFailure == nil { firstFailure = known }
                        failures.append((v, known))
                        continue
                    }
                    let result = search.run(v, purpose: .hotspot, state: state, excluding: [], staticCounts: staticCounts)
                    guard let t = result.chosen else {
                        if firstFailure == nil { firstFailure = result }
                        failures.append((v, result))
                        failedSearch[v] = result
                        continue
                    }
                    if costBenefit.filters {
                        if duration == nil { duration = hotspotDuration(h, resources: resources) }
                        if let why = costExceedsBenefit(moving: v, from: h, to: t, gain: g, duration: duration!) {
                            costly.append(why); continue
                        }
                    }
                    let why = "\(fleet.vms[v].name) has the highest VSR \(Fmt.d(vsr(v, on: h) * 1000, 4))e-3 (volume \(Fmt.d(vmVolume(v, relativeTo: h), 3)), \(Fmt.mib(fleet.vms[v].ram))\(diskNote(v))) of \(movable.count) movable VM(s) that fit somewhere"
                    let fromBefore = describe(h), toBefore = describe(t)
                    state.move(v, to: t, fleet: fleet)
                    touched[v] = true
                    budget -= 1
                    decisions.append(result.diagnostics)
                    builder.migrate(vm: fleet.vms[v].name, from: h, to: t, mode: mode(v),
                                    reason: "\(hostName(h)) hot: \(detected); \(why); \(hostName(t)) is the lowest-Volume host where it fits (\(toBefore) -> \(describe(t))); \(hostName(h)) after: \(fromBefore) -> \(describe(h))")
                    moved = true
                    break
                }
                if moved { continue }
                if fleet.policy.placement.swaps, budget >= 2,
                   trySwap(hot: h, resources: still, failures: failures, hotHosts: hotSet, detected: detected) {
                    continue
                }
                // No powered host fits: power a standby host on (consolidation left it off) and try again.
                if !failures.isEmpty, let first = failures.first,
                   wakeStandby(because: "\(hostName(h)) hot: \(detected); no powered host fits \(fleet.vms[first.0].name): \(summary(first.1.diagnostics))",
                               for: first.0) != nil {
                    failedSearch = [:]
                    continue
                }
                var reason = detected
                if movable.isEmpty { reason += "; no movable VM" }
                if !held.isEmpty { reason += "; held: " + held.prefix(3).joined(separator: "; ") }
                if !lowGain.isEmpty { reason += "; " + lowGain.prefix(2).joined(separator: "; ") }
                if !costly.isEmpty { reason += "; " + costly.prefix(2).joined(separator: "; ") }
                if let f = firstFailure {
                    reason += "; no host fits \(f.diagnostics.vm) (highest VSR): \(summary(f.diagnostics))"
                    decisions.append(f.diagnostics)
                }
                if fleet.policy.placement.swaps && !movable.isEmpty {
                    reason += budget >= 2 ? "; no swap works" : "; no budget left for a swap"
                }
                unresolved.append(UnresolvedHotspot(host: hostName(h), resources: still, reason: reason))
                break
            }
        }
    }
}
