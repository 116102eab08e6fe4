import Foundation
import SandpiperEngine
import SandpiperSimulation
import SandpiperModel
import XCTest

/// `simulate` models time the way `apply` runs a plan: in dependency waves, the actions of one wave at once.
final class SimulateWaveTests: XCTestCase {
    func simulate(_ name: String, _ options: SimulationOptions = SimulationOptions()) throws -> SimulationReport {
        let cluster = try ClusterLoader.load(repositoryRoot.appendingPathComponent("Clusters/\(name)").path)
        return try Simulator(cluster: cluster, options: options).run()
    }

    /// Recomputed from the report's own actions and the hosts' bandwidth (RAM from the node files would be the
    /// same as the report's durations, so the oracle is the wave structure): within a plan, all actions of a wave
    /// start together, a wave starts when the slowest action of the previous one ends, and a wave with several
    /// migrations lasts as long as the longest, not their sum.
    func testWavesRunTogetherAndFollowEachOther() throws {
        let r = try simulate("fleet-20", SimulationOptions(bandwidthMbps: 1000))
        let plans = Dictionary(grouping: r.actions.filter { $0.wave != nil }, by: \.plan)
        var parallelWaves = 0
        for (_, actions) in plans {
            let waves = Dictionary(grouping: actions, by: { $0.wave! })
            let numbers = waves.keys.sorted()
            XCTAssertEqual(numbers, Array(1...numbers.count), "waves are numbered 1...n")
            var previousEnd = actions[0].plannedAt
            for w in numbers {
                let members = waves[w]!
                XCTAssertEqual(Set(members.map(\.startedAt)).count, 1, "wave \(w) starts together")
                XCTAssertEqual(members[0].startedAt, previousEnd, accuracy: 1e-6, "wave \(w) starts when \(w - 1) ends")
                let longest = members.map { $0.finishedAt - $0.startedAt }.max()!
                let moves = members.filter { $0.kind == "migrate" }
                if moves.count > 1 {
                    parallelWaves += 1
                    let sum = moves.map { $0.finishedAt - $0.startedAt }.reduce(0, +)
                    XCTAssertLessThan(longest, sum, "migrations of one wave overlap")
                }
                previousEnd = members[0].startedAt + longest
            }
        }
        XCTAssertGreaterThan(parallelWaves, 0, "fleet-20 has waves with several migrations")
    }

    func testAClusterWithoutVMsHasNothingToDo() throws {
        let root = try temporaryDirectory(self)
        let dir = try copyBundledCluster("demo", into: root)
        var yaml = try String(contentsOf: dir.appendingPathComponent("cluster.yaml"), encoding: .utf8)
        yaml = String(yaml[..<yaml.range(of: "\nvms:")!.lowerBound]) + "\nvms: []\n"
        try write(yaml, to: dir.appendingPathComponent("cluster.yaml"))
        try write("time_s,vm,cpu_cores,net_mbps,mem_mib,swap_kbps,guest_free_mib\n",
                  to: dir.appendingPathComponent("traces/demo.csv"))
        // Node files without domains.
        for file in try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("hosts").path) {
            let url = dir.appendingPathComponent("hosts/\(file)")
            let xml = try String(contentsOf: url, encoding: .utf8)
            let stripped = xml.replacingOccurrences(of: "<domain[\\s\\S]*?</domain>", with: "", options: .regularExpression)
            try write(stripped, to: url)
        }
        let cluster = try ClusterLoader.load(dir.path)
        let report = try Simulator(cluster: cluster).run()
        XCTAssertEqual(report.intervals, 0)
        XCTAssertEqual(report.actions.count, 0)
        XCTAssertTrue(SimulationRenderer().render(report).contains("nothing to do"))
    }
}
