import SandpiperModel

/// Human output for a plan, read only from the JSON contract (`PlanDocument`), like Terraform's renderer:
/// `plan` and `show plan.json` print the same text. A summary line, one line per action with its reason,
/// and the hosts before -> after.
public struct PlanRenderer {
    public var color: Bool
    public init(color: Bool = false) { self.color = color }

    public func render(_ doc: PlanDocument) -> String {
        var out: [String] = []
        let title = "Sandpiper plan \(doc.id ?? "(unsaved)")" + (doc.cluster.map { " for cluster \($0)" } ?? "")
        out.append(bold(title))
        if let b = doc.basedOn {
            var based = "  based on spec \(b.specDigest.prefix(12)), policy \(b.policyDigest.prefix(12)), "
                + "inventory \(b.inventoryDigest.prefix(12))"
            if let serial = b.stateSerial { based += ", state serial \(serial)" }
            if let commit = b.specCommit { based += ", commit \(commit.prefix(12))" }
            out.append(dim(based))
        }
        out.append("")

        if !doc.hotspots.isEmpty {
            out.append(bold("Hotspots:"))
            for h in doc.hotspots { out.append("  " + hotspotLine(h)) }
            out.append("")
        }

        if doc.actions.isEmpty && doc.unresolved.isEmpty && doc.hotspots.isEmpty {
            out.append(green("No changes.") + " The fleet matches the spec and no host is hot.")
        } else if doc.actions.isEmpty {
            let n = doc.unresolved.count
            out.append(yellow("No action possible.") + " \(n) problem\(n == 1 ? "" : "s") cannot be fixed by a move "
                + "(see Unresolved below); `plan --detailed-exitcode` exits 0 since there is nothing to apply.")
        } else {
            out.append(bold("Actions:"))
            for a in doc.actions {
                out.append("  " + symbol(a.kind) + " " + headline(a))
                out.append(dim("      " + a.reason))
            }
        }
        out.append("")

        if !doc.unresolved.isEmpty {
            out.append(bold("Unresolved:"))
            for u in doc.unresolved {
                let subject = [u.vm, u.host].compactMap { $0 }.joined(separator: " on ")
                let res = u.resources.isEmpty ? "" : " (\(u.resources.joined(separator: ", ")))"
                out.append("  \(yellow("?")) \(subject)\(res): \(u.reason)")
            }
            out.append("")
        }
        if !doc.drift.isEmpty {
            out.append(bold("Drift:"))
            for d in doc.drift { out.append("  \(yellow("~")) \(d.message)") }
            out.append("")
        }

        if !doc.hostsBefore.isEmpty {
            out.append(bold("Hosts (cpu / net / mem, volume)") + "        before  ->  after")
            let after = Dictionary(doc.hostsAfter.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            let width = max(4, doc.hostsBefore.map(\.name.count).max() ?? 4)
            for h in doc.hostsBefore {
                let name = h.name.padding(toLength: width, withPad: " ", startingAt: 0)
                guard h.status != "unknown" else {
                    out.append("  \(name)  unknown (not reachable; its VMs are left alone)")
                    continue
                }
                var line = "  \(name)  \(usage(h))"
                if let a = after[h.name], a != h { line += "  ->  \(usage(a))" }
                if h.status == "maintenance" { line += "  [maintenance]" }
                if h.status == "standby" { line += after[h.name]?.status == "up" ? "  [standby -> powered on]" : "  [standby]" }
                else if after[h.name]?.status == "standby" { line += "  [-> standby]" }
                out.append(line)
            }
            out.append("")
        }

        let s = doc.summary
        out.append(bold("Plan:") + " \(s.add) to add, \(s.change) to change, \(s.move) to move, \(s.remove) to remove."
            + (s.power.map { " \($0) host power action\($0 == 1 ? "" : "s")." } ?? "")
            + " \(s.hotspots) hotspot\(s.hotspots == 1 ? "" : "s"), \(s.unresolved) unresolved.")
        return out.joined(separator: "\n")
    }

    /// One hotspot, named by what triggered it (a VM under memory pressure is not "over 100%").
    public func hotspotLine(_ h: PlanDocument.HotspotEntry) -> String {
        let subject = h.vm.map { "\($0) on \(h.host)" } ?? h.host
        switch h.trigger {
        case Hotspot.Trigger.swapping.rawValue?:
            return "\(red("!")) \(subject) memory pressure: swapping in \(h.over) samples"
        case Hotspot.Trigger.guestFree.rawValue?:
            let target = h.targetMiB.map { " \(Units.formatMiB($0))" } ?? ""
            return "\(red("!")) \(subject) memory pressure: guest free memory under its target\(target) in \(h.over) samples"
        case Hotspot.Trigger.atAllocation.rawValue?:
            let last = h.samples.last.map { pct($0) } ?? "-"
            return "\(yellow("i")) \(subject) \(h.resource) at its allocation: \(h.over) samples at or above "
                + "\(pct(h.threshold)) of it (last \(last)); a notice, not a hotspot"
        default:
            let last = h.samples.last.map { pct($0) } ?? "-"
            var line = "\(red("!")) \(subject) \(h.resource): \(h.over) samples over \(pct(h.threshold)) (last \(last)"
            if let p = h.predicted { line += ", predicted \(pct(p))" }
            return line + ")"
        }
    }

    public func headline(_ a: PlanDocument.Action) -> String {
        let p = a.parameters
        switch a.kind {
        case .migrate:
            let group = a.swapGroup.map { " [swap \($0)]" } ?? ""
            return "migrate \(a.vm)  \(a.from ?? "?") -> \(a.to ?? "?") (\((a.mode ?? .live).rawValue))\(group)"
        case .define:
            var s = "define \(a.vm) on \(a.to ?? "?")"
            if let v = p.vcpus { s += ", \(v) vCPUs" }
            if let m = p.memoryMiB { s += ", \(Units.formatMiB(m))" }
            return s
        case .start: return "start \(a.vm) on \(a.to ?? a.from ?? "?")"
        case .resize:
            var parts: [String] = []
            if let v = p.vcpus { parts.append("vCPUs \(v)") }
            if let m = p.memoryMiB { parts.append("memory \(Units.formatMiB(m))") }
            return "resize \(a.vm) on \(a.from ?? "?"): " + parts.joined(separator: ", ")
        case .tune:
            var parts: [String] = []
            if let s = p.cpuShares { parts.append("cpu shares \(s)") }
            if let q = p.cpuQuotaMicros {
                parts.append(q < 0 ? "cpu quota unlimited" : "cpu quota \(q)/\(p.cpuPeriodMicros ?? 100_000)us")
            }
            if let b = p.balloonMiB { parts.append("balloon \(Units.formatMiB(b))") }
            if let h = p.memoryHardLimitMiB { parts.append("mem hard \(Units.formatMiB(h))") }
            if let s = p.memorySoftLimitMiB { parts.append("mem soft \(Units.formatMiB(s))") }
            return "tune \(a.vm) on \(a.from ?? "?"): " + parts.joined(separator: ", ")
        case .drain: return "drain \(a.host ?? "?")"
        case .powerOff: return "power-off \(a.host ?? "?") (standby)"
        case .powerOn: return "power-on \(a.host ?? "?")"
        case .stop, .undefine:
            return "\(a.kind.rawValue) \(a.vm) on \(a.from ?? a.to ?? "?")"
        }
    }

    func usage(_ h: PlanDocument.Host) -> String {
        func part(_ value: Double, _ resource: String) -> String {
            let text = pct(value).leftPad(6)
            return h.hot.contains(resource) ? red(text) : text
        }
        return "\(part(h.cpu, "cpu")) \(part(h.net, "net")) \(part(h.mem, "mem"))  \(Units.trim(h.volume).leftPad(5))"
    }

    func symbol(_ kind: ActionKind) -> String {
        switch kind {
        case .define, .start, .powerOn: green(kind.symbol)
        case .drain, .tune, .resize: yellow(kind.symbol)
        case .migrate: cyan(kind.symbol)
        case .stop, .undefine, .powerOff: red(kind.symbol)
        }
    }

    func pct(_ x: Double) -> String {
        let tenths = (x * 1000).rounded() / 10
        return Units.trim(tenths) + (tenths == tenths.rounded() ? ".0%" : "%")
    }

    private func wrap(_ s: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }
    func bold(_ s: String) -> String { wrap(s, "1") }
    func dim(_ s: String) -> String { wrap(s, "2") }
    func red(_ s: String) -> String { wrap(s, "31") }
    func green(_ s: String) -> String { wrap(s, "32") }
    func yellow(_ s: String) -> String { wrap(s, "33") }
    func cyan(_ s: String) -> String { wrap(s, "36") }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
