import Foundation
import SandpiperModel

/// How `sandpiper simulate` models what a trace alone cannot say.
public struct SimulationOptions: Sendable, Equatable {
    /// Migration bandwidth in Mbit/s; nil = the slower of the two hosts' `capacity.network` in cluster.yaml
    /// (1 Gbit/s when a host declares none). A migration takes RAM / bandwidth.
    public var bandwidthMbps: Double?
    /// CPU cores a running migration costs on the source and on the target host (dom0 / QEMU copying pages),
    /// prorated over the part of the interval it runs.
    public var migrationCPUCores: Double
    /// Overrides the policy's profiling mode (compare black-box and gray-box on one trace).
    public var profiling: Policy.Profiling.Mode?
    /// Replay at most this many intervals.
    public var maxIntervals: Int?
    /// Called after each interval with (done, total).
    public var progress: (@Sendable (Int, Int) -> Void)?

    public static let defaultMigrationCPUCores = 0.1
    public static let defaultBandwidthMbps = 1000.0

    public init(bandwidthMbps: Double? = nil, migrationCPUCores: Double = SimulationOptions.defaultMigrationCPUCores,
                profiling: Policy.Profiling.Mode? = nil, maxIntervals: Int? = nil,
                progress: (@Sendable (Int, Int) -> Void)? = nil) {
        self.bandwidthMbps = bandwidthMbps; self.migrationCPUCores = migrationCPUCores
        self.profiling = profiling; self.maxIntervals = maxIntervals; self.progress = progress
    }

    public static func == (a: SimulationOptions, b: SimulationOptions) -> Bool {
        a.bandwidthMbps == b.bandwidthMbps && a.migrationCPUCores == b.migrationCPUCores
            && a.profiling == b.profiling && a.maxIntervals == b.maxIntervals
    }
}

/// `sandpiper simulate`: the reconcile loop (observe -> plan -> apply) replayed over a cluster's trace, acting on
/// the cluster's real libvirt hosts through the same `Engine.plan` and `Applier` that `plan`/`apply` use, over one
/// `FleetConnections` held for the whole run (test-driver hosts keep their state only as long as it).
///
/// What the simulator adds is time and the ground truth the trace alone cannot give:
/// - **Demand follows the VM.** The trace is per VM; each interval's host load is the sum of the demand of the VMs
///   that are on it at that time.
/// - **Migrations take time.** A migration takes RAM / bandwidth and costs `migrationCPUCores` on both hosts while
///   it runs; the VM stays on (and its demand stays with) the source until it completes. The engine's apply runs
///   actions one after another, so the loop is busy until the last one finishes and does not plan meanwhile
///   (libvirt already shows the final placement; the next observation comes after the modelled end).
/// - **Memory follows the allocation.** A VM *swaps* in an interval when its demand (trace mem_mib) is above its
///   allocation (balloon target in libvirt), so ballooning changes what later samples show. The monitoring sees
///   what the policy's profiling mode can see: black-box = the hypervisor's view (resident memory
///   min(demand, allocation) and swap traffic); gray-box = also the guest's own numbers (used = demand, free =
///   allocation - demand) for VMs whose trace rows carry guest_free_mib.
/// All of this reaches the planner only as samples (`SimulatedTelemetry`): the planner is not modified.
public final class Simulator {
    public let cluster: LoadedCluster
    public let options: SimulationOptions
    public let trace: Trace

    public init(cluster: LoadedCluster, options: SimulationOptions = SimulationOptions()) throws(EngineError) {
        var c = cluster
        if let mode = options.profiling { c.policy.profiling.mode = mode }
        guard c.spec.telemetry.source == .trace else {
            throw .trace("simulate replays a recorded trace: set telemetry.source to trace (with telemetry.trace) "
                + "in \(c.spec.name)'s cluster.yaml")
        }
        self.cluster = c
        self.options = options
        self.trace = try Engine.loadTrace(c)
        guard !trace.times.isEmpty else { throw .trace("the trace has no intervals") }
    }

    /// One migration as the simulator times it.
    struct Move {
        var vm: String
        var from: String
        var to: String
        var start: Double
        var end: Double
    }

    /// An open or closed hotspot episode.
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

    public func run() throws(EngineError) -> SimulationReport {
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        // A fixed lineage: plan ids depend on it, and two runs must print the same bytes.
        let applier = Applier(cluster: cluster, connections: connections,
                              state: StateDocument(cluster: cluster.spec.name, lineage: "simulation"))
        applier.persistState = false
        applier.clock = { 0 }

        let interval = cluster.spec.telemetry.intervalSeconds
        let count = min(trace.times.count, options.maxIntervals ?? .max)
        let first = connections.inventory(now: trace.times[0])
        if let down = first.unknownHosts.first, case .unknown(let why) = down.status {
            throw .trace("host \(down.name) cannot be reached: \(why)")
        }
        // Hosts in cluster.yaml order (pm2 before pm10 when the operator wrote them so).
        let hostNames = cluster.spec.hosts.map(\.name).filter { name in first.hosts.contains { $0.name == name } }
        let capacity = Dictionary(uniqueKeysWithValues: first.hosts.map { ($0.name, $0) })
        var location = Dictionary(uniqueKeysWithValues: first.vms.map { ($0.name, $0.host) })
        var allocation = Dictionary(uniqueKeysWithValues: first.vms.map { ($0.name, $0.memoryMiB) })
        var thresholds = Dictionary(uniqueKeysWithValues: hostNames.map { ($0, cluster.policy.thresholds) })
        let mode = cluster.policy.profiling.mode

        var telemetry = SimulatedTelemetry(trace: trace, index: 0)
        var moves: [Move] = []
        var busyUntil = -Double.infinity
        var episodes: [Episode] = []
        var open: [String: Int] = [:]
        var actions: [SimulationReport.Action] = []
        var timeline: [SimulationReport.Interval] = []
        var plans = 0, applies = 0
        /// Start of the current run of intervals above a threshold, per episode key.
        var overSince: [String: Double] = [:]
        var transientRun: [String: Int] = [:]
        var transientIntervals = 0

        for i in 0..<count {
            let t = trace.times[i]
            // 1. Ground truth for the interval ending at t: completed moves land, running ones cost CPU.
            for m in moves where m.end <= t { location[m.vm] = m.to }
            moves.removeAll { $0.end <= t }
            var cpu: [String: Double] = [:], net: [String: Double] = [:], mem: [String: Double] = [:]
            var observed: [String: Sample] = [:]
            var swapping: [String] = []
            var migrating = Set<String>()
            var vmOverhead: [String: Double] = [:]
            for m in moves {
                let overlap = max(0, min(m.end, t) - max(m.start, t - interval)) / interval
                guard overlap > 0 else { continue }
                migrating.insert(m.vm)
                cpu[m.from, default: 0] += overlap * options.migrationCPUCores
                cpu[m.to, default: 0] += overlap * options.migrationCPUCores
                vmOverhead[m.vm, default: 0] += overlap * options.migrationCPUCores
            }
            for (vm, host) in location.sorted(by: { $0.key < $1.key }) {
                guard let s = trace.samples[vm]?[i] else { continue }
                let a = allocation[vm] ?? s.memMiB
                let swaps = s.memMiB > a + 0.5
                if swaps { swapping.append(vm) }
                cpu[host, default: 0] += s.cpu
                net[host, default: 0] += s.netMbps
                mem[host, default: 0] += min(s.memMiB, a)
                // What monitoring reports for this VM (the planner's input): the VM carries its own migration
                // cost (the planner attributes a VM's window to the host it is on).
                let swapKbps = swaps ? (s.memMiB - a) * 1024 / max(interval, 1) : 0
                let guestVisible = s.guestFreeMiB != nil && mode == .grayBox
                observed[vm] = Sample(cpu: s.cpu + (vmOverhead[vm] ?? 0), netMbps: s.netMbps,
                                      memMiB: guestVisible ? s.memMiB : min(s.memMiB, a),
                                      swapKbps: swapKbps, guestFreeMiB: guestVisible ? max(0, a - s.memMiB) : nil)
            }
            telemetry.record(index: i, samples: observed)

            func utilization(_ h: String) -> (cpu: Double, net: Double, mem: Double) {
                let c = capacity[h]!
                return (c.cpus > 0 ? (cpu[h] ?? 0) / c.cpus : 0, c.networkMbps > 0 ? (net[h] ?? 0) / c.networkMbps : 0,
                        c.memoryMiB > 0 ? (mem[h] ?? 0) / c.memoryMiB : 0)
            }
            func over(_ h: String, _ r: String) -> Bool {
                let u = utilization(h), th = thresholds[h]!
                switch r {
                case "cpu": return u.cpu > th.cpu
                case "net": return u.net > th.net
                default: return u.mem > th.mem
                }
            }
            // Run-ups above threshold (for `overSince`) and transient intervals.
            var overNow = Set<String>()
            for h in hostNames { for r in ["cpu", "net", "mem"] where over(h, r) { overNow.insert("\(h)/\(r)") } }
            for vm in swapping { overNow.insert("vm:\(vm)/mem") }
            for key in overNow where overSince[key] == nil { overSince[key] = t }
            for key in Array(overSince.keys) where !overNow.contains(key) {
                overSince[key] = nil
                if let run = transientRun.removeValue(forKey: key) { transientIntervals += run }
            }
            for key in overNow where open[key] == nil { transientRun[key, default: 0] += 1 }

            // 2. Resolve open episodes whose actions are done and whose condition is gone.
            if t >= busyUntil {
                for (key, e) in open.sorted(by: { $0.key < $1.key }) where !overNow.contains(key) {
                    episodes[e].resolvedAt = t
                    open[key] = nil
                }
            }

            // 3. The reconcile loop: observe -> plan -> apply, unless an apply is still running.
            var planned = false
            if t >= busyUntil {
                planned = true
                plans += 1
                telemetry.index = i
                let state = applier.state
                let snapshot = try Engine.observe(cluster, connections: connections, state: state,
                                                  source: &telemetry, now: t,
                                                  count: cluster.policy.window.n)
                let document = Engine.plan(cluster, snapshot: snapshot, state: state)
                for h in document.hostsBefore {
                    thresholds[h.name] = ResolvedThresholds(cpu: h.thresholds.cpu, net: h.thresholds.net,
                                                            mem: h.thresholds.mem)
                }
                // Detection opens an episode when the condition is real now (not a window echoing the past).
                for hs in document.hotspots {
                    if hs.vm != nil && hs.resource != "mem" { continue }  // VM CPU at its allocation: a notice
                    let key = hs.vm.map { "vm:\($0)/mem" } ?? "\(hs.host)/\(hs.resource)"
                    guard open[key] == nil, overNow.contains(key) else { continue }
                    transientRun[key] = nil
                    open[key] = episodes.count
                    episodes.append(Episode(key: key, host: hs.host, vm: hs.vm, resource: hs.resource,
                                            threshold: hs.threshold, overSince: overSince[key] ?? t, detectedAt: t))
                }
                for u in document.unresolved {
                    for r in u.resources {
                        if let h = u.host, let e = open["\(h)/\(r)"] { episodes[e].reason = u.reason }
                    }
                }
                if !document.actions.isEmpty {
                    applies += 1
                    applier.observationNow = t
                    let planID = document.id ?? ""
                    let report = try applier.apply(document)
                    let ram = Dictionary(uniqueKeysWithValues: snapshot.observation.vms.map { ($0.name, $0.memoryMiB) })
                    var clock = t
                    for (action, outcome) in zip(document.actions, report.outcomes) {
                        var end = clock
                        if action.kind == "migrate", outcome.status == .done, let from = action.from, let to = action.to {
                            end = clock + migrationSeconds(ramMiB: ram[action.vm] ?? 0, from: from, to: to)
                            moves.append(Move(vm: action.vm, from: from, to: to, start: clock, end: end))
                        }
                        let index = actions.count
                        actions.append(SimulationReport.Action(
                            plannedAt: t, startedAt: clock, finishedAt: end, plan: planID, kind: action.kind,
                            vm: action.vm, from: action.from, to: action.to,
                            mode: outcome.detail?.hasPrefix("moved cold") == true ? "cold" : action.mode,
                            swapGroup: action.swapGroup.map { "\(planID)/\($0)" }, status: outcome.status.rawValue,
                            detail: outcome.detail, summary: outcome.summary, reason: action.reason))
                        clock = end
                        attribute(index, actions[index], document: document, episodes: &episodes, open: open)
                    }
                    busyUntil = clock > t ? clock : busyUntil
                    // Allocations as libvirt now reports them (balloon changes are immediate).
                    for vm in applier.state.inventory?.vms ?? [] { allocation[vm.name] = vm.memoryMiB }
                    // Moves that took no modelled time (none normally) land at once.
                    for m in moves where m.end <= t { location[m.vm] = m.to }
                }
            }

            let hot = Dictionary(grouping: open.keys.filter { !$0.hasPrefix("vm:") }) { String($0.split(separator: "/")[0]) }
            timeline.append(SimulationReport.Interval(
                time: t,
                hosts: hostNames.map { h in
                    let u = utilization(h), th = thresholds[h]!
                    return SimulationReport.HostSample(
                        name: h, cpu: Self.f(u.cpu), net: Self.f(u.net), mem: Self.f(u.mem),
                        thresholds: .init(cpu: Self.f(th.cpu), net: Self.f(th.net), mem: Self.f(th.mem)),
                        hot: (hot[h] ?? []).map { String($0.split(separator: "/")[1]) }.sorted())
                },
                swapping: swapping.sorted(), migrating: migrating.sorted(), planned: planned))
            options.progress?(i + 1, count)
        }
        for (key, run) in transientRun where open[key] == nil { transientIntervals += run }

        return report(episodes: episodes, actions: actions, timeline: timeline, plans: plans, applies: applies,
                      hosts: hostNames, transientIntervals: transientIntervals, intervals: count)
    }

    /// Seconds to move `ramMiB` between two hosts.
    func migrationSeconds(ramMiB: Double, from: String, to: String) -> Double {
        let bw: Double
        if let b = options.bandwidthMbps { bw = b } else {
            let a = cluster.spec.host(named: from)?.capacity.networkMbps ?? Self.fallbackBandwidth
            let b = cluster.spec.host(named: to)?.capacity.networkMbps ?? Self.fallbackBandwidth
            bw = min(a, b)
        }
        return ramMiB * 8 * 1.048576 / max(bw, 1e-6)
    }

    static let fallbackBandwidth = SimulationOptions.defaultBandwidthMbps

    /// Attributes an applied action to the open episodes it serves: a migration leaving a hot host (and the other
    /// moves of its swap), a balloon change of a VM under memory pressure.
    private func attribute(_ index: Int, _ a: SimulationReport.Action, document: PlanDocument,
                           episodes: inout [Episode], open: [String: Int]) {
        guard a.status == "done" else { return }
        switch a.kind {
        case "migrate":
            var hosts = Set<String>()
            if let from = a.from { hosts.insert(from) }
            if let g = a.swapGroup {
                let local = String(g.split(separator: "/").last ?? "")
                for other in document.actions where other.swapGroup == local { if let f = other.from { hosts.insert(f) } }
            }
            for (key, e) in open where episodes[e].vm == nil && hosts.contains(episodes[e].host) {
                _ = key
                episodes[e].actions.append(index)
            }
        case "tune":
            if let e = open["vm:\(a.vm)/mem"] { episodes[e].actions.append(index) }
        default: break
        }
    }

    private func report(episodes: [Episode], actions: [SimulationReport.Action],
                        timeline: [SimulationReport.Interval], plans: Int, applies: Int, hosts: [String],
                        transientIntervals: Int, intervals: Int) -> SimulationReport {
        let hotspots = episodes.map { e -> SimulationReport.Hotspot in
            let acted = e.actions.map { actions[$0] }
            let outcome: String
            if e.resolvedAt == nil { outcome = "unresolved" }
            else if acted.contains(where: { $0.swapGroup != nil }) { outcome = "swap" }
            else if acted.contains(where: { $0.kind == "migrate" }) { outcome = "migration" }
            else if acted.contains(where: { $0.kind == "tune" }) { outcome = "balloon" }
            else { outcome = "load fell (no action)" }
            return SimulationReport.Hotspot(
                host: e.host, vm: e.vm, resource: e.resource, threshold: Self.f(e.threshold), overSince: e.overSince,
                detectedAt: e.detectedAt, resolvedAt: e.resolvedAt,
                secondsToResolve: e.resolvedAt.map { Self.q($0 - e.detectedAt) }, outcome: outcome,
                actions: acted.map(Self.describe), reason: e.resolvedAt == nil ? e.reason : nil)
        }
        let resolved = hotspots.compactMap(\.secondsToResolve)
        let migrations = actions.filter { $0.kind == "migrate" && $0.status == "done" }
        let swaps = Set(migrations.compactMap(\.swapGroup)).count
        let balloons = actions.filter { $0.kind == "tune" && $0.status == "done" && $0.summary.contains("balloon") }
        return SimulationReport(
            formatVersion: SimulationReport.currentFormatVersion, cluster: cluster.spec.name,
            policy: cluster.policy.name, profiling: cluster.policy.profiling.mode.rawValue,
            intervalSeconds: cluster.spec.telemetry.intervalSeconds, intervals: intervals, plans: plans,
            applies: applies, bandwidthMbps: options.bandwidthMbps, migrationCPUCores: options.migrationCPUCores,
            hosts: hosts, hotspotsDetected: hotspots.count, hotspotsResolved: resolved.count,
            unresolved: hotspots.count - resolved.count, migrations: migrations.count, swaps: swaps,
            meanSecondsToResolve: resolved.isEmpty ? nil : Self.q(resolved.reduce(0, +) / Double(resolved.count)),
            maxSecondsToResolve: resolved.max(),
            applyFailures: actions.filter { $0.status == "failed" }.count, balloonChanges: balloons.count,
            swappingIntervals: timeline.reduce(0) { $0 + $1.swapping.count }, transientIntervals: transientIntervals,
            hotspots: hotspots, actions: actions, timeline: timeline)
    }

    /// "vm1 pm1 -> pm3 (swap)" / "db balloon 1392MiB".
    static func describe(_ a: SimulationReport.Action) -> String {
        switch a.kind {
        case "migrate": return "\(a.vm) \(a.from ?? "?") -> \(a.to ?? "?")" + (a.swapGroup != nil ? " (swap)" : "")
        default:
            if let r = a.summary.range(of: "balloon ") {
                return "\(a.vm) " + String(a.summary[r.lowerBound...].prefix { $0 != "," && $0 != ";" })
            }
            return a.summary
        }
    }

    static func f(_ x: Double) -> Double { PlanDocument.fraction(x) }
    static func q(_ x: Double) -> Double { PlanDocument.quantity(x) }
}

/// The simulator's telemetry: per VM, the samples monitoring would have reported at each interval (the trace's
/// demand, plus the VM's migration cost while it moves, with memory signals derived from its allocation at that
/// time). A `TelemetrySource` like the trace and libvirt ones; the window ends at `index`.
public struct SimulatedTelemetry: TelemetrySource, Sendable {
    public let trace: Trace
    public var index: Int
    private var recorded: [String: [Sample?]] = [:]

    public init(trace: Trace, index: Int) {
        self.trace = trace
        self.index = index
    }

    mutating func record(index i: Int, samples: [String: Sample]) {
        for (vm, s) in samples {
            if recorded[vm] == nil { recorded[vm] = Array(repeating: nil, count: trace.times.count) }
            recorded[vm]![i] = s
        }
    }

    public func windows(for vms: [String], count: Int) -> (now: Double, samples: [String: [Sample]]) {
        var out: [String: [Sample]] = [:]
        for vm in vms {
            guard let series = recorded[vm] else { continue }
            let lo = max(0, index - count + 1)
            out[vm] = series[lo...index].compactMap { $0 }
        }
        return (trace.times[index], out)
    }
}

extension Engine {
    /// Observes the fleet with an explicit telemetry source (the simulator's replay): the inventory over the open
    /// connections at `now`, and windows of `count` samples from `source`.
    public static func observe(_ cluster: LoadedCluster, connections: FleetConnections, state: StateDocument?,
                               source: inout some TelemetrySource, now: Double,
                               count: Int) throws(EngineError) -> FleetSnapshot {
        let inventory = connections.inventory(previous: state?.inventory, now: now)
        let windows: (now: Double, samples: [String: [Sample]])
        do { windows = try source.windows(for: inventory.vms.map(\.name), count: count) } catch { throw .trace("\(error)") }
        return FleetSnapshot(
            observation: Observation(inventory: inventory, samples: windows.samples, now: now,
                                     intervalSeconds: cluster.spec.telemetry.intervalSeconds),
            inventory: inventory)
    }
}
