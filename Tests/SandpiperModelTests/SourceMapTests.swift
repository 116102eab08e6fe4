import SandpiperModel
import XCTest

/// The source map is folded into its lookup table only when first asked (a valid spec never asks): the marks it
/// returns must be where the text has each field, judged here by scanning the text itself.
final class SourceMapTests: XCTestCase {
    func testMarksOfEveryVMFieldMatchTheText() throws {
        var lines = ["apiVersion: sandpiper/v1", "kind: Cluster", "name: c", "hosts:", "  - {name: h1, uri: \"test:///default\"}",
                     "vms:"]
        for i in 0..<300 {
            lines.append("  - name: vm\(i)")
            lines.append("    vcpus: \(1 + i % 4)")
            lines.append("    memory: \(512 + i)MiB")
            lines.append("    resources: {cpu: {reservation: 0.5}}")
        }
        let text = lines.joined(separator: "\n") + "\n"
        let checked = SpecDecoder.check(text, file: "c.yaml") { _ in true }
        XCTAssertEqual(checked.diagnostics, [])
        let map = try XCTUnwrap(checked.sourceMap)
        /// Line and column (1-based) of the first `needle` at or after line `from`.
        func find(_ needle: String, from: Int) -> (line: Int, column: Int) {
            for n in from..<lines.count {
                if let r = lines[n].range(of: needle) {
                    return (n + 1, lines[n].distance(from: lines[n].startIndex, to: r.lowerBound) + 1)
                }
            }
            return (0, 0)
        }
        for i in stride(from: 0, to: 300, by: 7) {
            let first = 6 + 4 * i
            /// The value sits `skip` characters into the first `needle`.
            let at = { (path: String, needle: String, skip: Int) in
                let m = map.mark(for: path), want = find(needle, from: first)
                XCTAssertEqual([m.line, m.column], [want.line, want.column + skip], path)
            }
            at("vms[\(i)]", "name: vm\(i)", 0)
            at("vms[\(i)].name", "name: vm\(i)", 6)
            at("vms[\(i)].vcpus", "vcpus: ", 7)
            at("vms[\(i)].memory", "memory: ", 8)
            at("vms[\(i)].resources", "resources: ", 11)
            at("vms[\(i)].resources.cpu.reservation", "reservation: ", 13)
            // A path never recorded falls back to its nearest recorded ancestor.
            at("vms[\(i)].resources.cpu.limit", "{reservation", 0)
        }
        // A copy answers the same, and so does a second question (the table is folded once).
        let copy = map
        XCTAssertEqual(copy, map)
        XCTAssertEqual(copy.mark(for: "vms[299].memory"), map.mark(for: "vms[299].memory"))
        XCTAssertEqual(map.mark(for: "hosts[0].uri").line, 5)
    }
}
