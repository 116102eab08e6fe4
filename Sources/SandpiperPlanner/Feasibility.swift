import SandpiperModel

// Step 4a: FeasibleHosts. Filters answer with a typed Verdict (Kubernetes' framework Status): fits, or rejected
// with reasons that carry numbers. Constraint rejections are unresolvable; capacity rejections are resolvable
// (a swap could make room), so swaps only look at resolvable hosts.

struct Rejection: Sendable, Equatable {
    /// Counting key for diagnostics ("cpu threshold", "pinned", ...).
    var reason: String
    /// With numbers, for humans.
    var detail: String
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
        var out: [Rejection] = []
        switch host.status {
        case .unknown:
            out.append(Rejection(reason: "host unknown", detail: "\(host.name) is unknown (\(host.unknownReason ?? "unreachable"))"))
            return out
        case .maintenance:
            out.append(Rejection(reason: "maintenance", detail: "\(host.name) is in maintenance"))
            return out
        case .up:
            if !host.eligible {
                out.append(Rejection(reason: "undeclared host", detail: "\(host.name) is not in the spec"))
                return out
            }
        }
        if let pin = vm.pin, pin != h {
            out.append(Rejection(reason: "pinned", detail: "\(vm.name) is pinned to \(pinName(vm))"))
        }
        for (k, want) in vm.labels.sorted(by: { $0.key < $1.key }) where host.labels[k] != want {
            out.append(Rejection(reason: "labels",
                                 detail: "\(host.name) lacks label \(k)=\(want)" + (host.labels[k].map { " (has \($0))" } ?? "")))
        }
        for g in vm.groups where fleet.groups[g].enforcement == .must {
            let group = fleet.groups[g]
            switch group.rule {
            case .antiAffinity:
                let clash = state.members[h].filter { $0 != v && fleet.vms[$0].groups.contains(g) }
                if let c = clash.first {
                    out.append(Rejection(reason: "anti-affinity",
                                         detail: "anti-affinity group \(group.name): \(fleet.vms[c].name) is on \(host.name)"))
                }
            case .affinity:
                if let anchor = affinityAnchor(g, excluding: v, state: state), anchor != h {
                    out.append(Rejection(reason: "affinity",
                                         detail: "affinity group \(group.name) runs on \(fleet.hosts[anchor].name)"))
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

    func pinName(_ vm: VMInfo) -> String { vm.pinName ?? "-" }

    /// Capacity filters: reservations (admission) and every resource under the host's threshold, tightened by the
    /// arriving VM's SLA. `extra` is load the caller has already decided to add (or remove, when negative).
    func capacity(_ v: Int, on h: Int, state: ProposedLoad, extra: Vec3 = .zero, extraCPUResv: Double = 0,
                  extraMemResv: Double = 0) -> [Rejection] {
        let host = fleet.hosts[h], vm = fleet.vms[v], cap = host.capacity
        var out: [Rejection] = []
        let cpuR = state.cpuReserved[h] + extraCPUResv, memR = state.memReserved[h] + extraMemResv
        if cpuR + vm.cpuReservation > cap.cpu + 1e-9 {
            out.append(Rejection(reason: "cpu reservations",
                                 detail: "\(host.name): reserves \(Fmt.d(vm.cpuReservation)) cores; \(Fmt.d(cpuR)) of \(Fmt.d(cap.cpu, 1)) reserved"))
        }
        if memR + vm.memReservation > cap.mem + 1e-9 {
            out.append(Rejection(reason: "mem reservations",
                                 detail: "\(host.name): reserves \(Fmt.mib(vm.memReservation)); \(Fmt.mib(memR)) of \(Fmt.mib(cap.mem)) reserved"))
        }
        let t = state.thresholdsWith(v, on: h, fleet: fleet)
        let base = state.load[h] + extra
        for r in ResourceKind.allCases {
            let need = vm.demand[r]
            let after = base[r] + need
            let limit = t[r] * cap[r]
            if after > limit + 1e-9, need > 0 || base[r] > limit + 1e-9 {
                out.append(Rejection(reason: "\(r.rawValue) threshold",
                                     detail: "\(host.name): needs \(Fmt.amount(need, r)); \(Fmt.number(base[r], r)) of \(Fmt.amount(cap[r], r)) used, threshold \(Fmt.pct(t[r])) = \(Fmt.amount(limit, r))"))
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
    func canHold(_ h: Int, extra: Vec3, cpuResv: Double, memResv: Double, state: ProposedLoad) -> Bool {
        let cap = fleet.hosts[h].capacity, l = state.load[h] + extra
        return l.cpu <= cap.cpu + 1e-9 && l.net <= cap.net + 1e-9 && l.mem <= cap.mem + 1e-9
            && state.cpuReserved[h] + cpuResv <= cap.cpu + 1e-9 && state.memReserved[h] + memResv <= cap.mem + 1e-9
    }
}
