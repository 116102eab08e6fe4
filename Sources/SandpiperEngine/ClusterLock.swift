import Foundation
import SandpiperModel

/// One reconciler per cluster at a time. The lock is a file in the cluster directory (git-ignored), written to a
/// private temp file and link(2)ed into place (link fails with EEXIST when held), holding who took it, when and
/// for what, so a second run can name the holder.
public struct LockInfo: Codable, Sendable, Equatable, CustomStringConvertible {
    public var id: String
    public var owner: String
    public var operation: String
    /// Unix seconds.
    public var createdAt: Double
    public var pid: Int32
    /// A lease (`sandpiper run` with git): the holder renews it each round; once past, a standby may take over.
    /// Absent for one-shot locks, which are held until released or force-unlocked.
    public var expiresAt: Double?

    package init(id: String, owner: String, operation: String, createdAt: Double, pid: Int32) {
        self.id = id; self.owner = owner; self.operation = operation; self.createdAt = createdAt; self.pid = pid
    }

    public var description: String {
        let when = Date(timeIntervalSince1970: createdAt).formatted(.iso8601)
        let lease = expiresAt.map { ", lease until \(Date(timeIntervalSince1970: $0).formatted(.iso8601))" } ?? ""
        return "\(operation) by \(owner) (pid \(pid)) since \(when)\(lease), lock ID \(id)"
    }
}

public enum LockError: Error, CustomStringConvertible, Sendable {
    /// The cluster directory of a lock file, as the operator would type it (relative to the current directory).
    static func clusterArgument(_ lockPath: String) -> String {
        let dir = URL(fileURLWithPath: lockPath).deletingLastPathComponent().path
        let cwd = FileManager.default.currentDirectoryPath + "/"
        return dir.hasPrefix(cwd) ? String(dir.dropFirst(cwd.count)) : dir
    }

    case held(LockInfo, path: String)
    case unreadable(path: String, reason: String)
    /// The lock file exists but is not a Sandpiper lock (truncated, edited, garbage). `id` names its content
    /// (`damaged-` + a digest prefix), so force-unlock can remove exactly this file and not one written since.
    case damaged(path: String, reason: String, id: String)
    case wrongID(expected: String, found: String)
    case notLocked(path: String)

    public var description: String {
        switch self {
        case .held(let info, let path):
            "the cluster is locked: \(info) (\(path)). If that run is gone, release it with "
                + "`sandpiper force-unlock \(info.id) \(Self.clusterArgument(path))`."
        case .unreadable(let path, let reason): "\(path): lock file unreadable: \(reason)"
        case .damaged(let path, let reason, let id):
            "\(path): the lock file is not a Sandpiper lock (\(reason)). If no run is using the cluster, remove it "
                + "with `sandpiper force-unlock \(id) \(Self.clusterArgument(path))`."
        case .wrongID(let expected, let found): "lock ID \(expected) does not match the held lock \(found)"
        case .notLocked(let path): "\(path): the cluster is not locked"
        }
    }
}

public final class ClusterLock: @unchecked Sendable {
    public let info: LockInfo
    public let url: URL
    private var released = false
    private let mutex = NSLock()

    public static func lockURL(directory: URL) -> URL { directory.appendingPathComponent(".sandpiper.lock") }

    /// Takes the lock or throws `LockError.held` naming the current holder.
    public static func acquire(directory: URL, operation: String) throws(LockError) -> ClusterLock {
        let url = lockURL(directory: directory)
        let user = ProcessInfo.processInfo.environment["USER"] ?? "uid\(getuid())"
        let info = LockInfo(id: UUID().uuidString.lowercased(), owner: "\(user)@\(ProcessInfo.processInfo.hostName)",
                            operation: operation, createdAt: Date().timeIntervalSince1970, pid: getpid())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(info)) ?? Data()
        // Write the holder to a private file first, then link(2) it into place: the lock file appears complete
        // or not at all, so a crash can never leave an empty, unreleasable lock. The private file names its
        // process: one left by a run killed in between (kill -9) is swept by the next run.
        sweepOrphanTemps(directory)
        let temp = directory.appendingPathComponent(".sandpiper.lock.\(getpid()).\(info.id).tmp")
        if let reason = writePrivate(data, to: temp) { throw .unreadable(path: temp.path, reason: reason) }
        defer { unlink(temp.path) }
        if link(temp.path, url.path) != 0 {
            if errno == EEXIST { throw .held(try holder(url), path: url.path) }
            throw .unreadable(path: url.path, reason: String(cString: strerror(errno)))
        }
        return ClusterLock(info: info, url: url)
    }

    /// The current holder, if any.
    public static func current(directory: URL) throws(LockError) -> LockInfo? {
        let url = lockURL(directory: directory)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return try holder(url)
    }

    /// Removes a lock left by a run that died, after checking its ID.
    public static func forceUnlock(directory: URL, id: String) throws(LockError) {
        let url = lockURL(directory: directory)
        sweepOrphanTemps(directory)
        guard FileManager.default.fileExists(atPath: url.path) else { throw .notLocked(path: url.path) }
        let found: String
        do { found = try holder(url).id } catch {
            // A damaged lock has no holder to ask: its content digest is the ID the refused run printed.
            guard case .damaged(_, _, let damagedID) = error else { throw error }
            found = damagedID
        }
        guard found == id else { throw .wrongID(expected: id, found: found) }
        unlink(url.path)
    }

    private static func holder(_ url: URL) throws(LockError) -> LockInfo {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw .unreadable(path: url.path, reason: "cannot be read")
        }
        do { return try JSONDecoder().decode(LockInfo.self, from: data) } catch {
            let reason = data.isEmpty ? "empty" : "\(data.count) bytes that are not a lock record"
            throw .damaged(path: url.path, reason: reason, id: "damaged-" + SHA256.hex(data).prefix(16))
        }
    }

    /// Creates `url` (which must not exist) holding `data`, synced to disk; the reason on failure.
    private static func writePrivate(_ data: Data, to url: URL) -> String? {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { return "create \(url.path): \(String(cString: strerror(errno)))" }
        let written = data.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == data.count, synced else {
            unlink(url.path)
            return "write \(url.path): \(String(cString: strerror(errno)))"
        }
        return nil
    }

    /// Removes private lock files a run killed between writing and linking left behind: those whose process
    /// (`.sandpiper.lock.<pid>.<id>.tmp`) is gone, and any more than a minute old (a live acquire keeps its file
    /// for microseconds; older formats have no pid; a pid may have been reused).
    static func sweepOrphanTemps(_ directory: URL) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names where name.hasSuffix(".tmp") && name.contains(".sandpiper.lock.") {
            let path = directory.appendingPathComponent(name).path
            let parts = name.split(separator: ".")  // ["sandpiper", "lock", pid, id, "tmp"] in the current format
            if name.hasPrefix(".sandpiper.lock."), parts.count == 5, let pid = Int32(parts[2]), pid > 0,
               kill(pid, 0) != 0, errno == ESRCH {
                unlink(path)
                continue
            }
            let modified = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate]) as? Date
            if let modified, modified.timeIntervalSinceNow < -60 { unlink(path) }
        }
    }

    private init(info: LockInfo, url: URL) { self.info = info; self.url = url }

    /// Releases the lock if this process still holds it.
    public func release() {
        mutex.lock(); defer { mutex.unlock() }
        guard !released else { return }
        released = true
        if let current = try? ClusterLock.holder(url), current.id == info.id { unlink(url.path) }
    }

    deinit { release() }
}
