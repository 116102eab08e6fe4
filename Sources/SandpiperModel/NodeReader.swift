import SandpiperYAML

/// Strict, error-collecting reading of a YAML node tree into typed values.
/// Every read that fails records a diagnostic and returns nil, so one pass reports all problems.
final class NodeReader {
    var sourceMap: SourceMap
    private(set) var diagnostics: [SpecDiagnostic] = []

    init(file: String) { sourceMap = SourceMap(file: file) }

    var file: String { sourceMap.file }

    func error(_ mark: Mark, _ path: String, _ message: String) {
        diagnostics.append(SpecDiagnostic(file: file, line: mark.line, column: mark.column, field: path,
                                          message: message))
    }

    func error(at path: String, _ message: String) { diagnostics.append(sourceMap.diagnostic(path, message)) }

    /// Opens a mapping, reporting every key not in `allowed` (with a suggestion when one is close).
    func mapping(_ node: YAMLNode, _ path: String, allowed: [String]) -> MappingReader? {
        sourceMap.record(path, node.mark)
        guard case .mapping(let pairs) = node.kind else {
            error(node.mark, path, "expected a mapping, found \(describe(node))")
            return nil
        }
        var values: [(key: String, value: YAMLNode)] = []
        values.reserveCapacity(pairs.count)
        for pair in pairs {
            guard case .scalar(let key, _) = pair.key.kind else {
                error(pair.key.mark, path, "keys must be plain names")
                continue
            }
            _ = untagged(pair.key, join(path, key))
            guard allowed.contains(key) else {
                let field = join(path, key)
                var message = "unknown field \"\(key)\""
                if let near = closest(key, in: allowed) { message += " (did you mean \"\(near)\"?)" }
                else { message += " (expected one of: \(allowed.joined(separator: ", ")))" }
                error(pair.key.mark, field, message)
                continue
            }
            values.append((key, pair.value))
            sourceMap.record(join(path, key), pair.value.mark)
            _ = untagged(pair.value, join(path, key))
        }
        return MappingReader(reader: self, node: node, path: path, values: values)
    }

    func sequence(_ node: YAMLNode, _ path: String) -> [YAMLNode]? {
        sourceMap.record(path, node.mark)
        guard case .sequence(let items) = node.kind else {
            error(node.mark, path, "expected a list, found \(describe(node))")
            return nil
        }
        for (i, item) in items.enumerated() {
            sourceMap.record("\(path)[\(i)]", item.mark)
            _ = untagged(item, "\(path)[\(i)]")
        }
        return items
    }

    /// Explicit tags (`!!str 2`, `!foo 2`) would change what a value means; the spec has no use for them, so any
    /// tag is an error rather than silently ignored (the value is still read, so one tag gives one error).
    /// True when `node` has none.
    /// `path` is built only for the error (20,000 VMs have some 200,000 fields).
    func untagged(_ node: YAMLNode, _ path: @autoclosure () -> String) -> Bool {
        guard let tag = node.tag else { return true }
        error(node.mark, path(), "YAML tags are not supported (found \(tag)); remove the tag")
        return false
    }

    func string(_ node: YAMLNode, _ path: String) -> String? {
        guard case .scalar(let text, let plain) = node.kind else {
            error(node.mark, path, "expected a string, found \(describe(node))")
            return nil
        }
        if plain && (text.isEmpty || text == "~" || text == "null") {
            error(node.mark, path, "expected a string, found null")
            return nil
        }
        return text
    }

    /// A name: letters, digits, `-`, `_`, `.`; starts with a letter or digit.
    func name(_ node: YAMLNode, _ path: String) -> String? {
        guard let text = string(node, path) else { return nil }
        // On bytes: every byte must be ASCII, so bytes and Characters coincide.
        func alphanumeric(_ b: UInt8) -> Bool {
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
        }
        let utf8 = text.utf8
        let ok = utf8.first.map(alphanumeric) == true && utf8.count <= 128 && utf8.allSatisfy {
            alphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
        }
        guard ok else {
            error(node.mark, path, "\"\(text)\" is not a valid name (letters, digits, '-', '_' and '.'; at most 128)")
            return nil
        }
        return text
    }

    func plainScalar(_ node: YAMLNode, _ path: String, expected: String) -> String? {
        guard case .scalar(let text, let plain) = node.kind else {
            error(node.mark, path, "expected \(expected), found \(describe(node))")
            return nil
        }
        guard plain else {
            error(node.mark, path, "expected \(expected), found the quoted string \"\(text)\"")
            return nil
        }
        return text
    }

    func bool(_ node: YAMLNode, _ path: String) -> Bool? {
        guard let text = plainScalar(node, path, expected: "true or false") else { return nil }
        switch text {
        case "true": return true
        case "false": return false
        default:
            error(node.mark, path, "\"\(text)\" is not a boolean (use true or false)")
            return nil
        }
    }

    func int(_ node: YAMLNode, _ path: String, min: Int? = nil, max: Int? = nil) -> Int? {
        guard let text = plainScalar(node, path, expected: "a whole number") else { return nil }
        // Digits with an optional minus, as `number` reads them: Swift's `Int("+2")` would accept a plus sign.
        let digits = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text) else {
            error(node.mark, path, "\"\(text)\" is not a whole number")
            return nil
        }
        return checkRange(Double(value), node, path, min: min.map(Double.init), max: max.map(Double.init),
                          show: { String(Int($0)) }).map { Int($0) }
    }

    func number(_ node: YAMLNode, _ path: String, min: Double? = nil, max: Double? = nil,
                what: String = "a number") -> Double? {
        guard let text = plainScalar(node, path, expected: what) else { return nil }
        guard let value = Units.parseNumber(text), value.isFinite else {
            error(node.mark, path, "\"\(text)\" is not \(what)")
            return nil
        }
        return checkRange(value, node, path, min: min, max: max ?? 1_000_000, show: Units.trim)
    }

    /// A fraction of capacity: `0.75` or `75%`, in (0, 1].
    func fraction(_ node: YAMLNode, _ path: String) -> Double? {
        guard let text = plainScalar(node, path, expected: "a fraction") else { return nil }
        let value: Double?
        if text.hasSuffix("%") { value = Units.parseNumber(String(text.dropLast())).map { $0 / 100 } }
        else { value = Units.parseNumber(text) }
        guard let v = value, v > 0, v <= 1 else {
            error(node.mark, path, "\"\(text)\" is not a fraction between 0 and 1 (e.g. 0.75 or 75%)")
            return nil
        }
        return v
    }

    /// Upper bounds that keep every later conversion (to libvirt's integer KiB, to Int) in range.
    static let maxSizeMiB = Double(1 << 30)          // 1 PiB
    static let maxBandwidthMbps = 10_000_000.0       // 10 Tbit/s
    static let maxDurationSeconds = 366 * 86_400.0   // a year

    func sizeMiB(_ node: YAMLNode, _ path: String) -> Double? {
        unit(node, path, Units.parseSizeMiB, "a size (use MiB, GiB or TiB, e.g. 512MiB or 2GiB)",
             max: Self.maxSizeMiB, show: Units.formatMiB)
    }

    func bandwidthMbps(_ node: YAMLNode, _ path: String) -> Double? {
        unit(node, path, Units.parseBandwidthMbps, "a bandwidth (use Mbit or Gbit, e.g. 1Gbit)",
             max: Self.maxBandwidthMbps, show: Units.formatMbps)
    }

    func durationSeconds(_ node: YAMLNode, _ path: String) -> Double? {
        unit(node, path, Units.parseDurationSeconds, "a duration (use ms, s, m or h, e.g. 10s or 5m)",
             max: Self.maxDurationSeconds, show: Units.formatSeconds)
    }

    private func unit(_ node: YAMLNode, _ path: String, _ parse: (String) -> Double?, _ what: String,
                      max: Double, show: (Double) -> String) -> Double? {
        guard case .scalar(let text, _) = node.kind else {
            error(node.mark, path, "expected \(what), found \(describe(node))")
            return nil
        }
        guard let value = parse(text) else {
            let joined = text.filter { $0 != " " }
            if joined != text, parse(joined) != nil {
                error(node.mark, path, "\"\(text)\" is not \(what); write it without a space: \(joined)")
            } else {
                error(node.mark, path, "\"\(text)\" is not \(what)")
            }
            return nil
        }
        guard value.isFinite, value <= max else {
            error(node.mark, path, "\"\(text)\" is above the maximum \(show(max))")
            return nil
        }
        return value
    }

    func oneOf<T: RawRepresentable & CaseIterable>(_ node: YAMLNode, _ path: String, _: T.Type) -> T?
    where T.RawValue == String {
        guard let text = plainScalar(node, path, expected: "a keyword") else { return nil }
        if let v = T(rawValue: text) { return v }
        let options = T.allCases.map(\.rawValue)
        error(node.mark, path, "\"\(text)\" is not one of: \(options.joined(separator: ", "))")
        return nil
    }

    func stringMap(_ node: YAMLNode, _ path: String) -> [String: String]? {
        sourceMap.record(path, node.mark)
        guard case .mapping(let pairs) = node.kind else {
            error(node.mark, path, "expected a mapping of names to values, found \(describe(node))")
            return nil
        }
        var out: [String: String] = [:]
        for pair in pairs {
            _ = untagged(pair.key, path)
            guard let key = name(pair.key, path) else { continue }
            _ = untagged(pair.value, join(path, key))
            guard let value = string(pair.value, join(path, key)) else { continue }
            out[key] = value
        }
        return out
    }

    private func checkRange(_ value: Double, _ node: YAMLNode, _ path: String, min: Double?, max: Double?,
                            show: (Double) -> String) -> Double? {
        if let lo = min, value < lo {
            error(node.mark, path, "\(show(value)) is below the minimum \(show(lo))")
            return nil
        }
        if let hi = max, value > hi {
            error(node.mark, path, "\(show(value)) is above the maximum \(show(hi))")
            return nil
        }
        return value
    }

    func describe(_ node: YAMLNode) -> String {
        switch node.kind {
        case .scalar(let text, let plain):
            if plain && (text.isEmpty || text == "~" || text == "null") { return "null" }
            return "the scalar \"\(text)\""
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        }
    }
}

/// The known fields of one mapping, read one at a time.
struct MappingReader {
    let reader: NodeReader
    let node: YAMLNode
    let path: String
    /// Known keys in document order (no duplicates: the parser refuses them). A mapping has a handful of keys, so
    /// a linear search beats hashing into a dictionary built for each of 20,000 VMs.
    let values: [(key: String, value: YAMLNode)]

    subscript(key: String) -> YAMLNode? {
        for entry in values where entry.key == key { return entry.value }
        return nil
    }

    func field(_ key: String) -> String { join(path, key) }

    /// The node for a required key; reports "missing required field" at the mapping when absent.
    func required(_ key: String) -> YAMLNode? {
        if let v = self[key] { return v }
        reader.error(node.mark, field(key), "missing required field")
        return nil
    }

    func read<T>(_ key: String, _ decode: (YAMLNode, String) -> T?) -> T? {
        self[key].flatMap { decode($0, field(key)) }
    }

    func readRequired<T>(_ key: String, _ decode: (YAMLNode, String) -> T?) -> T? {
        required(key).flatMap { decode($0, field(key)) }
    }
}

func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

/// The allowed key within edit distance 2 of `key`, if exactly one is nearest.
func closest(_ key: String, in candidates: [String]) -> String? {
    let scored = candidates.map { ($0, editDistance(key.lowercased(), $0.lowercased())) }.filter { $0.1 <= 2 }
    guard let best = scored.min(by: { ($0.1, $0.0) < ($1.1, $1.0) }) else { return nil }
    return best.0
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}

