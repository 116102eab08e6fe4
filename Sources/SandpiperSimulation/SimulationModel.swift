import Foundation
import SandpiperEngine
import SandpiperModel

/// The simulator's ground truth: where each VM's demand really runs, its memory allocation, the migrations in
/// flight, and what monitoring reports about each VM (see `Simulator` for the model).
struct GroundTruth {
    /// One migration as the simulator times it: the VM runs on `from` until `end`.
    struct Move {
        var vm: String
        var from: String
        var to: String
        var start: Double
        var end: Double
    }

    /// One interval as it really was.
    struct Now {
        /// Per host: utilization of capacity (cpu, net, mem).
        var utilization: [String: (cpu: Double, net: Double, mem: Double)]
        /// Per VM: the sample monitoring reported (the planner's input).
        var observed: [String: Sample]
        var swapping: [String]
        var migrating: [String]
        /// Conditions that are real right now: "pm1/cpu" (host above a threshold), "vm:db/mem" (VM swapping).
        var over: Set<String>
    }

    let hostNames: [String]
    let capacity: [String: HostObservation]
    let interval: Double
    let migrationCPUCores: Double
    let mode: Policy.Profiling.Mode
    var location: [String: String]
    /// The VMs of `location` in name order (the set never changes, only where they are): each interval sums
    /// demand in this order, so the same floating-point sums every run.
    let vmOrder: [String]
    var allocation: [String: Double]
    var hostThresholds: [String: ResolvedThresholds]
    var moves: [Move] = []
    /// Power changes applied (in apply-clock order): a host is on from its power-on until its power-off.
    struct PowerEvent {
        var host: String
        var at: Double
        var on: Bool
    }
    var power: [PowerEvent] = []
    /// Hosts standby at the start (per the first inventory).
    var initiallyOff: Set<String> = []

    func isOn(_ host: String, at t: Double) -> Bool {
        var on = !initiallyOff.contains(host)
        for e in power where e.host == host && e.at <= t { on = e.on }
        return on
    }

    init(cluster: LoadedCluster, options: SimulationOptions, inventory: FleetInventory) {
        // Hosts in cluster.yaml order (pm2 before pm10 when the operator wrote them so).
        hostNames = cluster.spec.hosts.map(\.name).filter { name in inventory.hosts.contains { $0.name == name } }
        capacity = Dictionary(uniqueKeysWithValues: inventory.hosts.map { ($0.name, $0) })
        interval = cluster.spec.telemetry.intervalSeconds
        migrationCPUCores = options.migrationCPUCores
        mode = cluster.policy.profiling.mode
        location = Dictionary(uniqueKeysWithValues: inventory.vms.map { ($0.name, $0.host) })
        vmOrder = location.keys.sorted()
        allocation = Dictionary(uniqueKeysWithValues: inventory.vms.map { ($0.name, $0.memoryMiB) })
        hostThresholds = Dictionary(uniqueKeysWithValues: hostNames.map { ($0, cluster.policy.thresholds) })
        initiallyOff = Set(inventory.hosts.filter(\.isStandby).map(\.name))
    }

    /// The interval ending at `time` (trace index `i`): completed moves land, running ones cost CPU on both ends
    /// (prorated over the part of the interval they run), demand sits where each VM is.
    mutating func advance(to i: Int, time t: Double, trace: Trace) -> Now {
        for m in moves where m.end <= t { location[m.vm] = m.to }
        moves.removeAll { $0.end <= t }
        // Per host: cpu, net, mem demand (one dictionary entry per host: one lookup per VM, not three).
        var load: [String: (cpu: Double, net: Double, mem: Double)] = [:]
        var migrating = Set<String>()
        var vmOverhead: [String: Double] = [:]
        for m in moves {
            let overlap = max(0, min(m.end, t) - max(m.start, t - interval)) / interval
            guard overlap > 0 else { continue }
            migrating.insert(m.vm)
            load[m.from, default: (0, 0, 0)].cpu += overlap * migrationCPUCores
            load[m.to, default: (0, 0, 0)].cpu += overlap * migrationCPUCores
            vmOverhead[m.vm, default: 0] += overlap * migrationCPUCores
        }
        var observed: [String: Sample] = [:]
        observed.reserveCapacity(vmOrder.count)
        var swapping: [String] = []
        for vm in vmOrder {
            guard let host = location[vm], let s = trace.samples[vm]?[i] else { continue }
            let a = allocation[vm] ?? s.memMiB
            let swaps = s.memMiB > a + 0.5
            if swaps { swapping.append(vm) }
            Self.add(&load[host, default: (0, 0, 0)], s.cpu, s.netMbps, min(s.memMiB, a))
            // Monitoring: the VM carries its own migration cost (the planner attributes a VM's window to the host
            // it is on); memory as the profiling mode can see it.
            let guestVisible = s.guestFreeMiB != nil && mode == .grayBox
            observed[vm] = Sample(cpu: s.cpu + (vmOverhead[vm] ?? 0), netMbps: s.netMbps,
                                  memMiB: guestVisible ? s.memMiB : min(s.memMiB, a),
                                  swapKbps: swaps ? (s.memMiB - a) * 1024 / max(interval, 1) : 0,
                                  guestFreeMiB: guestVisible ? max(0, a - s.memMiB) : nil)
        }
        var utilization: [String: (cpu: Double, net: Double, mem: Double)] = [:]
        var over = Set<String>()
        for h in hostNames {
            let c = capacity[h]!, th = hostThresholds[h]!
            let d = load[h] ?? (0, 0, 0)
            let u = (cpu: c.cpus > 0 ? d.cpu / c.cpus : 0,
                     net: c.networkMbps > 0 ? d.net / c.networkMbps : 0,
                     mem: c.memoryMiB > 0 ? d.mem / c.memoryMiB : 0)
            utilization[h] = u
            if u.cpu > th.cpu { over.insert("\(h)/cpu") }
            if u.net > th.net { over.insert("\(h)/net") }
            if u.mem > th.mem { over.insert("\(h)/mem") }
        }
        for vm in swapping { over.insert("vm:\(vm)/mem") }
        return Now(utilization: utilization, observed: observed, swapping: swapping, migrating: migrating.sorted(),
                   over: over)
    }

    private static func add(_ d: inout (cpu: Double, net: Double, mem: Double), _ cpu: Double, _ net: Double,
                            _ mem: Double) {
        d.cpu += cpu; d.net += net; d.mem += mem
    }

    /// A host's thresholds are the policy's tightened by the SLAs of its VMs: taken from each plan.
    mutating func thresholds(from document: PlanDocument) {
        for h in document.hostsBefore {
            hostThresholds[h.name] = ResolvedThresholds(cpu: h.thresholds.cpu, net: h.thresholds.net, mem: h.thresholds.mem)
        }
    }

    /// Allocations as libvirt reports them after an apply.
    mutating func allocations(from vms: [VMObservation]) {
        for vm in vms { allocation[vm.name] = vm.memoryMiB }
    }

    func interval(_ now: Now, time t: Double, open: [String: [String]], planned: Bool) -> SimulationReport.Interval {
        SimulationReport.Interval(
            time: t,
            hosts: hostNames.map { h in
                let u = now.utilization[h]!, th = hostThresholds[h]!
                return SimulationReport.HostSample(
                    name: h, cpu: Simulator.f(u.cpu), net: Simulator.f(u.net), mem: Simulator.f(u.mem),
                    thresholds: .init(cpu: Simulator.f(th.cpu), net: Simulator.f(th.net), mem: Simulator.f(th.mem)),
                    hot: (open[h] ?? []).sorted())
            },
            swapping: now.swapping, migrating: now.migrating, planned: planned,
            hostsOn: hostNames.filter { isOn($0, at: t) }.count,
            hostsOver: Set(now.over.filter { !$0.hasPrefix("vm:") }.map { $0.split(separator: "/")[0] }).count)
    }
}

/// Hotspot episodes: opened when the planner detects a condition that is real at that moment (not a window
/// still echoing a resolved one), resolved at the first idle interval where the condition is gone.
struct EpisodeLog {
    struct Episode {
        var key: String
        var host: String
        var vm: String?
        var resource: String
        var threshold: Double
        var overSince: Double
        var detectedAt: Double
        var resolvedAt: Double?
        var actions: [Int] = []
        var reason: String?
    }

    private(set) var episodes: [Episode] = []
    private var open: [String: Int] = [:]
    /// Start of the current run above a threshold, per condition.
    private var overSince: [String: Double] = [:]
    /// Intervals of the current run spent without an open episode; counted as transient unless detected.
    private var transientRun: [String: Int] = [:]
    private(set) var transientIntervals = 0

    mutating func track(over: Set<String>, at t: Double) {
        for key in over where overSince[key] == nil { overSince[key] = t }
        for key in overSince.keys.sorted() where !over.contains(key) {
            overSince[key] = nil
            if let run = transientRun.removeValue(forKey: key) { transientIntervals += run }
        }
        for key in over where open[key] == nil { transientRun[key, default: 0] += 1 }
    }

    mutating func resolve(over: Set<String>, at t: Double) {
        for (key, e) in open.sorted(by: { $0.key < $1.key }) where !over.contains(key) {
            episodes[e].resolvedAt = t
            open[key] = nil
        }
    }

    mutating func detect(_ document: PlanDocument, over: Set<String>, at t: Double) {
        for hs in document.hotspots {
            guard hs.counts else { continue }  // a VM's CPU at its allocation: a notice only
            let key = hs.vm.map { "vm:\($0)/mem" } ?? "\(hs.host)/\(hs.resource)"
            guard open[key] == nil, over.contains(key) else { continue }
            transientRun[key] = nil
            open[key] = episodes.count
            episodes.append(Episode(key: key, host: hs.host, vm: hs.vm, resource: hs.resource, threshold: hs.threshold,
                                    overSince: overSince[key] ?? t, detectedAt: t))
        }
        for u in document.unresolved {
            guard let h = u.host else { continue }
            for r in u.resources { if let e = open["\(h)/\(r)"] { episodes[e].reason = u.reason } }
        }
    }

    /// Attributes an applied action to the open episodes it serves: a migration leaving a hot host (and the other
    /// moves of its swap), a balloon change of a VM under memory pressure.
    mutating func attribute(_ index: Int, _ a: SimulationReport.Action, document: PlanDocument) {
        guard a.status == "done" else { return }
        switch a.kind {
        case ActionKind.migrate.rawValue:
            var hosts = Set<String>()
            if let from = a.from { hosts.insert(from) }
            if let g = a.swapGroup {
                let local = String(g.split(separator: "/").last ?? "")
                for other in document.actions where other.swapGroup == local { if let f = other.from { hosts.insert(f) } }
            }
            for e in open.values.sorted() where episodes[e].vm == nil && hosts.contains(episodes[e].host) {
                episodes[e].actions.append(index)
            }
        case ActionKind.tune.rawValue where a.balloonMiB != nil:
            if let e = open["vm:\(a.vm)/mem"] { episodes[e].actions.append(index) }
        default: break
        }
    }

    /// Open host hotspots per host: resource names.
    var openHostResources: [String: [String]] {
        var out: [String: [String]] = [:]
        for key in open.keys where !key.hasPrefix("vm:") {
            let parts = key.split(separator: "/")
            out[String(parts[0]), default: []].append(String(parts[1]))
        }
        return out
    }

    /// Runs still going at the end of the trace that never became an episode are transient too.
    mutating func finish() {
        for (key, run) in transientRun where open[key] == nil { transientIntervals += run }
        transientRun = [:]
    }
}
