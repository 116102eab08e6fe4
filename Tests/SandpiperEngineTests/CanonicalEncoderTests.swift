import Foundation
import SandpiperEngine
import SandpiperModel
import SandpiperPlanner
import XCTest

/// A plan's id hashes its canonical text. `CanonicalEncoder` writes that text directly; the oracle is the path
/// it replaces for ids (and that saved plans still take): print with JSONEncoder, parse, `JSONValue.canonical`.
final class CanonicalEncoderTests: XCTestCase {
    private func oldText(_ document: PlanDocument) throws -> String {
        var copy = document
        copy.id = nil
        return try JSONValue.parse(copy.encoded(pretty: false)).removing("id").canonical
    }

    private func newText(_ document: PlanDocument) throws -> String {
        var copy = document
        copy.id = nil
        return String(decoding: try CanonicalEncoder.bytes(of: copy), as: UTF8.self)
    }

    private func assertSame(_ document: PlanDocument, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try newText(document), try oldText(document), what, file: file, line: line)
        var copy = document
        copy.id = nil
        XCTAssertEqual(document.canonicalID, try PlanDocument.canonicalID(ofJSON: copy.encoded()), what, file: file, line: line)
    }

    private func plan(_ path: String, prune: Bool = false) throws -> PlanDocument {
        let cluster = try ClusterLoader.load(path)
        let connections = FleetConnections(cluster: cluster, readOnly: true)
        defer { connections.closeAll() }
        let snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        return Engine.plan(cluster, snapshot: snapshot, state: nil, specCommit: "0123abc", prune: prune)
    }

    /// Every bundled cluster's plan (with and without prune) and a generated fleet's plan of hundreds of actions.
    func testPlansHashTheSameTextOnBothPaths() throws {
        let paths = try generatedAndBundledClusterPaths(under: temporaryDirectory(self))
        var actions = 0
        for path in paths {
            for prune in [false, true] {
                let document = try plan(path, prune: prune)
                try assertSame(document, "\(path) prune \(prune)")
                actions += document.actions.count
            }
        }
        XCTAssertGreaterThan(actions, 100)
    }

    /// Values the bundled plans do not reach: integers beyond 2^53, tiny and huge and negative numbers, -0,
    /// escapes and non-ASCII text, keys that sort differently by scalar than by other orders.
    func testEdgeValuesHashTheSameTextOnBothPaths() throws {
        let root = try temporaryDirectory(self)
        _ = try GeneratedCluster.write(hosts: 40, vms: 800, intervals: 6, under: root)
        var document = try plan(root.appendingPathComponent("Clusters/bench").path)
        guard !document.actions.isEmpty, !document.decisions.isEmpty else {
            return XCTFail("the generated fleet must need actions")
        }
        document.basedOn?.stateSerial = Int.max
        document.cluster = "quote \" backslash \\ slash / tab \t nl \n cr \r bell \u{7} del \u{7F} nul \u{0} é 😀 \u{2028}"
        document.actions[0].reason = "\u{1F}\u{8}\u{C}ünïcödé"
        document.actions[0].parameters.cpuShares = 9_007_199_254_740_993
        document.actions[0].parameters.memoryHardLimitMiB = -0.0
        document.actions[0].parameters.balloonMiB = 1e-7
        document.actions[0].parameters.memoryMiB = 1.0e300
        document.actions[0].parameters.memorySoftLimitMiB = -123456789.125
        document.actions[0].parameters.vcpus = Int.min
        document.decisions[0].filtered = ["b": 1, "B": 2, "a": 3, "é": 4, "Z": 5, "": 6, "aa": 7, "\u{1F600}": 8, "\u{FFFD}": 9]
        var hotspot = try hotspotEntry()
        hotspot.samples = [0.1, 0.2 + 0.1, 1.0 / 3, 5e-324, 2.5e15, 4.0e16, 9_007_199_254_740_993]
        document.hotspots.append(hotspot)
        try assertSame(document, "edge values")
    }

    /// The simulator plans without identifying and identifies only plans with actions: the same document.
    func testIdentifyingLaterGivesTheSamePlan() throws {
        let root = try temporaryDirectory(self)
        _ = try GeneratedCluster.write(hosts: 40, vms: 800, intervals: 6, under: root)
        let cluster = try ClusterLoader.load(root.appendingPathComponent("Clusters/bench").path)
        let connections = FleetConnections(cluster: cluster, readOnly: true)
        defer { connections.closeAll() }
        let snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        let state = StateDocument(cluster: cluster.spec.name, lineage: "simulation")
        let whole = Engine.plan(cluster, snapshot: snapshot, state: state)
        var later = Engine.plan(cluster, snapshot: snapshot, state: state, identify: false)
        XCTAssertNil(later.id)
        Engine.identify(&later, snapshot: snapshot, state: state)
        XCTAssertFalse(whole.actions.isEmpty)
        XCTAssertEqual(try later.encoded(), try whole.encoded())
    }

    /// The inventory digest written in name order is the digest of the sorted lines, including for a name that is
    /// a prefix of another and for fractional memory; names it cannot vouch for go the string way.
    func testInventoryDigestBytesAreTheSortedLines() {
        var vms = FleetGenerator.generate(hosts: 20, vms: 400, seed: 3).observation.vms.shuffled()
        vms += [VMObservation(name: "ab", host: "h1", vcpus: 2, memoryMiB: 1024.5),
                VMObservation(name: "ab-c", host: "h2", state: .stopped, vcpus: 1, memoryMiB: 1e16),
                VMObservation(name: "ab.c", host: "h2", state: .paused, vcpus: 1, memoryMiB: -0.0),
                VMObservation(name: "Ab", host: "h1", vcpus: 4, memoryMiB: 512)]
        let lines = Array(PlanDocument.inventoryDigestInput(Observation(hosts: [], vms: vms)).utf8)
        XCTAssertEqual(PlanDocument.inventoryDigestBytes(vms), lines)
        XCTAssertNil(PlanDocument.inventoryDigestBytes(vms + [VMObservation(name: "caf\u{e9}", host: "h", vcpus: 1, memoryMiB: 1)]))
        XCTAssertNil(PlanDocument.inventoryDigestBytes(vms + [VMObservation(name: "a b", host: "h", vcpus: 1, memoryMiB: 1)]))
        XCTAssertNil(PlanDocument.inventoryDigestBytes(vms + [vms[0]]))
    }

    private func hotspotEntry() throws -> PlanDocument.HotspotEntry {
        try JSONDecoder().decode(PlanDocument.HotspotEntry.self, from: Data(
            #"{"host":"h","resource":"cpu","over":"4 of 5","samples":[0.5],"threshold":0.75}"#.utf8))
    }

    /// A value JSONEncoder refuses (a non-finite number) gives the id it always gave: none.
    func testNonFiniteNumbersFallBackToTheOldPath() throws {
        var document = try plan(repositoryRoot.appendingPathComponent("Clusters/demo").path)
        var hotspot = try hotspotEntry()
        hotspot.samples = [.nan]
        hotspot.predicted = .infinity
        document.hotspots.append(hotspot)
        XCTAssertThrowsError(try CanonicalEncoder.bytes(of: document))
        XCTAssertEqual(document.canonicalID, "")
    }
}
