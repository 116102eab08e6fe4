import Crypto
import Foundation

/// SHA-256 hex digests for what a saved plan records (spec, policy, inventory, the plan's own id), computed by
/// swift-crypto (BoringSSL on Linux, CryptoKit on Apple platforms).
public enum SHA256 {
    public static func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        hex(digest: Crypto.SHA256.hash(data: Array(bytes)))
    }

    public static func hex(_ data: Data) -> String { hex(digest: Crypto.SHA256.hash(data: data)) }

    public static func hex(_ text: String) -> String { hex(Array(text.utf8)) }

    private static func hex(digest: Crypto.SHA256.Digest) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
