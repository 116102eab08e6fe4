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
    public private(set) var info: LockInfo
    public let ref: String
    public let remote: String?
    public private(set) var record: ObjectID
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
    /// With `leaseSeconds` the lock is a lease: it records when it expires, `renew` extends it, and once it has
    /// expired `takeOver` lets another controller have it.
    public static func acquire(_ repository: GitRepository, cluster: String, remote: String?, operation: String,
                               author: Signature, leaseSeconds: Double? = nil) throws(GitWorkflowError) -> GitRefLock {
        let ref = refName(cluster: cluster)
        let info = newInfo(operation: operation, leaseSeconds: leaseSeconds)
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

    static func newInfo(operation: String, leaseSeconds: Double?) -> LockInfo {
        let user = ProcessInfo.processInfo.environment["USER"] ?? "uid\(getuid())"
        let now = Date().timeIntervalSince1970
        var info = LockInfo(id: UUID().uuidString.lowercased(), owner: "\(user)@\(ProcessInfo.processInfo.hostName)",
                            operation: operation, createdAt: now, pid: getpid())
        info.expiresAt = leaseSeconds.map { now + $0 }
        return info
    }

    /// Extends the lease: a new record (child of the current one, so the push is a fast-forward) replaces ours,
    /// locally and on the remote, only while the ref still holds our record. Throws when it does not (another
    /// controller took the lease over after it expired).
    public func renew(leaseSeconds: Double, cluster: String, author: Signature) throws(GitWorkflowError) {
        mutex.lock(); defer { mutex.unlock() }
        var next = info
        next.expiresAt = Date().timeIntervalSince1970 + leaseSeconds
        let old = record
        let new = try git("create the lease record") { () throws(GitError) in
            try repository.createRecordCommit(message: Self.message(next, cluster: cluster), author: author, parent: old)
        }
        // Local ref first (libgit2 pushes refs, not bare ids), then the remote under a lease on our old record.
        let local = try? repository.readRef(ref)
        if local == old {
            try git("renew \(ref)") { () throws(GitError) in
                try repository.updateRef(ref, to: new, expected: old, message: "sandpiper: renew lease \(cluster)")
            }
        } else if remote == nil {
            throw .conflict("the lease \(ref) is no longer ours")
        } else {
            _ = try? repository.updateRef(ref, to: new, expected: local ?? nil, message: "sandpiper: renew lease \(cluster)")
        }
        if let remote {
            do throws(GitError) {
                try repository.push(remote: remote, refspecs: ["\(ref):\(ref)"], expecting: [ref: old])
                guard try repository.remoteReferences(remote: remote)[ref] == new else {
                    throw GitError(code: -15, klass: 0, message: "the remote lease changed while it was renewed")
                }
            } catch {
                _ = try? repository.deleteRef(ref, expected: new)
                throw .git("renew the lease \(ref) on \(remote)", error)
            }
        }
        record = new
        info = next
    }

    /// Takes over a lease whose holder let it expire (a controller that died or hung): replaces exactly that
    /// record (compare-and-swap, locally and on the remote), so two standbys cannot both win.
    public static func takeOver(_ repository: GitRepository, cluster: String, remote: String?, operation: String,
                                author: Signature, leaseSeconds: Double,
                                expired: LockInfo) throws(GitWorkflowError) -> GitRefLock {
        let ref = refName(cluster: cluster)
        let current: ObjectID
        if let remote {
            guard let holder = try remoteHolder(repository, cluster: cluster, remote: remote), holder.id == expired.id,
                  let target = try git("read the remote lease", { () throws(GitError) in
                      try repository.readRef(remoteCopy(cluster: cluster, remote: remote)) }) else {
                throw .conflict("the lease \(ref) changed before it could be taken over")
            }
            current = target
        } else {
            guard let target = try git("read \(ref)", { () throws(GitError) in try repository.readRef(ref) }),
                  try holderInfo(repository, ref: ref).id == expired.id else {
                throw .conflict("the lease \(ref) changed before it could be taken over")
            }
            current = target
        }
        guard let until = expired.expiresAt, until < Date().timeIntervalSince1970 else {
            throw .lockHeld(expired, ref: ref, remote: remote)
        }
        let info = newInfo(operation: operation, leaseSeconds: leaseSeconds)
        let record = try git("create the lease record") { () throws(GitError) in
            try repository.createRecordCommit(message: message(info, cluster: cluster), author: author, parent: current)
        }
        if let remote {
            // The local ref mirrors the remote one (absent, or a stale copy of the expired holder's record).
            let local = try? repository.readRef(ref)
            try git("set \(ref)") { () throws(GitError) in
                try repository.updateRef(ref, to: record, expected: local ?? nil, message: "sandpiper: lease \(cluster)")
            }
            do throws(GitError) {
                try repository.push(remote: remote, refspecs: ["\(ref):\(ref)"], expecting: [ref: current])
                guard try repository.remoteReferences(remote: remote)[ref] == record else {
                    throw GitError(code: -15, klass: 0, message: "another controller took the lease first")
                }
            } catch {
                _ = try? repository.deleteRef(ref, expected: record)
                throw .git("take over the lease \(ref) on \(remote)", error)
            }
        } else {
            try git("take over \(ref)") { () throws(GitError) in
                try repository.updateRef(ref, to: record, expected: current, message: "sandpiper: lease \(cluster)")
            }
        }
        return GitRefLock(info: info, ref: ref, remote: remote, record: record, repository: repository)
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
