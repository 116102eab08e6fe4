import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import SandpiperEngine
import SandpiperSimulation
import SandpiperModel
import XCTest

/// The bundled diurnal cluster (12 hosts, 60 VMs, 5-minute intervals): consolidation off vs on over the first day.
final class ConsolidationSimulateTests: XCTestCase {
    func simulate(consolidation: Bool, intervals: Int = 288) throws -> SimulationReport {
        let cluster = try ClusterLoader.load(repositoryRoot.appendingPathComponent("Clusters/diurnal").path)
        return try Simulator(cluster: cluster, options: SimulationOptions(maxIntervals: intervals,
                                                                          consolidation: consolidation)).run()
    }

    func testConsolidationSavesHostHoursWithoutAddingHotspotTime() throws {
        let off = try simulate(consolidation: false)
        let on = try simulate(consolidation: true)
        XCTAssertEqual(off.hostHoursOn, 12 * 24)
        XCTAssertEqual(off.powerOns + off.powerOffs, 0)
        XCTAssertLessThan(on.hostHoursOn, 0.75 * off.hostHoursOn, "large savings")
        XCTAssertLessThanOrEqual(on.hotspotSeconds, off.hotspotSeconds, "no added hotspot time")
        XCTAssertEqual(on.hotspotsDetected, off.hotspotsDetected)
        XCTAssertEqual(on.applyFailures, 0)
        XCTAssertGreaterThan(on.powerOffs, 0)
        // The morning rise: hosts come back before any threshold is crossed (wake ahead).
        let wakes = on.actions.filter { $0.kind == "power-on" }
        XCTAssertGreaterThan(wakes.count, 0)
        XCTAssertTrue(wakes.allSatisfy { $0.reason.hasPrefix("wake ahead:") && $0.status == "done" })
        // Every power-off follows a drain of the same host, and no host is off while it holds a VM.
        for off in on.actions where off.kind == "power-off" {
            XCTAssertTrue(on.actions.contains { $0.kind == "drain" && $0.host == off.host && $0.plan == off.plan
                && $0.status == "done" })
        }
        XCTAssertGreaterThanOrEqual(on.timeline.compactMap(\.hostsOn).min() ?? 0, 2, "minHostsOn")

        // The SVG gains the hosts-on panel and standby shading.
        let svg = SimulationSVG.render(on)
        let parser = XMLParser(data: Data(svg.utf8))
        XCTAssertTrue(parser.parse())
        XCTAssertTrue(svg.contains("class=\"hosts-on\""))
        XCTAssertTrue(svg.contains("class=\"standby\""))
        XCTAssertFalse(SimulationSVG.render(off).contains("class=\"hosts-on\""))
        let compact = SimulationSVG.hostsOn(on)
        XCTAssertTrue(XMLParser(data: Data(compact.utf8)).parse())
        XCTAssertTrue(compact.contains("class=\"hosts-on\"") && compact.contains("% saved"))
        // Every polyline's points are "x,y" pairs of numbers (XMLParser does not check attribute syntax).
        for chart in [svg, compact] {
            for points in chart.components(separatedBy: "points=\"").dropFirst().map({ $0.prefix { $0 != "\"" } }) {
                XCTAssertTrue(points.split(separator: " ").allSatisfy { pair in
                    let xy = pair.split(separator: ",")
                    return xy.count == 2 && xy.allSatisfy { Double($0) != nil }
                }, "malformed points: \(points.prefix(80))")
            }
        }
        // JSON carries the new summary fields.
        let json = String(decoding: try on.encoded(), as: UTF8.self)
        XCTAssertTrue(json.contains("\"hostHoursOn\"") && json.contains("\"hotspotSeconds\""))
    }

    /// The memory-bound fleet (memory near 35% of every host day and night, CPU diurnal), policy with only the
    /// documented keys: the target band's low edge (42%) finds the nights' spare hosts that `lowUtilization: 0.35`
    /// never did, without adding hotspot time. Judged on the simulator's own counts of both runs.
    func testMemoryBoundFleetSavesHostHoursBelowTheTargetBand() throws {
        let cluster = try ClusterLoader.load(repositoryRoot.appendingPathComponent("Clusters/diurnal-mem").path)
        XCTAssertNil(cluster.policy.consolidation.lowUtilization, "the band decides, not lowUtilization")
        func run(_ cluster: LoadedCluster, _ on: Bool) throws -> SimulationReport {
            try Simulator(cluster: cluster, options: SimulationOptions(consolidation: on)).run()
        }
        let off = try run(cluster, false)
        let on = try run(cluster, true)
        XCTAssertEqual(off.powerOns + off.powerOffs, 0)
        XCTAssertLessThanOrEqual(on.hostHoursOn, 0.85 * off.hostHoursOn, "at least 15% of host-hours saved")
        XCTAssertEqual(on.hotspotSeconds, 0)
        XCTAssertEqual(off.hotspotSeconds, 0)
        XCTAssertEqual(on.applyFailures, 0)
        XCTAssertTrue(on.actions.filter { $0.kind == "power-off" }.allSatisfy { $0.reason.contains("target band") })

        // The old criterion on the same fleet: memory stays above 35%, no host is ever low, nothing is saved.
        var old = cluster
        old.policy.consolidation.lowUtilization = 0.35
        let legacy = try run(old, true)
        XCTAssertEqual(legacy.powerOffs, 0)
        XCTAssertEqual(legacy.hostHoursOn, off.hostHoursOn)
    }
}
