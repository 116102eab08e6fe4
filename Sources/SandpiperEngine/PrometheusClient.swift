import Dispatch
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SandpiperRedaction

/// A minimal client for Prometheus' HTTP API: `GET /api/v1/query_range`, one request at a time, each with a
/// deadline. Credentials come from a file and go into the Authorization header only; every error message is
/// scrubbed of them before it leaves this type.
public struct PrometheusClient: Sendable {
    /// One series of a range query: its labels and its (time, value) points; values are kept as Prometheus wrote
    /// them ("NaN", "+Inf" parse to non-finite doubles, which the caller reports).
    public struct Series: Sendable, Equatable {
        public var labels: [String: String]
        public var points: [(time: Double, value: Double)]
        public init(labels: [String: String], points: [(time: Double, value: Double)]) {
            self.labels = labels; self.points = points
        }
        public static func == (a: Series, b: Series) -> Bool {
            a.labels == b.labels && a.points.map(\.time) == b.points.map(\.time)
                && zip(a.points, b.points).allSatisfy { $0.value == $1.value || ($0.value.isNaN && $1.value.isNaN) }
        }
    }

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
        public init(message: String) { self.message = message }
    }

    public let baseURL: URL
    /// The URL as it may be shown (credentials never reach it: the spec refuses them in the URL).
    public let shownURL: String
    public let timeoutSeconds: Double
    private let authorization: String?
    /// The secret's forms that must never appear in a message.
    private let secrets: [String]

    /// `credentials`: the credentials file's content: `user:password` (basic auth) or a bearer token.
    public init(url: String, credentials: String?, timeoutSeconds: Double) throws(Failure) {
        let trimmed = url.hasSuffix("/") ? String(url.dropLast()) : url
        guard let base = URL(string: trimmed) else { throw Failure(message: "telemetry.url is not a URL") }
        baseURL = base
        shownURL = URIRedaction.redacted(trimmed)
        self.timeoutSeconds = timeoutSeconds
        if let raw = credentials?.trimmingCharacters(in: .whitespacesAndNewlines) {
            guard !raw.isEmpty else { throw Failure(message: "the credentials file is empty") }
            guard !raw.contains("\n") else {
                throw Failure(message: "the credentials file must hold one line: user:password or a bearer token")
            }
            if raw.contains(":") {
                let encoded = Data(raw.utf8).base64EncodedString()
                authorization = "Basic " + encoded
                secrets = [raw, encoded] + raw.split(separator: ":", maxSplits: 1).dropFirst().map(String.init)
            } else {
                authorization = "Bearer " + raw
                secrets = [raw]
            }
        } else {
            authorization = nil
            secrets = []
        }
    }

    /// `query` evaluated at every `step` seconds from `start` to `end` (Unix seconds).
    public func queryRange(_ query: String, start: Double, end: Double, step: Double) throws(Failure) -> [Series] {
        var components = URLComponents(url: baseURL.appendingPathComponent("api/v1/query_range"),
                                       resolvingAgainstBaseURL: false)!
        components.queryItems = [
            URLQueryItem(name: "query", value: query), URLQueryItem(name: "start", value: Self.number(start)),
            URLQueryItem(name: "end", value: Self.number(end)), URLQueryItem(name: "step", value: Self.number(step)),
            URLQueryItem(name: "timeout", value: Self.number(timeoutSeconds) + "s"),
        ]
        // `+` in a PromQL expression must reach the server as a plus, not a space.
        components.percentEncodedQuery = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        let (status, body) = try get(components.url!)
        do throws(Failure) { return try Self.parseMatrix(status: status, body: body) }
        catch { throw Failure(message: scrub("\(shownURL): \(error.message)")) }
    }

    /// Decodes a query_range answer; an HTTP error or an API error becomes a Failure naming it.
    public static func parseMatrix(status: Int, body: Data) throws(Failure) -> [Series] {
        let json = try? JSONSerialization.jsonObject(with: body) as? [String: Any]
        if let json, json["status"] as? String == "error" {
            let kind = json["errorType"] as? String ?? "error"
            let text = (json["error"] as? String ?? "").prefix(300)
            throw Failure(message: "HTTP \(status), \(kind): \(text)")
        }
        guard (200..<300).contains(status) else {
            let text = String(decoding: body.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw Failure(message: "HTTP \(status)" + (text.isEmpty ? "" : ": \(oneLine(text))"))
        }
        guard let json, json["status"] as? String == "success", let data = json["data"] as? [String: Any] else {
            throw Failure(message: "the answer is not a Prometheus API response (bad JSON)")
        }
        guard data["resultType"] as? String == "matrix", let result = data["result"] as? [[String: Any]] else {
            throw Failure(message: "the answer is not a range vector (resultType \(data["resultType"] ?? "none"))")
        }
        return try result.map { (item) throws(Failure) -> Series in
            let labels = (item["metric"] as? [String: Any] ?? [:]).compactMapValues { $0 as? String }
            guard let values = item["values"] as? [[Any]] else { throw Failure(message: "a series has no values (bad JSON)") }
            let points = try values.map { (pair) throws(Failure) -> (time: Double, value: Double) in
                guard pair.count == 2, let t = (pair[0] as? NSNumber)?.doubleValue, let s = pair[1] as? String,
                      let v = Double(s) ?? (s == "NaN" ? Double.nan : nil) else {
                    throw Failure(message: "a sample is not [time, \"value\"] (bad JSON)")
                }
                return (t, v)
            }
            return Series(labels: labels, points: points)
        }
    }

    private func get(_ url: URL) throws(Failure) -> (Int, Data) {
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeoutSeconds)
        if let authorization { request.setValue(authorization, forHTTPHeaderField: "Authorization") }
        let box = ResponseBox()
        let done = DispatchSemaphore(value: 0)
        // Foundation follows a redirect with every header, Authorization included, wherever it points: only a
        // redirect to the same scheme, host and port is followed (OriginRedirects).
        let session = URLSession(configuration: .ephemeral, delegate: OriginRedirects(), delegateQueue: nil)
        defer { session.invalidateAndCancel() }
        let task = session.dataTask(with: request) { data, response, error in
            box.set(data: data, status: (response as? HTTPURLResponse)?.statusCode, error: error)
            done.signal()
        }
        task.resume()
        // URLSession's own timeout is per idle period; this bounds the whole request.
        if done.wait(timeout: .now() + timeoutSeconds + 1) == .timedOut {
            task.cancel()
            throw Failure(message: "\(shownURL): no answer within \(Self.number(timeoutSeconds))s")
        }
        let (data, status, error) = box.get()
        if let error {
            let e = error as NSError
            let reason = e.code == NSURLErrorTimedOut ? "no answer within \(Self.number(timeoutSeconds))s"
                : e.code == NSURLErrorCannotConnectToHost ? "connection refused" : e.localizedDescription
            throw Failure(message: scrub("\(shownURL): \(reason)"))
        }
        if let status, (300..<400).contains(status) {
            throw Failure(message: "\(shownURL): HTTP \(status): a redirect to another server is not followed "
                + "(the credentials are sent only to telemetry.url's scheme, host and port)")
        }
        return (status ?? 0, data ?? Data())
    }

    /// `message` with every form of the credentials replaced.
    public func scrub(_ message: String) -> String {
        secrets.filter { $0.count >= 3 }.reduce(message) { $0.replacingOccurrences(of: $1, with: "***") }
    }

    static func number(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(format: "%.3f", x)
    }

    static func oneLine(_ s: String) -> String {
        s.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}

/// Follows a redirect only within the origin (scheme, host, port) of the request it redirects.
private final class OriginRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        func origin(_ url: URL?) -> String? {
            guard let url, let scheme = url.scheme?.lowercased(), let host = url.host?.lowercased() else { return nil }
            return "\(scheme)://\(host):\(url.port ?? (scheme == "https" ? 443 : 80))"
        }
        let from = origin(task.originalRequest?.url)
        completionHandler(from != nil && origin(request.url) == from ? request : nil)
    }
}

private final class ResponseBox: @unchecked Sendable {
    private let lock = NSLock()
    private var data: Data?
    private var status: Int?
    private var error: Error?
    func set(data: Data?, status: Int?, error: Error?) {
        lock.lock(); defer { lock.unlock() }
        self.data = data; self.status = status; self.error = error
    }
    func get() -> (Data?, Int?, Error?) {
        lock.lock(); defer { lock.unlock() }
        return (data, status, error)
    }
}
