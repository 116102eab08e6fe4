/// A position in a YAML source, 1-based, as editors show it.
public struct Mark: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public init(line: Int, column: Int) { self.line = line; self.column = column }
    public static func < (a: Mark, b: Mark) -> Bool { (a.line, a.column) < (b.line, b.column) }
    public var description: String { "\(line):\(column)" }
}

/// One node of a parsed YAML document. Every node keeps the mark where it starts so that
/// the model can report `file:line:column: field: message` for any value.
public struct YAMLNode: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// `plain` is true for unquoted scalars: only those may be read as numbers, booleans or null.
        case scalar(String, plain: Bool)
        case sequence([YAMLNode])
        /// Keys keep document order; duplicate keys are rejected by the parser.
        case mapping([YAMLPair])
    }
    public var kind: Kind
    public var mark: Mark
    /// An explicit tag such as `!!str`, if any.
    public var tag: String?

    public init(kind: Kind, mark: Mark, tag: String? = nil) {
        self.kind = kind; self.mark = mark; self.tag = tag
    }
}

public struct YAMLPair: Sendable, Equatable {
    public var key: YAMLNode
    public var value: YAMLNode
    public init(key: YAMLNode, value: YAMLNode) { self.key = key; self.value = value }
}

/// Hard limits that make hostile input (alias bombs, huge or deeply nested files) fail fast.
public struct YAMLLimits: Sendable {
    /// Largest accepted document, in bytes.
    public var maxBytes: Int
    /// Deepest nesting of sequences and mappings.
    public var maxDepth: Int
    /// Total nodes produced, counting every node an alias expands to: the alias-expansion budget.
    public var maxNodes: Int

    public init(maxBytes: Int = 4 << 20, maxDepth: Int = 64, maxNodes: Int = 200_000) {
        self.maxBytes = maxBytes; self.maxDepth = maxDepth; self.maxNodes = maxNodes
    }
    public static let `default` = YAMLLimits()
}

public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var mark: Mark?
    public init(_ message: String, mark: Mark? = nil) { self.message = message; self.mark = mark }
    public var description: String { mark.map { "\($0): \(message)" } ?? message }
}
