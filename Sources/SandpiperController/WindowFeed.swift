import Foundation
import SandpiperEngine
import SandpiperLibvirt
import SandpiperModel

/// The sample windows `sandpiper run` keeps between rounds. A trace is replayed one interval per tick; live hosts
/// are sampled once per tick (one `virConnectGetAllDomainStats` per host) and each VM keeps its last n samples.
/// The windows are written to `.samples/windows.json` after each tick and read back at start, so a restart
/// keeps its history instead of waiting n intervals again. With Prometheus the history lives there: each round
/// reads the last n intervals afresh and nothing is kept.
final class WindowFeed {
    enum Source { case trace(Trace), libvirt, prometheus(PrometheusTelemetry) }

    let source: Source
    /// Samples kept per VM (the policy's window n).
    var count: Int
    let intervalSeconds: Double
    /// Trace: the interval the next window ends at.
    private(set) var traceIndex: Int
    private var windows: [String: [Sample]] = [:]
    private(set) var now: Double = 0
    private var samplers: [String: UtilizationSampler] = [:]
    private var started = false
    let store: URL

    /// The trace position or live windows read back at start, said once in the log.
    private(set) var resumedFrom: String?

    init(cluster: LoadedCluster, store: URL) throws {
        count = cluster.policy.window.n
        intervalSeconds = cluster.spec.telemetry.intervalSeconds
        self.store = store
        switch cluster.spec.telemetry.source {
        case .trace:
            let trace = try Engine.loadTrace(cluster)
            guard !trace.times.isEmpty else { throw EngineError.trace("the trace has no samples") }
            source = .trace(trace)
            // The first full window, unless the trace is shorter.
            traceIndex = min(count - 1, trace.times.count - 1)
        case .libvirt:
            source = .libvirt
            traceIndex = 0
        case .prometheus:
            source = .prometheus(try Engine.prometheusTelemetry(cluster))
            traceIndex = 0
        }
        restore()
    }

    /// True once a trace replay has reached its last interval (later rounds plan on the last window).
    var atEnd: Bool {
        if case .trace(let trace) = source { return traceIndex >= trace.times.count - 1 }
        return false
    }

    /// One interval on: the next trace window, or one more live sample per VM.
    func tick(connections: FleetConnections) {
        switch source {
        case .trace(let trace):
            if started { traceIndex = min(traceIndex + 1, trace.times.count - 1) }
            now = trace.times[traceIndex]
        case .libvirt:
            sample(connections)
            now = Date().timeIntervalSince1970
        case .prometheus:
            now = Date().timeIntervalSince1970  // read at snapshot time, against the inventory
        }
        started = true
    }

    /// The round's observation: the inventory now with the kept windows attached.
    func snapshot(_ cluster: LoadedCluster, connections: FleetConnections, state: StateDocument?) -> FleetSnapshot {
        var inventory = connections.inventory(previous: state?.inventory, now: now)
        let samples: [String: [Sample]]
        switch source {
        case .trace(let trace):
            var s: [String: [Sample]] = [:]
            for vm in inventory.vms { s[vm.name] = trace.window(vm.name, endingAt: traceIndex, count: count) }
            samples = s
        case .libvirt:
            // Hosts that stopped answering while sampled are unknown now (as Engine.observe does).
            for i in inventory.hosts.indices where inventory.hosts[i].isUp {
                if let reason = connections.failure(inventory.hosts[i].name) {
                    inventory.hosts[i].status = .unknown(reason: reason)
                }
            }
            let known = Set(inventory.hosts.filter(\.isUp).map(\.name))
            inventory = FleetInventory(hosts: inventory.hosts, vms: inventory.vms.filter { known.contains($0.host) },
                                       warnings: inventory.warnings)
            samples = windows
        case .prometheus(let prometheus):
            let read = prometheus.sample(Engine.prometheusTargets(inventory), count: count, now: now)
            inventory.warnings += read.warnings
            samples = read.samples
        }
        return FleetSnapshot(observation: Observation(inventory: inventory, samples: samples, now: now,
                                                      intervalSeconds: intervalSeconds),
                             inventory: inventory)
    }

    private func sample(_ connections: FleetConnections) {
        let hosts = connections.cluster.spec.hosts.map(\.name).filter { connections.connection($0) != nil }
        let fleet = connections
        let results = FleetConnections.parallel(hosts, concurrency: fleet.concurrency, timeout: fleet.timeout) { i in
            guard let c = fleet.connection(hosts[i]) else { return Result<StatsSnapshot, LibvirtError>.failure(
                LibvirtError(code: 0, domain: 0, message: fleet.failure(hosts[i]) ?? "not connected")) }
            do throws(LibvirtError) { return .success(try c.allDomainStats()) } catch { return .failure(error) }
        }
        for (host, result) in zip(hosts, results) {
            switch result {
            case .some(.success(let snapshot)):
                // The first snapshot of a host only primes the counter deltas.
                let primed = samplers[host] != nil
                var sampler = samplers[host] ?? UtilizationSampler()
                let rates = sampler.ingest(snapshot)
                samplers[host] = sampler
                guard primed else { continue }
                for u in rates {
                    var w = windows[u.name, default: []]
                    w.append(Sample(cpu: u.cpuCores ?? 0, netMbps: u.netMbps ?? 0, memMiB: u.memoryUsedMiB ?? 0,
                                    swapKbps: u.swapKiBps, guestFreeMiB: u.guestFreeMiB))
                    windows[u.name] = Array(w.suffix(count))
                }
            case .some(.failure(let e)):
                connections.markUnknown(host, reason: "statistics failed during sampling: \(e.message)")
                samplers[host] = nil
            case .none:
                connections.markUnknown(host, reason: "statistics did not arrive within \(fleet.timeout)")
                samplers[host] = nil
            }
        }
    }

    // MARK: Persistence

    struct Stored: Codable {
        var formatVersion = 1
        var source: String
        var intervalSeconds: Double
        /// Trace: the index and time of the last window planned on (the time guards against an edited trace).
        var traceIndex: Int?
        var traceTime: Double?
        var now: Double
        var windows: [String: [Sample]]
    }

    func persist() throws {
        let stored: Stored
        switch source {
        case .trace(let trace):
            stored = Stored(source: "trace", intervalSeconds: intervalSeconds, traceIndex: traceIndex,
                            traceTime: trace.times[traceIndex], now: now, windows: [:])
        case .libvirt:
            stored = Stored(source: "libvirt", intervalSeconds: intervalSeconds, now: now, windows: windows)
        case .prometheus:
            stored = Stored(source: "prometheus", intervalSeconds: intervalSeconds, now: now, windows: [:])
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try FileManager.default.createDirectory(at: store.deletingLastPathComponent(), withIntermediateDirectories: true)
        try AtomicFile.write(try encoder.encode(stored), to: store)
    }

    /// Reads what a previous run left; anything that does not fit (other source, edited trace, interval changed,
    /// live windows older than a window) is ignored and the controller starts afresh.
    private func restore() {
        guard let data = FileManager.default.contents(atPath: store.path),
              let stored = try? JSONDecoder().decode(Stored.self, from: data), stored.formatVersion == 1,
              stored.intervalSeconds == intervalSeconds else { return }
        switch source {
        case .trace(let trace):
            guard stored.source == "trace", let i = stored.traceIndex, let t = stored.traceTime,
                  trace.times.indices.contains(i), trace.times[i] == t else { return }
            // Continue after the last window planned on.
            traceIndex = min(i + 1, trace.times.count - 1)
            resumedFrom = "trace time \(Units.trim(t))s"
        case .libvirt:
            let age = Date().timeIntervalSince1970 - stored.now
            guard stored.source == "libvirt", age >= 0, age <= Double(count) * intervalSeconds else { return }
            windows = stored.windows.mapValues { Array($0.suffix(count)) }
            now = stored.now
            resumedFrom = "\(windows.count) live window(s) from \(Int(age))s ago"
        case .prometheus:
            return  // Prometheus keeps the history
        }
    }
}
