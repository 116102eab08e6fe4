import Foundation
import SandpiperGit
import SandpiperEngine
import SandpiperModel

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
        // `sandpiper run` holds the ref lock as a lease across rounds and passes it in; the session uses it
        // and leaves releasing it to the controller.
        if let lease = options.lease {
            lock = lease
            ownsLock = false
            return
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
        if ownsLock { lock.release() }
        fileLock?.release()
    }
    private var fileLock: ClusterLock?
    private var ownsLock = true

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
