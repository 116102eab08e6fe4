import XCTest
@testable import SandpiperLibvirt

final class ActuationTests: XCTestCase {
    func testAllDomainStatsReturnsEveryDomain() throws {
        let conn = try LibvirtConnection(uri: try Fixture.pm1())
        let s1 = try conn.allDomainStats()
        XCTAssertEqual(s1.domains.keys.sorted(), ["db1", "web1"])
        let web = try XCTUnwrap(s1.domains["web1"])
        XCTAssertEqual(web.state, .running)
        XCTAssertEqual(web.uuid, Fixture.uuidA)
        XCTAssertEqual(s1.domains["db1"]?.state, .shutoff)
        XCTAssertNotNil(web.cpuTimeNs)                 // test driver: wall clock via the per-domain fallback
        XCTAssertEqual(web.balloonCurrentKiB, 1024 * 1024)
        XCTAssertNil(s1.domains["db1"]?.cpuTimeNs)     // shut off: no counters
        Thread.sleep(forTimeInterval: 0.05)
        let s2 = try conn.allDomainStats()
        XCTAssertGreaterThan(s2.timestampNs, s1.timestampNs)
        let u = UtilizationCalculator.utilization(previous: s1, current: s2)
        XCTAssertEqual(u.map(\.name), ["db1", "web1"])
    }

    func testSetMemoryAndVcpusLive() throws {
        let conn = try LibvirtConnection(uri: try Fixture.pm1())
        try conn.setMemory("web1", mib: 1536)
        try conn.setVcpus("web1", count: 3)
        let web = try conn.domain(named: "web1")
        XCTAssertEqual(web.memoryMiB, 1536)
        XCTAssertEqual(web.vcpus, 3)
        XCTAssertEqual(web.maxVcpus, 4)
        // Config follows too (scope .both on a running persistent domain).
        let xml = try conn.domainXML("web1")
        XCTAssertTrue(xml.contains("current='3'"), xml)
        // Inactive domain: .live is dropped automatically.
        try conn.setMemory("db1", mib: 256)
        XCTAssertEqual(try conn.domain(named: "db1").memoryMiB, 256)
        // Above the maximum is refused with a typed error.
        let err = XCTAssertLibvirtError(try conn.setMemory("web1", mib: 4096))
        XCTAssertNotNil(err)
    }

    func testSchedulerWeightAndUnsupportedShares() throws {
        let conn = try LibvirtConnection(uri: try Fixture.pm1())
        // The test driver accepts "weight" but does not store it (its getter always answers 50).
        XCTAssertEqual(try conn.domain(named: "web1").cpuTune, CPUTune(weight: 50))
        try conn.setCPUTune("web1", CPUTune(weight: 300))
        let err = XCTAssertLibvirtError(try conn.setCPUTune("web1", CPUTune(shares: 2048, quota: 50_000)))
        XCTAssertEqual(err?.kind, .unsupported, "\(String(describing: err))")
        XCTAssertTrue(err?.isUnsupported ?? false)
    }

    func testMemtuneHardAndSoftLimits() throws {
        let conn = try LibvirtConnection(uri: try Fixture.pm1())
        XCTAssertEqual(try conn.domain(named: "web1").memoryTune, MemoryTune(hardLimitMiB: nil, softLimitMiB: nil))
        try conn.setMemoryTune("web1", hardLimit: .mib(3072), softLimit: .mib(1800))
        XCTAssertEqual(try conn.domain(named: "web1").memoryTune, MemoryTune(hardLimitMiB: 3072, softLimitMiB: 1800))
        try conn.setMemoryTune("web1", hardLimit: .unlimited)
        XCTAssertEqual(try conn.domain(named: "web1").memoryTune, MemoryTune(hardLimitMiB: nil, softLimitMiB: 1800))
    }

    func testDefineStartDestroyUndefineAreIdempotent() throws {
        let conn = try LibvirtConnection(uri: try Fixture.pm2())
        let xml = Fixture.domainXML(name: "new1", uuid: Fixture.uuidC, memoryMiB: 256, maxMemoryMiB: 256)
        XCTAssertEqual(try conn.define(xml: xml), "new1")
        XCTAssertEqual(try conn.define(xml: xml), "new1")          // identical redefine is fine
        XCTAssertEqual(try conn.domain(named: "new1").state, .shutoff)
        try conn.start("new1")
        try conn.start("new1")                                     // already running: success
        XCTAssertEqual(try conn.domain(named: "new1").state, .running)
        try conn.destroy("new1")
        try conn.destroy("new1")                                   // already stopped: success
        XCTAssertEqual(try conn.domain(named: "new1").state, .shutoff)
        try conn.undefine("new1")
        try conn.undefine("new1")                                  // already gone: success
        XCTAssertEqual(try conn.domainNames(), [])
        // Same name, different UUID: refused.
        try conn.define(xml: xml)
        let clash = Fixture.domainXML(name: "new1", uuid: Fixture.uuidA)
        let err = XCTAssertLibvirtError(try conn.define(xml: clash))
        XCTAssertEqual(err?.kind, .domainExists, "\(String(describing: err))")
    }

    func testRefusedOperations() throws {
        let conn = try LibvirtConnection(uri: try Fixture.pm1())
        XCTAssertEqual(XCTAssertLibvirtError(try conn.start("ghost"))?.code, 42)
        XCTAssertEqual(XCTAssertLibvirtError(try conn.destroy("ghost"))?.code, 42)
        XCTAssertEqual(XCTAssertLibvirtError(try conn.setVcpus("ghost", count: 1))?.kind, .noDomain)
        let vcpus = XCTAssertLibvirtError(try conn.setVcpus("web1", count: 16))   // above the maximum of 4
        XCTAssertNotNil(vcpus)
        XCTAssertTrue(vcpus?.message.contains("web1") ?? false)
        let bad = XCTAssertLibvirtError(try conn.define(xml: "<domain><name>broken"))
        XCTAssertEqual(bad?.kind, .invalidArgument, "\(String(describing: bad))")
    }

    func testShutdownOfStoppedDomainSucceeds() throws {
        let conn = try LibvirtConnection(uri: try Fixture.pm1())
        try conn.shutdown("db1")
        try conn.shutdown("web1")
        XCTAssertEqual(try conn.domain(named: "web1").state, .shutoff)  // the test driver shuts down at once
    }
}
