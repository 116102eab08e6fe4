import Dispatch
import Foundation
import SandpiperLibvirt
import SandpiperModel

/// Where sample windows come from (DESIGN.md "telemetry"): a recorded trace replayed, or libvirt sampled live.
public protocol TelemetrySource {
    /// The last `count` samples per VM (oldest first) and the time of the newest one.
    mutating func windows(for vms: [String], count: Int) throws -> (now: Double, samples: [String: [Sample]])
}

/// Replays a trace: the window is the `count` samples ending at `index` (default: the last interval).
public struct TraceTelemetry: TelemetrySource {
    public let trace: Trace
    public var index: Int

    public init(trace: Trace, index: Int? = nil) {
        self.trace = trace
        self.index = index ?? trace.times.count - 1
    }

    /// The interval index at or before `time` seconds.
    public static func index(of time: Double, in trace: Trace) -> Int? {
        trace.times.lastIndex { $0 <= time }
    }

    public func windows(for vms: [String], count: Int) -> (now: Double, samples: [String: [Sample]]) {
        var out: [String: [Sample]] = [:]
        for vm in vms { out[vm] = trace.window(vm, endingAt: index, count: count) }
        return (trace.times.isEmpty ? 0 : trace.times[index], out)
    }
}

/// Samples the fleet live: one `virConnectGetAllDomainStats` round trip per host per interval, all hosts in
/// parallel; utilization from counter deltas (the first snapshot only primes the deltas).
///
/// Gray-box needs the guest's own memory numbers, which libvirt refreshes only when the balloon has a stats
/// period: before the first round every running guest without one gets a period (`statsPeriodSeconds`). A guest
/// whose statistics still do not move (`last-update` constant over the window, e.g. on a read-only connection) is
/// profiled black-box — its guest fields are dropped from the samples — and a warning says so.
public struct LibvirtTelemetry: TelemetrySource, Sendable {
    public let connections: FleetConnections
    public let intervalSeconds: Double
    /// Called after each round with (done, total) so a terminal can show progress.
    public var progress: (@Sendable (Int, Int) -> Void)?
    /// Also sample each host's own counters (`telemetry.hostLoad`): load outside the VMs as `@host` windows.
    public var sampleHostLoad = false

    public init(connections: FleetConnections, intervalSeconds: Double, progress: (@Sendable (Int, Int) -> Void)? = nil) {
        self.connections = connections; self.intervalSeconds = intervalSeconds; self.progress = progress
    }

    /// The stats period set on guests that have none: short enough that every sample interval sees an update.
    public var statsPeriodSeconds: Int { max(1, min(10, Int(intervalSeconds / 2))) }

    public func windows(for vms: [String], count: Int) throws -> (now: Double, samples: [String: [Sample]]) {
        let result = try sample(for: vms, count: count)
        return (result.now, result.samples)
    }

    /// The windows plus what an operator should know about them (guests profiled black-box for stale statistics).
    public func sample(for vms: [String], count: Int) throws -> (now: Double, samples: [String: [Sample]], warnings: [String]) {
        let hosts = connections.cluster.spec.hosts.map(\.name).filter { connections.connection($0) != nil }
        var samplers = Array(repeating: UtilizationSampler(), count: hosts.count)
        // The hosts' own counters, for the load outside their VMs (`@host` windows); nil where unsupported.
        var nodes = [NodeStats?](repeating: nil, count: hosts.count)
        var windows: [String: [PendingSample]] = [:]
        var freshness = GuestStatsFreshness()
        let wanted = Set(vms)
        let fleet = connections
        let period = statsPeriodSeconds
        let periods = FleetConnections.parallel(hosts, concurrency: fleet.concurrency, timeout: fleet.timeout) { i in
            fleet.connection(hosts[i])?.ensureMemoryStatsPeriod(seconds: period) ?? [:]
        }
        for p in periods { for (vm, seconds) in p ?? [:] { freshness.periods[vm] = seconds } }
        for round in 0...count {
            if round > 0 { Thread.sleep(forTimeInterval: intervalSeconds) }
            let snapshots = FleetConnections.parallel(hosts, concurrency: fleet.concurrency, timeout: fleet.timeout) { i in
                guard let c = fleet.connection(hosts[i]) else { return Result<(StatsSnapshot, NodeStats?), LibvirtError>.failure(
                    LibvirtError(code: 0, domain: 0, message: fleet.failure(hosts[i]) ?? "not connected")) }
                do throws(LibvirtError) {
                    let domains = try c.allDomainStats()
                    return .success((domains, self.sampleHostLoad ? try? c.nodeStats() : nil))
                } catch { return .failure(error) }
            }
            for (i, result) in snapshots.enumerated() {
                let snapshot: StatsSnapshot
                let node: NodeStats?
                switch result {
                case .some(.success(let s)): (snapshot, node) = s
                case .some(.failure(let e)):
                    connections.markUnknown(hosts[i], reason: "statistics failed during sampling: \(e.message)")
                    continue
                case .none:
                    connections.markUnknown(hosts[i], reason: "statistics did not arrive within \(fleet.timeout)")
                    continue
                }
                for (name, d) in snapshot.domains where wanted.contains(name) {
                    freshness.record(name, lastUpdate: d.balloonLastUpdate, atNs: snapshot.timestampNs)
                }
                let rates = samplers[i].ingest(snapshot)
                let previousNode = nodes[i]
                nodes[i] = node
                guard round > 0 else { continue }
                if let node {
                    let vmCores = rates.reduce(0.0) { $0 + ($1.cpuCores ?? 0) }
                    let vmMiB = snapshot.domains.values.filter { $0.state == .running || $0.state == .paused }
                        .reduce(0.0) { $0 + Double($1.balloonCurrentKiB ?? 0) / 1024 }
                    if let o = NodeStats.overhead(previous: previousNode, current: node, vmCores: vmCores,
                                                  vmMemoryMiB: vmMiB) {
                        windows[Trace.hostKey(hosts[i]), default: []].append(PendingSample(cpu: o.cpu, netMbps: 0, memMiB: o.memMiB, swapKbps: nil))
                    }
                }
                for u in rates where wanted.contains(u.name) {
                    // A running guest with a counter but no rate arrived on this host (a migration restarts its
                    // counters in the target's QEMU) or restarted: a reset, so no sample rather than a zero one.
                    if u.cpuCores == nil, let d = snapshot.domains[u.name], d.state == .running, d.cpuTimeNs != nil {
                        continue
                    }
                    windows[u.name, default: []].append(
                        PendingSample(cpu: u.cpuCores ?? 0, netMbps: u.netMbps ?? 0, memMiB: u.memoryUsedMiB ?? 0,
                                      swapKbps: u.swapKiBps, guestFreeMiB: u.guestFreeMiB,
                                      balloonMiB: snapshot.domains[u.name]?.balloonCurrentKiB.map { Double($0) / 1024 }))
                }
            }
            if round > 0 { progress?(round, count) }
        }
        var warnings: [String] = []
        for vm in freshness.stale().sorted() where windows[vm]?.contains(where: { $0.guestFreeMiB != nil }) == true {
            // Black-box: what the hypervisor sees (the balloon), no guest free memory.
            windows[vm] = windows[vm]!.map { s in
                PendingSample(cpu: s.cpu, netMbps: s.netMbps, memMiB: s.balloonMiB ?? s.memMiB, swapKbps: s.swapKbps)
            }
            warnings.append("\(vm): guest memory statistics did not update during the window (no stats period, "
                + "or the balloon driver stopped reporting); profiled black-box")
        }
        return (Date().timeIntervalSince1970, windows.mapValues { $0.map(\.sample) }, warnings)
    }
}

/// One interval's sample plus the balloon size, kept until the window is judged.
private struct PendingSample {
    var sample: SandpiperModel.Sample
    var balloonMiB: Double?
    var cpu: Double { sample.cpu }
    var netMbps: Double { sample.netMbps }
    var memMiB: Double { sample.memMiB }
    var swapKbps: Double? { sample.swapKbps }
    var guestFreeMiB: Double? { sample.guestFreeMiB }

    init(cpu: Double, netMbps: Double, memMiB: Double, swapKbps: Double?, guestFreeMiB: Double? = nil,
         balloonMiB: Double? = nil) {
        sample = SandpiperModel.Sample(cpu: cpu, netMbps: netMbps, memMiB: memMiB, swapKbps: swapKbps,
                                       guestFreeMiB: guestFreeMiB)
        self.balloonMiB = balloonMiB
    }
}

/// Pure: which guests' memory statistics did not move over a sampling window. Stale: the balloon has no stats
/// period (0), or `last-update` stayed the same over a span long enough for two updates at its period.
public struct GuestStatsFreshness: Sendable {
    /// Stats period in effect per VM (seconds); absent = unknown (taken as 1 s).
    public var periods: [String: Int] = [:]
    private var seen: [String: (first: UInt64, firstNs: UInt64, changed: Bool, lastNs: UInt64)] = [:]

    public init(periods: [String: Int] = [:]) { self.periods = periods }

    public mutating func record(_ vm: String, lastUpdate: UInt64?, atNs: UInt64) {
        guard let lastUpdate else { return }  // no guest statistics at all: nothing to judge
        if var s = seen[vm] {
            if lastUpdate != s.first { s.changed = true }
            s.lastNs = atNs
            seen[vm] = s
        } else {
            seen[vm] = (lastUpdate, atNs, false, atNs)
        }
    }

    public func stale() -> Set<String> {
        Set(seen.compactMap { vm, s in
            guard !s.changed else { return nil }
            let period = periods[vm] ?? 1
            if period == 0 { return vm }
            let spanSeconds = Double(s.lastNs &- s.firstNs) / 1e9
            return spanSeconds >= Double(2 * period) + 1 ? vm : nil
        })
    }
}

extension Observation {
    /// The planner's input: the inventory with each VM's sample window attached, and each host's window of load
    /// outside its VMs (`samples["@<host>"]`, see `Trace.hostKey`) when the telemetry source has one.
    public init(inventory: FleetInventory, samples: [String: [Sample]], now: Double, intervalSeconds: Double) {
        let vms = inventory.vms.map { vm -> VMObservation in
            var v = vm
            v.samples = samples[vm.name] ?? []
            return v
        }
        let hosts = inventory.hosts.map { host -> HostObservation in
            var h = host
            h.overhead = samples[Trace.hostKey(host.name)] ?? []
            return h
        }
        self.init(intervalSeconds: intervalSeconds, now: now, hosts: hosts, vms: vms)
    }

    /// The inventory without samples, as stored in state.json.
    public var withoutSamples: Observation {
        var copy = self
        copy.vms = vms.map { var v = $0; v.samples = []; return v }
        copy.hosts = hosts.map { var h = $0; h.overhead = []; return h }
        return copy
    }
}
