import SandpiperModel

// Step 1 of `Planner.plan` (the paper's *how much*), done once per VM when the fleet is indexed: Per VM and resource, the demand estimate used for fit checks is the policy's percentile
// of the window plus headroom, clamped to [reservation, limit]. Memory adds the black-box swap step or the
// gray-box free-memory target instead of a proportional headroom.

struct VMProfile: Sendable, Equatable {
    /// Demand estimate (cores, Mbit/s, MiB) used by placement.
    var demand: Vec3
    /// Intervals in the window where the VM swapped (black-box signal).
    var swappingIntervals: Int
}

struct Profiler: Sendable {
    var percentile: Double
    var headroom: Double
    var memoryStepMiB: Double
    var guestFreeTargetMiB: Double
    var mode: Policy.Profiling.Mode
    var n: Int

    init(policy: Policy) {
        let p = policy.profiling
        percentile = min(max(p.percentile, 0), 100); headroom = max(0, p.headroom)
        memoryStepMiB = max(0, p.memoryStepMiB); guestFreeTargetMiB = max(0, p.guestFreeTargetMiB)
        mode = p.mode; n = max(1, policy.window.n)
    }

    /// Clamp to [reservation, limit]; the limit wins if they conflict.
    static func clamp(_ x: Double, reservation: Double, limit: Double?) -> Double {
        var v = max(x, reservation)
        if let limit { v = min(v, limit) }
        return v
    }

    /// CPU ceiling: the limit, or the vCPU count.
    static func cpuCeiling(vcpus: Int, control: ResourceControl?) -> Double {
        min(Double(vcpus), control?.limit ?? .infinity)
    }

    /// Memory ceiling: the limit, or the defined maximum memory.
    static func memCeiling(maxMemoryMiB: Double, control: ResourceControl?) -> Double {
        min(maxMemoryMiB, control?.limit ?? .infinity)
    }

    func profile(_ vm: VMObservation, spec: VMSpec?) -> VMProfile {
        profile(vm, cpu: spec?.resources.cpu, memory: spec?.resources.memory)
    }

    func demand(_ vm: VMObservation, cpu: ResourceControl?, memory: ResourceControl?) -> Vec3 {
        profile(vm, cpu: cpu, memory: memory).demand
    }

    /// Linear-interpolation percentile (numpy's default) of one field over the window, without heap allocation
    /// for usual window sizes.
    func windowPercentile(_ w: ArraySlice<Sample>, _ field: (Sample) -> Double) -> Double {
        withUnsafeTemporaryAllocation(of: Double.self, capacity: w.count) { buf in
            var n = 0
            for s in w {  // insertion sort: windows are a handful of samples
                let x = field(s)
                var j = n
                while j > 0, buf[j - 1] > x { buf[j] = buf[j - 1]; j -= 1 }
                buf[j] = x
                n += 1
            }
            if n == 1 { return buf[0] }
            let rank = percentile / 100 * Double(n - 1)
            let lo = Int(rank.rounded(.down)), hi = min(lo + 1, n - 1)
            return buf[lo] + (buf[hi] - buf[lo]) * (rank - Double(lo))
        }
    }

    /// A host's load outside its VMs: the policy's percentile of the window, no headroom (it is not placed).
    func overhead(_ samples: [Sample]) -> Vec3 {
        let window = samples.suffix(n)
        guard !window.isEmpty else { return .zero }
        return Vec3(cpu: windowPercentile(window) { $0.cpu }, net: windowPercentile(window) { $0.netMbps },
                    mem: windowPercentile(window) { $0.memMiB })
    }

    func profile(_ vm: VMObservation, cpu cpuCtl: ResourceControl?, memory memCtl: ResourceControl?) -> VMProfile {
        let cpuCeil = Profiler.cpuCeiling(vcpus: vm.vcpus, control: cpuCtl)
        let memCeil = Profiler.memCeiling(maxMemoryMiB: max(vm.maxMemoryMiB, vm.memoryMiB), control: memCtl)
        let window = vm.samples.suffix(n)
        guard !window.isEmpty else {
            // Nothing measured yet: assume the VM uses what it was given.
            return VMProfile(demand: Vec3(cpu: Profiler.clamp(cpuCeil, reservation: cpuCtl?.reservation ?? 0,
                                                              limit: cpuCeil),
                                          net: 0,
                                          mem: Profiler.clamp(vm.memoryMiB, reservation: memCtl?.reservation ?? 0,
                                                              limit: memCeil)),
                             swappingIntervals: 0)
        }
        let cpu = windowPercentile(window) { $0.cpu } * (1 + headroom)
        let net = windowPercentile(window) { $0.netMbps } * (1 + headroom)
        let used = windowPercentile(window) { $0.memMiB }
        var swapping = 0
        for s in window where (s.swapKbps ?? 0) > 0 { swapping += 1 }
        let mem: Double
        switch mode {
        case .blackBox: mem = used + memoryStepMiB * Double(swapping)
        case .grayBox: mem = used + guestFreeTargetMiB
        }
        return VMProfile(
            demand: Vec3(cpu: Profiler.clamp(cpu, reservation: cpuCtl?.reservation ?? 0, limit: cpuCeil),
                         net: net,
                         mem: Profiler.clamp(mem, reservation: memCtl?.reservation ?? 0, limit: memCeil)),
            swappingIntervals: swapping)
    }

    /// Demand assumed for a declared VM that has never run: its full allocation (conservative).
    static func initialDemand(_ spec: VMSpec) -> Vec3 {
        Vec3(cpu: clamp(cpuCeiling(vcpus: spec.vcpus, control: spec.resources.cpu),
                        reservation: spec.resources.cpu.reservation, limit: spec.resources.cpu.limit),
             net: 0,
             mem: clamp(spec.memoryMiB, reservation: spec.resources.memory.reservation,
                        limit: spec.resources.memory.limit))
    }
}
