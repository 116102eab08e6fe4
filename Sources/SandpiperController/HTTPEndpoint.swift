import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 server for three GET endpoints (`/metrics`, `/healthz`, `/readyz`): one request per
/// connection, answered and closed. A plain socket loop on its own thread is enough for a scraper every few
/// seconds and keeps swift-nio out of the build.
public final class HTTPEndpoint: @unchecked Sendable {
    public struct Response: Sendable {
        public var status: Int
        public var contentType: String
        public var body: String
        public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
            self.status = status; self.contentType = contentType; self.body = body
        }
    }

    public enum Failure: Error, CustomStringConvertible {
        case address(String)
        case socket(String)
        public var description: String {
            switch self {
            case .address(let m): "--listen: \(m)"
            case .socket(let m): "--listen: \(m)"
            }
        }
    }

    /// Parses `HOST:PORT` without binding, so the CLI can refuse a malformed `--listen` as an argument mistake.
    public static func address(_ listen: String) throws(Failure) -> (host: String, address: sockaddr_in) {
        guard let colon = listen.lastIndex(of: ":"), let port = UInt16(listen[listen.index(after: colon)...]) else {
            throw .address("\"\(listen)\" is not HOST:PORT (e.g. 127.0.0.1:9464)")
        }
        var name = String(listen[..<colon])
        if name == "localhost" { name = "127.0.0.1" }
        if name.isEmpty || name == "*" { name = "0.0.0.0" }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        guard inet_pton(AF_INET, name, &addr.sin_addr) == 1 else {
            throw .address("\"\(name)\" is not an IPv4 address")
        }
        return (name, addr)
    }

    /// The address actually bound (port 0 picks a free port).
    public let host: String
    public let port: Int
    private let fd: Int32
    private let handler: @Sendable (String) -> Response

    /// Binds `HOST:PORT` (IPv4 literal or `localhost`); the handler gets the request path without the query.
    public init(listen: String, handler: @escaping @Sendable (String) -> Response) throws(Failure) {
        let (name, parsed) = try Self.address(listen)
        var addr = parsed
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw .socket("socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .socket("cannot listen on \(listen): \(reason)")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        self.host = name
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        self.handler = handler
    }

    /// Serves on a background thread until the process exits.
    public func start() {
        let thread = Thread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return
                }
                serve(client)
            }
        }
        thread.name = "sandpiper-http"
        thread.start()
    }

    private func serve(_ client: Int32) {
        defer { close(client) }
        // A client that connects and says nothing cannot hold the (single) accept loop for long.
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while request.count < 16_384 {
            let n = read(client, &buffer, buffer.count)
            if n <= 0 { break }
            request += buffer[0..<n]
            if request.count >= 4, request.suffix(from: max(0, request.count - n - 3)).windowContains([13, 10, 13, 10]) {
                break
            }
        }
        let head = String(decoding: request.prefix { $0 != 10 }, as: UTF8.self)
        let parts = head.split(separator: " ")
        let response: Response
        if parts.count < 2 {
            response = Response(status: 400, body: "bad request\n")
        } else if parts[0] != "GET" && parts[0] != "HEAD" {
            response = Response(status: 405, body: "only GET\n")
        } else {
            let path = String(parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
            response = handler(path)
        }
        let body = parts.first == "HEAD" ? [] : Array(response.body.utf8)
        let reason = [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                      503: "Service Unavailable"][response.status] ?? "Status"
        let header = "HTTP/1.1 \(response.status) \(reason)\r\nContent-Type: \(response.contentType)\r\n"
            + "Content-Length: \(response.body.utf8.count)\r\nConnection: close\r\n\r\n"
        let out = Array(header.utf8) + body
        var sent = 0
        while sent < out.count {
            let n = out.withUnsafeBytes { write(client, $0.baseAddress! + sent, $0.count - sent) }
            if n <= 0 { return }
            sent += n
        }
    }
}

extension ArraySlice<UInt8> {
    fileprivate func windowContains(_ needle: [UInt8]) -> Bool {
        guard count >= needle.count else { return false }
        var i = startIndex
        while i + needle.count <= endIndex {
            if Array(self[i..<(i + needle.count)]) == needle { return true }
            i += 1
        }
        return false
    }
}
