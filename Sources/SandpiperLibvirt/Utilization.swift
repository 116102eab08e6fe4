/// Per-interval utilization of one domain, the sample the planner consumes (DESIGN.md section 1).
///
/// nil means "unknown for this interval", never zero: rates (CPU, network, swap) are nil when the domain is new in
/// this snapshot (absent from the previous one), when a counter went backwards (the VM restarted or migrated, which
/// resets libvirt's counters), when the counter is missing in either snapshot, or when the wall-clock delta is not
/// positive. Levels (memory used, guest free) come from the newer snapshot alone and are reported whenever present.
public struct DomainUtilization: Sendable, Equatable {
    public var name: String
    /// Cores used: delta cpu.time / delta wall time.
    public var cpuCores: Double?
    /// Network throughput, rx + tx, Mbit/s (10^6 bits).
    public var netMbps: Double?
    /// Memory used by the guest, MiB (see `UtilizationCalculator.memoryUsedMiB`).
    public var memoryUsedMiB: Double?
    /// Swap activity, swap_in + swap_out KiB/s (black-box signal).
    public var swapKiBps: Double?
    /// Memory the guest can still use, MiB: MemAvailable (`balloon.usable`) where the guest reports it, else
    /// MemFree (`balloon.unused`); gray-box signal.
    public var guestFreeMiB: Double?

    public init(name: String, cpuCores: Double? = nil, netMbps: Double? = nil, memoryUsedMiB: Double? = nil,
                swapKiBps: Double? = nil, guestFreeMiB: Double? = nil) {
        self.name = name
        self.cpuCores = cpuCores
        self.netMbps = netMbps
        self.memoryUsedMiB = memoryUsedMiB
        self.swapKiBps = swapKiBps
        self.guestFreeMiB = guestFreeMiB
    }
}

/// Pure: turns two snapshots of the same host into per-interval utilization. No I/O, no clock.
public enum UtilizationCalculator {
    /// Utilization of every domain present in `current`, sorted by name. See `DomainUtilization` for nil rules.
    public static func utilization(previous: StatsSnapshot?, current: StatsSnapshot) -> [DomainUtilization] {
        current.domains.keys.sorted().map { name in
            utilization(previous: previous?.domains[name], current: current.domains[name]!,
                        intervalNs: previous.map { Int64(bitPattern: current.timestampNs &- $0.timestampNs) })
        }
    }

    /// One domain. `intervalNs` is the wall-clock delta between the snapshots (nil when there is no previous one).
    public static func utilization(previous: DomainStats?, current: DomainStats, intervalNs: Int64?) -> DomainUtilization {
        var u = DomainUtilization(name: current.name)
        u.memoryUsedMiB = memoryUsedMiB(current)
        u.guestFreeMiB = (current.balloonUsableKiB ?? current.balloonUnusedKiB).map { Double($0) / 1024 }
        guard let previous, let intervalNs, intervalNs > 0 else { return u }
        let seconds = Double(intervalNs) / 1e9

        if let d = delta(previous.cpuTimeNs, current.cpuTimeNs) {
            u.cpuCores = Double(d) / Double(intervalNs)
        }
        if let rx = delta(previous.netRxBytes, current.netRxBytes),
           let tx = delta(previous.netTxBytes, current.netTxBytes) {
            u.netMbps = Double(rx + tx) * 8 / 1e6 / seconds
        }
        if let sin = delta(previous.balloonSwapInKiB, current.balloonSwapInKiB),
           let sout = delta(previous.balloonSwapOutKiB, current.balloonSwapOutKiB) {
            u.swapKiBps = Double(sin + sout) / seconds
        }
        return u
    }

    /// Guest memory in use, MiB: the balloon size (current) less what the guest can still use — MemAvailable
    /// (`usable`) where reported, else MemFree (`unused`); else available - usable; else the balloon size as an upper
    /// bound; nil without balloon stats. Never negative. Used and free add up to the balloon, so a balloon of
    /// used + target leaves the guest `target` free (gray-box sizes in one step).
    public static func memoryUsedMiB(_ s: DomainStats) -> Double? {
        if let cur = s.balloonCurrentKiB, let free = s.balloonUsableKiB ?? s.balloonUnusedKiB {
            return Double(cur > free ? cur - free : 0) / 1024
        }
        if let cur = s.balloonCurrentKiB, let unused = s.balloonUnusedKiB {
            return Double(cur > unused ? cur - unused : 0) / 1024
        }
        if let avail = s.balloonAvailableKiB, let usable = s.balloonUsableKiB {
            return Double(avail > usable ? avail - usable : 0) / 1024
        }
        return s.balloonCurrentKiB.map { Double($0) / 1024 }
    }

    /// new - old, or nil when either is missing or the counter went backwards (reset).
    static func delta(_ old: UInt64?, _ new: UInt64?) -> UInt64? {
        guard let old, let new, new >= old else { return nil }
        return new - old
    }
}

/// Keeps the previous snapshot per host and yields utilization for each new one. A value type: the caller owns it
/// (one per host), so there is no shared state.
public struct UtilizationSampler: Sendable {
    public private(set) var previous: StatsSnapshot?

    public init(previous: StatsSnapshot? = nil) { self.previous = previous }

    /// Utilization since the previous snapshot (rates nil on the first call), then remembers `snapshot`.
    public mutating func ingest(_ snapshot: StatsSnapshot) -> [DomainUtilization] {
        defer { previous = snapshot }
        return UtilizationCalculator.utilization(previous: previous, current: snapshot)
    }
}
