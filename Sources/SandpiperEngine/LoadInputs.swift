import Foundation

/// Every file a load read or looked for, as it was then: lets a long-running controller reuse a loaded cluster
/// while none of its inputs changed, instead of decoding and validating the spec again each interval.
///
/// Files up to `contentLimit` bytes (cluster.yaml, the policy, node files, templates) are compared by content, so
/// an edit is seen even when it keeps the size and lands within the file system's timestamp granularity. Larger
/// files (a replayed trace is hundreds of MiB) are compared by size, inode, and modification and change times in
/// nanoseconds: rewriting one in place with the same size within the same nanosecond-stamped tick goes unseen.
/// Paths that did not exist, or were only tested for existence, are compared by existence.
public struct LoadInputs: Sendable {
    public static let contentLimit = 4 << 20

    enum Seen: Sendable, Equatable {
        /// Read, but absent or not a regular file.
        case unreadable
        /// Tested for existence only.
        case missing
        case exists
        case content([UInt8])
        case stat(size: Int, inode: UInt64, mtime: Int64, mtimeNsec: Int, ctime: Int64, ctimeNsec: Int)
    }

    private(set) var files: [(path: String, seen: Seen)] = []

    public init() {}

    /// How many paths were recorded.
    public var count: Int { files.count }

    mutating func read(_ path: String, _ bytes: [UInt8]?) {
        guard let bytes else { files.append((path, .unreadable)); return }
        if bytes.count <= Self.contentLimit { files.append((path, .content(bytes))) }
        else { files.append((path, Self.status(path) ?? .unreadable)) }
    }

    mutating func exists(_ path: String, _ found: Bool) {
        files.append((path, found ? .exists : .missing))
    }

    /// True when every recorded path still reads or exists as it did at load.
    public func unchanged() -> Bool {
        files.allSatisfy { path, seen in
            switch seen {
            case .unreadable: return ClusterLoader.readFile(path) == nil
            case .missing: return !Self.isFile(path)
            case .exists: return Self.isFile(path)
            case .content(let bytes): return ClusterLoader.readFile(path) == bytes
            case .stat: return Self.status(path) == seen
            }
        }
    }

    /// Exists and is not a directory (what the loader's existence checks accept).
    static func isFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) != S_IFDIR
    }

    static func status(_ path: String) -> Seen? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return .stat(size: Int(info.st_size), inode: UInt64(info.st_ino),
                     mtime: Int64(info.st_mtim.tv_sec), mtimeNsec: Int(info.st_mtim.tv_nsec),
                     ctime: Int64(info.st_ctim.tv_sec), ctimeNsec: Int(info.st_ctim.tv_nsec))
    }
}

/// Collects what one load reads (the loader's file closures are not re-entrant across threads: one load, one
/// recorder).
final class LoadRecorder: @unchecked Sendable {
    var inputs = LoadInputs()
}
