import SandpiperModel

/// Cost-benefit per move (issue 16 item 3), judged against `placement.migrationThreshold` (DRS's migration
/// threshold: 1 conservative ... 5 aggressive). Both sides are in seconds:
///
/// - **cost** = the time the move takes, weighted by the CPU it burns on both ends:
///   `copy = copyMiB x 8 / bandwidth` (memory plus local disk; `migration.bandwidth` when set, else
///   `defaultBandwidthMbps`); a busy VM dirties pages while they are copied, so pre-copy sends more than its
///   size: `time = copy / (1 - dirty)` with `dirty = min(maxDirty, dirtyPerBusy x busy)` (the geometric pre-copy
///   model of Clark et al., NSDI'05), where `busy` = the larger of the VM's CPU demand per vCPU and its network
///   demand per migration bandwidth (a proxy: the dirty rate itself is not observed);
///   `cost = time x (1 + migrationCPUCores / source cores + migrationCPUCores / target cores)`.
/// - **benefit** = how much the move relieves the source, for how long the relief matters:
///   `gain x max(0, duration - time)`, with `gain` the fractional Volume reduction of the source host and
///   `duration` how long the hotspot lasts per the AR prediction (the model fitted on the window run forward, one
///   sample interval a step, until it falls under the threshold, at most `horizonSamples` steps; the whole horizon when
///   prediction is off). A balance move's duration is the whole horizon (an imbalance does not end by itself).
///
/// A move is made when `benefit >= requiredRatio x cost` (Policy.Placement.requiredRatio: 4, 2, 1, 0.5, 0 for
/// levels 1 to 5). At level 5, the default, nothing is computed and every relieving move is made, as before.
struct CostBenefit: Sendable {
    /// Same default as `sandpiper simulate` (SimulationOptions.defaultBandwidthMbps): 1 Gbit/s.
    static let defaultBandwidthMbps = 1000.0
    /// CPU a running migration costs on each end (QEMU / dom0 copying pages); `simulate`'s default too.
    static let migrationCPUCores = 0.1
    /// A fully busy VM is taken to dirty half the bandwidth; never more than 90% (pre-copy would not converge).
    static let dirtyPerBusy = 0.5
    static let maxDirty = 0.9
    /// How far the AR forecast looks ahead: 30 sample intervals (5 minutes at 10 s, DRS's default cycle).
    static let horizonSamples = 30

    struct Verdict: Sendable {
        var cost: Double
        var benefit: Double
        var seconds: Double
        var dirty: Double
        var accepted: Bool
    }

    let required: Double
    let bandwidthMbps: Double
    let interval: Double
    let order: Int

    init(policy: Policy, intervalSeconds: Double) {
        required = policy.placement.requiredBenefitRatio
        bandwidthMbps = policy.migration.bandwidthMbps ?? Self.defaultBandwidthMbps
        interval = max(intervalSeconds, 1e-3)
        order = policy.prediction.model == .none ? 0 : max(0, policy.prediction.order)
    }

    /// Level 5: every relieving move passes and nothing is computed (plans stay as they were without the knob).
    var filters: Bool { required > 0 }

    /// How busy a VM is, 0...1: the larger of CPU demand per vCPU and network demand per migration bandwidth.
    func busy(_ vm: VMInfo) -> Double {
        let cpu = vm.vcpus > 0 ? vm.demand.cpu / vm.vcpus : 0
        let net = vm.demand.net / bandwidthMbps
        return min(1, max(0, max(cpu, net)))
    }

    /// Seconds the move of `vm` takes, and the dirty fraction assumed.
    func migrationSeconds(_ vm: VMInfo) -> (seconds: Double, dirty: Double) {
        let copy = vm.copyMiB * 8 / bandwidthMbps
        let dirty = min(Self.maxDirty, Self.dirtyPerBusy * busy(vm))
        return (copy / (1 - dirty), dirty)
    }

    func cost(_ vm: VMInfo, from source: HostInfo, to target: HostInfo) -> (cost: Double, seconds: Double, dirty: Double) {
        let (t, dirty) = migrationSeconds(vm)
        let cpu = Self.migrationCPUCores / max(source.capacity.cpu, 1e-9) + Self.migrationCPUCores / max(target.capacity.cpu, 1e-9)
        return (t * (1 + cpu), t, dirty)
    }

    /// The verdict on moves that take `seconds` in all (cost `cost`) and lower the source's Volume by `gain`
    /// for a hotspot (or imbalance) lasting `duration` seconds.
    func judge(cost: Double, seconds: Double, dirty: Double, gain: Double, duration: Double) -> Verdict {
        let benefit = max(0, gain) * max(0, duration - seconds)
        return Verdict(cost: cost, benefit: benefit, seconds: seconds, dirty: dirty,
                       accepted: benefit >= required * cost - 1e-9)
    }

    /// Seconds the hot resources of a host stay above their thresholds per the AR forecast: the model fitted once
    /// on the window, run forward a step at a time (each forecast feeding the next), until it falls under the
    /// threshold; the longest over `resources`. It decays towards the window mean: a hotspot whose window
    /// averages above the threshold lasts the horizon, a fresh spike on a lower base a few intervals. The whole horizon without prediction or samples.
    func hotspotDuration(series: [Vec3]?, resources: [ResourceKind], thresholds: ResolvedThresholds, window n: Int) -> Double {
        let horizon = Double(Self.horizonSamples) * interval
        guard order > 0, let series, !series.isEmpty else { return horizon }
        var longest = 0
        for r in resources {
            let window = series.map { $0[r] }.suffix(n)
            let (mean, a) = ARPredictor.fit(window, order: order)
            // Deviations from the mean, newest last; each forecast feeds the next (the standard AR forecast,
            // which decays towards the window mean).
            var dev = window.map { $0 - mean }
            var steps = 0
            while steps < Self.horizonSamples {
                var next = 0.0
                for j in a.indices { next += a[j] * dev[dev.count - 1 - j] }
                guard mean + next > thresholds[r] else { break }
                dev.append(next)
                steps += 1
            }
            longest = max(longest, steps)
        }
        return Double(longest) * interval
    }

    /// "db1 copies 64.0 GiB in 562 s (dirty 25%): cost 570 s > benefit 12 s (gain 30.0% over 40 s)"
    func describe(_ vm: VMInfo, _ v: Verdict, gain: Double, duration: Double) -> String {
        let rel = v.accepted ? ">=" : "<"
        return "\(vm.name) copies \(Fmt.mib(vm.copyMiB)) in \(Fmt.d(v.seconds, 0)) s (dirty \(Fmt.pct(v.dirty))): benefit \(Fmt.d(v.benefit, 1)) s (gain \(Fmt.pct(gain)) over \(Fmt.d(duration, 0)) s) \(rel) \(Fmt.d(required, 1)) x cost \(Fmt.d(v.cost, 1)) s"
    }
}

extension PlanningContext {
    var costBenefit: CostBenefit { CostBenefit(policy: fleet.policy, intervalSeconds: fleet.observation.intervalSeconds) }

    /// How long host `h`'s hotspot on `resources` lasts per the AR forecast (CostBenefit.hotspotDuration).
    func hotspotDuration(_ h: Int, resources: [ResourceKind]) -> Double {
        costBenefit.hotspotDuration(series: fleet.hostSeries(h), resources: resources,
                                    thresholds: state.thresholds[h], window: fleet.policy.window.n)
    }

    /// nil when the move of `v` from `h` to `t` is worth it at the policy's migration threshold, else why not.
    /// Always nil at level 5.
    func costExceedsBenefit(moving v: Int, from h: Int, to t: Int, gain: Double, duration: Double) -> String? {
        let cb = costBenefit
        guard cb.filters else { return nil }
        let vm = fleet.vms[v]
        let c = cb.cost(vm, from: fleet.hosts[h], to: fleet.hosts[t])
        let verdict = cb.judge(cost: c.cost, seconds: c.seconds, dirty: c.dirty, gain: gain, duration: duration)
        return verdict.accepted ? nil : "cost exceeds benefit at migrationThreshold \(fleet.policy.placement.migrationThreshold): " + cb.describe(vm, verdict, gain: gain, duration: duration)
    }
}

extension PlanningContext {
    /// A swap's cost is both moves' (a three-move swap's staging hop counted like `b`'s move back); its benefit
    /// the hot host's gain once both are done. nil when worth it (always at level 5).
    func swapCostExceedsBenefit(a: Int, b: Int, h: Int, t: Int, gain: Double, resources: [ResourceKind],
                                duration: inout Double?) -> String? {
        let cb = costBenefit
        guard cb.filters else { return nil }
        if duration == nil { duration = hotspotDuration(h, resources: resources) }
        let ca = cb.cost(fleet.vms[a], from: fleet.hosts[h], to: fleet.hosts[t])
        let cbb = cb.cost(fleet.vms[b], from: fleet.hosts[t], to: fleet.hosts[h])
        let verdict = cb.judge(cost: ca.cost + cbb.cost, seconds: ca.seconds + cbb.seconds,
                               dirty: max(ca.dirty, cbb.dirty), gain: gain, duration: duration!)
        guard !verdict.accepted else { return nil }
        return "cost exceeds benefit at migrationThreshold \(fleet.policy.placement.migrationThreshold): swap takes \(Fmt.d(verdict.seconds, 0)) s: benefit \(Fmt.d(verdict.benefit, 1)) s (gain \(Fmt.pct(gain)) over \(Fmt.d(duration!, 0)) s) < \(Fmt.d(cb.required, 1)) x cost \(Fmt.d(verdict.cost, 1)) s"
    }
}
