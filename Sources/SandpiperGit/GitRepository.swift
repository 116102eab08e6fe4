import Foundation
internal import CGit2

/// A git repository opened through libgit2.
///
/// Concurrency: a libgit2 `git_repository` must not be used by two threads at once, so every
/// operation takes `lock` for its whole duration; one instance can be shared between tasks
/// (hence `@unchecked Sendable`). Separate instances, or separate processes, on the same
/// repository coordinate through git's own lock files and compare-and-swap ref updates.
public final class GitRepository: @unchecked Sendable {
    /// `git_repository *`, owned; freed in `deinit`. Only touched under `lock`.
    private let handle: OpaquePointer
    /// Recursive so an operation may call another public operation of the same instance.
    private let lock = NSRecursiveLock()

    private init(handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        git_repository_free(handle)
    }

    /// Runs `body` with exclusive use of the libgit2 handle.
    func withHandle<T>(_ body: (OpaquePointer) throws(GitError) -> T) throws(GitError) -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(handle)
    }

    // MARK: Opening

    /// Opens the repository at `path` (its working directory, its `.git`, or a bare repository).
    public static func open(at path: String) throws(GitError) -> GitRepository {
        _ = libgit2Initialized
        var repo: OpaquePointer?
        try gitCall("git_repository_open(\(path))", git_repository_open(&repo, path))
        return GitRepository(handle: repo!)
    }

    /// Finds the repository containing `path` (a file or directory inside a working tree),
    /// walking up the parents like `git` does, without crossing file systems.
    public static func discover(from path: String) throws(GitError) -> GitRepository {
        _ = libgit2Initialized
        var buf = git_buf()
        defer { git_buf_dispose(&buf) }
        try gitCall("git_repository_discover(\(path))", git_repository_discover(&buf, path, 0, nil))
        return try open(at: String(cString: buf.ptr))
    }

    /// Creates a new repository (used by tests and tooling). HEAD points to `initialBranch`,
    /// unborn until the first commit.
    public static func create(at path: String, bare: Bool = false,
                              initialBranch: String = "main") throws(GitError) -> GitRepository {
        _ = libgit2Initialized
        var opts = git_repository_init_options()
        try gitCall("git_repository_init_options_init",
                    git_repository_init_options_init(&opts, UInt32(GIT_REPOSITORY_INIT_OPTIONS_VERSION)))
        opts.flags = GIT_REPOSITORY_INIT_MKPATH.rawValue | (bare ? GIT_REPOSITORY_INIT_BARE.rawValue : 0)
        var repo: OpaquePointer?
        let rc = initialBranch.withCString { branch in
            opts.initial_head = branch
            return git_repository_init_ext(&repo, path, &opts)
        }
        try gitCall("git_repository_init_ext(\(path))", rc)
        return GitRepository(handle: repo!)
    }

    // MARK: Where and what

    /// The working directory (with a trailing `/`), or nil for a bare repository.
    public var workdir: String? {
        lock.lock()
        defer { lock.unlock() }
        return git_repository_workdir(handle).map { String(cString: $0) }
    }

    /// The `.git` directory (or the bare repository itself), with a trailing `/`.
    public var gitDirectory: String {
        lock.lock()
        defer { lock.unlock() }
        return String(cString: git_repository_path(handle))
    }

    public var isBare: Bool {
        lock.lock()
        defer { lock.unlock() }
        return git_repository_is_bare(handle) == 1
    }

    /// The commit HEAD points to, or nil when HEAD's branch is unborn (no commit yet).
    public func headCommit() throws(GitError) -> ObjectID? {
        try readRef("HEAD")
    }

    /// The short name of the branch HEAD points to (`main`), also when it is unborn;
    /// nil when HEAD is detached.
    public func currentBranch() throws(GitError) -> String? {
        try currentBranchRef().map { String($0.dropFirst(GitRepository.headsPrefix.count)) }
    }

    /// `refs/heads/<branch>` that HEAD points to symbolically, or nil when detached.
    func currentBranchRef() throws(GitError) -> String? {
        try withHandle { (repo) throws(GitError) in
            var ref: OpaquePointer?
            try gitCall("git_reference_lookup(HEAD)", git_reference_lookup(&ref, repo, "HEAD"))
            defer { git_reference_free(ref) }
            guard git_reference_type(ref) == GIT_REFERENCE_SYMBOLIC,
                  let target = git_reference_symbolic_target(ref) else { return nil }
            let name = String(cString: target)
            return name.hasPrefix(GitRepository.headsPrefix) ? name : nil
        }
    }

    static let headsPrefix = "refs/heads/"

    /// Resolves a revision (`main`, `refs/heads/x`, a tag, a full or abbreviated commit id,
    /// `HEAD~1`, `origin/main@{1}`; anything `git rev-parse` takes) to the commit it names.
    /// Annotated tags are peeled; a revision naming a tree or blob is an error.
    public func resolve(_ revision: String) throws(GitError) -> ObjectID {
        try withHandle { (repo) throws(GitError) in
            var object: OpaquePointer?
            try gitCall("git_revparse_single(\(revision))", git_revparse_single(&object, repo, revision))
            defer { git_object_free(object) }
            var commit: OpaquePointer?
            try gitCall("git_object_peel(\(revision), commit)", git_object_peel(&commit, object, GIT_OBJECT_COMMIT))
            defer { git_object_free(commit) }
            return ObjectID(git_object_id(commit))
        }
    }

    // MARK: Reading content

    /// The content of the file at `path` (slash-separated, relative to the repository root) in
    /// `commit`'s tree, read from the object database (no checkout, working tree untouched).
    /// Nil when no such file exists in that commit; throws when `path` names a directory.
    public func readFile(_ path: String, at commit: ObjectID) throws(GitError) -> [UInt8]? {
        try withHandle { (repo) throws(GitError) -> [UInt8]? in
            let tree = try Self.lookupTree(repo, commit: commit)
            defer { git_tree_free(tree) }
            var entry: OpaquePointer?
            let rc = git_tree_entry_bypath(&entry, tree, path)
            if rc == GIT_ENOTFOUND.rawValue { return nil }
            try gitCall("git_tree_entry_bypath(\(path))", rc)
            defer { git_tree_entry_free(entry) }
            guard git_tree_entry_type(entry) == GIT_OBJECT_BLOB else {
                throw GitError.adapter(GIT_EDIRECTORY, "\(path) is not a file in \(commit.abbreviated)")
            }
            return try Self.blobBytes(repo, id: git_tree_entry_id(entry).pointee)
        }
    }

    /// The names of the entries (files and directories) directly under `directory` in `commit`'s
    /// tree, sorted as git sorts them; nil when the directory does not exist there.
    /// `""` lists the root.
    public func listDirectory(_ directory: String, at commit: ObjectID) throws(GitError) -> [String]? {
        try withHandle { (repo) throws(GitError) -> [String]? in
            let root = try Self.lookupTree(repo, commit: commit)
            defer { git_tree_free(root) }
            var tree = root
            var subtree: OpaquePointer?
            defer { if subtree != nil { git_tree_free(subtree) } }
            let trimmed = directory.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            if !trimmed.isEmpty {
                var entry: OpaquePointer?
                let rc = git_tree_entry_bypath(&entry, root, trimmed)
                if rc == GIT_ENOTFOUND.rawValue { return nil }
                try gitCall("git_tree_entry_bypath(\(trimmed))", rc)
                defer { git_tree_entry_free(entry) }
                guard git_tree_entry_type(entry) == GIT_OBJECT_TREE else { return nil }
                try gitCall("git_tree_lookup(\(trimmed))", git_tree_lookup(&subtree, repo, git_tree_entry_id(entry)))
                tree = subtree!
            }
            return (0..<git_tree_entrycount(tree)).map {
                String(cString: git_tree_entry_name(git_tree_entry_byindex(tree, $0)))
            }
        }
    }

    /// Writes `bytes` as a blob into the object database (no ref, no tree) and returns its id.
    public func writeBlob(_ bytes: [UInt8]) throws(GitError) -> ObjectID {
        try withHandle { (repo) throws(GitError) in try Self.createBlob(repo, bytes) }
    }

    /// The content of blob `id`; throws `.notFound` when absent or not a blob.
    public func readBlob(_ id: ObjectID) throws(GitError) -> [UInt8] {
        try withHandle { (repo) throws(GitError) in try Self.blobBytes(repo, id: id.oid) }
    }

    // MARK: Status

    /// Working-tree and index status of `path` (relative to the working directory) against HEAD.
    /// A path git knows nothing about is ``FileStatus/current`` (empty).
    public func status(of path: String) throws(GitError) -> FileStatus {
        try withHandle { (repo) throws(GitError) in
            var flags: UInt32 = 0
            let rc = git_status_file(&flags, repo, path)
            if rc == GIT_ENOTFOUND.rawValue { return [] }
            try gitCall("git_status_file(\(path))", rc)
            return FileStatus(rawValue: flags)
        }
    }

    /// Status of each path in `paths`.
    public func status(of paths: [String]) throws(GitError) -> [String: FileStatus] {
        var result: [String: FileStatus] = [:]
        for path in paths { result[path] = try status(of: path) }
        return result
    }

    /// True when `path` differs between HEAD, the index and the working tree (new, modified,
    /// deleted, staged or conflicted). Ignored files are not dirty.
    public func isDirty(_ path: String) throws(GitError) -> Bool {
        !(try status(of: path)).subtracting(.ignored).isEmpty
    }

    // MARK: Object helpers (caller holds the lock)

    static func lookupTree(_ repo: OpaquePointer, commit: ObjectID) throws(GitError) -> OpaquePointer {
        var oid = commit.oid
        var object: OpaquePointer?
        try gitCall("git_commit_lookup(\(commit))", git_commit_lookup(&object, repo, &oid))
        defer { git_commit_free(object) }
        var tree: OpaquePointer?
        try gitCall("git_commit_tree(\(commit))", git_commit_tree(&tree, object))
        return tree!
    }

    static func createBlob(_ repo: OpaquePointer, _ bytes: [UInt8]) throws(GitError) -> ObjectID {
        var oid = git_oid()
        let rc = bytes.withUnsafeBytes { git_blob_create_from_buffer(&oid, repo, $0.baseAddress, $0.count) }
        try gitCall("git_blob_create_from_buffer", rc)
        return ObjectID(oid)
    }

    static func blobBytes(_ repo: OpaquePointer, id: git_oid) throws(GitError) -> [UInt8] {
        var oid = id
        var blob: OpaquePointer?
        try gitCall("git_blob_lookup(\(ObjectID(id)))", git_blob_lookup(&blob, repo, &oid))
        defer { git_blob_free(blob) }
        let size = Int(git_blob_rawsize(blob))
        guard size > 0, let raw = git_blob_rawcontent(blob) else { return [] }
        return Array(UnsafeRawBufferPointer(start: raw, count: size))
    }
}

/// `git_status_t` flags of one path.
public struct FileStatus: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Unchanged everywhere (the empty set).
    public static let current: FileStatus = []
    public static let indexNew = FileStatus(rawValue: GIT_STATUS_INDEX_NEW.rawValue)
    public static let indexModified = FileStatus(rawValue: GIT_STATUS_INDEX_MODIFIED.rawValue)
    public static let indexDeleted = FileStatus(rawValue: GIT_STATUS_INDEX_DELETED.rawValue)
    public static let indexRenamed = FileStatus(rawValue: GIT_STATUS_INDEX_RENAMED.rawValue)
    public static let indexTypeChange = FileStatus(rawValue: GIT_STATUS_INDEX_TYPECHANGE.rawValue)
    public static let workTreeNew = FileStatus(rawValue: GIT_STATUS_WT_NEW.rawValue)
    public static let workTreeModified = FileStatus(rawValue: GIT_STATUS_WT_MODIFIED.rawValue)
    public static let workTreeDeleted = FileStatus(rawValue: GIT_STATUS_WT_DELETED.rawValue)
    public static let workTreeTypeChange = FileStatus(rawValue: GIT_STATUS_WT_TYPECHANGE.rawValue)
    public static let workTreeRenamed = FileStatus(rawValue: GIT_STATUS_WT_RENAMED.rawValue)
    public static let workTreeUnreadable = FileStatus(rawValue: GIT_STATUS_WT_UNREADABLE.rawValue)
    public static let ignored = FileStatus(rawValue: GIT_STATUS_IGNORED.rawValue)
    public static let conflicted = FileStatus(rawValue: GIT_STATUS_CONFLICTED.rawValue)
}
