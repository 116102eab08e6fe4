import Foundation
import SandpiperEngine
import SandpiperModel

/// How `sandpiper simulate` models what a trace alone cannot say.
public struct SimulationOptions: Sendable, Equatable {
    /// Migration bandwidth in Mbit/s; nil = the slower of the two hosts' `capacity.network` in cluster.yaml
    /// (1 Gbit/s when a host declares none). A migration takes (RAM + local disk bytes) / bandwidth.
    public var bandwidthMbps: Double?
    /// CPU cores a running migration costs on the source and on the target host (dom0 / QEMU copying pages),
    /// prorated over the part of the interval it runs.
    public var migrationCPUCores: Double
    /// Overrides the policy's profiling mode (compare black-box and gray-box on one trace).
    public var profiling: Policy.Profiling.Mode?
    /// Replay at most this many intervals.
    public var maxIntervals: Int?
    /// Overrides the policy's `consolidation.enabled` (compare consolidation off and on over one trace).
    public var consolidation: Bool?
    /// Seconds a host takes to boot after its power-on command: apply's clock advances by this much (the
    /// migrations onto the host start after it), and the host draws power from the start.
    public var powerOnSeconds: Double
    /// Called after each interval with (done, total).
    public var progress: (@Sendable (Int, Int) -> Void)?

    public static let defaultMigrationCPUCores = 0.1
    public static let defaultBandwidthMbps = 1000.0
    public static let defaultPowerOnSeconds = 180.0

    public init(bandwidthMbps: Double? = nil, migrationCPUCores: Double = SimulationOptions.defaultMigrationCPUCores,
                profiling: Policy.Profiling.Mode? = nil, maxIntervals: Int? = nil, consolidation: Bool? = nil,
                powerOnSeconds: Double = SimulationOptions.defaultPowerOnSeconds,
                progress: (@Sendable (Int, Int) -> Void)? = nil) {
        self.bandwidthMbps = bandwidthMbps; self.migrationCPUCores = migrationCPUCores
        self.profiling = profiling; self.maxIntervals = maxIntervals; self.consolidation = consolidation
        self.powerOnSeconds = powerOnSeconds; self.progress = progress
    }

    public static func == (a: SimulationOptions, b: SimulationOptions) -> Bool {
        a.bandwidthMbps == b.bandwidthMbps && a.migrationCPUCores == b.migrationCPUCores
            && a.profiling == b.profiling && a.maxIntervals == b.maxIntervals && a.consolidation == b.consolidation
            && a.powerOnSeconds == b.powerOnSeconds
    }
}

/// `sandpiper simulate`: the reconcile loop (observe -> plan -> apply) replayed over a cluster's trace, acting on
/// the cluster's real libvirt hosts through the same `Engine.plan` and `Applier` that `plan`/`apply` use, over one
/// `FleetConnections` held for the whole run (test-driver hosts keep their state only as long as it).
///
/// What the simulator adds is time and the ground truth the trace alone cannot give:
/// - **Demand follows the VM.** The trace is per VM; each interval's host load is the sum of the demand of the VMs
///   that are on it at that time.
/// - **Migrations take time.** A migration takes (RAM + local disk bytes to copy) / bandwidth and costs `migrationCPUCores` on both hosts while
///   it runs; the VM stays on (and its demand stays with) the source until it completes. Apply runs a plan in
///   dependency waves (reported per action): the actions of a wave run at once, the next wave starts when the
///   slowest has finished, and the loop is busy until the last wave ends and does not plan meanwhile (libvirt
///   already shows the final placement; the next observation comes after the modelled end).
/// - **Memory follows the allocation.** A VM *swaps* in an interval when its demand (trace mem_mib) is above its
///   allocation (balloon target in libvirt), so ballooning changes what later samples show. The monitoring sees
///   what the policy's profiling mode can see: black-box = the hypervisor's view (resident memory
///   min(demand, allocation) and swap traffic); gray-box = also the guest's own numbers (used = demand, free =
///   allocation - demand) for VMs whose trace rows carry guest_free_mib.
/// - **Hosts power off and on.** Consolidation's power-off / power-on actions run through `apply` like any other
///   action: the host's declared power commands are executed (the bundled `diurnal` cluster declares
///   `/bin/true`, with a policy that allows power commands), and the state records the host as standby. A
///   power-on takes `powerOnSeconds` (boot) on apply's clock before the migrations onto the host start. A host
///   counts as on from its power-on until its power-off: `hostHoursOn` sums that, `hotspotSeconds` the time any
///   host spends above one of its thresholds.
/// All of this reaches the planner only as samples (`SimulatedTelemetry`): the planner is not modified.
public final class Simulator {
    public let cluster: LoadedCluster
    public let options: SimulationOptions
    public let trace: Trace
    /// Opens the cluster's hosts for the run: test-driver hosts are observed from their node files until apply
    /// acts on them (the equivalence tests open every host through libvirt instead and compare the reports).
    public var connect: (LoadedCluster) -> FleetConnections = {
        FleetConnections(cluster: $0, runsStatusCommands: false, readsTestNodeFiles: true)
    }
    /// Reuse each host's inventory read between applies (`FleetConnections.reusesReads`); the equivalence tests
    /// turn it off and compare.
    public var reusesReads = true

    public init(cluster: LoadedCluster, options: SimulationOptions = SimulationOptions()) throws(EngineError) {
        var c = cluster
        if let mode = options.profiling { c.policy.profiling.mode = mode }
        if let on = options.consolidation { c.policy.consolidation.enabled = on }
        guard c.spec.telemetry.source == .trace else {
            throw .trace("simulate replays a recorded trace: set telemetry.source to trace (with telemetry.trace) "
                + "in \(c.spec.name)'s cluster.yaml")
        }
        // simulate applies every plan as `full` automation would: only ever on libvirt's in-process test driver,
        // never on real hypervisors that happen to be described by a trace-driven spec.
        let real = c.spec.hosts.filter { !c.connectionURI(for: $0).hasPrefix("test:") }.map(\.name)
        guard real.isEmpty else {
            throw .trace("simulate acts on the cluster's hosts and only runs on libvirt test-driver hosts "
                + "(test:... URIs); \(real.joined(separator: ", ")) \(real.count == 1 ? "is a real host" : "are real hosts"). "
                + "Use `sandpiper plan` to see what Sandpiper would do there.")
        }
        self.cluster = c
        self.options = options
        self.trace = try Engine.loadTrace(c)
    }

    public func run() throws(EngineError) -> SimulationReport {
        let connections = connect(cluster)
        defer { connections.closeAll() }
        // Only this loop acts on the (in-process) hosts: between applies, each interval's inventory reuses the
        // last reads instead of asking libvirt for 20,000 domains again.
        connections.reusesReads = reusesReads
        // A fixed lineage: plan ids depend on it, and two runs must print the same bytes.
        var applyOptions = ApplyOptions()
        applyOptions.persistState = false
        applyOptions.runsPowerCommands = false
        applyOptions.clock = { 0 }
        let applier = Applier(cluster: cluster, connections: connections,
                              state: StateDocument(cluster: cluster.spec.name, lineage: "simulation"),
                              options: applyOptions)

        // A cluster without VMs has a trace without rows: nothing to replay, nothing to do.
        guard !trace.times.isEmpty else {
            return report(episodes: [], actions: [], timeline: [], plans: 0, applies: 0,
                          hosts: cluster.spec.hosts.map(\.name), transientIntervals: 0, intervals: 0)
        }
        let first = connections.inventory(now: trace.times[0])
        if let down = first.unknownHosts.first, case .unknown(let why) = down.status {
            throw .trace("host \(down.name) cannot be reached: \(why)")
        }
        var truth = GroundTruth(cluster: cluster, options: options, inventory: first)
        var episodes = EpisodeLog()
        var telemetry = SimulatedTelemetry(trace: trace, index: 0)
        var actions: [SimulationReport.Action] = []
        var timeline: [SimulationReport.Interval] = []
        var plans = 0, applies = 0
        var busyUntil = -Double.infinity
        let count = min(trace.times.count, options.maxIntervals ?? .max)

        for i in 0..<count {
            let t = trace.times[i]
            // 1. What really happened in the interval ending at t, and what monitoring reported.
            let now = truth.advance(to: i, time: t, trace: trace)
            telemetry.record(index: i, samples: now.observed)
            episodes.track(over: now.over, at: t)
            let idle = t >= busyUntil
            // 2. Hotspots whose actions are done and whose condition is gone are resolved.
            if idle { episodes.resolve(over: now.over, at: t) }

            // 3. The reconcile loop: observe -> plan -> apply, unless an apply is still running.
            if idle {
                plans += 1
                telemetry.index = i
                var state = applier.state
                var snapshot = try Engine.observe(cluster, connections: connections, state: state,
                                                  source: &telemetry, now: t, count: cluster.policy.window.n)
                if Engine.recordLowSince(cluster, snapshot: &snapshot, state: &state) {
                    let recorded = state
                    applier.updateState { $0 = recorded }
                }
                // Only a plan with actions is applied: identified (inventory digest, id) only then.
                var document = Engine.plan(cluster, snapshot: snapshot, state: state, identify: false)
                if !document.actions.isEmpty { Engine.identify(&document, snapshot: snapshot, state: state) }
                truth.thresholds(from: document)
                episodes.detect(document, over: now.over, at: t)
                if !document.actions.isEmpty {
                    applies += 1
                    // Apply reads what it changed: no reuse while it runs (turning it off drops the kept reads).
                    connections.reusesReads = false
                    let report: ApplyReport
                    do { report = try applier.apply(document, observationNow: t) } catch {
                        connections.reusesReads = reusesReads
                        throw error
                    }
                    connections.reusesReads = reusesReads
                    // What each move copies: memory, plus the local disk bytes the observation reports.
                    let ram = Dictionary(uniqueKeysWithValues: snapshot.observation.vms.map {
                        ($0.name, $0.memoryMiB + ($0.diskCopyBytes ?? 0) / 1_048_576)
                    })
                    let outcomes = Dictionary(uniqueKeysWithValues: report.outcomes.map { ($0.actionID, $0) })
                    // Apply's waves: each lasts as long as its slowest action; the next starts when it ends.
                    func seconds(_ a: PlanDocument.Action, _ o: ApplyReport.Outcome) -> Double {
                        guard o.status == .done else { return 0 }
                        switch a.kind {
                        case .migrate: return migrationSeconds(ramMiB: ram[a.vm] ?? 0, from: a.from ?? "", to: a.to ?? "")
                        case .powerOn: return options.powerOnSeconds
                        default: return 0
                        }
                    }
                    var waveLength: [Int: Double] = [:]
                    for a in document.actions {
                        guard let o = outcomes[a.id], o.wave > 0 else { continue }
                        waveLength[o.wave] = max(waveLength[o.wave] ?? 0, seconds(a, o))
                    }
                    var waveStart: [Int: Double] = [:]
                    var clock = t
                    for w in waveLength.keys.sorted() {
                        waveStart[w] = clock
                        clock += waveLength[w]!
                    }
                    let planID = document.id ?? ""
                    for action in document.actions {
                        guard let outcome = outcomes[action.id] else { continue }
                        let start = waveStart[outcome.wave] ?? t
                        let end = start + seconds(action, outcome)
                        if action.kind == .migrate, outcome.status == .done, let from = action.from, let to = action.to {
                            truth.moves.append(.init(vm: action.vm, from: from, to: to, start: start, end: end))
                        }
                        if action.kind == .powerOn || action.kind == .powerOff, outcome.status == .done,
                           let host = action.host {
                            truth.power.append(.init(host: host, at: start, on: action.kind == .powerOn))
                        }
                        actions.append(SimulationReport.Action(
                            plannedAt: t, startedAt: start, finishedAt: end, wave: outcome.wave > 0 ? outcome.wave : nil,
                            plan: planID, kind: action.kind.rawValue,
                            vm: action.vm, host: action.host, from: action.from, to: action.to,
                            mode: (outcome.mode ?? action.mode)?.rawValue,
                            swapGroup: action.swapGroup.map { "\(planID)/\($0)" },
                            balloonMiB: action.kind == .tune ? action.parameters.balloonMiB : nil,
                            status: outcome.status.rawValue,
                            detail: outcome.detail, summary: outcome.summary, reason: action.reason))
                        episodes.attribute(actions.count - 1, actions[actions.count - 1], document: document)
                    }
                    busyUntil = max(busyUntil, clock)
                    // Balloon changes take effect at once: later samples see the new allocation.
                    truth.allocations(from: applier.state.inventory?.vms ?? [])
                }
            }
            timeline.append(truth.interval(now, time: t, open: episodes.openHostResources, planned: idle))
            options.progress?(i + 1, count)
        }
        episodes.finish()
        return report(episodes: episodes.episodes, actions: actions, timeline: timeline, plans: plans,
                      applies: applies, hosts: truth.hostNames, transientIntervals: episodes.transientIntervals,
                      intervals: count)
    }

    /// Seconds to move `ramMiB` (memory plus local disk) between two hosts.
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

    private func report(episodes: [EpisodeLog.Episode], actions: [SimulationReport.Action],
                        timeline: [SimulationReport.Interval], plans: Int, applies: Int, hosts: [String],
                        transientIntervals: Int, intervals: Int) -> SimulationReport {
        let hotspots = episodes.map { e -> SimulationReport.Hotspot in
            let acted = e.actions.map { actions[$0] }
            let outcome: String
            if e.resolvedAt == nil { outcome = "unresolved" }
            else if acted.contains(where: { $0.swapGroup != nil }) { outcome = "swap" }
            else if acted.contains(where: { $0.kind == ActionKind.migrate.rawValue }) { outcome = "migration" }
            else if acted.contains(where: { $0.balloonMiB != nil }) { outcome = "balloon" }
            else { outcome = "load fell (no action)" }
            return SimulationReport.Hotspot(
                host: e.host, vm: e.vm, resource: e.resource, threshold: Self.f(e.threshold), overSince: e.overSince,
                detectedAt: e.detectedAt, resolvedAt: e.resolvedAt,
                secondsToResolve: e.resolvedAt.map { Self.q($0 - e.detectedAt) }, outcome: outcome,
                actions: acted.map(Self.describe), reason: e.resolvedAt == nil ? e.reason : nil)
        }
        let resolved = hotspots.compactMap(\.secondsToResolve)
        let migrations = actions.filter { $0.kind == ActionKind.migrate.rawValue && $0.status == "done" }
        let swaps = Set(migrations.compactMap(\.swapGroup)).count
        let balloons = actions.filter { $0.balloonMiB != nil && $0.status == "done" }
        let hostSeconds = timeline.reduce(0.0) { $0 + Double($1.hostsOn ?? hosts.count) } * cluster.spec.telemetry.intervalSeconds
        let hotSeconds = timeline.reduce(0.0) { $0 + Double($1.hostsOver ?? 0) } * cluster.spec.telemetry.intervalSeconds
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
            hostHoursOn: Self.q(hostSeconds / 3600), hotspotSeconds: Self.q(hotSeconds),
            powerOns: actions.filter { $0.kind == ActionKind.powerOn.rawValue && $0.status == "done" }.count,
            powerOffs: actions.filter { $0.kind == ActionKind.powerOff.rawValue && $0.status == "done" }.count,
            hotspots: hotspots, actions: actions, timeline: timeline)
    }

    /// "vm1 pm1 -> pm3 (swap)" / "db balloon 1392MiB".
    static func describe(_ a: SimulationReport.Action) -> String {
        switch ActionKind(rawValue: a.kind) {
        case .migrate?: return "\(a.vm) \(a.from ?? "?") -> \(a.to ?? "?")" + (a.swapGroup != nil ? " (swap)" : "")
        case .powerOn?, .powerOff?, .drain?: return "\(a.kind) \(a.host ?? "?")"
        default:
            if let b = a.balloonMiB { return "\(a.vm) balloon \(Units.formatMiB(b))" }
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
        out.reserveCapacity(vms.count)
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
