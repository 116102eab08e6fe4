import SandpiperModel

// The planner's indexed, read-only view of (spec, observation, policy): every name resolved to an index once,
// every profile computed once, so the placement steps never scan the whole fleet per move.

struct HostInfo: Sendable {
    var name: String
    var status: HostUtilization.Status
    var unknownReason: String?
    var labels: [String: String]
    /// What VMs' demand and reservations are measured against: the smaller of declared and observed capacity
    /// (the spec may keep part of a host back; the observation is the ceiling) minus `reserved`.
    var capacity: Vec3
    /// `capacity.reserved` (cpu and mem; net 0).
    var reserved: Vec3 = .zero
    /// Load outside the VMs (profiled from `HostObservation.overhead`): stays on the host whatever moves.
    var overhead: Vec3 = .zero
    var overheadSamples: [Sample] = []
    /// Allocation limits (declared vCPUs, declared MiB): capacity x ratio - reserved; nil when no ratio is set.
    var vcpuLimit: AllocationLimit?
    var memoryLimit: AllocationLimit?
    /// Up, declared and not in maintenance (it may still be cordoned: see `schedulable`).
    var eligible: Bool
    /// `schedulable: false` (cordoned): keeps its VMs, receives none.
    var schedulable: Bool = true
    /// In the spec. Hosts only observed are reported, never managed.
    var declared: Bool
    /// Declares power commands (`hosts[].power`): consolidation may power it off and on.
    var powerManaged: Bool
    /// Observation: when the host became low (consolidation).
    var lowSince: Double?
}

/// capacity x ratio - reserved, with its parts kept for the rejection text.
struct AllocationLimit: Sendable, Equatable {
    var capacity: Double
    var ratio: Double
    var reserved: Double
    var limit: Double { capacity * ratio - reserved }
}

struct VMInfo: Sendable {
    var name: String
    /// Index into observation.vms; nil for a declared VM that was not observed.
    var observed: Int?
    /// Index into spec.vms; nil for an undeclared VM.
    var declared: Int?
    /// Observed host, -1 when absent.
    var host: Int
    var demand: Vec3
    var cpuReservation: Double
    var memReservation: Double
    /// Allocations counted against the hosts' allocation ratios: declared vCPUs and memory (the observed
    /// definition for an undeclared VM).
    var vcpus: Double = 0
    var allocatedMiB: Double = 0
    /// Per-VM automation level (nil: the policy's).
    var automation: VMAutomation?
    /// RAM size for VSR and migration cost: the current allocation (MiB).
    var ram: Double
    /// What a move copies (MiB): `ram` plus the local disk bytes the observation reports.
    var copyMiB: Double
    /// Target devices of the local disks a move must copy (only a live move of a running VM copies them).
    var localDisks: [String] = []
    /// Observed running or paused: only such a VM can move live.
    var active = true
    /// Policy thresholds overridden by the VM's SLA.
    var thresholds: ResolvedThresholds
    var migration: MigrationMode
    /// Pinned host index (-2 when pinned to a host that does not exist), nil when not pinned.
    var pin: Int?
    var pinName: String?
    var labels: [String: String]
    var groups: [Int]
    /// Arrived less than minResidency ago.
    var recentlyMoved: Bool
    var residencyAge: Double?
}

struct GroupInfo: Sendable {
    var name: String
    var rule: GroupSpec.Rule
    var enforcement: GroupSpec.Enforcement
    var members: [Int]
}

struct Fleet: Sendable {
    var hosts: [HostInfo]
    var vms: [VMInfo]
    var groups: [GroupInfo]
    var hostIndex: [String: Int]
    var policy: Policy
    var spec: ClusterSpec
    var observation: Observation
    /// Observed VMs per host (indices into `vms`), in name order.
    var residents: [[Int]]

    init(spec: ClusterSpec, observation: Observation, policy: Policy) {
        self.spec = spec; self.observation = observation; self.policy = policy

        // Hosts: the union of declared and observed names, sorted.
        let specHosts = Dictionary(spec.hosts.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let obsHosts = Dictionary(observation.hosts.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let names = Set(specHosts.keys).union(obsHosts.keys).sorted()
        var hosts: [HostInfo] = []
        hosts.reserveCapacity(names.count)
        var hostIndex: [String: Int] = [:]
        for name in names {
            let s = specHosts[name], o = obsHosts[name]
            var status = HostUtilization.Status.up
            var reason: String?
            if let o {
                if case .unknown(let r) = o.status { status = .unknown; reason = r }
                if o.status == .standby { status = .standby }
            } else {
                status = .unknown; reason = "not observed"
            }
            if status == .up || status == .standby, s?.maintenance == true { status = .maintenance }
            // Declared below observed is honoured (the operator keeps the rest); above it, the observation wins.
            func smaller(_ observed: Double?, _ declared: Double?) -> Double {
                if let observed, let declared { return min(observed, declared) }
                return observed ?? declared ?? 0
            }
            let physical = Vec3(cpu: smaller(o?.cpus, s?.capacity.cpus),
                                net: smaller(o?.networkMbps, s?.capacity.networkMbps),
                                mem: smaller(o?.memoryMiB, s?.capacity.memoryMiB))
            let reserved = Vec3(cpu: s?.capacity.reservedCPUs ?? 0, net: 0, mem: s?.capacity.reservedMemoryMiB ?? 0)
            let cap = Vec3(cpu: max(0, physical.cpu - reserved.cpu), net: physical.net,
                           mem: max(0, physical.mem - reserved.mem))
            let ratio = policy.allocationRatio.overridden(by: s?.allocationRatio)
            hostIndex[name] = hosts.count
            var info = HostInfo(name: name, status: status, unknownReason: reason, labels: s?.labels ?? [:],
                                capacity: cap, eligible: status == .up && s != nil, declared: s != nil,
                                powerManaged: s?.power != nil, lowSince: o?.lowSince)
            info.reserved = reserved
            info.vcpuLimit = ratio.cpu.map { AllocationLimit(capacity: physical.cpu, ratio: $0, reserved: reserved.cpu) }
            info.memoryLimit = ratio.memory.map {
                AllocationLimit(capacity: physical.mem, ratio: $0, reserved: reserved.mem)
            }
            info.schedulable = s?.schedulable ?? true
            if let o, !o.overhead.isEmpty {
                info.overhead = Profiler(policy: policy).overhead(o.overhead)
                info.overheadSamples = o.overhead
            }
            hosts.append(info)
        }

        // Groups, with member names resolved after the VMs are indexed.
        let groupSpecs = spec.groups.sorted { $0.name < $1.name }
        var groupsOfName: [String: [Int]] = [:]
        for (gi, g) in groupSpecs.enumerated() {
            for m in Set(g.vms).sorted() { groupsOfName[m, default: []].append(gi) }
        }
        var groupMembers = [[Int]](repeating: [], count: groupSpecs.count)

        let slas = Dictionary(spec.slas.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        // Spec VMs in name order (first declaration wins a duplicate name): joined with the observation by a
        // merge rather than a 200,000-entry dictionary; group members are found by binary search.
        var specOrder = Array(spec.vms.indices)
        var specSorted = true
        for i in specOrder.dropFirst() where spec.vms[i - 1].name >= spec.vms[i].name { specSorted = false; break }
        if !specSorted {
            specOrder.sort { a, b in
                spec.vms[a].name != spec.vms[b].name ? spec.vms[a].name < spec.vms[b].name : a < b
            }
        }
        var canonical = [Bool](repeating: false, count: spec.vms.count)
        for (k, i) in specOrder.enumerated() where k == 0 || spec.vms[specOrder[k - 1]].name != spec.vms[i].name {
            canonical[i] = true
        }
        func specLookup(_ name: String) -> Int? {
            var lo = 0, hi = specOrder.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if spec.vms[specOrder[mid]].name < name { lo = mid + 1 } else { hi = mid }
            }
            return lo < specOrder.count && spec.vms[specOrder[lo]].name == name ? specOrder[lo] : nil
        }
        var cursor = 0
        var lastHost: (name: String, index: Int) = ("", -1)

        let profiler = Profiler(policy: policy)
        let minResidency = policy.placement.minResidencySeconds
        var vms: [VMInfo] = []
        vms.reserveCapacity(max(observation.vms.count, spec.vms.count))
        var residents = [[Int]](repeating: [], count: hosts.count)
        var seenSpec = [Bool](repeating: false, count: spec.vms.count)

        func info(name: String, observed: Int?, declared: Int?, host: Int, demand: Vec3, ram: Double,
                  age: Double?) -> VMInfo {
            var info = VMInfo(name: name, observed: observed, declared: declared, host: host, demand: demand,
                              cpuReservation: 0, memReservation: 0, ram: ram, copyMiB: ram,
                              thresholds: policy.thresholds,
                              migration: .any, pin: nil, pinName: nil, labels: [:], groups: [],
                              recentlyMoved: age.map { $0 < minResidency } ?? false, residencyAge: age)
            if let oi = observed {
                let o = observation.vms[oi]
                info.vcpus = Double(o.vcpus); info.allocatedMiB = max(o.maxMemoryMiB, o.memoryMiB)
                if let disk = o.diskCopyBytes, disk > 0 { info.copyMiB = ram + disk / 1_048_576 }
                info.localDisks = o.localDisks
                info.active = o.state == .running || o.state == .paused
            }
            if let di = declared {
                info.vcpus = Double(spec.vms[di].vcpus); info.allocatedMiB = spec.vms[di].memoryMiB
                info.automation = spec.vms[di].automation
                info.cpuReservation = spec.vms[di].resources.cpu.reservation
                info.memReservation = spec.vms[di].resources.memory.reservation
                if let slaName = spec.vms[di].sla, let sla = slas[slaName] {
                    info.thresholds = policy.thresholds.overridden(by: sla.thresholds)
                    info.migration = sla.migration
                }
                if let p = spec.vms[di].placement {
                    if let h = p.host { info.pin = hostIndex[h] ?? -2; info.pinName = h }
                    info.labels = p.labels
                }
            }
            return info
        }

        // Name order, whatever order the observation arrived in (Observation.init sorts; decoding may not).
        var obsOrder = Array(observation.vms.indices)
        var sorted = true
        for i in obsOrder.dropFirst() where observation.vms[i - 1].name > observation.vms[i].name { sorted = false; break }
        if !sorted {
            obsOrder.sort { a, b in
                let x = observation.vms[a], y = observation.vms[b]
                return x.name != y.name ? x.name < y.name : x.host != y.host ? x.host < y.host : a < b
            }
        }
        for oi in obsOrder {
            let name = observation.vms[oi].name
            while cursor < specOrder.count, spec.vms[specOrder[cursor]].name < name { cursor += 1 }
            let di: Int? = cursor < specOrder.count && spec.vms[specOrder[cursor]].name == name ? specOrder[cursor] : nil
            let hostName = observation.vms[oi].host
            let h: Int
            if hostName == lastHost.name { h = lastHost.index } else {
                h = hostIndex[hostName] ?? -1
                lastHost = (hostName, h)
            }
            let demand: Vec3
            if let di {
                seenSpec[di] = true
                demand = profiler.demand(observation.vms[oi], cpu: spec.vms[di].resources.cpu,
                                         memory: spec.vms[di].resources.memory)
            } else {
                demand = profiler.demand(observation.vms[oi], cpu: nil, memory: nil)
            }
            let idx = vms.count
            vms.append(info(name: name, observed: oi, declared: di, host: h, demand: demand,
                            ram: observation.vms[oi].memoryMiB,
                            age: observation.vms[oi].lastMovedAt.map { observation.now - $0 }))
            if h >= 0 { residents[h].append(idx) }
        }
        // Declared but not observed, in name order.
        let absent = specOrder.filter { !seenSpec[$0] && canonical[$0] }
        for di in absent {
            let s = spec.vms[di]
            vms.append(info(name: s.name, observed: nil, declared: di, host: -1, demand: Profiler.initialDemand(s),
                            ram: s.memoryMiB, age: nil))
        }
        if !groupsOfName.isEmpty {
            var vmOfSpec = [Int](repeating: -1, count: spec.vms.count)
            for (i, v) in vms.enumerated() { if let d = v.declared { vmOfSpec[d] = i } }
            for (name, gs) in groupsOfName {
                guard let d = specLookup(name), vmOfSpec[d] >= 0 else { continue }
                let i = vmOfSpec[d]
                vms[i].groups = gs
                for g in gs { groupMembers[g].append(i) }
            }
            for g in groupMembers.indices { groupMembers[g].sort() }
        }
        // residents are in name order already: VMs were indexed in name order.

        self.hosts = hosts; self.vms = vms; self.hostIndex = hostIndex; self.residents = residents
        self.groups = groupSpecs.enumerated().map { gi, g in
            GroupInfo(name: g.name, rule: g.rule, enforcement: g.enforcement, members: groupMembers[gi])
        }
    }

    var hostCount: Int { hosts.count }
    func spec(of v: Int) -> VMSpec? { vms[v].declared.map { spec.vms[$0] } }
    func observed(_ v: Int) -> VMObservation? { vms[v].observed.map { observation.vms[$0] } }
}
