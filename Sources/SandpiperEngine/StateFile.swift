import Foundation
import SandpiperModel

/// `Clusters/<name>/state.json`: what must survive between runs and be reviewed in git
/// (DESIGN.md section 3): observed inventory, lineage and serial, the last plan and the apply journal.
/// Sample windows are telemetry, not decisions: they are never stored here (each run samples its own window).
public struct StateDocument: Codable, Sendable, Equatable {
    public static let currentFormatVersion = 1
    /// Journal entries kept; older ones are dropped (git history keeps them).
    public static let journalLimit = 500

    public var formatVersion: Int
    /// Random id made once when the state is created; a plan from another lineage is never applied.
    public var lineage: String
    /// Increments on every write.
    public var serial: Int
    public var cluster: String
    /// The fleet as last observed or as left by apply; VM samples are not stored here.
    public var inventory: Observation?
    public var lastPlan: LastPlan?
    public var journal: [JournalEntry]

    public struct LastPlan: Codable, Sendable, Equatable {
        public var id: String
        public var status: String
        public init(id: String, status: String) { self.id = id; self.status = status }
    }

    public init(cluster: String, lineage: String = UUID().uuidString.lowercased()) {
        formatVersion = Self.currentFormatVersion
        self.lineage = lineage
        serial = 0
        self.cluster = cluster
        inventory = nil
        lastPlan = nil
        journal = []
    }
}

/// One step of an apply, written before the action runs (`started`) and after (`done` / `failed`),
/// so a crash at any point leaves a record of what may have happened.
public struct JournalEntry: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable { case started, done, failed, skipped }
    public var planID: String
    public var actionID: String
    public var summary: String
    public var status: Status
    public var error: String?
    /// Output of a host power command (truncated), for host actions.
    public var output: String?
    /// Unix seconds.
    public var at: Double

    public init(planID: String, actionID: String, summary: String, status: Status, error: String? = nil,
                output: String? = nil, at: Double) {
        self.planID = planID; self.actionID = actionID; self.summary = summary; self.status = status
        self.error = error; self.output = output; self.at = at
    }
}

public enum StateError: Error, CustomStringConvertible, Sendable {
    case corrupt(path: String, reason: String)
    case newerFormat(path: String, found: Int)
    case writeFailed(path: String, reason: String)
    /// The file names another cluster (copied from another cluster's directory).
    case otherCluster(path: String, found: String, expected: String)

    public var description: String {
        switch self {
        case .corrupt(let path, let reason):
            "\(path): the state file is damaged (\(reason)); it was left untouched. Restore it from git "
                + "(git checkout -- \(path)) or move it away to start a new lineage."
        case .newerFormat(let path, let found):
            "\(path): formatVersion \(found) was written by a newer Sandpiper (this one reads "
                + "\(StateDocument.currentFormatVersion)); upgrade Sandpiper."
        case .writeFailed(let path, let reason): "\(path): cannot write the state file: \(reason)"
        case .otherCluster(let path, let found, let expected):
            "\(path): cluster: the state file belongs to cluster \"\(found)\", not \"\(expected)\" (copied from "
                + "another cluster?); it was left untouched. Move it away to start a new lineage."
        }
    }
}

/// Reads and atomically writes a cluster's state file.
public struct StateFile: Sendable {
    public let url: URL
    public init(directory: URL) { url = directory.appendingPathComponent("state.json") }
    public init(url: URL) { self.url = url }

    public var exists: Bool { FileManager.default.fileExists(atPath: url.path) }

    /// The stored state, or nil when there is none yet. A damaged or newer file is refused, never reset; so is one
    /// whose fields no Sandpiper writes (formatVersion below 1, a serial out of range, an empty lineage) and, when
    /// `cluster` is given, one that names another cluster.
    public func read(cluster: String? = nil) throws(StateError) -> StateDocument? {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            if exists { throw .corrupt(path: url.path, reason: "unreadable") }
            return nil
        }
        struct Version: Decodable { var formatVersion: Int }
        guard let version = try? JSONDecoder().decode(Version.self, from: data) else {
            throw .corrupt(path: url.path, reason: "not a JSON object with a formatVersion")
        }
        guard version.formatVersion <= StateDocument.currentFormatVersion else {
            throw .newerFormat(path: url.path, found: version.formatVersion)
        }
        let state: StateDocument
        do {
            state = try JSONDecoder().decode(StateDocument.self, from: data)
        } catch {
            throw .corrupt(path: url.path, reason: "\(error)")
        }
        if let reason = state.implausibility { throw .corrupt(path: url.path, reason: reason) }
        if let cluster, state.cluster != cluster {
            throw .otherCluster(path: url.path, found: state.cluster, expected: cluster)
        }
        return state
    }

    /// Writes `state` with its serial incremented: temp file, fsync, rename, fsync of the directory.
    @discardableResult
    public func write(_ state: StateDocument) throws(StateError) -> StateDocument {
        var next = state
        guard state.serial >= 0, state.serial < StateDocument.maxSerial else {
            throw .writeFailed(path: url.path, reason: "serial \(state.serial) cannot advance (0 to \(StateDocument.maxSerial - 1))")
        }
        next.advance()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data: Data
        do { data = try encoder.encode(next) + Data("\n".utf8) } catch {
            throw .writeFailed(path: url.path, reason: "\(error)")
        }
        do { try AtomicFile.write(data, to: url) } catch {
            throw .writeFailed(path: url.path, reason: "\(error)")
        }
        return next
    }
}

/// Crash-safe replacement of a file: readers see the old or the new content, never a mix.
public enum AtomicFile {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func write(_ data: Data, to url: URL) throws {
        let directory = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // A writer killed between create and rename leaves its temp file: callers hold the cluster lock,
        // so any temp file of this name is an orphan.
        let prefix = ".\(url.lastPathComponent)."
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        where name.hasPrefix(prefix) && name.hasSuffix(".tmp") {
            unlink(directory.appendingPathComponent(name).path)
        }
        let temp = directory.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
        let fd = open(temp.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw Failure(description: "open \(temp.path): \(String(cString: strerror(errno)))") }
        var ok = data.withUnsafeBytes { buffer -> Bool in
            var offset = 0
            while offset < buffer.count {
                let n = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(temp.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temp.path)
            throw Failure(description: "write \(url.path): \(reason)")
        }
        let dfd = open(directory.path, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}

extension StateDocument {
    /// Largest serial: 2^53 - 1, exact in every JSON reader, and far from `Int.max` so `advance` never overflows.
    public static let maxSerial = (1 << 53) - 1

    /// Why the decoded fields cannot have been written by Sandpiper, or nil when they are plausible.
    var implausibility: String? {
        if formatVersion < 1 { return "formatVersion: \(formatVersion) is not a version Sandpiper writes (1 or later)" }
        if serial < 0 || serial >= Self.maxSerial {
            return "serial: \(serial) is out of range (0 to \(Self.maxSerial - 1))"
        }
        if lineage.trimmingCharacters(in: .whitespaces).isEmpty { return "lineage: empty" }
        if cluster.isEmpty { return "cluster: empty" }
        return nil
    }

    /// What every write does: the serial moves on and the journal keeps its last `journalLimit` entries.
    public mutating func advance() {
        serial += 1
        if journal.count > Self.journalLimit { journal.removeFirst(journal.count - Self.journalLimit) }
    }

    /// Records `observation` (without samples) as the inventory. VMs last seen on hosts that did not answer this
    /// time are kept as they were: an unreachable host is unknown, never empty, and its VMs keep their residency
    /// clocks (`lastMovedAt`) for when it comes back.
    public mutating func record(_ observation: Observation) {
        var observed = observation.withoutSamples
        let unknown = Set(observed.hosts.filter { !$0.isUp }.map(\.name))
        let present = Set(observed.vms.map(\.name))
        let kept = (inventory?.vms ?? []).filter { unknown.contains($0.host) && !present.contains($0.name) }
        observed.vms = (observed.vms + kept).sorted { $0.name < $1.name }
        inventory = observed
    }

    /// Actions of the last plan journaled as started without an outcome: that apply was killed or crashed.
    /// Their effect is whatever libvirt shows now; the next plan starts from there.
    public var interruptedActions: [JournalEntry] {
        guard let plan = lastPlan, plan.status == "applying" else { return [] }
        let entries = journal.filter { $0.planID == plan.id }
        let finished = Set(entries.filter { $0.status != .started }.map(\.actionID))
        return entries.filter { $0.status == .started && !finished.contains($0.actionID) }
    }
}
