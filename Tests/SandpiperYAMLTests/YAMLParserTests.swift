import XCTest
@testable import SandpiperYAML

final class YAMLParserTests: XCTestCase {
    private func parseError(_ text: String, limits: YAMLLimits = .default,
                            file: StaticString = #filePath, line: UInt = #line) -> YAMLError? {
        do {
            _ = try YAMLParser.parse(text, limits: limits)
            XCTFail("expected a YAMLError", file: file, line: line)
            return nil
        } catch let error as YAMLError {
            return error
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
            return nil
        }
    }

    private func m(_ line: Int, _ column: Int) -> Mark { Mark(line: line, column: column) }

    // MARK: structure and marks

    func testNestedMappingsAndSequencesWithMarks() throws {
        let text = """
        name: lab
        hosts:
          - name: a
            cpus: 4
          - name: b
            disks: [10, 20]
        net:
          bridge: br0

        """
        let root = try XCTUnwrap(YAMLParser.parse(text))
        XCTAssertEqual(root.mark, m(1, 1))
        let pairs = try XCTUnwrap(root.mapping)
        XCTAssertEqual(pairs.map { $0.key.scalar }, ["name", "hosts", "net"])
        XCTAssertEqual(pairs.map(\.key.mark), [m(1, 1), m(2, 1), m(7, 1)])

        let name = try XCTUnwrap(root["name"])
        XCTAssertEqual(name.kind, .scalar("lab", plain: true))
        XCTAssertEqual(name.mark, m(1, 7))

        let hosts = try XCTUnwrap(root["hosts"]?.sequence)
        XCTAssertEqual(root["hosts"]?.mark, m(3, 3))
        XCTAssertEqual(hosts.count, 2)
        XCTAssertEqual(hosts[0].mark, m(3, 5))
        XCTAssertEqual(hosts[0]["name"]?.scalar, "a")
        XCTAssertEqual(hosts[0]["name"]?.mark, m(3, 11))
        XCTAssertEqual(hosts[0]["cpus"]?.kind, .scalar("4", plain: true))
        XCTAssertEqual(hosts[0]["cpus"]?.mark, m(4, 11))
        XCTAssertEqual(hosts[1].mapping?.map(\.key.mark), [m(5, 5), m(6, 5)])

        let disks = try XCTUnwrap(hosts[1]["disks"])
        XCTAssertEqual(disks.mark, m(6, 12))
        XCTAssertEqual(disks.sequence?.map(\.scalar), ["10", "20"])
        XCTAssertEqual(disks.sequence?.map(\.mark), [m(6, 13), m(6, 17)])

        let net = try XCTUnwrap(root["net"])
        XCTAssertEqual(net.mark, m(8, 3))
        XCTAssertEqual(net["bridge"]?.mark, m(8, 11))
        XCTAssertEqual(net["bridge"]?.scalar, "br0")
    }

    func testTopLevelSequenceAndScalar() throws {
        let seq = try XCTUnwrap(YAMLParser.parse("- 1\n- - 2\n  - 3\n"))
        XCTAssertEqual(seq, YAMLNode(kind: .sequence([
            YAMLNode(kind: .scalar("1", plain: true), mark: m(1, 3)),
            YAMLNode(kind: .sequence([
                YAMLNode(kind: .scalar("2", plain: true), mark: m(2, 5)),
                YAMLNode(kind: .scalar("3", plain: true), mark: m(3, 5)),
            ]), mark: m(2, 3)),
        ]), mark: m(1, 1)))

        let scalar = try XCTUnwrap(YAMLParser.parse("hello world\n"))
        XCTAssertEqual(scalar.kind, .scalar("hello world", plain: true))
        XCTAssertEqual(scalar.mark, m(1, 1))
    }

    func testBytesEntryPointMatchesString() throws {
        let text = "a: [1, {b: c}]\n"
        XCTAssertEqual(try YAMLParser.parse(bytes: Array(text.utf8)), try YAMLParser.parse(text))
        XCTAssertNil(try YAMLParser.parse(bytes: []))
    }

    // MARK: scalars

    func testPlainVersusQuotedScalars() throws {
        let text = """
        plain: yes
        single: 'yes'
        double: "line\\nbreak"
        literal: |
          one
          two
        folded: >
          one
          two
        empty: ""
        null:
        unicode: "caf\\u00e9 ✓"

        """
        let root = try XCTUnwrap(YAMLParser.parse(text))
        XCTAssertEqual(root["plain"]?.kind, .scalar("yes", plain: true))
        XCTAssertEqual(root["single"]?.kind, .scalar("yes", plain: false))
        XCTAssertEqual(root["double"]?.kind, .scalar("line\nbreak", plain: false))
        XCTAssertEqual(root["literal"]?.kind, .scalar("one\ntwo\n", plain: false))
        XCTAssertEqual(root["folded"]?.kind, .scalar("one two\n", plain: false))
        XCTAssertEqual(root["empty"]?.kind, .scalar("", plain: false))
        // A missing value is an empty plain scalar (YAML null).
        XCTAssertEqual(root["null"]?.kind, .scalar("", plain: true))
        XCTAssertEqual(root["unicode"]?.kind, .scalar("café ✓", plain: false))
        XCTAssertEqual(root["single"]?.mark, m(2, 9))
    }

    func testExplicitTagsAreKept() throws {
        let root = try XCTUnwrap(YAMLParser.parse("a: !!str 10\nb: !custom x\nc: !!map {k: v}\nd: 5\n"))
        XCTAssertEqual(root["a"]?.tag, "!!str")
        XCTAssertEqual(root["a"]?.kind, .scalar("10", plain: true))
        XCTAssertEqual(root["b"]?.tag, "!custom")
        XCTAssertEqual(root["c"]?.tag, "!!map")
        XCTAssertEqual(root["c"]?["k"]?.scalar, "v")
        XCTAssertNil(root["d"]?.tag)
    }

    // MARK: flow style

    func testFlowStyle() throws {
        let root = try XCTUnwrap(YAMLParser.parse("{a: [1, 'two', {b: c}], d: {}, e: []}"))
        XCTAssertEqual(root.mark, m(1, 1))
        let a = try XCTUnwrap(root["a"])
        XCTAssertEqual(a.mark, m(1, 5))
        XCTAssertEqual(a.sequence?.map(\.kind), [
            .scalar("1", plain: true), .scalar("two", plain: false),
            .mapping([YAMLPair(key: YAMLNode(kind: .scalar("b", plain: true), mark: m(1, 17)),
                               value: YAMLNode(kind: .scalar("c", plain: true), mark: m(1, 20)))]),
        ])
        XCTAssertEqual(a.sequence?.map(\.mark), [m(1, 6), m(1, 9), m(1, 16)])
        XCTAssertEqual(root["d"]?.kind, .mapping([]))
        XCTAssertEqual(root["e"]?.kind, .sequence([]))
    }

    // MARK: anchors and aliases

    func testAnchorsAndAliasesExpand() throws {
        let text = """
        base: &defaults
          cpus: 2
          mem: 4096
        vm1: *defaults
        list: [&x hello, *x, *x]

        """
        let root = try XCTUnwrap(YAMLParser.parse(text))
        let base = try XCTUnwrap(root["base"])
        let vm1 = try XCTUnwrap(root["vm1"])
        XCTAssertEqual(vm1.kind, base.kind)
        XCTAssertEqual(vm1["cpus"]?.scalar, "2")
        // libyaml starts an anchored node at its properties (`&defaults`). The copy's root
        // sits where the alias is; its insides keep the anchored marks.
        XCTAssertEqual(base.mark, m(1, 7))
        XCTAssertEqual(vm1.mark, m(4, 6))
        XCTAssertEqual(vm1["mem"]?.mark, m(3, 8))
        XCTAssertEqual(root["list"]?.sequence?.map(\.scalar), ["hello", "hello", "hello"])
        XCTAssertEqual(root["list"]?.sequence?.map(\.mark), [m(5, 8), m(5, 18), m(5, 22)])
    }

    func testAliasesCountAgainstNodeBudget() throws {
        // 1 mapping + 2 keys + anchored seq (1 + 3) + alias copy (4) = 11 nodes.
        let text = "a: &s [1, 2, 3]\nb: *s\n"
        XCTAssertNotNil(try YAMLParser.parse(text, limits: YAMLLimits(maxNodes: 11)))
        let error = parseError(text, limits: YAMLLimits(maxNodes: 10))
        XCTAssertEqual(error?.message, "document expands to more than 10 nodes (alias bomb?)")
        XCTAssertEqual(error?.mark, m(2, 4))
    }

    func testUnknownAndRecursiveAliases() {
        XCTAssertEqual(parseError("a: *nope\n")?.message, "alias *nope refers to an unknown anchor")
        let recursive = parseError("a: &r [1, *r]\n")
        XCTAssertEqual(recursive?.message, "alias *r refers to a node that contains it (recursive alias)")
        XCTAssertEqual(recursive?.mark, m(1, 11))
    }

    func testBillionLaughsIsRefusedQuickly() {
        var text = "a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n"
        for i in 1...9 {
            let refs = Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ")
            text += "a\(i): &a\(i) [\(refs)]\n"
        }
        let start = ContinuousClock.now
        let error = parseError(text)
        let elapsed = ContinuousClock.now - start
        XCTAssertEqual(error?.message, "document expands to more than 200000 nodes (alias bomb?)")
        XCTAssertTrue(error?.message.contains("\(YAMLLimits.default.maxNodes)") ?? false)
        XCTAssertEqual(error?.mark?.line, 6)
        XCTAssertLessThan(elapsed, .milliseconds(100))
    }

    // MARK: size and depth limits

    func testHugeInputRefusedUpFront() {
        let text = String(repeating: "a", count: 50 * 1024 * 1024)
        let start = ContinuousClock.now
        let error = parseError(text)
        XCTAssertLessThan(ContinuousClock.now - start, .milliseconds(100))
        XCTAssertEqual(error?.message, "document is 52428800 bytes; the limit is 4194304")
        XCTAssertNil(error?.mark)
        XCTAssertThrowsError(try YAMLParser.parse(bytes: [UInt8](repeating: 0x61, count: 11),
                                                  limits: YAMLLimits(maxBytes: 10)))
    }

    func testDeepFlowNestingRefused() {
        let text = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let error = parseError(text)
        XCTAssertEqual(error?.message, "document nests deeper than 64 levels")
        XCTAssertEqual(error?.mark, m(1, 65))
    }

    func testDeepBlockNestingRefused() {
        var text = ""
        for depth in 0..<200 {
            text += String(repeating: " ", count: depth) + "k:\n"
        }
        let error = parseError(text)
        XCTAssertEqual(error?.message, "document nests deeper than 64 levels")
        XCTAssertEqual(error?.mark, m(65, 65))
    }

    func testDepthLimitIsInclusive() throws {
        let limits = YAMLLimits(maxDepth: 3)
        XCTAssertNotNil(try YAMLParser.parse("[[[x]]]", limits: limits))
        XCTAssertEqual(parseError("[[[[x]]]]", limits: limits)?.mark, m(1, 4))
    }

    func testAliasExpansionCountsAgainstDepth() throws {
        let limits = YAMLLimits(maxDepth: 3)
        XCTAssertNotNil(try YAMLParser.parse("a: &x [[1]]\n", limits: limits))
        let error = parseError("a: &x [[1]]\nb: [*x]\n", limits: limits)
        XCTAssertEqual(error?.message, "document nests deeper than 3 levels")
        XCTAssertEqual(error?.mark, m(2, 5))
    }

    // MARK: keys

    func testDuplicateKeysReportBothMarks() {
        let error = parseError("a: 1\nb: 2\na: 3\n")
        XCTAssertEqual(error?.message, "duplicate key \"a\" (first at 1:1)")
        XCTAssertEqual(error?.mark, m(3, 1))
        XCTAssertEqual(error?.description, "3:1: duplicate key \"a\" (first at 1:1)")

        let nested = parseError("top:\n  x: 1\n  'x': 2\n")
        XCTAssertEqual(nested?.message, "duplicate key \"x\" (first at 2:3)")
        XCTAssertEqual(nested?.mark, m(3, 3))
    }

    func testDuplicateKeysInLargeMapping() throws {
        var text = ""
        for i in 0..<50 { text += "k\(i): \(i)\n" }
        XCTAssertEqual(try YAMLParser.parse(text)?.mapping?.count, 50)
        let error = parseError(text + "k17: again\n")
        XCTAssertEqual(error?.message, "duplicate key \"k17\" (first at 18:1)")
        XCTAssertEqual(error?.mark, m(51, 1))
    }

    func testSameKeyInDifferentMappingsIsFine() throws {
        let root = try XCTUnwrap(YAMLParser.parse("a: {x: 1}\nb: {x: 2}\n"))
        XCTAssertEqual(root["b"]?["x"]?.scalar, "2")
    }

    func testNonScalarKeysRefused() {
        let error = parseError("? [a, b]\n: 1\n")
        XCTAssertEqual(error?.message, "mapping keys must be scalars, found a sequence")
        XCTAssertEqual(error?.mark, m(1, 3))
        XCTAssertEqual(parseError("{{a: 1}: 2}")?.message, "mapping keys must be scalars, found a mapping")
    }

    func testMergeKeysRefused() throws {
        let error = parseError("base: &b {x: 1}\nderived:\n  <<: *b\n")
        XCTAssertEqual(error?.message, "merge keys (<<) are not supported; write the keys out")
        XCTAssertEqual(error?.mark, m(3, 3))
        // A quoted "<<" is an ordinary key.
        XCTAssertEqual(try YAMLParser.parse("'<<': 1\n")?["<<"]?.scalar, "1")
    }

    // MARK: errors and documents

    func testSyntaxErrorHasLineAndColumn() {
        let error = parseError("a: 1\nb: [1, 2\nc: 3\n")
        XCTAssertNotNil(error?.mark)
        XCTAssertEqual(error?.mark?.line, 3)
        XCTAssertTrue(error?.message.contains("while parsing a flow sequence at 2:4") ?? false,
                      error?.message ?? "")

        let bad = parseError("a: 1\n  b: 2\n")
        XCTAssertEqual(bad?.message, "mapping values are not allowed in this context")
        XCTAssertEqual(bad?.mark, m(2, 4))
    }

    func testInvalidUTF8Refused() {
        XCTAssertThrowsError(try YAMLParser.parse(bytes: [0x61, 0x3a, 0x20, 0xff, 0xfe, 0x0a])) { error in
            let message = (error as? YAMLError)?.message ?? ""
            XCTAssertTrue(message.contains("at byte 3"), message)
        }
    }

    func testMultipleDocumentsRefused() {
        let error = parseError("a: 1\n---\nb: 2\n")
        XCTAssertEqual(error?.message, "only one YAML document is allowed")
        XCTAssertEqual(error?.mark, m(2, 1))
        XCTAssertNotNil(parseError("--- 1\n--- 2\n"))
    }

    func testSingleExplicitDocumentAccepted() throws {
        XCTAssertEqual(try YAMLParser.parse("---\na: 1\n...\n")?["a"]?.scalar, "1")
    }

    func testEmptyDocumentIsNil() throws {
        XCTAssertNil(try YAMLParser.parse(""))
        XCTAssertNil(try YAMLParser.parse("\n\n"))
        XCTAssertNil(try YAMLParser.parse("# only a comment\n"))
        XCTAssertNil(try YAMLParser.parse("---\n"))
        XCTAssertNil(try YAMLParser.parse("---\n...\n"))
        // An explicit empty string or null is content, not an empty document.
        XCTAssertEqual(try YAMLParser.parse("''")?.kind, .scalar("", plain: false))
        XCTAssertEqual(try YAMLParser.parse("~")?.kind, .scalar("~", plain: true))
    }

    // MARK: speed

    func testTypicalClusterFileIsFast() throws {
        var text = "cluster: lab\nhosts:\n"
        for i in 0..<20 {
            text += """
              - name: host\(i)
                cpus: \(i % 8 + 1)
                memory: "\(i * 1024)MiB"
                disks: [sda, sdb]
                network:
                  bridge: br\(i)
                  vlan: \(100 + i)
                labels: {role: worker, zone: 'z\(i % 3)'}

            """
        }
        XCTAssertGreaterThan(text.split(separator: "\n").count, 150)
        let root = try XCTUnwrap(YAMLParser.parse(text))
        XCTAssertEqual(root["hosts"]?.sequence?.count, 20)
        let start = ContinuousClock.now
        for _ in 0..<100 { _ = try YAMLParser.parse(text) }
        let perParse = (ContinuousClock.now - start) / 100
        // Generous bound for a shared debug build; release is far below a millisecond.
        XCTAssertLessThan(perParse, .milliseconds(5))
    }
}
