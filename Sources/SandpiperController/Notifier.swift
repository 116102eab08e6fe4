import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import SandpiperModel
import SandpiperRedaction

/// Delivers notifications to the policy's webhooks, each webhook on its own thread with its own bounded queue:
/// `send` only enqueues, so a slow or dead receiver never holds up a round. A failed POST (no answer within the
/// request timeout, a connection error, HTTP 5xx, 408 or 429) is retried with exponential backoff up to
/// `maxAttempts`; other HTTP errors are final. A full queue drops the new notification with a log line. URLs are
/// shown redacted (scheme, host, port) in every log line and error.
public final class Notifier: @unchecked Sendable {
    public struct Options: Sendable {
        public var maxAttempts = 5
        /// Seconds before the first retry; doubled for each further one, up to `maxBackoff`.
        public var initialBackoff: Double = 1
        public var maxBackoff: Double = 60
        /// Notifications waiting per webhook; more are dropped.
        public var queueCapacity = 100
        /// Seconds one POST may take (connect, send, answer).
        public var requestTimeout: Double = 10
        public init() {}
    }

    /// A webhook with its URL read (from the policy or its urlFile).
    public struct Target: Sendable {
        public var url: URL
        /// The URL as written: what is scrubbed from error texts.
        var text: String
        /// `https://hooks.example.org/***`: what logs and errors show.
        public var redacted: String
        public var format: Webhook.Format
        public var events: [NotificationEvent]
    }

    /// Outcome of a delivery attempt, counted in `sandpiper_notifications_total{result}`.
    public enum Result: String, Sendable, CaseIterable {
        case delivered, retried, failed, dropped
    }

    /// Reads each webhook's URL; `relativeTo` is the directory of the policy file (for relative urlFile paths).
    /// A webhook whose URL cannot be read is left out and explained in `problems` (never quoting the URL).
    public static func targets(_ hooks: [Webhook], relativeTo directory: URL) -> (targets: [Target], problems: [String]) {
        var targets: [Target] = [], problems: [String] = []
        for (i, hook) in hooks.enumerated() {
            let text: String
            switch hook.address {
            case .url(let u): text = u
            case .file(let path):
                let file = path.hasPrefix("/") ? URL(fileURLWithPath: path)
                    : directory.appendingPathComponent(path).standardizedFileURL
                do {
                    text = try String(contentsOf: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
                } catch {
                    problems.append("notify[\(i)].urlFile: cannot read \(file.path): \((error as NSError).localizedDescription)")
                    continue
                }
                if let problem = Webhook.problem(url: text) {
                    problems.append("notify[\(i)].urlFile: \(file.path): \(problem)")
                    continue
                }
            }
            guard let url = URL(string: text) else {
                problems.append("notify[\(i)]: not a URL"); continue
            }
            targets.append(Target(url: url, text: text, redacted: WebhookRedaction.redacted(text), format: hook.format,
                                  events: hook.events))
        }
        return (targets, problems)
    }

    private let channels: [Channel]

    /// `onResult` is called for every delivery outcome (on the delivering thread).
    public init(targets: [Target], options: Options = Options(), logger: Logger,
                onResult: @escaping @Sendable (Result) -> Void = { _ in }) {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = options.requestTimeout
        configuration.timeoutIntervalForResource = options.requestTimeout
        let session = URLSession(configuration: configuration)
        channels = targets.map { Channel(target: $0, options: options, session: session, logger: logger, onResult: onResult) }
    }

    public var isEmpty: Bool { channels.isEmpty }

    /// Queues `notification` for every webhook that asks for its event; returns at once.
    public func send(_ notification: WebhookMessage) {
        for channel in channels where channel.target.events.contains(notification.event) { channel.enqueue(notification) }
    }

    /// Waits until every queued notification is delivered or given up, at most `timeout` seconds; returns how
    /// many were still waiting or in flight then.
    @discardableResult
    public func flush(timeout: Double) -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        return channels.map { $0.waitIdle(until: deadline) }.reduce(0, +)
    }

    /// No new notifications; the threads deliver what is queued and end.
    public func close() { for c in channels { c.close() } }

    /// One webhook: a queue and the thread that works through it.
    final class Channel: @unchecked Sendable {
        let target: Target
        let options: Options
        let session: URLSession
        let logger: Logger
        let onResult: @Sendable (Result) -> Void
        private let condition = NSCondition()
        private var queue: [WebhookMessage] = []
        private var busy = false
        private var closed = false

        init(target: Target, options: Options, session: URLSession, logger: Logger,
             onResult: @escaping @Sendable (Result) -> Void) {
            self.target = target; self.options = options; self.session = session; self.logger = logger
            self.onResult = onResult
            let thread = Thread { [self] in work() }
            thread.name = "sandpiper-notify"
            thread.start()
        }

        func enqueue(_ n: WebhookMessage) {
            condition.lock()
            guard !closed else { condition.unlock(); return }
            if queue.count >= options.queueCapacity {
                condition.unlock()
                onResult(.dropped)
                logger.warning("notification dropped: the webhook's queue is full", metadata: [
                    "webhook": "\(target.redacted)", "event": "\(n.event.rawValue)",
                    "queue": .stringConvertible(options.queueCapacity)])
                return
            }
            queue.append(n)
            condition.signal()
            condition.unlock()
        }

        func close() {
            condition.lock(); closed = true; condition.broadcast(); condition.unlock()
        }

        func waitIdle(until deadline: Date) -> Int {
            condition.lock(); defer { condition.unlock() }
            while !queue.isEmpty || busy {
                if !condition.wait(until: deadline) { break }
            }
            return queue.count + (busy ? 1 : 0)
        }

        private func work() {
            while true {
                condition.lock()
                while queue.isEmpty && !closed { condition.wait() }
                if queue.isEmpty && closed { condition.unlock(); return }
                let next = queue.removeFirst()
                busy = true
                condition.unlock()
                deliver(next)
                condition.lock(); busy = false; condition.broadcast(); condition.unlock()
            }
        }

        private func deliver(_ n: WebhookMessage) {
            let body = n.payload(target.format)
            var delay = options.initialBackoff
            for attempt in 1...max(1, options.maxAttempts) {
                let (error, retriable) = post(body)
                guard let error else {
                    onResult(.delivered)
                    logger.info("notification delivered", metadata: [
                        "webhook": "\(target.redacted)", "event": "\(n.event.rawValue)",
                        "attempts": .stringConvertible(attempt)])
                    return
                }
                let meta: Logger.Metadata = ["webhook": "\(target.redacted)", "event": "\(n.event.rawValue)",
                                             "attempt": .stringConvertible(attempt), "error": "\(error)"]
                guard retriable, attempt < options.maxAttempts else {
                    onResult(.failed)
                    logger.error("notification not delivered", metadata: meta)
                    return
                }
                onResult(.retried)
                logger.warning("notification delivery failed; retrying",
                               metadata: meta.merging(["retry_in_s": .stringConvertible(delay)]) { $1 })
                Thread.sleep(forTimeInterval: delay)
                delay = min(delay * 2, options.maxBackoff)
            }
        }

        /// One POST; the error (scrubbed of the URL) and whether trying again may help.
        private func post(_ body: Data) -> (String?, Bool) {
            var request = URLRequest(url: target.url, timeoutInterval: options.requestTimeout)
            request.httpMethod = "POST"
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.setValue("sandpiper", forHTTPHeaderField: "User-Agent")
            request.httpBody = body
            let done = DispatchSemaphore(value: 0)
            nonisolated(unsafe) var outcome: (String?, Bool) = ("no answer", true)
            let task = session.dataTask(with: request) { [target] _, response, error in
                if let error {
                    let e = error as NSError
                    outcome = (WebhookRedaction.scrub("\(e.localizedDescription) (\(e.domain) \(e.code))", url: target.text), true)
                } else if let http = response as? HTTPURLResponse {
                    let s = http.statusCode
                    outcome = (200..<300).contains(s) ? (nil, false)
                        : ("HTTP \(s)", s >= 500 || s == 408 || s == 429)
                }
                done.signal()
            }
            task.resume()
            // URLSession enforces the timeout; this bound only guards against a lost callback.
            if done.wait(timeout: .now() + options.requestTimeout + 5) == .timedOut {
                task.cancel()
                return ("no answer within \(Int(options.requestTimeout))s", true)
            }
            return outcome
        }
    }
}
