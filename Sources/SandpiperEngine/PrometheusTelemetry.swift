import Foundation
import SandpiperModel

/// Reads the VMs' windows from a Prometheus server (`telemetry.source: prometheus`): one `query_range` per
/// resource over the policy's n intervals, step = the telemetry interval, so nothing waits for samples.
///
/// A VM's sample at an interval needs a finite value of all three resources there. A missing series, a gap, a
/// stale series (its newest point before the window's end), NaN/Inf, or a query that failed (timeout, HTTP error,
/// bad JSON) leaves that interval out — never a zero — and is reported once per VM. A VM left with no sample is
/// profiled as the planner profiles every VM without samples: as using its whole allocation, not as idle.
public struct PrometheusTelemetry: Sendable {
    /// The defaults read the metrics of the Debian package prometheus-libvirt-exporter 0.2.0 (labels `domain`,
    /// `uuid`; network also `source_bridge`, `target_device`). `$interval` is replaced by the step.
    /// Memory: the exporter's `memory_usage_bytes` is libvirt's current allocation (the balloon size).
    public static let defaultCPUQuery = "rate(libvirt_domain_info_cpu_time_seconds_total[$interval])"
    public static let defaultMemoryQuery = "libvirt_domain_info_memory_usage_bytes / 1048576"
    public static let defaultNetworkQuery = "sum by (domain, uuid) (rate(libvirt_domain_interface_stats_receive_bytes_total[$interval])"
        + " + rate(libvirt_domain_interface_stats_transmit_bytes_total[$interval])) * 8 / 1e6"

    /// A VM to read: its libvirt name and UUID (either may match a series' `domain` / `uuid` label).
    public struct Target: Sendable, Equatable {
        public var name: String
        public var uuid: String?
        public init(name: String, uuid: String?) { self.name = name; self.uuid = uuid }
    }

    public enum Resource: String, Sendable, CaseIterable { case cpu, memory, network }

    public let client: PrometheusClient
    public let queries: [Resource: String]
    public let intervalSeconds: Double

    public init(endpoint: PrometheusEndpoint, credentials: String?, intervalSeconds: Double) throws(PrometheusClient.Failure) {
        client = try PrometheusClient(url: endpoint.url, credentials: credentials, timeoutSeconds: endpoint.timeoutSeconds)
        self.intervalSeconds = intervalSeconds
        let step = PrometheusTelemetry.duration(intervalSeconds)
        func fill(_ q: String) -> String { q.replacingOccurrences(of: "$interval", with: step) }
        queries = [.cpu: fill(endpoint.cpuQuery ?? Self.defaultCPUQuery),
                   .memory: fill(endpoint.memoryQuery ?? Self.defaultMemoryQuery),
                   .network: fill(endpoint.networkQuery ?? Self.defaultNetworkQuery)]
    }

    /// The last `count` intervals ending at or before `now`: windows per VM (oldest first) and one warning per VM
    /// whose window is incomplete (plus one per failed query, naming the VMs it left without samples).
    public func sample(_ targets: [Target], count: Int, now: Double) -> (now: Double, samples: [String: [Sample]], warnings: [String]) {
        let end = (now / intervalSeconds).rounded(.down) * intervalSeconds
        let start = end - Double(max(count, 1) - 1) * intervalSeconds
        var answers: [Resource: Result<[PrometheusClient.Series], PrometheusClient.Failure>] = [:]
        for resource in Resource.allCases {
            do throws(PrometheusClient.Failure) {
                answers[resource] = .success(try client.queryRange(queries[resource]!, start: start, end: end,
                                                                   step: intervalSeconds))
            } catch {
                // Down, slow or broken: the other queries would fail the same way, each after its timeout.
                answers[resource] = .failure(error)
                break
            }
        }
        let assembled = Self.assemble(answers, targets: targets, start: start, step: intervalSeconds, count: max(count, 1))
        return (end, assembled.samples, assembled.warnings)
    }

    /// Pure: the query answers turned into windows and warnings.
    public static func assemble(_ answers: [Resource: Result<[PrometheusClient.Series], PrometheusClient.Failure>],
                                targets: [Target], start: Double, step: Double, count: Int)
        -> (samples: [String: [Sample]], warnings: [String]) {
        var byUUID: [String: String] = [:]
        for t in targets { if let u = t.uuid?.lowercased(), !u.isEmpty { byUUID[u] = t.name } }
        let names = Set(targets.map(\.name))
        // Per resource, per VM, per interval: the values the matched series gave there.
        var values: [Resource: [String: [[Double]]]] = [:]
        var failed: [Resource: String] = [:]
        for resource in Resource.allCases {
            switch answers[resource] {
            case .success(let series):
                var perVM: [String: [[Double]]] = [:]
                for s in series {
                    // The UUID is the stronger identity: a domain renamed or a name reused elsewhere.
                    let vm = s.labels["uuid"].flatMap { byUUID[$0.lowercased()] }
                        ?? s.labels["domain"].flatMap { names.contains($0) ? $0 : nil }
                    guard let vm else { continue }
                    var slots = perVM[vm] ?? Array(repeating: [], count: count)
                    for p in s.points {
                        // Checked as a Double first: a timestamp far outside the window (1e300 from a broken or
                        // hostile server) does not fit an Int.
                        let x = ((p.time - start) / step).rounded()
                        guard x >= 0, x < Double(count) else { continue }
                        slots[Int(x)].append(p.value)
                    }
                    perVM[vm] = slots
                }
                values[resource] = perVM
            case .failure(let e): failed[resource] = e.message
            case nil: failed[resource] = "not queried"
            }
        }
        var samples: [String: [Sample]] = [:]
        var warnings: [String] = []
        // A failed query leaves every VM without samples: said once, naming them.
        if let resource = Resource.allCases.first(where: { failed[$0] != nil && failed[$0] != "not queried" }) {
            let affected = targets.map(\.name).sorted()
            let shown = affected.prefix(20).joined(separator: ", ") + (affected.count > 20 ? " and \(affected.count - 20) more" : "")
            warnings.append("Prometheus \(resource.rawValue) query failed (\(failed[resource]!)): no samples for \(shown); "
                + "profiled as using their whole allocation, not as idle")
        }
        for target in targets.sorted(by: { $0.name < $1.name }) {
            var problems: [String] = []
            var usable = [Bool](repeating: failed.isEmpty, count: count)
            var value: [Resource: [Double]] = [:]
            for resource in Resource.allCases where failed[resource] == nil {
                guard let slots = values[resource]?[target.name] else {
                    problems.append("no \(resource.rawValue) series")
                    usable = usable.map { _ in false }
                    continue
                }
                var missing = 0, nonFinite = 0, duplicate = 0
                var v = [Double](repeating: 0, count: count)
                for i in 0..<count {
                    let here = slots[i]
                    if here.isEmpty { missing += 1; usable[i] = false }
                    else if here.count > 1 { duplicate += 1; usable[i] = false }
                    else if !here[0].isFinite { nonFinite += 1; usable[i] = false }
                    else { v[i] = here[0] }
                }
                value[resource] = v
                if missing > 0 {
                    var text = "\(resource.rawValue): \(missing) of \(count) intervals missing"
                    if slots.last?.isEmpty == true, let newest = slots.lastIndex(where: { !$0.isEmpty }) {
                        text += " (stale: newest point \(Units.trim(Double(count - 1 - newest) * step))s before the window end)"
                    }
                    problems.append(text)
                }
                if nonFinite > 0 { problems.append("\(resource.rawValue): NaN/Inf at \(nonFinite) of \(count) intervals") }
                if duplicate > 0 {
                    problems.append("\(resource.rawValue): more than one series at \(duplicate) of \(count) intervals")
                }
            }
            var window: [Sample] = []
            if failed.isEmpty {
                for i in 0..<count where usable[i] {
                    window.append(Sample(cpu: value[.cpu]![i], netMbps: value[.network]![i], memMiB: value[.memory]![i]))
                }
            }
            if !window.isEmpty { samples[target.name] = window }
            guard !problems.isEmpty else { continue }
            let outcome = window.isEmpty
                ? "no complete sample: profiled as using its whole allocation, not as idle"
                : "profiled on the \(window.count) complete of \(count) intervals"
            warnings.append("\(target.name): Prometheus telemetry incomplete (\(problems.joined(separator: "; "))); \(outcome)")
        }
        return (samples, warnings)
    }

    /// Seconds as a PromQL duration (`10s`, `1500ms`).
    static func duration(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(Int((seconds * 1000).rounded()))ms"
    }
}
