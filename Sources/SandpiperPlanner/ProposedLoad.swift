import SandpiperModel

/// Hosts ordered by (Volume, index), for "lowest Volume first" scans. A sorted array with binary search:
/// an update is a memmove of a few kilobytes even at 10,000 hosts.
struct VolumeOrder: Sendable {
    struct Key: Sendable, Comparable {
        var volume: Double
        var host: Int
        static func < (a: Key, b: Key) -> Bool { a.volume != b.volume ? a.volume < b.volume : a.host < b.host }
    }
    private(set) var keys: [Key] = []

    init(_ keys: [Key]) { self.keys = keys.sorted() }

    private func lowerBound(_ k: Key) -> Int {
        var lo = 0, hi = keys.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if keys[mid] < k { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    mutating func insert(host: Int, volume: Double) {
        keys.insert(Key(volume: volume, host: host), at: lowerBound(Key(volume: volume, host: host)))
    }

    mutating func remove(host: Int, volume: Double) {
        let i = lowerBound(Key(volume: volume, host: host))
        if i < keys.count, keys[i].host == host { keys.remove(at: i) }
    }

    mutating func update(host: Int, from old: Double, to new: Double) {
        let i = lowerBound(Key(volume: old, host: host))
        if i < keys.count, keys[i].host == host { keys.remove(at: i) }
        keys.insert(Key(volume: new, host: host), at: lowerBound(Key(volume: new, host: host)))
    }
}

/// Per resource, the eligible host with the most room below its threshold (threshold x capacity - load; an empty
/// host counts its whole capacity, since its first VM sets its thresholds). A segment tree per resource: "can
/// this VM fit anywhere at all?" is O(1), an update O(log hosts). Used to skip hopeless scans, never to choose.
struct HeadroomIndex: Sendable {
    private let size: Int
    private var value: [Double]  // 3 x hosts
    private var node: [Int]      // 3 x 2*size: best host below the node, -1 for none
    private let hosts: Int

    init(hosts: Int) {
        self.hosts = hosts
        var s = 1
        while s < max(1, hosts) { s *= 2 }
        size = s
        value = [Double](repeating: -.infinity, count: 3 * max(1, hosts))
        node = [Int](repeating: -1, count: 3 * 2 * s)
    }

    private static func slot(_ r: ResourceKind) -> Int { switch r { case .cpu: 0; case .net: 1; case .mem: 2 } }

    private func better(_ r: Int, _ a: Int, _ b: Int) -> Int {
        if a < 0 { return b }
        if b < 0 { return a }
        let va = value[r * hosts + a], vb = value[r * hosts + b]
        return va > vb || (va == vb && a < b) ? a : b
    }

    /// Set host `h`'s room (nil: not eligible).
    mutating func set(_ h: Int, room: Vec3?) {
        for r in ResourceKind.allCases {
            let k = Self.slot(r)
            value[k * hosts + h] = room?[r] ?? -.infinity
            let base = k * 2 * size
            var i = size + h
            node[base + i] = room == nil ? -1 : h
            i /= 2
            while i >= 1 {
                node[base + i] = better(k, node[base + 2 * i], node[base + 2 * i + 1])
                i /= 2
            }
        }
    }

    /// The host with the most room for `r`, and that room.
    func best(_ r: ResourceKind) -> (host: Int, room: Double)? {
        let k = Self.slot(r)
        let h = node[k * 2 * size + 1]
        return h < 0 ? nil : (h, value[k * hosts + h])
    }
}

/// Nomad's ProposedAllocs: the fleet as the plan built so far leaves it (existing minus planned moves plus
/// planned placements). Every fit check reads this view, so a swap never counts a VM twice.
struct ProposedLoad: Sendable {
    private(set) var hostOf: [Int]
    private(set) var members: [[Int]]
    private(set) var load: [Vec3]
    private(set) var cpuReserved: [Double]
    private(set) var memReserved: [Double]
    /// Declared vCPUs and MiB of the members (allocation ratios).
    private(set) var vcpusAllocated: [Double]
    private(set) var memAllocated: [Double]
    private(set) var thresholds: [ResolvedThresholds]
    private(set) var volume: [Double]
    /// Eligible hosts only.
    private(set) var order: VolumeOrder
    private(set) var headroom: HeadroomIndex
    let defaultThresholds: ResolvedThresholds
    /// Standby hosts this plan powers on: they receive VMs like up hosts.
    private(set) var awake: [Bool]
    /// Up hosts this plan empties and powers off: they receive nothing more.
    private(set) var asleep: [Bool]

    /// May receive VMs in the plan built so far.
    func receives(_ h: Int, fleet: Fleet) -> Bool {
        (fleet.hosts[h].eligible && fleet.hosts[h].schedulable && !asleep[h]) || awake[h]
    }

    /// Powered on by this plan: enters the scans with its whole capacity.
    mutating func wake(_ h: Int, fleet: Fleet) {
        guard !awake[h], !fleet.hosts[h].eligible else { return }
        awake[h] = true
        order.insert(host: h, volume: volume[h])
        headroom.set(h, room: room(h, fleet: fleet))
    }

    /// Undoes `sleep` (a consolidation trial that did not work out).
    mutating func unsleep(_ h: Int, fleet: Fleet) {
        guard asleep[h] else { return }
        asleep[h] = false
        order.insert(host: h, volume: volume[h])
        headroom.set(h, room: room(h, fleet: fleet))
    }

    /// Powered off by this plan (after it is emptied): leaves the scans.
    mutating func sleep(_ h: Int, fleet: Fleet) {
        guard receives(h, fleet: fleet) else { return }
        asleep[h] = true
        awake[h] = false
        order.remove(host: h, volume: volume[h])
        headroom.set(h, room: nil)
    }

    init(fleet: Fleet) {
        hostOf = fleet.vms.map(\.host)
        members = fleet.residents
        defaultThresholds = fleet.policy.thresholds
        let n = fleet.hosts.count
        load = [Vec3](repeating: .zero, count: n)
        cpuReserved = [Double](repeating: 0, count: n)
        memReserved = [Double](repeating: 0, count: n)
        vcpusAllocated = memReserved
        memAllocated = memReserved
        thresholds = [ResolvedThresholds](repeating: fleet.policy.thresholds, count: n)
        volume = [Double](repeating: 1, count: n)
        order = VolumeOrder([])
        headroom = HeadroomIndex(hosts: n)
        awake = [Bool](repeating: false, count: n)
        asleep = awake
        var keys: [VolumeOrder.Key] = []
        for h in 0..<n {
            load[h] = fleet.hosts[h].overhead
            for v in members[h] {
                let vm = fleet.vms[v]
                load[h] += vm.demand; cpuReserved[h] += vm.cpuReservation; memReserved[h] += vm.memReservation
                vcpusAllocated[h] += vm.vcpus; memAllocated[h] += vm.allocatedMiB
            }
            thresholds[h] = Self.thresholds(of: members[h], fleet: fleet, default: defaultThresholds)
            volume[h] = Volume.of(load[h].fraction(of: fleet.hosts[h].capacity))
            if fleet.hosts[h].eligible && fleet.hosts[h].schedulable {
                keys.append(.init(volume: volume[h], host: h))
                headroom.set(h, room: room(h, fleet: fleet))
            }
        }
        order = VolumeOrder(keys)
    }

    /// Strictest of the members' thresholds (each the policy's overridden by the VM's SLA); the policy's when empty.
    static func thresholds(of members: [Int], fleet: Fleet, default d: ResolvedThresholds) -> ResolvedThresholds {
        guard let first = members.first else { return d }
        var t = fleet.vms[first].thresholds
        for v in members.dropFirst() { t = t.strictest(with: fleet.vms[v].thresholds) }
        return t
    }

    /// The host's thresholds once `v` is on it (`arriving`: not yet counted in `members`).
    func thresholdsWith(_ v: Int, on h: Int, fleet: Fleet, arriving: Bool = true) -> ResolvedThresholds {
        let others = members[h].count - (arriving ? 0 : 1)
        return others == 0 ? fleet.vms[v].thresholds : thresholds[h].strictest(with: fleet.vms[v].thresholds)
    }

    func utilization(_ h: Int, fleet: Fleet) -> Vec3 { load[h].fraction(of: fleet.hosts[h].capacity) }

    /// Hot resources among `resources`: projected utilization above the host's thresholds.
    func over(_ h: Int, fleet: Fleet, resources: [ResourceKind] = ResourceKind.allCases) -> [ResourceKind] {
        let u = utilization(h, fleet: fleet)
        return resources.filter { u[$0] > thresholds[h][$0] + 1e-12 }
    }

    mutating func place(_ v: Int, on h: Int, fleet: Fleet) {
        precondition(hostOf[v] < 0)
        hostOf[v] = h
        let vm = fleet.vms[v]
        let i = members[h].firstIndex { fleet.vms[$0].name > vm.name } ?? members[h].count
        members[h].insert(v, at: i)
        load[h] += vm.demand; cpuReserved[h] += vm.cpuReservation; memReserved[h] += vm.memReservation
        vcpusAllocated[h] += vm.vcpus; memAllocated[h] += vm.allocatedMiB
        thresholds[h] = thresholdsWith(v, on: h, fleet: fleet, arriving: false)
        refreshVolume(h, fleet: fleet)
    }

    mutating func remove(_ v: Int, fleet: Fleet) {
        let h = hostOf[v]
        guard h >= 0 else { return }
        hostOf[v] = -1
        if let i = members[h].firstIndex(of: v) { members[h].remove(at: i) }
        let vm = fleet.vms[v]
        load[h] -= vm.demand; cpuReserved[h] -= vm.cpuReservation; memReserved[h] -= vm.memReservation
        vcpusAllocated[h] -= vm.vcpus; memAllocated[h] -= vm.allocatedMiB
        if members[h].isEmpty {  // no residue from floating-point subtraction
            load[h] = fleet.hosts[h].overhead; cpuReserved[h] = 0; memReserved[h] = 0; vcpusAllocated[h] = 0
            memAllocated[h] = 0
        }
        thresholds[h] = Self.thresholds(of: members[h], fleet: fleet, default: defaultThresholds)
        refreshVolume(h, fleet: fleet)
    }

    mutating func move(_ v: Int, to h: Int, fleet: Fleet) {
        remove(v, fleet: fleet)
        place(v, on: h, fleet: fleet)
    }

    private mutating func refreshVolume(_ h: Int, fleet: Fleet) {
        let new = Volume.of(load[h].fraction(of: fleet.hosts[h].capacity))
        if receives(h, fleet: fleet) {
            order.update(host: h, from: volume[h], to: new)
            headroom.set(h, room: room(h, fleet: fleet))
        }
        volume[h] = new
    }

    /// Room below the thresholds (the whole capacity when empty: its first VM sets the thresholds).
    private func room(_ h: Int, fleet: Fleet) -> Vec3 {
        let cap = fleet.hosts[h].capacity
        if members[h].isEmpty { return cap - load[h] }
        let t = thresholds[h]
        return Vec3(cpu: t.cpu * cap.cpu, net: t.net * cap.net, mem: t.mem * cap.mem) - load[h]
    }
}
