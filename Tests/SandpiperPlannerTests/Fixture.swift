import SandpiperModel
@testable import SandpiperPlanner

/// Complete, valid test fleets (Nomad's mock.Node): tests change one field and assert on the choice and the
/// diagnostics. Defaults: hosts of 8 cores / 32 GiB / 1000 Mbit/s; VMs of 8 vCPUs (World) / 4 GiB with constant samples
/// over a 5-sample window; policy with headroom 0 so profiles equal the samples.
enum Fixture {
    static let now = 100_000.0

    static func policy() -> Policy {
        var p = Policy()
        p.profiling.headroom = 0
        p.placement.maxMigrationsPerRun = 10
        return p
    }

    static func host(_ name: String = "pm1", cpus: Double = 8, memoryMiB: Double = 32768,
                     networkMbps: Double = 1000, status: HostObservation.Status = .up) -> HostObservation {
        HostObservation(name: name, status: status, cpus: cpus, memoryMiB: memoryMiB, networkMbps: networkMbps)
    }

    static func hostSpec(_ name: String = "pm1", labels: [String: String] = [:], maintenance: Bool = false) -> HostSpec {
        HostSpec(name: name, uri: "test:///\(name)", maintenance: maintenance, labels: labels)
    }

    static func samples(cpu: [Double], net: Double = 0, mem: Double = 1024, swap: [Double]? = nil,
                        guestFree: Double? = nil) -> [Sample] {
        cpu.enumerated().map { i, c in
            Sample(cpu: c, netMbps: net, memMiB: mem, swapKbps: swap?[i], guestFreeMiB: guestFree)
        }
    }

    static func vm(_ name: String = "vm1", host: String = "pm1", cpu: Double = 1, vcpus: Int = 4,
                   memoryMiB: Double = 4096, mem: Double = 1024, lastMovedAt: Double? = nil) -> VMObservation {
        vm(name, host: host, cpuSeries: Array(repeating: cpu, count: 5), vcpus: vcpus, memoryMiB: memoryMiB, mem: mem,
           lastMovedAt: lastMovedAt)
    }

    static func vm(_ name: String, host: String, cpuSeries: [Double], vcpus: Int = 4, memoryMiB: Double = 4096,
                   mem: Double = 1024, lastMovedAt: Double? = nil) -> VMObservation {
        VMObservation(name: name, host: host, vcpus: vcpus, memoryMiB: memoryMiB,
                      tunables: Tunables(cpuShares: 1000 * vcpus),
                      samples: samples(cpu: cpuSeries, mem: mem), lastMovedAt: lastMovedAt)
    }

    static func vmSpec(_ name: String = "vm1", vcpus: Int = 4, memoryMiB: Double = 4096, sla: String? = nil,
                       placement: PlacementRule? = nil) -> VMSpec {
        VMSpec(name: name, vcpus: vcpus, memoryMiB: memoryMiB, sla: sla, template: "templates/vm.xml", placement: placement)
    }
}

/// A fleet under construction: spec and observation kept in step.
struct World {
    var spec = ClusterSpec(name: "test")
    var hosts: [HostObservation] = []
    var vms: [VMObservation] = []
    var policy = Fixture.policy()
    var now = Fixture.now

    /// Hosts pm1...pmN.
    init(hosts n: Int = 0) {
        for i in 1...max(n, 1) where n > 0 { addHost("pm\(i)") }
    }

    mutating func addHost(_ name: String, cpus: Double = 8, memoryMiB: Double = 32768, labels: [String: String] = [:],
                          maintenance: Bool = false, status: HostObservation.Status = .up) {
        spec.hosts.append(Fixture.hostSpec(name, labels: labels, maintenance: maintenance))
        hosts.append(Fixture.host(name, cpus: cpus, memoryMiB: memoryMiB, status: status))
    }

    /// A declared VM observed on `host` with constant CPU demand `cpu`.
    mutating func addVM(_ name: String, on host: String, cpu: Double, vcpus: Int = 8, memoryMiB: Double = 4096,
                        mem: Double = 1024, sla: String? = nil, placement: PlacementRule? = nil,
                        lastMovedAt: Double? = nil) {
        addVM(name, on: host, cpuSeries: Array(repeating: cpu, count: 5), vcpus: vcpus, memoryMiB: memoryMiB,
              mem: mem, sla: sla, placement: placement, lastMovedAt: lastMovedAt)
    }

    mutating func addVM(_ name: String, on host: String, cpuSeries: [Double], vcpus: Int = 8,
                        memoryMiB: Double = 4096, mem: Double = 1024, sla: String? = nil,
                        placement: PlacementRule? = nil, lastMovedAt: Double? = nil) {
        spec.vms.append(Fixture.vmSpec(name, vcpus: vcpus, memoryMiB: memoryMiB, sla: sla, placement: placement))
        vms.append(Fixture.vm(name, host: host, cpuSeries: cpuSeries, vcpus: vcpus, memoryMiB: memoryMiB, mem: mem,
                              lastMovedAt: lastMovedAt))
    }

    mutating func update(_ name: String, _ change: (inout VMObservation) -> Void) {
        if let i = vms.firstIndex(where: { $0.name == name }) { change(&vms[i]) }
    }
    mutating func updateSpec(_ name: String, _ change: (inout VMSpec) -> Void) {
        if let i = spec.vms.firstIndex(where: { $0.name == name }) { change(&spec.vms[i]) }
    }

    var observation: Observation { Observation(intervalSeconds: 10, now: now, hosts: hosts, vms: vms) }

    func plan(_ options: PlanOptions = PlanOptions()) -> Plan {
        Planner.plan(spec: spec, observation: observation, policy: policy, options: options)
    }
}

extension Plan {
    var moves: [PlannedAction] { actions.filter { $0.kind == .migrate } }
    func host(_ name: String, after: Bool = true) -> HostUtilization? {
        (after ? hostsAfter : hostsBefore).first { $0.name == name }
    }
}
