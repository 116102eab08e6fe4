import SandpiperModel

// Placement, used by steps 4-7 of `Planner.plan` (PlacementSearch, part 1 of 2): FeasibleHosts. Filters answer with a typed Verdict (Kubernetes' framework Status): fits, or rejected
// with reasons that carry numbers. Constraint rejections are unresolvable; capacity rejections are resolvable
// (a swap could make room), so swaps only look at resolvable hosts.
// Rejections keep their numbers as data and are turned into text only when shown (a failing scan may reject
// a thousand hosts; a diagnostics entry keeps four examples).

struct Rejection: Sendable, Equatable {
    enum Detail: Sendable, Equatable {
        case hostUnknown(host: Int)
        case maintenance(host: Int)
        case standby(host: Int)
        case poweringOff(host: Int)
        case undeclaredHost(host: Int)
        case unschedulable(host: Int)
        case pinned(vm: Int)
        case label(host: Int, key: String, want: String)
        case antiAffinity(group: Int, other: Int, host: Int)
        case affinity(group: Int, anchor: Int)
        case reservation(host: Int, resource: ResourceKind, reserves: Double, reserved: Double, capacity: Double)
        case threshold(host: Int, resource: ResourceKind, need: Double, used: Double, capacity: Double,
                       threshold: Double)
        /// Declared vCPUs (cpu) or memory (mem) above capacity x ratio - reserved.
        case allocation(host: Int, resource: ResourceKind, need: Double, allocated: Double, limit: AllocationLimit)
        case text(String)
    }

    /// Counting key for diagnostics ("cpu threshold", "pinned", ...).
    var reason: String
    var detail: Detail

    /// With numbers, for humans.
    func text(_ fleet: Fleet) -> String {
        switch detail {
        case .hostUnknown(let h):
            return "\(fleet.hosts[h].name) is unknown (\(fleet.hosts[h].unknownReason ?? "unreachable"))"
        case .maintenance(let h): return "\(fleet.hosts[h].name) is in maintenance"
        case .standby(let h): return "\(fleet.hosts[h].name) is in standby (powered off)"
        case .poweringOff(let h): return "\(fleet.hosts[h].name) is emptied and powered off by this plan"
        case .undeclaredHost(let h): return "\(fleet.hosts[h].name) is not in the spec"
        case .unschedulable(let h): return "\(fleet.hosts[h].name) is cordoned (schedulable: false)"
        case .pinned(let v): return "\(fleet.vms[v].name) is pinned to \(fleet.vms[v].pinName ?? "-")"
        case .label(let h, let k, let want):
            return "\(fleet.hosts[h].name) lacks label \(k)=\(want)" + (fleet.hosts[h].labels[k].map { " (has \($0))" } ?? "")
        case .antiAffinity(let g, let other, let h):
            return "anti-affinity group \(fleet.groups[g].name): \(fleet.vms[other].name) is on \(fleet.hosts[h].name)"
        case .affinity(let g, let anchor):
            return "affinity group \(fleet.groups[g].name) runs on \(fleet.hosts[anchor].name)"
        case .reservation(let h, let r, let reserves, let reserved, let cap):
            return "\(fleet.hosts[h].name): reserves \(Fmt.amount(reserves, r)); \(Fmt.number(reserved, r)) of \(Fmt.amount(cap, r)) reserved"
        case .threshold(let h, let r, let need, let used, let cap, let t):
            return "\(fleet.hosts[h].name): needs \(Fmt.amount(need, r)); \(Fmt.number(used, r)) of \(Fmt.amount(cap, r)) used, threshold \(Fmt.pct(t)) = \(Fmt.amount(t * cap, r))"
        case .allocation(let h, let r, let need, let allocated, let l):
            let name = fleet.hosts[h].name
            if r == .cpu {
                return "\(name): needs \(Units.trim(need)) vCPUs; \(Units.trim(allocated)) of \(Units.trim(l.limit)) vCPUs allocated (\(Units.trim(l.capacity)) CPUs at ratio \(Self.ratio(l.ratio)) minus \(Units.trim(l.reserved)) reserved)"
            }
            return "\(name): needs \(Fmt.mib(need)); \(Fmt.d(allocated, 0)) of \(Fmt.mib(l.limit)) memory allocated (\(Fmt.mib(l.capacity)) at ratio \(Self.ratio(l.ratio)) minus \(Fmt.mib(l.reserved)) reserved)"
        case .text(let s): return s
        }
    }

    /// 4 -> "4.0", 1.5 -> "1.5": reads as a ratio.
    static func ratio(_ r: Double) -> String { r == r.rounded() ? Fmt.d(r, 1) : Units.trim(r) }

    static func thresholdKey(_ r: ResourceKind) -> String {
        switch r { case .cpu: "cpu threshold"; case .net: "net threshold"; case .mem: "mem threshold" }
    }
}

enum Verdict: Sendable, Equatable {
    case fits
    case rejected([Rejection], resolvable: Bool)

    var fits: Bool { if case .fits = self { true } else { false } }
    var resolvable: Bool { if case .rejected(_, let r) = self { r } else { false } }
    var rejections: [Rejection] { if case .rejected(let r, _) = self { r } else { [] } }
}

struct FeasibleHosts: Sendable {
    let fleet: Fleet

    /// Constraint filters: host state, pin, labels, must groups. Independent of load.
    func constraints(_ v: Int, on h: Int, state: ProposedLoad) -> [Rejection] {
        let host = fleet.hosts[h], vm = fleet.vms[v]
        switch host.status {
        case .unknown: return [Rejection(reason: "host unknown", detail: .hostUnknown(host: h))]
        case .maintenance: return [Rejection(reason: "maintenance", detail: .maintenance(host: h))]
        case .standby:
            if !state.awake[h] { return [Rejection(reason: "standby", detail: .standby(host: h))] }
        case .up:
            if !host.eligible { return [Rejection(reason: "undeclared host", detail: .undeclaredHost(host: h))] }
            if state.asleep[h] { return [Rejection(reason: "powering off", detail: .poweringOff(host: h))] }
        }
        if !host.schedulable { return [Rejection(reason: "unschedulable", detail: .unschedulable(host: h))] }
        var out: [Rejection] = []
        if let pin = vm.pin, pin != h { out.append(Rejection(reason: "pinned", detail: .pinned(vm: v))) }
        if !vm.labels.isEmpty {
            for (k, want) in vm.labels.sorted(by: { $0.key < $1.key }) where host.labels[k] != want {
                out.append(Rejection(reason: "labels", detail: .label(host: h, key: k, want: want)))
            }
        }
        for g in vm.groups where fleet.groups[g].enforcement == .must {
            switch fleet.groups[g].rule {
            case .antiAffinity:
                if let c = state.members[h].first(where: { $0 != v && fleet.vms[$0].groups.contains(g) }) {
                    out.append(Rejection(reason: "anti-affinity", detail: .antiAffinity(group: g, other: c, host: h)))
                }
            case .affinity:
                if let anchor = affinityAnchor(g, excluding: v, state: state), anchor != h {
                    out.append(Rejection(reason: "affinity", detail: .affinity(group: g, anchor: anchor)))
                }
            }
        }
        return out
    }

    /// The host holding most of an affinity group's other members (ties: lowest index = name order).
    func affinityAnchor(_ g: Int, excluding v: Int, state: ProposedLoad) -> Int? {
        var counts: [Int: Int] = [:]
        for m in fleet.groups[g].members where m != v {
            let h = state.hostOf[m]
            if h >= 0 { counts[h, default: 0] += 1 }
        }
        return counts.max { a, b in a.value != b.value ? a.value < b.value : a.key > b.key }?.key
    }

    /// Capacity filters: reservations (admission) and every resource under the host's threshold, tightened by the
    /// arriving VM's SLA. `extra` is load the caller has already decided to add (or remove, when negative).
    func capacity(_ v: Int, on h: Int, state: ProposedLoad, extra: Vec3 = .zero, extraCPUResv: Double = 0,
                  extraMemResv: Double = 0, extraVcpus: Double = 0, extraMemAlloc: Double = 0) -> [Rejection] {
        let cap = fleet.hosts[h].capacity, vm = fleet.vms[v]
        var out = allocation(v, on: h, state: state, extraVcpus: extraVcpus, extraMemAlloc: extraMemAlloc)
        let cpuR = state.cpuReserved[h] + extraCPUResv, memR = state.memReserved[h] + extraMemResv
        if cpuR + vm.cpuReservation > cap.cpu + 1e-9 {
            out.append(Rejection(reason: "cpu reservations",
                                 detail: .reservation(host: h, resource: .cpu, reserves: vm.cpuReservation,
                                                      reserved: cpuR, capacity: cap.cpu)))
        }
        if memR + vm.memReservation > cap.mem + 1e-9 {
            out.append(Rejection(reason: "mem reservations",
                                 detail: .reservation(host: h, resource: .mem, reserves: vm.memReservation,
                                                      reserved: memR, capacity: cap.mem)))
        }
        let t = state.thresholdsWith(v, on: h, fleet: fleet)
        let base = state.load[h] + extra
        for r in ResourceKind.allCases where base[r] + vm.demand[r] > t[r] * cap[r] + 1e-9 {
            out.append(Rejection(reason: Rejection.thresholdKey(r),
                                 detail: .threshold(host: h, resource: r, need: vm.demand[r], used: base[r],
                                                    capacity: cap[r], threshold: t[r])))
        }
        return out
    }

    /// Allocation ratios: the host's declared vCPUs and memory with `v` (plus `extra*`) within
    /// capacity x ratio - reserved. Resolvable like every capacity rejection: moving a VM away makes room.
    func allocation(_ v: Int, on h: Int, state: ProposedLoad, extraVcpus: Double = 0,
                    extraMemAlloc: Double = 0) -> [Rejection] {
        let host = fleet.hosts[h], vm = fleet.vms[v]
        var out: [Rejection] = []
        if let l = host.vcpuLimit {
            let allocated = state.vcpusAllocated[h] + extraVcpus
            if allocated + vm.vcpus > l.limit + 1e-9 {
                out.append(Rejection(reason: "cpu allocation", detail: .allocation(
                    host: h, resource: .cpu, need: vm.vcpus, allocated: allocated, limit: l)))
            }
        }
        if let l = host.memoryLimit {
            let allocated = state.memAllocated[h] + extraMemAlloc
            if allocated + vm.allocatedMiB > l.limit + 1e-9 {
                out.append(Rejection(reason: "mem allocation", detail: .allocation(
                    host: h, resource: .mem, need: vm.allocatedMiB, allocated: allocated, limit: l)))
            }
        }
        return out
    }

    func verdict(_ v: Int, on h: Int, state: ProposedLoad) -> Verdict {
        let c = constraints(v, on: h, state: state)
        if !c.isEmpty { return .rejected(c, resolvable: false) }
        let k = capacity(v, on: h, state: state)
        return k.isEmpty ? .fits : .rejected(k, resolvable: true)
    }

    /// Can `h` physically hold `extra` on top of its proposed load (every resource within capacity, reservations
    /// within capacity)? Used to order the moves of a swap: the transient state must exist.
    /// Allocation ratios hold in the transient state too: a swap's intermediate step never overcommits a host.
    func canHold(_ h: Int, extra: Vec3, cpuResv: Double, memResv: Double, vcpus: Double = 0, memAlloc: Double = 0,
                 state: ProposedLoad) -> Bool {
        let host = fleet.hosts[h], cap = host.capacity, l = state.load[h] + extra
        if let lim = host.vcpuLimit, state.vcpusAllocated[h] + vcpus > lim.limit + 1e-9 { return false }
        if let lim = host.memoryLimit, state.memAllocated[h] + memAlloc > lim.limit + 1e-9 { return false }
        return l.cpu <= cap.cpu + 1e-9 && l.net <= cap.net + 1e-9 && l.mem <= cap.mem + 1e-9
            && state.cpuReserved[h] + cpuResv <= cap.cpu + 1e-9 && state.memReserved[h] + memResv <= cap.mem + 1e-9
    }
}
