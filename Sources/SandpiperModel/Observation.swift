/// What Sandpiper saw of the fleet: the planner's second input, next to the spec and the policy.
/// Built by the engine from libvirt (live sampling) or from a trace (replay); the planner never does I/O.
public struct Observation: Sendable, Equatable, Codable {
    /// Seconds between samples.
    public var intervalSeconds: Double
    /// Time of the newest sample, in seconds on the source's clock (trace time or Unix time);
    /// used with `VMObservation.lastMovedAt` for minimum residency. Never read from the wall clock in the planner.
    public var now: Double
    /// Sorted by name.
    public var hosts: [HostObservation]
    /// Sorted by name. VMs found on hosts that are up; the VMs of an unknown host are not listed.
    public var vms: [VMObservation]

    public init(intervalSeconds: Double = 10, now: Double = 0, hosts: [HostObservation] = [],
                vms: [VMObservation] = []) {
        self.intervalSeconds = intervalSeconds; self.now = now
        self.hosts = hosts.sorted { $0.name < $1.name }
        self.vms = vms.sorted { $0.name < $1.name }
    }
}

public struct HostObservation: Sendable, Equatable, Codable {
    public enum Status: Sendable, Equatable, Codable {
        case up
        /// Could not be reached or read: its VMs are unknown, never absent.
        case unknown(reason: String)
        /// Powered off by Sandpiper (state file) or per its `power.status` command: capacity that can be woken,
        /// with no VMs running.
        case standby
    }
    public var name: String
    public var status: Status
    /// Observed capacity (cores, MiB, Mbit/s), already reduced by any host reserve.
    public var cpus: Double
    public var memoryMiB: Double
    public var networkMbps: Double
    /// Since when the host has been low (consolidation), on the observation's clock; recorded by the engine in
    /// state.json from the plans it sees, so `powerOffAfter` can be longer than the sample window.
    public var lowSince: Double?
    /// Tunables the host refuses (probed once per host); nil when it takes them all or was not asked.
    public var tuning: HostTuning?
    /// Load on the host that is not its VMs' (the hypervisor, host services), one sample per interval, oldest
    /// first: counted in the host's utilization and detection, and staying on the host when VMs move.
    /// A sample window like the VMs' (never stored in state.json).
    public var overhead: [Sample]

    public init(name: String, status: Status = .up, cpus: Double, memoryMiB: Double, networkMbps: Double,
                lowSince: Double? = nil, tuning: HostTuning? = nil, overhead: [Sample] = []) {
        self.name = name; self.status = status; self.cpus = cpus
        self.memoryMiB = memoryMiB; self.networkMbps = networkMbps; self.lowSince = lowSince; self.tuning = tuning
        self.overhead = overhead
    }

    public var isUp: Bool { if case .up = status { return true } else { return false } }
    public var isStandby: Bool { status == .standby }

    private enum CodingKeys: String, CodingKey {
        case name, status, reason, cpus, memoryMiB, networkMbps, lowSince, tuning, overhead
    }

    /// `"status": "up"`, or `"status": "unknown", "reason": "..."`: readable in state.json and its diffs.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        switch status {
        case .up: try c.encode("up", forKey: .status)
        case .unknown(let reason):
            try c.encode("unknown", forKey: .status)
            try c.encode(reason, forKey: .reason)
        case .standby: try c.encode("standby", forKey: .status)
        }
        try c.encode(cpus, forKey: .cpus)
        try c.encode(memoryMiB, forKey: .memoryMiB)
        try c.encode(networkMbps, forKey: .networkMbps)
        try c.encodeIfPresent(lowSince, forKey: .lowSince)
        try c.encodeIfPresent(tuning, forKey: .tuning)
        if !overhead.isEmpty { try c.encode(overhead, forKey: .overhead) }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        switch try c.decode(String.self, forKey: .status) {
        case "up": status = .up
        case "unknown": status = .unknown(reason: try c.decodeIfPresent(String.self, forKey: .reason) ?? "")
        case "standby": status = .standby
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .status, in: c, debugDescription: "unknown host status \(other)")
        }
        cpus = try c.decode(Double.self, forKey: .cpus)
        memoryMiB = try c.decode(Double.self, forKey: .memoryMiB)
        networkMbps = try c.decode(Double.self, forKey: .networkMbps)
        lowSince = try c.decodeIfPresent(Double.self, forKey: .lowSince)
        tuning = try c.decodeIfPresent(HostTuning.self, forKey: .tuning)
        overhead = try c.decodeIfPresent([Sample].self, forKey: .overhead) ?? []
    }
}

/// Which entitlement knobs a host accepts: `<cputune>` (cgroup CPU shares and quota) and `<memtune>`. QEMU in
/// session mode has neither; libvirt refuses a domain that asks for them.
public struct HostTuning: Sendable, Equatable, Codable {
    public var cpu: Bool
    public var memory: Bool
    public var reason: String?

    public init(cpu: Bool, memory: Bool, reason: String? = nil) {
        self.cpu = cpu; self.memory = memory; self.reason = reason
    }
}

/// One monitoring interval's demand of one VM.
public struct Sample: Sendable, Equatable, Codable {
    /// Cores used.
    public var cpu: Double
    /// Mbit/s, rx + tx.
    public var netMbps: Double
    /// MiB in use by the guest.
    public var memMiB: Double
    /// Black-box memory signal: swap traffic in KiB/s, when known.
    public var swapKbps: Double?
    /// Gray-box memory signal: free memory inside the guest in MiB, when known.
    public var guestFreeMiB: Double?

    public init(cpu: Double, netMbps: Double = 0, memMiB: Double = 0, swapKbps: Double? = nil,
                guestFreeMiB: Double? = nil) {
        self.cpu = cpu; self.netMbps = netMbps; self.memMiB = memMiB
        self.swapKbps = swapKbps; self.guestFreeMiB = guestFreeMiB
    }
}

/// Tunables as libvirt reports them; nil when the driver does not expose them.
public struct Tunables: Sendable, Equatable, Codable {
    public var cpuShares: Int?
    /// CFS period/quota in microseconds; quota < 0 or nil means unlimited.
    public var cpuPeriodMicros: Int?
    public var cpuQuotaMicros: Int?
    public var memoryHardLimitMiB: Double?
    public var memorySoftLimitMiB: Double?
    public init(cpuShares: Int? = nil, cpuPeriodMicros: Int? = nil, cpuQuotaMicros: Int? = nil,
                memoryHardLimitMiB: Double? = nil, memorySoftLimitMiB: Double? = nil) {
        self.cpuShares = cpuShares; self.cpuPeriodMicros = cpuPeriodMicros; self.cpuQuotaMicros = cpuQuotaMicros
        self.memoryHardLimitMiB = memoryHardLimitMiB; self.memorySoftLimitMiB = memorySoftLimitMiB
    }
}

public struct VMObservation: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable { case running, stopped, paused, other }
    public var name: String
    public var host: String
    public var state: State
    /// Current allocations: live vCPUs and balloon target (MiB).
    public var vcpus: Int
    public var memoryMiB: Double
    /// Maximum allocations the domain was defined with.
    public var maxVcpus: Int
    public var maxMemoryMiB: Double
    public var tunables: Tunables
    /// Oldest first; the planner reads at most the policy's window.
    public var samples: [Sample]
    /// When the VM last arrived on its host (seconds, same clock as `Observation.now`), if known.
    public var lastMovedAt: Double?
    /// Bytes of local disk a move must copy (0 or nil: shared storage, or not known); migration cost is
    /// memory plus this.
    public var diskCopyBytes: Double?
    /// The VM's disks with their resolved storage mode; nil when it has none (or they were not observed).
    public var disks: [VMDisk]?

    public init(name: String, host: String, state: State = .running, vcpus: Int, memoryMiB: Double,
                maxVcpus: Int? = nil, maxMemoryMiB: Double? = nil, tunables: Tunables = Tunables(),
                samples: [Sample] = [], lastMovedAt: Double? = nil, diskCopyBytes: Double? = nil,
                disks: [VMDisk]? = nil) {
        self.name = name; self.host = host; self.state = state; self.vcpus = vcpus; self.memoryMiB = memoryMiB
        self.maxVcpus = maxVcpus ?? vcpus; self.maxMemoryMiB = maxMemoryMiB ?? memoryMiB
        self.tunables = tunables; self.samples = samples; self.lastMovedAt = lastMovedAt
        self.diskCopyBytes = diskCopyBytes
        self.disks = disks?.isEmpty == true ? nil : disks
    }

    /// Target devices of the disks a move must copy (local storage).
    public var localDisks: [String] { (disks ?? []).filter { $0.storage == .local }.map(\.target) }
}
