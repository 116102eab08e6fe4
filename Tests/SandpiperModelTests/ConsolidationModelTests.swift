import Foundation
import SandpiperModel
import XCTest

/// Decoding of `hosts[].power` and `consolidation:`, and the standby host status in state.json.
final class ConsolidationModelTests: XCTestCase {
    func testHostPowerDecodesArgvLists() throws {
        let text = """
        apiVersion: sandpiper/v1
        kind: Cluster
        name: t
        hosts:
          - name: pm1
            uri: "qemu:///system"
            power:
              on: [/usr/bin/ipmitool, -H, pm1-bmc, chassis, power, on]
              off: [/usr/bin/ipmitool, -H, pm1-bmc, chassis, power, soft]
              status: [/usr/bin/ipmitool, -H, pm1-bmc, chassis, power, status]
          - {name: pm2, uri: "qemu:///system"}
        """
        let (spec, _) = try SpecDecoder.decodeCluster(text, file: "cluster.yaml")
        XCTAssertEqual(spec.hosts[0].power?.on, ["/usr/bin/ipmitool", "-H", "pm1-bmc", "chassis", "power", "on"])
        XCTAssertEqual(spec.hosts[0].power?.status?.last, "status")
        XCTAssertNil(spec.hosts[1].power)
    }

    func testConsolidationPolicyDefaultsAndKeys() throws {
        let base = "apiVersion: sandpiper/v1\nkind: Policy\n"
        let plain = try SpecDecoder.decodePolicy(base, file: "p.yaml", name: "p")
        XCTAssertFalse(plain.consolidation.enabled)
        XCTAssertEqual(plain.consolidation.powerCommands, .deny)
        let p = try SpecDecoder.decodePolicy(base + """
        consolidation: {enabled: true, targetUtilization: 0.6, lowUtilization: 25%, minHostsOn: 2, spareHosts: 1,
                        powerOffAfter: 30m, wakeAhead: false, powerCommands: allow, commandTimeout: 45s}
        """, file: "p.yaml", name: "p")
        let c = p.consolidation
        XCTAssertTrue(c.enabled)
        XCTAssertEqual(c.targetUtilization, 0.6)
        XCTAssertEqual(c.lowUtilization, 0.25)
        XCTAssertEqual(c.minHostsOn, 2)
        XCTAssertEqual(c.spareHosts, 1)
        XCTAssertEqual(c.powerOffAfterSeconds, 1800)
        XCTAssertFalse(c.wakeAhead)
        XCTAssertEqual(c.powerCommands, .allow)
        XCTAssertEqual(c.commandTimeoutSeconds, 45)
        XCTAssertEqual(c.lowLevel, 0.25, "lowUtilization overrides the band")
    }

    /// Without lowUtilization a host is low below the target band's low edge, targetUtilization - targetBand.
    func testTargetBandDecidesTheLowLevelAndIsValidated() throws {
        let base = "apiVersion: sandpiper/v1\nkind: Policy\n"
        let band = try SpecDecoder.decodePolicy(base + "consolidation: {enabled: true, targetUtilization: 0.6}\n",
                                                file: "p.yaml", name: "p").consolidation
        XCTAssertNil(band.lowUtilization)
        XCTAssertEqual(band.lowLevel, 0.6 - 0.18, accuracy: 1e-12)
        XCTAssertTrue(band.isLow(cpu: 0.1, net: 0, mem: 0.41))
        XCTAssertFalse(band.isLow(cpu: 0.1, net: 0, mem: 0.43))
        let wide = try SpecDecoder.decodePolicy(base + "consolidation: {targetUtilization: 0.6, targetBand: 0.1}\n",
                                                file: "p.yaml", name: "p").consolidation
        XCTAssertEqual(wide.lowLevel, 0.5, accuracy: 1e-12)
        XCTAssertThrowsError(try SpecDecoder.decodePolicy(base + "consolidation:\n  targetUtilization: 0.5\n  targetBand: 0.5\n",
                                                          file: "p.yaml", name: "p")) { error in
            let lines = (error as? SpecErrors)?.diagnostics.map(\.description) ?? []
            XCTAssertTrue(lines.contains { $0.contains("p.yaml:5:") && $0.contains("consolidation.targetBand:")
                && $0.contains("below targetUtilization") }, "\(lines)")
        }
    }

    func testConsolidationPolicyErrorsAreLocated() {
        let text = """
        apiVersion: sandpiper/v1
        kind: Policy
        consolidation:
          enabled: yes please
          targetUtilization: 0.8
          lowUtilization: 0.9
          powerCommands: sometimes
          powerOf: 30m
        """
        XCTAssertThrowsError(try SpecDecoder.decodePolicy(text, file: "p.yaml", name: "p")) { error in
            let lines = (error as? SpecErrors)?.diagnostics.map(\.description) ?? []
            XCTAssertTrue(lines.contains { $0.hasPrefix("p.yaml:4:12: consolidation.enabled:") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.hasPrefix("p.yaml:7:18: consolidation.powerCommands:") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.contains("consolidation.powerOf: unknown field") && $0.contains("powerOffAfter") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.contains("consolidation.lowUtilization:") && $0.contains("below targetUtilization") }, "\(lines)")
            XCTAssertTrue(lines.contains { $0.contains("consolidation.targetUtilization:") && $0.contains("thresholds") }, "\(lines)")
        }
    }

    func testStandbyHostRoundTripsInStateJSON() throws {
        let host = HostObservation(name: "pm4", status: .standby, cpus: 8, memoryMiB: 32768, networkMbps: 1000,
                                   lowSince: 1200)
        let data = try JSONEncoder().encode(host)
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertTrue(text.contains("\"status\":\"standby\""), text)
        let back = try JSONDecoder().decode(HostObservation.self, from: data)
        XCTAssertEqual(back, host)
        XCTAssertTrue(back.isStandby)
        XCTAssertFalse(back.isUp)
    }
}
