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

    public func windows(for vms: [String], count: Int) throws -> (now: Double, samples: [String: [Sample]]) {
        let hosts = connections.cluster.spec.hosts.map(\.name).filter { connections.connection($0) != nil }
        var samplers = Array(repeating: UtilizationSampler(), count: hosts.count)
        // The hosts' own counters, for the load outside their VMs (`@host` windows); nil where unsupported.
        var nodes = [NodeStats?](repeating: nil, count: hosts.count)
        var windows: [String: [Sample]] = [:]
        let wanted = Set(vms)
        for round in 0...count {
            if round > 0 { Thread.sleep(forTimeInterval: intervalSeconds) }
            let fleet = connections
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
                        windows[Trace.hostKey(hosts[i]), default: []].append(Sample(cpu: o.cpu, memMiB: o.memMiB))
                    }
                }
                for u in rates where wanted.contains(u.name) {
                    windows[u.name, default: []].append(
                        Sample(cpu: u.cpuCores ?? 0, netMbps: u.netMbps ?? 0, memMiB: u.memoryUsedMiB ?? 0,
                               swapKbps: u.swapKiBps, guestFreeMiB: u.guestFreeMiB))
                }
            }
            if round > 0 { progress?(round, count) }
        }
        return (Date().timeIntervalSince1970, windows)
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
