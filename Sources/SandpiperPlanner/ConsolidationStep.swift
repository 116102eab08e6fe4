import SandpiperModel

/// Step 7 of `Planner.plan`: the dynamic data center (VMware DPM). Two halves, both only when `policy.consolidation.enabled`:
///
/// - **Wake ahead.** A powered host is *warm* when its newest sample or its AR(p) prediction crosses the wake level
///   (halfway from `targetUtilization` to the host's threshold) for a resource: the load is rising towards a
///   hotspot. Its VMs (highest VSR first, movable ones only) go to the lowest-Volume powered host that stays under
///   `targetUtilization`; when none has room, a standby host is powered on first (the largest, then by name).
/// - **Consolidate.** Only in a calm plan (nothing hot, nothing warm, no migration planned yet): hosts that have
///   been *low* (every resource under the target band's low edge, `targetUtilization - targetBand`, like VMware
///   DPM; or under `lowUtilization` when the policy sets it) for `powerOffAfter` are emptied, lowest Volume first
///   (then least RAM to move), each VM going to the *most* loaded powered host where it stays under
///   `targetUtilization` and every threshold, reservation and must-rule, and breaks no `should` rule it kept on
///   its host; then the host is drained and powered off. A host is emptied
///   only when all its VMs fit (no half-empty hosts), never below `minHostsOn` powered hosts, and only while the
///   powered hosts minus the `spareHosts` largest still hold the load under the policy thresholds (N+1).
///
/// Stability: no VM that moved within `minResidency` is moved (by either half, nor by hotspot relief), so a VM
/// packed by consolidation is not pulled back by relief and vice versa. Sustained-low comes from the observation
/// (`HostObservation.lowSince`, recorded by the engine in state.json, and `now`): the planner keeps no clock.
extension PlanningContext {
    /// Status as the plan leaves the hosts: powered on -> up, powered off -> standby.
    func powerStatus(_ hosts: [HostUtilization]) -> [HostUtilization] {
        hosts.enumerated().map { h, u in
            var u = u
            if state.awake[h] { u.status = .up }
            if state.asleep[h] { u.status = .standby }
            return u
        }
    }

    /// Powers on a standby host (the largest, then by name) — one where `vm`, when given, passes every filter once
    /// the host is up, so no host is woken that the VM cannot use; nil when there is none.
    mutating func wakeStandby(because why: String, for vm: Int? = nil) -> Int? {
        let standby = fleet.hosts.indices.filter { h in
            guard fleet.hosts[h].status == .standby && fleet.hosts[h].declared && fleet.hosts[h].powerManaged
                    && fleet.hosts[h].schedulable && !state.awake[h] else { return false }
            guard let vm else { return true }
            var trial = state
            trial.wake(h, fleet: fleet)
            return search.feasible.verdict(vm, on: h, state: trial).fits
        }
        guard let h = standby.min(by: { a, b in
            let ca = fleet.hosts[a].capacity, cb = fleet.hosts[b].capacity
            if ca.cpu != cb.cpu { return ca.cpu > cb.cpu }
            if ca.mem != cb.mem { return ca.mem > cb.mem }
            return a < b
        }) else { return nil }
        state.wake(h, fleet: fleet)
        builder.powerOn(host: h, reason: "\(why); \(hostName(h)) is the largest standby host (then by name)")
        return h
    }

    mutating func consolidate(_ detection: DetectionResult) {
        let c = fleet.policy.consolidation
        guard c.enabled else { return }
        if c.wakeAhead, wakeAhead(detection) { return }
        let calm = detection.hostHot.allSatisfy(\.isEmpty) && builder.migrationCount == 0
            && !state.awake.contains(true)
        if calm { emptyLowHosts() }
    }

    // MARK: wake ahead

    /// Per resource: the host's newest utilization sample and its AR prediction, or nil without samples.
    func hostTrend(_ h: Int) -> (latest: Vec3, predicted: Vec3)? {
        guard let window = fleet.hostSeries(h) else { return nil }
        var predicted = window.last!
        if fleet.policy.prediction.model == .ar, fleet.policy.prediction.order > 0 {
            for r in ResourceKind.allCases {
                predicted[r] = ARPredictor.predict(window.map { $0[r] }[...], order: fleet.policy.prediction.order)
            }
        }
        return (window.last!, predicted)
    }

    /// Halfway from the target to the host's threshold.
    func wakeLevel(_ h: Int, _ r: ResourceKind) -> Double {
        let t = fleet.policy.consolidation.targetUtilization
        return t + max(0, state.thresholds[h][r] - t) / 2
    }

    /// Relieves warm hosts before they become hot; true when anything was planned (consolidation then waits).
    mutating func wakeAhead(_ detection: DetectionResult) -> Bool {
        let target = fleet.policy.consolidation.targetUtilization
        var warm: [(host: Int, text: String)] = []
        for h in fleet.hosts.indices where state.receives(h, fleet: fleet) && detection.hostHot[h].isEmpty {
            guard let trend = hostTrend(h) else { continue }
            let rising = ResourceKind.allCases.filter { r in
                max(trend.latest[r], trend.predicted[r]) > wakeLevel(h, r) + 1e-12
            }
            guard !rising.isEmpty else { continue }
            let text = rising.map { r in
                "\(r.rawValue) at \(Fmt.pct(trend.latest[r])), AR predicts \(Fmt.pct(trend.predicted[r])) (wake level \(Fmt.pct(wakeLevel(h, r))), threshold \(Fmt.pct(state.thresholds[h][r])))"
            }.joined(separator: ", ")
            warm.append((h, text))
        }
        guard !warm.isEmpty else { return false }
        var planned = false
        warm.sort { state.volume[$0.host] != state.volume[$1.host] ? state.volume[$0.host] > state.volume[$1.host] : $0.host < $1.host }
        for (h, text) in warm {
            var tries = 0
            while budget > 0, tries < fleet.residents[h].count + 2,
                  ResourceKind.allCases.contains(where: { state.utilization(h, fleet: fleet)[$0] > target + 1e-9 }) {
                tries += 1
                let (movable, _) = candidates(on: h, hot: ResourceKind.allCases)
                var moved = false
                for v in movable.prefix(options.maxCandidatesPerHost) {
                    var t = receiver(for: v, packing: false, state: state)
                    if t == nil {
                        let warmText = "\(hostName(h)) nears its threshold: \(text); no powered host holds \(fleet.vms[v].name) under the target \(Fmt.pct(target))"
                        guard let w = wakeStandby(because: "wake ahead: \(warmText)", for: v)
                        else { continue }
                        planned = true
                        t = receiver(for: v, packing: false, state: state) ?? w
                        if !search.feasible.verdict(v, on: t!, state: state).fits { t = nil }
                    }
                    guard let t else { continue }
                    let fromBefore = describe(h), toBefore = describe(t)
                    state.move(v, to: t, fleet: fleet)
                    touched[v] = true
                    budget -= 1
                    builder.migrate(vm: fleet.vms[v].name, from: h, to: t, mode: mode(v),
                                    reason: "wake ahead: \(hostName(h)) nears its threshold: \(text); \(fleet.vms[v].name) has the highest VSR of its movable VMs; \(hostName(t)) is the lowest-Volume powered host that stays under the target \(Fmt.pct(target)) (\(toBefore) -> \(describe(t))); \(hostName(h)): \(fromBefore) -> \(describe(h))")
                    moved = true
                    planned = true
                    break
                }
                if !moved { break }
            }
        }
        return planned
    }

    /// A powered host for `v` (not its own) that passes every filter and stays under the target utilization for
    /// every resource: the most loaded one when packing, the least loaded one when relieving.
    func receiver(for v: Int, packing: Bool, state: ProposedLoad, excluding: Int? = nil,
                  keepingShouldRulesFrom home: Int? = nil) -> Int? {
        let target = fleet.policy.consolidation.targetUtilization
        let keys = state.order.keys
        let current = state.hostOf[v]
        let soft = SoftRules(fleet: fleet)
        // Should-rules: a receiver may not cost the VM more penalties than its home host does (no new violation).
        let homePenalty = home.map { soft.penalty(v, on: $0, state: state) }
        var examined = 0
        for i in keys.indices {
            let h = (packing ? keys[keys.count - 1 - i] : keys[i]).host
            if h == current || h == excluding { continue }
            // The target first (cheap), then every filter, at most `scanLimit` times (Nomad's limit iterator).
            let after = (state.load[h] + fleet.vms[v].demand).fraction(of: fleet.hosts[h].capacity)
            guard ResourceKind.allCases.allSatisfy({ after[$0] <= target + 1e-9 }) else { continue }
            if let homePenalty, soft.penalty(v, on: h, state: state) > homePenalty { continue }
            examined += 1
            if examined > options.scanLimit { return nil }
            if search.feasible.verdict(v, on: h, state: state).fits { return h }
        }
        return nil
    }

    // MARK: consolidate

    mutating func emptyLowHosts() {
        let c = fleet.policy.consolidation
        let now = fleet.observation.now
        var powered = fleet.hosts.indices.filter { state.receives($0, fleet: fleet) }.count
        // What emptying a host costs: the bytes its moves copy (RAM, plus local disks).
        func ram(_ h: Int) -> Double { state.members[h].reduce(0.0) { $0 + fleet.vms[$1].copyMiB } }
        var low: [(host: Int, since: Double)] = []
        var lowUtilization: [Int: Vec3] = [:]
        var spare = SpareCapacity(fleet: fleet, state: state)
        // A cordoned host keeps its VMs: it is never emptied for power-off.
        for h in fleet.hosts.indices where fleet.hosts[h].status == .up && fleet.hosts[h].eligible
            && fleet.hosts[h].schedulable && fleet.hosts[h].powerManaged {
            let u = state.utilization(h, fleet: fleet)
            guard c.isLow(cpu: u.cpu, net: u.net, mem: u.mem), let since = fleet.hosts[h].lowSince,
                  now - since >= c.powerOffAfterSeconds - 1e-9 else { continue }
            low.append((h, since))
            lowUtilization[h] = u
        }
        low.sort { a, b in
            let va = state.volume[a.host], vb = state.volume[b.host]
            if va != vb { return va < vb }
            let ra = ram(a.host), rb = ram(b.host)
            return ra != rb ? ra < rb : a.host < b.host
        }
        for (h, since) in low {
            guard powered - 1 >= max(1, c.minHostsOn) else { break }
            let residents = state.members[h]
            guard residents.count <= budget else { continue }
            guard residents.allSatisfy({ immovable($0) == nil }) else { continue }
            // Trial on the proposed load itself, undone when the host cannot be emptied (no O(hosts) copy).
            state.sleep(h, fleet: fleet)
            // Largest first (first-fit decreasing), ties by name.
            let order = residents.sorted { a, b in
                let va = vmVolume(a, relativeTo: h), vb = vmVolume(b, relativeTo: h)
                return va != vb ? va > vb : fleet.vms[a].name < fleet.vms[b].name
            }
            var moves: [(vm: Int, to: Int, before: String, after: String)] = []
            var fits = true
            for v in order {
                guard let t = receiver(for: v, packing: true, state: state, keepingShouldRulesFrom: h)
                else { fits = false; break }
                let b = describe(t)
                state.move(v, to: t, fleet: fleet)
                moves.append((v, t, b, describe(t)))
            }
            guard fits, spare.holds(without: fleet.hosts[h].capacity) else {
                for m in moves.reversed() { state.move(m.vm, to: h, fleet: fleet) }
                state.unsleep(h, fleet: fleet)
                continue
            }
            let u = lowUtilization[h] ?? .zero
            let receivers = Array(Set(moves.map(\.to))).sorted().map(hostName)
            let movedRAM = residents.reduce(0.0) { $0 + fleet.vms[$1].ram }
            let level = c.lowUtilization != nil ? Fmt.pct(c.lowLevel)
                : "the target band's low edge \(Fmt.pct(c.lowLevel)) (\(Fmt.pct(c.targetUtilization)) - \(Fmt.pct(c.targetBand)))"
            let headline = "\(hostName(h)) below \(level) for \(Fmt.d((now - since) / 60, 0)) min (cpu \(Fmt.pct(u.cpu)), net \(Fmt.pct(u.net)), mem \(Fmt.pct(u.mem)))"
                + (residents.isEmpty ? "; it holds no VM"
                   : "; its \(residents.count) VM(s) (\(Fmt.mib(movedRAM))) fit on \(receivers.joined(separator: "/")) under \(Fmt.pct(c.targetUtilization))")
            for m in moves {
                touched[m.vm] = true
                budget -= 1
                builder.migrate(vm: fleet.vms[m.vm].name, from: h, to: m.to, mode: mode(m.vm),
                                reason: "consolidation: \(headline); \(hostName(m.to)) is the most loaded powered host where \(fleet.vms[m.vm].name) stays under \(Fmt.pct(c.targetUtilization)) and every threshold (\(m.before) -> \(m.after))")
            }
            powered -= 1
            spare.remove(fleet.hosts[h].capacity)
            builder.drainAndPowerOff(
                host: h,
                drainReason: "\(hostName(h)) holds no VM once its \(residents.count) migration(s) are done; refuse to power off otherwise",
                offReason: "consolidation: \(headline); \(powered) host(s) stay powered (minHostsOn \(c.minHostsOn), spareHosts \(c.spareHosts))")
        }
    }
}

/// N+k: the powered hosts without the `spareHosts` largest (per resource) must still hold the whole load under the
/// policy's thresholds. Kept incrementally (sorted capacities and their sum), so checking a candidate is O(k).
struct SpareCapacity: Sendable {
    let k: Int
    let thresholds: ResolvedThresholds
    let load: Vec3
    /// Per resource, capacities of the powered hosts, largest first.
    private var caps: [[Double]]
    private var sum: Vec3

    init(fleet: Fleet, state: ProposedLoad) {
        k = fleet.policy.consolidation.spareHosts
        thresholds = fleet.policy.thresholds
        var load = Vec3.zero, sum = Vec3.zero
        var caps = [[Double]](repeating: [], count: 3)
        for h in fleet.hosts.indices {
            load += state.load[h]
            guard state.receives(h, fleet: fleet) else { continue }
            for (i, r) in ResourceKind.allCases.enumerated() { caps[i].append(fleet.hosts[h].capacity[r]) }
            sum += fleet.hosts[h].capacity
        }
        self.load = load; self.sum = sum; self.caps = caps.map { $0.sorted(by: >) }
    }

    /// Would the load still fit with `capacity` powered off?
    func holds(without capacity: Vec3) -> Bool {
        for (i, r) in ResourceKind.allCases.enumerated() {
            let c = caps[i], x = capacity[r]
            guard c.count - 1 > k else { if load[r] > 1e-9 { return false } else { continue } }
            var top = c.prefix(k).reduce(0, +)
            if k > 0, x >= c[k - 1] { top += c[k] - x }  // the host is among the k largest: the next one steps in
            if load[r] > (sum[r] - x - top) * thresholds[r] + 1e-9 { return false }
        }
        return true
    }

    mutating func remove(_ capacity: Vec3) {
        for (i, r) in ResourceKind.allCases.enumerated() {
            if let j = caps[i].firstIndex(of: capacity[r]) { caps[i].remove(at: j) }
        }
        sum -= capacity
    }
}
