import Foundation
import SandpiperEngine
import SandpiperModel
import XCTest

/// How query_range answers become windows (`PrometheusTelemetry.assemble`): an interval enters a VM's window only
/// with one finite value of every resource; gaps, stale series, NaN and duplicate series are left out and reported.
/// (The HTTP side, with a real Prometheus, is in SandpiperCLITests.PrometheusTelemetryTests.)
final class PrometheusWindowTests: XCTestCase {
    typealias Series = PrometheusClient.Series
    let start = 1000.0, step = 10.0, n = 5

    func series(_ labels: [String: String], _ values: [Double?]) -> Series {
        Series(labels: labels, points: values.enumerated().compactMap { i, v in v.map { (start + Double(i) * step, $0) } })
    }

    func answers(cpu: [Series], memory: [Series], network: [Series])
        -> [PrometheusTelemetry.Resource: Result<[Series], PrometheusClient.Failure>] {
        [.cpu: .success(cpu), .memory: .success(memory), .network: .success(network)]
    }

    func testGapsStaleNaNAndDuplicatesAreLeftOutAndReported() {
        let full: [Double?] = [1, 1, 1, 1, 1]
        let a = ["domain": "a"], b = ["domain": "b"], c = ["domain": "c"], d = ["domain": "d"]
        let result = PrometheusTelemetry.assemble(
            answers(cpu: [series(a, [1, 2, nil, 4, 5]), series(b, [1, 1, 1, nil, nil]), series(c, full),
                          series(d, full), series(["domain": "d", "instance": "other"], [nil, nil, nil, nil, 7])],
                    memory: [series(a, [100, 100, 100, 100, 100]), series(b, full), series(c, [1, .nan, 1, 1, 1]),
                             series(d, full)],
                    network: [series(a, [8, 8, 8, 8, 8]), series(b, full), series(c, full), series(d, full)]),
            targets: ["a", "b", "c", "d"].map { .init(name: $0, uuid: nil) }, start: start, step: step, count: n)
        // a: the gap at interval 2 is left out, not zero.
        XCTAssertEqual(result.samples["a"]?.map(\.cpu), [1, 2, 4, 5])
        XCTAssertEqual(result.samples["a"]?.map(\.memMiB), [100, 100, 100, 100])
        XCTAssertEqual(result.samples["a"]?.map(\.netMbps), [8, 8, 8, 8])
        XCTAssertTrue(result.warnings.contains("a: Prometheus telemetry incomplete (cpu: 1 of 5 intervals missing); "
            + "profiled on the 4 complete of 5 intervals"), "\(result.warnings)")
        // b: stale (newest cpu point two steps before the end).
        XCTAssertEqual(result.samples["b"]?.count, 3)
        XCTAssertTrue(result.warnings.contains { $0.hasPrefix("b: ") && $0.contains("stale: newest point 20s before the window end") },
                      "\(result.warnings)")
        XCTAssertEqual(result.samples["c"]?.count, 4)
        XCTAssertTrue(result.warnings.contains { $0.hasPrefix("c: ") && $0.contains("memory: NaN/Inf at 1 of 5 intervals") })
        // d: two series for one VM at the last interval: that interval is not guessed.
        XCTAssertEqual(result.samples["d"]?.count, 4)
        XCTAssertTrue(result.warnings.contains { $0.hasPrefix("d: ") && $0.contains("more than one series at 1 of 5") })
    }

    func testUUIDMatchesBeforeNameAndUnmatchedVMsHaveNoWindow() {
        let full: [Double?] = [3, 3, 3, 3, 3]
        // A series named like VM "x" whose UUID is VM "y"'s belongs to y (a domain renamed, a name reused).
        let labels = ["domain": "x", "uuid": "AAAA-1"]
        let result = PrometheusTelemetry.assemble(
            answers(cpu: [series(labels, full)], memory: [series(labels, full)], network: [series(labels, full)]),
            targets: [.init(name: "x", uuid: "bbbb-2"), .init(name: "y", uuid: "aaaa-1")],
            start: start, step: step, count: n)
        XCTAssertEqual(result.samples["y"]?.count, 5)
        XCTAssertNil(result.samples["x"], "no series: no window at all (the planner then assumes the full allocation)")
        XCTAssertTrue(result.warnings.contains { $0.hasPrefix("x: ") && $0.contains("no cpu series") && $0.contains("not as idle") })
    }

    func testAFailedQueryLeavesEveryVMWithoutSamples() {
        var a = answers(cpu: [series(["domain": "a"], [1, 1, 1, 1, 1])], memory: [], network: [])
        a[.memory] = .failure(.init(message: "http://p:9090: HTTP 503"))
        a[.network] = nil
        let result = PrometheusTelemetry.assemble(a, targets: [.init(name: "a", uuid: nil)], start: start, step: step, count: n)
        XCTAssertTrue(result.samples.isEmpty)
        XCTAssertEqual(result.warnings, ["Prometheus memory query failed (http://p:9090: HTTP 503): no samples for a; "
            + "profiled as using their whole allocation, not as idle"])
    }
}

/// A server (or anything answering on its address) that sends timestamps far outside the window: the points are
/// left out (the interval is missing), never a crash converting them to an interval index.
final class PrometheusHostileTimeTests: XCTestCase {
    func testTimestampsFarOutsideTheWindowAreIgnoredNotACrash() throws {
        let body = #"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"domain":"a"},"#
            + #""values":[[1e300,"1"],[-1e300,"1"],[1.7976931348623157e308,"1"],[1000,"2"]]}]}}"#
        let series = try PrometheusClient.parseMatrix(status: 200, body: Data(body.utf8))
        let answers: [PrometheusTelemetry.Resource: Result<[PrometheusClient.Series], PrometheusClient.Failure>] =
            [.cpu: .success(series), .memory: .success(series), .network: .success(series)]
        let result = PrometheusTelemetry.assemble(answers, targets: [.init(name: "a", uuid: nil)],
                                                  start: 1000, step: 10, count: 2)
        XCTAssertEqual(result.samples["a"]?.map(\.cpu), [2])
        XCTAssertTrue(result.warnings.contains { $0.hasPrefix("a: ") && $0.contains("1 of 2 intervals missing") },
                      "\(result.warnings)")
    }
}
