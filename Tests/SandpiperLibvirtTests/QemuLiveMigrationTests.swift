import Foundation
import XCTest
@testable import SandpiperLibvirt
import SandpiperTestSupport

/// Integration: real libvirtd/QEMU daemons (see QemuLab), live migration A -> B (client-managed) and B -> A
/// (peer-to-peer) through this module. Skipped when not root or libvirtd/qemu/setpriv are missing.
final class QemuLiveMigrationTests: XCTestCase {
    func testLiveMigrationBetweenTwoRealDaemons() throws {
        if let reason = QemuLab.unavailableReason() { throw XCTSkip(reason) }
        let started = Date()
        let lab = try QemuLab()
        var conns: [LibvirtConnection] = []
        defer {
            lab.teardown(domain: "tiny", connections: conns)
            lab.log(String(format: "wall time %.2fs", Date().timeIntervalSince(started)))
        }
        let (a, b) = try lab.startPair(
            hostUUIDs: ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"), migrationPortMin: 49152)
        conns += [a, b]
        XCTAssertTrue(a.keepAliveActive, "keepalive on a remote (unix socket) connection")

        let hostA = try a.hostInfo()
        XCTAssertEqual(hostA.hypervisorType, "QEMU")
        XCTAssertGreaterThan(hostA.cpus, 0)
        XCTAssertTrue(a.supportsLiveMigration(to: b))
        XCTAssertEqual(try a.resolveMigrationMode(.live, allowCold: false, to: b), .live)

        // Define + start the 64 MiB guest on A, observe it.
        XCTAssertEqual(try a.define(xml: QemuLab.tinyXML()), "tiny")
        try a.start("tiny")
        try a.start("tiny")  // idempotent
        lab.log("tiny started on A")
        let info = try a.domain(named: "tiny")
        XCTAssertEqual(info.state, .running)
        XCTAssertEqual(info.memoryMiB, 64)
        XCTAssertEqual(info.vcpus, 1)
        XCTAssertTrue(info.persistent)
        XCTAssertNil(info.cpuTune, "session mode has no cgroups: scheduler parameters unsupported")
        XCTAssertNil(info.memoryTune, "session mode has no cgroups: memtune unsupported")
        let tuneErr = XCTAssertLibvirtError(try a.setCPUTune("tiny", CPUTune(shares: 512, quota: 50_000)))
        XCTAssertEqual(tuneErr?.kind, .unsupported, "\(String(describing: tuneErr))")
        try a.setMemory("tiny", mib: 48, scope: .live)  // accepted; no guest balloon driver moves `actual`

        var sampler = UtilizationSampler()
        let s1 = try a.allDomainStats()
        _ = sampler.ingest(s1)
        XCTAssertNotNil(s1.domains["tiny"]?.cpuTimeNs)
        XCTAssertEqual(s1.domains["tiny"]?.balloonMaximumKiB, 65536)
        Thread.sleep(forTimeInterval: 1)
        let s2 = try a.allDomainStats()
        let u = try XCTUnwrap(sampler.ingest(s2).first)
        lab.log("observed: \(s2.domains["tiny"]!) -> \(u)")
        XCTAssertNotNil(u.cpuCores)
        XCTAssertGreaterThanOrEqual(u.cpuCores ?? -1, 0)

        // Live A -> B, client-managed (virDomainMigrate3).
        let progressSeen = ProgressLog()
        let ab = try a.migrate("tiny", to: b, mode: .live,
                               options: LiveMigrationOptions(migrateURI: "tcp://127.0.0.1", timeout: .seconds(60),
                                                             pollInterval: .milliseconds(100)),
                               progress: { progressSeen.add($0) })
        lab.log(String(format: "live A->B (client-managed) took %.2fs, %d progress reports, last %@",
                       ab.durationSeconds, progressSeen.count, String(describing: ab.lastProgress)))
        XCTAssertEqual(ab.mode, .live)
        XCTAssertEqual(try a.domainNames(), [])
        let onB = try b.domain(named: "tiny")
        XCTAssertEqual(onB.state, .running)
        XCTAssertTrue(onB.persistent)
        // Re-running is a no-op.
        XCTAssertTrue(try a.migrateLive("tiny", to: b).alreadyDone)

        // Counters restarted on B: the sampler must not produce a negative or huge rate across the move.
        let s3 = try b.allDomainStats()
        let across = UtilizationCalculator.utilization(previous: s2, current: s3).first
        if let c = across?.cpuCores { XCTAssertTrue(c >= 0 && c < 64, "cores across migration: \(c)") }

        // Live B -> A, peer-to-peer (virDomainMigrateToURI3).
        let ba = try b.migrate("tiny", to: a, mode: .live,
                               options: LiveMigrationOptions(migrateURI: "tcp://127.0.0.1", peerToPeer: true,
                                                             timeout: .seconds(60)))
        lab.log(String(format: "live B->A (peer-to-peer) took %.2fs", ba.durationSeconds))
        XCTAssertEqual(try b.domainNames(), [])
        XCTAssertEqual(try a.domain(named: "tiny").state, .running)
        XCTAssertTrue(try a.domain(named: "tiny").persistent)

        // Completion timeout: a 1 ms budget at 1 MiB/s; the job is aborted and the guest stays on A.
        do throws(LibvirtError) {
            let r = try a.migrateLive("tiny", to: b,
                                      options: LiveMigrationOptions(migrateURI: "tcp://127.0.0.1", bandwidthMiBps: 1,
                                                                    timeout: .milliseconds(1),
                                                                    pollInterval: .milliseconds(20)))
            XCTFail("expected a timeout, migration finished in \(r.durationSeconds)s")
        } catch {
            lab.log("timeout path: \(error)")
            XCTAssertEqual(error.kind, .timeout, "\(error)")
            XCTAssertEqual(try a.domain(named: "tiny").state, .running)
            XCTAssertNil(try b.domainIfExists(named: "tiny"))
        }
    }
}

final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [MigrationProgress] = []
    func add(_ p: MigrationProgress) { lock.lock(); items.append(p); lock.unlock() }
    var count: Int { lock.lock(); defer { lock.unlock() }; return items.count }
}
