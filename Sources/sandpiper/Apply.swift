import ArgumentParser
import Foundation
import SandpiperEngine
import SandpiperGitOps
import SandpiperModel

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Execute a saved plan through libvirt (or plan and apply in one step).",
        discussion: """
        `sandpiper apply Clusters/<name>/plans/<id>.json` executes a reviewed plan. It is refused when it is \
        stale: cluster.yaml, the policy, state.json or the fleet's inventory changed since it was made (the \
        message says which). Utilization is not part of that check; each action re-checks that its VM is still \
        where the plan expects.

        `sandpiper apply Clusters/<name> --auto-approve` plans and applies in one step.

        Every action is journaled in state.json before and after it runs, and the state is rewritten atomically, \
        so a failure or a kill at any point leaves it true to what was done. Exit 0 all done, 1 failed or refused.
        """)

    @Argument(help: "A saved plan file, or a cluster directory with --auto-approve.")
    var target: String

    @Flag(help: "With a cluster directory: plan and apply without a separate review step.")
    var autoApprove = false

    @Option(help: "The cluster directory of the plan (default: the directory the plan records, found above the plan file or the current directory; else the plan file's ../..).")
    var cluster: String?

    @Flag(help: "Also stop and undefine undeclared VMs (with --auto-approve).")
    var prune = false

    @Flag(help: "Print a JSON report (formatVersion 1) instead of progress lines.")
    var json = false

    @Flag(help: "Commit state.json and the applied plan to git (only those files) on the branch.")
    var commit = false

    @Option(help: "Apply the plan committed on this ref (sandpiper/proposals/<id>) while fresh; TARGET is the cluster directory.")
    var fromRef: String?

    @Option(help: "With --from-ref: the plan's id when the ref is not a proposal branch.")
    var planID: String?

    @Option(help: "Branch to commit to (default: the checked-out branch).")
    var branch: String?

    @Option(help: "With --from-ref: take the lock on, read from and push to this remote.")
    var remote: String?

    @OptionGroup var identity: GitIdentityFlags

    /// A cluster directory (or cluster.yaml) rather than a plan file.
    private var targetIsCluster: Bool {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory)
        return exists && (isDirectory.boolValue || target.hasSuffix(".yaml"))
    }

    func validate() throws {
        guard fromRef == nil else { return }
        if !FileManager.default.fileExists(atPath: target) {
            throw ValidationError("\(target): no such plan file or cluster directory")
        }
        if targetIsCluster && !autoApprove {
            throw ValidationError("\(target) is a cluster: pass --auto-approve to plan and apply in one step, "
                + "or apply a saved plan file (Clusters/<name>/plans/<id>.json)")
        }
    }

    func run() throws {
        if let fromRef { return try runFromRef(fromRef) }
        let targetIsCluster = self.targetIsCluster
        do {
            // A saved plan is read first: it names its cluster (relative to the repository root), so it applies
            // from wherever it was saved.
            let saved = targetIsCluster ? nil : try PlanStore.load(target)
            let clusterPath = try saved.map { try PlanStore.clusterDirectory(for: $0, planPath: target, override: cluster) }
                ?? target
            let loaded = try Engine.load(clusterPath)
            let lock: ClusterLock
            do { lock = try ClusterLock.acquire(directory: loaded.directory, operation: "apply") } catch {
                throw EngineError.apply("\(error)")
            }
            defer { lock.release() }
            let state = try Engine.readState(loaded)
            Output.warnInterrupted(state, directory: loaded.directory, ownLock: lock.info.id)
            let connections = FleetConnections(cluster: loaded, previous: state?.inventory)
            defer { connections.closeAll() }

            let document: PlanDocument
            var observedAt: Double? = nil
            if let saved {
                document = saved
            } else {
                let snapshot = try Engine.observe(loaded, connections: connections, state: state,
                                                  telemetry: TelemetryOptions(progress: Progress.sampling(quiet: json)))
                document = Engine.plan(loaded, snapshot: snapshot, state: state, prune: prune)
                observedAt = snapshot.observation.now
                if !json { print(PlanRenderer(color: Output.isTerminal).render(document)); print("") }
            }
            if commit {
                try GitPlanApply.checkCommitPreconditions(loaded, author: identity.author, committer: identity.committer)
            }
            var options = ApplyOptions(observationNow: try observedAt ?? Engine.observationClock(loaded))
            // Testing aid for crash-safety tests: pause after each action is journaled as started.
            if let ms = ProcessInfo.processInfo.environment["SANDPIPER_APPLY_PAUSE_MS"].flatMap(Int.init) {
                options.pauseAfterStart = .milliseconds(ms)
            }
            if !json {
                let progress = ApplyProgress()
                options.onStart = progress.onStart
                options.onFinish = progress.onFinish
            }
            let applier = Applier(cluster: loaded, connections: connections, state: state, options: options)
            if !targetIsCluster {
                let reasons = applier.staleness(of: document, stateBefore: state)
                if !reasons.isEmpty { throw EngineError.stale(reasons) }
            }
            if document.actions.isEmpty {
                if json { print(try Output.json(ApplyJSON(planID: document.id ?? "", report: nil))) }
                else { print("Nothing to apply.") }
                return
            }
            let report = try applier.apply(document)
            if json { print(try Output.json(ApplyJSON(planID: report.planID, report: report))) }
            else {
                print("\nApply \(report.succeeded ? "complete" : "FAILED"): \(report.done) of "
                    + "\(document.actions.count) actions done. State: \(Output.relative(StateFile(directory: loaded.directory).url.path)) "
                    + "(serial \(applier.state.serial)).")
            }
            if commit {
                do {
                    let made = try GitPlanApply.commitWorkingTree(loaded, document: document, report: report,
                                                                   branch: branch, author: identity.author,
                                                                   committer: identity.committer)
                    if !json { print(made.map { "Committed \($0.prefix(12))." } ?? "Nothing to commit.") }
                } catch {
                    Output.error("error: the apply is recorded in state.json but could not be committed: \(error)")
                    throw ExitCode.invalid
                }
            }
            if !report.succeeded { throw ExitCode.invalid }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            throw Output.failure(error, json: json)
        }
    }

    /// `apply DIR --from-ref sandpiper/proposals/<id>`: a reviewed plan, applied only while fresh, committed.
    private func runFromRef(_ ref: String) throws {
        var options = ReconcileOptions()
        options.commit = true
        options.remote = remote
        options.branch = branch
        options.author = identity.author
        options.committer = identity.committer
        let progress = ApplyProgress()
        do {
            let onStart: ((Int, Int, String) -> Void)? = json ? nil : { progress.onStart($0, $1, $2) }
            let onFinish: ((ApplyReport.Outcome) -> Void)? = json ? nil : { progress.onFinish($0) }
            let outcome = try GitPlanApply.run(path: target, fromRef: ref, planID: planID, options: options,
                                               onStart: onStart, onFinish: onFinish, log: { Output.error($0) })
            if json {
                var report = ApplyJSON(planID: outcome.report.planID, report: outcome.report)
                report.commit = outcome.commit
                report.pushed = outcome.pushed
                print(try Output.json(report))
            } else {
                let verdict = outcome.report.succeeded ? "complete" : "FAILED"
                let committed = outcome.commit.map { "Committed \($0.prefix(12)) on \(outcome.branch)" } ?? "Nothing committed"
                print("\nApply \(verdict): \(outcome.report.done) of \(outcome.document.actions.count) actions done. "
                    + committed + (outcome.pushed ? " and pushed." : "."))
            }
            if !outcome.report.succeeded { throw ExitCode.invalid }
        } catch let error as ExitCode {
            throw error
        } catch {
            throw Output.failure(error, json: json)
        }
    }
}

/// The `apply --json` report.
struct ApplyJSON: Encodable {
    struct Outcome: Encodable {
        var action: String
        var kind: String
        var summary: String
        var status: String
        var detail: String?
        /// Migrations: how the VM really moved (live | cold).
        var mode: String?
        /// The dependency wave the action ran in (absent when skipped) and how long it took.
        var wave: Int?
        var seconds: Double?

        init(_ o: ApplyReport.Outcome) {
            action = o.actionID; kind = o.kind.rawValue; summary = o.summary; status = o.status.rawValue
            detail = o.detail; mode = o.mode?.rawValue
            wave = o.wave > 0 ? o.wave : nil
            seconds = o.wave > 0 ? PlanDocument.quantity(o.finishedAt - o.startedAt) : nil
        }
    }
    var formatVersion = 1
    var planID: String
    var succeeded: Bool
    var outcomes: [Outcome]
    /// With --from-ref: the decisions commit and whether it was pushed.
    var commit: String?
    var pushed: Bool?

    init(planID: String, report: ApplyReport?) {
        self.planID = planID
        succeeded = report?.succeeded ?? true
        outcomes = (report?.outcomes ?? []).map(Outcome.init)
    }
}
