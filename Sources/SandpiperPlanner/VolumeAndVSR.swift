/// The paper's two rankings (NSDI'07 section 4.1), in one place.
///
/// Volume = 1 / ((1-cpu)(1-net)(1-mem)) of a host's utilization, or of a VM's demand relative to a host's capacity:
/// each utilization clamped to [0, 0.99] so it stays finite. Hot hosts are relieved in decreasing Volume, targets
/// tried in increasing Volume.
/// VSR = a VM's Volume / its RAM (MiB): the most load moved per byte copied, so the highest VSR moves first.
enum Volume {
    static let maxUtilization = 0.99

    static func of(_ u: Vec3) -> Double {
        func f(_ x: Double) -> Double { 1 - min(max(x, 0), maxUtilization) }
        return 1 / (f(u.cpu) * f(u.net) * f(u.mem))
    }

    /// Volume-to-size ratio of a VM with `demand` and `ramMiB` on a host of `capacity`.
    static func vsr(demand: Vec3, ramMiB: Double, capacity: Vec3) -> Double {
        of(demand.fraction(of: capacity)) / max(ramMiB, 1)
    }
}

extension Fleet {
    /// Host `h`'s utilization series over the detection window (sum of its residents' samples plus the host's own
    /// load outside its VMs, / capacity), newest samples aligned, as long as the longest window; nil when there
    /// are no samples.
    /// Detection (HotspotScan) and wake-ahead (ConsolidationStep) judge the same series.
    func hostSeries(_ h: Int) -> [Vec3]? {
        let n = policy.window.n
        var series = [Vec3](repeating: .zero, count: n)
        var len = 0
        for v in residents[h] {
            guard let o = observed(v) else { continue }
            let s = o.samples.suffix(n)
            len = max(len, s.count)
            var i = n - s.count
            for x in s { series[i] += Vec3(cpu: x.cpu, net: x.netMbps, mem: x.memMiB); i += 1 }
        }
        // The host's own load (hypervisor, host services), which stays on the host when VMs move.
        let own = hosts[h].overheadSamples.suffix(n)
        len = max(len, own.count)
        var i = n - own.count
        for x in own { series[i] += Vec3(cpu: x.cpu, net: x.netMbps, mem: x.memMiB); i += 1 }
        guard len > 0 else { return nil }
        return series[(n - len)...].map { $0.fraction(of: hosts[h].capacity) }
    }
}
