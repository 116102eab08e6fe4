import Foundation
@testable import SandpiperEngine
import SandpiperSimulation
import XCTest

final class ParallelObservationTests: XCTestCase {
    /// Two hung hosts must neither hold up the healthy ones nor be reported as answered.
    func testHungItemsTimeOutWithoutHoldingUpTheRest() {
        let start = Date()
        let results = FleetConnections.parallel((0..<8).map { "h\($0)" }, concurrency: 2, timeout: .seconds(1)) { i in
            if i == 0 || i == 1 { Thread.sleep(forTimeInterval: 6) }
            return i * 10
        }
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertLessThan(elapsed, 4, "bounded by the per-item deadline, not by the hung items")
        XCTAssertNil(results[0])
        XCTAssertNil(results[1])
        XCTAssertEqual(results[2...].compactMap { $0 }, [20, 30, 40, 50, 60, 70])
    }
}

final class SimulateSafetyTests: XCTestCase {
    func testSimulateRefusesRealHosts() throws {
        let root = try temporaryDirectory(self)
        let dir = try copyBundledCluster("demo", into: root)
        let specURL = dir.appendingPathComponent("cluster.yaml")
        let spec = try String(contentsOf: specURL, encoding: .utf8)
            .replacingOccurrences(of: "test:hosts/pm3.xml", with: "qemu+ssh://pm3.example.org/system")
        try write(spec, to: specURL)
        let cluster = try ClusterLoader.load(dir.path)
        XCTAssertThrowsError(try Simulator(cluster: cluster)) { error in
            XCTAssertTrue("\(error)".contains("pm3 is a real host"), "\(error)")
        }
    }
}

final class CommitScrubberTests: XCTestCase {
    /// Removing the scrubber (or narrowing the redaction rules) must fail this test: the text quotes the URI,
    /// the password alone and the key file path alone, as libvirt and ssh errors do.
    func testCredentialsAreRemovedWhereverTheyAreQuoted() throws {
        let root = try temporaryDirectory(self)
        let dir = try copyBundledCluster("demo", into: root)
        let secretURI = "qemu+ssh://root:hunter2@pm3.example.org/system?keyfile=/root/.ssh/id_sandpiper&no_verify=1"
        let specURL = dir.appendingPathComponent("cluster.yaml")
        try write(try String(contentsOf: specURL, encoding: .utf8)
            .replacingOccurrences(of: "test:hosts/pm3.xml", with: secretURI), to: specURL)
        let cluster = try ClusterLoader.load(dir.path)
        let text = """
            error: cannot connect to \(secretURI): Permission denied (publickey,password).
            ssh: password hunter2 rejected; tried /root/.ssh/id_sandpiper
            {"uri":"\(secretURI.replacingOccurrences(of: "/", with: "\\/"))"}
            """
        let clean = CommitScrubber.scrub(text, cluster: cluster)
        XCTAssertFalse(clean.contains("hunter2"), clean)
        XCTAssertFalse(clean.contains("id_sandpiper"), clean)
        XCTAssertTrue(clean.contains("qemu+ssh://root:***@pm3.example.org/system?keyfile=***&no_verify=1"), clean)
        XCTAssertEqual(CommitScrubber.scrub(Array(text.utf8), cluster: cluster), Array(clean.utf8))
    }
}
