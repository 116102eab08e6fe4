internal import CGit2

/// An error reported by libgit2, or by this adapter in libgit2's terms.
///
/// `code` is libgit2's `git_error_code` (negative, e.g. -15 `GIT_EMODIFIED`), `klass` its
/// `git_error_t` category, `message` the text from `git_error_last()` prefixed with the operation.
/// Callers decide on ``kind``, never on the message.
public struct GitError: Error, Sendable, Hashable, CustomStringConvertible {
    public let code: Int32
    public let klass: Int32
    public let message: String

    public init(code: Int32, klass: Int32, message: String) {
        self.code = code
        self.klass = klass
        self.message = message
    }

    /// The conditions callers branch on.
    public enum Kind: Sendable, Hashable {
        /// The object, reference or path does not exist.
        case notFound
        /// The reference (or object) already exists.
        case exists
        /// A compare-and-swap on a reference failed: it no longer has the expected value
        /// (another writer moved it). Nothing was lost; re-read and retry.
        case modified
        /// A lock file (`*.lock`) is held by another process.
        case locked
        /// A push was rejected because it is not a fast-forward (the remote moved).
        case nonFastForward
        /// The remote refused a reference update for another reason (hook, protected branch).
        case pushRejected
        /// Uncommitted changes in the working tree or index would be overwritten.
        case uncommittedChanges
        /// HEAD points to a branch without commits.
        case unbornBranch
        /// The operation needs a working tree but the repository is bare.
        case bareRepository
        /// A malformed name, revision or path.
        case invalidSpec
        case other
    }

    public var kind: Kind {
        switch code {
        case GIT_ENOTFOUND.rawValue: return .notFound
        case GIT_EEXISTS.rawValue: return .exists
        case GIT_EMODIFIED.rawValue: return .modified
        case GIT_ELOCKED.rawValue: return .locked
        case GIT_ENONFASTFORWARD.rawValue: return .nonFastForward
        case GitError.pushRejectedCode: return .pushRejected
        case GIT_EUNCOMMITTED.rawValue, GIT_ECONFLICT.rawValue, GIT_EINDEXDIRTY.rawValue:
            return .uncommittedChanges
        case GIT_EUNBORNBRANCH.rawValue: return .unbornBranch
        case GIT_EBAREREPO.rawValue: return .bareRepository
        case GIT_EINVALIDSPEC.rawValue, GIT_EINVALID.rawValue: return .invalidSpec
        default: return .other
        }
    }

    public var description: String { "git error \(code)/\(klass): \(message)" }

    /// libgit2 has no code for "the remote refused this ref update"; `GIT_EUSER` (-7) is the
    /// code libgit2 leaves to callers, so a per-ref rejection reported by the server uses it.
    static let pushRejectedCode: Int32 = GIT_EUSER.rawValue

    /// An error raised by the adapter itself (argument checks, a CAS mismatch seen before the
    /// call), using libgit2's codes so ``kind`` means the same thing whoever detected it.
    static func adapter(_ code: git_error_code, _ message: String,
                        klass: git_error_t = GIT_ERROR_INVALID) -> GitError {
        GitError(code: code.rawValue, klass: Int32(klass.rawValue), message: message)
    }

    /// Builds the error for a failed call from `git_error_last()` (thread-local in libgit2, so
    /// it is read on the calling thread right after the call).
    static func last(code: Int32, operation: String) -> GitError {
        if let err = git_error_last(), let text = err.pointee.message {
            return GitError(code: code, klass: err.pointee.klass,
                            message: "\(operation): \(String(cString: text))")
        }
        return GitError(code: code, klass: 0, message: "\(operation): libgit2 error \(code)")
    }
}

/// The one place a libgit2 return code becomes a Swift error: every call that can fail goes
/// through here. Returns the non-negative result (e.g. the 0/1 of a boolean query).
@discardableResult
func gitCall(_ operation: @autoclosure () -> String, _ result: Int32) throws(GitError) -> Int32 {
    if result < 0 { throw GitError.last(code: result, operation: operation()) }
    return result
}

/// `git_libgit2_init` once per process: Swift initialises globals lazily and thread-safely.
/// libgit2 is never shut down; its global state lives as long as the process.
let libgit2Initialized: Int32 = git_libgit2_init()
