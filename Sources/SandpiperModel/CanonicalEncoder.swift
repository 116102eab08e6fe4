import Foundation

/// Writes an `Encodable` value straight in the canonical text of `JSONValue.canonical`, without printing JSON
/// and parsing it back: a plan of thousands of actions is hashed for its id in a fraction of the time.
///
/// The bytes are those of `JSONValue.parse(JSONEncoder().encode(value)).canonical` — numbers go through `Double`
/// as that parse does (integers beyond 2^53 round the same way), keys are sorted by Unicode scalar, strings are
/// escaped alike. Values JSONEncoder treats specially (`Date`, `Data`, `URL`, `Decimal`, `Float`), non-finite
/// numbers and values that encode nothing are not handled here: `bytes(of:)` throws and the caller takes the
/// JSONEncoder path. `CanonicalEncoderTests` compares both paths.
public enum CanonicalEncoder {
    public struct Unsupported: Error {}

    public static func bytes<T: Encodable>(of value: T) throws -> [UInt8] {
        let root = Node()
        try encode(value, into: root, path: [])
        var out: [UInt8] = []
        out.reserveCapacity(1 << 16)
        try root.write(to: &out)
        return out
    }

    fileprivate static func encode<T: Encodable>(_ value: T, into node: Node, path: [any CodingKey]) throws {
        switch value {
        case let v as String: node.kind = .string(v)
        case let v as Double: node.kind = try number(v)
        case let v as Bool: node.kind = .bool(v)
        case let v as Int: node.kind = .number(Double(v))
        // JSONEncoder's special cases, and Float (its JSON text is not its Double's): not reproduced here.
        case is Float, is Date, is Data, is URL, is Decimal: throw Unsupported()
        default: try value.encode(to: NodeEncoder(node: node, codingPath: path))
        }
        if case .unset = node.kind { throw Unsupported() }
    }

    fileprivate static func number(_ x: Double) throws -> Node.Kind {
        guard x.isFinite else { throw Unsupported() }  // JSONEncoder refuses them too
        return .number(x)
    }

    /// A JSON value being built; containers are filled in place by the encoders holding them.
    fileprivate final class Node {
        enum Kind {
            case unset, null, bool(Bool), number(Double), string(String), array, object
        }
        var kind: Kind = .unset
        var items: [Node] = []
        var members: [String: Node] = [:]

        func makeObject() throws {
            switch kind {
            case .unset: kind = .object
            case .object: break
            default: throw Unsupported()
            }
        }

        func makeArray() throws {
            switch kind {
            case .unset: kind = .array
            case .array: break
            default: throw Unsupported()
            }
        }

        func write(to out: inout [UInt8]) throws {
            switch kind {
            case .unset: throw Unsupported()
            case .null: out.append(contentsOf: "null".utf8)
            case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
            case .number(let n): out.append(contentsOf: JSONValue.number(n).utf8)
            case .string(let s): Node.string(s, to: &out)
            case .array:
                out.append(UInt8(ascii: "["))
                for (i, item) in items.enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    try item.write(to: &out)
                }
                out.append(UInt8(ascii: "]"))
            case .object:
                out.append(UInt8(ascii: "{"))
                let keys = members.keys.sorted {
                    $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) { $0.value < $1.value }
                }
                for (i, key) in keys.enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    Node.string(key, to: &out)
                    out.append(UInt8(ascii: ":"))
                    try members[key]!.write(to: &out)
                }
                out.append(UInt8(ascii: "}"))
            }
        }

        /// `JSONValue`'s escaping, byte by byte: a multi-byte UTF-8 sequence never holds a byte below 0x80, so
        /// copying those bytes is appending their scalars.
        static func string(_ s: String, to out: inout [UInt8]) {
            out.append(UInt8(ascii: "\""))
            for b in s.utf8 {
                switch b {
                case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
                case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
                case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
                case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
                case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
                case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
                case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
                case 0..<0x20:
                    let hex = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xF)]])
                default: out.append(b)
                }
            }
            out.append(UInt8(ascii: "\""))
        }
    }

    private struct NodeEncoder: Encoder {
        let node: Node
        let codingPath: [any CodingKey]
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
            KeyedEncodingContainer(Keyed<Key>(node: node, codingPath: codingPath, failed: (try? node.makeObject()) == nil))
        }

        func unkeyedContainer() -> any UnkeyedEncodingContainer {
            Unkeyed(node: node, codingPath: codingPath, failed: (try? node.makeArray()) == nil)
        }

        func singleValueContainer() -> any SingleValueEncodingContainer { Single(node: node, codingPath: codingPath) }
    }

    private struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let node: Node
        let codingPath: [any CodingKey]
        /// The node already held another kind of value (a type mixing containers): refuse at the first write.
        let failed: Bool

        private func child(_ key: Key) throws -> Node {
            guard !failed else { throw Unsupported() }
            let child = Node()
            node.members[key.stringValue] = child
            return child
        }

        mutating func encodeNil(forKey key: Key) throws { try child(key).kind = .null }
        mutating func encode(_ value: Bool, forKey key: Key) throws { try child(key).kind = .bool(value) }
        mutating func encode(_ value: String, forKey key: Key) throws { try child(key).kind = .string(value) }
        mutating func encode(_ value: Double, forKey key: Key) throws { try child(key).kind = try number(value) }
        mutating func encode(_ value: Int, forKey key: Key) throws { try child(key).kind = .number(Double(value)) }
        mutating func encode(_ value: Int8, forKey key: Key) throws { try child(key).kind = .number(Double(value)) }
        mutating func encode(_ value: Int16, forKey key: Key) throws { try child(key).kind = .number(Double(value)) }
        mutating func encode(_ value: Int32, forKey key: Key) throws { try child(key).kind = .number(Double(value)) }
        mutating func encode(_ value: Int64, forKey key: Key) throws { try child(key).kind = .number(Double(value)) }
        mutating func encode(_ value: UInt, forKey key: Key) throws { try child(key).kind = .number(Double(value)) }
        mutating func encode(_ value: UInt8, forKey key: Key) throws { try child(key).kind = .number(Double(value)) }
        mutating func encode(_ value: UInt16, forKey key: Key) throws { try child(key).kind = .number(Double(value)) }
        mutating func encode(_ value: UInt32, forKey key: Key) throws { try child(key).kind = .number(Double(value)) }
        mutating func encode(_ value: UInt64, forKey key: Key) throws { try child(key).kind = .number(Double(value)) }
        mutating func encode(_ value: Float, forKey key: Key) throws { throw Unsupported() }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            try CanonicalEncoder.encode(value, into: try child(key), path: codingPath + [key])
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type,
                                                            forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
            let c = (try? child(key)) ?? Node()
            return KeyedEncodingContainer(Keyed<NestedKey>(node: c, codingPath: codingPath + [key],
                                                           failed: failed || (try? c.makeObject()) == nil))
        }

        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            let c = (try? child(key)) ?? Node()
            return Unkeyed(node: c, codingPath: codingPath + [key], failed: failed || (try? c.makeArray()) == nil)
        }

        // `super` encoders are not used by Sandpiper's types; refuse them rather than guess JSONEncoder's layout.
        mutating func superEncoder() -> any Encoder { RefusingEncoder(codingPath: codingPath) }
        mutating func superEncoder(forKey key: Key) -> any Encoder { RefusingEncoder(codingPath: codingPath + [key]) }
    }

    private struct Unkeyed: UnkeyedEncodingContainer {
        let node: Node
        let codingPath: [any CodingKey]
        let failed: Bool
        var count: Int { node.items.count }

        private func next() throws -> Node {
            guard !failed else { throw Unsupported() }
            let child = Node()
            node.items.append(child)
            return child
        }

        mutating func encodeNil() throws { try next().kind = .null }
        mutating func encode(_ value: Bool) throws { try next().kind = .bool(value) }
        mutating func encode(_ value: String) throws { try next().kind = .string(value) }
        mutating func encode(_ value: Double) throws { try next().kind = try number(value) }
        mutating func encode(_ value: Int) throws { try next().kind = .number(Double(value)) }
        mutating func encode(_ value: Int8) throws { try next().kind = .number(Double(value)) }
        mutating func encode(_ value: Int16) throws { try next().kind = .number(Double(value)) }
        mutating func encode(_ value: Int32) throws { try next().kind = .number(Double(value)) }
        mutating func encode(_ value: Int64) throws { try next().kind = .number(Double(value)) }
        mutating func encode(_ value: UInt) throws { try next().kind = .number(Double(value)) }
        mutating func encode(_ value: UInt8) throws { try next().kind = .number(Double(value)) }
        mutating func encode(_ value: UInt16) throws { try next().kind = .number(Double(value)) }
        mutating func encode(_ value: UInt32) throws { try next().kind = .number(Double(value)) }
        mutating func encode(_ value: UInt64) throws { try next().kind = .number(Double(value)) }
        mutating func encode(_ value: Float) throws { throw Unsupported() }
        mutating func encode<T: Encodable>(_ value: T) throws {
            try CanonicalEncoder.encode(value, into: try next(), path: codingPath)
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
            let c = (try? next()) ?? Node()
            return KeyedEncodingContainer(Keyed<NestedKey>(node: c, codingPath: codingPath,
                                                           failed: failed || (try? c.makeObject()) == nil))
        }

        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
            let c = (try? next()) ?? Node()
            return Unkeyed(node: c, codingPath: codingPath, failed: failed || (try? c.makeArray()) == nil)
        }

        mutating func superEncoder() -> any Encoder { RefusingEncoder(codingPath: codingPath) }
    }

    private struct Single: SingleValueEncodingContainer {
        let node: Node
        let codingPath: [any CodingKey]

        private func set(_ kind: Node.Kind) throws {
            guard case .unset = node.kind else { throw Unsupported() }
            node.kind = kind
        }

        mutating func encodeNil() throws { try set(.null) }
        mutating func encode(_ value: Bool) throws { try set(.bool(value)) }
        mutating func encode(_ value: String) throws { try set(.string(value)) }
        mutating func encode(_ value: Double) throws { try set(try number(value)) }
        mutating func encode(_ value: Int) throws { try set(.number(Double(value))) }
        mutating func encode(_ value: Int8) throws { try set(.number(Double(value))) }
        mutating func encode(_ value: Int16) throws { try set(.number(Double(value))) }
        mutating func encode(_ value: Int32) throws { try set(.number(Double(value))) }
        mutating func encode(_ value: Int64) throws { try set(.number(Double(value))) }
        mutating func encode(_ value: UInt) throws { try set(.number(Double(value))) }
        mutating func encode(_ value: UInt8) throws { try set(.number(Double(value))) }
        mutating func encode(_ value: UInt16) throws { try set(.number(Double(value))) }
        mutating func encode(_ value: UInt32) throws { try set(.number(Double(value))) }
        mutating func encode(_ value: UInt64) throws { try set(.number(Double(value))) }
        mutating func encode(_ value: Float) throws { throw Unsupported() }
        mutating func encode<T: Encodable>(_ value: T) throws {
            guard case .unset = node.kind else { throw Unsupported() }
            try CanonicalEncoder.encode(value, into: node, path: codingPath)
        }
    }

    /// Hands out containers whose every write throws `Unsupported`.
    private struct RefusingEncoder: Encoder {
        let codingPath: [any CodingKey]
        var userInfo: [CodingUserInfoKey: Any] { [:] }
        private let node: Node = {
            let n = Node()
            n.kind = .null  // neither object nor array: every container write fails
            return n
        }()

        init(codingPath: [any CodingKey]) { self.codingPath = codingPath }

        func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
            KeyedEncodingContainer(Keyed<Key>(node: node, codingPath: codingPath, failed: true))
        }
        func unkeyedContainer() -> any UnkeyedEncodingContainer { Unkeyed(node: node, codingPath: codingPath, failed: true) }
        func singleValueContainer() -> any SingleValueEncodingContainer { Single(node: node, codingPath: codingPath) }
    }
}
