import Foundation
import SandpiperEngine
import SandpiperLibvirt
import SandpiperModel
import SandpiperTestSupport
import XCTest

/// Local disks on real daemons (issue 12, item 4). Root-mode lab daemons have private mount namespaces, so
/// /var/lib/libvirt/images/dk-local.qcow2 is one file for A and another for B, as on two machines. A running
/// Linux guest with a local qcow2 disk on A, pinned to B: observe sees the disk as local with its size, the plan
/// moves it live, and apply copies the disk along (copy-storage, the image created on B by B's own daemon). After
/// the move the guest runs on B, reads back from B's image what it wrote on A, and is gone from A.
final class QemuDiskMigrationTests: XCTestCase {
    func testLiveMoveCopiesALocalDiskToTheTarget() throws {
        if let reason = LinuxGuest.unavailableReason() { throw XCTSkip(reason) }
        let shared = try SharedQemuLab.get(.root)
        let vm = "dk-local"
        let path = "/var/lib/libvirt/images/\(vm).qcow2"
        let onA = shared.lab.varLibLibvirt("A").appendingPathComponent("images/\(vm).qcow2")
        let onB = shared.lab.varLibLibvirt("B").appendingPathComponent("images/\(vm).qcow2")
        func clean() {
            shared.removeGuests([vm])
            for f in [onA, onB] { try? FileManager.default.removeItem(at: f) }
        }
        clean()
        defer { clean() }
        for f in [onA, onB] {
            try FileManager.default.createDirectory(at: f.deletingLastPathComponent(), withIntermediateDirectories: true)
        }
        try QemuLab.run("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", onA.path, "64M"])
        try shared.startGuest(vm, on: "A", uuid: "d15cd15c-0000-4000-8000-000000000001", memoryMiB: 256, disk: path)
        XCTAssertTrue(try LinuxGuest.command(shared.a, vm, "blk w 40 MARK-DISKS-40").contains("MARK-DISKS-40"))
        XCTAssertTrue(try LinuxGuest.command(shared.a, vm, "blk r 40").hasSuffix("MARK-DISKS-40"))
        XCTAssertTrue(try LinuxGuest.command(shared.a, vm, "blk fill 8 1").contains("fill 8 at 1"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: onB.path), "B has no image before the move")

        let root = try temporaryDirectory(self)
        try LabCluster.writePolicy(root: root)
        let dir = try LabCluster.write(root: root, name: "dk", hosts: [("a", shared.uri("A")), ("b", shared.uri("B"))],
                                       vms: ["{name: \(vm), vcpus: 1, memory: 256MiB, placement: {host: b}}"],
                                       trace: [.init(vm, cpu: 0.1, memMiB: 100, guestFreeMiB: 100)])
        let cluster = try ClusterLoader.load(dir.path)
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        let snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        let observed = try XCTUnwrap(snapshot.observation.vms.first { $0.name == vm })
        let disk = try XCTUnwrap(observed.disks?.first)
        XCTAssertEqual(disk.target, "vda")
        XCTAssertEqual(disk.kind, .file)
        XCTAssertEqual(disk.source, path)
        XCTAssertEqual(disk.format, "qcow2")
        XCTAssertEqual(disk.storage, .local, "a file disk on a plain libvirt host is local by default")
        XCTAssertEqual(disk.capacityBytes, 64 * 1_048_576, "the virtual size qemu-img was given")
        // The guest filled 8 MiB: qcow2 allocated at least that much in A's image; the host-side size is the
        // file's (stat from here, not through libvirt).
        XCTAssertGreaterThanOrEqual(disk.allocationBytes ?? 0, 8 * 1_048_576)
        let fileSize = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: onA.path)[.size] as? NSNumber)
        XCTAssertEqual(disk.physicalBytes, fileSize.doubleValue)
        XCTAssertEqual(observed.diskCopyBytes, disk.allocationBytes)
        XCTAssertEqual(observed.localDisks, ["vda"])

        let document = Engine.plan(cluster, snapshot: snapshot, state: nil)
        let move = try XCTUnwrap(document.actions.first { $0.kind == .migrate && $0.vm == vm }, "\(document.actions)")
        XCTAssertEqual(move.mode, .live)
        let report = try Applier(cluster: cluster, connections: connections, state: nil).apply(document)
        XCTAssertTrue(report.succeeded, "\(report.outcomes)")
        let outcome = try XCTUnwrap(report.outcomes.first { $0.actionID == move.id })
        let detail = outcome.detail ?? ""
        XCTAssertTrue(detail.contains("created \(path)"), detail)
        XCTAssertTrue(detail.contains("copying disks vda"), detail)

        XCTAssertEqual(try shared.b.domain(named: vm).state, .running, "running on the target")
        XCTAssertNil(try shared.a.domainIfExists(named: vm), "gone from the source")
        XCTAssertTrue(FileManager.default.fileExists(atPath: onB.path), "the image exists in B's namespace")
        let there = try XCTUnwrap(shared.b.disks(of: vm).first)
        XCTAssertEqual(there.source, path)
        XCTAssertEqual(there.capacity, 64 * 1_048_576, "virDomainGetBlockInfo on the target")
        // The data came along: the guest, now reading B's image, finds what it wrote on A.
        XCTAssertTrue(try LinuxGuest.command(shared.b, vm, "blk r 40").hasSuffix("MARK-DISKS-40"))

        // Stopped on B and pinned back to A: only a cold move could do it, and that would leave the disk behind.
        try shared.b.destroy(vm)
        let back = try LabCluster.write(root: root, name: "dk", hosts: [("a", shared.uri("A")), ("b", shared.uri("B"))],
                                        vms: ["{name: \(vm), vcpus: 1, memory: 256MiB, placement: {host: a}}"],
                                        trace: [.init(vm, cpu: 0.1, memMiB: 100, guestFreeMiB: 100)])
        let cluster2 = try ClusterLoader.load(back.path)
        let connections2 = FleetConnections(cluster: cluster2)
        defer { connections2.closeAll() }
        let plan2 = Engine.plan(cluster2, snapshot: try Engine.observe(cluster2, connections: connections2, state: nil),
                                state: nil)
        XCTAssertNil(plan2.actions.first { $0.kind == .migrate }, "\(plan2.actions)")
        XCTAssertTrue(plan2.unresolved.contains { $0.vm == vm && $0.reason.contains("local disk(s) vda") },
                      "\(plan2.unresolved)")
        // A hand-made cold move is refused by apply too: nothing is defined or started on A.
        var handMade = plan2
        handMade.actions.append(.init(id: "99", kind: .migrate, vm: vm, from: "b", to: "a", mode: .cold,
                                      reason: "by hand"))
        let refused = try Applier(cluster: cluster2, connections: connections2,
                                  state: try StateFile(directory: back).read()).apply(handMade)
        let cold = try XCTUnwrap(refused.outcomes.first { $0.actionID == "99" })
        XCTAssertEqual(cold.status, .failed)
        XCTAssertTrue(cold.detail?.contains("refused to move \(vm) cold: its local disk(s) vda") == true, "\(cold)")
        XCTAssertNil(try shared.a.domainIfExists(named: vm), "not defined on A")
        XCTAssertEqual(try shared.b.domain(named: vm).state, .shutoff, "left as it was on B")
    }

    /// A qcow2 overlay on a base image that both hosts hold: the move copies only the overlay
    /// (VIR_MIGRATE_NON_SHARED_INC); the overlay is created on B with the same backing file. On B the guest reads
    /// what it wrote into the overlay on A and, through B's own base, the base's data.
    func testOverlayMovesIncrementallyOnTopOfTheTargetsBase() throws {
        if let reason = LinuxGuest.unavailableReason() { throw XCTSkip(reason) }
        let shared = try SharedQemuLab.get(.root)
        let vm = "dk-inc"
        let images = "/var/lib/libvirt/images"
        let dirA = shared.lab.varLibLibvirt("A").appendingPathComponent("images")
        let dirB = shared.lab.varLibLibvirt("B").appendingPathComponent("images")
        let files = ["dk-base.qcow2", "\(vm).qcow2"]
        func clean() {
            shared.removeGuests([vm])
            for d in [dirA, dirB] { for f in files { try? FileManager.default.removeItem(at: d.appendingPathComponent(f)) } }
        }
        clean()
        defer { clean() }
        for d in [dirA, dirB] { try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true) }
        // The base as both hosts have it (0x42 = "B" from 20 MiB), then the overlay on A only.
        let baseA = dirA.appendingPathComponent("dk-base.qcow2").path
        try QemuLab.run("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", baseA, "64M"])
        try QemuLab.run("/usr/bin/qemu-io", ["-f", "qcow2", "-c", "write -P 0x42 20M 1M", baseA])
        try FileManager.default.copyItem(atPath: baseA, toPath: dirB.appendingPathComponent("dk-base.qcow2").path)
        // -u: the backing path is A's view (/var/lib/libvirt/images), which this process does not see.
        try QemuLab.run("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", "-u", "-b", "\(images)/dk-base.qcow2",
                                              "-F", "qcow2", dirA.appendingPathComponent("\(vm).qcow2").path, "64M"])
        try shared.startGuest(vm, on: "A", uuid: "d15cd15c-0000-4000-8000-000000000002", memoryMiB: 256,
                              disk: "\(images)/\(vm).qcow2")
        XCTAssertTrue(try LinuxGuest.command(shared.a, vm, "blk w 30 MARK-TOP-30").contains("MARK-TOP-30"))
        XCTAssertTrue(try LinuxGuest.command(shared.a, vm, "blk r 20").hasSuffix(String(repeating: "B", count: 16)))

        let root = try temporaryDirectory(self)
        try LabCluster.writePolicy(root: root)
        let dir = try LabCluster.write(root: root, name: "dk", hosts: [("a", shared.uri("A")), ("b", shared.uri("B"))],
                                       vms: ["{name: \(vm), vcpus: 1, memory: 256MiB, placement: {host: b}}"],
                                       trace: [.init(vm, cpu: 0.1, memMiB: 100, guestFreeMiB: 100)])
        let cluster = try ClusterLoader.load(dir.path)
        let connections = FleetConnections(cluster: cluster)
        defer { connections.closeAll() }
        let snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        let disk = try XCTUnwrap(snapshot.observation.vms.first { $0.name == vm }?.disks?.first)
        XCTAssertEqual(disk.backing, true, "the live XML shows the backing chain")
        let document = Engine.plan(cluster, snapshot: snapshot, state: nil)
        let move = try XCTUnwrap(document.actions.first { $0.kind == .migrate && $0.vm == vm }, "\(document.actions)")
        let report = try Applier(cluster: cluster, connections: connections, state: nil).apply(document)
        XCTAssertTrue(report.succeeded, "\(report.outcomes)")
        let detail = report.outcomes.first { $0.actionID == move.id }?.detail ?? ""
        XCTAssertTrue(detail.contains("created \(images)/\(vm).qcow2") && detail.contains("incrementally"), detail)

        XCTAssertEqual(try shared.b.domain(named: vm).state, .running)
        XCTAssertNil(try shared.a.domainIfExists(named: vm))
        XCTAssertEqual(try shared.b.disks(of: vm).first?.backingSource, "\(images)/dk-base.qcow2",
                       "B's overlay sits on B's base")
        XCTAssertTrue(try LinuxGuest.command(shared.b, vm, "blk r 30").hasSuffix("MARK-TOP-30"), "the overlay came along")
        XCTAssertTrue(try LinuxGuest.command(shared.b, vm, "blk r 20").hasSuffix(String(repeating: "B", count: 16)),
                      "the base data is read from B's base")
    }
}
