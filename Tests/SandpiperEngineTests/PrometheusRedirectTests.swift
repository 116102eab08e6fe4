import Foundation
import SandpiperEngine
import XCTest

/// The Prometheus credentials go to telemetry.url's server only: Foundation's URLSession follows a redirect with
/// every header, Authorization included, to wherever it points. Two local Python servers: one answers every
/// request with a redirect to the other (another port: another origin), which records the Authorization it gets.
final class PrometheusRedirectTests: XCTestCase {
    var dir: URL!
    var server: Process?

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sandpiper-redirect-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        if let server, server.isRunning { server.terminate(); server.waitUntilExit() }
        try? FileManager.default.removeItem(at: dir)
    }

    static let script = #"""
    import sys, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    record, ports = sys.argv[1], sys.argv[2]
    class Other(BaseHTTPRequestHandler):
        def do_GET(self):
            with open(record, "a") as f: f.write("auth=%s\n" % self.headers.get("Authorization"))
            body = b'{"status":"success","data":{"resultType":"matrix","result":[]}}'
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a): pass
    other = ThreadingHTTPServer(("127.0.0.1", 0), Other)
    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:%d/api/v1/query_range" % other.server_address[1])
            self.send_header("Content-Length", "0"); self.end_headers()
        def log_message(self, *a): pass
    first = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    with open(ports + ".tmp", "w") as f: f.write("%d" % first.server_address[1])
    import os; os.rename(ports + ".tmp", ports)
    first.serve_forever()
    """#

    func testCredentialsAreNotSentAlongARedirectToAnotherServer() throws {
        let script = dir.appendingPathComponent("redirect.py"), record = dir.appendingPathComponent("record")
        let portFile = dir.appendingPathComponent("port")
        try Self.script.write(to: script, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = [script.path, record.path, portFile.path]
        try p.run()
        server = p
        let deadline = Date().addingTimeInterval(30)
        var port: Int?
        while port == nil, Date() < deadline, p.isRunning {
            port = (try? String(contentsOf: portFile, encoding: .utf8)).flatMap { Int($0) }
            if port == nil { Thread.sleep(forTimeInterval: 0.05) }
        }
        let first = try XCTUnwrap(port, "the redirecting server did not start")

        let client = try PrometheusClient(url: "http://127.0.0.1:\(first)", credentials: "s3cret-token-42",
                                          timeoutSeconds: 10)
        XCTAssertThrowsError(try client.queryRange("up", start: 0, end: 10, step: 10)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("HTTP 302") && message.contains("redirect"), message)
            XCTAssertFalse(message.contains("s3cret"), message)
        }
        let received = (try? String(contentsOf: record, encoding: .utf8)) ?? ""
        XCTAssertFalse(received.contains("s3cret-token-42"), "the other server got the credentials: \(received)")
    }
}
