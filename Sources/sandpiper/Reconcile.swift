import ArgumentParser
import Foundation
import Logging
import SandpiperController
import SandpiperEngine
import SandpiperGitOps
import SandpiperModel

struct Reconcile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Lock, observe, plan, apply per the policy's automation level, commit and push.",
        discussion: """
        The policy's `automation` decides what is applied: `manual` applies nothing (plan only), `partial` \
        applies tune/resize/define/start and proposes moves, `full` applies the whole plan (the planner already \
        keeps to maxMigrationsPerRun).

        Without --commit/--ci the cluster directory is used as it is on disk (file lock, state.json rewritten in \
        place, plans saved to plans/). With --commit the cluster is read from the branch's tip commit through \
        libgit2 (no checkout; uncommitted edits are not reconciled), the lock is the ref \
        refs/sandpiper/locks/<cluster>, and state.json plus the applied plans are committed on the branch, \
        nothing else. --ci also takes the lock on the remote, plans from the remote branch, pushes the commit \
        (never forced) and proposes unapplied actions on sandpiper/proposals/<plan-id>. When the branch moved \
        meanwhile, the run re-reads, re-plans and retries (--max-attempts), then gives up with a message.

        Exit codes: 0 done (or nothing to do); 2 actions left for review (with --detailed-exitcode); \
        1 error: invalid spec, lock held, an action failed, push refused.
        """)

    @Argument(help: "Cluster directory (Clusters/<name>) or its cluster.yaml.")
    var cluster: String

    @Flag(help: "CI mode: --commit, plus lock on the remote, plan from and push to the remote branch, propose moves.")
    var ci = false

    @Flag(help: "Commit state.json and the applied plans to git (libgit2).")
    var commit = false

    @Flag(help: "Commit actions the automation level does not apply to sandpiper/proposals/<plan-id>.")
    var propose = false

    @Option(help: "Remote for --ci (default: origin).")
    var remote: String?

    @Option(help: "Branch to read from and commit to (default: the checked-out branch).")
    var branch: String?

    @Option(help: "Revision to read; with --commit it must be the branch's tip (guards against a moved branch).")
    var ref: String?

    @OptionGroup var identity: GitIdentityFlags

    @Option(help: "Attempts when the branch or remote moved meanwhile.")
    var maxAttempts: Int = 3

    @Flag(help: "Also stop and undefine undeclared VMs.")
    var prune = false

    @Flag(help: "Exit 2 when actions are left for review.")
    var detailedExitcode = false

    @Flag(help: "Print one JSON object (formatVersion 1).")
    var json = false

    @OptionGroup var telemetry: TelemetryFlags

    @Option(help: "Write the run's sandpiper_* metrics to this node_exporter textfile (*.prom), atomically.")
    var metricsFile: String?

    func validate() throws {
        if maxAttempts < 1 { throw ValidationError("--max-attempts must be at least 1") }
        if remote != nil && !ci { throw ValidationError("--remote is used with --ci") }
        if ref != nil && !(commit || ci) {
            throw ValidationError("--ref needs --commit or --ci: decisions computed from a commit are committed on top of it")
        }
        if propose && !(commit || ci) {
            throw ValidationError("--propose needs --commit or --ci: a proposal branch must hold the state its plan is based on")
        }
    }

    func run() throws {
        var options = ReconcileOptions()
        options.commit = commit || ci
        options.remote = ci ? (remote ?? "origin") : nil
        options.branch = branch
        options.ref = ref
        options.propose = propose
        options.maxAttempts = maxAttempts
        options.prune = prune
        options.author = identity.author
        options.committer = identity.committer
        options.telemetry = telemetry.options(quiet: json)
        let reconciler = Reconciler(path: cluster, options: options)
        reconciler.log = { Output.error($0) }
        if !json {
            let progress = ApplyProgress()
            reconciler.onStart = progress.onStart
            reconciler.onFinish = progress.onFinish
        }
        let started = Date()
        let outcome: ReconcileOutcome
        do { outcome = try reconciler.run() } catch {
            let results = notify(nil, loadError: (error as? EngineError).flatMap { if case .load = $0 { "\(error)" } else { nil } })
            writeMetrics(nil, cluster: URL(fileURLWithPath: cluster).lastPathComponent, started: started,
                         notifications: results)
            if json { print((try? Output.json(ReconcileJSON(error: "\(error)"))) ?? "{}") }
            Output.error("error: \(error)")
            throw ExitCode.invalid
        }
        let results = notify(outcome)
        writeMetrics(outcome, cluster: outcome.cluster, started: started, notifications: results)
        if json { print(try Output.json(ReconcileJSON(outcome))) } else { print(Self.text(outcome)) }
        if !outcome.succeeded { throw ExitCode.invalid }
        if detailedExitcode && outcome.pending > 0 { throw ExitCode.changesPresent }
    }

    /// The same series `sandpiper run` serves, for node_exporter's textfile collector (one-shot CI runs).
    /// The webhooks (`notify:`) of the policy the run used hear what it saw (when the spec did not load, those of
    /// the working tree's policy, if it loads). Bounded: a receiver that does not answer holds the exit at most 5 s.
    func notify(_ outcome: ReconcileOutcome?, loadError: String? = nil) -> [Notifier.Result] {
        var isDirectory: ObjCBool = false
        let given = URL(fileURLWithPath: cluster).standardizedFileURL
        let directory = FileManager.default.fileExists(atPath: given.path, isDirectory: &isDirectory) && isDirectory.boolValue
            ? given : given.deletingLastPathComponent()
        let policies = directory.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Policies")
        let webhooks = outcome?.notify ?? (loadError == nil ? [] : (try? Engine.load(cluster))?.policy.notify ?? [])
        guard !webhooks.isEmpty else { return [] }
        let logger = Logger(label: "sandpiper.reconcile") { LineLogHandler(label: $0, format: .text) }
        return OneShotNotifications.deliver(outcome, loadError: loadError, webhooks: webhooks, policiesDirectory: policies,
                                            cluster: outcome?.cluster ?? directory.lastPathComponent, logger: logger)
    }

    func writeMetrics(_ outcome: ReconcileOutcome?, cluster: String, started: Date, notifications: [Notifier.Result] = []) {
        guard let metricsFile else { return }
        let metrics = ControllerMetrics()
        for r in notifications { metrics.notification(cluster: cluster, r) }
        let now = Date()
        if let outcome { metrics.record(outcome) }
        metrics.roundFinished(cluster: cluster, succeeded: outcome?.succeeded ?? false,
                              seconds: now.timeIntervalSince(started), at: now.timeIntervalSince1970)
        do { try metrics.write(to: URL(fileURLWithPath: metricsFile)) } catch {
            Output.error("warning: cannot write --metrics-file \(metricsFile): \(error)")
        }
    }

    static func text(_ o: ReconcileOutcome) -> String {
        var lines: [String] = []
        let plan = o.plan
        lines.append("Reconcile \(o.cluster) (automation \(o.automation.rawValue)"
            + (o.outsideChangeWindow ? ", outside the change windows: moves proposed" : "") + ")"
            + (o.baseCommit.map { " from \($0.prefix(12))" } ?? "") + ":")
        if let plan {
            lines.append("  plan \(plan.id ?? "?"): \(plan.actions.count) action(s), \(plan.summary.hotspots) hotspot(s), "
                + "\(plan.summary.unresolved) unresolved")
        }
        for (doc, report) in zip(o.applied, o.reports) {
            lines.append("  applied plan \(doc.id ?? "?"): \(report.done) of \(doc.actions.count) done"
                + (report.succeeded ? "" : " (FAILED)"))
        }
        if o.applied.isEmpty { lines.append("  nothing applied") }
        if let p = o.proposal {
            lines.append("  left for review: plan \(p.id ?? "?") with \(p.actions.count) action(s)"
                + (o.proposalBranch.map { " on branch \($0)" } ?? "")
                + (o.proposalFile.map { ", saved to \(Output.relative($0)) (sandpiper apply \(Output.relative($0)))" } ?? ""))
        }
        for n in o.notes { lines.append("  note: \(n)") }
        if let c = o.commit {
            lines.append("  committed \(c.prefix(12)) on \(o.branch ?? "?")" + (o.pushed ? " and pushed" : ""))
        } else if o.branch != nil {
            lines.append("  no commit: nothing changed")
        }
        return lines.joined(separator: "\n")
    }
}

/// The `reconcile --json` summary.
struct ReconcileJSON: Encodable {
    struct Applied: Encodable {
        var planID: String
        var succeeded: Bool
        var done: Int
        var actions: Int
        var outcomes: [ApplyJSON.Outcome]
    }
    struct Proposal: Encodable { var planID: String; var actions: Int; var branch: String?; var file: String? }
    var formatVersion = 1
    var ok: Bool
    var error: String?
    var cluster: String?
    var automation: String?
    /// Present (true) only when moves were held back by the policy's change windows.
    var outsideChangeWindow: Bool?
    var baseCommit: String?
    var attempts: Int?
    var planID: String?
    var planActions: Int?
    var hotspots: Int?
    var unresolved: Int?
    var applied: [Applied] = []
    var pending: Int = 0
    var proposal: Proposal?
    var recordedInventory: Bool = false
    var commit: String?
    var branch: String?
    var pushed: Bool = false
    var notes: [String] = []

    init(error: String) { ok = false; self.error = error }

    init(_ o: ReconcileOutcome) {
        ok = o.succeeded
        cluster = o.cluster
        automation = o.automation.rawValue
        outsideChangeWindow = o.outsideChangeWindow ? true : nil
        baseCommit = o.baseCommit
        attempts = o.attempts
        planID = o.plan?.id
        planActions = o.plan?.actions.count
        hotspots = o.plan?.summary.hotspots
        unresolved = o.plan?.summary.unresolved
        applied = zip(o.applied, o.reports).map { doc, r in
            Applied(planID: doc.id ?? r.planID, succeeded: r.succeeded, done: r.done, actions: doc.actions.count,
                    outcomes: r.outcomes.map(ApplyJSON.Outcome.init))
        }
        pending = o.pending
        proposal = o.proposal.map { Proposal(planID: $0.id ?? "", actions: $0.actions.count, branch: o.proposalBranch,
                                            file: o.proposalFile.map(Output.relative)) }
        recordedInventory = o.recordedInventory
        commit = o.commit
        branch = o.branch
        pushed = o.pushed
        notes = o.notes
    }
}
