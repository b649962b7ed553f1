//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP): HMAC-SHA1, 30-second steps,
//! 6 digits (what authenticator apps implement), and single-use backup codes.

use aws_lc_rs::hmac;
use rand::RngCore;

pub const STEP_SECS: u64 = 30;
pub const DIGITS: u32 = 6;
/// Steps accepted either side of now (RFC 6238 §5.2 recommends at most one).
pub const WINDOW: u64 = 1;

/// A new random 160-bit secret (RFC 4226 §4 recommends 160 bits).
pub fn new_secret() -> Vec<u8> {
    let mut s = vec![0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

/// RFC 4648 base32 without padding, as authenticator apps expect in `otpauth://` URIs.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The HOTP value of `secret` at `counter` (RFC 4226 §5.3).
pub fn hotp(secret: &[u8], counter: u64) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let d = tag.as_ref();
    let off = usize::from(d[d.len() - 1] & 0x0f);
    let bin = (u32::from(d[off] & 0x7f) << 24)
        | (u32::from(d[off + 1]) << 16)
        | (u32::from(d[off + 2]) << 8)
        | u32::from(d[off + 3]);
    bin % 10u32.pow(DIGITS)
}

/// The time step of a Unix time.
pub fn step_at(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// Checks a code at `unix_secs` (±[`WINDOW`] steps). A step at or before `last_used` is
/// refused, so a code works once. Returns the matched step.
pub fn verify(secret: &[u8], code: &str, unix_secs: u64, last_used: Option<u64>) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let given: u32 = code.parse().ok()?;
    let now = step_at(unix_secs);
    (now.saturating_sub(WINDOW)..=now + WINDOW)
        .filter(|s| last_used.is_none_or(|l| *s > l))
        .find(|s| {
            let expected = hotp(secret, *s);
            // Constant-time comparison of the two codes.
            subtle::ConstantTimeEq::ct_eq(&expected.to_be_bytes()[..], &given.to_be_bytes()[..])
                .into()
        })
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

/// Ten single-use backup codes, `xxxxx-xxxxx` from an unambiguous alphabet.
pub fn backup_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..10)
        .map(|_| {
            let mut bytes = [0u8; 10];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let s: String = bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
                .collect();
            format!("{}-{}", &s[..5], &s[5..])
        })
        .collect()
}

/// The stored form of a backup code (codes are random, so a plain SHA-256 suffices).
pub fn hash_backup_code(code: &str) -> String {
    crate::store::hash_token(&code.trim().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B test vectors (SHA-1 key "12345678901234567890"), 6-digit form.
    #[test]
    fn rfc6238_vectors() {
        let key = b"12345678901234567890";
        for (t, code) in [
            (59u64, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(format!("{:06}", hotp(key, step_at(t))), code, "t={t}");
            assert!(verify(key, code, t, None).is_some());
        }
    }

    #[test]
    fn window_and_single_use() {
        let key = b"12345678901234567890";
        let code = format!("{:06}", hotp(key, step_at(1_000_000)));
        assert!(
            verify(key, &code, 1_000_000 + 30, None).is_some(),
            "one step late"
        );
        assert!(
            verify(key, &code, 1_000_000 + 90, None).is_none(),
            "three steps late"
        );
        let used = verify(key, &code, 1_000_000, None).unwrap();
        assert!(
            verify(key, &code, 1_000_000, Some(used)).is_none(),
            "replayed"
        );
        assert!(verify(key, "12345", 0, None).is_none());
        assert!(verify(key, "abcdef", 0, None).is_none());
    }

    #[test]
    fn base32_and_uri() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        let uri = otpauth_uri("idhub", "ann@example.com", b"12345678901234567890");
        assert!(uri.starts_with(
            "otpauth://totp/idhub:ann%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"
        ));
        let codes = backup_codes();
        assert_eq!(codes.len(), 10);
        assert!(codes.iter().all(|c| c.len() == 11));
    }
}
