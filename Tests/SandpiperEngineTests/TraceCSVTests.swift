import Foundation
import SandpiperEngine
import SandpiperLibvirt
import SandpiperModel
import XCTest

/// The byte-level trace reader (`TraceCSV`): line endings, header diagnostics, numbers, row order, parse-once.
final class TraceCSVTests: XCTestCase {
    let header = Trace.header
    var demoText: String {
        get throws { try String(contentsOf: repositoryRoot.appendingPathComponent("Clusters/demo/traces/demo.csv"), encoding: .utf8) }
    }

    func testCRLFAndBOMParseLikeLF() throws {
        let lf = try demoText
        XCTAssertFalse(lf.contains("\r"))
        let crlf = lf.replacingOccurrences(of: "\n", with: "\r\n")
        let expected = try Trace.parse(lf, file: "lf.csv")
        XCTAssertEqual(expected.times.count, 36)
        XCTAssertEqual(try Trace.parse(crlf, file: "crlf.csv"), expected)
        XCTAssertEqual(try Trace.parse("\u{FEFF}" + crlf, file: "bom.csv"), expected)
        XCTAssertEqual(try Trace.parse(bytes: Array(crlf.utf8), file: "crlf.csv"), expected)
        // Errors in a CRLF file name the same line and column as in the LF file.
        XCTAssertThrowsError(try Trace.parse("\(header)\r\n0,a,x,2,3,,\r\n", file: "t.csv")) {
            XCTAssertEqual("\($0)", "t.csv:2:5: cpu_cores \"x\" is not a non-negative number")
        }
        XCTAssertThrowsError(try Trace.parse("\(header)\r\n0,a,1,2,3,,\r\n0,a,1,2,3,,\r\n", file: "t.csv")) {
            XCTAssertEqual("\($0)", "t.csv:3:1: a second row for a at time 0")
        }
    }

    func testCRLFTraceLoadsWithTheCluster() throws {
        let root = try temporaryDirectory(self)
        let dir = try copyBundledCluster("demo", into: root)
        let file = dir.appendingPathComponent("traces/demo.csv")
        try write(try demoText.replacingOccurrences(of: "\n", with: "\r\n"), to: file)
        let loaded = try ClusterLoader.load(dir.path)
        XCTAssertEqual(loaded.trace, try Trace.parse(try demoText, file: "demo.csv"))
    }

    func testHeaderErrorsSayWhatDiffers() {
        let exactly = "the header must be exactly: \(header)"
        let cases: [(String, String)] = [
            ("time_s,vm,cpu,net_mbps,mem_mib,swap_kbps,guest_free_mib\n",
             "t.csv:1:11: column 3 is `cpu` but must be `cpu_cores`; \(exactly)"),
            ("time_s,vm,cpu,net_mbps,mem_mib,swap_kbps,guest_free_mib\r\n0,a,1,2,3,,\r\n",
             "t.csv:1:11: column 3 is `cpu` but must be `cpu_cores`; \(exactly)"),
            ("time_s,vm,cpu_cores,net_mbps,mem_mib\n",
             "t.csv:1:37: columns 6-7 (swap_kbps, guest_free_mib) are missing; \(exactly)"),
            ("time_s,vm,cpu_cores,net_mbps,mem_mib,swap_kbps\n",
             "t.csv:1:47: column 7 `guest_free_mib` is missing; \(exactly)"),
            ("\(header),host\n", "t.csv:1:63: 1 extra column after `guest_free_mib`; \(exactly)"),
            ("vm,time_s,cpu_cores,net_mbps,mem_mib,swap_kbps,guest_free_mib\n",
             "t.csv:1:1: column 1 is `vm` but must be `time_s`; column 2 is `time_s` but must be `vm`; \(exactly)"),
            ("0,a,1,2,3,,\n", "t.csv:1:1: column 1 is `0` but must be `time_s`; column 2 is `a` but must be `vm`; "
                + "column 3 is `1` but must be `cpu_cores`; column 4 is `2` but must be `net_mbps`; "
                + "column 5 is `3` but must be `mem_mib`; column 6 is `` but must be `swap_kbps`; "
                + "column 7 is `` but must be `guest_free_mib`; \(exactly)"),
            ("", "t.csv:1:1: the file is empty; \(exactly)"),
            ("\r\n\r\n", "t.csv:1:1: the file is empty; \(exactly)"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try Trace.parse(text, file: "t.csv"), text) { XCTAssertEqual("\($0)", expected) }
        }
        // Spaces around header names are tolerated, as around values.
        XCTAssertNoThrow(try Trace.parse(header.replacingOccurrences(of: ",", with: " , ") + "\n0,a,1,2,3,,\n", file: "t.csv"))
    }

    func testRowErrorsNameLineColumnAndField() {
        let cases: [(String, String)] = [
            ("\(header)\n0,,1,2,3,,\n", "t.csv:2:3: vm is required"),
            ("\(header)\n0,a,1,2,,,\n", "t.csv:2:9: mem_mib is required"),
            ("\(header)\n0,\"a\",1,2,3,,\n", "t.csv:2:3: quoted fields are not supported (a VM name is written bare)"),
            ("\(header)\n0,a,1,2,3,,,\n", "t.csv:2:1: expected 7 fields, found 8"),
            ("\(header)\n0,a,1,2,3,,\n\n10,a,1,nan,3,,\n", "t.csv:4:8: net_mbps \"nan\" is not a non-negative number"),
            ("\(header)\n0,a,1,2,3,,1e999\n", "t.csv:2:12: guest_free_mib \"1e999\" is not a non-negative number"),
            // Columns count characters, not bytes.
            ("\(header)\n0,é,x,2,3,,\n", "t.csv:2:5: cpu_cores \"x\" is not a non-negative number"),
            // A repeated row is caught when the rows of a VM are not in time order too.
            ("\(header)\n10,a,1,2,3,,\n0,a,1,2,3,,\n10,a,1,2,3,,\n", "t.csv:4:1: a second row for a at time 10"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try Trace.parse(text, file: "t.csv"), text) { XCTAssertEqual("\($0)", expected) }
        }
    }

    func testRowsInAnyOrderGiveTheSameTrace() throws {
        let lines = try demoText.split(separator: "\n").map(String.init)
        var rng = SystemRandomNumberGenerator()
        let shuffled = ([lines[0]] + lines.dropFirst().shuffled(using: &rng)).joined(separator: "\n")
        XCTAssertEqual(try Trace.parse(shuffled, file: "s.csv"), try Trace.parse(try demoText, file: "d.csv"))
    }

    /// Numbers are read from the bytes; `Double(String)` is the oracle, for plain decimals (the fast path) and
    /// for everything it hands on (many digits, large exponents, hex, signs).
    func testNumbersReadExactlyAsDoubleDoes() throws {
        var rng = SystemRandomNumberGenerator()
        var texts = ["0", "0.0", "00012.5000", "1e3", "1E-3", "2.5e+2", "1e22", "1e23", "9007199254740993",
                     "123456789012345.6", "0.1", "0.30000000000000004", "4.9e-324", "1.7976931348623157e308",
                     "0x1p3", "+5", "-0", "5.", ".5"]
        for _ in 0..<3000 {
            let v = Double.random(in: 0..<100_000, using: &rng)
            texts.append(String(v))
            texts.append(String(format: "%.3f", v))
            texts.append(String(format: "%.1f", v / 1000))
            texts.append(String(format: "%.6e", v))
            texts.append(String(Int.random(in: 0..<1_000_000_000, using: &rng)))
        }
        let body = texts.enumerated().map { "\($0.offset),a,\($0.element),0,0,,\n" }.joined()
        let trace: Trace
        do { trace = try Trace.parse(header + "\n" + body, file: "n.csv") } catch {
            // Only those Double refuses or that are negative may fail; none of the list is either.
            return XCTFail("\(error)")
        }
        let cpu = trace.samples["a"]!.map(\.cpu)
        for (i, text) in texts.enumerated() {
            XCTAssertEqual(cpu[i].bitPattern, Double(text)!.bitPattern, text)
        }
    }

    /// The trace is parsed at load and kept: observe replays it from memory, so a trace file replaced or removed
    /// after load changes nothing for that run.
    func testObserveUsesTheTraceParsedAtLoad() throws {
        let root = try temporaryDirectory(self)
        let dir = try copyBundledCluster("demo", into: root)
        let file = dir.appendingPathComponent("traces/demo.csv")
        let loaded = try ClusterLoader.load(dir.path)
        let expected = try Trace.load(file, shown: "demo.csv")
        XCTAssertEqual(loaded.trace, expected)

        try write("not a trace\n", to: file)
        let connections = FleetConnections(cluster: loaded, readOnly: true)
        defer { connections.closeAll() }
        let first = try Engine.observe(loaded, connections: connections, state: nil)
        try FileManager.default.removeItem(at: file)
        let second = try Engine.observe(loaded, connections: connections, state: nil)
        XCTAssertEqual(first.observation.now, expected.times.last)
        XCTAssertEqual(first.observation, second.observation)
        for vm in first.observation.vms {
            XCTAssertEqual(vm.samples, expected.window(vm.name, endingAt: expected.times.count - 1, count: 5), vm.name)
        }
        XCTAssertEqual(try Engine.observationClock(loaded), expected.times.last)
    }
}
