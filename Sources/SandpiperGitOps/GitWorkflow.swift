import Foundation
import SandpiperRedaction
import SandpiperGit
import SandpiperEngine
import SandpiperModel

/// Failures of the git-driven workflow (issue 7), with the message an operator or CI log needs.
public enum GitWorkflowError: Error, CustomStringConvertible, Sendable {
    case git(String, GitError)
    case notInRepository(String)
    case lockHeld(LockInfo, ref: String, remote: String?)
    case lockNotHeld(ref: String, remote: String?)
    case lockWrongID(expected: String, found: String)
    case refNotTip(ref: String, branch: String)
    case uncommittedChanges(String)
    case conflict(String)
    case gaveUp(attempts: Int, reason: String)
    case proposal(String)

    public var description: String {
        switch self {
        case .git(let context, let e): "\(context): \(e.message)"
        case .notInRepository(let path): "\(path) is not inside a git repository"
        case .lockHeld(let info, let ref, let remote):
            "the cluster is locked: \(info) (\(remote.map { "\($0) " } ?? "")\(ref)). If that run is gone, release it "
                + "with `sandpiper force-unlock \(info.id) Clusters/\(ref.split(separator: "/").last ?? "") --git"
                + "\(remote.map { " --remote \($0)" } ?? "")`."
        case .lockNotHeld(let ref, let remote): "\(remote.map { "\($0) " } ?? "")\(ref): the cluster is not locked"
        case .lockWrongID(let expected, let found): "lock ID \(expected) does not match the held lock \(found)"
        case .refNotTip(let ref, let branch):
            "--ref \(ref) is not the tip of branch \(branch): decisions are committed on top of the commit they "
                + "were computed from; check out or name (--branch) the branch whose tip that is"
        case .uncommittedChanges(let m): m
        case .conflict(let m): m
        case .gaveUp(let attempts, let reason):
            "gave up after \(attempts) attempt\(attempts == 1 ? "" : "s"): \(reason). Nothing was force-pushed; "
                + "run again (the next run starts from the remote branch)."
        case .proposal(let m): m
        }
    }
}

/// Wraps a libgit2 call, naming what Sandpiper was doing.
@discardableResult
func git<T>(_ context: @autoclosure () -> String, _ body: () throws(GitError) -> T) throws(GitWorkflowError) -> T {
    do { return try body() } catch { throw .git(context(), error) }
}

/// A cluster directory inside a git repository.
public struct GitClusterLocation: @unchecked Sendable {
    public let repository: GitRepository
    /// Repository-relative directory of the cluster (`Clusters/demo`).
    public let clusterDirectory: String
    /// The cluster directory in the working tree (may not exist when only read at a ref).
    public let worktreeDirectory: URL?
    /// The lock and proposal name: the cluster directory's name (`Clusters/<name>`).
    public var clusterName: String { String(clusterDirectory.split(separator: "/").last ?? "") }
    public var statePath: String { clusterDirectory + "/state.json" }
    public func planPath(_ id: String) -> String { clusterDirectory + "/plans/\(id).json" }

    /// Finds the repository holding `path` (a cluster directory or its cluster.yaml; it need not exist in the
    /// working tree) and the cluster's repository-relative path.
    public static func locate(_ path: String) throws(GitWorkflowError) -> GitClusterLocation {
        var url = URL(fileURLWithPath: path).standardizedFileURL
        if url.lastPathComponent == "cluster.yaml" { url.deleteLastPathComponent() }
        var existing = url
        while !FileManager.default.fileExists(atPath: existing.path) && existing.path != "/" {
            existing.deleteLastPathComponent()
        }
        let repository: GitRepository
        do { repository = try GitRepository.discover(from: existing.path) } catch {
            throw .notInRepository(path)
        }
        guard let workdir = repository.workdir else { throw .notInRepository(path) }
        let root = URL(fileURLWithPath: workdir).resolvingSymlinksInPath().path
        let resolvedExisting = existing.resolvingSymlinksInPath().path
        let rest = url.path.dropFirst(existing.path.count)
        let full = resolvedExisting + rest
        guard full.hasPrefix(root + "/") || full == root else { throw .notInRepository(path) }
        let relative = String(full.dropFirst(root.count)).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard !relative.isEmpty else { throw .notInRepository("\(path) is the repository root, not a cluster directory; it") }
        return GitClusterLocation(repository: repository, clusterDirectory: relative,
                                  worktreeDirectory: URL(fileURLWithPath: full))
    }
}

/// A cluster as it is in one commit's tree, read through libgit2 without a checkout: cluster.yaml, the policy
/// and state.json come from the tree, and the cluster directory is materialised in a temporary directory so the
/// trace, host node files and templates it names resolve (the working tree is never read or written).
public final class GitSnapshot: @unchecked Sendable {
    public let location: GitClusterLocation
    public let commit: ObjectID
    /// How the revision was named (`main`, `HEAD`, a commit id).
    public let revision: String
    public let cluster: LoadedCluster
    /// The temporary copy of the repository part the cluster lives in; removed on deinit.
    public let root: URL

    public init(_ location: GitClusterLocation, commit: ObjectID, revision: String) throws(EngineError) {
        self.location = location
        self.commit = commit
        self.revision = revision
        root = FileManager.default.temporaryDirectory.appendingPathComponent("sandpiper-snapshot-\(UUID().uuidString)")
        let repo = location.repository
        let files = ClusterFiles(clusterDirectory: location.clusterDirectory,
                                 directory: root.appendingPathComponent(location.clusterDirectory),
                                 read: { try? repo.readFile($0, at: commit) },
                                 shown: { "\(revision):\($0)" })
        do {
            try Self.materialize(repo, commit: commit, directory: location.clusterDirectory, into: root,
                                 skip: ["plans", ".samples", ".sandpiper.lock"])
            let policies = (files.policyPath("x") as NSString).deletingLastPathComponent
            try Self.materialize(repo, commit: commit, directory: policies, into: root, skip: [])
        } catch {
            try? FileManager.default.removeItem(at: root)
            throw .plan("cannot read \(location.clusterDirectory) at \(revision): \(error)")
        }
        do {
            var loaded = try ClusterLoader.load(files: files)
            loaded.repositoryPath = files.clusterDirectory
            cluster = loaded
        } catch {
            try? FileManager.default.removeItem(at: root)
            throw .load(error)
        }
    }

    /// Resolves `revision` and reads the cluster there.
    public convenience init(_ location: GitClusterLocation, revision: String) throws(EngineError) {
        let commit: ObjectID
        do { commit = try location.repository.resolve(revision) } catch {
            throw .plan("cannot resolve \(revision): \(error.message)")
        }
        try self.init(location, commit: commit, revision: revision)
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    /// state.json as committed (or as written since into the snapshot by an apply).
    public func readState() throws(EngineError) -> StateDocument? {
        do { return try StateFile(directory: cluster.directory).read(cluster: cluster.spec.name) } catch { throw .state(error) }
    }

    /// Current bytes of a file of the cluster directory in the snapshot (`state.json`, `plans/<id>.json`).
    public func bytes(_ relative: String) -> [UInt8]? {
        FileManager.default.contents(atPath: cluster.directory.appendingPathComponent(relative).path).map { [UInt8]($0) }
    }

    public func write(_ bytes: [UInt8], to relative: String) throws {
        try AtomicFile.write(Data(bytes), to: cluster.directory.appendingPathComponent(relative))
    }

    static func materialize(_ repo: GitRepository, commit: ObjectID, directory: String, into root: URL,
                            skip: Set<String>) throws {
        guard let names = try repo.listDirectory(directory, at: commit) else { return }
        for name in names where !skip.contains(name) {
            let path = directory.isEmpty ? name : directory + "/" + name
            if try repo.listDirectory(path, at: commit) != nil {
                try materialize(repo, commit: commit, directory: path, into: root, skip: [])
            } else if let bytes = try repo.readFile(path, at: commit) {
                let url = root.appendingPathComponent(path)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(),
                                                        withIntermediateDirectories: true)
                try Data(bytes).write(to: url)
            }
        }
    }
}

/// Author and committer of Sandpiper's commits.
public struct GitIdentity: Sendable {
    public var author: Signature
    public var committer: Signature?

    public init(author: Signature, committer: Signature? = nil) { self.author = author; self.committer = committer }

    /// `Name <email>` -> Signature.
    public static func parse(_ text: String) -> Signature? {
        guard let lt = text.firstIndex(of: "<"), let gt = text.lastIndex(of: ">"), lt < gt else { return nil }
        let name = text[..<lt].trimmingCharacters(in: .whitespaces)
        let email = text[text.index(after: lt)..<gt].trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, !email.isEmpty else { return nil }
        return Signature(name: name, email: email)
    }

    /// `--author`, else `SANDPIPER_GIT_AUTHOR`, else the repository's user.name/user.email, else Sandpiper.
    public static func resolve(author: String?, committer: String?, repository: GitRepository) throws(GitWorkflowError)
        -> GitIdentity {
        func sig(_ text: String?, _ variable: String) throws(GitWorkflowError) -> Signature? {
            guard let text = text ?? ProcessInfo.processInfo.environment[variable], !text.isEmpty else { return nil }
            guard let s = parse(text) else {
                throw .conflict("\(text): expected \"Name <email>\" for the git \(variable.lowercased())")
            }
            return s
        }
        let a = try sig(author, "SANDPIPER_GIT_AUTHOR") ?? repository.defaultSignature()
        let c = try sig(committer, "SANDPIPER_GIT_COMMITTER")
        return GitIdentity(author: a, committer: c)
    }
}

/// Commit messages that summarise what a run did: `sandpiper(demo): 2 migrations, 1 swap — resolved hotspots on
/// pm2, pm3`. Names only (VMs, hosts, plan ids): never URIs.
public enum GitCommitMessage {
    public static func subject(cluster: String, applied: [PlanDocument], reports: [ApplyReport],
                               recordedInventory: Bool) -> String {
        let all = applied.flatMap(\.actions)
        guard !all.isEmpty else {
            return "sandpiper(\(cluster)): " + (recordedInventory ? "record observed inventory" : "update state")
        }
        var parts: [String] = []
        let swaps = Set(all.compactMap(\.swapGroup))
        let migrations = all.filter { $0.kind == .migrate && $0.swapGroup == nil }.count
        func add(_ n: Int, _ one: String, _ many: String) { if n > 0 { parts.append("\(n) \(n == 1 ? one : many)") } }
        add(migrations, "migration", "migrations")
        add(swaps.count, "swap", "swaps")
        for (kind, one, many): (ActionKind, String, String) in [
            (.define, "define", "defines"), (.start, "start", "starts"), (.resize, "resize", "resizes"),
            (.tune, "tune", "tunes"), (.stop, "stop", "stops"), (.undefine, "undefine", "undefines")] {
            add(all.filter { $0.kind == kind }.count, one, many)
        }
        var subject = "sandpiper(\(cluster)): " + parts.joined(separator: ", ")
        let hot = orderedUnique(applied.flatMap { $0.hotspots.map(\.host) })
        let unresolved = Set(applied.flatMap { $0.unresolved.compactMap(\.host) })
        let resolved = hot.filter { !unresolved.contains($0) }
        let failed = reports.contains { !$0.succeeded }
        if failed {
            let done = reports.reduce(0) { $0 + $1.done }
            subject += " — apply FAILED (\(done) of \(all.count) done)"
        } else if !resolved.isEmpty {
            subject += " — resolved hotspot\(resolved.count == 1 ? "" : "s") on " + resolved.joined(separator: ", ")
        }
        return subject
    }

    public static func body(applied: [PlanDocument], reports: [ApplyReport], basedOn: ObjectID?,
                            proposal: PlanDocument?, extra: [String] = []) -> String {
        var lines: [String] = []
        for (document, report) in zip(applied, reports) {
            lines.append("Plan \(document.id ?? "?")" + (basedOn.map { " (computed from \($0.abbreviated))" } ?? "") + ":")
            for outcome in report.outcomes {
                lines.append("  \(outcome.status.rawValue): \(outcome.summary)" + (outcome.detail.map { " (\($0))" } ?? ""))
            }
            for h in document.hotspots {
                lines.append("  hotspot \(h.vm.map { "\($0) on " } ?? "")\(h.host) \(h.resource): \(h.over) over threshold")
            }
            for u in document.unresolved {
                lines.append("  unresolved \(u.host ?? u.vm ?? "?") \(u.resources.joined(separator: ",")): \(u.reason)")
            }
        }
        if let proposal, let id = proposal.id {
            lines.append("Proposed for review: plan \(id) (\(proposal.actions.count) actions) on "
                + "\(GitProposals.branch(id))")
        }
        lines += extra
        return lines.joined(separator: "\n")
    }

    private static func orderedUnique(_ xs: [String]) -> [String] {
        var seen = Set<String>()
        return xs.filter { seen.insert($0).inserted }
    }
}

/// Proposal branches: `sandpiper/proposals/<plan-id>` holds a plan for review in a merge request.
public enum GitProposals {
    public static let prefix = "sandpiper/proposals/"
    public static func branch(_ planID: String) -> String { prefix + planID }

    /// The plan id a proposal ref names (`sandpiper/proposals/<id>`, `origin/sandpiper/proposals/<id>`,
    /// `refs/heads/...`); nil for other refs.
    public static func planID(fromRef ref: String) -> String? {
        guard let range = ref.range(of: prefix, options: .backwards) else { return nil }
        let id = String(ref[range.upperBound...])
        return id.isEmpty || id.contains("/") ? nil : id
    }

    /// Commits `document` as `<cluster>/plans/<id>.json` on a new branch `sandpiper/proposals/<id>` starting at
    /// `base` (the commit holding the spec, policy and state the plan is based on). Idempotent: an existing
    /// proposal branch with that exact plan is reused. Returns the branch's commit.
    @discardableResult
    public static func propose(_ document: PlanDocument, location: GitClusterLocation, base: ObjectID,
                               identity: GitIdentity) throws(GitWorkflowError) -> ObjectID {
        guard let id = document.id else { throw .proposal("the plan has no id") }
        let repo = location.repository
        let name = branch(id)
        let ref = "refs/heads/" + name
        let bytes: [UInt8]
        do { bytes = Array(try document.encoded()) + Array("\n".utf8) } catch {
            throw .proposal("cannot encode plan \(id): \(error)")
        }
        let path = location.planPath(id)
        if let existing = try git("read \(ref)", { () throws(GitError) in try repo.readRef(ref) }) {
            let committed = try git("read \(path) at \(name)", { () throws(GitError) in try repo.readFile(path, at: existing) })
            if committed == bytes { return existing }
            throw .proposal("\(name) already exists with other content; delete it or review it first")
        }
        try git("create branch \(name)") { () throws(GitError) in try repo.createBranch(name, at: base) }
        let message = "sandpiper(\(location.clusterName)): propose plan \(id) — \(document.actions.count) action"
            + (document.actions.count == 1 ? "" : "s") + " for review\n\n"
            + document.actions.map { "  \(PlanRenderer().headline($0))" }.joined(separator: "\n")
            + "\n\nApply after review with: sandpiper apply \(location.clusterDirectory) --from-ref \(name) --commit\n"
        let commit = try git("commit the proposal to \(name)") { () throws(GitError) in
            try repo.commitFiles([path: bytes], message: message, author: identity.author,
                                 committer: identity.committer, branch: ref, expectedParent: .commit(base))
        }
        return commit ?? base
    }

    /// Pushes proposal branch `name` to `remote` (never forced).
    public static func push(_ name: String, location: GitClusterLocation, remote: String) throws(GitWorkflowError) {
        let ref = "refs/heads/" + name
        try git("push \(name) to \(remote)") { () throws(GitError) in
            try location.repository.push(remote: remote, refspecs: ["\(ref):\(ref)"])
        }
    }
}
