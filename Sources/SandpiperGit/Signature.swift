import Foundation
internal import CGit2

/// Author or committer of a commit. `time == nil` means "now" at the moment of the commit.
public struct Signature: Hashable, Sendable {
    public var name: String
    public var email: String
    public var time: Date?
    /// Offset from UTC in minutes recorded with `time` (git's `+0100` is 60).
    public var timeZoneOffsetMinutes: Int

    public init(name: String, email: String, time: Date? = nil, timeZoneOffsetMinutes: Int = 0) {
        self.name = name
        self.email = email
        self.time = time
        self.timeZoneOffsetMinutes = timeZoneOffsetMinutes
    }

    /// Used when the repository configuration has no `user.name` / `user.email`.
    public static let fallback = Signature(name: "Sandpiper", email: "sandpiper@localhost")

    /// Creates the libgit2 signature, hands it to `body` and frees it.
    func withGitSignature<T>(_ body: (UnsafeMutablePointer<git_signature>) throws(GitError) -> T) throws(GitError) -> T {
        var sig: UnsafeMutablePointer<git_signature>?
        let date = time ?? Date()
        try gitCall("git_signature_new(\(name) <\(email)>)",
                    git_signature_new(&sig, name, email, git_time_t(date.timeIntervalSince1970.rounded(.down)),
                                      Int32(timeZoneOffsetMinutes)))
        defer { git_signature_free(sig) }
        return try body(sig!)
    }

    init(_ sig: UnsafePointer<git_signature>) {
        name = String(cString: sig.pointee.name)
        email = String(cString: sig.pointee.email)
        time = Date(timeIntervalSince1970: TimeInterval(sig.pointee.when.time))
        timeZoneOffsetMinutes = Int(sig.pointee.when.offset)
    }
}

extension GitRepository {
    /// `user.name` / `user.email` from the repository's configuration (local, global, system)
    /// with `time == nil` (now); ``Signature/fallback`` when they are not configured.
    public func defaultSignature() -> Signature {
        (try? withHandle { (repo) throws(GitError) -> Signature in
            var sig: UnsafeMutablePointer<git_signature>?
            try gitCall("git_signature_default", git_signature_default(&sig, repo))
            defer { git_signature_free(sig) }
            var result = Signature(sig!)
            result.time = nil
            return result
        }) ?? .fallback
    }
}
