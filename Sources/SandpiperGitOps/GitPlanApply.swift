import Foundation
import SandpiperGit
import SandpiperEngine
import SandpiperModel

/// `apply --from-ref` and `apply --commit`: executing a reviewed plan with git as the record.
public enum GitPlanApply {
    public struct Outcome {
        public var document: PlanDocument
        public var report: ApplyReport
        public var commit: String?
        public var branch: String
        public var pushed: Bool
        public var notes: [String]
    }

    /// Applies the plan committed at `fromRef` (`<cluster>/plans/<id>.json`, the id taken from a
    /// `sandpiper/proposals/<id>` ref or `planID`) only while it is still fresh against the branch's tip (spec,
    /// policy, state lineage/serial, fleet inventory), then commits state.json and the plan on the branch (and
    /// pushes with a remote). Nothing is applied when the plan is stale.
    public static func run(path: String, fromRef: String, planID: String?, options: ReconcileOptions,
                           connect: @escaping (LoadedCluster) -> FleetConnections = { FleetConnections(cluster: $0) },
                           onStart: ((Int, Int, String) -> Void)? = nil,
                           onFinish: ((ApplyReport.Outcome) -> Void)? = nil,
                           log: @escaping (String) -> Void = { _ in }) throws -> Outcome {
        let location = try GitClusterLocation.locate(path)
        let repo = location.repository
        guard let id = planID ?? GitProposals.planID(fromRef: fromRef) else {
            throw GitWorkflowError.proposal("\(fromRef) is not a sandpiper/proposals/<plan-id> branch; name the plan "
                + "with --plan-id")
        }
        let refCommit = try git("resolve \(fromRef)") { () throws(GitError) in try repo.resolve(fromRef) }
        let planPath = location.planPath(id)
        guard let bytes = try git("read \(planPath) at \(fromRef)", { () throws(GitError) in
            try repo.readFile(planPath, at: refCommit)
        }) else {
            throw GitWorkflowError.proposal("\(fromRef) has no plan \(planPath)")
        }
        let document = try PlanStore.decode(Data(bytes), source: "\(fromRef):\(planPath)")
        let session = try GitSession(location: location, options: options, operation: "apply", log: log)
        defer { session.release() }
        var report: ApplyReport?
        let result = try session.run { (snapshot, attempt) throws -> GitSession.Work in
            guard attempt == 1 else { return GitSession.Work(touched: []) }
            let state = try snapshot.readState()
            let connections = connect(snapshot.cluster)
            let applier = Applier(cluster: snapshot.cluster, connections: connections, state: state,
                                  options: ApplyOptions(onStart: onStart, onFinish: onFinish,
                                                        observationNow: try Engine.observationClock(snapshot.cluster)))
            let reasons = applier.staleness(of: document, stateBefore: state)
            if !reasons.isEmpty { throw EngineError.stale(reasons) }
            let r = try applier.apply(document)
            report = r
            try PlanStore.save(document, to: PlanStore.defaultURL(snapshot.cluster, id: id))
            return GitSession.Work(touched: ["state.json", "plans/\(id).json"], applied: [document], reports: [r])
        }
        return Outcome(document: document, report: report!, commit: result.commit?.hex, branch: session.branch,
                       pushed: result.pushed, notes: result.notes)
    }

    /// After a working-tree apply: commits exactly state.json and `plans/<id>.json` of `cluster` on `branch`
    /// (default: the checked-out branch). Returns the commit, nil when nothing changed.
    /// What `apply F --commit` needs before it touches the fleet: a repository around the cluster, and no
    /// uncommitted operator edits to state.json (they would be overwritten by the apply and lost).
    public static func checkCommitPreconditions(_ cluster: LoadedCluster, author: String?,
                                                committer: String?) throws {
        let location = try GitClusterLocation.locate(cluster.directory.path)
        _ = try GitIdentity.resolve(author: author, committer: committer, repository: location.repository)
        if try git("status", { () throws(GitError) in try location.repository.isDirty(location.statePath) }) {
            throw GitWorkflowError.uncommittedChanges("\(location.statePath) has uncommitted changes; commit or "
                + "discard them first (the apply would overwrite them)")
        }
    }

    public static func commitWorkingTree(_ cluster: LoadedCluster, document: PlanDocument, report: ApplyReport,
                                         branch: String?, author: String?, committer: String?) throws -> String? {
        let location = try GitClusterLocation.locate(cluster.directory.path)
        let identity = try GitIdentity.resolve(author: author, committer: committer, repository: location.repository)
        let id = document.id ?? report.planID
        let planURL = PlanStore.defaultURL(cluster, id: id)
        if !FileManager.default.fileExists(atPath: planURL.path) { try PlanStore.save(document, to: planURL) }
        var files: [String: [UInt8]] = [:]
        for (rel, url) in [("state.json", StateFile(directory: cluster.directory).url), ("plans/\(id).json", planURL)] {
            guard let data = FileManager.default.contents(atPath: url.path) else { continue }
            files[location.clusterDirectory + "/" + rel] = [UInt8](data)
        }
        let subject = GitCommitMessage.subject(cluster: cluster.spec.name, applied: [document], reports: [report],
                                               recordedInventory: false)
        let body = GitCommitMessage.body(applied: [document], reports: [report], basedOn: nil, proposal: nil)
        let commit = try git("commit the applied plan") { () throws(GitError) in
            try location.repository.commitFiles(files, message: CommitScrubber.scrub(subject + "\n\n" + body + "\n",
                                                                                     cluster: cluster),
                                                author: identity.author, committer: identity.committer,
                                                branch: branch, expectedParent: .currentTip)
        }
        return commit?.hex
    }
}
