import Foundation
import Synchronization
import SandpiperLibvirt
import SandpiperModel
import SandpiperRedaction

/// What happened to each action of an apply, as data: callers (the CLI, the simulator, reconcile) decide on these
/// fields, never on the display text in `summary` or `detail`.
public struct ApplyReport: Sendable, Equatable {
    public struct Outcome: Sendable, Equatable {
        public var actionID: String
        public var kind: ActionKind
        /// For humans only.
        public var summary: String
        public var status: JournalEntry.Status
        /// For humans only (an error, or a note such as "already on pm2").
        public var detail: String?
        /// Host power commands: what they printed (truncated), journaled.
        public var output: String? = nil
        /// Migrations that ran: how the VM really moved (live, or cold where the driver cannot move it live).
        public var mode: MoveMode? = nil
        /// The dependency wave the action ran in (1 = first); 0 for an action skipped before any wave ran it.
        /// Actions of one wave run concurrently; a wave starts when the previous one has finished.
        public var wave: Int = 0
        /// On the applier's clock: when the action started and finished (equal for a skipped one).
        public var startedAt: Double = 0
        public var finishedAt: Double = 0
        /// Host power actions: the host's power state as known after the action (true = on), failed or not.
        var powered: (host: String, on: Bool)? = nil

        public static func == (a: Outcome, b: Outcome) -> Bool {
            a.actionID == b.actionID && a.kind == b.kind && a.summary == b.summary && a.status == b.status
                && a.detail == b.detail && a.output == b.output && a.mode == b.mode && a.wave == b.wave
                && a.startedAt == b.startedAt && a.finishedAt == b.finishedAt
                && a.powered?.host == b.powered?.host && a.powered?.on == b.powered?.on
        }
    }
    public var planID: String
    public var outcomes: [Outcome]
    public var succeeded: Bool { !outcomes.contains { $0.status == .failed } }
    public var done: Int { outcomes.filter { $0.status == .done }.count }
}

/// How an `Applier` runs: fixed for its lifetime (the CLI, reconcile and the simulator each build one).
public struct ApplyOptions {
    /// Called before each action with (index, total, summary) for progress output.
    public var onStart: ((Int, Int, String) -> Void)?
    /// Called after each action with its outcome.
    public var onFinish: ((ApplyReport.Outcome) -> Void)?
    /// Clock for journal timestamps and outcome timings; injectable so tests can pin it.
    public var clock: @Sendable () -> Double = { Date().timeIntervalSince1970 }
    /// The observation clock (trace time for replayed clusters, Unix time for live ones): moved VMs get
    /// `lastMovedAt` on this clock so minimum residency compares like with like. nil = `clock`.
    public var observationNow: Double?
    /// Pause after journaling a wave as started and after each outcome (crash-safety tests kill the process there).
    public var pauseAfterStart: Duration = .zero
    /// False keeps the state in memory only (`sandpiper simulate`): the journal and inventory are updated as
    /// usual but state.json is never written.
    public var persistState = true
    /// False in `simulate`: host power actions change the recorded power state without running any command.
    public var runsPowerCommands = true
    /// Most actions run at once in one wave.
    public var maxParallel = 8
    /// Asked before each wave: true = start no further action (`sandpiper run` stopping on SIGTERM). The actions
    /// left are journalled as skipped, so the state says exactly what ran; the wave in flight always finishes.
    public var shouldStop: (() -> Bool)?
    /// How actions reach a host; nil = the fleet connections. Tests wrap real connections to inject failures.
    public var host: (@Sendable (String) -> (any FleetHost)?)?

    public init(onStart: ((Int, Int, String) -> Void)? = nil, onFinish: ((ApplyReport.Outcome) -> Void)? = nil,
                observationNow: Double? = nil) {
        self.onStart = onStart; self.onFinish = onFinish; self.observationNow = observationNow
    }
}

/// Executes a plan through libvirt (Terraform's apply): refuses a stale plan, runs actions in dependency order,
/// journals each one in state.json before and after it runs, and leaves the state file true to the fleet —
/// after a failure or a crash, the next plan starts from what really happened.
///
/// Concurrency: `state`, the journal and the callbacks are touched only on the calling thread; the actions of one
/// wave run concurrently in `execute`, which reads only `cluster` and `connections` (both thread-safe).
public final class Applier: @unchecked Sendable {
    public let cluster: LoadedCluster
    public let connections: FleetConnections
    public let stateFile: StateFile
    public let options: ApplyOptions
    public private(set) var state: StateDocument
    private let host: @Sendable (String) -> (any FleetHost)?
    /// The spec's VMs and hosts by name (the first of a name, as `ClusterSpec.vm(named:)` finds it): a plan of
    /// thousands of actions looks each one up, and a linear search over 20,000 VMs per lookup adds up.
    private let vmSpecs: [String: VMSpec]
    private let hostSpecs: [String: HostSpec]

    private func pauseForTests() {
        guard options.pauseAfterStart > .zero else { return }
        Thread.sleep(forTimeInterval: options.pauseAfterStart / .seconds(1))
    }

    public init(cluster: LoadedCluster, connections: FleetConnections, state: StateDocument?,
                options: ApplyOptions = ApplyOptions()) {
        self.cluster = cluster
        self.connections = connections
        self.options = options
        host = options.host ?? { [connections] name in connections.connection(name) }
        self.stateFile = StateFile(directory: cluster.directory)
        self.state = state ?? StateDocument(cluster: cluster.spec.name)
        vmSpecs = Dictionary(cluster.spec.vms.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        hostSpecs = Dictionary(cluster.spec.hosts.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    private var clock: Double { options.clock() }

    /// Why `document` no longer describes the fleet, or [] when it is fresh. Observes the inventory (not samples:
    /// utilization moves all the time and is re-checked per action instead).
    public func staleness(of document: PlanDocument, stateBefore: StateDocument?) -> [String] {
        var reasons: [String] = []
        guard let based = document.basedOn else { return ["the plan does not record what it was based on"] }
        if let planned = document.cluster, planned != cluster.spec.name {
            reasons.append("the plan is for cluster \(planned), not \(cluster.spec.name)")
        }
        if based.specDigest != cluster.specDigest { reasons.append("cluster.yaml changed since the plan was made") }
        if based.policyDigest != cluster.policyDigest { reasons.append("policy \(cluster.spec.policy) changed") }
        switch (based.stateLineage, stateBefore?.lineage) {
        case (nil, let now?):
            reasons.append("state.json was created (lineage \(now)) after the plan was made")
        case (let then?, nil):
            reasons.append("state.json of lineage \(then) is gone")
        case (let then?, let now?) where then != now:
            reasons.append("state.json belongs to another lineage (\(now), the plan's is \(then))")
        default:
            if based.stateSerial != stateBefore?.serial {
                let already = stateBefore?.lastPlan?.id == document.id ? "; this plan was already applied" : ""
                reasons.append("state.json changed (serial \(based.stateSerial.map(String.init) ?? "none") -> "
                    + "\(stateBefore.map { String($0.serial) } ?? "none"))\(already)")
            }
        }
        let inventory = connections.inventory(previous: stateBefore?.inventory, now: clock)
        // A host that stopped answering since the plan still holds the VMs the state last saw there: compare
        // with those (as `StateDocument.record` keeps them), so an unrelated outage does not make every plan stale.
        let digest = Engine.inventoryDigest(Observation(inventory: inventory, samples: [:], now: 0, intervalSeconds: 0),
                                            state: stateBefore)
        // A host that does not answer makes the plan stale only if an action needs it; then the inventory
        // check below cannot vouch for it either.
        let needed = Set(document.actions.flatMap { [$0.from, $0.to, $0.host].compactMap { $0 } })
        let down = inventory.unknownHosts.filter { needed.contains($0.name) }
        for host in down {
            if case .unknown(let why) = host.status { reasons.append("host \(host.name) is unreachable (\(why))") }
        }
        if down.isEmpty && digest != based.inventoryDigest {
            reasons.append("the fleet changed: VMs moved, resized, started or stopped since the plan was made")
        }
        // Power: a host powered off or on since the plan was made (consolidation) changes what the plan may use.
        let now = Dictionary(inventory.hosts.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for h in document.hostsBefore where h.status == "up" || h.status == "standby" {
            guard let current = now[h.name], current.isUp || current.isStandby else { continue }
            let status = current.isStandby ? "standby" : "up"
            if status != h.status { reasons.append("host \(h.name) was \(h.status) when planned and is \(status) now") }
        }
        return reasons
    }

    /// Why `document` cannot be applied at all, whatever the fleet looks like: an action that names a host or a
    /// declared VM the spec does not have, lacks what its kind needs, or depends on an action that is not before it
    /// in the plan. Checked before anything runs (a hand-edited or damaged plan fails whole, not half-way).
    public func refusals(_ document: PlanDocument) -> [String] {
        var problems: [String] = []
        var seen = Set<String>()
        for a in document.actions {
            let what = "action \(a.id) (\(a.kind.rawValue))"
            if seen.contains(a.id) { problems.append("\(what): the id is used twice") }
            for d in a.dependsOn where !seen.contains(d) {
                problems.append("\(what): depends on action \(d), which does not come before it in the plan")
            }
            seen.insert(a.id)
            func needHost(_ name: String?, _ field: String) {
                guard let name else { problems.append("\(what): no \(field) host"); return }
                if hostSpecs[name] == nil {
                    problems.append("\(what): \(field) host \(name) is not in cluster \(cluster.spec.name)")
                }
            }
            if a.kind.isHostAction {
                needHost(a.host, "its")
                continue
            }
            if a.vm.isEmpty { problems.append("\(what): names no VM"); continue }
            switch a.kind {
            case .define: needHost(a.to, "target")
            case .start: needHost(a.to ?? a.from, "its")
            case .migrate:
                needHost(a.from, "source"); needHost(a.to, "target")
                if a.mode == nil { problems.append("\(what): no mode (live or cold)") }
            case .tune, .resize, .stop, .undefine: needHost(a.from, "its")
            case .drain, .powerOff, .powerOn: break
            }
            // Only undeclared VMs are what prune stops and undefines; every other VM action needs its spec.
            if a.kind != .stop, a.kind != .undefine, vmSpecs[a.vm] == nil {
                problems.append("\(what): \(a.vm) is not declared in cluster.yaml")
            }
        }
        return problems
    }

    /// Runs every action of `document` (which must be fresh). Throws when the plan cannot be applied at all
    /// (`refusals`, power actions the policy denies: nothing runs) or when the state file cannot be written;
    /// action failures are in the report (and the journal).
    /// `observationNow` overrides the options' observation clock for this apply (the simulator's trace time).
    public func apply(_ document: PlanDocument, observationNow: Double? = nil) throws(EngineError) -> ApplyReport {
        let planID = document.id ?? Engine.planID(document)
        let problems = refusals(document)
        if !problems.isEmpty {
            throw .apply("plan \(planID) cannot be applied: " + problems.joined(separator: "; ")
                + "; nothing was applied. Make a new plan with `sandpiper plan`")
        }
        // Refuse up front, before a single VM moves, a plan whose power actions the policy would refuse at the
        // end (consolidation would empty a host and then leave it on).
        let power = document.actions.filter { $0.kind == .powerOn || $0.kind == .powerOff }
        if options.runsPowerCommands, !power.isEmpty, cluster.policy.consolidation.powerCommands != .allow {
            throw .apply("the plan has \(power.count) host power action\(power.count == 1 ? "" : "s") "
                + "(\(power.compactMap(\.host).joined(separator: ", "))) but policy \(cluster.policy.name) does not allow power "
                + "commands (consolidation.powerCommands: deny); nothing was applied. Allow them, or power the hosts "
                + "by hand and plan again")
        }
        var report = ApplyReport(planID: planID, outcomes: [])
        state.lastPlan = .init(id: planID, status: "applying")
        try save()

        // Waves: every action whose dependencies are done runs in the current wave, in parallel (the planner's
        // dependencies already cap migrations per host at maxConcurrentPerHost). A VM appears at most once per
        // wave, so its tune and its migration never race.
        var status: [String: JournalEntry.Status] = [:]
        var pending = document.actions
        var started = 0
        var waveNumber = 0
        var stopped = false
        func skipped(_ action: PlanDocument.Action, _ why: String) -> ApplyReport.Outcome {
            let now = clock
            return ApplyReport.Outcome(actionID: action.id, kind: action.kind, summary: PlanRenderer().headline(action),
                                       status: .skipped, detail: why, startedAt: now, finishedAt: now)
        }
        while !pending.isEmpty {
            if options.shouldStop?() == true {
                stopped = true
                for action in pending {
                    started += 1
                    options.onStart?(started, document.actions.count, PlanRenderer().headline(action))
                    status[action.id] = .skipped
                    try record(skipped(action, "not started: the controller is stopping"), planID: planID, report: &report)
                }
                break
            }
            var wave: [PlanDocument.Action] = []
            var waiting: [PlanDocument.Action] = []
            var vmsInWave = Set<String>()
            for action in pending {
                if let blocker = action.dependsOn.first(where: { status[$0] == .failed || status[$0] == .skipped }) {
                    started += 1
                    options.onStart?(started, document.actions.count, PlanRenderer().headline(action))
                    status[action.id] = .skipped
                    try record(skipped(action, "depends on action \(blocker), which did not complete"),
                               planID: planID, report: &report)
                } else if action.dependsOn.allSatisfy({ status[$0] == .done }), wave.count < options.maxParallel,
                          !vmsInWave.contains(Self.subject(action)) {
                    wave.append(action)
                    vmsInWave.insert(Self.subject(action))
                } else {
                    waiting.append(action)
                }
            }
            if wave.isEmpty {
                // Cannot happen for a plan that passed `refusals` (dependencies come first); kept as a guard.
                for action in waiting {
                    status[action.id] = .skipped
                    try record(skipped(action, "its dependencies are not in the plan"), planID: planID, report: &report)
                }
                break
            }
            waveNumber += 1
            for action in wave {
                started += 1
                options.onStart?(started, document.actions.count, PlanRenderer().headline(action))
                try journal(JournalEntry(planID: planID, actionID: action.id, summary: PlanRenderer().headline(action),
                                         status: .started, at: clock))
            }
            pauseForTests()
            let outcomes = run(wave, number: waveNumber)
            for outcome in outcomes {
                status[outcome.actionID] = outcome.status
                if let p = outcome.powered { recordPower(p.host, on: p.on) }
                try record(outcome, planID: planID, report: &report)
            }
            pending = waiting
        }
        // "stopped": the controller stopped between waves; what ran is journalled, the rest was never started.
        state.lastPlan = .init(id: planID, status: stopped ? "stopped" : report.succeeded ? "applied" : "failed")
        // Only moves that completed start a VM's residency clock; a failed one left it where it was.
        let moved = Set(report.outcomes.filter { $0.kind == .migrate && $0.status == .done }.map(\.actionID))
        try refreshInventory(movedNow: Set(document.actions.filter { moved.contains($0.id) }.map(\.vm)),
                             now: observationNow ?? options.observationNow ?? clock)
        try save()
        return report
    }

    /// What an action acts on: a VM, or a host for host actions (one action per subject per wave).
    static func subject(_ a: PlanDocument.Action) -> String { a.vm.isEmpty ? "host:" + (a.host ?? "") : a.vm }

    /// The host's power state as apply left it: standby in the state's inventory (so the next observation does not
    /// contact it), or up again.
    private func recordPower(_ host: String, on: Bool) {
        connections.setPowered(host, on)
        guard var inv = state.inventory, let i = inv.hosts.firstIndex(where: { $0.name == host }) else { return }
        inv.hosts[i].status = on ? .up : .standby
        inv.hosts[i].lowSince = nil
        state.inventory = inv
    }

    /// Changes the state in memory (saved with the next journal entry or apply; `simulate` never saves it).
    public func updateState(_ change: (inout StateDocument) -> Void) { change(&state) }

    /// Executes one wave's actions concurrently; outcomes in the wave's (plan) order.
    private func run(_ wave: [PlanDocument.Action], number: Int) -> [ApplyReport.Outcome] {
        let results = Mutex([ApplyReport.Outcome?](repeating: nil, count: wave.count))
        DispatchQueue.concurrentPerform(iterations: wave.count) { i in
            let action = wave[i]
            var outcome = ApplyReport.Outcome(actionID: action.id, kind: action.kind,
                                              summary: PlanRenderer().headline(action), status: .done, wave: number,
                                              startedAt: clock)
            do {
                if action.kind.isHostAction {
                    let r = try hostAction(action)
                    outcome.detail = r.detail; outcome.output = r.output; outcome.powered = r.powered
                } else {
                    let r = try execute(action)
                    outcome.detail = r.detail; outcome.mode = r.mode
                }
            } catch let e as PowerFailure {
                outcome.status = .failed; outcome.detail = e.message; outcome.output = e.output
                outcome.powered = e.powered
            } catch {
                outcome.status = .failed; outcome.detail = "\(error)"
            }
            outcome.finishedAt = clock
            results.withLock { $0[i] = outcome }
        }
        return results.withLock { $0.compactMap { $0 } }
    }

    private func record(_ raw: ApplyReport.Outcome, planID: String,
                        report: inout ApplyReport) throws(EngineError) {
        // Errors and command output are free text that may quote a host URI or its secrets: scrub them once,
        // here, so the report, the journal in state.json and every commit of it are clean.
        var outcome = raw
        outcome.detail = outcome.detail.map { CommitScrubber.scrub($0, cluster: cluster) }
        outcome.output = outcome.output.map { CommitScrubber.scrub($0, cluster: cluster) }
        report.outcomes.append(outcome)
        options.onFinish?(outcome)
        try journal(JournalEntry(planID: planID, actionID: outcome.actionID, summary: outcome.summary,
                                 status: outcome.status, error: outcome.status == .failed ? outcome.detail : nil,
                                 output: outcome.output, at: clock))
    }

    private func journal(_ entry: JournalEntry) throws(EngineError) {
        state.journal.append(entry)
        try save()
        if entry.status != .started { pauseForTests() }
    }

    private func save() throws(EngineError) {
        guard options.persistState else {
            state.advance()
            return
        }
        do { state = try stateFile.write(state) } catch { throw .state(error) }
    }

    /// The state's inventory becomes what libvirt shows now; VMs moved by this apply get `lastMovedAt` = now.
    private func refreshInventory(movedNow: Set<String>, now: Double) throws(EngineError) {
        let inventory = connections.inventory(previous: state.inventory, now: now)
        var observation = Observation(inventory: inventory, samples: [:], now: now, intervalSeconds: 0)
        for i in observation.vms.indices where movedNow.contains(observation.vms[i].name) {
            observation.vms[i].lastMovedAt = now
        }
        state.record(observation)
    }

    private func connection(_ host: String?) throws -> any FleetHost {
        guard let host else { throw ApplyError("the action names no host") }
        guard let c = self.host(host) else {
            throw ApplyError("host \(host) is unreachable: \(connections.failure(host) ?? "not connected")")
        }
        return c
    }

    /// What a VM action did, as data.
    struct ExecutionResult {
        var detail: String? = nil
        var mode: MoveMode? = nil
    }

    /// Runs one action after re-checking that the fleet still looks as the plan expects. `refusals` has checked
    /// that the hosts each kind needs are named.
    private func execute(_ action: PlanDocument.Action) throws -> ExecutionResult {
        let p = action.parameters
        switch action.kind {
        case .define:
            guard let vm = vmSpecs[action.vm] else { throw ApplyError("\(action.vm) is not in the spec") }
            guard let template = vm.template else {
                throw ApplyError("\(vm.name) has no template in cluster.yaml, so it cannot be defined")
            }
            let target = try connection(action.to)
            if try target.domainIfExists(named: vm.name) != nil {
                return ExecutionResult(detail: "already defined on \(action.to!)")
            }
            let text: String
            do { text = try String(contentsOf: cluster.resolve(template), encoding: .utf8) } catch {
                throw ApplyError("cannot read template \(template): \(error)")
            }
            var spec = vm
            if let v = p.vcpus { spec.vcpus = v }
            if let m = p.memoryMiB { spec.memoryMiB = m }
            let tuning = connections.tuning(action.to!)
            let xml = try DomainTemplate.render(text, vm: spec, uuid: DomainTemplate.uuid(cluster: cluster.spec.name,
                                                                                            vm: vm.name), tuning: tuning)
            _ = try target.define(xml: xml)
            return ExecutionResult(detail: DomainTemplate.refusedKnobs(spec, tuning: tuning))
        case .start:
            let host = action.to ?? action.from!
            do { try connection(host).start(action.vm) } catch let e as LibvirtError where e.message.contains("locked memory") {
                // libvirt raises QEMU's RLIMIT_MEMLOCK to a <memtune> hard limit; without CAP_SYS_RESOURCE it may not.
                throw ApplyError("\(action.vm) did not start on \(host): the host cannot lock memory up to the VM's "
                    + "memory hard limit (libvirt raises QEMU's RLIMIT_MEMLOCK to <memtune><hard_limit>, which needs "
                    + "CAP_SYS_RESOURCE for libvirtd). Remove resources.memory.limit from \(action.vm) in cluster.yaml "
                    + "or give libvirtd that capability. libvirt said: \(e.message)")
            }
            return ExecutionResult()
        case .stop:
            try connection(action.from).destroy(action.vm)
            return ExecutionResult()
        case .undefine:
            try connection(action.from).undefine(action.vm)
            return ExecutionResult()
        case .resize:
            let c = try connection(action.from)
            try expect(action.vm, on: c, host: action.from!)
            if let v = p.vcpus { try c.setVcpus(action.vm, count: v) }
            if let m = p.memoryMiB { try c.setMemory(action.vm, mib: try mib(m)) }
            return ExecutionResult()
        case .tune:
            return ExecutionResult(detail: try tune(action))
        case .migrate:
            return try migrate(action)
        case .drain, .powerOff, .powerOn:
            throw ApplyError("\(action.kind.rawValue) is a host action")  // routed to hostAction by `run`
        }
    }

    private func expect(_ vm: String, on c: any FleetHost, host: String) throws {
        guard try c.domainIfExists(named: vm) != nil else {
            throw ApplyError("\(vm) is no longer on \(host); the fleet changed after the plan was made")
        }
    }

    /// CPU shares/quota and memory tunables. A knob the driver does not support is reported, not fatal:
    /// nothing changed for it, which the state (re-observed) shows truthfully.
    private func tune(_ action: PlanDocument.Action) throws -> String? {
        let p = action.parameters
        let c = try connection(action.from)
        try expect(action.vm, on: c, host: action.from!)
        var notes: [String] = []
        if p.cpuShares != nil || p.cpuQuotaMicros != nil {
            let tune = CPUTune(shares: try p.cpuShares.map { try count($0, "cpu shares") },
                               period: p.cpuQuotaMicros != nil ? try count(p.cpuPeriodMicros ?? 100_000, "cpu period") : nil,
                               quota: p.cpuQuotaMicros.map { Int64($0) })
            if let e = try unsupported({ () throws(LibvirtError) in try c.setCPUTune(action.vm, tune) }) {
                notes.append("cpu tuning not supported by \(action.from!): \(e.message)")
            }
        }
        if let balloon = p.balloonMiB { try c.setMemory(action.vm, mib: try mib(balloon), scope: .live) }
        if p.memoryHardLimitMiB != nil || p.memorySoftLimitMiB != nil {
            func limit(_ v: Double?) throws -> MemoryLimit? { try v.map { $0 < 0 ? .unlimited : .mib(try mib($0)) } }
            let hard = try limit(p.memoryHardLimitMiB), soft = try limit(p.memorySoftLimitMiB)
            if let e = try unsupported({ () throws(LibvirtError) in
                try c.setMemoryTune(action.vm, hardLimit: hard, softLimit: soft)
            }) {
                notes.append("memtune not supported by \(action.from!): \(e.message)")
            }
        }
        return notes.isEmpty ? nil : notes.joined(separator: "; ")
    }

    /// Runs `call`; returns the error when the driver does not support it, rethrows any other error.
    private func unsupported(_ call: () throws(LibvirtError) -> Void) throws(LibvirtError) -> LibvirtError? {
        do { try call(); return nil } catch where error.kind == .unsupported { return error }
    }

    private func isTestDriver(_ host: String) -> Bool {
        guard let h = hostSpecs[host] else { return false }
        return LibvirtURI.isTestDriver(cluster.connectionURI(for: h))
    }

    private func migrate(_ action: PlanDocument.Action) throws -> ExecutionResult {
        let source = try connection(action.from)
        let target = try connection(action.to)
        guard let here = try source.domainIfExists(named: action.vm) else {
            guard let there = try target.domainIfExists(named: action.vm) else {
                throw ApplyError("\(action.vm) is no longer on \(action.from!); the fleet changed after the plan was made")
            }
            // A cold move interrupted after the source stopped: finish it by starting the guest on the target.
            if there.state == .shutoff {
                try target.start(action.vm)
                return ExecutionResult(detail: "resumed an interrupted move: started on \(action.to!)", mode: .cold)
            }
            return ExecutionResult(detail: "already on \(action.to!)")
        }
        try checkFits(action.vm, from: source, on: target, host: action.to!)
        let sla = vmSpecs[action.vm]?.sla.flatMap { cluster.spec.sla(named: $0) }
        // Cold instead of live only where that disrupts nobody: SLA `any`, or test-driver hosts (no real guest).
        let testHosts = isTestDriver(action.from!) && isTestDriver(action.to!)
        // Local disks (read now: the plan may be old) are copied along by a live move; nothing copies them cold.
        // Test-driver disks hold no data: nothing to copy (simulate still counts their bytes as migration time).
        let local = testHosts ? [] : cluster.spec.host(named: action.from!).map {
            FleetConnections.disks(here, host: $0, spec: cluster.spec.vm(named: action.vm),
                                   testDriver: isTestDriver(action.from!))
        }?.filter { $0.storage == .local } ?? []
        let running = here.state == .running || here.state == .paused
        let allowCold = (sla == nil || sla?.migration == .any || testHosts) && local.isEmpty
        let mode: SandpiperLibvirt.MigrationMode = action.mode == .cold ? .cold : .live
        if !local.isEmpty, mode == .cold || !running {
            throw ApplyError("refused to move \(action.vm) cold: its local disk(s) "
                + local.map { "\($0.target) (\($0.source))" }.joined(separator: ", ")
                + " would not be on \(action.to!), so it would start there without them; move it live (it must "
                + "run), or declare its storage shared if \(action.to!) reaches the same images")
        }
        var options = migrationOptions(action)
        if !local.isEmpty {
            options.copyStorage = local.contains { $0.backing == true } ? .incremental : .all
            options.migrateDisks = local.map(\.target)
            // The time budget counts the disk bytes too (timeoutPerGiB of memory + disk).
            let diskMiB = (StorageDefaults.copyBytes(local) ?? 0) / 1_048_576
            let memoryMiB = cluster.spec.vm(named: action.vm)?.memoryMiB ?? 1024
            let timeoutMs = min(cluster.policy.migration.timeoutSeconds(memoryMiB: memoryMiB + diskMiB) * 1000,
                                Double(Int32.max))
            options.timeout = .milliseconds(Int(timeoutMs.rounded(.up)))
            options.pollInterval = .milliseconds(Int(max(10, min(500, timeoutMs / 10))))
        }
        let report = try source.migrate(action.vm, to: target, mode: mode, allowCold: allowCold,
                                        options: options)
        let done: MoveMode = report.mode == .cold ? .cold : .live
        if options.copyStorage != nil, !report.alreadyDone {
            return ExecutionResult(detail: report.steps.joined(separator: "; "), mode: done)
        }
        return ExecutionResult(detail: report.mode == mode ? nil : "moved cold: the driver cannot migrate live",
                               mode: done)
    }

    /// A MiB amount from a plan as libvirt takes it; out-of-range values (a hand-made plan) fail the action.
    private func mib(_ value: Double) throws -> UInt64 {
        guard value.isFinite, value >= 0, value <= Double(1 << 40), let v = UInt64(exactly: value.rounded()) else {
            throw ApplyError("\(value) MiB is not a valid memory amount")
        }
        return v
    }

    private func count(_ value: Int, _ what: String) throws -> UInt64 {
        guard let v = UInt64(exactly: value) else { throw ApplyError("\(what) \(value) is out of range") }
        return v
    }

    /// Re-checks just before a move that the target can still admit the VM: the reservations of what runs there
    /// now (the plan may be hours old, and VMs may have been started by hand) plus this VM's stay within the
    /// target's capacity. Utilization fit was the planner's job; reservations are the hard guarantee.
    private func checkFits(_ vm: String, from source: any FleetHost, on target: any FleetHost,
                           host: String) throws {
        let info = try target.hostInfo()
        let resident = try target.domains().filter { $0.state == .running || $0.state == .paused }.map(\.name)
        func reserved(_ names: [String]) -> (cpu: Double, mem: Double) {
            names.compactMap { vmSpecs[$0] }.reduce((0, 0)) {
                ($0.0 + $1.resources.cpu.reservation, $0.1 + $1.resources.memory.reservation)
            }
        }
        let there = reserved(resident), mine = reserved([vm])
        if there.mem + mine.mem > Double(info.memoryMiB) {
            throw ApplyError("\(host) can no longer admit \(vm): it reserves \(Units.formatMiB(mine.mem)); "
                + "\(Units.formatMiB(there.mem)) of \(Units.formatMiB(Double(info.memoryMiB))) are reserved there now")
        }
        if there.cpu + mine.cpu > Double(info.cpus) {
            throw ApplyError("\(host) can no longer admit \(vm): it reserves \(Units.trim(mine.cpu)) cores; "
                + "\(Units.trim(there.cpu)) of \(info.cpus) are reserved there now")
        }
    }

    /// The policy's `migration:` settings as libvirt takes them; the time budget scales with the VM's memory.
    private func migrationOptions(_ action: PlanDocument.Action) -> LiveMigrationOptions {
        let m = cluster.policy.migration
        let memoryMiB = vmSpecs[action.vm]?.memoryMiB ?? 1024
        let timeoutMs = min(m.timeoutSeconds(memoryMiB: memoryMiB) * 1000, Double(Int32.max))
        return LiveMigrationOptions(
            migrateURI: migrateURI(action.from!, action.to!),
            // Mbit/s -> whole MiB/s, at least 1 (libvirt's unit; 0 would mean unlimited).
            bandwidthMiBps: m.bandwidthMbps.map { UInt64(max(1, ($0 * 1_000_000 / 8 / 1_048_576).rounded(.down))) },
            timeout: .milliseconds(Int(timeoutMs.rounded(.up))),
            // The budget is checked at each poll: at least ten polls within it (every 10-500 ms).
            pollInterval: .milliseconds(Int(max(10, min(500, timeoutMs / 10)))),
            maxDowntimeMs: m.maxDowntimeMs.map { UInt64($0.rounded(.up)) },
            autoConverge: m.autoConverge, postCopy: m.postCopy, compressed: m.compressed, tls: m.tls)
    }

    /// Daemons on this machine (unix sockets as in the two-daemon lab, or ssh/tls to a loopback address) migrate
    /// over loopback; elsewhere libvirt picks the target's address itself.
    private func migrateURI(_ from: String, _ to: String) -> String? {
        func local(_ name: String) -> Bool {
            guard let h = hostSpecs[name] else { return false }
            let uri = cluster.connectionURI(for: h)
            let host = LibvirtURIParts(strict: uri)?.authority?.host
            return uri.contains("+unix://") || uri.hasPrefix("qemu:///")
                || ["127.0.0.1", "localhost", "[::1]"].contains(host ?? "")
        }
        return local(from) && local(to) ? "tcp://127.0.0.1" : nil
    }
}

public struct ApplyError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

