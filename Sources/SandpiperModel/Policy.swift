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
        public init(swaps: Bool = true, maxMigrationsPerRun: Int = 4, maxConcurrentPerHost: Int = 2,
                    minResidencySeconds: Double = 300, minGain: Double = 0.0) {
            self.swaps = swaps; self.maxMigrationsPerRun = maxMigrationsPerRun
            self.maxConcurrentPerHost = maxConcurrentPerHost
            self.minResidencySeconds = minResidencySeconds; self.minGain = minGain
        }
    }

    public enum Automation: String, Sendable, Codable, CaseIterable {
        /// Plan only.
        case manual
        /// Allocations (tune/resize/define/start) applied, moves proposed.
        case partial
        /// Everything applied, within maxMigrationsPerRun.
        case full
    }

    public var name: String
    public var thresholds: ResolvedThresholds
    public var window: Window
    public var prediction: Prediction
    public var profiling: Profiling
    public var placement: Placement
    public var automation: Automation

    public init(name: String = "default", thresholds: ResolvedThresholds = ResolvedThresholds(),
                window: Window = Window(), prediction: Prediction = Prediction(),
                profiling: Profiling = Profiling(), placement: Placement = Placement(),
                automation: Automation = .manual) {
        self.name = name; self.thresholds = thresholds; self.window = window; self.prediction = prediction
        self.profiling = profiling; self.placement = placement; self.automation = automation
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
