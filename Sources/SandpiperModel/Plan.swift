/// The planner's output: a typed value, never printed or encoded directly.
/// `PlanDocument` (PlanDocument.swift) is the versioned JSON contract built from it.
///
/// Utilizations are fractions of a host's observed capacity. "Before" and "after" are both computed from the
/// VMs' *profiles* (percentile + headroom demand estimates, section 1 of DESIGN.md) so the two columns compare
/// like with like; `hot` in `hostsBefore` lists the resources detection confirmed (k of n + AR prediction),
/// `hot` in `hostsAfter` the confirmed resources whose projected utilization is still above the host's
/// threshold (plus any resource the plan itself pushed over, which the planner never does).
public struct Plan: Sendable, Equatable {
    /// In execution order: every action comes after the actions it depends on.
    public var actions: [PlannedAction]
    public var hostsBefore: [HostUtilization]
    public var hostsAfter: [HostUtilization]
    public var hotspots: [Hotspot]
    public var unresolved: [UnresolvedHotspot]
    public var drift: [DriftNote]
    /// One entry per placement decision taken (and per failed search behind an unresolved hotspot).
    public var decisions: [PlacementDiagnostics]
    /// Entitlements on hosts whose demand exceeds capacity for a resource (contention), VMware semantics.
    public var entitlements: [Entitlement]

    public init(actions: [PlannedAction] = [], hostsBefore: [HostUtilization] = [],
                hostsAfter: [HostUtilization] = [], hotspots: [Hotspot] = [], unresolved: [UnresolvedHotspot] = [],
                drift: [DriftNote] = [], decisions: [PlacementDiagnostics] = [], entitlements: [Entitlement] = []) {
        self.actions = actions; self.hostsBefore = hostsBefore; self.hostsAfter = hostsAfter
        self.hotspots = hotspots; self.unresolved = unresolved; self.drift = drift
        self.decisions = decisions; self.entitlements = entitlements
    }

    public var hasChanges: Bool { !actions.isEmpty }
    public var migrations: [PlannedAction] { actions.filter { $0.kind == .migrate } }
}

/// The three resources the planner balances.
public enum ResourceKind: String, Sendable, Equatable, Hashable, Codable, CaseIterable, Comparable {
    case cpu, net, mem
    public static func < (a: ResourceKind, b: ResourceKind) -> Bool { a.order < b.order }
    private var order: Int { switch self { case .cpu: 0; case .net: 1; case .mem: 2 } }
}

/// Closed set of things apply can do (Terraform's `plans.Action`).
public enum ActionKind: String, Sendable, Equatable, Codable, CaseIterable {
    case define, start, tune, resize, migrate, stop, undefine
    /// Host actions (consolidation): `host` names the host, `vm` is empty.
    case drain
    case powerOff = "power-off"
    case powerOn = "power-on"

    /// Terraform-style symbol for human output.
    public var symbol: String {
        switch self {
        case .define, .start, .powerOn: "+"
        case .tune, .resize: "~"
        case .migrate: ">"
        case .stop, .undefine, .powerOff: "-"
        case .drain: "<"
        }
    }

    public var isHostAction: Bool { self == .drain || self == .powerOff || self == .powerOn }
}

public enum MoveMode: String, Sendable, Equatable, Codable, CaseIterable { case live, cold }

/// The Sandpiper release, recorded in every plan it makes.
public enum SandpiperVersion {
    public static let current = "0.2.0"
}

/// What an action sets. Only the fields relevant to the action's kind are present.
public struct ActionParameters: Sendable, Equatable {
    public var cpuShares: Int?
    public var cpuPeriodMicros: Int?
    /// -1 removes the quota (unlimited).
    public var cpuQuotaMicros: Int?
    public var memoryHardLimitMiB: Double?
    public var memorySoftLimitMiB: Double?
    /// Balloon target (current memory allocation).
    public var balloonMiB: Double?
    /// Resize / define.
    public var vcpus: Int?
    public var memoryMiB: Double?
    /// Define: domain XML template path from the spec, relative to cluster.yaml.
    public var template: String?

    public init(cpuShares: Int? = nil, cpuPeriodMicros: Int? = nil, cpuQuotaMicros: Int? = nil,
                memoryHardLimitMiB: Double? = nil, memorySoftLimitMiB: Double? = nil, balloonMiB: Double? = nil,
                vcpus: Int? = nil, memoryMiB: Double? = nil, template: String? = nil) {
        self.cpuShares = cpuShares; self.cpuPeriodMicros = cpuPeriodMicros; self.cpuQuotaMicros = cpuQuotaMicros
        self.memoryHardLimitMiB = memoryHardLimitMiB; self.memorySoftLimitMiB = memorySoftLimitMiB
        self.balloonMiB = balloonMiB; self.vcpus = vcpus; self.memoryMiB = memoryMiB; self.template = template
    }
}

public struct PlannedAction: Sendable, Equatable {
    /// Stable within a plan ("1", "2", ... in execution order).
    public var id: String
    public var kind: ActionKind
    /// Empty for host actions.
    public var vm: String
    /// Host actions (drain, power-off, power-on): the host.
    public var host: String?
    /// Migrate: source; tune/resize/start/stop/undefine: where the VM is.
    public var from: String?
    /// Migrate / define: destination.
    public var to: String?
    public var mode: MoveMode?
    public var dependsOn: [String]
    /// Set on the two or three migrations of one swap.
    public var swapGroup: String?
    public var parameters: ActionParameters
    /// For humans only; apply never decides on it.
    public var reason: String

    public init(id: String, kind: ActionKind, vm: String, from: String? = nil, to: String? = nil,
                mode: MoveMode? = nil, dependsOn: [String] = [], swapGroup: String? = nil,
                parameters: ActionParameters = ActionParameters(), host: String? = nil, reason: String) {
        self.id = id; self.kind = kind; self.vm = vm; self.host = host; self.from = from; self.to = to; self.mode = mode
        self.dependsOn = dependsOn; self.swapGroup = swapGroup; self.parameters = parameters; self.reason = reason
    }
}

public struct HostUtilization: Sendable, Equatable {
    public enum Status: String, Sendable, Equatable, Codable { case up, unknown, maintenance, standby }
    public var name: String
    public var status: Status
    public var cpu: Double
    public var net: Double
    public var mem: Double
    /// 1 / ((1-cpu)(1-net)(1-mem)), each utilization clamped to 0.99.
    public var volume: Double
    public var hot: [ResourceKind]
    /// The host's thresholds: the policy's tightened by the SLAs of the VMs on it.
    public var thresholds: ResolvedThresholds
    public var vmCount: Int

    public init(name: String, status: Status, cpu: Double, net: Double, mem: Double, volume: Double,
                hot: [ResourceKind], thresholds: ResolvedThresholds, vmCount: Int) {
        self.name = name; self.status = status; self.cpu = cpu; self.net = net; self.mem = mem
        self.volume = volume; self.hot = hot; self.thresholds = thresholds; self.vmCount = vmCount
    }

    public func utilization(_ r: ResourceKind) -> Double {
        switch r { case .cpu: cpu; case .net: net; case .mem: mem }
    }
}

extension ResolvedThresholds {
    public func value(_ r: ResourceKind) -> Double {
        switch r { case .cpu: cpu; case .net: net; case .mem: mem }
    }
}

/// A confirmed hotspot: a host against its thresholds, or a VM against its own allocation.
/// VM CPU: samples are demand / ceiling (limit or vCPUs), threshold 0.95. VM memory: the signal is swapping
/// (black-box) or guest free memory under the target (gray-box) in k of n samples; `samples` are used / allocated
/// memory for reference and `threshold` is 1.
public struct Hotspot: Sendable, Equatable {
    /// What made it hot: what a reviewer is told, and whether it counts as a hotspot.
    public enum Trigger: String, Sendable, Equatable, Codable {
        /// A host's utilization over its threshold in k of n samples, confirmed by the AR prediction.
        case threshold
        /// A VM's CPU demand at its own allocation (vCPUs or limit): a notice, not a hotspot a move can fix.
        case atAllocation = "at-allocation"
        /// Memory pressure seen as swapping (black-box).
        case swapping
        /// Memory pressure seen as guest free memory under `profiling.guestFreeTarget` (gray-box).
        case guestFree = "guest-free"
    }
    public var host: String
    /// Set for a VM-level hotspot (demand at its allocation).
    public var vm: String?
    public var resource: ResourceKind
    public var samplesOver: Int
    public var window: Int
    /// The utilization series that was judged, oldest first.
    public var samples: [Double]
    /// AR(p) one-step prediction; nil when prediction is off or does not apply.
    public var predicted: Double?
    public var threshold: Double
    public var trigger: Trigger
    /// Guest-free trigger: the free-memory target the guest fell under.
    public var targetMiB: Double?

    public init(host: String, vm: String? = nil, resource: ResourceKind, samplesOver: Int, window: Int,
                samples: [Double], predicted: Double?, threshold: Double, trigger: Trigger = .threshold,
                targetMiB: Double? = nil) {
        self.host = host; self.vm = vm; self.resource = resource; self.samplesOver = samplesOver
        self.window = window; self.samples = samples; self.predicted = predicted; self.threshold = threshold
        self.trigger = trigger; self.targetMiB = targetMiB
    }

    /// Counted as a hotspot (in a plan's summary and in `simulate`): everything but a VM at its own allocation.
    public var counts: Bool { trigger != .atAllocation }

    /// "4 of 5".
    public var overSummary: String { "\(samplesOver) of \(window)" }
}

/// A hotspot, or a constraint violation / declared VM, the plan could not fix, with the reason.
public struct UnresolvedHotspot: Sendable, Equatable {
    public var host: String?
    public var vm: String?
    public var resources: [ResourceKind]
    public var reason: String
    public init(host: String? = nil, vm: String? = nil, resources: [ResourceKind] = [], reason: String) {
        self.host = host; self.vm = vm; self.resources = resources; self.reason = reason
    }
}

public struct DriftNote: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable, Codable {
        /// Declared in the spec but not observed: initial placement.
        case absent
        /// Running but not declared: reported; removed only with prune.
        case undeclared
        /// Declared and observed, but not running.
        case notRunning = "not-running"
        /// Spec vCPUs/memory differ from the observed allocation.
        case allocation
        /// Declared host missing from the observation, or unreachable.
        case hostUnknown = "host-unknown"
    }
    public var kind: Kind
    public var vm: String?
    public var host: String?
    public var message: String
    public init(kind: Kind, vm: String? = nil, host: String? = nil, message: String) {
        self.kind = kind; self.vm = vm; self.host = host; self.message = message
    }
}

/// Nomad's AllocMetric for one placement decision: why hosts were rejected and how the best ones scored.
public struct PlacementDiagnostics: Sendable, Equatable {
    public enum Purpose: String, Sendable, Equatable, Codable {
        case hotspot, swap, staging, repair, initial, consolidation, balance
    }
    public struct Candidate: Sendable, Equatable {
        public var host: String
        public var volumeBefore: Double
        public var volumeAfter: Double
        public var penalty: Double
        public var score: Double
        public init(host: String, volumeBefore: Double, volumeAfter: Double, penalty: Double, score: Double) {
            self.host = host; self.volumeBefore = volumeBefore; self.volumeAfter = volumeAfter
            self.penalty = penalty; self.score = score
        }
    }
    public struct Count: Sendable, Equatable {
        public var reason: String
        public var count: Int
        public init(reason: String, count: Int) { self.reason = reason; self.count = count }
    }
    public var vm: String
    public var purpose: Purpose
    public var from: String?
    /// nil when no host fits.
    public var chosen: String?
    public var hostsExamined: Int
    public var hostsTotal: Int
    /// Rejections counted by reason, sorted by reason.
    public var filtered: [Count]
    /// A few rejection details with numbers ("pm3: needs 2.00 cores; 5.50 of 8 used, threshold 6.00").
    public var examples: [String]
    /// Best candidates, best first.
    public var candidates: [Candidate]

    public init(vm: String, purpose: Purpose, from: String?, chosen: String?, hostsExamined: Int, hostsTotal: Int,
                filtered: [Count], examples: [String], candidates: [Candidate]) {
        self.vm = vm; self.purpose = purpose; self.from = from; self.chosen = chosen
        self.hostsExamined = hostsExamined; self.hostsTotal = hostsTotal; self.filtered = filtered
        self.examples = examples; self.candidates = candidates
    }
}

/// reservation <= entitlement <= limit; capacity above reservations divided by shares (water-filling).
public struct Entitlement: Sendable, Equatable {
    public var vm: String
    public var host: String
    public var resource: ResourceKind
    public var reservation: Double
    public var limit: Double?
    public var shares: Int
    public var demand: Double
    public var entitlement: Double
    public init(vm: String, host: String, resource: ResourceKind, reservation: Double, limit: Double?, shares: Int,
                demand: Double, entitlement: Double) {
        self.vm = vm; self.host = host; self.resource = resource; self.reservation = reservation
        self.limit = limit; self.shares = shares; self.demand = demand; self.entitlement = entitlement
    }
}
