import SandpiperModel

/// The property tests' independent judge of load: recomputes every VM's demand from the raw samples and every
/// host's load from the plan's actions, with none of the planner's code (no Profiler, Fleet or ProposedLoad).
/// Written from the policy's documented meaning (DESIGN.md §1, step 2): the policy percentile of the last `n`
/// samples (linear interpolation between closest ranks, numpy's default), CPU and network times (1 + headroom),
/// memory plus the gray-box free-memory target or the black-box swap step per swapping interval, clamped to
/// [reservation, min(limit, ceiling)]; a VM with no samples, or declared and not yet running, counts its whole
/// allocation.
struct LoadOracle {
    let spec: ClusterSpec
    let observation: Observation
    let policy: Policy
    private let specByName: [String: VMSpec]

    init(spec: ClusterSpec, observation: Observation, policy: Policy) {
        self.spec = spec; self.observation = observation; self.policy = policy
        specByName = Dictionary(spec.vms.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    struct Load { var cpu = 0.0, net = 0.0, mem = 0.0 }

    /// Linear-interpolation percentile straight from the definition: the value at fractional rank p/100 x (n-1).
    static func percentile(_ values: [Double], _ p: Double) -> Double {
        let s = values.sorted()
        guard !s.isEmpty else { return 0 }
        let rank = p / 100 * Double(s.count - 1)
        let below = Int(rank)
        guard below + 1 < s.count else { return s[s.count - 1] }
        let fraction = rank - Double(below)
        return s[below] * (1 - fraction) + s[below + 1] * fraction
    }

    func declared(_ name: String) -> VMSpec? { specByName[name] }

    /// Demand of an observed VM, as placement must count it.
    func demand(_ vm: VMObservation) -> Load {
        let s = declared(vm.name)
        let cpuControl = s?.resources.cpu, memControl = s?.resources.memory
        let cpuCeiling = min(Double(vm.vcpus), cpuControl?.limit ?? .infinity)
        let memCeiling = min(max(vm.maxMemoryMiB, vm.memoryMiB), memControl?.limit ?? .infinity)
        func clamp(_ x: Double, _ reservation: Double, _ ceiling: Double) -> Double { min(max(x, reservation), ceiling) }
        let window = Array(vm.samples.suffix(max(1, policy.window.n)))
        if window.isEmpty {
            return Load(cpu: clamp(cpuCeiling, cpuControl?.reservation ?? 0, cpuCeiling), net: 0,
                        mem: clamp(vm.memoryMiB, memControl?.reservation ?? 0, memCeiling))
        }
        let p = policy.profiling.percentile, grow = 1 + max(0, policy.profiling.headroom)
        var mem = Self.percentile(window.map(\.memMiB), p)
        switch policy.profiling.mode {
        case .grayBox: mem += policy.profiling.guestFreeTargetMiB
        case .blackBox: mem += policy.profiling.memoryStepMiB * Double(window.filter { ($0.swapKbps ?? 0) > 0 }.count)
        }
        return Load(cpu: clamp(Self.percentile(window.map(\.cpu), p) * grow, cpuControl?.reservation ?? 0, cpuCeiling),
                    net: Self.percentile(window.map(\.netMbps), p) * grow,
                    mem: clamp(mem, memControl?.reservation ?? 0, memCeiling))
    }

    /// Demand of a declared VM that has never run: its whole allocation.
    func initialDemand(_ s: VMSpec) -> Load {
        let cpu = min(Double(s.vcpus), s.resources.cpu.limit ?? .infinity)
        return Load(cpu: min(max(cpu, s.resources.cpu.reservation), s.resources.cpu.limit ?? .infinity), net: 0,
                    mem: min(max(s.memoryMiB, s.resources.memory.reservation), s.resources.memory.limit ?? .infinity))
    }

    /// Thresholds of one VM: the policy's, overridden by its SLA's.
    func thresholds(of vm: String) -> ResolvedThresholds {
        guard let slaName = declared(vm)?.sla, let sla = spec.slas.first(where: { $0.name == slaName }) else {
            return policy.thresholds
        }
        return ResolvedThresholds(cpu: sla.thresholds.cpu ?? policy.thresholds.cpu,
                                  net: sla.thresholds.net ?? policy.thresholds.net,
                                  mem: sla.thresholds.mem ?? policy.thresholds.mem)
    }

    /// Placement as observed: VM -> host.
    var observedPlacement: [String: String] {
        var at: [String: String] = [:]
        for v in observation.vms { at[v.name] = v.host }
        return at
    }

    /// Placement after the plan: migrations move, definitions add, undefinitions remove, in plan order.
    func placement(after plan: Plan) -> [String: String] {
        var at = observedPlacement
        for a in plan.actions {
            switch a.kind {
            case .migrate: at[a.vm] = a.to
            case .define: at[a.vm] = a.to
            case .undefine: at[a.vm] = nil
            default: break
            }
        }
        return at
    }

    struct HostState {
        var load = Load()
        var members: [String] = []
        var cpuReserved = 0.0, memReserved = 0.0
    }

    /// Every host's load, members and reservations for a placement.
    func hosts(_ placement: [String: String]) -> [String: HostState] {
        let observed = Dictionary(observation.vms.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var out: [String: HostState] = [:]
        for (vm, host) in placement {
            let d: Load
            if let o = observed[vm] { d = demand(o) } else if let s = declared(vm) { d = initialDemand(s) } else { continue }
            out[host, default: HostState()].load.cpu += d.cpu
            out[host, default: HostState()].load.net += d.net
            out[host, default: HostState()].load.mem += d.mem
            out[host, default: HostState()].members.append(vm)
            if let s = declared(vm) {
                out[host, default: HostState()].cpuReserved += s.resources.cpu.reservation
                out[host, default: HostState()].memReserved += s.resources.memory.reservation
            }
        }
        return out
    }

    /// The strictest thresholds of a host's members (the policy's when empty).
    func hostThresholds(_ members: [String]) -> ResolvedThresholds {
        members.reduce(nil as ResolvedThresholds?) { t, vm in
            let m = thresholds(of: vm)
            guard let t else { return m }
            return ResolvedThresholds(cpu: min(t.cpu, m.cpu), net: min(t.net, m.net), mem: min(t.mem, m.mem))
        } ?? policy.thresholds
    }

    func capacity(_ host: String) -> Load? {
        observation.hosts.first { $0.name == host }.map { Load(cpu: $0.cpus, net: $0.networkMbps, mem: $0.memoryMiB) }
    }

    /// Utilization of each resource (load / capacity; 0 on a zero capacity).
    static func utilization(_ load: Load, _ cap: Load) -> [ResourceKind: Double] {
        func f(_ x: Double, _ c: Double) -> Double { c > 0 ? x / c : 0 }
        return [.cpu: f(load.cpu, cap.cpu), .net: f(load.net, cap.net), .mem: f(load.mem, cap.mem)]
    }
}
