import XCTest
@testable import SandpiperLibvirt

/// Cold migration between two independent test-driver hosts (one connection per host for the whole test).
final class MigrationTests: XCTestCase {
    private var pm1: LibvirtConnection!
    private var pm2: LibvirtConnection!

    override func setUpWithError() throws {
        pm1 = try LibvirtConnection(uri: try Fixture.pm1())
        pm2 = try LibvirtConnection(uri: try Fixture.pm2())
    }

    override func tearDown() {
        pm1?.close()
        pm2?.close()
    }

    func testTestDriverCannotMigrateLive() throws {
        XCTAssertFalse(pm1.supportsLiveMigration(to: pm2))
        XCTAssertEqual(try pm1.resolveMigrationMode(.live, allowCold: true, to: pm2), .cold)
        XCTAssertEqual(try pm1.resolveMigrationMode(.cold, allowCold: false, to: pm2), .cold)
        let err = XCTAssertLibvirtError(try pm1.resolveMigrationMode(.live, allowCold: false, to: pm2))
        XCTAssertEqual(err?.kind, .unsupported)
        XCTAssertEqual(XCTAssertLibvirtError(try pm1.migrate("web1", to: pm2, mode: .live, allowCold: false))?.kind,
                       .unsupported)
    }

    /// A domain whose local disks must be copied is never moved cold: cold only defines it on the target, where
    /// it would start without them. Nothing changes on either host.
    func testColdMoveWithLocalDisksIsRefused() throws {
        let copy = LiveMigrationOptions(copyStorage: .all, migrateDisks: ["vda"])
        let err = XCTAssertLibvirtError(try pm1.migrate("web1", to: pm2, mode: .live, allowCold: true, options: copy))
        XCTAssertTrue(err?.message.contains("cold migration of 'web1' refused: its local disk(s) vda") == true,
                      err?.message ?? "")
        XCTAssertNotNil(XCTAssertLibvirtError(try pm1.migrate("web1", to: pm2, mode: .cold, options: copy)))
        XCTAssertEqual(try pm1.domain(named: "web1").state, .running, "still running on the source")
        XCTAssertNil(try pm2.domainIfExists(named: "web1"), "not defined on the target")
        // Control: the same move without local disks goes through (cold, on the test driver).
        XCTAssertEqual(try pm1.migrate("web1", to: pm2, mode: .live, allowCold: true).mode, .cold)
    }

    func testColdMigrationOfRunningDomain() throws {
        try pm1.setMemory("web1", mib: 1536)
        let report = try pm1.migrate("web1", to: pm2, mode: .live, allowCold: true)
        XCTAssertEqual(report.mode, .cold)
        XCTAssertFalse(report.alreadyDone)
        XCTAssertEqual(report.steps.count, 4, "\(report.steps)")
        XCTAssertEqual(try pm1.domainNames(), ["db1"])
        let moved = try pm2.domain(named: "web1")
        XCTAssertEqual(moved.state, .running)
        XCTAssertEqual(moved.uuid, Fixture.uuidA)
        XCTAssertTrue(moved.persistent)
        XCTAssertEqual(moved.memoryMiB, 1536)       // the config carried the earlier resize
        XCTAssertEqual(moved.maxVcpus, 4)
        // Re-running is a no-op.
        let again = try pm1.migrateCold("web1", to: pm2)
        XCTAssertTrue(again.alreadyDone)
        XCTAssertEqual(again.steps, [])
        XCTAssertEqual(try pm2.domain(named: "web1").state, .running)
    }

    func testColdMigrationOfStoppedDomainStaysStopped() throws {
        let report = try pm1.migrate("db1", to: pm2, mode: .live, allowCold: true)
        XCTAssertEqual(report.mode, .cold)
        XCTAssertEqual(try pm2.domain(named: "db1").state, .shutoff)
        XCTAssertNil(try pm1.domainIfExists(named: "db1"))
    }

    func testResumesAfterInterruptionWithBothRunning() throws {
        // Interrupted after "define + start on target": both hosts run web1.
        try pm2.define(xml: try pm1.domainXML("web1"))
        try pm2.start("web1")
        let report = try pm1.migrateCold("web1", to: pm2)
        XCTAssertFalse(report.alreadyDone)
        XCTAssertEqual(report.steps.count, 2, "\(report.steps)")
        XCTAssertTrue(report.steps[0].hasPrefix("destroyed on"))
        XCTAssertTrue(report.steps[1].hasPrefix("undefined on"))
        XCTAssertNil(try pm1.domainIfExists(named: "web1"))
        XCTAssertEqual(try pm2.domain(named: "web1").state, .running)
    }

    func testResumesAfterInterruptionWithSourceStoppedButDefined() throws {
        // Interrupted after the source was destroyed but before it was undefined.
        try pm2.define(xml: try pm1.domainXML("web1"))
        try pm2.start("web1")
        try pm1.destroy("web1")
        let report = try pm1.migrateCold("web1", to: pm2)
        XCTAssertEqual(report.steps.count, 1, "\(report.steps)")
        XCTAssertEqual(try pm2.domain(named: "web1").state, .running)
        XCTAssertEqual(try pm1.domainNames(), ["db1"])
    }

    func testStopSourceFirstOrder() throws {
        let report = try pm1.migrateCold("web1", to: pm2, order: .stopSourceFirst)
        XCTAssertEqual(report.steps.map { String($0.prefix(while: { $0 != " " })) },
                       ["defined", "destroyed", "started", "undefined"])
        XCTAssertEqual(try pm2.domain(named: "web1").state, .running)
    }

    func testRefusesDifferentDomainWithSameNameOnTarget() throws {
        try pm2.define(xml: Fixture.domainXML(name: "web1", uuid: Fixture.uuidC))
        let err = XCTAssertLibvirtError(try pm1.migrateCold("web1", to: pm2))
        XCTAssertEqual(err?.kind, .domainExists)
        XCTAssertEqual(try pm1.domain(named: "web1").state, .running)  // source untouched
    }

    func testMissingEverywhereIsNoDomain() throws {
        let err = XCTAssertLibvirtError(try pm1.migrateCold("ghost", to: pm2))
        XCTAssertEqual(err?.code, 42)
        XCTAssertEqual(XCTAssertLibvirtError(try pm1.migrate("ghost", to: pm2, allowCold: true))?.code, 42)
    }

    func testMigrateAsyncRunsOffThePool() async throws {
        let report = try await pm1.migrateAsync("web1", to: pm2, allowCold: true)
        XCTAssertEqual(report.mode, .cold)
        XCTAssertEqual(try pm2.domain(named: "web1").state, .running)
        do {
            _ = try await pm1.migrateAsync("web1", to: pm2, mode: .live, allowCold: false)
            XCTFail("expected unsupported")
        } catch {
            XCTAssertEqual(error.kind, .unsupported)
        }
    }

    func testMigrateBackAndForth() throws {
        _ = try pm1.migrate("web1", to: pm2, allowCold: true)
        _ = try pm2.migrate("web1", to: pm1, allowCold: true)
        XCTAssertEqual(try pm1.domain(named: "web1").state, .running)
        XCTAssertEqual(try pm2.domainNames(), [])
    }
}
