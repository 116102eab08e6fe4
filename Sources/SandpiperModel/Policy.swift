/// `Policies/<name>.yaml`: how the planner detects, profiles and places (DESIGN.md section 3).
public struct Policy: Sendable, Equatable, Codable {
    public struct Window: Sendable, Equatable, Codable {
        /// Hot when the threshold is exceeded in at least `k` of the last `n` samples.
        public var k: Int
        public var n: Int
        public init(k: Int = 3, n: Int = 5) { self.k = k; self.n = n }
    }

    public struct Prediction: Sendable, Equatable, Codable {
        public enum Model: String, Sendable, Codable, CaseIterable { case ar, none }
        public var model: Model
        /// AR order p; 0 turns prediction off.
        public var order: Int
        public init(model: Model = .ar, order: Int = 2) { self.model = model; self.order = order }
    }

    public struct Profiling: Sendable, Equatable, Codable {
        public enum Mode: String, Sendable, Codable, CaseIterable {
            case grayBox = "gray-box"
            case blackBox = "black-box"
        }
        public var percentile: Double
        public var headroom: Double
        public var memoryStepMiB: Double
        public var guestFreeTargetMiB: Double
        public var mode: Mode
        public init(percentile: Double = 95, headroom: Double = 0.10, memoryStepMiB: Double = 32,
                    guestFreeTargetMiB: Double = 32, mode: Mode = .grayBox) {
            self.percentile = percentile; self.headroom = headroom; self.memoryStepMiB = memoryStepMiB
            self.guestFreeTargetMiB = guestFreeTargetMiB; self.mode = mode
        }
    }

    public struct Placement: Sendable, Equatable, Codable {
        public var swaps: Bool
        public var maxMigrationsPerRun: Int
        public var maxConcurrentPerHost: Int
        public var minResidencySeconds: Double
        /// A move must lower the source host's Volume by at least this fraction to be worth its cost.
        public var minGain: Double
        /// Cost-benefit per move, like DRS's migration threshold: 1 conservative ... 5 aggressive. A hotspot or
        /// balance move is made only when its benefit is at least `CostBenefitLevel.requiredRatio` times its cost;
        /// 5 (the default) requires nothing more than relief, as before the knob existed.
        public var migrationThreshold: Int
        public init(swaps: Bool = true, maxMigrationsPerRun: Int = 4, maxConcurrentPerHost: Int = 2,
                    minResidencySeconds: Double = 300, minGain: Double = 0.0, migrationThreshold: Int = 5) {
            self.swaps = swaps; self.maxMigrationsPerRun = maxMigrationsPerRun
            self.maxConcurrentPerHost = maxConcurrentPerHost
            self.minResidencySeconds = minResidencySeconds; self.minGain = minGain
            self.migrationThreshold = migrationThreshold
        }

        /// Benefit / cost a move needs at `migrationThreshold` (DRS: level 1 applies only mandatory moves,
        /// 5 every improving one). Constraint repair and evacuation are never filtered.
        public static func requiredRatio(migrationThreshold level: Int) -> Double {
            switch level {
            case ...1: return 4
            case 2: return 2
            case 3: return 1
            case 4: return 0.5
            default: return 0
            }
        }
        public var requiredBenefitRatio: Double { Self.requiredRatio(migrationThreshold: migrationThreshold) }
    }

    public enum Automation: String, Sendable, Codable, CaseIterable {
        /// Plan only.
        case manual
        /// Allocations (tune/resize/define/start) applied, moves proposed.
        case partial
        /// Everything applied, within maxMigrationsPerRun.
        case full
    }

    /// Dynamic data center (VMware DPM): pack VMs onto fewer hosts when load is low, power the rest down, and
    /// power hosts back up before hotspots appear.
    public struct Consolidation: Sendable, Equatable, Codable {
        public enum PowerCommands: String, Sendable, Codable, CaseIterable { case allow, deny }
        public var enabled: Bool
        /// Receivers are filled up to this utilization (every resource, on profiles), never above a threshold.
        public var targetUtilization: Double
        /// Explicit override of the low level (the pre-band criterion); nil: the low edge of the target band,
        /// `targetUtilization - targetBand` (VMware DPM: 63% ± 18%).
        public var lowUtilization: Double?
        /// Half-width of the target band: a host whose every resource is below `targetUtilization - targetBand`
        /// is a candidate for power-off (emptied when its VMs fit the other hosts under the target).
        public var targetBand: Double
        /// Never fewer powered hosts than this.
        public var minHostsOn: Int
        /// Powered hosts kept empty as spare capacity (N+1: 1).
        public var spareHosts: Int
        public var powerOffAfterSeconds: Double
        /// Power a standby host on when a host's AR-predicted utilization crosses `targetUtilization` and
        /// no powered host has room, before the hotspot threshold is reached.
        public var wakeAhead: Bool
        /// Default deny: plans may propose power actions, `apply` refuses to run the host's commands.
        public var powerCommands: PowerCommands
        public var commandTimeoutSeconds: Double

        public init(enabled: Bool = false, targetUtilization: Double = 0.60, lowUtilization: Double? = nil,
                    targetBand: Double = 0.18, minHostsOn: Int = 1, spareHosts: Int = 0, powerOffAfterSeconds: Double = 1800,
                    wakeAhead: Bool = true, powerCommands: PowerCommands = .deny, commandTimeoutSeconds: Double = 120) {
            self.enabled = enabled; self.targetUtilization = targetUtilization; self.lowUtilization = lowUtilization
            self.targetBand = targetBand
            self.minHostsOn = minHostsOn; self.spareHosts = spareHosts
            self.powerOffAfterSeconds = powerOffAfterSeconds; self.wakeAhead = wakeAhead
            self.powerCommands = powerCommands; self.commandTimeoutSeconds = commandTimeoutSeconds
        }

        /// The level under which a host is low: `lowUtilization` when set, else the band's low edge.
        public var lowLevel: Double { lowUtilization ?? max(0, targetUtilization - targetBand) }

        /// Low: every resource below `lowLevel`. One definition for the planner and for the engine, which
        /// records when each host became low (`HostObservation.lowSince`, kept in state.json).
        public func isLow(cpu: Double, net: Double, mem: Double) -> Bool {
            let l = lowLevel
            return cpu < l && net < l && mem < l
        }
    }

    /// Load balancing under the thresholds (`balance:`; DRS load balance, OpenStack Watcher's
    /// workload_stabilization): in a calm plan (no hotspot, no migration planned yet), move VMs from the most to
    /// the least loaded powered host while the spread of the dominant resource exceeds `maxSpread`.
    public struct Balance: Sendable, Equatable, Codable {
        public var enabled: Bool
        /// Spread = max - min utilization of the dominant resource (the one with the highest mean utilization
        /// over the powered hosts) across the powered, schedulable hosts.
        public var maxSpread: Double
        /// At most this many balance moves per plan (within maxMigrationsPerRun).
        public var maxMoves: Int
        public init(enabled: Bool = false, maxSpread: Double = 0.20, maxMoves: Int = 2) {
            self.enabled = enabled; self.maxSpread = maxSpread; self.maxMoves = maxMoves
        }
    }

    /// How live migrations run (`migration:`): passed to libvirt as migration parameters and flags.
    public struct Migration: Sendable, Equatable, Codable {
        /// Bandwidth cap, Mbit/s (VIR_MIGRATE_PARAM_BANDWIDTH, in MiB/s); nil = unlimited.
        public var bandwidthMbps: Double?
        /// Longest pause of the guest at switch-over, ms (virDomainMigrateSetMaxDowntime); nil = libvirt's default.
        public var maxDowntimeMs: Double?
        /// Throttle the guest's vCPUs when memory is dirtied faster than it is copied (VIR_MIGRATE_AUTO_CONVERGE).
        public var autoConverge: Bool
        /// Allow post-copy (VIR_MIGRATE_POSTCOPY): a migration past its time budget switches to post-copy instead
        /// of being aborted.
        public var postCopy: Bool
        /// Time budget per GiB of the VM's memory (at least one GiB is counted); past it the job is aborted.
        public var timeoutPerGiBSeconds: Double
        /// VIR_MIGRATE_COMPRESSED.
        public var compressed: Bool
        /// Encrypt the migration stream with the daemons' TLS setup (VIR_MIGRATE_TLS).
        public var tls: Bool

        public init(bandwidthMbps: Double? = nil, maxDowntimeMs: Double? = nil, autoConverge: Bool = false,
                    postCopy: Bool = false, timeoutPerGiBSeconds: Double = 300, compressed: Bool = false,
                    tls: Bool = false) {
            self.bandwidthMbps = bandwidthMbps; self.maxDowntimeMs = maxDowntimeMs; self.autoConverge = autoConverge
            self.postCopy = postCopy; self.timeoutPerGiBSeconds = timeoutPerGiBSeconds; self.compressed = compressed
            self.tls = tls
        }

        /// The time budget of moving a VM with `memoryMiB` of memory.
        public func timeoutSeconds(memoryMiB: Double) -> Double {
            timeoutPerGiBSeconds * max(1, memoryMiB / 1024)
        }
    }

    public var name: String
    public var thresholds: ResolvedThresholds
    public var window: Window
    public var prediction: Prediction
    public var profiling: Profiling
    public var placement: Placement
    public var automation: Automation
    public var consolidation: Consolidation
    public var migration: Migration = Migration()
    public var balance: Balance = Balance()
    /// `automation: {level, windows, repairOverridesWindows}`: when moves may be applied (none: always).
    public var changeWindows: ChangeWindows = ChangeWindows()
    /// `allocationRatio: {cpu, memory}`; hosts may override it. Unset: allocations are not limited.
    public var allocationRatio: AllocationRatio
    /// `notify:` webhooks (none by default).
    public var notify: [Webhook] = []

    public init(name: String = "default", thresholds: ResolvedThresholds = ResolvedThresholds(),
                window: Window = Window(), prediction: Prediction = Prediction(),
                profiling: Profiling = Profiling(), placement: Placement = Placement(),
                automation: Automation = .manual, consolidation: Consolidation = Consolidation(),
                allocationRatio: AllocationRatio = AllocationRatio()) {
        self.name = name; self.thresholds = thresholds; self.window = window; self.prediction = prediction
        self.profiling = profiling; self.placement = placement; self.automation = automation
        self.consolidation = consolidation; self.allocationRatio = allocationRatio
    }
}

/// Thresholds with every resource set: the policy's, possibly tightened by an SLA.
public struct ResolvedThresholds: Sendable, Equatable, Codable {
    public var cpu: Double
    public var net: Double
    public var mem: Double
    public init(cpu: Double = 0.75, net: Double = 0.75, mem: Double = 0.90) {
        self.cpu = cpu; self.net = net; self.mem = mem
    }

    /// These thresholds with the SLA's overrides applied.
    public func overridden(by t: Thresholds) -> ResolvedThresholds {
        ResolvedThresholds(cpu: t.cpu ?? cpu, net: t.net ?? net, mem: t.mem ?? mem)
    }

    /// The stricter of two, resource by resource (a host carrying gold and bronze VMs obeys gold).
    public func strictest(with o: ResolvedThresholds) -> ResolvedThresholds {
        ResolvedThresholds(cpu: min(cpu, o.cpu), net: min(net, o.net), mem: min(mem, o.mem))
    }
}
