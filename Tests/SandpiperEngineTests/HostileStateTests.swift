import Foundation
import SandpiperEngine
import XCTest

/// A state.json no Sandpiper wrote (hand-edited, copied, hostile) is refused with the field named, never trusted,
/// and never crashes the arithmetic that follows (serial + 1).
final class HostileStateTests: XCTestCase {
    private func state(_ fields: [String: String]) -> String {
        var all = ["formatVersion": "1", "lineage": "\"l-1\"", "serial": "3", "cluster": "\"demo\"", "journal": "[]"]
        for (k, v) in fields { all[k] = v }
        return "{" + all.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}"
    }

    private func refusal(_ fields: [String: String], cluster: String? = "demo") throws -> String {
        let dir = try temporaryDirectory(self)
        let url = dir.appendingPathComponent("state.json")
        let text = state(fields)
        try write(text, to: url)
        var message = "accepted"
        XCTAssertThrowsError(try StateFile(directory: dir).read(cluster: cluster)) { message = "\($0)" }
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), text, "a refused state file is left untouched")
        return message
    }

    func testAPlausibleStateIsRead() throws {
        let dir = try temporaryDirectory(self)
        try write(state([:]), to: dir.appendingPathComponent("state.json"))
        XCTAssertEqual(try StateFile(directory: dir).read(cluster: "demo")?.serial, 3)
    }

    func testTheLargestSerialIsRefusedInsteadOfOverflowing() throws {
        let message = try refusal(["serial": "9223372036854775807"])
        XCTAssertTrue(message.contains("serial: 9223372036854775807 is out of range"), message)
        XCTAssertTrue(message.contains("damaged"), message)
    }

    func testANegativeSerialIsRefused() throws {
        XCTAssertTrue(try refusal(["serial": "-1"]).contains("serial: -1 is out of range"))
    }

    func testFormatVersionsBelowOneAreRefused() throws {
        for v in ["0", "-1"] {
            let message = try refusal(["formatVersion": v])
            XCTAssertTrue(message.contains("formatVersion: \(v) is not a version Sandpiper writes"), message)
        }
    }

    func testAnEmptyLineageIsRefused() throws {
        XCTAssertTrue(try refusal(["lineage": "\"\""]).contains("lineage: empty"))
        XCTAssertTrue(try refusal(["lineage": "\"  \""]).contains("lineage: empty"))
    }

    func testAnotherClustersStateIsRefused() throws {
        let message = try refusal(["cluster": "\"prod\""])
        XCTAssertTrue(message.contains("belongs to cluster \"prod\", not \"demo\""), message)
    }

    func testWritingAtTheLastSerialFailsCleanly() throws {
        let dir = try temporaryDirectory(self)
        var doc = StateDocument(cluster: "demo")
        doc.serial = StateDocument.maxSerial
        XCTAssertThrowsError(try StateFile(directory: dir).write(doc)) { error in
            XCTAssertTrue("\(error)".contains("cannot advance"), "\(error)")
        }
        XCTAssertFalse(StateFile(directory: dir).exists)
    }
}
