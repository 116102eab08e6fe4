import Foundation
internal import CGit2

/// What a commit expects its branch to point at; the ref update is a compare-and-swap against it.
public enum ExpectedParent: Sendable, Hashable {
    /// Whatever the branch points at when the commit starts (nothing, if unborn). A writer that
    /// moves the branch while the commit is built still makes the update fail.
    case currentTip
    /// The branch must not exist yet: this is its first commit.
    case unborn
    /// The branch must point at this commit.
    case commit(ObjectID)
}

extension GitRepository {
    /// Commits exactly `files` (slash-separated paths relative to the repository root -> full
    /// content) on top of `branch`, and moves the branch with a compare-and-swap.
    ///
    /// - The new tree is the parent commit's tree with these paths added or replaced; nothing
    ///   else is staged or committed. The index is never used to build the tree, so an
    ///   operator's staged or unstaged edits to other files stay exactly as they were.
    /// - `branch` is a short (`main`) or full (`refs/heads/main`) name; nil means the branch HEAD
    ///   points to (an error when HEAD is detached). Any ref under `refs/` works, so proposals
    ///   can be committed to `refs/heads/sandpiper/proposals/x` without checking them out.
    /// - When the branch is the one checked out, the index entries of exactly these paths are set
    ///   to the committed blobs and the files are written to the working tree where they differ,
    ///   so `git status` stays clean for them. If the operator has uncommitted changes to one of
    ///   these paths (content that is neither the parent's nor the new one), nothing is written
    ///   and ``GitError/Kind/uncommittedChanges`` is thrown.
    /// - When the branch does not match `expectedParent`, or moves while the commit is being
    ///   created, throws ``GitError/Kind/modified``; the branch, index and working tree are left
    ///   unchanged (the unreferenced commit object is garbage for `git gc`).
    ///
    /// - Returns: the new commit, or nil when the files already have this content at the tip
    ///   (no empty commits).
    @discardableResult
    public func commitFiles(_ files: [String: [UInt8]], message: String,
                            author: Signature, committer: Signature? = nil,
                            branch: String? = nil,
                            expectedParent: ExpectedParent = .currentTip) throws(GitError) -> ObjectID? {
        for path in files.keys { try Self.validateRepositoryPath(path) }
        guard !files.isEmpty else { throw GitError.adapter(GIT_EINVALID, "commitFiles: no files to commit") }

        return try withHandle { (repo) throws(GitError) -> ObjectID? in
            // Which ref, and where it points now.
            let headRef = try currentBranchRef()
            guard let refName = branch.map(Self.branchRefName) ?? headRef else {
                throw GitError.adapter(GIT_EINVALID, "commitFiles: HEAD is detached; name the branch to commit to")
            }
            let tip = try readRef(refName)
            switch expectedParent {
            case .currentTip:
                break
            case .unborn where tip != nil, .commit where tip != expectedParent.id:
                let expected = expectedParent.id.map { "at \($0.abbreviated)" } ?? "unborn"
                let actual = tip.map { "at \($0.abbreviated)" } ?? "unborn"
                throw GitError.adapter(GIT_EMODIFIED, "\(refName) was expected \(expected) but is \(actual)",
                                       klass: GIT_ERROR_REFERENCE)
            default:
                break
            }

            // Blobs and the new tree, based on the parent's tree (or the empty tree).
            var blobs: [String: ObjectID] = [:]
            for (path, bytes) in files { blobs[path] = try Self.createBlob(repo, bytes) }
            let baseline = if let tip { try Self.lookupTree(repo, commit: tip) } else { try Self.emptyTree(repo) }
            defer { git_tree_free(baseline) }
            let modes = try Self.fileModes(of: Array(files.keys), in: baseline)
            let treeID = try Self.updatedTree(repo, baseline: baseline, blobs: blobs, modes: modes)
            if tip != nil, treeID == ObjectID(git_tree_id(baseline)) { return nil }

            // Refuse before writing anything if the working tree holds someone else's edits.
            let checkedOut = refName == headRef && git_repository_is_bare(repo) == 0
            if checkedOut {
                try Self.checkNoUncommittedChanges(repo, paths: Array(files.keys), baseline: baseline, blobs: blobs)
            }

            // The commit object, then the compare-and-swap of the ref.
            let commitID = try Self.createCommit(repo, tree: treeID, parent: tip, message: message,
                                                 author: author, committer: committer ?? author)
            let summary = message.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? ""
            try updateRef(refName, to: commitID, expected: tip,
                          message: tip == nil ? "commit (initial): \(summary)" : "commit: \(summary)")

            if checkedOut {
                do throws(GitError) {
                    try Self.syncIndexAndWorktree(repo, blobs: blobs, modes: modes, files: files)
                } catch {
                    throw GitError(code: error.code, klass: error.klass,
                                   message: "commit \(commitID) is on \(refName), but updating the index or working tree failed: \(error.message)")
                }
            }
            return commitID
        }
    }

    // MARK: Steps (caller holds the lock)

    /// Rejects absolute paths, empty, `.` and `..` components and anything inside `.git`.
    static func validateRepositoryPath(_ path: String) throws(GitError) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        let bad = path.isEmpty || parts.contains { $0.isEmpty || $0 == "." || $0 == ".." || $0.lowercased() == ".git" }
            || path.utf8.contains(0)
        if bad { throw GitError.adapter(GIT_EINVALIDSPEC, "not a repository-relative file path: \"\(path)\"") }
    }

    static func emptyTree(_ repo: OpaquePointer) throws(GitError) -> OpaquePointer {
        var builder: OpaquePointer?
        try gitCall("git_treebuilder_new", git_treebuilder_new(&builder, repo, nil))
        defer { git_treebuilder_free(builder) }
        var oid = git_oid()
        try gitCall("git_treebuilder_write", git_treebuilder_write(&oid, builder))
        var tree: OpaquePointer?
        try gitCall("git_tree_lookup(empty)", git_tree_lookup(&tree, repo, &oid))
        return tree!
    }

    /// Keeps the executable bit of files that already exist; new files are 0644.
    static func fileModes(of paths: [String], in tree: OpaquePointer) throws(GitError) -> [String: git_filemode_t] {
        var modes: [String: git_filemode_t] = [:]
        for path in paths {
            var entry: OpaquePointer?
            let rc = git_tree_entry_bypath(&entry, tree, path)
            var mode = GIT_FILEMODE_BLOB
            if rc == 0 {
                if git_tree_entry_filemode(entry) == GIT_FILEMODE_BLOB_EXECUTABLE { mode = GIT_FILEMODE_BLOB_EXECUTABLE }
                git_tree_entry_free(entry)
            } else if rc != GIT_ENOTFOUND.rawValue {
                try gitCall("git_tree_entry_bypath(\(path))", rc)
            }
            modes[path] = mode
        }
        return modes
    }

    /// `git_tree_create_updated`: writes the changed subtrees along each path, reusing the rest.
    static func updatedTree(_ repo: OpaquePointer, baseline: OpaquePointer, blobs: [String: ObjectID],
                            modes: [String: git_filemode_t]) throws(GitError) -> ObjectID {
        let paths = blobs.keys.sorted()
        let cPaths = paths.map { strdup($0)! }
        defer { cPaths.forEach { free($0) } }
        let updates = zip(paths, cPaths).map { path, cPath in
            git_tree_update(action: GIT_TREE_UPDATE_UPSERT, id: blobs[path]!.oid, filemode: modes[path]!,
                            path: UnsafePointer(cPath))
        }
        var oid = git_oid()
        try gitCall("git_tree_create_updated(\(paths.joined(separator: ", ")))",
                    git_tree_create_updated(&oid, repo, baseline, updates.count, updates))
        return ObjectID(oid)
    }

    static func createCommit(_ repo: OpaquePointer, tree: ObjectID, parent: ObjectID?, message: String,
                             author: Signature, committer: Signature) throws(GitError) -> ObjectID {
        var treeOid = tree.oid
        var treeObject: OpaquePointer?
        try gitCall("git_tree_lookup(\(tree))", git_tree_lookup(&treeObject, repo, &treeOid))
        defer { git_tree_free(treeObject) }
        var parentObject: OpaquePointer?
        if var parentOid = parent?.oid {
            try gitCall("git_commit_lookup(\(parent!))", git_commit_lookup(&parentObject, repo, &parentOid))
        }
        defer { if parentObject != nil { git_commit_free(parentObject) } }
        return try author.withGitSignature { (authorSig) throws(GitError) in
            try committer.withGitSignature { (committerSig) throws(GitError) in
                var oid = git_oid()
                var parents: [OpaquePointer?] = parentObject.map { [$0] } ?? []
                let rc = parents.withUnsafeMutableBufferPointer { buffer in
                    git_commit_create(&oid, repo, nil, authorSig, committerSig, "UTF-8", message, treeObject,
                                      buffer.count, buffer.baseAddress)
                }
                try gitCall("git_commit_create", rc)
                return ObjectID(oid)
            }
        }
    }

    /// For each path: the index entry must be the parent's blob or the new one (nothing staged
    /// by hand), and the working-tree file must be absent-and-new, the parent's content, or
    /// already the new content.
    static func checkNoUncommittedChanges(_ repo: OpaquePointer, paths: [String], baseline: OpaquePointer,
                                          blobs: [String: ObjectID]) throws(GitError) {
        let index = try freshIndex(repo)
        defer { git_index_free(index) }
        let workdir = String(cString: git_repository_workdir(repo))
        for path in paths.sorted() {
            var old: ObjectID?
            var entry: OpaquePointer?
            if git_tree_entry_bypath(&entry, baseline, path) == 0 {
                old = ObjectID(git_tree_entry_id(entry))
                git_tree_entry_free(entry)
            }
            let new = blobs[path]!
            let indexed = git_index_get_bypath(index, path, 0).map { ObjectID($0.pointee.id) }
            var conflicted = false
            for stage: Int32 in 1...3 where git_index_get_bypath(index, path, stage) != nil { conflicted = true }

            var onDisk: ObjectID?
            let file = workdir + path
            if FileManager.default.fileExists(atPath: file) {
                var oid = git_oid()
                try gitCall("git_odb_hashfile(\(path))", git_odb_hashfile(&oid, file, GIT_OBJECT_BLOB))
                onDisk = ObjectID(oid)
            }
            let indexOK = !conflicted && (indexed == old || indexed == new)
            let worktreeOK = onDisk == new || onDisk == old || (onDisk == nil && old == nil)
            if !indexOK || !worktreeOK {
                throw GitError.adapter(GIT_EUNCOMMITTED,
                                       "\(path) has uncommitted changes that the commit would overwrite; commit or revert them first",
                                       klass: GIT_ERROR_INDEX)
            }
        }
    }

    /// The repository's index as on disk now; the caller frees it with `git_index_free`.
    static func freshIndex(_ repo: OpaquePointer) throws(GitError) -> OpaquePointer {
        var index: OpaquePointer?
        try gitCall("git_repository_index", git_repository_index(&index, repo))
        // The repository caches its index; re-read what is on disk now (other processes, `git add`).
        let rc = git_index_read(index, 1)
        if rc < 0 { git_index_free(index) }
        try gitCall("git_index_read", rc)
        return index!
    }

    /// Writes the committed content where the working tree differs and points exactly these
    /// index entries at the committed blobs, with the files' stat data so git sees them clean.
    static func syncIndexAndWorktree(_ repo: OpaquePointer, blobs: [String: ObjectID],
                                     modes: [String: git_filemode_t], files: [String: [UInt8]]) throws(GitError) {
        let index = try freshIndex(repo)
        defer { git_index_free(index) }
        let workdir = String(cString: git_repository_workdir(repo))
        for path in files.keys.sorted() {
            let file = workdir + path
            let bytes = files[path]!
            let current = FileManager.default.contents(atPath: file)
            if current.map({ [UInt8]($0) }) != bytes {
                try writeAtomically(bytes, to: file, executable: modes[path] == GIT_FILEMODE_BLOB_EXECUTABLE)
            }
            var info = stat()
            guard stat(file, &info) == 0 else {
                throw GitError.adapter(GIT_ERROR, "stat \(file): \(String(cString: strerror(errno)))", klass: GIT_ERROR_OS)
            }
            #if canImport(Darwin)
            let (ctime, mtime) = (info.st_ctimespec, info.st_mtimespec)
            #else
            let (ctime, mtime) = (info.st_ctim, info.st_mtim)
            #endif
            var entry = git_index_entry()
            entry.ctime = git_index_time(seconds: Int32(truncatingIfNeeded: ctime.tv_sec),
                                         nanoseconds: UInt32(truncatingIfNeeded: ctime.tv_nsec))
            entry.mtime = git_index_time(seconds: Int32(truncatingIfNeeded: mtime.tv_sec),
                                         nanoseconds: UInt32(truncatingIfNeeded: mtime.tv_nsec))
            entry.dev = UInt32(truncatingIfNeeded: info.st_dev)
            entry.ino = UInt32(truncatingIfNeeded: info.st_ino)
            entry.mode = modes[path]!.rawValue
            entry.uid = info.st_uid
            entry.gid = info.st_gid
            entry.file_size = UInt32(truncatingIfNeeded: info.st_size)
            entry.id = blobs[path]!.oid
            let rc = path.withCString { cPath in
                entry.path = cPath
                return git_index_add(index, &entry)
            }
            try gitCall("git_index_add(\(path))", rc)
        }
        try retryingWhileLocked { git_index_write(index) } describe: { rc throws(GitError) in
            try gitCall("git_index_write", rc)
        }
    }

    /// temp file in the same directory + rename, creating missing directories.
    static func writeAtomically(_ bytes: [UInt8], to file: String, executable: Bool) throws(GitError) {
        let url = URL(fileURLWithPath: file)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(),
                                                    withIntermediateDirectories: true)
            try Data(bytes).write(to: url, options: .atomic)
            if executable {
                try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: file)
            }
        } catch {
            throw GitError.adapter(GIT_ERROR, "write \(file): \(error)", klass: GIT_ERROR_OS)
        }
    }
}

extension ExpectedParent {
    var id: ObjectID? {
        if case .commit(let id) = self { return id }
        return nil
    }
}

/// What a commit says about itself.
public struct CommitInfo: Sendable, Hashable {
    public let id: ObjectID
    public let tree: ObjectID
    public let parents: [ObjectID]
    public let author: Signature
    public let committer: Signature
    public let message: String
}

extension GitRepository {
    /// Message, signatures, parents and tree of commit `id`.
    public func commitInfo(_ id: ObjectID) throws(GitError) -> CommitInfo {
        try withHandle { (repo) throws(GitError) in
            var oid = id.oid
            var commit: OpaquePointer?
            try gitCall("git_commit_lookup(\(id))", git_commit_lookup(&commit, repo, &oid))
            defer { git_commit_free(commit) }
            return CommitInfo(
                id: id,
                tree: ObjectID(git_commit_tree_id(commit)),
                parents: (0..<git_commit_parentcount(commit)).map { ObjectID(git_commit_parent_id(commit, $0)) },
                author: Signature(git_commit_author(commit)),
                committer: Signature(git_commit_committer(commit)),
                message: String(cString: git_commit_message(commit)))
        }
    }

    /// A parentless commit with the empty tree whose message is `message`: a record a ref can
    /// point at, such as a lock holder (`refs/sandpiper/locks/<cluster>`). Its committer time
    /// says when it was taken. Use this rather than a blob for refs that are pushed: libgit2
    /// 1.5.1 cannot push a ref that points at a blob ("object is not a committish").
    /// With `parent`, the record follows that one (a renewed lease), so pushing it is a fast-forward.
    public func createRecordCommit(message: String, author: Signature, parent: ObjectID? = nil) throws(GitError) -> ObjectID {
        try withHandle { (repo) throws(GitError) in
            let empty = try Self.emptyTree(repo)
            defer { git_tree_free(empty) }
            return try Self.createCommit(repo, tree: ObjectID(git_tree_id(empty)), parent: parent, message: message,
                                         author: author, committer: author)
        }
    }
}
