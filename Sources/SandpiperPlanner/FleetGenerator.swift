import SandpiperModel

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and the same sequence on every platform.
public struct SplitMix64: Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) / Double(UInt64(1) << 53) }
    public mutating func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * unit() }
    /// Uniform in 0..<n.
    public mutating func int(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }
    public mutating func chance(_ p: Double) -> Bool { unit() < p }
}

/// A seeded synthetic fleet for property tests and the benchmark: hosts of three sizes, VMs spread evenly,
/// about `hotFraction` of the hosts loaded to 80-95% CPU (sustained), the rest at 20-55%; a mix of SLAs
/// (gold 70% / live, batch / cold, frozen / never), 1% pinned VMs, reservations, limits on some VMs,
/// anti-affinity "must" pairs across neighbouring hosts, a few recent arrivals (minimum residency).
/// Every spec constraint holds in the generated observation; observed tunables match the spec.
public enum FleetGenerator {
    public struct Options: Sendable {
        public var hotFraction: Double = 0.05
        public var pinnedFraction: Double = 0.01
        public var antiAffinityPairs: Double = 0.005
        public var recentlyMovedFraction: Double = 0.02
        public var absentFraction: Double = 0.0
        public var undeclaredFraction: Double = 0.0
        public init() {}
    }

    public static func generate(hosts hostCount: Int, vms vmCount: Int, hotFraction: Double = 0.05,
                                seed: UInt64) -> (spec: ClusterSpec, observation: Observation, policy: Policy) {
        var o = Options()
        o.hotFraction = hotFraction
        return generate(hosts: hostCount, vms: vmCount, seed: seed, options: o)
    }

    static func name(_ prefix: String, _ i: Int, width: Int) -> String {
        var s = String(i)
        while s.count < width { s = "0" + s }
        return prefix + s
    }

    public static func generate(hosts hostCount: Int, vms vmCount: Int, seed: UInt64,
                                options: Options) -> (spec: ClusterSpec, observation: Observation, policy: Policy) {
        var rng = SplitMix64(seed: seed)
        let hostCount = max(1, hostCount)
        let hw = String(hostCount).count, vw = String(max(1, vmCount)).count
        let kinds: [(cpus: Double, mem: Double, net: Double)] = [(32, 262_144, 10_000), (48, 393_216, 25_000),
                                                                 (64, 524_288, 25_000)]
        let slas = [SLA(name: "gold", thresholds: Thresholds(cpu: 0.70), migration: .live),
                    SLA(name: "batch", migration: .cold),
                    SLA(name: "frozen", migration: .never)]
        var hostSpecs: [HostSpec] = [], hostObs: [HostObservation] = []
        var hot: [Bool] = []
        for h in 0..<hostCount {
            let k = kinds[rng.int(kinds.count)]
            let n = name("pm", h, width: hw)
            hostSpecs.append(HostSpec(name: n, uri: "test:///\(n)", labels: ["rack": "r\(h % 8)"]))
            hostObs.append(HostObservation(name: n, cpus: k.cpus, memoryMiB: k.mem, networkMbps: k.net))
            hot.append(rng.chance(options.hotFraction))
        }

        var vmSpecs: [VMSpec] = [], vmObs: [VMObservation] = []
        vmSpecs.reserveCapacity(vmCount); vmObs.reserveCapacity(vmCount)
        var hostOfVM: [Int] = []
        let now = 1_000_000.0
        let vcpuChoices = [1, 2, 2, 4, 4, 8]
        let memChoices: [Double] = [2048, 4096, 4096, 8192, 16384]
        var next = 0
        for h in 0..<hostCount {
            let count = vmCount / hostCount + (h < vmCount % hostCount ? 1 : 0)
            guard count > 0 else { continue }
            let cap = hostObs[h]
            let targetCPU = hot[h] ? rng.uniform(0.82, 0.95) : rng.uniform(0.20, 0.55)
            let perVM = targetCPU * cap.cpus / Double(count)
            var memUsed = 0.0
            var cpuResv = 0.0
            for _ in 0..<count {
                let i = next; next += 1
                let n = name("vm", i, width: vw)
                var vcpus = vcpuChoices[rng.int(vcpuChoices.count)]
                var cpu = perVM * rng.uniform(0.6, 1.4)
                while cpu > Double(vcpus) * 0.85, vcpus < 64 { vcpus *= 2 }
                cpu = min(cpu, Double(vcpus) * 0.85)
                var memory = memChoices[rng.int(memChoices.count)]
                if memUsed + memory > cap.memoryMiB * 0.55 { memory = 1024 }
                memUsed += memory
                let used = memory * rng.uniform(0.5, 0.85)
                let net = cap.networkMbps * rng.uniform(0, 0.02)
                var resources = ResourceControls()
                if rng.chance(0.2), cpuResv + 0.5 < cap.cpus * 0.5 {
                    resources.cpu.reservation = 0.5
                    cpuResv += 0.5
                    resources.memory.reservation = (memory / 2).rounded()
                }
                if rng.chance(0.1) { resources.cpu.limit = Double(vcpus) }
                let roll = rng.unit()
                let sla: String? = roll < 0.10 ? "gold" : roll < 0.15 ? "batch" : roll < 0.16 ? "frozen" : nil
                let pinned = rng.chance(options.pinnedFraction)
                vmSpecs.append(VMSpec(name: n, vcpus: vcpus, memoryMiB: memory, sla: sla, template: "templates/vm.xml",
                                      resources: resources,
                                      placement: pinned ? PlacementRule(host: hostSpecs[h].name) : nil))
                var samples: [Sample] = []
                samples.reserveCapacity(5)
                for _ in 0..<5 {
                    let c = min(Double(vcpus) * 0.9, cpu * rng.uniform(0.95, 1.05))
                    samples.append(Sample(cpu: c, netMbps: net * rng.uniform(0.9, 1.1), memMiB: used,
                                          guestFreeMiB: memory - used))
                }
                vmObs.append(VMObservation(
                    name: n, host: hostSpecs[h].name, vcpus: vcpus, memoryMiB: memory,
                    tunables: Tunables(cpuShares: 1000 * vcpus, cpuPeriodMicros: resources.cpu.limit == nil ? nil : 100_000,
                                       cpuQuotaMicros: resources.cpu.limit.map { Int(($0 * 100_000).rounded()) },
                                       memorySoftLimitMiB: resources.memory.reservation > 0 ? resources.memory.reservation : nil),
                    samples: samples,
                    lastMovedAt: rng.chance(options.recentlyMovedFraction) ? now - 60 : nil))
                hostOfVM.append(h)
            }
        }

        // Anti-affinity pairs: a VM and the first VM of the next host.
        var groups: [GroupSpec] = []
        if hostCount > 1, vmCount > 0 {
            let pairs = Int(Double(vmCount) * options.antiAffinityPairs)
            var used = Set<Int>()
            for p in 0..<pairs {
                let a = rng.int(vmCount)
                let b = (a + max(1, vmCount / hostCount)) % vmCount
                guard a != b, hostOfVM[a] != hostOfVM[b], !used.contains(a), !used.contains(b) else { continue }
                used.insert(a); used.insert(b)
                groups.append(GroupSpec(name: name("spread", p, width: vw), vms: [vmSpecs[a].name, vmSpecs[b].name],
                                        rule: .antiAffinity, enforcement: .must))
            }
        }

        // Optional drift.
        var keptObs = vmObs
        if options.absentFraction > 0 {
            keptObs = []
            for o in vmObs where !rng.chance(options.absentFraction) { keptObs.append(o) }
        }
        if options.undeclaredFraction > 0 {
            var kept: [VMSpec] = []
            for s in vmSpecs where !rng.chance(options.undeclaredFraction) { kept.append(s) }
            let keptNames = Set(kept.map(\.name))
            groups = groups.filter { $0.vms.allSatisfy(keptNames.contains) }
            vmSpecs = kept
        }

        var policy = Policy()
        policy.placement.maxMigrationsPerRun = max(4, hostCount * 4)
        let spec = ClusterSpec(name: "generated-\(seed)", slas: slas, hosts: hostSpecs, vms: vmSpecs, groups: groups)
        return (spec, Observation(intervalSeconds: 10, now: now, hosts: hostObs, vms: keptObs), policy)
    }
}
