import Foundation
import SandpiperEngine

/// Human output of `sandpiper simulate`, built only from the `SimulationReport` (like `PlanRenderer` reads only
/// the plan document): what the loop did over the trace, interval by interval, then per-host utilization and a
/// summary.
public struct SimulationRenderer: Sendable {
    public var color: Bool
    public init(color: Bool = false) { self.color = color }

    private func bold(_ s: String) -> String { color ? "\u{1B}[1m\(s)\u{1B}[0m" : s }
    private func red(_ s: String) -> String { color ? "\u{1B}[31m\(s)\u{1B}[0m" : s }
    private func green(_ s: String) -> String { color ? "\u{1B}[32m\(s)\u{1B}[0m" : s }

    public func render(_ r: SimulationReport) -> String {
        var out: [String] = []
        guard r.intervals > 0 else {
            return bold("Simulating \(r.cluster)") + ": the trace has no samples (no VM is declared or traced), "
                + "so there is nothing to replay and nothing to do."
        }
        let span = (r.timeline.last?.time ?? 0) - (r.timeline.first?.time ?? 0) + r.intervalSeconds
        let bw = r.bandwidthMbps.map { "\(Self.n($0)) Mbit/s" } ?? "the hosts' network capacity (cluster.yaml)"
        out.append(bold("Simulating \(r.cluster)") + ": \(r.hosts.count) host\(r.hosts.count == 1 ? "" : "s"), \(r.intervals) intervals of "
            + "\(Self.n(r.intervalSeconds)) s (\(Self.n(span)) s), policy \(r.policy) (\(r.profiling)); migrations at \(bw), "
            + "+\(Self.n(r.migrationCPUCores)) core on each end while they run.")
        out.append("")

        // Events in time order.
        enum Event { case detected(SimulationReport.Hotspot), action(SimulationReport.Action), resolved(SimulationReport.Hotspot) }
        var events: [(Double, Int, Event)] = []
        for h in r.hotspots {
            events.append((h.detectedAt, 0, .detected(h)))
            if let t = h.resolvedAt { events.append((t, 2, .resolved(h))) }
        }
        for a in r.actions {
            events.append((a.plannedAt, 1, .action(a)))
        }
        events.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        if events.isEmpty { out.append("  Nothing happened: no hotspot was detected and no action was taken.") }
        for (t, _, e) in events {
            let at = "t=" + Self.pad(Self.n(t), 5) + "s  "
            switch e {
            case .detected(let h):
                let what = h.vm.map { "\($0) on \(h.host) memory pressure" }
                    ?? "\(h.host) \(h.resource) hot (over \(Self.pct(h.threshold)) since t=\(Self.n(h.overSince))s)"
                out.append(at + red("! ") + what)
            case .action(let a):
                let timing = a.kind == "migrate"
                    ? " [\(Self.n(a.startedAt))s -> \(Self.n(a.finishedAt))s, \(Self.n(a.finishedAt - a.startedAt)) s]" : ""
                let status = a.status == "done" ? "" : " " + red(a.status.uppercased()) + (a.detail.map { ": \($0)" } ?? "")
                let what = a.kind == "migrate"
                    ? "> \(a.vm) \(a.from ?? "?") -> \(a.to ?? "?") (\(a.mode ?? "live")\(a.swapGroup != nil ? ", swap" : ""))"
                    : "~ \(Simulator.describe(a))"
                out.append(at + "  " + what + timing + status)
            case .resolved(let h):
                let what = h.vm.map { "\($0) memory pressure" } ?? "\(h.host) \(h.resource)"
                out.append(at + green("✓ ") + "\(what) resolved after \(Self.n(h.secondsToResolve ?? 0)) s by \(h.outcome)"
                    + (h.actions.isEmpty ? "" : ": " + h.actions.joined(separator: ", ")))
            }
        }
        for h in r.hotspots where h.resolvedAt == nil {
            let what = h.vm.map { "\($0) on \(h.host) memory pressure" } ?? "\(h.host) \(h.resource)"
            out.append("  " + red("✗ \(what) unresolved") + " (detected at t=\(Self.n(h.detectedAt))s)"
                + (h.reason.map { ": \($0)" } ?? ""))
        }

        // Per-host utilization per interval: one character per interval, or per bucket of intervals (their
        // maximum) so that a long trace still fits a terminal.
        let bucket = max(1, (r.timeline.count + Self.maxColumns - 1) / Self.maxColumns)
        let buckets = stride(from: 0, to: r.timeline.count, by: bucket).map { Array(r.timeline[$0..<min($0 + bucket, r.timeline.count)]) }
        out.append("")
        out.append(bold("Utilization per interval") + " (one column per \(Self.n(r.intervalSeconds * Double(bucket))) s"
            + (bucket > 1 ? ", the highest of \(bucket) intervals" : "") + "; ▁▂▃▄▅▆▇█ = 0-100%, "
            + "! = above threshold, ^ = hotspot open):")
        let width = r.hosts.map(\.count).max() ?? 3
        for (i, host) in r.hosts.enumerated() {
            for resource in ["cpu", "mem"] {
                var line = ""
                var marks = ""
                for group in buckets {
                    let samples = group.map { $0.hosts[i] }
                    let u = samples.map { resource == "cpu" ? $0.cpu : $0.mem }.max() ?? 0
                    let over = samples.contains { resource == "cpu" ? $0.cpu > $0.thresholds.cpu : $0.mem > $0.thresholds.mem }
                    line += over ? "!" : Self.bar(u)
                    marks += samples.contains { $0.hot.contains(resource) } ? "^" : " "
                }
                out.append("  " + Self.pad(host, width, left: false) + " \(resource) " + line)
                if marks.contains("^") { out.append("  " + String(repeating: " ", count: width + 5) + marks) }
            }
        }
        if r.swappingIntervals > 0 {
            var vms: [String: String] = [:]
            let names = Set(r.timeline.flatMap(\.swapping)).sorted()
            for vm in names { vms[vm] = r.timeline.map { $0.swapping.contains(vm) ? "s" : "·" }.joined() }
            for vm in names { out.append("  " + Self.pad(vm, width, left: false) + " swp " + vms[vm]!) }
        }

        out.append("")
        let mean = r.meanSecondsToResolve.map { "mean \(Self.n($0)) s" } ?? "mean -"
        let max = r.maxSecondsToResolve.map { "max \(Self.n($0)) s" } ?? "max -"
        out.append(bold("Summary") + ": \(r.hotspotsDetected) hotspot(s) detected, \(r.hotspotsResolved) resolved "
            + "(\(mean), \(max) from detection), \(r.unresolved) unresolved; \(r.migrations) migration(s), "
            + "\(r.swaps) swap(s), \(r.balloonChanges) balloon change(s); \(r.swappingIntervals) VM-interval(s) swapping; "
            + "\(r.transientIntervals) host-interval(s) above a threshold never confirmed as a hotspot (transient); "
            + "\(r.plans) plans, \(r.applies) applied" + (r.applyFailures > 0 ? ", " + red("\(r.applyFailures) action(s) failed") : "") + ".")
        if r.powerOns + r.powerOffs > 0 {
            let all = Double(r.hosts.count * r.intervals) * r.intervalSeconds / 3600
            out.append(bold("Power") + ": \(Self.n(r.hostHoursOn)) host-hours powered on of \(Self.n(all)) "
                + "(\(r.powerOffs) power-off(s), \(r.powerOns) power-on(s)); \(Self.n(r.hotspotSeconds)) host-seconds above a threshold.")
        }
        return out.joined(separator: "\n")
    }

    /// Widest utilization chart, in columns.
    static let maxColumns = 120

    static func bar(_ u: Double) -> String {
        let blocks = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
        let i = Int((min(max(u, 0), 1) * 7).rounded())
        return blocks[i]
    }

    static func n(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e12 ? String(Int64(x)) : String(format: "%.1f", x)
    }

    static func pct(_ x: Double) -> String { String(format: "%.0f%%", x * 100) }

    static func pad(_ s: String, _ w: Int, left: Bool = true) -> String {
        s.count >= w ? s : (left ? String(repeating: " ", count: w - s.count) + s : s + String(repeating: " ", count: w - s.count))
    }
}
