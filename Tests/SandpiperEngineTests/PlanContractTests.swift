import Foundation
import SandpiperEngine
import SandpiperLibvirt
import SandpiperModel
import XCTest

/// A saved plan is typed data: its id depends on what it says (not on how a JSON library printed it), a kind or a
/// name apply does not know is refused before anything runs, and apply reports what ran as data.
final class PlanContractTests: XCTestCase {
    func demo() throws -> (LoadedCluster, FleetConnections, PlanDocument) {
        let root = try temporaryDirectory(self)
        let dir = try copyBundledCluster("demo", into: root)
        let cluster = try ClusterLoader.load(dir.path)
        let connections = FleetConnections(cluster: cluster)
        addTeardownBlock { connections.closeAll() }
        let snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        return (cluster, connections, Engine.plan(cluster, snapshot: snapshot, state: nil))
    }

    /// Re-serialised JSON (other spacing, other key order, `1.0` for `1`): same id. A changed value: refused.
    func testPlanIDSurvivesReformattingButNotEdits() throws {
        let (_, _, document) = try demo()
        XCTAssertEqual(document.idAlgorithm, "sha256-canonical-1")
        XCTAssertEqual(document.sandpiperVersion, SandpiperVersion.current)
        XCTAssertEqual(document.clusterDirectory, "Clusters/demo")
        let saved = try document.encoded()
        XCTAssertEqual(try PlanStore.decode(saved, source: "p.json").id, document.id)

        // Another writer: Foundation's JSONSerialization, unsorted, not pretty, numbers as it likes.
        let object = try JSONSerialization.jsonObject(with: saved)
        let reformatted = try JSONSerialization.data(withJSONObject: object, options: [])
        XCTAssertNotEqual(reformatted, saved)
        XCTAssertEqual(try PlanStore.decode(reformatted, source: "p.json").id, document.id)
        // Whitespace by hand, and an integral number written as a decimal.
        var text = String(decoding: saved, as: UTF8.self)
        text = text.replacingOccurrences(of: "\n", with: "\r\n  ")
        text = text.replacingOccurrences(of: "\"formatVersion\" : 1", with: "\"formatVersion\":1.0")
        XCTAssertEqual(try PlanStore.decode(Data(text.utf8), source: "p.json").id, document.id)

        // An edited value changes the id: refused, whatever the formatting.
        var edited = document
        edited.actions[0].reason += " (edited)"
        let editedBytes = try edited.encoded()
        XCTAssertThrowsError(try PlanStore.decode(editedBytes, source: "p.json")) { error in
            XCTAssertTrue("\(error)".contains("modified after it was made"), "\(error)")
        }
    }

    /// The canonical text is Sandpiper's own: fixed here so a change to it is a visible, deliberate change.
    func testCanonicalTextIsFixed() throws {
        let json = #"{ "b": [1, 2.5, -0.125, 1e21, true, null], "a": "x\"y\\z\n\u0001é", "aa": {"z": 1, "y": 2.0} }"#
        XCTAssertEqual(try JSONValue.parse(Data(json.utf8)).canonical,
                       #"{"a":"x\"y\\z\n\u0001é","aa":{"y":2,"z":1},"b":[1,2.5,-0.125,1e+21,true,null]}"#)
    }

    /// Plans from before `idAlgorithm` existed still verify (their id hashed JSONEncoder's pretty bytes).
    func testLegacyPlansStillVerify() throws {
        let (_, _, document) = try demo()
        var legacy = document
        legacy.idAlgorithm = nil
        legacy.sandpiperVersion = nil
        legacy.id = nil
        legacy.id = String(SHA256.hex(try legacy.encoded()).prefix(12))
        XCTAssertEqual(try PlanStore.decode(try legacy.encoded(), source: "old.json").id, legacy.id)
        var future = document
        future.idAlgorithm = "sha3-canonical-9"
        XCTAssertThrowsError(try PlanStore.decode(try future.encoded(), source: "new.json")) { error in
            XCTAssertTrue("\(error)".contains("id algorithm sha3-canonical-9 is unknown"), "\(error)")
        }
    }

    /// An unknown kind is refused when the plan is read, naming the action and the field.
    func testUnknownKindIsRefusedOnRead() throws {
        let (_, _, document) = try demo()
        let text = String(decoding: try document.encoded(), as: UTF8.self)
            .replacingOccurrences(of: "\"kind\" : \"migrate\"", with: "\"kind\" : \"teleport\"")
        XCTAssertThrowsError(try PlanStore.decode(Data(text.utf8), source: "p.json")) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("actions[") && message.contains("kind"), message)
            XCTAssertTrue(message.contains("unknown kind \"teleport\""), message)
        }
    }

    /// A plan naming a host or VM the cluster does not have, or a dependency that does not come first, is refused
    /// whole: no action runs, no journal entry is written, the fleet is untouched.
    func testUnknownHostOrVMRefusesTheWholePlanBeforeAnythingRuns() throws {
        let (cluster, connections, document) = try demo()
        XCTAssertTrue(document.actions.count >= 2)
        let before = try connections.connection("pm2")!.domains().map(\.name).sorted()
        var cases: [(String, PlanDocument)] = []
        var badHost = document
        badHost.actions[badHost.actions.count - 1].from = "pm99"
        cases.append(("host pm99 is not in cluster demo", badHost))
        var badVM = document
        let m = badVM.actions.firstIndex { $0.kind == .migrate }!
        badVM.actions[m].vm = "ghost"
        cases.append(("ghost is not declared", badVM))
        var badDep = document
        badDep.actions[0].dependsOn = [badDep.actions[1].id]
        cases.append(("does not come before it", badDep))
        for (expected, plan) in cases {
            let applier = Applier(cluster: cluster, connections: connections, state: nil)
            XCTAssertThrowsError(try applier.apply(plan)) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
                XCTAssertTrue("\(error)".contains("nothing was applied"), "\(error)")
            }
            XCTAssertTrue(applier.state.journal.isEmpty)
            XCTAssertNil(try StateFile(directory: cluster.directory).read(), "no state written")
        }
        XCTAssertEqual(try connections.connection("pm2")!.domains().map(\.name).sorted(), before)
    }

    /// Apply reports what ran as data: kinds, the mode a move really used, waves and timings.
    func testOutcomesCarryKindModeAndWave() throws {
        let (cluster, connections, document) = try demo()
        let report = try Applier(cluster: cluster, connections: connections, state: nil).apply(document)
        XCTAssertTrue(report.succeeded)
        let byID = Dictionary(uniqueKeysWithValues: document.actions.map { ($0.id, $0) })
        var waveOf: [String: Int] = [:]
        for o in report.outcomes {
            let a = try XCTUnwrap(byID[o.actionID])
            XCTAssertEqual(o.kind, a.kind)
            XCTAssertGreaterThan(o.wave, 0)
            XCTAssertGreaterThanOrEqual(o.finishedAt, o.startedAt)
            // Every dependency ran in an earlier wave.
            for d in a.dependsOn { XCTAssertLessThan(try XCTUnwrap(waveOf[d]), o.wave) }
            waveOf[o.actionID] = o.wave
            if a.kind == .migrate { XCTAssertEqual(o.mode, .cold, "test-driver hosts move cold") } else { XCTAssertNil(o.mode) }
        }
    }
}
