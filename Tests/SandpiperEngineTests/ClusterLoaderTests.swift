import Foundation
import SandpiperEngine
import SandpiperModel
import XCTest

final class ClusterLoaderTests: XCTestCase {
    func testBundledClustersAreValid() throws {
        for name in ["demo", "paper-3pm"] {
            let loaded = try ClusterLoader.load(repositoryRoot.appendingPathComponent("Clusters/\(name)").path)
            XCTAssertEqual(loaded.spec.name, name)
            XCTAssertEqual(loaded.spec.hosts.count, 3)
            XCTAssertEqual(loaded.spec.vms.count, 5)
            XCTAssertEqual(loaded.policy.thresholds.cpu, 0.75)
            XCTAssertEqual(loaded.specDigest.count, 64)
            XCTAssertTrue(loaded.connectionURI(for: loaded.spec.hosts[0]).hasPrefix("test:///"))
            XCTAssertTrue(loaded.connectionURI(for: loaded.spec.hosts[0]).hasSuffix("/Clusters/\(name)/hosts/pm1.xml"))
        }
    }

    func testMissingPolicyAndFilesAreReportedWithLocations() throws {
        let root = try temporaryDirectory(self)
        let dir = try copyBundledCluster("demo", into: root)
        var text = try String(contentsOf: dir.appendingPathComponent("cluster.yaml"), encoding: .utf8)
        text = text.replacingOccurrences(of: "policy: default", with: "policy: strict")
        text = text.replacingOccurrences(of: "test:hosts/pm2.xml", with: "test:hosts/missing.xml")
        try write(text, to: dir.appendingPathComponent("cluster.yaml"))
        try FileManager.default.removeItem(at: dir.appendingPathComponent("traces/demo.csv"))

        XCTAssertThrowsError(try ClusterLoader.load(dir.path)) { error in
            let messages = (error as! LoadError).diagnostics.map { "\($0.line):\($0.column) \($0.field): \($0.message)" }
            XCTAssertEqual(messages.count, 3, "\(messages)")
            XCTAssertTrue(messages[0].hasPrefix("4:9 policy: policy \"strict\" not found"), messages[0])
            XCTAssertTrue(messages[1].hasPrefix("7:10 telemetry.trace: file \"traces/demo.csv\" not found"), messages[1])
            XCTAssertTrue(messages[2].contains("hosts[1].uri: test driver node file \"hosts/missing.xml\" not found"),
                          messages[2])
        }
    }

    func testPolicyErrorsNameThePolicyFile() throws {
        let root = try temporaryDirectory(self)
        let dir = try copyBundledCluster("paper-3pm", into: root)
        try write("""
            apiVersion: sandpiper/v1
            kind: Policy
            thresholds: {cpu: 1.5}
            window: {k: 6, n: 5}
            automation: yolo
            """, to: root.appendingPathComponent("Policies/default.yaml"))
        XCTAssertThrowsError(try ClusterLoader.load(dir.path)) { error in
            let d = (error as! LoadError).diagnostics
            XCTAssertEqual(d.map(\.field), ["thresholds.cpu", "window.k", "automation"])
            XCTAssertTrue(d.allSatisfy { $0.file.hasSuffix("Policies/default.yaml") }, "\(d)")
            XCTAssertEqual(d.map(\.line), [3, 4, 5])
        }
    }

    func testMissingClusterFile() {
        XCTAssertThrowsError(try ClusterLoader.load("/nonexistent/cluster")) { error in
            XCTAssertEqual("\(error)", "/nonexistent/cluster: no such file")
        }
    }

    func testOversizedSpecIsRefusedBeforeParsing() throws {
        let root = try temporaryDirectory(self)
        let file = root.appendingPathComponent("cluster.yaml")
        try write("name: " + String(repeating: "x", count: 5 << 20), to: file)
        XCTAssertThrowsError(try ClusterLoader.load(file.path)) { error in
            XCTAssertTrue("\(error)".contains("the limit is"), "\(error)")
        }
    }
}

final class TraceTests: XCTestCase {
    func testBundledTracesParse() throws {
        let demo = try Trace.load(repositoryRoot.appendingPathComponent("Clusters/demo/traces/demo.csv"), shown: "demo.csv")
        XCTAssertEqual(demo.vmNames, ["batch1", "batch2", "db1", "web1", "web2"])
        XCTAssertEqual(demo.times.count, 36)
        XCTAssertEqual(demo.window("batch1", endingAt: 35, count: 5).count, 5)
        XCTAssertGreaterThan(demo.window("batch1", endingAt: 35, count: 5).last!.cpu, 4.0)
        XCTAssertEqual(demo.window("web1", endingAt: 2, count: 5).count, 3)
    }

    func testMalformedRowsNameLineAndColumn() {
        let header = Trace.header
        let cases: [(String, String)] = [
            ("time,vm\n", "t.csv:1:1: column 1 is `time` but must be `time_s`; columns 3-7 (cpu_cores, net_mbps, "
                + "mem_mib, swap_kbps, guest_free_mib) are missing; the header must be exactly: \(header)"),
            ("\(header)\n0,a,1,2,3,,\n0,a,1,2,3,,\n", "t.csv:3:1: a second row for a at time 0"),
            ("\(header)\n0,a,x,2,3,,\n", "t.csv:2:5: cpu_cores \"x\" is not a non-negative number"),
            ("\(header)\n0,a,1,2\n", "t.csv:2:1: expected 7 fields, found 4"),
            ("\(header)\n0,a,1,-2,3,,\n", "t.csv:2:7: net_mbps \"-2\" is not a non-negative number"),
            ("\(header)\n0,a,1,2,3,,\n0,b,1,2,3,,\n10,a,1,2,3,,\n",
             "t.csv:1:1: b has 1 rows but the trace has 2 intervals (one row per VM per interval)"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try Trace.parse(text, file: "t.csv")) { XCTAssertEqual("\($0)", expected) }
        }
    }
}

final class StateFileTests: XCTestCase {
    func testWriteIncrementsSerialAndRoundTrips() throws {
        let dir = try temporaryDirectory(self)
        let file = StateFile(directory: dir)
        XCTAssertNil(try file.read())
        var state = StateDocument(cluster: "demo")
        state.inventory = Observation(hosts: [HostObservation(name: "pm1", cpus: 8, memoryMiB: 16384, networkMbps: 1000)],
                                      vms: [VMObservation(name: "web1", host: "pm1", vcpus: 2, memoryMiB: 2048)])
        let first = try file.write(state)
        XCTAssertEqual(first.serial, 1)
        let second = try file.write(first)
        XCTAssertEqual(second.serial, 2)
        XCTAssertEqual(try file.read(), second)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        XCTAssertEqual(leftovers, ["state.json"], "no temp files left behind")
    }

    func testCorruptStateIsRefusedAndLeftUntouched() throws {
        let dir = try temporaryDirectory(self)
        let url = dir.appendingPathComponent("state.json")
        try write("{\"formatVersion\": 1, \"serial\": ", to: url)
        XCTAssertThrowsError(try StateFile(directory: dir).read()) { error in
            XCTAssertTrue("\(error)".contains("damaged"), "\(error)")
        }
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "{\"formatVersion\": 1, \"serial\": ")
    }

    func testNewerFormatIsRefused() throws {
        let dir = try temporaryDirectory(self)
        try write("{\"formatVersion\": 7}", to: dir.appendingPathComponent("state.json"))
        XCTAssertThrowsError(try StateFile(directory: dir).read()) { error in
            XCTAssertTrue("\(error)".contains("formatVersion 7 was written by a newer Sandpiper"), "\(error)")
        }
    }

    func testJournalIsBounded() throws {
        let dir = try temporaryDirectory(self)
        var state = StateDocument(cluster: "c")
        for i in 0..<(StateDocument.journalLimit + 20) {
            state.journal.append(JournalEntry(planID: "p", actionID: "a\(i)", summary: "", status: .done, at: 0))
        }
        let written = try StateFile(directory: dir).write(state)
        XCTAssertEqual(written.journal.count, StateDocument.journalLimit)
        XCTAssertEqual(written.journal.first?.actionID, "a20")
    }
}

final class StateInventoryTests: XCTestCase {
    func testVMsOfAnUnreachableHostAreKeptWithTheirResidencyClock() {
        var state = StateDocument(cluster: "c")
        state.record(Observation(hosts: [HostObservation(name: "pm1", cpus: 8, memoryMiB: 1024, networkMbps: 1000),
                                         HostObservation(name: "pm2", cpus: 8, memoryMiB: 1024, networkMbps: 1000)],
                                 vms: [VMObservation(name: "a", host: "pm1", vcpus: 1, memoryMiB: 512, lastMovedAt: 100),
                                       VMObservation(name: "b", host: "pm2", vcpus: 1, memoryMiB: 512, lastMovedAt: 200)]))
        // pm2 does not answer; pm1 does, and a moved from... nowhere: it is still on pm1.
        state.record(Observation(hosts: [HostObservation(name: "pm1", cpus: 8, memoryMiB: 1024, networkMbps: 1000),
                                         HostObservation(name: "pm2", status: .unknown(reason: "timeout"), cpus: 0,
                                                         memoryMiB: 0, networkMbps: 0)],
                                 vms: [VMObservation(name: "a", host: "pm1", vcpus: 1, memoryMiB: 512, lastMovedAt: 100)]))
        XCTAssertEqual(state.inventory?.vms.map { "\($0.name)@\($0.host):\($0.lastMovedAt ?? -1)" }, ["a@pm1:100.0", "b@pm2:200.0"])
        // When pm2 answers again without b, b is gone for real.
        state.record(Observation(hosts: [HostObservation(name: "pm1", cpus: 8, memoryMiB: 1024, networkMbps: 1000),
                                         HostObservation(name: "pm2", cpus: 8, memoryMiB: 1024, networkMbps: 1000)],
                                 vms: [VMObservation(name: "a", host: "pm1", vcpus: 1, memoryMiB: 512)]))
        XCTAssertEqual(state.inventory?.vms.map(\.name), ["a"])
    }

    func testInterruptedActionsAreThoseStartedWithoutAnOutcome() {
        var state = StateDocument(cluster: "c")
        state.lastPlan = .init(id: "p1", status: "applying")
        state.journal = [
            JournalEntry(planID: "p0", actionID: "1", summary: "old", status: .started, at: 0),
            JournalEntry(planID: "p1", actionID: "1", summary: "tune a", status: .started, at: 1),
            JournalEntry(planID: "p1", actionID: "2", summary: "migrate b", status: .started, at: 1),
            JournalEntry(planID: "p1", actionID: "1", summary: "tune a", status: .done, at: 2),
        ]
        XCTAssertEqual(state.interruptedActions.map(\.summary), ["migrate b"])
        state.lastPlan?.status = "applied"
        XCTAssertEqual(state.interruptedActions, [])
    }
}

final class TraceValidationTests: XCTestCase {
    func testAMalformedTraceIsReportedByValidate() throws {
        let root = try temporaryDirectory(self)
        let dir = try copyBundledCluster("demo", into: root)
        let traceURL = dir.appendingPathComponent("traces/demo.csv")
        var lines = try String(contentsOf: traceURL, encoding: .utf8).split(separator: "\n").map(String.init)
        lines[74] = lines[74].replacingOccurrences(of: ",1.", with: ",abc1.")
        try write(lines.joined(separator: "\n") + "\n", to: traceURL)
        XCTAssertThrowsError(try ClusterLoader.load(dir.path)) { error in
            let d = (error as! LoadError).diagnostics
            XCTAssertEqual(d.count, 1, "\(d)")
            XCTAssertTrue(d.first?.file.hasSuffix("Clusters/demo/traces/demo.csv") == true, "\(d)")
            XCTAssertEqual(d.first?.line, 75)
            XCTAssertTrue(d.first?.message.contains("is not a non-negative number") == true, "\(d)")
        }
    }
}
