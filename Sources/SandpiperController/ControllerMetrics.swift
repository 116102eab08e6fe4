import Foundation
import Prometheus
import SandpiperEngine
import SandpiperGitOps
import SandpiperModel

/// The `sandpiper_` series of one process, per cluster: served on `/metrics` by `sandpiper run` and written to a
/// node_exporter textfile by one-shot commands (`--metrics-file`). One registry; series are created on first use.
public final class ControllerMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    /// Open hotspots of the previous round per cluster (host/vm/resource), to count detections and resolutions.
    private var openHotspots: [String: Set<String>] = [:]
    private let mutex = NSLock()

    public static let hostStatuses = ["up", "unknown", "maintenance", "standby"]
    public static let resources = ["cpu", "net", "mem"]
    /// Round duration buckets in seconds: trace rounds take milliseconds, live rounds with migrations minutes.
    static let durationBuckets: [Double] = [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900]

    public init() {}

    private func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "sandpiper", metricName: metric, unitName: unit, helpText: help)
    }

    private func counter(_ metric: String, _ unit: String, _ help: String, _ labels: [(String, String)]) -> Counter {
        registry.makeCounter(descriptor: name(metric, unit, help), labels: labels)
    }

    private func gauge(_ metric: String, _ unit: String, _ help: String, _ labels: [(String, String)]) -> Gauge {
        registry.makeGauge(descriptor: name(metric, unit, help), labels: labels)
    }

    /// A round finished (or failed before it could plan): counters, duration, last success.
    public func roundFinished(cluster: String, succeeded: Bool, seconds: Double, at now: Double) {
        mutex.lock(); defer { mutex.unlock() }
        let result = succeeded ? "ok" : "failed"
        // Both results exist from the first round on, so a rate() over either never starts from a missing series.
        for r in ["ok", "failed"] {
            let c = counter("rounds", "total", "Completed controller rounds by result.", [("cluster", cluster), ("result", r)])
            if r == result { c.increment() }
        }
        registry.makeValueHistogram(descriptor: name("round_duration", "seconds", "Duration of a controller round."),
                                    labels: [("cluster", cluster)], buckets: Self.durationBuckets).record(seconds)
        if succeeded {
            gauge("last_success_timestamp", "seconds", "Unix time the last round succeeded.", [("cluster", cluster)])
                .set(now)
        }
    }

    /// What the round's plan saw and what was applied.
    public func record(_ outcome: ReconcileOutcome) {
        mutex.lock(); defer { mutex.unlock() }
        let cluster = outcome.cluster
        let l = [("cluster", cluster)]
        if let plan = outcome.plan {
            var byStatus: [String: Int] = [:]
            for h in plan.hostsBefore { byStatus[h.status, default: 0] += 1 }
            for status in Set(Self.hostStatuses).union(byStatus.keys).sorted() {
                gauge("hosts", "", "Hosts by status as last observed.", l + [("status", status)])
                    .set(Double(byStatus[status] ?? 0))
            }
            for h in plan.hostsBefore {
                for (resource, value) in [("cpu", h.cpu), ("net", h.net), ("mem", h.mem)] {
                    gauge("host_utilization", "ratio", "Observed host utilization per resource (0-1).",
                          l + [("host", h.name), ("resource", resource)]).set(value)
                }
            }
            let open = Set(plan.hotspots.filter(\.counts).map { "\($0.host)/\($0.vm ?? "")/\($0.resource)" })
            let before = openHotspots[cluster] ?? []
            openHotspots[cluster] = open
            gauge("hotspots_open", "", "Hotspots in the last plan.", l).set(Double(plan.summary.hotspots))
            counter("hotspots_detected", "total", "Hotspots seen that were not open in the previous round.", l)
                .increment(by: Int64(open.subtracting(before).count))
            counter("hotspots_resolved", "total", "Hotspots of the previous round no longer open.", l)
                .increment(by: Int64(before.subtracting(open).count))
            gauge("hotspots_unresolved", "", "Hotspots the last plan could not relieve.", l)
                .set(Double(plan.summary.unresolved))
        }
        for (document, report) in zip(outcome.applied, outcome.reports) {
            let swaps = Set(document.actions.filter { $0.swapGroup != nil }.map(\.id))
            for o in report.outcomes {
                let kind = swaps.contains(o.actionID) ? "swap" : o.kind.rawValue
                let result: String
                switch o.status {
                case .done: result = "applied"
                case .failed: result = "failed"
                case .skipped: result = "skipped"
                case .started: result = "interrupted"
                }
                counter("actions", "total", "Actions applied, failed or skipped, by kind (a swap's moves count as swap).",
                        l + [("kind", kind), ("outcome", result)]).increment()
            }
        }
        // Zero series for the usual kinds, so alerts on increase() see them before the first action.
        for kind in ["migrate", "swap", "tune"] {
            for result in ["applied", "failed"] {
                _ = counter("actions", "total", "Actions applied, failed or skipped, by kind (a swap's moves count as swap).",
                            l + [("kind", kind), ("outcome", result)])
            }
        }
        gauge("actions_pending_review", "", "Actions of the last plan left for review (automation level).", l)
            .set(Double(outcome.pending))
    }

    /// Which process holds the cluster (1 while held, 0 after release).
    public func lock(cluster: String, holder: String, held: Bool) {
        gauge("lock_held", "", "1 while this process holds the cluster's lock; the holder label names it.",
              [("cluster", cluster), ("holder", holder)]).set(held ? 1.0 : 0.0)
    }

    /// 1 while this controller waits for another one's lease (git mode).
    public func standby(cluster: String, _ waiting: Bool) {
        gauge("standby", "", "1 while this controller is a standby waiting for another controller's lease.",
              [("cluster", cluster)]).set(waiting ? 1.0 : 0.0)
    }

    /// 1 when the spec read last was valid, 0 when the controller keeps running on the last good one.
    public func specValid(cluster: String, _ valid: Bool) {
        gauge("spec_valid", "", "1 when the cluster spec read last was valid; 0 = running on the last good spec.",
              [("cluster", cluster)]).set(valid ? 1.0 : 0.0)
    }

    /// The observation clock of the last round: trace seconds for replayed clusters, Unix time for live ones.
    public func observed(cluster: String, at time: Double) {
        gauge("observation_time", "seconds", "Time of the newest sample the last round planned on.",
              [("cluster", cluster)]).set(time)
    }

    /// A webhook delivery outcome (delivered, retried, failed, dropped); every result's series exists once the
    /// cluster has a webhook.
    public func notification(cluster: String, _ result: Notifier.Result?) {
        mutex.lock(); defer { mutex.unlock() }
        for r in Notifier.Result.allCases {
            let c = counter("notifications", "total", "Webhook notifications by result (retried counts each retry).",
                            [("cluster", cluster), ("result", r.rawValue)])
            if r == result { c.increment() }
        }
    }

    public func text() -> String { registry.emitToString() }

    /// Writes the exposition to `url` atomically (node_exporter's textfile collector reads `*.prom` files and
    /// must never see half of one).
    public func write(to url: URL) throws {
        try AtomicFile.write(Data(text().utf8), to: url)
    }
}
