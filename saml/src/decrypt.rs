//! `EncryptedAssertion` decryption (SAML core §2.3.4, §6.1; XML Encryption 1.1).
//!
//! Key transport: RSA-OAEP (`xmlenc#rsa-oaep-mgf1p`, `xmlenc11#rsa-oaep`, with the digest and
//! MGF the message names) or RSA PKCS#1 v1.5 (`xmlenc#rsa-1_5`; OpenSSL 3's implicit rejection
//! blunts Bleichenbacher, and every failure is the same `DecryptionFailed`). Content:
//! AES-128/192/256 in CBC or GCM. Implemented on openssl directly rather than samael's
//! `decrypt_assertion_value_info`, which lacks AES-256 and slices unchecked input (panics on a
//! short ciphertext).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::encrypt::Decrypter;
use openssl::hash::MessageDigest;
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};

use crate::keys::SpKeyPair;
use crate::reason::{Reason, Rejection, reject};
use crate::xml::{Element, NS_DS, NS_XENC};

const NS_XENC11: &str = "http://www.w3.org/2009/xmlenc11#";

fn failed(detail: impl Into<String>) -> Rejection {
    Rejection::new(Reason::DecryptionFailed, detail)
}

/// Decrypts an `EncryptedAssertion` with the first of `keys` that works; returns the plaintext
/// XML (not yet parsed, not yet verified).
pub(crate) fn decrypt_assertion(
    encrypted: &Element,
    keys: &[&SpKeyPair],
) -> Result<String, Rejection> {
    let data = encrypted
        .child(NS_XENC, "EncryptedData")
        .ok_or_else(|| failed("EncryptedAssertion without xenc:EncryptedData"))?;
    let data_alg = data
        .child(NS_XENC, "EncryptionMethod")
        .and_then(|m| m.attr("Algorithm"))
        .ok_or_else(|| failed("EncryptedData without EncryptionMethod"))?;
    let cipher = content_cipher(data_alg)
        .ok_or_else(|| failed(format!("unsupported content encryption {data_alg}")))?;
    let ciphertext = cipher_value(data)?;

    // EncryptedKey inside EncryptedData/KeyInfo, or beside EncryptedData (SAML core §6.2).
    let mut encrypted_keys: Vec<&Element> = data
        .child(NS_DS, "KeyInfo")
        .map(|ki| ki.children_named(NS_XENC, "EncryptedKey").collect())
        .unwrap_or_default();
    encrypted_keys.extend(encrypted.children_named(NS_XENC, "EncryptedKey"));
    if encrypted_keys.is_empty() {
        return reject(Reason::DecryptionFailed, "no xenc:EncryptedKey");
    }
    if keys.is_empty() {
        return reject(Reason::DecryptionFailed, "no SP decryption key configured");
    }
    for ek in &encrypted_keys {
        let wrapped = cipher_value(ek)?;
        for key in keys {
            let Ok(content_key) = unwrap_key(ek, &wrapped, key) else {
                continue;
            };
            if content_key.len() != cipher.key_len() {
                continue;
            }
            if let Some(plain) = decrypt_content(&cipher, &content_key, &ciphertext) {
                return String::from_utf8(plain)
                    .map_err(|_| failed("decrypted assertion is not UTF-8"));
            }
        }
    }
    reject(
        Reason::DecryptionFailed,
        "no configured SP key decrypts the assertion",
    )
}

#[derive(Clone, Copy)]
enum ContentCipher {
    Cbc(Cipher),
    Gcm(Cipher),
}

impl ContentCipher {
    fn key_len(&self) -> usize {
        match self {
            ContentCipher::Cbc(c) | ContentCipher::Gcm(c) => c.key_len(),
        }
    }
}

fn content_cipher(alg: &str) -> Option<ContentCipher> {
    Some(match alg {
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => ContentCipher::Cbc(Cipher::aes_128_cbc()),
        "http://www.w3.org/2001/04/xmlenc#aes192-cbc" => ContentCipher::Cbc(Cipher::aes_192_cbc()),
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => ContentCipher::Cbc(Cipher::aes_256_cbc()),
        "http://www.w3.org/2009/xmlenc11#aes128-gcm" => ContentCipher::Gcm(Cipher::aes_128_gcm()),
        "http://www.w3.org/2009/xmlenc11#aes192-gcm" => ContentCipher::Gcm(Cipher::aes_192_gcm()),
        "http://www.w3.org/2009/xmlenc11#aes256-gcm" => ContentCipher::Gcm(Cipher::aes_256_gcm()),
        _ => return None,
    })
}

fn cipher_value(parent: &Element) -> Result<Vec<u8>, Rejection> {
    let text = parent
        .child(NS_XENC, "CipherData")
        .and_then(|cd| cd.child(NS_XENC, "CipherValue"))
        .map(|cv| cv.text())
        .ok_or_else(|| failed("missing xenc:CipherData/xenc:CipherValue"))?;
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(compact)
        .map_err(|_| failed("CipherValue is not base64"))
}

fn digest_by_uri(uri: &str) -> Option<MessageDigest> {
    Some(match uri {
        "http://www.w3.org/2000/09/xmldsig#sha1" => MessageDigest::sha1(),
        "http://www.w3.org/2001/04/xmlenc#sha256" => MessageDigest::sha256(),
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => MessageDigest::sha384(),
        "http://www.w3.org/2001/04/xmlenc#sha512" => MessageDigest::sha512(),
        _ => return None,
    })
}

fn mgf_by_uri(uri: &str) -> Option<MessageDigest> {
    Some(match uri {
        "http://www.w3.org/2009/xmlenc11#mgf1sha1" => MessageDigest::sha1(),
        "http://www.w3.org/2009/xmlenc11#mgf1sha256" => MessageDigest::sha256(),
        "http://www.w3.org/2009/xmlenc11#mgf1sha384" => MessageDigest::sha384(),
        "http://www.w3.org/2009/xmlenc11#mgf1sha512" => MessageDigest::sha512(),
        _ => return None,
    })
}

/// Key transport (XML Encryption 1.1 §5.5).
fn unwrap_key(ek: &Element, wrapped: &[u8], key: &SpKeyPair) -> Result<Vec<u8>, Rejection> {
    let method = ek
        .child(NS_XENC, "EncryptionMethod")
        .ok_or_else(|| failed("EncryptedKey without EncryptionMethod"))?;
    let alg = method.attr("Algorithm").unwrap_or("");
    let mut d = Decrypter::new(key.pkey()).map_err(|_| failed("key"))?;
    match alg {
        "http://www.w3.org/2001/04/xmlenc#rsa-1_5" => {
            d.set_rsa_padding(Padding::PKCS1)
                .map_err(|_| failed("key"))?;
        }
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
        | "http://www.w3.org/2009/xmlenc11#rsa-oaep" => {
            if method.child(NS_XENC, "OAEPparams").is_some() {
                return reject(Reason::DecryptionFailed, "OAEPparams are not supported");
            }
            let md = match method
                .child(NS_DS, "DigestMethod")
                .and_then(|m| m.attr("Algorithm"))
            {
                None => MessageDigest::sha1(),
                Some(u) => digest_by_uri(u)
                    .ok_or_else(|| failed(format!("unsupported OAEP digest {u}")))?,
            };
            // rsa-oaep-mgf1p fixes MGF1 with SHA-1; xmlenc11#rsa-oaep may name another.
            let mgf = match method
                .child(NS_XENC11, "MGF")
                .and_then(|m| m.attr("Algorithm"))
            {
                Some(u) if alg.ends_with("#rsa-oaep") => {
                    mgf_by_uri(u).ok_or_else(|| failed(format!("unsupported MGF {u}")))?
                }
                _ => MessageDigest::sha1(),
            };
            d.set_rsa_padding(Padding::PKCS1_OAEP)
                .map_err(|_| failed("key"))?;
            d.set_rsa_oaep_md(md).map_err(|_| failed("key"))?;
            d.set_rsa_mgf1_md(mgf).map_err(|_| failed("key"))?;
        }
        other => {
            return reject(
                Reason::DecryptionFailed,
                format!("unsupported key transport {other}"),
            );
        }
    }
    let len = d.decrypt_len(wrapped).map_err(|_| failed("key"))?;
    let mut out = vec![0u8; len];
    let n = d.decrypt(wrapped, &mut out).map_err(|_| failed("key"))?;
    out.truncate(n);
    Ok(out)
}

/// Content decryption (XML Encryption 1.1 §5.2): IV prepended; CBC uses the §5.2 padding
/// (last octet = pad length); GCM has a 96-bit IV and a 128-bit tag appended.
fn decrypt_content(cipher: &ContentCipher, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    match *cipher {
        ContentCipher::Cbc(c) => {
            if data.len() < 32 || !data.len().is_multiple_of(16) {
                return None;
            }
            let (iv, body) = data.split_at(16);
            let mut cr = Crypter::new(c, Mode::Decrypt, key, Some(iv)).ok()?;
            cr.pad(false);
            let mut out = vec![0u8; body.len() + 16];
            let n = cr.update(body, &mut out).ok()?;
            let m = cr.finalize(out.get_mut(n..)?).ok()?;
            out.truncate(n + m);
            let pad = usize::from(*out.last()?);
            if pad == 0 || pad > 16 || pad > out.len() {
                return None;
            }
            out.truncate(out.len() - pad);
            Some(out)
        }
        ContentCipher::Gcm(c) => {
            if data.len() < 12 + 16 {
                return None;
            }
            let (iv, rest) = data.split_at(12);
            let (body, tag) = rest.split_at(rest.len() - 16);
            let mut cr = Crypter::new(c, Mode::Decrypt, key, Some(iv)).ok()?;
            cr.pad(false);
            let mut out = vec![0u8; body.len() + 16];
            let n = cr.update(body, &mut out).ok()?;
            cr.set_tag(tag).ok()?;
            let m = cr.finalize(out.get_mut(n..)?).ok()?;
            out.truncate(n + m);
            Some(out)
        }
    }
}
