import SandpiperModel

/// Step 1 applied to the fleet: host series (sum of residents' samples / capacity, newest samples aligned) and
/// VM-level hotspots (demand at the VM's own allocation).
struct DetectionResult: Sendable {
    /// Confirmed hotspots, sorted by host, vm, resource.
    var hotspots: [Hotspot]
    /// Per host: confirmed hot resources.
    var hostHot: [[ResourceKind]]
    /// Per VM: confirmed hot resources against its own allocation.
    var vmHot: [Int: [ResourceKind]]
}

enum HotspotScan {
    /// A VM is at its CPU allocation when its demand exceeds this fraction of its ceiling (limit or vCPUs).
    static let vmCPUAtAllocation = 0.95

    static func run(fleet: Fleet, state: ProposedLoad) -> DetectionResult {
        let detector = HotspotDetector(policy: fleet.policy)
        let n = detector.window.n
        var hotspots: [Hotspot] = []
        var hostHot = [[ResourceKind]](repeating: [], count: fleet.hosts.count)
        var cpu = [Double](repeating: 0, count: n), net = cpu, mem = cpu
        for h in fleet.hosts.indices where fleet.hosts[h].status != .unknown {
            let residents = fleet.residents[h]
            if residents.isEmpty { continue }
            var len = 0
            for i in 0..<n { cpu[i] = 0; net[i] = 0; mem[i] = 0 }
            for v in residents {
                guard let o = fleet.observed(v) else { continue }
                let s = o.samples.suffix(n)
                len = max(len, s.count)
                var i = n - s.count
                for x in s { cpu[i] += x.cpu; net[i] += x.netMbps; mem[i] += x.memMiB; i += 1 }
            }
            // The host's own load, newest samples aligned with the VMs'.
            do {
                let s = fleet.hosts[h].overheadSamples.suffix(n)
                len = max(len, s.count)
                var i = n - s.count
                for x in s { cpu[i] += x.cpu; net[i] += x.netMbps; mem[i] += x.memMiB; i += 1 }
            }
            guard len > 0 else { continue }
            let cap = fleet.hosts[h].capacity
            let t = state.thresholds[h]
            for r in ResourceKind.allCases {
                let c = cap[r]
                guard c > 0 else { continue }
                let raw = r == .cpu ? cpu : r == .net ? net : mem
                let series = raw[(n - len)...].map { $0 / c }
                let j = detector.judge(series[...], threshold: t[r])
                if j.hot {
                    hostHot[h].append(r)
                    hotspots.append(Hotspot(host: fleet.hosts[h].name, resource: r, samplesOver: j.over,
                                            window: j.window, samples: series, predicted: j.predicted,
                                            threshold: t[r]))
                }
            }
        }

        var vmHot: [Int: [ResourceKind]] = [:]
        let mode = fleet.policy.profiling.mode
        let freeTarget = fleet.policy.profiling.guestFreeTargetMiB
        for v in fleet.vms.indices {
            guard let o = fleet.observed(v), fleet.vms[v].host >= 0, !o.samples.isEmpty else { continue }
            let hostName = fleet.hosts[fleet.vms[v].host].name
            let ceiling = Profiler.cpuCeiling(vcpus: o.vcpus, control: fleet.spec(of: v)?.resources.cpu)
            let w = o.samples.suffix(n)
            if ceiling > 0 {
                let series = w.map { $0.cpu / ceiling }
                let j = detector.judge(series[...], threshold: vmCPUAtAllocation)
                if j.hot {
                    vmHot[v, default: []].append(.cpu)
                    hotspots.append(Hotspot(host: hostName, vm: o.name, resource: .cpu, samplesOver: j.over,
                                            window: j.window, samples: series, predicted: j.predicted,
                                            threshold: vmCPUAtAllocation, trigger: .atAllocation))
                }
            }
            let flags: [Bool]
            switch mode {
            case .blackBox: flags = w.map { ($0.swapKbps ?? 0) > 0 }
            case .grayBox: flags = w.map { $0.guestFreeMiB.map { $0 < freeTarget } ?? (($0.swapKbps ?? 0) > 0) }
            }
            let j = detector.judge(flags: flags[...])
            if j.hot {
                vmHot[v, default: []].append(.mem)
                // Gray-box judges guest free memory where the guest reports it, else swapping.
                let byGuest = mode == .grayBox && w.contains { $0.guestFreeMiB != nil }
                hotspots.append(Hotspot(host: hostName, vm: o.name, resource: .mem, samplesOver: j.over,
                                        window: j.window, samples: w.map { $0.memMiB / max(o.memoryMiB, 1) },
                                        predicted: nil, threshold: 1, trigger: byGuest ? .guestFree : .swapping,
                                        targetMiB: byGuest ? freeTarget : nil))
            }
        }
        hotspots.sort { a, b in
            if a.host != b.host { return a.host < b.host }
            if (a.vm ?? "") != (b.vm ?? "") { return (a.vm ?? "") < (b.vm ?? "") }
            return a.resource < b.resource
        }
        return DetectionResult(hotspots: hotspots, hostHot: hostHot, vmHot: vmHot)
    }
}
