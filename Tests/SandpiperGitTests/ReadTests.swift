import Foundation
import XCTest
import SandpiperGit

final class ReadTests: XCTestCase {
    func testReadFileAtOlderRevisionsWithoutCheckout() throws {
        let fx = try Fixture()
        let dir = try fx.operatorRepo()
        let repo = try GitRepository.open(at: dir)
        try repo.commitFiles(["Clusters/demo/state.json": "{\"serial\": 2}\n".bytes], message: "state 2",
                             author: sandpiperSignature)
        let head = try repo.resolve("HEAD")
        let previous = try repo.resolve("HEAD~1")
        let first = try repo.resolve("HEAD~2")

        XCTAssertEqual(try repo.readFile("Clusters/demo/state.json", at: head), "{\"serial\": 2}\n".bytes)
        XCTAssertEqual(try repo.readFile("Clusters/demo/state.json", at: previous), "{\"serial\": 1}\n".bytes)
        XCTAssertNil(try repo.readFile("Clusters/demo/state.json", at: first))
        XCTAssertNil(try repo.readFile("Clusters/other/cluster.yaml", at: head))
        XCTAssertThrowsError(try repo.readFile("Clusters/demo", at: head))
        XCTAssertEqual(try repo.listDirectory("Clusters/demo", at: head), ["cluster.yaml", "state.json"])
        XCTAssertEqual(try repo.listDirectory("", at: first), ["Clusters", "Policies"])
        XCTAssertNil(try repo.listDirectory("Clusters/none", at: head))
        // The working tree was never checked out to the old revisions.
        XCTAssertEqual(fx.read(dir + "/Clusters/demo/state.json"), "{\"serial\": 2}\n")
    }

    func testResolvesBranchesTagsShortIdsAndRelativeRevisions() throws {
        let fx = try Fixture()
        let dir = try fx.operatorRepo()
        try fx.git("tag", "-a", "v1", "-m", "release", "HEAD~1", in: dir)
        let repo = try GitRepository.open(at: dir)
        let head = try fx.git("rev-parse", "HEAD", in: dir).trimmed
        let parent = try fx.git("rev-parse", "HEAD~1", in: dir).trimmed

        XCTAssertEqual(try repo.resolve("main").hex, head)
        XCTAssertEqual(try repo.resolve("refs/heads/main").hex, head)
        XCTAssertEqual(try repo.resolve("HEAD~1").hex, parent)
        XCTAssertEqual(try repo.resolve(String(head.prefix(8))).hex, head)
        XCTAssertEqual(try repo.resolve(head).hex, head)
        XCTAssertEqual(try repo.resolve("v1").hex, parent, "annotated tag peeled to its commit")
        XCTAssertThrowsError(try repo.resolve("no-such-branch")) {
            XCTAssertEqual(($0 as? GitError)?.kind, .notFound, "\($0)")
        }
        XCTAssertEqual(try repo.headCommit()?.hex, head)
        XCTAssertEqual(try repo.currentBranch(), "main")
        try fx.git("checkout", "-q", "--detach", "HEAD~1", in: dir)
        XCTAssertNil(try repo.currentBranch())
        XCTAssertThrowsError(try repo.commitFiles(["a": [1]], message: "m", author: sandpiperSignature)) {
            XCTAssertEqual(($0 as? GitError)?.kind, .invalidSpec)
        }
    }

    func testDiscoverFindsTheEnclosingWorkingTree() throws {
        let fx = try Fixture()
        let dir = try fx.operatorRepo()
        let repo = try GitRepository.discover(from: dir + "/Clusters/demo/cluster.yaml")
        XCTAssertEqual(repo.workdir.map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path },
                       URL(fileURLWithPath: dir).resolvingSymlinksInPath().path)
        XCTAssertFalse(repo.isBare)
        XCTAssertThrowsError(try GitRepository.discover(from: fx.root + "/home")) {
            XCTAssertEqual(($0 as? GitError)?.kind, .notFound)
        }
    }

    func testBlobsRoundTripAndObjectIDCoding() throws {
        let fx = try Fixture()
        let repo = try GitRepository.create(at: fx.root + "/r")
        let bytes: [UInt8] = Array("holder: ci-job-42\n".utf8) + [0, 255]
        let id = try repo.writeBlob(bytes)
        XCTAssertEqual(try repo.readBlob(id), bytes)
        XCTAssertEqual(try repo.readBlob(repo.writeBlob([])), [])
        XCTAssertThrowsError(try repo.readBlob(ObjectID(hex: String(repeating: "ab", count: 20))!)) {
            XCTAssertEqual(($0 as? GitError)?.kind, .notFound)
        }
        let data = try JSONEncoder().encode([id])
        XCTAssertEqual(String(decoding: data, as: UTF8.self), "[\"\(id.hex)\"]")
        XCTAssertEqual(try JSONDecoder().decode([ObjectID].self, from: data), [id])
        XCTAssertNil(ObjectID(hex: "abc"))
        XCTAssertEqual(ObjectID(hex: String(repeating: "AB", count: 20))?.hex, String(repeating: "ab", count: 20))
        XCTAssertThrowsError(try JSONDecoder().decode([ObjectID].self, from: Data("[\"xyz\"]".utf8)))
    }

    func testDefaultSignatureComesFromRepositoryConfig() throws {
        let fx = try Fixture()
        let dir = try fx.operatorRepo()
        let repo = try GitRepository.open(at: dir)
        let configured = repo.defaultSignature()
        XCTAssertEqual(configured.name, "Operator")
        XCTAssertEqual(configured.email, "op@example.org")
    }
}
