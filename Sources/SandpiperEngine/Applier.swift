import Foundation
import SandpiperLibvirt
import SandpiperModel

/// What happened to each action of an apply.
public struct ApplyReport: Sendable, Equatable {
    public struct Outcome: Sendable, Equatable {
        public var actionID: String
        public var summary: String
        public var status: JournalEntry.Status
        public var detail: String?
        /// Host power commands: what they printed (truncated), journaled.
        public var output: String? = nil
        /// Host power actions: the host's power state as known after the action (true = on), failed or not.
        var powered: (host: String, on: Bool)? = nil

        public static func == (a: Outcome, b: Outcome) -> Bool {
            a.actionID == b.actionID && a.summary == b.summary && a.status == b.status && a.detail == b.detail
                && a.output == b.output && a.powered?.host == b.powered?.host && a.powered?.on == b.powered?.on
        }
    }
    public var planID: String
    public var outcomes: [Outcome]
    public var succeeded: Bool { !outcomes.contains { $0.status == .failed } }
    public var done: Int { outcomes.filter { $0.status == .done }.count }
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
    public private(set) var state: StateDocument
    /// Called before each action with (index, total, summary) for progress output.
    public var onStart: ((Int, Int, String) -> Void)?
    /// Called after each action with its outcome.
    public var onFinish: ((ApplyReport.Outcome) -> Void)?
    /// Clock for journal timestamps; injectable so tests can pin it.
    public var clock: () -> Double = { Date().timeIntervalSince1970 }
    /// The observation clock (trace time for replayed clusters, Unix time for live ones): moved VMs get
    /// `lastMovedAt` on this clock so minimum residency compares like with like.
    public var observationNow: Double?
    /// Pause after journaling a wave as started and after each outcome (crash-safety tests kill the process there).
    public var pauseAfterStart: Duration = .zero

    private func pauseForTests() {
        guard pauseAfterStart > .zero else { return }
        Thread.sleep(forTimeInterval: Double(pauseAfterStart.components.seconds)
            + Double(pauseAfterStart.components.attoseconds) / 1e18)
    }
    /// False keeps the state in memory only (`sandpiper simulate`): the journal and inventory are updated as
    /// usual but state.json is never written.
    public var persistState = true

    public init(cluster: LoadedCluster, connections: FleetConnections, state: StateDocument?) {
        self.cluster = cluster
        self.connections = connections
        host = { [connections] name in connections.connection(name) }
        self.stateFile = StateFile(directory: cluster.directory)
        self.state = state ?? StateDocument(cluster: cluster.spec.name)
    }

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
        let inventory = connections.inventory(previous: stateBefore?.inventory, now: clock())
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

    /// Runs every action of `document` (which must be fresh). Throws only when the state file cannot be written;
    /// action failures are in the report (and the journal).
    public func apply(_ document: PlanDocument) throws(EngineError) -> ApplyReport {
        let planID = document.id ?? Engine.planID(document)
        // Refuse up front, before a single VM moves, a plan whose power actions the policy would refuse at the
        // end (consolidation would empty a host and then leave it on).
        let power = document.actions.filter { $0.kind == "power-on" || $0.kind == "power-off" }
        if runsPowerCommands, !power.isEmpty, cluster.policy.consolidation.powerCommands != .allow {
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
        while !pending.isEmpty {
            var wave: [PlanDocument.Action] = []
            var waiting: [PlanDocument.Action] = []
            var vmsInWave = Set<String>()
            for action in pending {
                if let blocker = action.dependsOn.first(where: { status[$0] == .failed || status[$0] == .skipped }) {
                    started += 1
                    onStart?(started, document.actions.count, PlanRenderer().headline(action))
                    let outcome = ApplyReport.Outcome(actionID: action.id, summary: PlanRenderer().headline(action),
                                                      status: .skipped,
                                                      detail: "depends on action \(blocker), which did not complete")
                    status[action.id] = .skipped
                    try record(outcome, planID: planID, report: &report)
                } else if action.dependsOn.allSatisfy({ status[$0] == .done }), wave.count < maxParallel,
                          !vmsInWave.contains(Self.subject(action)) {
                    wave.append(action)
                    vmsInWave.insert(Self.subject(action))
                } else {
                    waiting.append(action)
                }
            }
            if wave.isEmpty {
                // Dependencies that can never complete (not in this plan): refuse to guess.
                for action in waiting {
                    let outcome = ApplyReport.Outcome(actionID: action.id, summary: PlanRenderer().headline(action),
                                                      status: .skipped, detail: "its dependencies are not in the plan")
                    status[action.id] = .skipped
                    try record(outcome, planID: planID, report: &report)
                }
                break
            }
            for action in wave {
                started += 1
                onStart?(started, document.actions.count, PlanRenderer().headline(action))
                try journal(JournalEntry(planID: planID, actionID: action.id, summary: PlanRenderer().headline(action),
                                         status: .started, at: clock()))
            }
            pauseForTests()
            let outcomes = run(wave)
            for outcome in outcomes {
                status[outcome.actionID] = outcome.status
                if let p = outcome.powered { recordPower(p.host, on: p.on) }
                try record(outcome, planID: planID, report: &report)
            }
            pending = waiting
        }
        state.lastPlan = .init(id: planID, status: report.succeeded ? "applied" : "failed")
        // Only moves that completed start a VM's residency clock; a failed one left it where it was.
        let completed = Set(report.outcomes.filter { $0.status == .done }.map(\.actionID))
        try refreshInventory(movedNow: Set(document.actions.filter { $0.kind == "migrate" && completed.contains($0.id) }
            .map(\.vm)))
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

    /// Most actions run at once in one wave.
    public var maxParallel = 8

    /// Executes one wave's actions concurrently; outcomes in the wave's (plan) order.
    private func run(_ wave: [PlanDocument.Action]) -> [ApplyReport.Outcome] {
        let results = ResultSlots(wave.count)
        DispatchQueue.concurrentPerform(iterations: wave.count) { i in
            let action = wave[i]
            let summary = PlanRenderer().headline(action)
            do {
                if ActionKind(rawValue: action.kind)?.isHostAction == true {
                    let r = try hostAction(action)
                    results.set(i, .init(actionID: action.id, summary: summary, status: .done, detail: r.detail,
                                         output: r.output, powered: r.powered))
                } else {
                    let detail = try execute(action)
                    results.set(i, .init(actionID: action.id, summary: summary, status: .done, detail: detail))
                }
            } catch let e as PowerFailure {
                results.set(i, .init(actionID: action.id, summary: summary, status: .failed, detail: e.message,
                                     output: e.output, powered: e.powered))
            } catch {
                results.set(i, .init(actionID: action.id, summary: summary, status: .failed, detail: "\(error)"))
            }
        }
        return results.values
    }

    private func record(_ raw: ApplyReport.Outcome, planID: String,
                        report: inout ApplyReport) throws(EngineError) {
        // Errors and command output are free text that may quote a host URI or its secrets: scrub them once,
        // here, so the report, the journal in state.json and every commit of it are clean.
        var outcome = raw
        outcome.detail = outcome.detail.map { CommitScrubber.scrub($0, cluster: cluster) }
        outcome.output = outcome.output.map { CommitScrubber.scrub($0, cluster: cluster) }
        report.outcomes.append(outcome)
        onFinish?(outcome)
        try journal(JournalEntry(planID: planID, actionID: outcome.actionID, summary: outcome.summary,
                                 status: outcome.status, error: outcome.status == .failed ? outcome.detail : nil,
                                 output: outcome.output, at: clock()))
    }

    private func journal(_ entry: JournalEntry) throws(EngineError) {
        state.journal.append(entry)
        try save()
        if entry.status != .started { pauseForTests() }
    }

    private func save() throws(EngineError) {
        guard persistState else {
            state.advance()
            return
        }
        do { state = try stateFile.write(state) } catch { throw .state(error) }
    }

    /// The state's inventory becomes what libvirt shows now; VMs moved by this apply get `lastMovedAt` = now.
    private func refreshInventory(movedNow: Set<String>) throws(EngineError) {
        let now = observationNow ?? clock()
        let inventory = connections.inventory(previous: state.inventory, now: now)
        var observation = Observation(inventory: inventory, samples: [:], now: now, intervalSeconds: 0)
        for i in observation.vms.indices where movedNow.contains(observation.vms[i].name) {
            observation.vms[i].lastMovedAt = now
        }
        state.record(observation)
    }

    /// False in `simulate`: host power actions change the recorded power state without running any command.
    public var runsPowerCommands = true

    /// How actions reach a host; tests replace it to inject failures around the real connections.
    public var host: @Sendable (String) -> (any FleetHost)?

    private func connection(_ host: String?) throws -> any FleetHost {
        guard let host else { throw ApplyError("the action names no host") }
        guard let c = self.host(host) else {
            throw ApplyError("host \(host) is unreachable: \(connections.failure(host) ?? "not connected")")
        }
        return c
    }

    /// Runs one action after re-checking that the fleet still looks as the plan expects.
    private func execute(_ action: PlanDocument.Action) throws -> String? {
        let p = action.parameters
        switch action.kind {
        case "define":
            guard let vm = cluster.spec.vm(named: action.vm) else { throw ApplyError("\(action.vm) is not in the spec") }
            guard let template = vm.template else {
                throw ApplyError("\(vm.name) has no template in cluster.yaml, so it cannot be defined")
            }
            let target = try connection(action.to)
            if try target.domainIfExists(named: vm.name) != nil { return "already defined on \(action.to!)" }
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
            return DomainTemplate.refusedKnobs(spec, tuning: tuning)
        case "start":
            try connection(action.to ?? action.from).start(action.vm)
            return nil
        case "stop":
            try connection(action.from).destroy(action.vm)
            return nil
        case "undefine":
            try connection(action.from).undefine(action.vm)
            return nil
        case "resize":
            let c = try connection(action.from)
            try expect(action.vm, on: c, host: action.from!)
            if let v = p.vcpus { try c.setVcpus(action.vm, count: v) }
            if let m = p.memoryMiB { try c.setMemory(action.vm, mib: try mib(m)) }
            return nil
        case "tune":
            return try tune(action)
        case "migrate":
            return try migrate(action)
        default:
            throw ApplyError("unknown action kind \(action.kind)")
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
        guard let h = cluster.spec.host(named: host) else { return false }
        return LibvirtURI.isTestDriver(cluster.connectionURI(for: h))
    }

    private func migrate(_ action: PlanDocument.Action) throws -> String? {
        let source = try connection(action.from)
        let target = try connection(action.to)
        if try source.domainIfExists(named: action.vm) == nil {
            guard let there = try target.domainIfExists(named: action.vm) else {
                throw ApplyError("\(action.vm) is no longer on \(action.from!); the fleet changed after the plan was made")
            }
            // A cold move interrupted after the source stopped: finish it by starting the guest on the target.
            if there.state == .shutoff {
                try target.start(action.vm)
                return "resumed an interrupted move: started on \(action.to!)"
            }
            return "already on \(action.to!)"
        }
        try checkFits(action.vm, from: source, on: target, host: action.to!)
        let sla = cluster.spec.vm(named: action.vm)?.sla.flatMap { cluster.spec.sla(named: $0) }
        // Cold instead of live only where that disrupts nobody: SLA `any`, or test-driver hosts (no real guest).
        let testHosts = isTestDriver(action.from!) && isTestDriver(action.to!)
        let allowCold = sla == nil || sla?.migration == .any || testHosts
        let mode: SandpiperLibvirt.MigrationMode = action.mode == "cold" ? .cold : .live
        let report = try source.migrate(action.vm, to: target, mode: mode, allowCold: allowCold,
                                        options: LiveMigrationOptions(migrateURI: migrateURI(action.from!, action.to!)))
        return report.mode == mode ? nil : "moved cold: the driver cannot migrate live"
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
            names.compactMap { cluster.spec.vm(named: $0) }.reduce((0, 0)) {
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

    /// Daemons on this machine (unix sockets, as in the two-daemon lab) migrate over loopback; elsewhere libvirt
    /// picks the target's address itself.
    private func migrateURI(_ from: String, _ to: String) -> String? {
        func local(_ name: String) -> Bool {
            guard let h = cluster.spec.host(named: name) else { return false }
            let uri = cluster.connectionURI(for: h)
            return uri.contains("+unix://") || uri.hasPrefix("qemu:///")
        }
        return local(from) && local(to) ? "tcp://127.0.0.1" : nil
    }
}

public struct ApplyError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Outcomes written from concurrent actions.
private final class ResultSlots: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [ApplyReport.Outcome?]
    init(_ n: Int) { slots = Array(repeating: nil, count: n) }
    func set(_ i: Int, _ v: ApplyReport.Outcome) { lock.lock(); slots[i] = v; lock.unlock() }
    var values: [ApplyReport.Outcome] { lock.lock(); defer { lock.unlock() }; return slots.compactMap { $0 } }
}
