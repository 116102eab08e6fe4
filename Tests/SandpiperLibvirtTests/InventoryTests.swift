import XCTest
@testable import SandpiperLibvirt

final class InventoryTests: XCTestCase {
    func testHostInfoFromNodeFile() throws {
        let conn = try LibvirtConnection(uri: try Fixture.pm1())
        let host = try conn.hostInfo()
        XCTAssertEqual(host.cpus, 8)
        XCTAssertEqual(host.memoryMiB, 16384)
        XCTAssertEqual(host.hypervisorType, "TEST")
        XCTAssertFalse(host.hostname.isEmpty)
        XCTAssertTrue(host.libvirtVersion.hasPrefix("9."), host.libvirtVersion)
        XCTAssertFalse(conn.keepAliveActive)
    }

    func testDomainsExactValues() throws {
        let conn = try LibvirtConnection(uri: try Fixture.pm1())
        let doms = try conn.domains()
        XCTAssertEqual(doms.map(\.name), ["db1", "web1"])
        let web = doms[1]
        XCTAssertEqual(web.uuid, Fixture.uuidA)
        XCTAssertEqual(web.state, .running)
        XCTAssertEqual(web.vcpus, 2)
        XCTAssertEqual(web.maxVcpus, 4)
        XCTAssertEqual(web.memoryMiB, 1024)
        XCTAssertEqual(web.maxMemoryMiB, 2048)
        XCTAssertTrue(web.persistent)
        XCTAssertFalse(web.autostart)
        let db = doms[0]
        XCTAssertEqual(db.state, .shutoff)
        XCTAssertEqual(db.vcpus, 1)
        XCTAssertEqual(db.memoryMiB, 512)
    }

    /// The test driver refuses virDomainGetSchedulerParametersFlags for every domain; after the first refusal a
    /// connection asks the flag-less call directly (20,000 failing calls cost more than the answers), same result.
    func testSchedulerParametersAfterTheFlagsVariantIsRefused() throws {
        let conn = try LibvirtConnection(uri: try Fixture.pm1())
        XCTAssertFalse(conn.refusesSchedulerFlags)
        let first = try conn.domain(named: "web1").cpuTune
        XCTAssertTrue(conn.refusesSchedulerFlags)
        XCTAssertNotNil(first?.weight)
        XCTAssertEqual(try conn.domain(named: "web1").cpuTune, first)
    }
}
