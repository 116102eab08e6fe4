import Foundation
import Logging
import SandpiperController
import SandpiperModel
import SandpiperTestSupport
import XCTest

/// The notifier's delivery rules, in process against a real receiver on 127.0.0.1: a full queue drops (and
/// counts) what does not fit, an HTTP 4xx is final, a receiver that never answers is retried then given up.
final class NotifierDeliveryTests: XCTestCase {
    final class Results: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [Notifier.Result] = []
        func add(_ r: Notifier.Result) { lock.lock(); list.append(r); lock.unlock() }
        var all: [Notifier.Result] { lock.lock(); defer { lock.unlock() }; return list }
    }

    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    func notifier(_ url: String, _ options: Notifier.Options, _ results: Results) throws -> Notifier {
        let (targets, problems) = Notifier.targets([Webhook(address: .url(url))], relativeTo: URL(fileURLWithPath: "/"))
        XCTAssertEqual(problems, [])
        return Notifier(targets: targets, options: options, logger: logger) { results.add($0) }
    }

    func note(_ i: Int) -> WebhookMessage {
        WebhookMessage(event: .applyFailed, cluster: "c", time: Date(), summary: "n\(i)")
    }

    func testFullQueueDropsAndCounts() throws {
        let receiver = try WebhookReceiver(answers: false)
        defer { receiver.stop() }
        var options = Notifier.Options()
        options.queueCapacity = 2
        options.requestTimeout = 30
        let results = Results()
        let n = try notifier("http://127.0.0.1:\(receiver.port)/h", options, results)
        n.send(note(0))
        // The first is in flight (the receiver holds it), so the queue is empty again.
        _ = receiver.waitFor(1, timeout: 30)
        XCTAssertEqual(receiver.requests.count, 1)
        let started = Date()
        for i in 1...5 { n.send(note(i)) }
        XCTAssertLessThan(Date().timeIntervalSince(started), 1, "send waited for the receiver")
        XCTAssertEqual(results.all, [.dropped, .dropped, .dropped], "two queued, three dropped")
        XCTAssertEqual(n.flush(timeout: 0.5), 3, "one in flight, two queued")
    }

    func testClientErrorIsFinal() throws {
        let receiver = try WebhookReceiver(statuses: [404])
        defer { receiver.stop() }
        let results = Results()
        let n = try notifier("http://127.0.0.1:\(receiver.port)/gone", Notifier.Options(), results)
        n.send(note(1))
        XCTAssertEqual(n.flush(timeout: 30), 0)
        XCTAssertEqual(results.all, [.failed])
        XCTAssertEqual(receiver.requests.count, 1)
    }

    func testSilentReceiverIsRetriedThenGivenUp() throws {
        let receiver = try WebhookReceiver(answers: false)
        defer { receiver.stop() }
        var options = Notifier.Options()
        options.requestTimeout = 1
        options.maxAttempts = 3
        options.initialBackoff = 0.2
        let results = Results()
        let n = try notifier("http://127.0.0.1:\(receiver.port)/h", options, results)
        let started = Date()
        n.send(note(1))
        XCTAssertEqual(n.flush(timeout: 60), 0)
        XCTAssertEqual(results.all, [.retried, .retried, .failed])
        XCTAssertEqual(receiver.connections, 3)
        // Three timeouts of 1 s and backoffs of 0.2 s and 0.4 s at least.
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 3.5)
    }
}
