//! `EncryptedAssertion` as IdPs produce it (SAML core §6.2, XML Encryption 1.1).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::encrypt::Encrypter;
use openssl::rand::rand_bytes;
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};

use crate::cert::Certificate;

/// Content-encryption algorithm of a test `EncryptedAssertion`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentEncryption {
    Aes128Cbc,
    Aes256Cbc,
    Aes128Gcm,
    Aes256Gcm,
}

/// Key-transport algorithm of a test `EncryptedAssertion`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyTransport {
    RsaOaepMgf1p,
    Rsa15,
}

/// Encrypts `plaintext` (an assertion) for `cert`, returning a `saml:EncryptedAssertion`
/// element that declares its own namespaces.
#[allow(clippy::expect_used)]
pub fn encrypt_assertion(
    plaintext: &str,
    cert: &Certificate,
    content: ContentEncryption,
    transport: KeyTransport,
) -> String {
    let (cipher, uri, gcm) = match content {
        ContentEncryption::Aes128Cbc => (
            Cipher::aes_128_cbc(),
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
            false,
        ),
        ContentEncryption::Aes256Cbc => (
            Cipher::aes_256_cbc(),
            "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
            false,
        ),
        ContentEncryption::Aes128Gcm => (
            Cipher::aes_128_gcm(),
            "http://www.w3.org/2009/xmlenc11#aes128-gcm",
            true,
        ),
        ContentEncryption::Aes256Gcm => (
            Cipher::aes_256_gcm(),
            "http://www.w3.org/2009/xmlenc11#aes256-gcm",
            true,
        ),
    };
    let mut key = vec![0u8; cipher.key_len()];
    rand_bytes(&mut key).expect("random key");
    let mut iv = vec![0u8; if gcm { 12 } else { 16 }];
    rand_bytes(&mut iv).expect("random iv");
    let mut c = Crypter::new(cipher, Mode::Encrypt, &key, Some(&iv)).expect("cipher");
    // PKCS#7 padding is one of the paddings XML Encryption §5.2 allows.
    c.pad(!gcm);
    let mut body = vec![0u8; plaintext.len() + 32];
    let n = c.update(plaintext.as_bytes(), &mut body).expect("encrypt");
    let m = c.finalize(&mut body[n..]).expect("finalize");
    body.truncate(n + m);
    let mut data = iv.clone();
    data.extend_from_slice(&body);
    if gcm {
        let mut tag = [0u8; 16];
        c.get_tag(&mut tag).expect("tag");
        data.extend_from_slice(&tag);
    }

    let public = cert
        .x509()
        .expect("certificate")
        .public_key()
        .expect("public key");
    let mut e = Encrypter::new(&public).expect("encrypter");
    let (transport_uri, digest) = match transport {
        KeyTransport::RsaOaepMgf1p => {
            e.set_rsa_padding(Padding::PKCS1_OAEP).expect("oaep");
            (
                "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
                "<ds:DigestMethod Algorithm=\"http://www.w3.org/2000/09/xmldsig#sha1\"/>",
            )
        }
        KeyTransport::Rsa15 => {
            e.set_rsa_padding(Padding::PKCS1).expect("pkcs1");
            ("http://www.w3.org/2001/04/xmlenc#rsa-1_5", "")
        }
    };
    let mut wrapped = vec![0u8; e.encrypt_len(&key).expect("len")];
    let w = e.encrypt(&key, &mut wrapped).expect("wrap");
    wrapped.truncate(w);

    format!(
        concat!(
            "<saml:EncryptedAssertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\">",
            "<xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" ",
            "Type=\"http://www.w3.org/2001/04/xmlenc#Element\">",
            "<xenc:EncryptionMethod Algorithm=\"{uri}\"/>",
            "<ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><xenc:EncryptedKey>",
            "<xenc:EncryptionMethod Algorithm=\"{transport}\">{digest}</xenc:EncryptionMethod>",
            "<xenc:CipherData><xenc:CipherValue>{wrapped}</xenc:CipherValue></xenc:CipherData>",
            "</xenc:EncryptedKey></ds:KeyInfo>",
            "<xenc:CipherData><xenc:CipherValue>{data}</xenc:CipherValue></xenc:CipherData>",
            "</xenc:EncryptedData></saml:EncryptedAssertion>"
        ),
        uri = uri,
        transport = transport_uri,
        digest = digest,
        wrapped = STANDARD.encode(wrapped),
        data = STANDARD.encode(data),
    )
}
