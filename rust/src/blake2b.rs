//! BLAKE2b (RFC 7693), unkeyed, digests of 1..=64 bytes: what Python's `hashlib.blake2b(data,
//! digest_size=n)` computes. The engine's client order ids are blake2b-128 of the order's key; hashing
//! them here spares a Python call chain per order (no crate dependency for ~60 lines of a fixed spec).

const IV: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

const SIGMA: [[usize; 16]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];

const BLOCK: usize = 128;

// inlined: its indices are then constants (no bounds checks, the state stays in registers)
#[inline(always)]
fn mix(v: &mut [u64; 16], (a, b, c, d): (usize, usize, usize, usize), x: u64, y: u64) {
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
    v[d] = (v[d] ^ v[a]).rotate_right(32);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(24);
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
    v[d] = (v[d] ^ v[a]).rotate_right(16);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(63);
}

/// Fold one 128-byte block into the state; `count` is the bytes hashed so far including this block's.
fn compress(h: &mut [u64; 8], block: &[u8; BLOCK], count: u128, last: bool) {
    let mut m = [0u64; 16];
    for (word, bytes) in m.iter_mut().zip(block.chunks_exact(8)) {
        *word = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
    }
    let mut v = [0u64; 16];
    v[..8].copy_from_slice(h);
    v[8..].copy_from_slice(&IV);
    v[12] ^= count as u64;
    v[13] ^= (count >> 64) as u64;
    if last {
        v[14] = !v[14];
    }
    for round in 0..12 {
        let s = &SIGMA[round % 10];
        mix(&mut v, (0, 4, 8, 12), m[s[0]], m[s[1]]);
        mix(&mut v, (1, 5, 9, 13), m[s[2]], m[s[3]]);
        mix(&mut v, (2, 6, 10, 14), m[s[4]], m[s[5]]);
        mix(&mut v, (3, 7, 11, 15), m[s[6]], m[s[7]]);
        mix(&mut v, (0, 5, 10, 15), m[s[8]], m[s[9]]);
        mix(&mut v, (1, 6, 11, 12), m[s[10]], m[s[11]]);
        mix(&mut v, (2, 7, 8, 13), m[s[12]], m[s[13]]);
        mix(&mut v, (3, 4, 9, 14), m[s[14]], m[s[15]]);
    }
    for i in 0..8 {
        h[i] ^= v[i] ^ v[i + 8];
    }
}

/// The `N`-byte BLAKE2b digest of `data` (1 <= N <= 64).
pub fn digest<const N: usize>(data: &[u8]) -> [u8; N] {
    const { assert!(N >= 1 && N <= 64) };
    let mut h = IV;
    h[0] ^= 0x0101_0000 ^ N as u64;
    // every full block but the last goes in as "not last"; the last (partial, or empty input) is padded
    let full = if data.is_empty() {
        0
    } else {
        (data.len() - 1) / BLOCK
    };
    for (i, block) in data.chunks_exact(BLOCK).take(full).enumerate() {
        let count = ((i + 1) * BLOCK) as u128;
        compress(&mut h, block.try_into().expect("a block"), count, false);
    }
    let rest = &data[full * BLOCK..];
    let mut last = [0u8; BLOCK];
    last[..rest.len()].copy_from_slice(rest);
    compress(&mut h, &last, data.len() as u128, true);
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = h[i / 8].to_le_bytes()[i % 8];
    }
    out
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    // vectors from Python's hashlib (RFC 7693's "abc" for the 64-byte digest)
    #[test]
    fn known_digests() {
        assert_eq!(
            hex(&digest::<64>(b"abc")),
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1\
             7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
        );
        assert_eq!(hex(&digest::<16>(b"")), "cae66941d9efbd404e4d88758ea67670");
        assert_eq!(
            hex(&digest::<16>(&[b'x'; 128])),
            "874acca82a22239ec64a3e70c3ae494e"
        );
    }
}
