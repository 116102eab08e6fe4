import CLibvirt
import Foundation
@testable import SandpiperLibvirt
import XCTest

/// Before a copy-storage move, `createMissingImages` creates the images on the target through a pool that covers
/// their directory. A host that has such a pool *defined but not started* (a `default` pool not autostarted) must
/// not break the move: libvirt refuses a second pool on the same directory ("Storage source conflict"), so the
/// defined pool is started for the call and stopped again. libvirt's test driver keeps pools like a daemon does.
final class CopyImagePoolTests: XCTestCase {
    func pools(_ c: LibvirtConnection) throws -> [(name: String, active: Bool)] {
        try c.withHandle { (conn) throws(LibvirtError) in
            var list: UnsafeMutablePointer<OpaquePointer?>?
            let n = virConnectListAllStoragePools(conn, &list, 0)
            guard n >= 0, let list else { return [] }
            defer { free(list) }
            var out: [(String, Bool)] = []
            for i in 0..<Int(n) {
                guard let p = list[i] else { continue }
                out.append((String(cString: virStoragePoolGetName(p)), virStoragePoolIsActive(p) == 1))
                virStoragePoolFree(p)
            }
            return out.sorted { $0.0 < $1.0 }
        }
    }

    func testImageCreatedThroughAnInactivePoolOnItsDirectory() throws {
        let c = try LibvirtConnection(uri: "test:///default")
        defer { c.close() }
        let dir = "/sandpiper-review-images"
        try c.withHandle { (conn) throws(LibvirtError) in
            let xml = "<pool type='dir'><name>images</name><target><path>\(dir)</path></target></pool>"
            guard let p = virStoragePoolDefineXML(conn, xml, 0) else {
                throw LibvirtError.local(LibvirtError.Code.operationInvalid, "define failed")
            }
            virStoragePoolFree(p)
        }
        let before = try pools(c)
        XCTAssertTrue(before.contains { $0.name == "images" && !$0.active })

        let disk = DomainDisk(type: "file", target: "vda", source: "\(dir)/guest.qcow2", format: "qcow2",
                              capacity: 1 << 30)
        XCTAssertEqual(try c.createMissingImages([disk], incremental: false), ["\(dir)/guest.qcow2"])
        // The pool is left as it was (inactive), and no other pool stays behind.
        XCTAssertEqual(try pools(c).map(\.name), before.map(\.name))
        XCTAssertEqual(try pools(c).map(\.active), before.map(\.active))
        // The image exists in the pool now: a second call creates nothing.
        XCTAssertEqual(try c.createMissingImages([disk], incremental: false), [])
    }
}
