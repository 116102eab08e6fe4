import SandpiperModel

/// Step 5, second half (the paper's swap): when no single migration relieves a hot host, exchange a hot VM `a` (on hot host H) with a
/// lower-Volume VM `b` on a colder host T that rejected `a` only for capacity ("resolvable"). Two migrations when
/// T (or H) can physically hold both VMs for a moment; otherwise three: `b` goes to a staging host S first.
/// The checks are conservative: thresholds are the stricter of before/after, groups are judged with both VMs
/// still in place. A two-move swap is preferred over a three-move one (migration cost); among equals the order
/// is the paper's: hot VMs by VSR, colder hosts by Volume, partners by Volume.
extension PlanningContext {
    // Bounds on the search, so an overloaded fleet (where most swaps fail) stays fast.
    static let swapPartnersPerHost = 16
    static let swapVMsTried = 4
    static let swapHostsTried = 8
    static let stagingSearches = 2

    struct SwapCheck {
        var counts: [String: Int] = [:]
        var examples: [String] = []
        var pairs = 0
        var targets = Set<Int>()
        mutating func reject(_ key: String, _ detail: @autoclosure () -> String) {
            counts[key, default: 0] += 1
            if examples.count < 4 { examples.append(detail()) }
        }
    }

    mutating func trySwap(hot h: Int, resources: [ResourceKind], failures: [(Int, SearchResult)],
                          hotHosts: Set<Int>, detected: String) -> Bool {
        var check = SwapCheck()
        var staged: (a: Int, b: Int, t: Int, staging: SearchResult, volBefore: Double)?
        var stagingSearches = 0
        let minGain = max(fleet.policy.placement.minGain, 1e-9)
        var duration: Double?  // the hotspot's AR-forecast duration, computed once when cost-benefit filters
        for (a, result) in failures.prefix(Self.swapVMsTried) {
            let va = fleet.vms[a]
            let volA = vmVolume(a, relativeTo: h)
            let targets = result.resolvable.filter { t in
                t != h && !hotHosts.contains(t) && state.volume[t] < state.volume[h]
            }
            for t in targets.prefix(Self.swapHostsTried) {
                let partners = state.members[t]
                    .filter { b in immovable(b) == nil && vmVolume(b, relativeTo: h) < volA }
                    .map { ($0, vmVolume($0, relativeTo: h)) }
                    .sorted { $0.1 != $1.1 ? $0.1 < $1.1 : fleet.vms[$0.0].name < fleet.vms[$1.0].name }
                for (b, _) in partners.prefix(Self.swapPartnersPerHost) {
                    check.pairs += 1
                    check.targets.insert(t)
                    let vb = fleet.vms[b]
                    var tag: String { "\(va.name)<->\(vb.name)@\(hostName(t))" }
                    // a onto T, with b gone.
                    if let c = search.feasible.constraints(a, on: t, state: state).first {
                        check.reject(c.reason, "\(tag): \(c.text(fleet))"); continue
                    }
                    if let c = search.feasible.capacity(a, on: t, state: state, extra: Vec3.zero - vb.demand,
                                                        extraCPUResv: -vb.cpuReservation,
                                                        extraMemResv: -vb.memReservation,
                                                        extraVcpus: -vb.vcpus,
                                                        extraMemAlloc: -vb.allocatedMiB).first {
                        check.reject(c.reason, "\(tag): \(c.text(fleet))"); continue
                    }
                    // b onto H, with a gone.
                    if let c = search.feasible.constraints(b, on: h, state: state).first {
                        check.reject(c.reason, "\(tag): \(c.text(fleet))"); continue
                    }
                    let cap = fleet.hosts[h].capacity
                    if state.cpuReserved[h] - va.cpuReservation + vb.cpuReservation > cap.cpu + 1e-9
                        || state.memReserved[h] - va.memReservation + vb.memReservation > cap.mem + 1e-9 {
                        check.reject("reservations", "\(tag): reservations on \(hostName(h)) would exceed capacity"); continue
                    }
                    if let c = search.feasible.allocation(b, on: h, state: state, extraVcpus: -va.vcpus,
                                                          extraMemAlloc: -va.allocatedMiB).first {
                        check.reject(c.reason, "\(tag): \(c.text(fleet))"); continue
                    }
                    let before = state.load[h], after = before - va.demand + vb.demand
                    let th = state.thresholds[h].strictest(with: vb.thresholds)
                    var ok = true
                    for r in ResourceKind.allCases {
                        let limit = th[r] * cap[r]
                        if resources.contains(r) {
                            if after[r] > before[r] + 1e-9 {
                                check.reject("\(r.rawValue) worse", "\(tag): \(hostName(h)) \(r.rawValue) would rise"); ok = false; break
                            }
                        } else if after[r] > limit + 1e-9 {
                            check.reject("\(r.rawValue) threshold", "\(tag): \(hostName(h)) would cross its \(r.rawValue) threshold"); ok = false; break
                        }
                    }
                    if !ok { continue }
                    let volBefore = state.volume[h], volAfter = Volume.of(after.fraction(of: cap))
                    let g = (volBefore - volAfter) / volBefore
                    if g < minGain {
                        check.reject("gain", "\(tag): \(hostName(h)) volume \(Fmt.d(volBefore, 3)) -> \(Fmt.d(volAfter, 3)) gains \(Fmt.pct(g))")
                        continue
                    }
                    if let why = swapCostExceedsBenefit(a: a, b: b, h: h, t: t, gain: g, resources: resources,
                                                        duration: &duration) {
                        check.reject("cost-benefit", "\(tag): \(why)"); continue
                    }
                    // Order the moves so every intermediate state exists.
                    let tHolds = search.feasible.canHold(t, extra: va.demand, cpuResv: va.cpuReservation,
                                                        memResv: va.memReservation, vcpus: va.vcpus,
                                                        memAlloc: va.allocatedMiB, state: state)
                    let hHolds = search.feasible.canHold(h, extra: vb.demand, cpuResv: vb.cpuReservation,
                                                        memResv: vb.memReservation, vcpus: vb.vcpus,
                                                        memAlloc: vb.allocatedMiB, state: state)
                    if !tHolds && !hHolds {
                        guard staged == nil else { continue }  // keep the first three-move swap as a fallback
                        guard stagingSearches < Self.stagingSearches else { continue }
                        guard budget >= 3 else {
                            check.reject("staging budget", "\(tag): needs a staging host and 3 migrations; \(budget) left"); continue
                        }
                        stagingSearches += 1
                        let s = search.run(b, purpose: .staging, state: state, excluding: [h, t], staticCounts: staticCounts)
                        guard s.chosen != nil else {
                            check.reject("no staging host", "\(tag): no staging host fits \(vb.name)"); continue
                        }
                        staged = (a, b, t, s, volBefore)
                        continue
                    }
                    commitSwap(a: a, h: h, b: b, t: t, staging: nil, tFirst: tHolds, check: check,
                               detected: detected, volBefore: volBefore)
                    return true
                }
            }
        }
        if let s = staged {
            commitSwap(a: s.a, h: h, b: s.b, t: s.t, staging: s.staging, tFirst: false, check: check,
                       detected: detected, volBefore: s.volBefore)
            return true
        }
        if check.pairs > 0, let (a, _) = failures.first {
            decisions.append(PlacementDiagnostics(
                vm: fleet.vms[a].name, purpose: .swap, from: hostName(h), chosen: nil, hostsExamined: check.targets.count,
                hostsTotal: fleet.hosts.count,
                filtered: check.counts.map { .init(reason: $0.key, count: $0.value) }.sorted { $0.reason < $1.reason },
                examples: check.examples, candidates: []))
        }
        return false
    }

    private mutating func commitSwap(a: Int, h: Int, b: Int, t: Int, staging: SearchResult?, tFirst: Bool,
                                     check: SwapCheck, detected: String, volBefore: Double) {
        let va = fleet.vms[a], vb = fleet.vms[b]
        let group = builder.nextSwapGroup()
        let hBefore = describe(h), tBefore = describe(t)
        let why = "\(hostName(h)) hot: \(detected); no single migration fits; swap \(va.name) (volume \(Fmt.d(vmVolume(a, relativeTo: h), 3))) with lower-Volume \(vb.name) (volume \(Fmt.d(vmVolume(b, relativeTo: h), 3))) on colder \(hostName(t))"
        var s: Int?
        if let staging, let sName = staging.diagnostics.chosen, let si = fleet.hostIndex[sName] { s = si }
        let total = s == nil ? 2 : 3
        func afterText() -> String {
            "\(hostName(h)): \(hBefore) -> \(describe(h)); \(hostName(t)): \(tBefore) -> \(describe(t))"
        }
        // Apply to the proposed load first so reasons can show the final picture.
        state.move(a, to: t, fleet: fleet)
        state.move(b, to: h, fleet: fleet)
        touched[a] = true; touched[b] = true
        let final = afterText()
        budget -= total
        if let s {
            let sBefore = describe(s)
            builder.migrate(vm: vb.name, from: t, to: s, mode: mode(b), swapGroup: group,
                            reason: "\(why); step 1/3: neither host can hold both, so \(vb.name) waits on staging host \(hostName(s)) (\(sBefore), lowest-Volume host that fits it)")
            builder.migrate(vm: va.name, from: h, to: t, mode: mode(a), swapGroup: group,
                            reason: "\(why); step 2/3: \(va.name) to \(hostName(t)); \(final)")
            builder.migrate(vm: vb.name, from: s, to: h, mode: mode(b), swapGroup: group,
                            reason: "\(why); step 3/3: \(vb.name) from staging to \(hostName(h)); \(final)")
            decisions.append(staging!.diagnostics)
        } else if tFirst {
            builder.migrate(vm: va.name, from: h, to: t, mode: mode(a), swapGroup: group,
                            reason: "\(why); step 1/2: \(hostName(t)) can hold both for a moment; \(final)")
            builder.migrate(vm: vb.name, from: t, to: h, mode: mode(b), swapGroup: group,
                            reason: "\(why); step 2/2: \(vb.name) takes \(va.name)'s place; \(final)")
        } else {
            builder.migrate(vm: vb.name, from: t, to: h, mode: mode(b), swapGroup: group,
                            reason: "\(why); step 1/2: \(hostName(h)) can hold both for a moment; \(final)")
            builder.migrate(vm: va.name, from: h, to: t, mode: mode(a), swapGroup: group,
                            reason: "\(why); step 2/2: \(va.name) takes \(vb.name)'s place; \(final)")
        }
        decisions.append(PlacementDiagnostics(
            vm: va.name, purpose: .swap, from: hostName(h), chosen: hostName(t), hostsExamined: check.targets.count,
            hostsTotal: fleet.hosts.count,
            filtered: check.counts.map { .init(reason: $0.key, count: $0.value) }.sorted { $0.reason < $1.reason },
            examples: check.examples,
            candidates: [.init(host: hostName(t), volumeBefore: volBefore, volumeAfter: state.volume[h],
                               penalty: 0, score: state.volume[h])]))
    }
}
