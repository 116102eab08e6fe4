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
    private var marks: [String: Mark] = [:]

    public init(file: String) { self.file = file }

    mutating func record(_ path: String, _ mark: Mark) { marks[path] = marks[path] ?? mark }

    /// The mark of `path`, or of its nearest recorded ancestor.
    public func mark(for path: String) -> Mark {
        var p = path
        while true {
            if let m = marks[p] { return m }
            guard let cut = p.lastIndex(where: { $0 == "." || $0 == "[" }) else { break }
            p = String(p[..<cut])
        }
        return marks[""] ?? Mark(line: 1, column: 1)
    }

    public func diagnostic(_ path: String, _ message: String) -> SpecDiagnostic {
        let m = mark(for: path)
        return SpecDiagnostic(file: file, line: m.line, column: m.column, field: path, message: message)
    }
}
