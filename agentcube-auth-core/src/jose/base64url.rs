//! Base64url without padding (RFC 7515 §2), the one encoding of every JOSE segment and JWK
//! member, both ways.
//!
//! Decoding is strict: no padding, no whitespace, no characters of the other alphabet, and the
//! unused bits of the last character must be zero, so every byte string has exactly one
//! accepted encoding. The SIMD decoder matters on the verification path, where decoding the
//! segments was the largest cost after the signature and JSON parsing.

use base64_simd::{AsOut as _, Base64};

const ENGINE: Base64 = base64_simd::URL_SAFE_NO_PAD;

/// `text` was not canonical unpadded base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidBase64;

/// Decodes `text`.
pub(crate) fn decode(text: &str) -> Result<Vec<u8>, InvalidBase64> {
    ENGINE.decode_to_vec(text).map_err(|_| InvalidBase64)
}

/// Decodes `text` into the front of `buf`; an error as well when `buf` is too small.
pub(crate) fn decode_into<'b>(text: &str, buf: &'b mut [u8]) -> Result<&'b [u8], InvalidBase64> {
    let len = ENGINE
        .decoded_length(text.as_bytes())
        .map_err(|_| InvalidBase64)?;
    let out = buf.get_mut(..len).ok_or(InvalidBase64)?;
    let decoded = ENGINE
        .decode(text.as_bytes(), out.as_out())
        .map_err(|_| InvalidBase64)?;
    Ok(decoded)
}

/// Checks `text` as [`decode`] would, without decoding it; returns the decoded length.
pub(crate) fn check(text: &str) -> Result<usize, InvalidBase64> {
    ENGINE.check(text.as_bytes()).map_err(|_| InvalidBase64)?;
    ENGINE
        .decoded_length(text.as_bytes())
        .map_err(|_| InvalidBase64)
}

/// Encodes `bytes`.
pub(crate) fn encode(bytes: impl AsRef<[u8]>) -> String {
    ENGINE.encode_to_string(bytes)
}

/// Appends the encoding of `bytes` to `out`.
pub(crate) fn encode_to(bytes: impl AsRef<[u8]>, out: &mut String) {
    ENGINE.encode_append(bytes, out);
}

/// The length of the encoding of `len` bytes.
pub(crate) fn encoded_len(len: usize) -> usize {
    ENGINE.encoded_length(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    #[test]
    fn decoding_accepts_only_the_canonical_unpadded_form() {
        assert_eq!(decode("QQ"), Ok(b"A".to_vec()));
        assert_eq!(decode("a_b-"), Ok(vec![107, 246, 254]));
        assert_eq!(decode(""), Ok(Vec::new()));
        for bad in ["QR", "QUJ", "Q", "QQ==", "a+b", "a/b", "QQ\n", " QQ"] {
            assert_eq!(decode(bad), Err(InvalidBase64), "{bad:?}");
            assert_eq!(check(bad), Err(InvalidBase64), "{bad:?}");
        }
        for (good, len) in [("QQ", 1), ("QUI", 2), ("QUJD", 3), ("", 0), ("a_b-", 3)] {
            assert_eq!(check(good), Ok(len), "{good:?}");
        }
        // A signature-sized input, where the SIMD path runs: the last character of a 256-byte
        // encoding carries 4 unused bits, and setting one makes it non-canonical.
        let long = encode([0xa5u8; 256]);
        assert_eq!(check(&long), Ok(256));
        let last = long.chars().last().unwrap();
        let bumped = ALPHABET[ALPHABET.iter().position(|&c| c == last as u8).unwrap() + 1];
        let non_canonical = format!("{}{}", &long[..long.len() - 1], bumped as char);
        assert_eq!(check(&non_canonical), Err(InvalidBase64));
        assert_eq!(decode(&non_canonical), Err(InvalidBase64));
        let mut small = [0u8; 2];
        assert_eq!(decode_into("QUJD", &mut small), Err(InvalidBase64));
        let mut buf = [0u8; 8];
        assert_eq!(decode_into("QUJD", &mut buf), Ok(&b"ABC"[..]));
    }

    #[test]
    fn encoding_round_trips() {
        for len in 0..70 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let text = encode(&bytes);
            assert_eq!(text.len(), encoded_len(len));
            assert_eq!(decode(&text).as_ref(), Ok(&bytes));
            let mut appended = String::from("x.");
            encode_to(&bytes, &mut appended);
            assert_eq!(appended, format!("x.{text}"));
        }
    }
}
