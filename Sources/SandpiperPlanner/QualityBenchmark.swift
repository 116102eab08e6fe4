import SandpiperModel

/// Plan quality against an exact optimum (`sandpiper bench quality`): small generated fleets with constant demand,
/// each stored with the minimum number of migrations an offline exact solver (tools/quality/optimum.py, CP-SAT)
/// found for it. The fleets are plain data so the solver and the test oracle read them without the planner.
public struct QualityFleet: Sendable, Codable, Equatable {
    public struct Host: Sendable, Codable, Equatable {
        public var name: String
        public var cpus: Double
        public var memoryMiB: Double
    }
    /// Constant demand: `cpu` cores and `memMiB` used memory in every sample.
    public struct VM: Sendable, Codable, Equatable {
        public var name: String
        public var host: String
        public var cpu: Double
        public var memMiB: Double
        public var vcpus: Int
        public var memoryMiB: Double
        /// Pinned to its current host.
        public var pinned: Bool
    }
    public var name: String
    public var seed: UInt64
    public var hosts: [Host]
    public var vms: [VM]
    /// Pairs of VMs under a `must` anti-affinity rule.
    public var antiAffinity: [[String]]
    /// Minimum number of migrations that puts every host under its thresholds (nil: not solved yet, or none
    /// exists; see `feasible`).
    public var optimum: Int?
    public var feasible: Bool?
}

public struct QualityFleetFile: Sendable, Codable, Equatable {
    public var formatVersion = 1
    /// How the optima were computed.
    public var solver: String?
    public var fleets: [QualityFleet]
    public init(solver: String? = nil, fleets: [QualityFleet]) { self.solver = solver; self.fleets = fleets }
}

public enum QualityBenchmark {
    /// Samples per VM (the default window's n).
    static let samples = 5

    /// `count` fleets of 4-9 hosts and 8-36 VMs, seeds 1...count; the first host and about a quarter of the
    /// others over the CPU threshold (78-95%), the rest at 25-65%, memory at 35-75%; some fleets pin a VM or keep two VMs apart.
    public static func generate(count: Int) -> [QualityFleet] {
        (1...max(1, count)).map { generate(seed: UInt64($0)) }
    }

    public static func generate(seed: UInt64) -> QualityFleet {
        var rng = SplitMix64(seed: seed &* 0x9E37_79B9 &+ 17)
        let hostCount = 4 + rng.int(6)
        let vmCount = min(36, max(8, 2 * hostCount + rng.int(2 * hostCount + 1)))
        let kinds: [(Double, Double)] = [(16, 65536), (24, 98304), (32, 131_072)]
        var hosts: [QualityFleet.Host] = []
        var hot: [Bool] = []
        for h in 0..<hostCount {
            let k = kinds[rng.int(kinds.count)]
            hosts.append(.init(name: FleetGenerator.name("pm", h + 1, width: 1), cpus: k.0, memoryMiB: k.1))
            hot.append(h == 0 || rng.chance(0.25))
        }
        // Every host gets one VM, the rest at random.
        var perHost = [Int](repeating: 1, count: hostCount)
        for _ in hostCount..<vmCount { perHost[rng.int(hostCount)] += 1 }
        var vms: [QualityFleet.VM] = []
        let width = String(vmCount).count
        for h in 0..<hostCount {
            let cpuTarget = (hot[h] ? rng.uniform(0.78, 0.95) : rng.uniform(0.25, 0.65)) * hosts[h].cpus
            let memTarget = rng.uniform(0.35, 0.75) * hosts[h].memoryMiB
            let weights = (0..<perHost[h]).map { _ in rng.uniform(0.3, 1.7) }
            let total = weights.reduce(0, +)
            for w in weights {
                let cpu = (cpuTarget * w / total * 100).rounded(.down) / 100
                let used = (memTarget * w / total).rounded(.down)
                var vcpus = 2
                while Double(vcpus) * 0.9 < cpu { vcpus *= 2 }
                let memoryMiB = ((used + 1024) / 1024).rounded(.up) * 1024
                vms.append(.init(name: FleetGenerator.name("vm", vms.count + 1, width: width), host: hosts[h].name,
                                 cpu: cpu, memMiB: used, vcpus: vcpus, memoryMiB: memoryMiB, pinned: false))
            }
        }
        if rng.chance(0.3) { vms[rng.int(vms.count)].pinned = true }
        var groups: [[String]] = []
        if rng.chance(0.5) {
            let a = rng.int(vms.count), b = rng.int(vms.count)
            if vms[a].host != vms[b].host { groups.append([vms[a].name, vms[b].name].sorted()) }
        }
        return QualityFleet(name: "q\(seed)", seed: seed, hosts: hosts, vms: vms, antiAffinity: groups)
    }

    /// The fleet as the planner sees it; `budget` nil = no per-run limit.
    public static func inputs(_ f: QualityFleet, budget: Int?) -> (spec: ClusterSpec, observation: Observation,
                                                                    policy: Policy) {
        var policy = Policy()
        policy.profiling.headroom = 0
        if let budget { policy.placement.maxMigrationsPerRun = budget } else {
            policy.placement.maxMigrationsPerRun = 10 * max(1, f.vms.count)
        }
        let hostSpecs = f.hosts.map { HostSpec(name: $0.name, uri: "test:///\($0.name)") }
        let hostObs = f.hosts.map { HostObservation(name: $0.name, cpus: $0.cpus, memoryMiB: $0.memoryMiB,
                                                    networkMbps: 10_000) }
        let vmSpecs = f.vms.map {
            VMSpec(name: $0.name, vcpus: $0.vcpus, memoryMiB: $0.memoryMiB, template: "templates/vm.xml",
                   placement: $0.pinned ? PlacementRule(host: $0.host) : nil)
        }
        let vmObs = f.vms.map { v in
            VMObservation(name: v.name, host: v.host, vcpus: v.vcpus, memoryMiB: v.memoryMiB,
                          tunables: Tunables(cpuShares: 1000 * v.vcpus),
                          samples: [Sample](repeating: Sample(cpu: v.cpu, memMiB: v.memMiB), count: samples))
        }
        let groups = f.antiAffinity.enumerated().map { i, pair in
            GroupSpec(name: "apart\(i + 1)", vms: pair, rule: .antiAffinity, enforcement: .must)
        }
        let spec = ClusterSpec(name: f.name, hosts: hostSpecs, vms: vmSpecs, groups: groups)
        return (spec, Observation(intervalSeconds: 10, now: 1_000_000, hosts: hostObs, vms: vmObs), policy)
    }

    /// The bench's own judge, from the fleet's plain numbers (not the planner's): the placement after the plan's
    /// migrations, every host under 75% CPU and 90% memory of its capacity (the default thresholds), pins and
    /// anti-affinity kept. Demand as the default gray-box profile counts it: CPU as sampled (at most the vCPUs),
    /// memory used plus the 32 MiB free target (at most the VM's memory).
    public static func check(_ f: QualityFleet, migrations: [(vm: String, to: String)]) -> (resolved: Bool, valid: Bool) {
        var at: [String: String] = [:]
        for v in f.vms { at[v.name] = v.host }
        var valid = true
        for m in migrations {
            guard at[m.vm] != nil, f.hosts.contains(where: { $0.name == m.to }) else { valid = false; continue }
            at[m.vm] = m.to
        }
        var cpu: [String: Double] = [:], mem: [String: Double] = [:]
        for v in f.vms {
            let h = at[v.name]!
            if v.pinned && h != v.host { valid = false }
            cpu[h, default: 0] += min(v.cpu, Double(v.vcpus))
            mem[h, default: 0] += min(v.memMiB + 32, v.memoryMiB)
        }
        for pair in f.antiAffinity where pair.count == 2 && at[pair[0]] == at[pair[1]] { valid = false }
        var resolved = true
        for h in f.hosts {
            let c = cpu[h.name] ?? 0, m = mem[h.name] ?? 0
            if c > h.cpus + 1e-9 || m > h.memoryMiB + 1e-9 { valid = false }
            if c > 0.75 * h.cpus + 1e-9 || m > 0.90 * h.memoryMiB + 1e-9 { resolved = false }
        }
        return (resolved, valid)
    }

    public struct Run: Sendable, Equatable {
        public var resolved: Bool
        public var valid: Bool
        public var migrations: Int
        /// The paper's greedy alone (step 5b off), for comparison.
        public var greedyMigrations: Int
        public var greedyResolved: Bool
    }

    public struct Row: Sendable, Equatable {
        public var fleet: String
        public var hosts: Int
        public var vms: Int
        public var optimum: Int?
        public var feasible: Bool
        /// No per-run budget.
        public var unlimited: Run
        /// The default budget (maxMigrationsPerRun 4).
        public var budgeted: Run
    }

    public static func run(_ f: QualityFleet) -> Row {
        func one(_ budget: Int?) -> Run {
            let (spec, observation, policy) = inputs(f, budget: budget)
            let plan = Planner.plan(spec: spec, observation: observation, policy: policy)
            let moves = plan.migrations.map { (vm: $0.vm, to: $0.to ?? "") }
            let c = check(f, migrations: moves)
            let greedy = Planner.plan(spec: spec, observation: observation, policy: policy,
                                      options: PlanOptions(improve: false))
            let g = greedy.migrations.map { (vm: $0.vm, to: $0.to ?? "") }
            return Run(resolved: c.resolved, valid: c.valid, migrations: moves.count, greedyMigrations: g.count,
                       greedyResolved: check(f, migrations: g).resolved)
        }
        return Row(fleet: f.name, hosts: f.hosts.count, vms: f.vms.count, optimum: f.optimum,
                   feasible: f.feasible ?? (f.optimum != nil), unlimited: one(nil),
                   budgeted: one(defaultBudget))
    }
}

extension QualityBenchmark {
    /// The policy's default maxMigrationsPerRun, the budget of the second run.
    public static var defaultBudget: Int { Policy().placement.maxMigrationsPerRun }
}
