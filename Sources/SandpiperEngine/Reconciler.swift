import Foundation
import SandpiperGit
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
    public var log: (String) -> Void = { _ in }

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
        let connections = connect(cluster)
        var outcome = ReconcileOutcome(cluster: cluster.spec.name, automation: cluster.policy.automation)
        let r = try round(cluster, connections: connections, specCommit: nil)
        outcome.plan = r.plan
        outcome.applied = r.applied
        outcome.reports = r.reports
        outcome.recordedInventory = r.recordedInventory
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
        /// Files of the cluster directory written (relative: `state.json`, `plans/<id>.json`).
        var touched: Set<String> = []
    }

    /// Kinds `partial` applies; moves (and removals) are proposed.
    static let partialKinds: Set<String> = ["tune", "resize", "define", "start"]

    func round(_ cluster: LoadedCluster, connections: FleetConnections, specCommit: String?) throws -> Round {
        let stateFile = StateFile(directory: cluster.directory)
        var state: StateDocument?
        do { state = try stateFile.read(cluster: cluster.spec.name) } catch { throw EngineError.state(error) }
        var snapshot = try Engine.observe(cluster, connections: connections, state: state, telemetry: options.telemetry)
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
            let applier = Applier(cluster: cluster, connections: connections, state: state)
            applier.observationNow = snapshot.observation.now
            applier.onStart = onStart
            applier.onFinish = onFinish
            let report = try applier.apply(document)
            state = applier.state
            let id = document.id ?? report.planID
            try PlanStore.save(document, to: PlanStore.defaultURL(cluster, id: id))
            result.applied.append(document)
            result.reports.append(report)
            result.touched.formUnion(["state.json", "plans/\(id).json"])
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
    static func subset(_ document: PlanDocument, kinds: Set<String>) -> PlanDocument {
        var kept = Set<String>()
        var copy = document
        copy.actions = document.actions.filter { a in
            guard kinds.contains(a.kind), a.dependsOn.allSatisfy(kept.contains) else { return false }
            kept.insert(a.id)
            return true
        }
        guard copy.actions.count != document.actions.count else { return document }
        let count = { (ks: Set<String>) in copy.actions.filter { ks.contains($0.kind) }.count }
        copy.summary.add = count(["define", "start"])
        copy.summary.change = count(["tune", "resize"])
        copy.summary.move = count(["migrate"])
        copy.summary.remove = count(["stop", "undefine"])
        let power = count(["drain", "power-off", "power-on"])
        copy.summary.power = power == 0 ? nil : power
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
            o.baseCommit = snapshot.commit.hex
            o.attempts = attempt
            o.plan = r.plan
            o.applied += r.applied
            o.reports += r.reports
            o.recordedInventory = o.recordedInventory || r.recordedInventory
            o.proposal = r.proposal
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
            o.notes.append("plan \(proposal.id ?? "?") was not applied (automation \(o.automation.rawValue)); "
                + "run with --propose to commit it to \(GitProposals.branch(proposal.id ?? "<id>")) for review")
        }
        return o
    }
}

/// The git side shared by `reconcile --commit/--ci` and `apply --from-ref`: lock, read the branch tip, let the
/// caller work on a snapshot of it, commit exactly Sandpiper's files on top of the commit read, push; when the
/// branch or the remote moved meanwhile, re-read at the new tip (carrying Sandpiper's files over when nobody
/// else changed them) and let the caller work again, a bounded number of times. Never force-pushes, never moves
/// a branch that moved under it, never stages anything but Sandpiper's own files.
public final class GitSession {
    public struct Work {
        public var touched: Set<String>
        public var applied: [PlanDocument]
        public var reports: [ApplyReport]
        public var recordedInventory: Bool
        public var proposal: PlanDocument?
        public init(touched: Set<String>, applied: [PlanDocument] = [], reports: [ApplyReport] = [],
                    recordedInventory: Bool = false, proposal: PlanDocument? = nil) {
            self.touched = touched; self.applied = applied; self.reports = reports
            self.recordedInventory = recordedInventory; self.proposal = proposal
        }
    }
    public struct Result {
        public var base: ObjectID
        public var commit: ObjectID?
        public var pushed: Bool
        public var attempts: Int
        public var notes: [String]
    }

    public let location: GitClusterLocation
    public let identity: GitIdentity
    public let branch: String
    public let remote: String?
    public let maxAttempts: Int
    public var beforePush: ((Int) throws -> Void)?
    let log: (String) -> Void
    private let lock: GitRefLock
    private var repo: GitRepository { location.repository }
    /// Kept alive for the whole session: the fleet's test-driver hosts read their node files from here.
    private var snapshots: [GitSnapshot] = []

    public init(location: GitClusterLocation, options: ReconcileOptions, operation: String,
                log: @escaping (String) -> Void) throws {
        self.location = location
        let repo = location.repository
        identity = try GitIdentity.resolve(author: options.author, committer: options.committer, repository: repo)
        remote = options.remote
        maxAttempts = max(1, options.maxAttempts)
        self.log = log
        if let b = options.branch {
            branch = b.hasPrefix("refs/heads/") ? String(b.dropFirst("refs/heads/".count)) : b
        } else if let current = try git("read HEAD", { () throws(GitError) in try repo.currentBranch() }) {
            branch = current
        } else {
            throw GitWorkflowError.conflict("HEAD is detached: name the branch to commit to with --branch")
        }
        // The working tree's lock too, when this checkout holds the cluster: an operator's `apply F` here and
        // this run must not act on the fleet at the same time.
        if let dir = location.worktreeDirectory, FileManager.default.fileExists(atPath: dir.path) {
            do { fileLock = try ClusterLock.acquire(directory: dir, operation: operation) } catch {
                throw GitWorkflowError.conflict("\(error)")
            }
        }
        do {
            lock = try GitRefLock.acquire(repo, cluster: location.clusterName, remote: options.remote,
                                          operation: operation, author: identity.author)
        } catch {
            fileLock?.release()
            throw error
        }
    }

    deinit { release() }
    public func release() {
        lock.release()
        fileLock?.release()
    }
    private var fileLock: ClusterLock?

    var branchRef: String { "refs/heads/" + branch }
    var trackingRef: String { "refs/remotes/\(remoteName)/\(branch)" }
    var remoteName: String { String((remote ?? "origin").map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }) }
    var workRef: String { "refs/sandpiper/work/\(location.clusterName)" }

    /// The commit to build on: the remote branch (fetched now) or the local branch.
    func tip() throws -> ObjectID {
        if let remote {
            try git("fetch \(branch) from \(remote)") { () throws(GitError) in
                try repo.fetch(remote: remote, refspecs: ["+\(branchRef):\(trackingRef)"])
            }
            guard let t = try git("read \(trackingRef)", { () throws(GitError) in try repo.readRef(trackingRef) }) else {
                throw GitWorkflowError.conflict("\(remote) has no branch \(branch)")
            }
            return t
        }
        guard let t = try git("read \(branchRef)", { () throws(GitError) in try repo.readRef(branchRef) }) else {
            throw GitWorkflowError.conflict("branch \(branch) has no commits")
        }
        return t
    }

    /// Runs `work` on a snapshot of the tip, commits, pushes, retries. `work` gets the attempt number.
    public func run(_ work: (GitSnapshot, Int) throws -> Work) throws -> Result {
        var carried: [String: [UInt8]] = [:]
        var applied: [PlanDocument] = []
        var reports: [ApplyReport] = []
        var recorded = false
        var lastBase: ObjectID?
        var lastCommit: ObjectID?
        var notes: [String] = []
        let checkedOut = remote == nil && (try? repo.currentBranch()) == branch && !repo.isBare
        for attempt in 1...maxAttempts {
            let base = try tip()
            if let lastBase, lastBase != base {
                for path in carried.keys.sorted() {
                    let before = try git("read \(path)") { () throws(GitError) in try repo.readFile(path, at: lastBase) }
                    let now = try git("read \(path)") { () throws(GitError) in try repo.readFile(path, at: base) }
                    if before != now {
                        let kept = keepUnpushed(lastCommit)
                        throw GitWorkflowError.conflict("\(path) was changed on \(branch) by someone else while this "
                            + "run held the lock (\(lastBase.abbreviated) -> \(base.abbreviated)); this run's decisions "
                            + "were not pushed over it\(kept). The fleet was changed by this run: reconcile again.")
                    }
                }
                notes.append("\(branch) moved to \(base.abbreviated) meanwhile: re-read and re-planned (attempt \(attempt))")
                log("\(branch) moved to \(base.abbreviated): re-reading and re-planning (attempt \(attempt) of \(maxAttempts))")
            }
            if checkedOut, try git("status", { () throws(GitError) in try repo.isDirty(location.statePath) }) {
                throw GitWorkflowError.uncommittedChanges("\(location.statePath) has uncommitted changes; commit or "
                    + "revert them first (Sandpiper commits its own state and would not overwrite yours)")
            }
            let snapshot = try GitSnapshot(location, commit: base, revision: attempt == 1 ? branch : base.abbreviated)
            snapshots.append(snapshot)
            for (path, bytes) in carried {
                try snapshot.write(bytes, to: String(path.dropFirst(location.clusterDirectory.count + 1)))
            }
            let w = try work(snapshot, attempt)
            applied += w.applied
            reports += w.reports
            recorded = recorded || w.recordedInventory
            for rel in w.touched {
                if let bytes = snapshot.bytes(rel) {
                    // Files are committed as written: state and plans never hold URIs (hosts go by name), and the
                    // free text that could quote one (journal errors, command output) is scrubbed when journaled.
                    carried[location.clusterDirectory + "/" + rel] = bytes
                }
            }
            if carried.isEmpty { return Result(base: base, commit: nil, pushed: false, attempts: attempt, notes: notes) }

            let subject = GitCommitMessage.subject(cluster: snapshot.cluster.spec.name, applied: applied,
                                                   reports: reports, recordedInventory: recorded)
            let body = GitCommitMessage.body(applied: applied, reports: reports, basedOn: base, proposal: w.proposal)
            let message = CommitScrubber.scrub(subject + "\n" + (body.isEmpty ? "" : "\n" + body + "\n"),
                                               cluster: snapshot.cluster)
            let files = carried
            if let remote {
                let current = try git("read \(workRef)", { () throws(GitError) in try repo.readRef(workRef) })
                try git("prepare \(workRef)") { () throws(GitError) in
                    try repo.updateRef(workRef, to: base, expected: current, message: "sandpiper: work on \(base.abbreviated)")
                }
                let made = try git("commit on \(branch)") { () throws(GitError) in
                    try repo.commitFiles(files, message: message, author: identity.author, committer: identity.committer,
                                         branch: workRef, expectedParent: .commit(base))
                }
                guard let commit = made else {
                    return Result(base: base, commit: nil, pushed: false, attempts: attempt, notes: notes)
                }
                lastCommit = commit
                try beforePush?(attempt)
                do {
                    try repo.push(remote: remote, refspecs: ["\(workRef):\(branchRef)"])
                    _ = try? repo.updateRef(trackingRef, to: commit, expected: base, message: "sandpiper: pushed")
                    _ = try? repo.deleteRef(workRef, expected: commit)
                    return Result(base: base, commit: commit, pushed: true, attempts: attempt, notes: notes)
                } catch where [.nonFastForward, .modified].contains(error.kind) {
                    lastBase = base
                    continue
                } catch {
                    let kept = keepUnpushed(commit)
                    throw GitWorkflowError.git("push \(branch) to \(remote)\(kept)", error)
                }
            } else {
                do {
                    let made = try repo.commitFiles(files, message: message, author: identity.author,
                                                    committer: identity.committer, branch: branchRef,
                                                    expectedParent: .commit(base))
                    return Result(base: base, commit: made, pushed: false, attempts: attempt, notes: notes)
                } catch where error.kind == .modified {
                    lastBase = base
                    continue
                } catch where error.kind == .uncommittedChanges {
                    throw GitWorkflowError.uncommittedChanges(error.message)
                } catch {
                    throw GitWorkflowError.git("commit on \(branch)", error)
                }
            }
        }
        let kept = keepUnpushed(lastCommit)
        throw GitWorkflowError.gaveUp(attempts: maxAttempts, reason: "\(branch) kept moving while this run tried to "
            + "commit its decisions\(kept)")
    }

    /// Keeps an unpushed decisions commit reachable (`refs/sandpiper/unpushed/<cluster>`, pushed to the remote too
    /// when possible) so nothing this run did is lost; returns a note for the message.
    private func keepUnpushed(_ commit: ObjectID?) -> String {
        guard let commit else { return "" }
        let ref = "refs/sandpiper/unpushed/\(location.clusterName)/\(commit.abbreviated)"
        guard (try? repo.createRefIfAbsent(ref, target: commit, message: "sandpiper: unpushed decisions")) != nil else {
            return ""
        }
        if let remote { try? repo.push(remote: remote, refspecs: ["\(ref):\(ref)"]) }
        return "; its commit \(commit.abbreviated) is kept at \(ref)\(remote.map { " (also on \($0))" } ?? "")"
    }

    /// Commits `document` to `sandpiper/proposals/<id>` at `base` (and pushes it with a remote, unless the remote
    /// already has that proposal). Returns the branch name.
    public func propose(_ document: PlanDocument, base: ObjectID) throws -> String {
        guard let id = document.id else { throw GitWorkflowError.proposal("the plan has no id") }
        let name = GitProposals.branch(id)
        let ref = "refs/heads/" + name
        if let remote {
            let refs = try git("list \(remote)") { () throws(GitError) in try repo.remoteReferences(remote: remote) }
            if refs[ref] != nil { return name }
        }
        try GitProposals.propose(document, location: location, base: base, identity: identity)
        if let remote {
            try git("push \(name) to \(remote)") { () throws(GitError) in
                try repo.push(remote: remote, refspecs: ["\(ref):\(ref)"])
            }
        }
        return name
    }
}

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
            let applier = Applier(cluster: snapshot.cluster, connections: connections, state: state)
            let reasons = applier.staleness(of: document, stateBefore: state)
            if !reasons.isEmpty { throw EngineError.stale(reasons) }
            applier.observationNow = try Engine.observationClock(snapshot.cluster)
            applier.onStart = onStart
            applier.onFinish = onFinish
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
