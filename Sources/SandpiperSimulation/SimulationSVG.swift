import Foundation
import SandpiperEngine
import SandpiperModel

/// `simulate --svg`: one panel per host (small multiples, legible for a 20-host fleet) with CPU (solid) and memory
/// (dashed) utilization per interval, the host's CPU and memory thresholds, shaded open-hotspot periods, and
/// migration markers (an arrow down where a VM leaves, up where it arrives, labelled). Plain SVG 1.1: no scripts,
/// no external fonts or styles, so any browser shows it.
public enum SimulationSVG {
    static let panelHeight = 90.0
    static let panelGap = 30.0
    static let left = 44.0
    static let right = 110.0
    static let top = 64.0
    static let plotWidth = 900.0

    public static func render(_ r: SimulationReport) -> String {
        let n = r.timeline.count
        let t0 = r.timeline.first?.time ?? 0
        let t1 = (r.timeline.last?.time ?? 0)
        let span = max(t1 - t0, r.intervalSeconds)
        let width = left + plotWidth + right
        // Consolidation: a first panel with the number of hosts powered on per interval.
        let powerPanel = r.powerOns + r.powerOffs > 0
        let top = Self.top + (powerPanel ? panelHeight + panelGap : 0)
        let height = top + Double(r.hosts.count) * (panelHeight + panelGap) + 40
        func x(_ t: Double) -> Double { left + (t - t0) / span * plotWidth }

        var s: [String] = []
        s.append("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>")
        s.append("<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\">")
        s.append("<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"\(num(width))\" height=\"\(num(height))\" "
            + "viewBox=\"0 0 \(num(width)) \(num(height))\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\">")
        s.append("<title>sandpiper simulate \(esc(r.cluster))</title>")
        s.append("<rect x=\"0\" y=\"0\" width=\"\(num(width))\" height=\"\(num(height))\" fill=\"#ffffff\"/>")
        let summary = "\(r.hotspotsDetected) hotspots detected, \(r.hotspotsResolved) resolved, \(r.unresolved) unresolved; "
            + "\(r.migrations) migrations, \(r.swaps) swaps"
            + (r.meanSecondsToResolve.map { String(format: "; mean %.0f s to resolve", $0) } ?? "")
        s.append("<text x=\"\(num(left))\" y=\"22\" font-size=\"15\" font-weight=\"bold\">\(esc(r.cluster)): simulated reconcile loop (\(esc(r.policy)), \(esc(r.profiling)))</text>")
        s.append("<text x=\"\(num(left))\" y=\"40\" fill=\"#333333\">\(esc(summary))</text>")
        // Legend.
        let ly = 54.0
        s.append("<g id=\"legend\">")
        s.append("<line x1=\"\(num(left))\" y1=\"\(num(ly))\" x2=\"\(num(left + 24))\" y2=\"\(num(ly))\" stroke=\"#1f77b4\" stroke-width=\"2\"/>"
            + "<text x=\"\(num(left + 28))\" y=\"\(num(ly + 4))\">CPU</text>")
        s.append("<line x1=\"\(num(left + 70))\" y1=\"\(num(ly))\" x2=\"\(num(left + 94))\" y2=\"\(num(ly))\" stroke=\"#2ca02c\" stroke-width=\"2\" stroke-dasharray=\"5,3\"/>"
            + "<text x=\"\(num(left + 98))\" y=\"\(num(ly + 4))\">memory</text>")
        s.append("<line x1=\"\(num(left + 160))\" y1=\"\(num(ly))\" x2=\"\(num(left + 184))\" y2=\"\(num(ly))\" stroke=\"#d62728\" stroke-width=\"1\" stroke-dasharray=\"2,2\"/>"
            + "<text x=\"\(num(left + 188))\" y=\"\(num(ly + 4))\">CPU threshold</text>")
        s.append("<line x1=\"\(num(left + 270))\" y1=\"\(num(ly))\" x2=\"\(num(left + 294))\" y2=\"\(num(ly))\" stroke=\"#2ca02c\" stroke-dasharray=\"1,3\"/>"
            + "<text x=\"\(num(left + 298))\" y=\"\(num(ly + 4))\">mem threshold</text>")
        s.append("<rect x=\"\(num(left + 390))\" y=\"\(num(ly - 6))\" width=\"10\" height=\"10\" fill=\"#d62728\" fill-opacity=\"0.06\"/>"
            + "<rect x=\"\(num(left + 400))\" y=\"\(num(ly - 6))\" width=\"10\" height=\"10\" fill=\"#d62728\" fill-opacity=\"0.15\"/>"
            + "<text x=\"\(num(left + 414))\" y=\"\(num(ly + 4))\">hotspot: over threshold, detected until resolved</text>")
        s.append("<text x=\"\(num(left + 706))\" y=\"\(num(ly + 4))\" fill=\"#9467bd\">▼ VM leaves  ▲ arrives</text>")
        s.append("</g>")

        if powerPanel {
            let py = Self.top + 20
            let total = Double(max(1, r.hosts.count))
            func y(_ n: Double) -> Double { py + panelHeight - n / total * panelHeight }
            s.append("<g id=\"hosts-on\">")
            s.append("<text x=\"\(num(left))\" y=\"\(num(py - 4))\" font-weight=\"bold\">hosts powered on: \(String(format: "%.0f", r.hostHoursOn)) host-hours of \(String(format: "%.0f", total * Double(n) * r.intervalSeconds / 3600)) (\(r.powerOffs) power-offs, \(r.powerOns) power-ons; \(String(format: "%.0f", r.hotspotSeconds)) s above a threshold)</text>")
            s.append("<rect x=\"\(num(left))\" y=\"\(num(py))\" width=\"\(num(plotWidth))\" height=\"\(num(panelHeight))\" fill=\"#fafafa\" stroke=\"#cccccc\"/>")
            for g in [0.0, total / 2, total] {
                s.append("<line x1=\"\(num(left))\" y1=\"\(num(y(g)))\" x2=\"\(num(left + plotWidth))\" y2=\"\(num(y(g)))\" stroke=\"#e0e0e0\"/>"
                    + "<text x=\"\(num(left - 4))\" y=\"\(num(y(g) + 4))\" text-anchor=\"end\" fill=\"#777777\">\(Int(g))</text>")
            }
            s.append(hostsOnPolyline(r, x: x, y: y))
            s.append("</g>")
        }

        for (i, host) in r.hosts.enumerated() {
            let py = top + Double(i) * (panelHeight + panelGap) + 10
            func y(_ u: Double) -> Double { py + panelHeight - min(max(u, 0), 1.2) / 1.2 * panelHeight }
            s.append("<g id=\"host-\(esc(host))\">")
            s.append("<text x=\"\(num(left))\" y=\"\(num(py - 4))\" font-weight=\"bold\">\(esc(host))</text>")
            s.append("<rect x=\"\(num(left))\" y=\"\(num(py))\" width=\"\(num(plotWidth))\" height=\"\(num(panelHeight))\" fill=\"#fafafa\" stroke=\"#cccccc\"/>")
            // Standby periods (powered off by consolidation) in grey.
            var offSince: Double?
            for a in r.actions where a.host == host && a.status == "done" && (a.kind == "power-off" || a.kind == "power-on") {
                if a.kind == "power-off" { offSince = a.startedAt } else if let since = offSince {
                    s.append("<rect class=\"standby\" x=\"\(num(x(since)))\" y=\"\(num(py))\" width=\"\(num(x(a.startedAt) - x(since)))\" height=\"\(num(panelHeight))\" fill=\"#7f7f7f\" fill-opacity=\"0.18\"><title>\(esc(host)) standby</title></rect>")
                    offSince = nil
                }
            }
            if let since = offSince {
                s.append("<rect class=\"standby\" x=\"\(num(x(since)))\" y=\"\(num(py))\" width=\"\(num(x(t1) - x(since)))\" height=\"\(num(panelHeight))\" fill=\"#7f7f7f\" fill-opacity=\"0.18\"><title>\(esc(host)) standby</title></rect>")
            }
            // Shaded hotspot periods: light from the first interval over the threshold to detection, darker
            // from detection until resolved.
            for h in r.hotspots where h.host == host && h.vm == nil && h.overSince < h.detectedAt {
                s.append("<rect class=\"run-up\" x=\"\(num(x(h.overSince)))\" y=\"\(num(py))\" width=\"\(num(x(h.detectedAt) - x(h.overSince)))\" "
                    + "height=\"\(num(panelHeight))\" fill=\"#d62728\" fill-opacity=\"0.06\"><title>\(esc(host)) \(esc(h.resource)) over its threshold since \(num(h.overSince)) s (not yet k of n)</title></rect>")
            }
            for h in r.hotspots where h.host == host && h.vm == nil {
                let end = h.resolvedAt ?? (t1 + r.intervalSeconds)
                s.append("<rect class=\"hotspot\" x=\"\(num(x(h.detectedAt)))\" y=\"\(num(py))\" width=\"\(num(max(2, x(min(end, t1)) - x(h.detectedAt))))\" "
                    + "height=\"\(num(panelHeight))\" fill=\"#d62728\" fill-opacity=\"0.15\"><title>\(esc(host)) \(esc(h.resource)) hotspot: detected at \(num(h.detectedAt)) s, "
                    + (h.resolvedAt.map { "resolved at \(num($0)) s by \(h.outcome)" } ?? "unresolved") + "</title></rect>")
            }
            // VM memory hotspots (a VM swapping / short of free memory) on the VM's host, in green.
            for h in r.hotspots where h.host == host && h.vm != nil {
                let end = h.resolvedAt ?? (t1 + r.intervalSeconds)
                s.append("<rect class=\"vm-hotspot\" x=\"\(num(x(h.detectedAt)))\" y=\"\(num(py))\" width=\"\(num(max(2, x(min(end, t1)) - x(h.detectedAt))))\" "
                    + "height=\"\(num(panelHeight))\" fill=\"#2ca02c\" fill-opacity=\"0.15\"><title>\(esc(h.vm!)) memory pressure: detected at \(num(h.detectedAt)) s, "
                    + (h.resolvedAt.map { "resolved at \(num($0)) s by \(h.outcome)" } ?? "unresolved") + "</title></rect>")
                s.append("<text x=\"\(num(x(h.detectedAt) + 3))\" y=\"\(num(py + panelHeight - 6))\" fill=\"#1a6e1a\" font-size=\"10\">\(esc(h.vm!)) mem</text>")
            }
            // Grid: 0, 50, 100%.
            for g in [0.0, 0.5, 1.0] {
                s.append("<line x1=\"\(num(left))\" y1=\"\(num(y(g)))\" x2=\"\(num(left + plotWidth))\" y2=\"\(num(y(g)))\" stroke=\"#e0e0e0\"/>"
                    + "<text x=\"\(num(left - 4))\" y=\"\(num(y(g) + 4))\" text-anchor=\"end\" fill=\"#777777\">\(Int(g * 100))%</text>")
            }
            // Thresholds per interval: a host's threshold is the strictest SLA of the VMs on it, so it can step
            // when VMs move.
            if let th = r.timeline.last?.hosts[i].thresholds {
                func steps(_ value: (SimulationReport.Thresholds) -> Double) -> String {
                    var points: [String] = []
                    for (k, iv) in r.timeline.enumerated() {
                        let v = value(iv.hosts[i].thresholds)
                        if k > 0 { points.append("\(num(x(iv.time))),\(num(y(value(r.timeline[k - 1].hosts[i].thresholds))))") }
                        points.append("\(num(x(iv.time))),\(num(y(v)))")
                    }
                    return points.joined(separator: " ")
                }
                s.append("<polyline class=\"threshold\" points=\"\(steps(\.cpu))\" fill=\"none\" stroke=\"#d62728\" stroke-dasharray=\"2,2\"/>")
                s.append("<text x=\"\(num(left + plotWidth + 6))\" y=\"\(num(y(th.cpu) + 10))\" fill=\"#d62728\">cpu \(Int((th.cpu * 100).rounded()))%</text>")
                s.append("<polyline class=\"threshold-mem\" points=\"\(steps(\.mem))\" fill=\"none\" stroke=\"#2ca02c\" stroke-opacity=\"0.6\" stroke-dasharray=\"1,3\"/>")
                s.append("<text x=\"\(num(left + plotWidth + 6))\" y=\"\(num(y(th.mem) - 3))\" fill=\"#2ca02c\">mem \(Int((th.mem * 100).rounded()))%</text>")
            }
            if n > 0 {
                let cpu = r.timeline.map { "\(num(x($0.time))),\(num(y($0.hosts[i].cpu)))" }.joined(separator: " ")
                let mem = r.timeline.map { "\(num(x($0.time))),\(num(y($0.hosts[i].mem)))" }.joined(separator: " ")
                s.append("<polyline class=\"cpu\" points=\"\(cpu)\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\"/>")
                s.append("<polyline class=\"mem\" points=\"\(mem)\" fill=\"none\" stroke=\"#2ca02c\" stroke-width=\"1.5\" stroke-dasharray=\"5,3\"/>")
            }
            // Migration markers.
            var labels = 0
            for a in r.actions where a.kind == "migrate" && a.status == "done" && (a.from == host || a.to == host) {
                let leaving = a.from == host
                let mx = x(a.finishedAt)
                let label = leaving ? "\(a.vm) → \(a.to ?? "?")" : "\(a.vm) ← \(a.from ?? "?")"
                s.append("<g class=\"migration\"><title>\(esc(a.vm)) \(esc(a.from ?? "?")) → \(esc(a.to ?? "?")) "
                    + "(\(num(a.startedAt))–\(num(a.finishedAt)) s\(a.swapGroup != nil ? ", swap" : ""))</title>")
                s.append("<line x1=\"\(num(mx))\" y1=\"\(num(py))\" x2=\"\(num(mx))\" y2=\"\(num(py + panelHeight))\" stroke=\"#9467bd\" stroke-width=\"1\"/>")
                let ty = leaving ? py + 12 : py + panelHeight - 4
                s.append("<text x=\"\(num(mx))\" y=\"\(num(ty))\" text-anchor=\"middle\" fill=\"#9467bd\">\(leaving ? "▼" : "▲")</text>")
                // Labels on a white tag, staggered so close moves stay readable.
                let lx = mx + 5, ly = py + 14 + Double(labels % 4) * 14
                let w = Double(label.count) * 5.6 + 6
                s.append("<rect x=\"\(num(lx - 2))\" y=\"\(num(ly - 10))\" width=\"\(num(w))\" height=\"13\" fill=\"#ffffff\" fill-opacity=\"0.85\"/>")
                s.append("<text x=\"\(num(lx))\" y=\"\(num(ly))\" fill=\"#5b3a8c\" font-size=\"10\">\(esc(label))</text>")
                s.append("</g>")
                labels += 1
            }
            s.append("</g>")
        }
        // Time axis.
        let ay = top + Double(r.hosts.count) * (panelHeight + panelGap) + 8
        let step = niceStep(span)
        var t = (t0 / step).rounded(.up) * step
        s.append("<g id=\"time-axis\">")
        while t <= t1 + 1e-9 {
            s.append(timeTick(at: x(t), from: ay - 6, to: ay, labelY: ay + 12, label: "\(Int(t)) s"))
            t += step
        }
        s.append("</g>")
        s.append("</svg>")
        return s.joined(separator: "\n") + "\n"
    }

    static func niceStep(_ span: Double) -> Double {
        for s in [10.0, 20, 30, 60, 120, 300, 600, 1200, 3600, 7200, 14400, 21600, 43200] where span / s <= 12 { return s }
        return (span / 12).rounded(.up)
    }

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

extension SimulationSVG {
    /// `simulate --hosts-svg`: hosts powered on per interval (consolidation), one compact chart: the run's step line,
    /// the all-hosts-on line it is compared with, hosts above a threshold as red ticks, and the daily time axis.
    public static func hostsOn(_ r: SimulationReport) -> String {
        let w = 900.0, h = 232.0, left = 44.0, top = 56.0, plot = 130.0
        let t0 = r.timeline.first?.time ?? 0, t1 = r.timeline.last?.time ?? 0
        let span = max(t1 - t0, r.intervalSeconds)
        let total = Double(max(1, r.hosts.count))
        func x(_ t: Double) -> Double { left + (t - t0) / span * (w - left - 16) }
        func y(_ n: Double) -> Double { top + plot - n / total * plot }
        let all = total * Double(r.intervals) * r.intervalSeconds / 3600
        var s: [String] = []
        s.append("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>")
        s.append("<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"\(num(w))\" height=\"\(num(h))\" "
            + "viewBox=\"0 0 \(num(w)) \(num(h))\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\">")
        s.append("<title>sandpiper simulate \(esc(r.cluster)): hosts powered on</title>")
        s.append("<rect x=\"0\" y=\"0\" width=\"\(num(w))\" height=\"\(num(h))\" fill=\"#ffffff\"/>")
        s.append("<text x=\"\(num(left))\" y=\"20\" font-size=\"14\" font-weight=\"bold\">\(esc(r.cluster)): hosts powered on (\(esc(r.policy)))</text>")
        s.append("<text x=\"\(num(left))\" y=\"38\" fill=\"#333333\">\(String(format: "%.0f", r.hostHoursOn)) host-hours of \(String(format: "%.0f", all)) (\(String(format: "%.0f", (1 - r.hostHoursOn / max(all, 1e-9)) * 100))% saved); \(r.powerOffs) power-offs, \(r.powerOns) power-ons; \(String(format: "%.0f", r.hotspotSeconds)) host-seconds above a threshold</text>")
        s.append("<rect x=\"\(num(left))\" y=\"\(num(top))\" width=\"\(num(w - left - 16))\" height=\"\(num(plot))\" fill=\"#fafafa\" stroke=\"#cccccc\"/>")
        for g in [0.0, total / 2, total] {
            s.append("<line x1=\"\(num(left))\" y1=\"\(num(y(g)))\" x2=\"\(num(w - 16))\" y2=\"\(num(y(g)))\" stroke=\"#e0e0e0\"/>"
                + "<text x=\"\(num(left - 4))\" y=\"\(num(y(g) + 4))\" text-anchor=\"end\" fill=\"#777777\">\(Int(g))</text>")
        }
        s.append("<line class=\"all-on\" x1=\"\(num(left))\" y1=\"\(num(y(total)))\" x2=\"\(num(w - 16))\" y2=\"\(num(y(total)))\" stroke=\"#7f7f7f\" stroke-dasharray=\"4,3\"/>")
        s.append(hostsOnPolyline(r, x: x, y: y))
        for iv in r.timeline where (iv.hostsOver ?? 0) > 0 {
            s.append("<line class=\"over\" x1=\"\(num(x(iv.time)))\" y1=\"\(num(top + plot))\" x2=\"\(num(x(iv.time)))\" y2=\"\(num(top + plot - 8))\" stroke=\"#d62728\" stroke-width=\"2\"/>")
        }
        // Time axis in hours.
        let hours = span / 3600
        let step = hours > 24 ? 6.0 : hours > 6 ? 2.0 : 0.5
        var t = 0.0
        while t <= hours + 1e-9 {
            let tx = x(t0 + t * 3600)
            s.append(timeTick(at: tx, from: top + plot, to: top + plot + 5, labelY: top + plot + 17, label: "\(Units.trim(t)) h"))
            t += step
        }
        s.append("<text x=\"\(num(w - 16))\" y=\"\(num(h - 6))\" text-anchor=\"end\" fill=\"#555555\">orange: hosts on; dashed: all \(Int(total)) hosts; red ticks: a host above a threshold</text>")
        s.append("</svg>")
        return s.joined(separator: "\n") + "\n"
    }

    /// A coordinate with one decimal: SVG stays small and byte-stable.
    static func num(_ v: Double) -> String { String(format: "%.1f", v) }

    /// A tick on a time axis with its label below it.
    static func timeTick(at x: Double, from y0: Double, to y1: Double, labelY: Double, label: String) -> String {
        "<line x1=\"\(num(x))\" y1=\"\(num(y0))\" x2=\"\(num(x))\" y2=\"\(num(y1))\" stroke=\"#777777\"/>"
            + "<text x=\"\(num(x))\" y=\"\(num(labelY))\" text-anchor=\"middle\" fill=\"#555555\">\(label)</text>"
    }

    /// The number of hosts powered on over time, as a step line.
    static func hostsOnPolyline(_ r: SimulationReport, x: (Double) -> Double, y: (Double) -> Double) -> String {
        var points: [String] = []
        for (k, iv) in r.timeline.enumerated() {
            let on = Double(iv.hostsOn ?? r.hosts.count)
            if k > 0 { points.append("\(num(x(iv.time))),\(num(y(Double(r.timeline[k - 1].hostsOn ?? r.hosts.count))))") }
            points.append("\(num(x(iv.time))),\(num(y(on)))")
        }
        return "<polyline class=\"hosts-on\" points=\"\(points.joined(separator: " "))\" fill=\"none\" stroke=\"#ff7f0e\" stroke-width=\"2\"/>"
    }
}
