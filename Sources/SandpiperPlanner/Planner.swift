import SandpiperModel

public struct PlanOptions: Sendable, Equatable {
    /// Stop and undefine running VMs that the spec does not declare.
    public var prune: Bool
    /// At most this many hosts are examined per placement decision, lowest Volume first (Nomad's limit
    /// iterator), plus the hosts with the most room per resource; reported in the decision's diagnostics when it
    /// cuts a scan short. A VM that no host has room for is rejected without a scan ("exhausted cpu").
    public var scanLimit: Int
    /// VMs of one hot host tried as migration candidates (highest VSR first) before falling back to swaps.
    public var maxCandidatesPerHost: Int
    /// Step 5b (ImprovementPass, ExactSearch) on small neighbourhoods; off = the paper's greedy alone (benchmarks
    /// compare the two).
    public var improve: Bool
    /// Node budget of step 5b's exact search per plan (a count, so the plan does not depend on the machine).
    public var exactSearchNodes: Int

    public init(prune: Bool = false, scanLimit: Int = 256, maxCandidatesPerHost: Int = 16, improve: Bool = true,
                exactSearchNodes: Int = 20_000) {
        self.prune = prune; self.scanLimit = scanLimit; self.maxCandidatesPerHost = maxCandidatesPerHost
        self.improve = improve; self.exactSearchNodes = exactSearchNodes
    }
}

/// The planner: a pure, deterministic function of (spec, observation, policy). No I/O, no clock, no randomness.
public enum Planner {
    /// The pipeline of DESIGN.md section 1, in order:
    ///  1. index the fleet and profile every VM once          (Fleet, Profiler: percentile + headroom)
    ///  2. detect hotspots: k of n, confirmed by AR(p)        (HotspotScan, HotspotDetector)
    ///  3. drift: absent, undeclared, not running, unknown     (DriftStep)
    ///  4. repair broken must-rules, evacuate maintenance      (RepairStep)
    ///  5. relieve hot hosts, highest Volume first             (MitigationStep: move highest VSR -> lowest Volume,
    ///                                                          else swap, 2 or 3 moves)
    ///  5b. fewer migrations for the same relief          (ImprovementPass: net moves, unneeded ones dropped;
    ///      on small neighbourhoods                        ExactSearch: branch and bound for the fewest moves)
    ///  6. place declared VMs that are absent                  (InitialPlacementStep; after 5 so new VMs do not
    ///                                                          take the room hot hosts need)
    ///  7. consolidation (policy.consolidation.enabled):      (ConsolidationStep: wake ahead of a rising load,
    ///     else empty sustained-low hosts onto others           else empty low hosts, lowest Volume / least RAM
    ///     under targetUtilization and power them off)           first, and power them off)
    /// 7b. balancing (policy.balance.enabled), calm plans only: (BalanceStep: most -> least loaded host while the
    ///     dominant resource's spread exceeds maxSpread;       each move narrows the gap and passes cost-benefit)
    ///  8. prune undeclared VMs when asked                     (DriftStep.prune)
    ///  9. allocations on the final placement                  (AllocationStep: entitlements, tune, resize)
    /// Every placement goes through one PlacementSearch: FeasibleHosts -> VolumeRank -> SoftRules -> Select,
    /// against the ProposedLoad built so far.
    public static func plan(spec: ClusterSpec, observation: Observation, policy: Policy,
                            options: PlanOptions = PlanOptions()) -> Plan {
        plan(spec: spec, observation: observation, policy: policy, options: options, onStep: { _ in })
    }

    /// `plan`, reporting each step of the pipeline as it finishes (a benchmark times the steps with its own
    /// clock; the planner reads none). The plan is the same with or without an observer.
    public static func plan(spec: ClusterSpec, observation: Observation, policy: Policy, options: PlanOptions,
                            onStep finished: (PlanStep) -> Void) -> Plan {
        let fleet = Fleet(spec: spec, observation: observation, policy: policy)
        var ctx = PlanningContext(fleet: fleet, options: options)
        finished(.index)
        let detection = HotspotScan.run(fleet: fleet, state: ctx.state)
        let before = ctx.hostUtilization(detected: detection.hostHot)
        finished(.detect)

        ctx.reportDrift(); finished(.drift)
        ctx.repairConstraints(); finished(.repair)
        let beforeRelief = ctx.reliefSnapshot(detection)
        ctx.relieveHotspots(detection)
        ctx.improveRelief(detection, before: beforeRelief); finished(.relieve)
        ctx.placeAbsentVMs(); finished(.placeAbsent)
        ctx.consolidate(detection); finished(.consolidate)
        ctx.balance(detection); finished(.balance)
        if options.prune { ctx.pruneUndeclared(); finished(.prune) }
        ctx.allocate(detection); finished(.allocate)

        let after = ctx.hostUtilization(detected: detection.hostHot, before: before)
        let plan = Plan(actions: ctx.builder.build(), hostsBefore: before, hostsAfter: ctx.powerStatus(after),
                        hotspots: detection.hotspots, unresolved: ctx.unresolved, drift: ctx.drift,
                        decisions: ctx.decisions, entitlements: ctx.entitlements)
        finished(.build)
        return plan
    }
}

/// The steps of `Planner.plan`, in the order they run (numbered as in the pipeline comment above; `build`
/// orders the actions and computes the after column).
public enum PlanStep: String, Sendable, CaseIterable {
    case index, detect, drift, repair, relieve, placeAbsent = "place-absent", consolidate, balance, prune, allocate, build
}

extension Planner {
    /// The hosts as a plan's `hostsBefore` shows them (utilization of the VMs' profiles, hot resources), without
    /// planning: the engine uses it to record when hosts became low (`HostObservation.lowSince`) before it plans.
    public static func hostsBefore(spec: ClusterSpec, observation: Observation, policy: Policy) -> [HostUtilization] {
        let fleet = Fleet(spec: spec, observation: observation, policy: policy)
        let ctx = PlanningContext(fleet: fleet, options: PlanOptions())
        let detection = HotspotScan.run(fleet: fleet, state: ctx.state)
        return ctx.hostUtilization(detected: detection.hostHot)
    }
}

/// Mutable working set shared by the steps (each step lives in its own file as an extension).
struct PlanningContext: Sendable {
    let fleet: Fleet
    let options: PlanOptions
    let search: PlacementSearch
    var state: ProposedLoad
    var builder: ActionBuilder
    var budget: Int
    var unresolved: [UnresolvedHotspot] = []
    var drift: [DriftNote] = []
    var decisions: [PlacementDiagnostics] = []
    var entitlements: [Entitlement] = []
    /// VMs this plan already moves or defines: never moved again in the same plan (no ping-pong, no swap partner).
    var touched: [Bool]
    /// Rejections of hosts that never enter a scan (unknown, maintenance, undeclared), counted once.
    let staticCounts: [String: Int]

    init(fleet: Fleet, options: PlanOptions) {
        self.fleet = fleet; self.options = options
        search = PlacementSearch(fleet: fleet, scanLimit: options.scanLimit)
        state = ProposedLoad(fleet: fleet)
        builder = ActionBuilder(maxConcurrentPerHost: fleet.policy.placement.maxConcurrentPerHost,
                                hostNames: fleet.hosts.map(\.name))
        budget = max(0, fleet.policy.placement.maxMigrationsPerRun)
        touched = [Bool](repeating: false, count: fleet.vms.count)
        var counts: [String: Int] = [:]
        for h in fleet.hosts where h.eligible && !h.schedulable { counts["unschedulable", default: 0] += 1 }
        for h in fleet.hosts where !h.eligible {
            switch h.status {
            case .unknown: counts["host unknown", default: 0] += 1
            case .maintenance: counts["maintenance", default: 0] += 1
            case .standby: counts["standby", default: 0] += 1
            case .up: counts["undeclared host", default: 0] += 1
            }
        }
        staticCounts = counts
    }

    func hostName(_ h: Int) -> String { fleet.hosts[h].name }

    /// hostsBefore: `hot` = the resources detection confirmed.
    /// hostsAfter (`before` given): `hot` = confirmed resources whose projection is still above the threshold,
    /// plus any resource the plan pushed above its threshold (never expected: every target is fit-checked).
    /// A host whose profile sits above a threshold that detection did not confirm (a spike inflating the
    /// percentile) is not called hot in either column.
    func hostUtilization(detected: [[ResourceKind]], before: [HostUtilization]? = nil) -> [HostUtilization] {
        fleet.hosts.indices.map { h in
            let u = state.utilization(h, fleet: fleet)
            let known = fleet.hosts[h].status != .unknown
            var hot: [ResourceKind] = []
            if known {
                if let b = before?[h] {
                    hot = state.over(h, fleet: fleet).filter { r in
                        detected[h].contains(r) || u[r] > b.utilization(r) + 1e-9
                    }
                } else {
                    hot = detected[h]
                }
            }
            return HostUtilization(
                name: fleet.hosts[h].name, status: fleet.hosts[h].status,
                cpu: known ? u.cpu : 0, net: known ? u.net : 0, mem: known ? u.mem : 0,
                volume: known ? state.volume[h] : 1, hot: hot,
                thresholds: state.thresholds[h], vmCount: state.members[h].count)
        }
    }

    /// Live unless the VM's SLA asks for cold migration.
    func mode(_ v: Int) -> MoveMode { fleet.vms[v].migration == .cold ? .cold : .live }

    func slaName(_ v: Int) -> String { fleet.spec(of: v)?.sla ?? "default" }

    /// "cpu 62.0%, net 10.0%, mem 40.0%"
    func describe(_ h: Int) -> String {
        let u = state.utilization(h, fleet: fleet)
        return "cpu \(Fmt.pct(u.cpu)), net \(Fmt.pct(u.net)), mem \(Fmt.pct(u.mem)), volume \(Fmt.d(state.volume[h], 3))"
    }
}
