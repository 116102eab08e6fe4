import Foundation
internal import CGit2

/// Fetch, push (never forced) and commit ancestry.
extension GitRepository {
    /// Fetches `refspecs` (empty: the remote's configured fetch refspecs, e.g.
    /// `+refs/heads/*:refs/remotes/origin/*`) from `remote`, a configured remote name or a URL
    /// (a local path works). Remote-tracking refs are updated; local branches are not.
    public func fetch(remote: String = "origin", refspecs: [String] = []) throws(GitError) {
        try withHandle { (repo) throws(GitError) in
            let handle = try Self.lookupRemote(repo, remote)
            defer { git_remote_free(handle) }
            let session = RemoteSession()
            var opts = git_fetch_options()
            try gitCall("git_fetch_options_init", git_fetch_options_init(&opts, UInt32(GIT_FETCH_OPTIONS_VERSION)))
            session.install(in: &opts.callbacks)
            let rc = withExtendedLifetime(session) {
                withStrArray(refspecs) { git_remote_fetch(handle, $0, &opts, nil) }
            }
            try gitCall("fetch \(remote) \(refspecs.joined(separator: " "))", rc)
        }
    }

    /// Pushes `refspecs` (`refs/heads/main:refs/heads/main`) to `remote` (a name or URL).
    ///
    /// Never forces: a refspec with a leading `+` is refused. When the remote ref moved to a
    /// commit that is not an ancestor of what we push, libgit2 refuses before sending
    /// (``GitError/Kind/nonFastForward``); when the server refuses a ref (its own fast-forward
    /// check after a race, a hook, a protected branch), the per-ref status reported through
    /// `push_update_reference` becomes ``GitError/Kind/nonFastForward`` or
    /// ``GitError/Kind/pushRejected`` naming each refused ref. Refs not refused are updated.
    ///
    /// `expecting` is a lease (like `git push --force-with-lease`, but never forcing): for each
    /// remote ref named there that this push updates, the push is aborted before anything is sent unless the remote
    /// currently has that value (``GitError/Kind/modified``). Use it to release a remote lock
    /// (`":refs/sandpiper/locks/demo"`) only while it is still ours; a deletion is otherwise
    /// unconditional. Over the smart protocol the server re-checks the advertised value
    /// atomically; the local (file path) transport does not, so there a tiny window remains.
    public func push(remote: String = "origin", refspecs: [String],
                     expecting: [String: ObjectID] = [:]) throws(GitError) {
        if let forced = refspecs.first(where: { $0.hasPrefix("+") }) {
            throw GitError.adapter(GIT_EINVALIDSPEC, "refusing to force-push \(forced)")
        }
        guard !refspecs.isEmpty else { throw GitError.adapter(GIT_EINVALID, "push: no refspecs") }
        try withHandle { (repo) throws(GitError) in
            let handle = try Self.lookupRemote(repo, remote)
            defer { git_remote_free(handle) }
            let session = RemoteSession()
            session.leases = expecting
            var opts = git_push_options()
            try gitCall("git_push_options_init", git_push_options_init(&opts, UInt32(GIT_PUSH_OPTIONS_VERSION)))
            session.install(in: &opts.callbacks)
            let rc = withExtendedLifetime(session) {
                withStrArray(refspecs) { git_remote_push(handle, $0, &opts) }
            }
            if let broken = session.brokenLease {
                throw GitError.adapter(GIT_EMODIFIED,
                                       "push \(remote): \(broken.ref) is at \(broken.actual?.abbreviated ?? "nothing"), expected \(expecting[broken.ref]!.abbreviated); nothing was pushed",
                                       klass: GIT_ERROR_REFERENCE)
            }
            try gitCall("push \(remote) \(refspecs.joined(separator: " "))", rc)
            guard !session.rejections.isEmpty else { return }
            let nonFastForward = session.rejections.allSatisfy { _, status in
                ["non-fast-forward", "fetch first", "not a fast-forward", "stale info"].contains { status.contains($0) }
            }
            let detail = session.rejections.map { "\($0.ref): \($0.status)" }.joined(separator: "; ")
            throw GitError(code: nonFastForward ? GIT_ENONFASTFORWARD.rawValue : GitError.pushRejectedCode,
                           klass: Int32(GIT_ERROR_REFERENCE.rawValue),
                           message: "push \(remote) rejected: \(detail)")
        }
    }

    /// The refs `remote` (a name or URL) advertises, like `git ls-remote`, without fetching.
    public func remoteReferences(remote: String = "origin") throws(GitError) -> [String: ObjectID] {
        try withHandle { (repo) throws(GitError) in
            let handle = try Self.lookupRemote(repo, remote)
            defer { git_remote_free(handle) }
            let session = RemoteSession()
            var callbacks = git_remote_callbacks()
            try gitCall("git_remote_init_callbacks",
                        git_remote_init_callbacks(&callbacks, UInt32(GIT_REMOTE_CALLBACKS_VERSION)))
            session.install(in: &callbacks)
            let rc = withExtendedLifetime(session) {
                git_remote_connect(handle, GIT_DIRECTION_FETCH, &callbacks, nil, nil)
            }
            try gitCall("connect \(remote)", rc)
            defer { git_remote_disconnect(handle) }
            var heads: UnsafeMutablePointer<UnsafePointer<git_remote_head>?>?
            var count = 0
            try gitCall("git_remote_ls(\(remote))", git_remote_ls(&heads, &count, handle))
            var result: [String: ObjectID] = [:]
            for i in 0..<count {
                guard let head = heads?[i] else { continue }
                result[String(cString: head.pointee.name)] = ObjectID(head.pointee.oid)
            }
            return result
        }
    }

    /// True when `ancestor` is reachable from `commit` (a commit counts as its own ancestor,
    /// as in `git merge-base --is-ancestor`): pushing `commit` over `ancestor` is a fast-forward.
    public func isAncestor(_ ancestor: ObjectID, of commit: ObjectID) throws(GitError) -> Bool {
        if ancestor == commit { return true }
        return try withHandle { (repo) throws(GitError) in
            var c = commit.oid, a = ancestor.oid
            return try gitCall("git_graph_descendant_of(\(commit), \(ancestor))",
                               git_graph_descendant_of(repo, &c, &a)) == 1
        }
    }

    /// The best common ancestor of `a` and `b`, or nil when their histories are unrelated.
    public func mergeBase(_ a: ObjectID, _ b: ObjectID) throws(GitError) -> ObjectID? {
        try withHandle { (repo) throws(GitError) -> ObjectID? in
            var out = git_oid(), one = a.oid, two = b.oid
            let rc = git_merge_base(&out, repo, &one, &two)
            if rc == GIT_ENOTFOUND.rawValue { return nil }
            try gitCall("git_merge_base(\(a), \(b))", rc)
            return ObjectID(out)
        }
    }

    /// A configured remote by name, else an anonymous remote for a URL or path.
    static func lookupRemote(_ repo: OpaquePointer, _ nameOrURL: String) throws(GitError) -> OpaquePointer {
        var remote: OpaquePointer?
        let rc = git_remote_lookup(&remote, repo, nameOrURL)
        if rc == 0 { return remote! }
        let looksLikeURL = nameOrURL.contains("/") || nameOrURL.contains(":")
        guard (rc == GIT_ENOTFOUND.rawValue || rc == GIT_EINVALIDSPEC.rawValue) && looksLikeURL else {
            try gitCall("git_remote_lookup(\(nameOrURL))", rc)
            return remote!
        }
        try gitCall("git_remote_create_anonymous(\(nameOrURL))", git_remote_create_anonymous(&remote, repo, nameOrURL))
        return remote!
    }
}

/// State shared with libgit2's remote callbacks for one fetch or push, passed as the
/// callbacks' `payload`. Used on the calling thread only, during the call.
private final class RemoteSession {
    var rejections: [(ref: String, status: String)] = []
    var credentialAttempts = 0
    /// Push only: remote ref -> value it must have now; the first mismatch aborts the push.
    var leases: [String: ObjectID] = [:]
    var brokenLease: (ref: String, actual: ObjectID?)?

    func install(in callbacks: inout git_remote_callbacks) {
        callbacks.payload = Unmanaged.passUnretained(self).toOpaque()
        callbacks.push_update_reference = { refname, status, payload in
            // status == NULL: the remote accepted this ref.
            guard let status, let payload else { return 0 }
            let session = Unmanaged<RemoteSession>.fromOpaque(payload).takeUnretainedValue()
            session.rejections.append((refname.map { String(cString: $0) } ?? "?", String(cString: status)))
            return 0
        }
        callbacks.push_negotiation = { updates, count, payload in
            // Called once, after the remote advertised its refs and before anything is sent.
            guard let payload, let updates else { return 0 }
            let session = Unmanaged<RemoteSession>.fromOpaque(payload).takeUnretainedValue()
            for i in 0..<count {
                guard let update = updates[i]?.pointee, let dst = update.dst_refname else { continue }
                let name = String(cString: dst)
                guard let expected = session.leases[name] else { continue }
                var current = update.src
                let actual = git_oid_is_zero(&current) == 1 ? nil : ObjectID(current)
                if actual != expected {
                    session.brokenLease = (name, actual)
                    return GIT_EUSER.rawValue
                }
            }
            return 0
        }
        callbacks.credentials = { out, _, usernameFromURL, allowedTypes, payload in
            // One attempt through ssh-agent for ssh remotes; otherwise libgit2's defaults.
            guard let payload else { return GIT_PASSTHROUGH.rawValue }
            let session = Unmanaged<RemoteSession>.fromOpaque(payload).takeUnretainedValue()
            session.credentialAttempts += 1
            guard session.credentialAttempts == 1,
                  allowedTypes & GIT_CREDENTIAL_SSH_KEY.rawValue != 0 else { return GIT_PASSTHROUGH.rawValue }
            if let usernameFromURL { return git_credential_ssh_key_from_agent(out, usernameFromURL) }
            return git_credential_ssh_key_from_agent(out, "git")
        }
    }
}

/// Passes `strings` as a `git_strarray` valid for the duration of `body`.
private func withStrArray<T>(_ strings: [String], _ body: (UnsafePointer<git_strarray>) -> T) -> T {
    var cStrings: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { cStrings.forEach { free($0) } }
    return cStrings.withUnsafeMutableBufferPointer { buffer in
        var array = git_strarray(strings: buffer.baseAddress, count: buffer.count)
        return body(&array)
    }
}
