import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A tiny HTTP receiver on 127.0.0.1 for webhook tests: records each request (method, path with query, headers,
/// body) and answers with the next scripted status (then 200), or, when `answers` is false, reads the request and
/// never answers (the connection is held open until `stop`).
public final class WebhookReceiver: @unchecked Sendable {
    public struct Request: Sendable {
        public var method: String
        public var target: String
        public var headers: [String: String]
        public var body: Data
        public var json: [String: Any]? { try? JSONSerialization.jsonObject(with: body) as? [String: Any] }
    }

    public let port: Int
    private let fd: Int32
    private let lock = NSLock()
    private var statuses: [Int]
    private let answers: Bool
    private var _requests: [Request] = []
    private var held: [Int32] = []
    private var _connections = 0
    private var stopped = false

    public init(statuses: [Int] = [], answers: Bool = true) throws {
        self.statuses = statuses
        self.answers = answers
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard fd >= 0, bound == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw NSError(domain: "WebhookReceiver", code: 1, userInfo: [NSLocalizedDescriptionKey: "cannot listen"])
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: actual.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    deinit { stop() }

    public var requests: [Request] { lock.lock(); defer { lock.unlock() }; return _requests }
    /// Connections accepted (a silent receiver records requests too, it just never answers them).
    public var connections: Int { lock.lock(); defer { lock.unlock() }; return _connections }

    public func stop() {
        lock.lock()
        let wasStopped = stopped
        stopped = true
        let clients = held
        held = []
        lock.unlock()
        guard !wasStopped else { return }
        for c in clients { shutdown(c, Int32(SHUT_RDWR)); close(c) }
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    /// Polls until `count` requests arrived (or the deadline passes); returns them.
    public func waitFor(_ count: Int, timeout: TimeInterval = 60) -> [Request] {
        let deadline = Date().addingTimeInterval(timeout)
        while requests.count < count && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        return requests
    }

    private func acceptLoop() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            lock.lock(); _connections += 1; let done = stopped; lock.unlock()
            if done { close(client); return }
            let thread = Thread { [self] in serve(client) }
            thread.start()
        }
    }

    private func serve(_ client: Int32) {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var headerEnd: Int?
        var contentLength = 0
        while true {
            if let end = headerEnd, data.count >= end + contentLength { break }
            let n = read(client, &buffer, buffer.count)
            if n <= 0 { close(client); return }
            data += buffer[0..<n]
            if headerEnd == nil, let r = Self.find([13, 10, 13, 10], in: data) {
                headerEnd = r + 4
                let head = String(decoding: data[0..<r], as: UTF8.self)
                for line in head.split(separator: "\r\n").dropFirst() {
                    let kv = line.split(separator: ":", maxSplits: 1)
                    if kv.count == 2, kv[0].lowercased() == "content-length" {
                        contentLength = Int(kv[1].trimmingCharacters(in: .whitespaces)) ?? 0
                    }
                    // libcurl asks before sending a larger body.
                    if kv.count == 2, kv[0].lowercased() == "expect" {
                        _ = "HTTP/1.1 100 Continue\r\n\r\n".withCString { write(client, $0, strlen($0)) }
                    }
                }
            }
        }
        let head = String(decoding: data[0..<(headerEnd! - 4)], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        let first = lines.first?.split(separator: " ") ?? []
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            let kv = line.split(separator: ":", maxSplits: 1)
            if kv.count == 2 { headers[kv[0].lowercased()] = kv[1].trimmingCharacters(in: .whitespaces) }
        }
        let request = Request(method: first.first.map(String.init) ?? "", target: first.count > 1 ? String(first[1]) : "",
                              headers: headers, body: Data(data[headerEnd!..<(headerEnd! + contentLength)]))
        lock.lock()
        _requests.append(request)
        let status = statuses.isEmpty ? 200 : statuses.removeFirst()
        if !answers { held.append(client) }
        lock.unlock()
        guard answers else { return }
        let body = status == 200 ? "ok" : "error"
        let response = "HTTP/1.1 \(status) X\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        _ = response.withCString { write(client, $0, strlen($0)) }
        close(client)
    }

    private static func find(_ needle: [UInt8], in data: [UInt8]) -> Int? {
        guard data.count >= needle.count else { return nil }
        for i in 0...(data.count - needle.count) where Array(data[i..<(i + needle.count)]) == needle { return i }
        return nil
    }
}
