internal import CGit2

/// A git object id (SHA-1, 20 bytes). Encodes as its 40-character lowercase hex string.
public struct ObjectID: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    /// The 40-character lowercase hex form.
    public let hex: String

    /// Accepts exactly 40 hex digits (either case); anything else is nil.
    /// Abbreviated ids are revisions: use ``GitRepository/resolve(_:)``.
    public init?(hex: String) {
        guard hex.utf8.count == 40, hex.utf8.allSatisfy({ $0.isHexDigit }) else { return nil }
        self.hex = hex.lowercased()
    }

    init(_ oid: git_oid) {
        var oid = oid
        var buffer = [UInt8](repeating: 0, count: 40)
        buffer.withUnsafeMutableBufferPointer { out in
            out.withMemoryRebound(to: CChar.self) { _ = git_oid_fmt($0.baseAddress, &oid) }
        }
        hex = String(decoding: buffer, as: UTF8.self)
    }

    init(_ oid: UnsafePointer<git_oid>) { self.init(oid.pointee) }

    /// The libgit2 form; `hex` is always valid so parsing cannot fail.
    var oid: git_oid {
        var out = git_oid()
        _ = git_oid_fromstrn(&out, hex, hex.utf8.count)
        return out
    }

    /// The first seven hex digits, for display only (not guaranteed unique).
    public var abbreviated: String { String(hex.prefix(7)) }

    public var description: String { hex }

    public static func < (lhs: ObjectID, rhs: ObjectID) -> Bool { lhs.hex < rhs.hex }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let id = ObjectID(hex: text) else {
            throw DecodingError.dataCorruptedError(in: container,
                                                   debugDescription: "not a 40-digit object id: \(text)")
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}

extension UInt8 {
    fileprivate var isHexDigit: Bool {
        (0x30...0x39).contains(self) || (0x41...0x46).contains(self) || (0x61...0x66).contains(self)
    }
}
