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
}
