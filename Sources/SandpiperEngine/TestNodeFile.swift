import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import SandpiperModel

/// Checks a libvirt test-driver node file (`test:hosts/pm1.xml`) before libvirt ever reads it.
/// libvirt trusts these numbers: `<vcpu>-1</vcpu>` wraps to 4294967295 and its test driver aborts the whole process
/// allocating 32 GiB, so a bad value must be refused here, at load, with the file, line, column and field.
/// Checked: well-formed XML with a `<node>` root; the host's CPU topology and memory; each domain's name, vCPU count
/// (and `current`) and memory sizes. Everything else is left to libvirt, which reports its own errors cleanly.
public enum TestNodeFile {
    /// Largest node file read; bigger ones are refused before parsing.
    public static let maxBytes = 4 << 20
    static let maxVcpus = 4096
    static let maxTopology = 4096
    static let maxKiB = 1 << 40  // 1 PiB

    public static func check(_ bytes: [UInt8], file: String) -> [SpecDiagnostic] {
        checkAndRead(bytes, file: file).diagnostics
    }

    /// The diagnostics, and what `TestNodeReader` read when the file is inside its subset (then there are none).
    static func checkAndRead(_ bytes: [UInt8], file: String) -> (diagnostics: [SpecDiagnostic], contents: TestNodeReader.Contents?) {
        guard bytes.count <= maxBytes else {
            return ([SpecDiagnostic(file: file, line: 1, column: 1, field: "",
                                    message: "the node file is \(bytes.count) bytes; the limit is \(maxBytes)")], nil)
        }
        // No DTDs: entity declarations are how XML bombs and external-file reads start, and node files need none.
        let text = String(decoding: bytes, as: UTF8.self)
        if mentionsDoctype(bytes), let doctype = text.range(of: "<!DOCTYPE", options: .caseInsensitive) {
            let before = text[..<doctype.lowerBound]
            let line = before.count(where: { $0 == "\n" }) + 1
            let lineStart = before.lastIndex(of: "\n").map(before.index(after:)) ?? before.startIndex
            let column = before[lineStart...].count + 1
            return ([SpecDiagnostic(file: file, line: line, column: column, field: "",
                                    message: "a node file may not declare a DTD or entities (<!DOCTYPE ...>)")], nil)
        }
        // A file TestNodeReader accepts keeps every rule below (the reader admits a stricter subset: well formed,
        // the same ranges and units, nothing it does not know): one fast scan instead of Foundation's XMLParser,
        // which costs a quarter of a second at 1,000 hosts. TestNodeReaderTests checks both agree.
        if let contents = TestNodeReader.read(bytes) { return ([], contents) }
        return (checkWithParser(bytes, text: text, file: file), nil)
    }

    /// `<!DOCTYPE` in any case, found in the bytes (Foundation's case-insensitive search, only then, says where).
    static func mentionsDoctype(_ bytes: [UInt8]) -> Bool {
        let word = Array("DOCTYPE".utf8)
        guard bytes.count >= 9 else { return false }
        for i in 0...(bytes.count - 9) where bytes[i] == UInt8(ascii: "<") && bytes[i + 1] == UInt8(ascii: "!") {
            if (0..<7).allSatisfy({ bytes[i + 2 + $0] & 0xDF == word[$0] }) { return true }
        }
        return false
    }

    /// The rules above, read with Foundation's XMLParser (any well-formed file, with positions for diagnostics).
    static func checkWithParser(_ bytes: [UInt8], text: String, file: String) -> [SpecDiagnostic] {
        let checker = Checker(file: file, lines: text.split(separator: "\n", omittingEmptySubsequences: false))
        let parser = XMLParser(data: Data(bytes))
        parser.shouldResolveExternalEntities = false
        parser.delegate = checker
        // FoundationXML may return true and still record an error (a file cut short): check both.
        if (!parser.parse() || parser.parserError != nil || !checker.stack.isEmpty) && checker.diagnostics.isEmpty {
            let code = parser.parserError.map { ($0 as NSError).code }
            let reason = code == nil || code == 5 ? "the file ends before </\(checker.stack.last?.name ?? "node")>"
                : "libxml2 error \(code.map(String.init) ?? "?")"
            checker.fail(line: parser.lineNumber, column: parser.columnNumber, field: "",
                         "not a well-formed XML node file (\(reason))")
        }
        if !checker.sawRoot && checker.diagnostics.isEmpty {
            checker.fail(line: 1, column: 1, field: "", "the node file is empty")
        }
        return checker.diagnostics
    }

    private final class Checker: NSObject, XMLParserDelegate {
        struct Frame {
            var name: String
            var attributes: [String: String]
            var line: Int
            var column: Int
            var text = ""
        }
        let file: String
        let lines: [Substring]
        var diagnostics: [SpecDiagnostic] = []
        var stack: [Frame] = []
        var sawRoot = false
        var domainIndex = -1
        var domainName: String?
        var domainVcpus: Int?

        init(file: String, lines: [Substring]) { self.file = file; self.lines = lines }

        /// libxml2 reports the position after a start tag; diagnostics point at its `<`.
        private func tagStart(_ name: String, line: Int, after column: Int) -> Int {
            guard line >= 1, line <= lines.count else { return column }
            let prefix = lines[line - 1].utf8.prefix(max(0, column))
            let needle = Array(("<" + name).utf8)
            let bytes = Array(prefix)
            guard bytes.count >= needle.count else { return column }
            for start in stride(from: bytes.count - needle.count, through: 0, by: -1)
            where Array(bytes[start..<start + needle.count]) == needle {
                return start + 1
            }
            return column
        }

        func fail(line: Int, column: Int, field: String, _ message: String) {
            diagnostics.append(SpecDiagnostic(file: file, line: line, column: column, field: field, message: message))
        }

        private var path: [String] { stack.map(\.name) }

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            let frame = Frame(name: name, attributes: attributes, line: parser.lineNumber,
                              column: tagStart(name, line: parser.lineNumber, after: parser.columnNumber))
            if stack.isEmpty {
                sawRoot = true
                if name != "node" {
                    fail(line: frame.line, column: frame.column, field: "",
                         "the root element is <\(name)>; a test-driver node file starts with <node>")
                    parser.abortParsing()
                    return
                }
            }
            if path == ["node"] && name == "domain" { domainIndex += 1; domainName = nil; domainVcpus = nil }
            stack.append(frame)
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if !stack.isEmpty { stack[stack.count - 1].text += string }
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            guard let frame = stack.popLast() else { return }
            let text = frame.text.trimmingCharacters(in: .whitespacesAndNewlines)
            switch path + [name] {
            case ["node", "cpu", "mhz"]:
                _ = whole(text, frame, "cpu.mhz", 1...1_000_000)
            case ["node", "cpu", "nodes"], ["node", "cpu", "sockets"], ["node", "cpu", "cores"],
                 ["node", "cpu", "threads"], ["node", "cpu", "active"]:
                _ = whole(text, frame, "cpu.\(name)", 1...TestNodeFile.maxTopology)
            case ["node", "memory"]:
                _ = whole(text, frame, "memory", 1...TestNodeFile.maxKiB, unit: "KiB")
            case ["node", "domain", "name"]:
                if text.isEmpty { fail(line: frame.line, column: frame.column, field: domainField("name"), "empty name") }
                domainName = text
            case ["node", "domain", "vcpu"]:
                domainVcpus = whole(text, frame, domainField("vcpu"), 1...TestNodeFile.maxVcpus)
                if let current = frame.attributes["current"] {
                    _ = whole(current, frame, domainField("vcpu@current"), 1...(domainVcpus ?? TestNodeFile.maxVcpus))
                }
            case ["node", "domain", "memory"], ["node", "domain", "currentMemory"], ["node", "domain", "maxMemory"]:
                size(text, unit: frame.attributes["unit"], frame, domainField(name))
            case ["node", "domain"]:
                if domainName == nil {
                    fail(line: frame.line, column: frame.column, field: domainField(""), "a domain needs a <name>")
                }
            default:
                break
            }
        }

        private func domainField(_ leaf: String) -> String {
            let base = "domain[\(domainIndex)]"
            return leaf.isEmpty ? base : "\(base).\(leaf)"
        }

        private func named(_ message: String) -> String {
            domainName.map { "\(message) (domain \($0))" } ?? message
        }

        /// A whole number in `range` (digits only: libvirt would wrap a minus sign into a huge unsigned value).
        private func whole(_ text: String, _ frame: Frame, _ field: String, _ range: ClosedRange<Int>,
                           unit: String? = nil) -> Int? {
            let shown = unit.map { " \($0)" } ?? ""
            guard !text.isEmpty, text.count <= 19, text.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let value = Int(text), range.contains(value) else {
                fail(line: frame.line, column: frame.column, field: field,
                     named("\"\(text)\" is not a whole number from \(range.lowerBound) to \(range.upperBound)\(shown)"))
                return nil
            }
            return value
        }

        /// A domain memory size: a whole number in a unit libvirt knows, from 1 KiB to 1 PiB.
        private func size(_ text: String, unit: String?, _ frame: Frame, _ field: String) {
            let kib: [String: Double] = ["b": 1.0 / 1024, "bytes": 1.0 / 1024, "KB": 1000.0 / 1024, "k": 1, "KiB": 1,
                                         "MB": 1e6 / 1024, "M": 1024, "MiB": 1024, "GB": 1e9 / 1024, "G": 1_048_576,
                                         "GiB": 1_048_576, "TB": 1e12 / 1024, "T": 1_073_741_824,
                                         "TiB": 1_073_741_824]
            let unitName = unit ?? "KiB"
            guard let factor = kib[unitName] else {
                fail(line: frame.line, column: frame.column, field: field,
                     named("unknown unit \"\(unitName)\" (use KiB, MiB, GiB or TiB)"))
                return
            }
            guard !text.isEmpty, text.count <= 19, text.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let value = Double(text), value * factor >= 1, value * factor <= Double(TestNodeFile.maxKiB) else {
                fail(line: frame.line, column: frame.column, field: field,
                     named("\"\(text)\" \(unitName) is not a memory size from 1 KiB to 1 PiB"))
                return
            }
        }
    }
}

extension ClusterLoader {
    /// Problems in the test-driver node files the spec names (`test:hosts/pm1.xml`), read from the same files as
    /// the spec, so `validate`, `plan` and `observe` refuse a bad one before libvirt parses it.
    /// Also returns what `TestNodeReader` read from the files it accepts, by the absolute path the host's
    /// connection URI names (`LoadedCluster.testNodeFiles`).
    static func nodeFileDiagnostics(_ spec: ClusterSpec?, _ files: ClusterFiles)
        -> (diagnostics: [SpecDiagnostic], contents: [String: TestNodeReader.Contents]) {
        var out: [SpecDiagnostic] = []
        var contents: [String: TestNodeReader.Contents] = [:]
        var seen = Set<String>()
        for host in spec?.hosts ?? [] {
            guard case .success(let uri) = HostURI.parse(host.uri), let file = uri.relativeTestFile,
                  let path = normalize(files.clusterDirectory + "/" + file), seen.insert(path).inserted,
                  let bytes = files.read(path) else { continue }
            let checked = TestNodeFile.checkAndRead(bytes, file: files.shown(path))
            out += checked.diagnostics
            if let read = checked.contents {
                contents[files.directory.appendingPathComponent(file).standardizedFileURL.path] = read
            }
        }
        return (out, contents)
    }
}
