import Foundation

/// The declared fleet: `Clusters/<name>/cluster.yaml` (DESIGN.md section 3).
/// Units are normalised on decoding: CPU in cores, memory in MiB, network in Mbit/s, time in seconds.
public struct ClusterSpec: Sendable, Equatable, Codable {
    public var name: String
    public var policy: String
    public var telemetry: Telemetry
    public var slas: [SLA]
    public var hosts: [HostSpec]
    public var vms: [VMSpec]
    public var groups: [GroupSpec]

    public init(name: String, policy: String = "default", telemetry: Telemetry = Telemetry(),
                slas: [SLA] = [], hosts: [HostSpec] = [], vms: [VMSpec] = [], groups: [GroupSpec] = []) {
        self.name = name; self.policy = policy; self.telemetry = telemetry
        self.slas = slas; self.hosts = hosts; self.vms = vms; self.groups = groups
    }

    public func host(named name: String) -> HostSpec? { hosts.first { $0.name == name } }
    public func vm(named name: String) -> VMSpec? { vms.first { $0.name == name } }
    public func sla(named name: String) -> SLA? { slas.first { $0.name == name } }
}

public struct Telemetry: Sendable, Equatable, Codable {
    public enum Source: String, Sendable, Codable, CaseIterable { case libvirt, trace, prometheus }
    public var source: Source
    /// Path of the trace CSV, relative to the cluster.yaml that names it.
    public var trace: String?
    public var intervalSeconds: Double
    /// Live telemetry: also sample each host's own CPU and memory counters, so load outside the VMs counts in
    /// utilization and detection. Off by default: daemons sharing one kernel (a lab on one machine) would each
    /// count the whole machine. Trace telemetry uses `@host` rows whenever the trace has them.
    public var hostLoad: Bool
    /// `source: prometheus`: where the history is read (nil for the other sources).
    public var prometheus: PrometheusEndpoint?

    public init(source: Source = .libvirt, trace: String? = nil, intervalSeconds: Double = 10, hostLoad: Bool = false,
                prometheus: PrometheusEndpoint? = nil) {
        self.source = source; self.trace = trace; self.intervalSeconds = intervalSeconds; self.hostLoad = hostLoad
        self.prometheus = prometheus
    }
}

/// A Prometheus server that holds the VMs' history (`telemetry.source: prometheus`).
public struct PrometheusEndpoint: Sendable, Equatable, Codable {
    /// Base URL, `http(s)://HOST:PORT[/prefix]`, without credentials.
    public var url: String
    /// File holding `user:password` (basic auth) or a bearer token; relative to cluster.yaml. Never printed.
    public var credentialsFile: String?
    /// PromQL per resource replacing the defaults (results in cores, MiB, Mbit/s; `$interval` is the step).
    public var cpuQuery: String?
    public var memoryQuery: String?
    public var networkQuery: String?
    /// Per HTTP request.
    public var timeoutSeconds: Double

    public init(url: String, credentialsFile: String? = nil, cpuQuery: String? = nil, memoryQuery: String? = nil,
                networkQuery: String? = nil, timeoutSeconds: Double = 10) {
        self.url = url; self.credentialsFile = credentialsFile
        self.cpuQuery = cpuQuery; self.memoryQuery = memoryQuery; self.networkQuery = networkQuery
        self.timeoutSeconds = timeoutSeconds
    }
}

/// Utilization thresholds as fractions of capacity (0...1]. Absent values inherit the policy's.
public struct Thresholds: Sendable, Equatable, Codable {
    public var cpu: Double?
    public var net: Double?
    public var mem: Double?
    public init(cpu: Double? = nil, net: Double? = nil, mem: Double? = nil) {
        self.cpu = cpu; self.net = net; self.mem = mem
    }
}

public enum MigrationMode: String, Sendable, Codable, CaseIterable {
    case any, live, cold, never
}

public struct SLA: Sendable, Equatable, Codable {
    public var name: String
    public var thresholds: Thresholds
    public var migration: MigrationMode
    public init(name: String, thresholds: Thresholds = Thresholds(), migration: MigrationMode = .any) {
        self.name = name; self.thresholds = thresholds; self.migration = migration
    }
}

/// Declared capacity; each part is optional because observed values are used and checked against it.
/// A declared value below what libvirt reports is honoured (the spec wins; the observation is the ceiling).
public struct Capacity: Sendable, Equatable, Codable {
    public var cpus: Double?
    public var memoryMiB: Double?
    public var networkMbps: Double?
    /// `reserved: {cpus, memory}`: kept for the host itself (Nova's reserved_host_cpus / reserved_host_memory_mb).
    /// Subtracted from the capacity VMs' demand and reservations are measured against, and from the allocation
    /// limit (capacity x ratio - reserved).
    public var reservedCPUs: Double
    public var reservedMemoryMiB: Double
    public init(cpus: Double? = nil, memoryMiB: Double? = nil, networkMbps: Double? = nil,
                reservedCPUs: Double = 0, reservedMemoryMiB: Double = 0) {
        self.cpus = cpus; self.memoryMiB = memoryMiB; self.networkMbps = networkMbps
        self.reservedCPUs = reservedCPUs; self.reservedMemoryMiB = reservedMemoryMiB
    }
}

/// Nova's cpu_allocation_ratio / ram_allocation_ratio: declared vCPUs (memory) of a host's VMs may add up to
/// capacity x ratio - reserved. Nil: that allocation is not limited (only demand thresholds apply).
public struct AllocationRatio: Sendable, Equatable, Codable {
    public var cpu: Double?
    public var memory: Double?
    public init(cpu: Double? = nil, memory: Double? = nil) { self.cpu = cpu; self.memory = memory }

    /// These ratios with `o`'s set values taking precedence (a host's override over the policy's).
    public func overridden(by o: AllocationRatio?) -> AllocationRatio {
        AllocationRatio(cpu: o?.cpu ?? cpu, memory: o?.memory ?? memory)
    }
}

/// Per-VM automation level (VMware DRS per-VM automation): overrides the policy's `automation` for the actions of
/// this VM. `disabled`: Sandpiper never moves, places or retunes it (its load still counts).
public enum VMAutomation: String, Sendable, Codable, CaseIterable {
    case manual, partial, full, disabled
}

public struct HostSpec: Sendable, Equatable, Codable {
    public var name: String
    /// The libvirt URI as written. May carry credentials: print it only through `HostURI.redacted`.
    public var uri: String
    public var capacity: Capacity
    public var maintenance: Bool
    public var labels: [String: String]
    /// Commands that power the host on and off (consolidation). Run by `apply` only when the policy says
    /// `consolidation.powerCommands: allow`: whoever can commit to the repository can run them on the reconciler.
    public var power: HostPower?
    /// Per-host override of the policy's `allocationRatio`.
    public var allocationRatio: AllocationRatio?
    /// False: cordoned. Keeps its VMs but receives none (placement, swaps, staging, consolidation); unlike
    /// `maintenance`, which evacuates.
    public var schedulable: Bool
    /// `storage: shared | local`: where the disks of this host's VMs live; nil = decided per disk
    /// (`StorageDefaults`).
    public var storage: StorageMode?
    /// `sharedPools: [name]`: libvirt storage pools on this host that every host reaches (their volumes are
    /// shared storage).
    public var sharedPools: [String]?

    public init(name: String, uri: String, capacity: Capacity = Capacity(), maintenance: Bool = false,
                labels: [String: String] = [:], power: HostPower? = nil, allocationRatio: AllocationRatio? = nil,
                schedulable: Bool = true) {
        self.name = name; self.uri = uri; self.capacity = capacity
        self.maintenance = maintenance; self.labels = labels; self.power = power
        self.allocationRatio = allocationRatio; self.schedulable = schedulable
    }
}

/// `hosts[].power`: argv arrays (program path first, absolute; no shell), e.g.
/// `on: [/usr/bin/ipmitool, -H, pm4-bmc, chassis, power, on]`.
/// `status` prints a line containing the word `on` or `off` (ipmitool's "Chassis Power is off").
public struct HostPower: Sendable, Equatable, Codable {
    public var on: [String]
    public var off: [String]
    public var status: [String]?
    public init(on: [String], off: [String], status: [String]? = nil) {
        self.on = on; self.off = off; self.status = status
    }
}

/// VMware-style share levels. Per vCPU for CPU (500/1000/2000), per MiB for memory (5/10/20).
public enum Shares: Sendable, Equatable, Codable {
    case low, normal, high
    case custom(Int)

    public var name: String {
        switch self {
        case .low: "low"
        case .normal: "normal"
        case .high: "high"
        case .custom(let n): String(n)
        }
    }

    /// Shares for CPU, given the VM's vCPU count.
    public func cpuShares(vcpus: Int) -> Int {
        switch self {
        case .low: 500 * vcpus
        case .normal: 1000 * vcpus
        case .high: 2000 * vcpus
        case .custom(let n): n
        }
    }

    /// Shares for memory, given the VM's configured memory in MiB.
    public func memoryShares(memoryMiB: Double) -> Int {
        switch self {
        case .low: Int(5 * memoryMiB)
        case .normal: Int(10 * memoryMiB)
        case .high: Int(20 * memoryMiB)
        case .custom(let n): n
        }
    }
}

/// Reservation <= entitlement <= limit; shares divide what lies above reservations.
/// CPU values are cores, memory values MiB.
public struct ResourceControl: Sendable, Equatable, Codable {
    public var reservation: Double
    public var limit: Double?
    public var shares: Shares
    public init(reservation: Double = 0, limit: Double? = nil, shares: Shares = .normal) {
        self.reservation = reservation; self.limit = limit; self.shares = shares
    }
}

public struct ResourceControls: Sendable, Equatable, Codable {
    public var cpu: ResourceControl
    public var memory: ResourceControl
    public init(cpu: ResourceControl = ResourceControl(), memory: ResourceControl = ResourceControl()) {
        self.cpu = cpu; self.memory = memory
    }
}

/// Where a VM may run: pinned to one host, or to hosts carrying all the given labels.
public struct PlacementRule: Sendable, Equatable, Codable {
    public var host: String?
    public var labels: [String: String]
    public init(host: String? = nil, labels: [String: String] = [:]) {
        self.host = host; self.labels = labels
    }

    /// True when `host` satisfies this rule.
    public func admits(_ host: HostSpec) -> Bool {
        if let pinned = self.host, pinned != host.name { return false }
        for (key, value) in labels where host.labels[key] != value { return false }
        return true
    }
}

public struct VMSpec: Sendable, Equatable, Codable {
    public var name: String
    public var vcpus: Int
    public var memoryMiB: Double
    public var sla: String?
    /// Domain XML template path, relative to cluster.yaml.
    public var template: String?
    public var resources: ResourceControls
    public var placement: PlacementRule?
    /// Overrides the policy's automation level for this VM's actions; nil: the policy's.
    public var automation: VMAutomation?
    /// `storage: shared | local`: overrides the host's and libvirt's view of where this VM's disks live.
    public var storage: StorageMode?

    public init(name: String, vcpus: Int, memoryMiB: Double, sla: String? = nil, template: String? = nil,
                resources: ResourceControls = ResourceControls(), placement: PlacementRule? = nil,
                automation: VMAutomation? = nil) {
        self.name = name; self.vcpus = vcpus; self.memoryMiB = memoryMiB; self.sla = sla
        self.template = template; self.resources = resources; self.placement = placement
        self.automation = automation
    }
}

public struct GroupSpec: Sendable, Equatable, Codable {
    public enum Rule: String, Sendable, Codable, CaseIterable {
        case affinity
        case antiAffinity = "anti-affinity"
    }
    public enum Enforcement: String, Sendable, Codable, CaseIterable { case must, should }

    public var name: String
    public var vms: [String]
    public var rule: Rule
    public var enforcement: Enforcement

    public init(name: String, vms: [String], rule: Rule, enforcement: Enforcement = .must) {
        self.name = name; self.vms = vms; self.rule = rule; self.enforcement = enforcement
    }
}

extension PrometheusEndpoint {
    /// Why `url` cannot name a Prometheus server, or nil. The message never repeats the URL: it may hold a secret.
    public static func urlProblem(_ url: String) -> String? {
        guard let c = URLComponents(string: url), let scheme = c.scheme?.lowercased() else {
            return "not a URL (expected http://HOST:PORT)"
        }
        guard scheme == "http" || scheme == "https" else { return "scheme must be http or https (expected http://HOST:PORT)" }
        if c.user != nil || c.password != nil {
            return "credentials in the URL are not accepted: put them in telemetry.credentialsFile"
        }
        guard let host = c.host, !host.isEmpty else { return "no host (expected http://HOST:PORT)" }
        if c.query != nil || c.fragment != nil { return "must not have a query or fragment (expected http://HOST:PORT[/path])" }
        return nil
    }
}
