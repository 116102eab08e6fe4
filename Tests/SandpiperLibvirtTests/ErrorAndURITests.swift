import XCTest
@testable import SandpiperLibvirt

final class ErrorAndURITests: XCTestCase {
    func testRedactsUserinfoPassword() {
        XCTAssertEqual(LibvirtURI.redacted("qemu+ssh://root:hunter2@pm1.example.org/system"),
                       "qemu+ssh://root:***@pm1.example.org/system")
        XCTAssertEqual(LibvirtURI.redacted("qemu+ssh://root@pm1/system"), "qemu+ssh://root@pm1/system")
        XCTAssertEqual(LibvirtURI.redacted("test:///default"), "test:///default")
        XCTAssertEqual(LibvirtURI.redacted("test:///tmp/a/pm1.xml"), "test:///tmp/a/pm1.xml")
    }

    func testRedactsSensitiveQueryParameters() {
        XCTAssertEqual(
            LibvirtURI.redacted("qemu+ssh://u:p%40ss@h:2222/system?keyfile=/root/.ssh/id&no_verify=1&Password=x&passwd=y"),
            "qemu+ssh://u:***@h:2222/system?keyfile=***&no_verify=1&Password=***&passwd=***")
        XCTAssertEqual(LibvirtURI.redacted("qemu+tls://h/system?pkipath=/etc/pki/me#frag"),
                       "qemu+tls://h/system?pkipath=***#***")
        XCTAssertEqual(LibvirtURI.redacted("qemu+unix:///session?socket=/run/x/libvirt-sock"),
                       "qemu+unix:///session?socket=/run/x/libvirt-sock")
    }

    func testScrubRemovesSecretsFromMessages() {
        let uri = "qemu+ssh://admin:s3cret@pm9/system?keyfile=/home/a/key"
        let msg = "Cannot connect to \(uri): key /home/a/key refused for s3cret"
        let scrubbed = LibvirtURI.scrub(msg, uri: uri)
        XCTAssertFalse(scrubbed.contains("s3cret"), scrubbed)
        XCTAssertFalse(scrubbed.contains("/home/a/key"), scrubbed)
        XCTAssertTrue(scrubbed.contains("qemu+ssh://admin:***@pm9/system?keyfile=***"), scrubbed)
    }

    func testBadURIIsATypedErrorWithRedactedMessage() throws {
        let err = XCTAssertLibvirtError(try LibvirtConnection(uri: "bogus://alice:topsecret@nowhere/x?password=pw123"))
        XCTAssertEqual(err?.kind, .connection, "\(String(describing: err))")
        XCTAssertFalse(err?.message.contains("topsecret") ?? true, "\(String(describing: err))")
        XCTAssertFalse(err?.message.contains("pw123") ?? true, "\(String(describing: err))")
        XCTAssertFalse(err?.description.contains("topsecret") ?? true)
    }

    func testMissingNodeFileFails() throws {
        let err = XCTAssertLibvirtError(try LibvirtConnection(uri: "test:///nonexistent/dir/pm1.xml"))
        XCTAssertNotNil(err)
        XCTAssertTrue(err?.message.contains("test:///nonexistent/dir/pm1.xml") ?? false, "\(String(describing: err))")
    }

    func testUnknownDomainIsNoDomain42() throws {
        let conn = try LibvirtConnection(uri: "test:///default")
        let err = XCTAssertLibvirtError(try conn.domain(named: "no-such-vm"))
        XCTAssertEqual(err?.code, 42)
        XCTAssertEqual(err?.kind, .noDomain)
        XCTAssertTrue(err?.message.contains("no-such-vm") ?? false)
        XCTAssertNil(try conn.domainIfExists(named: "no-such-vm"))
    }

    func testClosedConnectionThrowsAndCloseIsIdempotent() throws {
        let conn = try LibvirtConnection(uri: "test:///default")
        XCTAssertTrue(conn.isOpen)
        XCTAssertTrue(conn.isAlive)
        conn.close()
        conn.close()
        XCTAssertFalse(conn.isOpen)
        let err = XCTAssertLibvirtError(try conn.hostInfo())
        XCTAssertEqual(err?.kind, .connection)
    }

    func testReadOnlyConnectionRefusesWrites() throws {
        let conn = try LibvirtConnection(uri: "test:///default", readOnly: true)
        XCTAssertEqual(try conn.domainNames(), ["test"])
        let err = XCTAssertLibvirtError(try conn.destroy("test"))
        XCTAssertEqual(err?.kind, .denied, "\(String(describing: err))")
    }

    func testErrorsDoNotLeakBetweenCalls() throws {
        let conn = try LibvirtConnection(uri: "test:///default")
        _ = try? conn.domain(named: "missing")
        // A later successful call must not see the earlier error, and a later failure reports its own.
        XCTAssertEqual(try conn.domainNames(), ["test"])
        let err = XCTAssertLibvirtError(try conn.domain(named: "other-missing"))
        XCTAssertTrue(err?.message.contains("other-missing") ?? false)
    }

    func testConcurrentUseFromManyThreads() throws {
        let conn = try LibvirtConnection(uri: "test:///default")
        DispatchQueue.concurrentPerform(iterations: 32) { i in
            if i % 2 == 0 {
                let names = try? conn.domainNames()
                XCTAssertEqual(names, ["test"])
            } else {
                do throws(LibvirtError) {
                    _ = try conn.domain(named: "missing-\(i)")
                    XCTFail("expected noDomain")
                } catch {
                    XCTAssertTrue(error.message.contains("missing-\(i)"), error.message)
                }
            }
        }
    }
}
