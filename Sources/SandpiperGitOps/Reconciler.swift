import Foundation
import SandpiperGit
import SandpiperEngine
import SandpiperModel

/// How `sandpiper reconcile` runs.
public struct ReconcileOptions: Sendable {
    /// Commit state.json and the applied plans to git (on `branch`, default the checked-out branch).
    public var commit = false
    /// CI: take the lock on this remote, plan from its branch, push the decisions there (implies `commit`).
    public var remote: String?
    public var branch: String?
    /// Read the cluster at this revision; with `commit` it must be the branch's tip.
    public var ref: String?
    /// Commit actions that the automation level does not apply to `sandpiper/proposals/<plan-id>`.
    public var propose = false
    /// Attempts when the branch or the remote moved meanwhile (re-read, re-plan, retry).
    public var maxAttempts = 3
    public var prune = false
    public var author: String?
    public var committer: String?
    public var telemetry = TelemetryOptions()
    /// A git ref lock held across rounds (`sandpiper run`'s lease): used instead of taking one per run.
    public var lease: GitRefLock?

    public init() {}
    public var usesGit: Bool { commit || remote != nil }
}

/// What one reconcile did.
public struct ReconcileOutcome: Sendable {
    public var cluster: String
    public var automation: Policy.Automation
    /// The commit the (last) plan was computed from.
    public var baseCommit: String?
    public var attempts: Int = 1
    /// The full plan of the last attempt (before the automation level chose what to apply).
    public var plan: PlanDocument?
    public var applied: [PlanDocument] = []
    public var reports: [ApplyReport] = []
    public var proposal: PlanDocument?
    public var proposalBranch: String?
    /// Working-tree mode: where the plan left for review was saved.
    public var proposalFile: String?
    public var recordedInventory = false
    public var commit: String?
    public var branch: String?
    public var pushed = false
    public var notes: [String] = []
    /// The round ran outside the policy's change windows: moves were proposed, not applied.
    public var outsideChangeWindow = false
    /// The webhooks (`notify:`) of the policy the round used.
    public var notify: [Webhook] = []

    public var succeeded: Bool { reports.allSatisfy(\.succeeded) }
    /// Actions left for review (not applied because of the automation level).
    public var pending: Int { proposal?.actions.count ?? 0 }
}

/// lock -> read (working tree or a commit) -> observe -> plan -> apply per the policy's automation level ->
/// commit -> push -> unlock. Reuses Engine.observe/Engine.plan/Applier/PlanStore/ClusterLock.
public final class Reconciler {
    public let path: String
    public var options: ReconcileOptions
    /// Opens the fleet; tests inject one shared test-driver fleet. Connections close when released (deinit).
    public var connect: (LoadedCluster) -> FleetConnections = { FleetConnections(cluster: $0) }
    /// Test seam: called before each push with the attempt number.
    public var beforePush: ((Int) throws -> Void)?
    public var onStart: ((Int, Int, String) -> Void)?
    public var onFinish: ((ApplyReport.Outcome) -> Void)?
    /// Passed to the applier: asked before each wave whether to stop (`sandpiper run` on SIGTERM).
    public var shouldStop: (() -> Bool)?
    /// Passed to the applier: pause after journalling a wave as started (tests signal the process there).
    public var pauseAfterStart: Duration = .zero
    /// Called with each plan document just before it is applied (the full plan, or partial's allocations).
    public var onApply: ((PlanDocument) -> Void)?
    public var log: (String) -> Void = { _ in }
    /// Where a round's observation comes from; nil = `Engine.observe` (samples its own window). `sandpiper run`
    /// passes the windows it keeps between rounds.
    public var observe: ((LoadedCluster, FleetConnections, StateDocument?) throws -> FleetSnapshot)?
    /// The clock change windows are judged by: the wall clock, also for trace clusters (whose observation time
    /// counts trace seconds, not dates). Tests inject a fixed date.
    public var clock: () -> Date = { Date() }

    public init(path: String, options: ReconcileOptions) { self.path = path; self.options = options }

    public func run() throws -> ReconcileOutcome {
        if options.usesGit { return try runGit() }
        if options.ref != nil {
            throw GitWorkflowError.conflict("reconcile --ref needs --commit or --ci: decisions computed from a commit "
                + "are committed on top of it")
        }
        if options.propose {
            throw GitWorkflowError.conflict("reconcile --propose needs --commit or --ci (a proposal branch must hold "
                + "the state its plan is based on)")
        }
        return try runWorkingTree()
    }

    // MARK: Working tree (no git)

    private func runWorkingTree() throws -> ReconcileOutcome {
        let cluster = try Engine.load(path)
        let lock: ClusterLock
        do { lock = try ClusterLock.acquire(directory: cluster.directory, operation: "reconcile") } catch {
            throw EngineError.apply("\(error)")
        }
        defer { lock.release() }
        return try reconcile(cluster, connections: connect(cluster))
    }

    /// One working-tree round on an already loaded cluster: the caller holds the cluster's lock (`sandpiper run`
    /// holds it for its whole life and keeps the connections, so the fleet is not reopened each round).
    public func reconcile(_ cluster: LoadedCluster, connections: FleetConnections) throws -> ReconcileOutcome {
        var outcome = ReconcileOutcome(cluster: cluster.spec.name, automation: cluster.policy.automation)
        outcome.notify = cluster.policy.notify
        let r = try round(cluster, connections: connections, specCommit: nil)
        outcome.plan = r.plan
        outcome.applied = r.applied
        outcome.reports = r.reports
        outcome.recordedInventory = r.recordedInventory
        outcome.outsideChangeWindow = r.outsideChangeWindow
        if let proposal = r.proposal, let id = proposal.id {
            let url = PlanStore.defaultURL(cluster, id: id)
            try PlanStore.save(proposal, to: url)
            outcome.proposal = proposal
            outcome.proposalFile = url.path
        }
        return outcome
    }

    // MARK: One round: observe, plan, apply per automation

    struct Round {
        var plan: PlanDocument
        var applied: [PlanDocument] = []
        var reports: [ApplyReport] = []
        var proposal: PlanDocument?
        var recordedInventory = false
        var outsideChangeWindow = false
        /// Files of the cluster directory written (relative: `state.json`, `plans/<id>.json`).
        var touched: Set<String> = []
    }

    /// Kinds `partial` applies; moves (and removals) are proposed.
    static let partialKinds: Set<ActionKind> = [.tune, .resize, .define, .start]
    /// Kinds a closed change window holds back (proposed instead): moves and host power actions.
    static let moveKinds: Set<ActionKind> = [.migrate, .drain, .powerOff, .powerOn]

    func round(_ cluster: LoadedCluster, connections: FleetConnections, specCommit: String?) throws -> Round {
        let stateFile = StateFile(directory: cluster.directory)
        var state: StateDocument?
        do { state = try stateFile.read(cluster: cluster.spec.name) } catch { throw EngineError.state(error) }
        var snapshot = try observe.map { try $0(cluster, connections, state) }
            ?? Engine.observe(cluster, connections: connections, state: state, telemetry: options.telemetry)
        var touched = Set<String>()
        var recorded = false
        // Consolidation: when hosts became low, recorded before planning (the plan is based on it).
        var lowState = state ?? StateDocument(cluster: cluster.spec.name)
        let lowChanged = Engine.recordLowSince(cluster, snapshot: &snapshot, state: &lowState)
        // The observed inventory is recorded when it differs from the state's (so the plan is based on it).
        var next = state ?? StateDocument(cluster: cluster.spec.name)
        next.record(snapshot.observation)
        // Compare with what would be recorded (VMs of unreachable hosts kept), or an outage rewrites state each run.
        if lowChanged || Self.inventoryChanged(state?.inventory, next.inventory ?? snapshot.observation) {
            do { state = try stateFile.write(next) } catch { throw EngineError.state(error) }
            touched.insert("state.json")
            recorded = true
        }
        let full = Engine.plan(cluster, snapshot: snapshot, state: state, specCommit: specCommit, prune: options.prune)
        var result = Round(plan: full, recordedInventory: recorded, touched: touched)
        guard !full.actions.isEmpty else { return result }

        func apply(_ document: PlanDocument) throws {
            onApply?(document)
            var applyOptions = ApplyOptions(onStart: onStart, onFinish: onFinish, observationNow: snapshot.observation.now)
            applyOptions.shouldStop = shouldStop
            applyOptions.pauseAfterStart = pauseAfterStart
            let applier = Applier(cluster: cluster, connections: connections, state: state, options: applyOptions)
            let report = try applier.apply(document)
            state = applier.state
            let id = document.id ?? report.planID
            try PlanStore.save(document, to: PlanStore.defaultURL(cluster, id: id))
            result.applied.append(document)
            result.reports.append(report)
            result.touched.formUnion(["state.json", "plans/\(id).json"])
        }

        // Change windows: while closed, moves are proposed; only full automation applies moves, so only it changes.
        let movesOpen = cluster.policy.changeWindows.movesOpen(at: clock())
        let windowMatters = !movesOpen && full.actions.contains { Self.moveKinds.contains($0.kind) }
            && (cluster.policy.automation == .full || cluster.spec.vms.contains { $0.automation == .full })
        if windowMatters {
            result.outsideChangeWindow = true
            log("outside the change windows: moves are proposed, not applied"
                + (cluster.policy.changeWindows.repairOverridesWindows ? " (constraint repair excepted)" : ""))
        }
        // Per-VM automation levels: apply what each action's VM allows, propose the rest (a swap only whole).
        if windowMatters || cluster.spec.vms.contains(where: { $0.automation != nil }) {
            let allowed = Self.allowedSubset(full, cluster: cluster, movesOpen: !windowMatters)
            if allowed.actions.count == full.actions.count {
                try apply(full)
                return result
            }
            if !allowed.actions.isEmpty {
                try apply(allowed)
                if result.reports.last?.succeeded == false { return result }
                let now = Self.reobserve(snapshot, connections: connections, state: state)
                let proposal = Engine.plan(cluster, snapshot: now, state: state, specCommit: specCommit,
                                           prune: options.prune)
                result.proposal = proposal.actions.isEmpty ? nil : proposal
            } else {
                result.proposal = full
            }
            return result
        }

        switch cluster.policy.automation {
        case .manual:
            result.proposal = full
        case .full:
            try apply(full)
        case .partial:
            if full.actions.allSatisfy({ Self.partialKinds.contains($0.kind) }) {
                try apply(full)
                break
            }
            // Allocations now (planned without moves, so "after" is what this run leaves), moves for review.
            var allocationsOnly = cluster
            allocationsOnly.policy.placement.maxMigrationsPerRun = 0
            let allocations = Self.subset(
                Engine.plan(allocationsOnly, snapshot: snapshot, state: state, specCommit: specCommit, prune: false),
                kinds: Self.partialKinds)
            if !allocations.actions.isEmpty {
                try apply(allocations)
                if result.reports.last?.succeeded == false { break }
            }
            let now = Self.reobserve(snapshot, connections: connections, state: state)
            let proposal = Engine.plan(cluster, snapshot: now, state: state, specCommit: specCommit,
                                       prune: options.prune)
            result.proposal = proposal.actions.isEmpty ? nil : proposal
        }
        return result
    }

    /// The fleet's inventory now with the samples already taken (no second sampling window).
    static func reobserve(_ snapshot: FleetSnapshot, connections: FleetConnections,
                          state: StateDocument?) -> FleetSnapshot {
        let o = snapshot.observation
        let inventory = connections.inventory(previous: state?.inventory, now: o.now)
        var samples: [String: [Sample]] = [:]
        for vm in o.vms { samples[vm.name] = vm.samples }
        return FleetSnapshot(observation: Observation(inventory: inventory, samples: samples, now: o.now,
                                                      intervalSeconds: o.intervalSeconds),
                             inventory: inventory)
    }

    /// True when which VMs run where (with which allocations), or which hosts answer, differs.
    static func inventoryChanged(_ stored: Observation?, _ observed: Observation) -> Bool {
        guard let stored else { return true }
        if PlanDocument.inventoryDigestInput(stored) != PlanDocument.inventoryDigestInput(observed) { return true }
        func hosts(_ o: Observation) -> [String] { o.hosts.map { "\($0.name) \($0.isUp)" } }
        return hosts(stored) != hosts(observed)
    }

    /// The actions of `document` whose kind is in `kinds` and whose dependencies are kept, with counts and id
    /// recomputed.
    /// The level that governs `action`: its VM's `automation:`, else the policy's (host actions, undeclared VMs).
    static func level(of action: PlanDocument.Action, cluster: LoadedCluster) -> VMAutomation {
        if !action.vm.isEmpty, let own = cluster.spec.vm(named: action.vm)?.automation { return own }
        return VMAutomation(rawValue: cluster.policy.automation.rawValue) ?? .manual
    }

    /// The actions their automation level lets reconcile apply (full: all; partial: allocations, define and
    /// start; manual and disabled: none), keeping only actions whose dependencies are kept and swaps whose every
    /// migration is kept: half a swap could leave a host over its thresholds.
    /// With `movesOpen` false (outside the change windows) `full` keeps no moves but constraint repairs when the
    /// policy lets them override the windows.
    static func allowedSubset(_ document: PlanDocument, cluster: LoadedCluster, movesOpen: Bool = true) -> PlanDocument {
        let repairOverrides = cluster.policy.changeWindows.repairOverridesWindows
        var keep = Set(document.actions.filter { a in
            switch level(of: a, cluster: cluster) {
            case .full: movesOpen || !moveKinds.contains(a.kind) || (repairOverrides && isRepair(a, in: document))
            case .partial: partialKinds.contains(a.kind)
            case .manual, .disabled: false
            }
        }.map(\.id))
        while true {
            let before = keep.count
            for a in document.actions where keep.contains(a.id) && !a.dependsOn.allSatisfy(keep.contains) {
                keep.remove(a.id)
            }
            let brokenSwaps = Set(document.actions.filter { $0.swapGroup != nil && !keep.contains($0.id) }
                .compactMap(\.swapGroup))
            for a in document.actions where a.swapGroup.map(brokenSwaps.contains) == true { keep.remove(a.id) }
            if keep.count == before { break }
        }
        var copy = document
        copy.actions = document.actions.filter { keep.contains($0.id) }
        guard copy.actions.count != document.actions.count else { return document }
        copy.summary = PlanDocument.Summary(counting: copy.actions.map(\.kind), hotspots: copy.summary.hotspots,
                                            unresolved: copy.summary.unresolved)
        copy.id = Engine.planID(copy)
        return copy
    }

    /// A constraint-repair move (pin, labels, must-rule, maintenance evacuation): the planner's repair step decided it.
    static func isRepair(_ action: PlanDocument.Action, in document: PlanDocument) -> Bool {
        action.kind == .migrate && document.decisions.contains {
            $0.vm == action.vm && $0.purpose == PlacementDiagnostics.Purpose.repair.rawValue && $0.chosen == action.to
        }
    }

    static func subset(_ document: PlanDocument, kinds: Set<ActionKind>) -> PlanDocument {
        var kept = Set<String>()
        var copy = document
        copy.actions = document.actions.filter { a in
            guard kinds.contains(a.kind), a.dependsOn.allSatisfy(kept.contains) else { return false }
            kept.insert(a.id)
            return true
        }
        guard copy.actions.count != document.actions.count else { return document }
        copy.summary = PlanDocument.Summary(counting: copy.actions.map(\.kind), hotspots: copy.summary.hotspots,
                                            unresolved: copy.summary.unresolved)
        copy.id = Engine.planID(copy)
        return copy
    }

    // MARK: Git

    private func runGit() throws -> ReconcileOutcome {
        let location = try GitClusterLocation.locate(path)
        let session = try GitSession(location: location, options: options, operation: "reconcile", log: log)
        defer { session.release() }
        session.beforePush = beforePush
        var outcome: ReconcileOutcome?
        var connections: FleetConnections?
        var connectedHosts: [String] = []
        var first = true
        let result = try session.run { (snapshot, attempt) throws -> GitSession.Work in
            if first, let ref = self.options.ref {
                let wanted = try git("resolve \(ref)") { () throws(GitError) in try location.repository.resolve(ref) }
                guard wanted == snapshot.commit else {
                    throw GitWorkflowError.refNotTip(ref: ref, branch: session.branch)
                }
            }
            first = false
            // The fleet is acted on once per run: when the branch moved and the session retries, this run's
            // decisions (state.json, plans) are carried onto the new tip as they are; applying a second plan
            // would double the migration budget and act on a fleet the first apply just changed.
            if attempt > 1, var o = outcome {
                o.baseCommit = snapshot.commit.hex
                o.attempts = attempt
                outcome = o
                return GitSession.Work(touched: [], proposal: o.proposal)
            }
            let hosts = snapshot.cluster.spec.hosts.map { "\($0.name) \($0.uri)" }
            if connections == nil || hosts != connectedHosts {
                connections = self.connect(snapshot.cluster)
                connectedHosts = hosts
            }
            let r = try self.round(snapshot.cluster, connections: connections!, specCommit: snapshot.commit.hex)
            var o = outcome ?? ReconcileOutcome(cluster: snapshot.cluster.spec.name,
                                                automation: snapshot.cluster.policy.automation)
            o.automation = snapshot.cluster.policy.automation
            o.notify = snapshot.cluster.policy.notify
            o.baseCommit = snapshot.commit.hex
            o.attempts = attempt
            o.plan = r.plan
            o.applied += r.applied
            o.reports += r.reports
            o.recordedInventory = o.recordedInventory || r.recordedInventory
            o.proposal = r.proposal
            o.outsideChangeWindow = r.outsideChangeWindow
            outcome = o
            return GitSession.Work(touched: r.touched, applied: r.applied, reports: r.reports,
                                   recordedInventory: r.recordedInventory, proposal: r.proposal)
        }
        var o = outcome!
        o.commit = result.commit?.hex
        o.branch = session.branch
        o.pushed = result.pushed
        o.notes = result.notes
        if let proposal = o.proposal, options.propose || options.remote != nil {
            o.proposalBranch = try session.propose(proposal, base: result.commit ?? result.base)
        } else if let proposal = o.proposal {
            o.notes.append("plan \(proposal.id ?? "?") was not applied (automation \(o.automation.rawValue)"
                + (o.outsideChangeWindow ? ", outside the change windows" : "") + "); "
                + "run with --propose to commit it to \(GitProposals.branch(proposal.id ?? "<id>")) for review")
        }
        return o
    }
}
