import Foundation
import SandpiperYAML

/// One problem in an operator's file, located precisely:
/// `Clusters/demo/cluster.yaml:14:7: vms[2].memory: "3 GB" is not a size (use MiB, GiB or TiB)`.
public struct SpecDiagnostic: Sendable, Equatable, Codable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    /// The field path, e.g. `vms[2].resources.memory.limit`; empty for the document itself.
    public var field: String
    public var message: String

    public init(file: String, line: Int, column: Int, field: String, message: String) {
        self.file = file; self.line = line; self.column = column; self.field = field; self.message = message
    }

    public var description: String {
        let location = "\(file):\(line):\(column)"
        return field.isEmpty ? "\(location): \(message)" : "\(location): \(field): \(message)"
    }
}

/// Every problem found in one load, in file then position order; thrown when there is at least one.
public struct SpecErrors: Error, Sendable, Equatable, CustomStringConvertible {
    public var diagnostics: [SpecDiagnostic]
    public init(_ diagnostics: [SpecDiagnostic]) {
        self.diagnostics = diagnostics.sorted {
            ($0.file, $0.line, $0.column, $0.field, $0.message) < ($1.file, $1.line, $1.column, $1.field, $1.message)
        }
    }
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// Where each decoded field came from, so that semantic checks made after decoding
/// (duplicate names, dangling references, capacity) can still point at a line and column.
public struct SourceMap: Sendable, Equatable {
    public var file: String
    private var table = MarkTable()

    public init(file: String) { self.file = file }

    /// The first mark recorded for `path` wins. Recording only appends: the path -> mark table is built when a
    /// mark is first asked for, which a valid spec never does (hashing ~200,000 paths of a 20,000-VM spec was a
    /// tenth of `validate`).
    mutating func record(_ path: String, _ mark: Mark) {
        if !isKnownUniquelyReferenced(&table) { table = table.copy() }
        table.append(path, mark)
    }

    /// The mark of `path`, or of its nearest recorded ancestor.
    public func mark(for path: String) -> Mark {
        table.withMarks { marks in
            var p = path
            while true {
                if let m = marks[p] { return m }
                guard let cut = p.lastIndex(where: { $0 == "." || $0 == "[" }) else { break }
                p = String(p[..<cut])
            }
            return marks[""] ?? Mark(line: 1, column: 1)
        }
    }

    public func diagnostic(_ path: String, _ message: String) -> SpecDiagnostic {
        let m = mark(for: path)
        return SpecDiagnostic(file: file, line: m.line, column: m.column, field: path, message: message)
    }

    public static func == (a: SourceMap, b: SourceMap) -> Bool {
        a.file == b.file && (a.table === b.table || a.table.withMarks { x in b.table.withMarks { x == $0 } })
    }
}

/// The recorded marks: an append-only list, folded into a dictionary (first record of a path wins) on demand.
/// A reference shared by copies of a `SourceMap` (copied before a write when shared); the lock makes the lazy
/// fold safe when a copy is read from several threads.
private final class MarkTable: @unchecked Sendable {
    private let lock = NSLock()
    private var marks: [String: Mark] = [:]
    private var pending: [(path: String, mark: Mark)] = []

    /// Only through `SourceMap.record`, a mutation of a uniquely referenced table: no other reader can exist.
    func append(_ path: String, _ mark: Mark) { pending.append((path, mark)) }

    func withMarks<T>(_ body: ([String: Mark]) -> T) -> T {
        lock.lock(); defer { lock.unlock() }
        fold()
        return body(marks)
    }

    func copy() -> MarkTable {
        let other = MarkTable()
        other.marks = withMarks { $0 }
        return other
    }

    private func fold() {
        guard !pending.isEmpty else { return }
        for (path, mark) in pending where marks[path] == nil { marks[path] = mark }
        pending.removeAll(keepingCapacity: false)
    }
}
