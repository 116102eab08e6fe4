import Foundation
internal import CGit2

/// References: reading, compare-and-swap updates (the building block of locks) and branches.
///
/// Every update here is conditional: libgit2 takes the ref's lock file (`O_EXCL`), checks the
/// current value against the expected one, and only then writes. Two writers — threads,
/// processes or instances — can never both succeed, and a lost race is a typed error
/// (``GitError/Kind/modified``) or `false`, never a silently overwritten value.
extension GitRepository {
    /// The object `name` (`HEAD`, `refs/heads/main`, `refs/sandpiper/locks/demo`) points to,
    /// following symbolic refs; nil when the ref does not exist or its branch is unborn.
    public func readRef(_ name: String) throws(GitError) -> ObjectID? {
        try withHandle { (repo) throws(GitError) -> ObjectID? in
            var oid = git_oid()
            let rc = git_reference_name_to_id(&oid, repo, name)
            if rc == GIT_ENOTFOUND.rawValue || rc == GIT_EUNBORNBRANCH.rawValue { return nil }
            try gitCall("git_reference_name_to_id(\(name))", rc)
            return ObjectID(oid)
        }
    }

    /// Creates `name` pointing at `target` only if no ref of that name exists.
    /// Returns false when it already exists (someone else holds it). Race-free: of any number
    /// of concurrent callers, exactly one gets `true`.
    public func createRefIfAbsent(_ name: String, target: ObjectID, message: String) throws(GitError) -> Bool {
        do {
            try updateRef(name, to: target, expected: nil, message: message)
            return true
        } catch where error.kind == .modified {
            return false
        }
    }

    /// Points `name` at `target` if and only if it currently points at `expected`
    /// (`expected == nil`: only if the ref does not exist yet). Throws ``GitError/Kind/modified``
    /// when the ref has another value.
    public func updateRef(_ name: String, to target: ObjectID, expected: ObjectID?,
                          message: String) throws(GitError) {
        try withHandle { (repo) throws(GitError) in
            var new = target.oid
            try Self.retryingWhileLocked {
                var ref: OpaquePointer?
                let rc: Int32
                // Always compare-and-swap under the ref's lock file: libgit2 checks `force = 0` *before* taking
                // the lock, so two creators could both pass it. An all-zero expected id means "must not exist"
                // and is checked under the lock.
                var old = expected?.oid ?? git_oid()
                rc = git_reference_create_matching(&ref, repo, name, &new, 1, &old, message)
                git_reference_free(ref)
                return rc
            } describe: { rc throws(GitError) in
                if rc == GIT_EEXISTS.rawValue || rc == GIT_ENOTFOUND.rawValue || rc == GIT_EMODIFIED.rawValue {
                    let was = expected.map { "at \($0.abbreviated)" } ?? "absent"
                    throw GitError.adapter(GIT_EMODIFIED, "\(name) was expected \(was) but has another value",
                                           klass: GIT_ERROR_REFERENCE)
                }
                try gitCall("update \(name)", rc)
            }
        }
    }

    /// Deletes `name` if it points at `expected` (any value when `expected` is nil).
    /// Returns false when the ref does not exist; throws ``GitError/Kind/modified`` when it
    /// points elsewhere (also when it moved between the check and the delete).
    @discardableResult
    public func deleteRef(_ name: String, expected: ObjectID?) throws(GitError) -> Bool {
        try withHandle { (repo) throws(GitError) -> Bool in
            var deleted = true
            try Self.retryingWhileLocked {
                var ref: OpaquePointer?
                let found = git_reference_lookup(&ref, repo, name)
                guard found == 0 else { return found }
                defer { git_reference_free(ref) }
                if let expected {
                    guard let current = git_reference_target(ref), ObjectID(current) == expected else {
                        return GIT_EMODIFIED.rawValue
                    }
                }
                // git_reference_delete compares the on-disk value with the one looked up
                // under the ref's lock: a concurrent move makes it fail with GIT_EMODIFIED.
                return git_reference_delete(ref)
            } describe: { rc throws(GitError) in
                if rc == GIT_ENOTFOUND.rawValue { deleted = false; return }
                if rc == GIT_EMODIFIED.rawValue {
                    throw GitError.adapter(GIT_EMODIFIED,
                                           "\(name) no longer points at \(expected?.abbreviated ?? "its old value")",
                                           klass: GIT_ERROR_REFERENCE)
                }
                try gitCall("delete \(name)", rc)
            }
            return deleted
        }
    }

    /// Names and targets of all direct refs whose full name starts with `prefix`
    /// (e.g. `refs/sandpiper/locks/`), sorted by name.
    public func references(withPrefix prefix: String) throws(GitError) -> [(name: String, target: ObjectID)] {
        try withHandle { (repo) throws(GitError) in
            var iter: OpaquePointer?
            try gitCall("git_reference_iterator_new", git_reference_iterator_new(&iter, repo))
            defer { git_reference_iterator_free(iter) }
            var result: [(name: String, target: ObjectID)] = []
            while true {
                var ref: OpaquePointer?
                let rc = git_reference_next(&ref, iter)
                if rc == GIT_ITEROVER.rawValue { break }
                try gitCall("git_reference_next", rc)
                defer { git_reference_free(ref) }
                let name = String(cString: git_reference_name(ref))
                if name.hasPrefix(prefix), let target = git_reference_target(ref) {
                    result.append((name, ObjectID(target)))
                }
            }
            return result.sorted { $0.name < $1.name }
        }
    }

    // MARK: Branches

    /// `refs/heads/<name>` for a short name; full `refs/...` names pass through.
    static func branchRefName(_ name: String) -> String {
        name.hasPrefix("refs/") ? name : headsPrefix + name
    }

    /// Creates branch `name` at `commit`. Without `force`, an existing branch is an
    /// ``GitError/Kind/exists`` error.
    public func createBranch(_ name: String, at commit: ObjectID, force: Bool = false) throws(GitError) {
        try withHandle { (repo) throws(GitError) in
            var oid = commit.oid
            var object: OpaquePointer?
            try gitCall("git_commit_lookup(\(commit))", git_commit_lookup(&object, repo, &oid))
            defer { git_commit_free(object) }
            var ref: OpaquePointer?
            try gitCall("git_branch_create(\(name))", git_branch_create(&ref, repo, name, object, force ? 1 : 0))
            git_reference_free(ref)
        }
    }

    /// Whether local branch `name` exists (an unborn HEAD branch does not).
    public func branchExists(_ name: String) throws(GitError) -> Bool {
        try readRef(Self.branchRefName(name)) != nil
    }

    /// Short names of the local branches starting with `prefix` (e.g. `sandpiper/proposals/`), sorted.
    public func branches(withPrefix prefix: String = "") throws(GitError) -> [String] {
        try references(withPrefix: Self.headsPrefix + prefix).map {
            String($0.name.dropFirst(Self.headsPrefix.count))
        }
    }

    /// Deletes local branch `name` if it points at `expected` (see ``deleteRef(_:expected:)``).
    @discardableResult
    public func deleteBranch(_ name: String, expected: ObjectID?) throws(GitError) -> Bool {
        try deleteRef(Self.branchRefName(name), expected: expected)
    }

    // MARK: Lock-file contention

    /// Runs `attempt` until it does not fail with `GIT_ELOCKED` (another writer holds the
    /// ref's `.lock` file for a few milliseconds), then hands the final code to `describe`,
    /// which throws or accepts it. Gives up after about two seconds and reports the lock.
    static func retryingWhileLocked(_ attempt: () -> Int32,
                                    describe: (Int32) throws(GitError) -> Void) throws(GitError) {
        var rc = attempt()
        var tries = 0
        while rc == GIT_ELOCKED.rawValue && tries < 40 {
            tries += 1
            usleep(UInt32(min(tries, 10)) * 5_000)
            rc = attempt()
        }
        if rc < 0 {
            if rc == GIT_ELOCKED.rawValue { try gitCall("reference locked", rc) }
            try describe(rc)
        }
    }
}
