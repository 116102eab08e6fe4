import Foundation
import SandpiperLibvirt
import SandpiperTestSupport
import XCTest

/// `sandpiper apply` killed with SIGKILL in the middle of a live migration of a busy Linux guest between two real
/// libvirtd/QEMU daemons (shared session lab). libvirt is left to clean up the interrupted job; then `reconcile`
/// twice (automation full): the guest runs exactly once throughout (never on both hosts, never on none),
/// state.json is whole, the first reconcile finishes the move and the second has nothing to do.
final class QemuCrashTests: XCTestCase {
    func testKillDuringLiveMigrationOfABusyGuestThenReconcileConverges() throws {
        if let reason = LinuxGuest.unavailableReason() { throw XCTSkip(reason) }
        let shared = try SharedQemuLab.get(.session)
        let vm = "crash-g"
        shared.removeGuests([vm])
        defer { shared.removeGuests([vm]) }
        let (a, b) = (shared.a, shared.b)
        // Busy and holding 150 MiB: a live migration takes seconds (lab: 1.8-3.4 s), time enough to kill inside it.
        try shared.startGuest(vm, on: "A", uuid: "6d6d6d6d-0000-4000-8000-000000000001", load: "cpu", allocMiB: 150)

        let root = try CLI.sandbox(self)
        let dir = try writeCluster(root: root, shared: shared, vm: vm)
        let state = dir.appendingPathComponent("state.json")

        // Start the apply and kill it as soon as the migration is journaled as started.
        let process = Process()
        process.executableURL = CLI.binary
        process.arguments = ["apply", "Clusters/lab", "--auto-approve"]
        process.currentDirectoryURL = root
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let text = try? String(contentsOf: state, encoding: .utf8), text.contains("\"started\"") { break }
            Thread.sleep(forTimeInterval: 0.005)
        }
        // Let the migration get under way (the apply opens both sides first), then kill it mid-flight.
        Thread.sleep(forTimeInterval: 0.3)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal)
        // Killed inside the migration, not after it: the source still holds the guest.
        XCTAssertNotNil(try a.domainIfExists(named: vm), "the kill came after the migration had finished")

        // The state file is whole and says the migration started (and nothing more about it).
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: state)) as? [String: Any])
        let journal = object["journal"] as? [[String: Any]] ?? []
        XCTAssertEqual(journal.map { "\($0["status"] ?? "") \(($0["summary"] as? String ?? "").prefix(15))" },
                       ["started migrate crash-g"], "\(journal)")

        // libvirt cleans up the interrupted job: exactly one running copy, whatever the side.
        let settled = try pollValue(timeout: 60) { () -> String? in
            let where_ = try runningOn(a, b, vm)
            let paused = [try a.domainIfExists(named: vm), try b.domainIfExists(named: vm)].contains { $0?.state == .paused }
            return where_.count == 1 && !paused ? where_[0] : nil
        }
        print("after the kill the guest runs on \(settled) only")

        // The killed run's lock names it; force-unlock is the documented way out.
        let lockURL = dir.appendingPathComponent(".sandpiper.lock")
        let lockID = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(contentsOf: lockURL)) as? [String: Any])?["id"] as? String)
        XCTAssertEqual(try CLI.run(["force-unlock", lockID, "Clusters/lab"], in: root).status, 0)

        // First reconcile finishes the move; the guest runs once, on b, and is the same guest (still busy).
        let first = try CLI.run(["reconcile", "Clusters/lab", "--json"], in: root, timeout: 180)
        XCTAssertEqual(first.status, 0, first.stdout + first.stderr)
        let firstSummary = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(firstSummary["planActions"] as? Int, 1, "the interrupted move, once more: \(first.stdout)")
        XCTAssertEqual(try runningOn(a, b, vm), ["b"])
        XCTAssertNil(try a.domainIfExists(named: vm), "gone from a")
        XCTAssertTrue(try LinuxGuest.command(b, vm, "stat").contains("loops=1"), "the busy guest itself, not a fresh boot")
        // Second reconcile: nothing to do.
        let second = try CLI.run(["reconcile", "Clusters/lab", "--json"], in: root, timeout: 180)
        XCTAssertEqual(second.status, 0, second.stdout + second.stderr)
        let summary = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(second.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(summary["planActions"] as? Int, 0, "nothing to do: \(second.stdout)")
        XCTAssertEqual((summary["applied"] as? [Any])?.count, 0, second.stdout)
        XCTAssertEqual(try runningOn(a, b, vm), ["b"])
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(contentsOf: state)))
    }

    private func runningOn(_ a: LibvirtConnection, _ b: LibvirtConnection, _ vm: String) throws -> [String] {
        var hosts: [String] = []
        if try a.domainIfExists(named: vm)?.state == .running { hosts.append("a") }
        if try b.domainIfExists(named: vm)?.state == .running { hosts.append("b") }
        return hosts
    }

    /// The guest pinned to b, automation full, a quiet replayed trace (no other actions).
    private func writeCluster(root: URL, shared: SharedQemuLab, vm: String) throws -> URL {
        try LabCluster.writePolicy(root: root, edits: [("automation: manual", "automation: full")])
        return try LabCluster.write(root: root, name: "lab", hosts: [("a", shared.uri("A")), ("b", shared.uri("B"))],
                                    vms: ["{name: \(vm), vcpus: 1, memory: 512MiB, placement: {host: b}}"],
                                    trace: [.init(vm, cpu: 0.3, memMiB: 250, guestFreeMiB: 200)])
    }
}

/// Polls `body` until it returns a value or `timeout` passes.
func pollValue<T>(timeout: TimeInterval, every: TimeInterval = 0.5, _ body: () throws -> T?) throws -> T {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if let v = try body() { return v }
        guard Date() < deadline else {
            throw NSError(domain: "poll", code: 1, userInfo: [NSLocalizedDescriptionKey: "condition not met within \(timeout) s"])
        }
        Thread.sleep(forTimeInterval: every)
    }
}
