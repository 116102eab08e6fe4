import Foundation
import SandpiperEngine
import SandpiperGit

/// The cluster lock in git: `refs/sandpiper/locks/<cluster>` pointing at a record commit whose message holds the
/// holder (`LockInfo` as JSON). Taken with a compare-and-swap in the local repository and, with a remote, by
/// pushing the ref there (a different holder's ref makes the push a non-fast-forward, so it is refused), so two
/// CI runners on different machines cannot both reconcile. Released only while it still holds our record.
///
/// Over ssh/https the server checks the old value of the ref atomically, so exactly one runner wins. libgit2's
/// local (file path) transport does not; after pushing, the lock is re-read from the remote and a runner that
/// does not find its own record there backs off.
public final class GitRefLock: @unchecked Sendable {
    public let info: LockInfo
    public let ref: String
    public let remote: String?
    public let record: ObjectID
    private let repository: GitRepository
    private var released = false
    private let mutex = NSLock()

    public static func refName(cluster: String) -> String { "refs/sandpiper/locks/\(cluster)" }
    /// Where a remote's lock ref is fetched to, to name its holder.
    static func remoteCopy(cluster: String, remote: String) -> String {
        "refs/sandpiper/remote-locks/\(sanitize(remote))/\(cluster)"
    }

    private init(info: LockInfo, ref: String, remote: String?, record: ObjectID, repository: GitRepository) {
        self.info = info; self.ref = ref; self.remote = remote; self.record = record; self.repository = repository
    }

    /// Takes the lock (locally, then on `remote` when given) or throws `.lockHeld` naming the holder.
    public static func acquire(_ repository: GitRepository, cluster: String, remote: String?, operation: String,
                               author: Signature) throws(GitWorkflowError) -> GitRefLock {
        let ref = refName(cluster: cluster)
        let user = ProcessInfo.processInfo.environment["USER"] ?? "uid\(getuid())"
        let info = LockInfo(id: UUID().uuidString.lowercased(), owner: "\(user)@\(ProcessInfo.processInfo.hostName)",
                            operation: operation, createdAt: Date().timeIntervalSince1970, pid: getpid())
        let record = try git("create the lock record") { () throws(GitError) in
            try repository.createRecordCommit(message: message(info, cluster: cluster), author: author)
        }
        let created = try git("create \(ref)") { () throws(GitError) in
            try repository.createRefIfAbsent(ref, target: record, message: "sandpiper: lock \(cluster)")
        }
        guard created else {
            let holder = try holderInfo(repository, ref: ref)
            // A killed CI run leaves its lock here and on the remote: name both in the hint.
            throw .lockHeld(holder, ref: ref, remote: remote)
        }
        let lock = GitRefLock(info: info, ref: ref, remote: remote, record: record, repository: repository)
        guard let remote else { return lock }
        var pushError: GitError?
        var lost = false
        do {
            try repository.push(remote: remote, refspecs: ["\(ref):\(ref)"])
            // The local transport overwrites instead of comparing; make sure the remote holds our record.
            lost = try repository.remoteReferences(remote: remote)[ref] != record
        } catch {
            pushError = error
        }
        if pushError == nil && !lost { return lock }
        lock.released = true
        _ = try? repository.deleteRef(ref, expected: record)
        if let pushError, ![.nonFastForward, .pushRejected].contains(pushError.kind) {
            throw .git("push the lock \(ref) to \(remote)", pushError)
        }
        if let holder = try remoteHolder(repository, cluster: cluster, remote: remote) {
            throw .lockHeld(holder, ref: ref, remote: remote)
        }
        throw .git("push the lock \(ref) to \(remote)",
                   pushError ?? GitError(code: -15, klass: 0, message: "the remote lock changed while it was taken"))
    }

    /// Releases the lock (remote first, under a lease on our record; then the local ref) if still ours.
    public func release() {
        mutex.lock(); defer { mutex.unlock() }
        guard !released else { return }
        released = true
        if let remote { try? repository.push(remote: remote, refspecs: [":\(ref)"], expecting: [ref: record]) }
        _ = try? repository.deleteRef(ref, expected: record)
    }

    deinit { release() }

    /// The holder of the lock, locally or on `remote`; nil when the cluster is not locked.
    public static func current(_ repository: GitRepository, cluster: String,
                               remote: String?) throws(GitWorkflowError) -> LockInfo? {
        let ref = refName(cluster: cluster)
        if let remote { return try remoteHolder(repository, cluster: cluster, remote: remote) }
        guard try git("read \(ref)", { () throws(GitError) in try repository.readRef(ref) }) != nil else { return nil }
        return try holderInfo(repository, ref: ref)
    }

    /// Removes a lock left by a run that died, after checking its ID (on `remote` when given, and locally).
    public static func forceUnlock(_ repository: GitRepository, cluster: String, id: String,
                                   remote: String?) throws(GitWorkflowError) {
        let ref = refName(cluster: cluster)
        if let remote {
            let refs = try git("list \(remote)") { () throws(GitError) in try repository.remoteReferences(remote: remote) }
            guard let target = refs[ref] else { throw .lockNotHeld(ref: ref, remote: remote) }
            guard let info = try remoteHolder(repository, cluster: cluster, remote: remote) else {
                throw .lockNotHeld(ref: ref, remote: remote)
            }
            guard info.id == id else { throw .lockWrongID(expected: id, found: info.id) }
            try git("delete \(ref) on \(remote)") { () throws(GitError) in
                try repository.push(remote: remote, refspecs: [":\(ref)"], expecting: [ref: target])
            }
            if let local = try? repository.readRef(ref), (try? holderInfo(repository, ref: ref))?.id == id {
                _ = try? repository.deleteRef(ref, expected: local)
            }
            return
        }
        guard let target = try git("read \(ref)", { () throws(GitError) in try repository.readRef(ref) }) else {
            throw .lockNotHeld(ref: ref, remote: nil)
        }
        let info = try holderInfo(repository, ref: ref)
        guard info.id == id else { throw .lockWrongID(expected: id, found: info.id) }
        _ = try git("delete \(ref)") { () throws(GitError) in try repository.deleteRef(ref, expected: target) }
    }

    // MARK: Records

    static func message(_ info: LockInfo, cluster: String) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = (try? encoder.encode(info)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return "sandpiper lock: \(info.operation) \(cluster)\n\n\(json)\n"
    }

    static func parse(_ message: String) -> LockInfo? {
        guard let start = message.firstIndex(of: "{"), let end = message.lastIndex(of: "}") else { return nil }
        return try? JSONDecoder().decode(LockInfo.self, from: Data(message[start...end].utf8))
    }

    static func holderInfo(_ repository: GitRepository, ref: String) throws(GitWorkflowError) -> LockInfo {
        guard let target = try git("read \(ref)", { () throws(GitError) in try repository.readRef(ref) }) else {
            throw .lockNotHeld(ref: ref, remote: nil)
        }
        let commit = try git("read the lock record \(target.abbreviated)") { () throws(GitError) in
            try repository.commitInfo(target)
        }
        return parse(commit.message) ?? LockInfo(id: target.hex, owner: "unknown", operation: "unknown",
                                                 createdAt: commit.committer.time?.timeIntervalSince1970 ?? 0, pid: 0)
    }

    static func remoteHolder(_ repository: GitRepository, cluster: String,
                             remote: String) throws(GitWorkflowError) -> LockInfo? {
        let ref = refName(cluster: cluster)
        let copy = remoteCopy(cluster: cluster, remote: remote)
        let refs = try git("list \(remote)") { () throws(GitError) in try repository.remoteReferences(remote: remote) }
        guard refs[ref] != nil else { return nil }
        try git("fetch \(ref) from \(remote)") { () throws(GitError) in
            try repository.fetch(remote: remote, refspecs: ["+\(ref):\(copy)"])
        }
        return try holderInfo(repository, ref: copy)
    }

    private static func sanitize(_ remote: String) -> String {
        String(remote.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
    }
}
