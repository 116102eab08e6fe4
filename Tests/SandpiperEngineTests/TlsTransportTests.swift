import Foundation
import SandpiperEngine
import SandpiperLibvirt
import SandpiperModel
import SandpiperTestSupport
import XCTest

/// libvirt's tls transport for real: a session libvirtd listening for `qemu+tls://` on 127.0.0.1 with certificates
/// generated in the test (openssl). observe and plan run through the TLS URI, a domain defined over TLS shows up
/// on the daemon's own unix socket (the oracle), and a client certificate from another CA is refused with the
/// pkipath scrubbed out of the reason.
final class TlsTransportTests: XCTestCase {
    func testObserveAndPlanThroughTlsAndAForeignCertificateIsRefused() throws {
        if let reason = TlsLab.unavailableReason() { throw XCTSkip(reason) }
        let lab = try TlsLab(hostUUID: "99999999-9999-4999-8999-999999999999")
        defer { lab.stop() }
        let unix = try lab.connect()
        defer { unix.close() }

        // The domain is defined through TLS and read back through the unix socket.
        let tls = try LibvirtConnection(uri: lab.uri)
        defer { tls.close() }
        _ = try tls.define(xml: QemuLab.tinyXML())
        defer { try? unix.undefine("tiny") }
        XCTAssertEqual(try unix.domain(named: "tiny").uuid, "5a5a5a5a-0000-4000-8000-000000000001")
        XCTAssertEqual(try tls.hostInfo().cpus, try unix.hostInfo().cpus)

        // A certificate the daemon's CA never signed: refused, and the key material's path is not in the reason.
        XCTAssertThrowsError(try LibvirtConnection(uri: lab.uri(pki: lab.foreignPkiDir))) { error in
            XCTAssertFalse("\(error)".contains(lab.foreignPkiDir.path), "\(error)")
            XCTAssertTrue("\(error)".contains("pkipath=***"), "\(error)")
        }

        // The engine over TLS: host t is up with the daemon's capacity; the declared VM is seen where it is.
        let root = try temporaryDirectory(self)
        try LabCluster.writePolicy(root: root)
        let dir = try LabCluster.write(root: root, name: "tls", hosts: [("t", lab.uri)],
                                       vms: ["{name: tiny, vcpus: 1, memory: 64MiB}"],
                                       trace: [.init("tiny", memMiB: 20, guestFreeMiB: 40)])
        let cluster = try ClusterLoader.load(dir.path)
        let connections = FleetConnections(cluster: cluster, timeout: .seconds(60))
        defer { connections.closeAll() }
        XCTAssertNil(connections.failure("t"))
        let snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        XCTAssertEqual(snapshot.observation.hosts.map { "\($0.name) \($0.status)" }, ["t up"])
        XCTAssertEqual(snapshot.observation.hosts.first?.cpus, Double(try unix.hostInfo().cpus))
        let document = Engine.plan(cluster, snapshot: snapshot, state: nil)
        XCTAssertFalse(document.actions.contains { $0.kind == .migrate }, "one host: nothing to move")
        let planText = String(decoding: try JSONEncoder().encode(document), as: UTF8.self)
        XCTAssertFalse(planText.contains(lab.pkiDir.path), "no pkipath in the plan")
    }
}
