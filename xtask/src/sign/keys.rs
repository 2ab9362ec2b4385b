//! cosign-format key pairs: ECDSA P-256, the private key as PKCS#8 encrypted with scrypt and
//! NaCl secretbox under the PEM label `ENCRYPTED COSIGN PRIVATE KEY`, the public key as SPKI PEM.
//!
//! The format is cosign's (go-securesystemslib `encrypted`): a PEM whose body is the JSON
//! `{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":…},"cipher":{"name":
//! "nacl/secretbox","nonce":…},"ciphertext":…}`, byte strings in standard base64, the ciphertext
//! being the 16-byte Poly1305 tag followed by the encrypted PKCS#8 DER. We write N=32768 (the only
//! value containers/image 5.23 and cosign ≤ 2.1 read) and read every N cosign writes.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::elliptic_curve::Generate;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use poly1305::Poly1305;
use poly1305::universal_hash::KeyInit;
use salsa20::XSalsa20;
use salsa20::cipher::{KeyIvInit, StreamCipher};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// What cosign ≤ 2.0.0 writes and every cosign and containers/image ≥ 5.22 reads.
pub const PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// What cosign ≥ 2.0.1 writes by default; same content, read as well.
const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The variable cosign reads the passphrase from; set but empty means an empty passphrase.
pub const PASSWORD_ENV: &str = "COSIGN_PASSWORD";

/// scrypt's cost as log2(N): N = 32768.
const WRITE_LOG_N: u8 = 15;
/// The N values go-securesystemslib writes (legacy, standard, OWASP), with r = 8 and p = 1.
const READ_LOG_N: [u8; 3] = [15, 16, 17];

/// The JSON inside the private key's PEM, fields in the order Go writes them.
#[derive(Debug, Serialize, Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

/// Go's `[]byte` in JSON: standard base64 with padding.
mod b64 {
    use super::{B64, Engine};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        B64.decode(text).map_err(serde::de::Error::custom)
    }
}

/// A new random P-256 key.
pub fn generate() -> SigningKey {
    SigningKey::generate()
}

/// The passphrase from `COSIGN_PASSWORD`, exactly as cosign reads it (no trimming; set but
/// empty is the empty passphrase). Unlike cosign we never prompt: the tasks run unattended.
pub fn password_from_env() -> Result<Zeroizing<Vec<u8>>> {
    match std::env::var_os(PASSWORD_ENV) {
        Some(value) => Ok(Zeroizing::new(value.into_encoded_bytes())),
        None => bail!(
            "{PASSWORD_ENV} is not set: set it to the key's passphrase (set but empty for a key \
             without one)"
        ),
    }
}

/// The key's private half as cosign stores it: PKCS#8, encrypted with `password`, in PEM.
pub fn encrypt_private_key(key: &SigningKey, password: &[u8]) -> Result<String> {
    let der = key
        .to_pkcs8_der()
        .map_err(|e| anyhow::anyhow!("encoding the key as PKCS#8: {e}"))?;
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
    let secret = scrypt_key(password, &salt, WRITE_LOG_N)?;
    let encrypted = EncryptedKey {
        kdf: Kdf {
            name: "scrypt".into(),
            params: ScryptParams {
                n: 1 << WRITE_LOG_N,
                r: 8,
                p: 1,
            },
            salt: salt.to_vec(),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: nonce.to_vec(),
        },
        ciphertext: secretbox_seal(&secret, &nonce, der.as_bytes()),
    };
    let json = serde_json::to_vec(&encrypted)?;
    pem_rfc7468::encode_string(PRIVATE_KEY_LABEL, pem_rfc7468::LineEnding::LF, &json)
        .map_err(|e| anyhow::anyhow!("encoding PEM: {e}"))
}

/// Why a private key could not be read. `WrongPassword` is its own case: it is what people get
/// wrong, and it must not read like a damaged file.
#[derive(Debug)]
pub enum KeyError {
    WrongPassword,
    Format(String),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::WrongPassword => write!(
                f,
                "wrong passphrase ({PASSWORD_ENV}), or the encrypted key was altered"
            ),
            KeyError::Format(why) => write!(f, "not a cosign private key: {why}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// Decrypts a cosign private key (either PEM label) with `password`.
pub fn decrypt_private_key(pem: &str, password: &[u8]) -> Result<SigningKey, KeyError> {
    let format = |why: String| KeyError::Format(why);
    let (label, body) =
        pem_rfc7468::decode_vec(pem.trim().as_bytes()).map_err(|e| format(format!("PEM: {e}")))?;
    if label != PRIVATE_KEY_LABEL && label != SIGSTORE_PRIVATE_KEY_LABEL {
        return Err(format(format!(
            "PEM label `{label}`, expected `{PRIVATE_KEY_LABEL}` (written by `cosign \
             generate-key-pair` or `cargo xtask sign --generate-key`)"
        )));
    }
    let key: EncryptedKey =
        serde_json::from_slice(&body).map_err(|e| format(format!("key JSON: {e}")))?;
    let ScryptParams { n, r, p } = key.kdf.params;
    let log_n = READ_LOG_N
        .into_iter()
        .find(|&l| 1u64 << l == n)
        .filter(|_| (r, p) == (8, 1))
        .ok_or_else(|| format(format!("unsupported scrypt parameters N={n} r={r} p={p}")))?;
    if key.kdf.name != "scrypt" || key.cipher.name != "nacl/secretbox" {
        return Err(format(format!(
            "unsupported kdf `{}` or cipher `{}`",
            key.kdf.name, key.cipher.name
        )));
    }
    let nonce: [u8; 24] = key
        .cipher
        .nonce
        .as_slice()
        .try_into()
        .map_err(|_| format("the nonce is not 24 bytes".into()))?;
    let secret = scrypt_key(password, &key.kdf.salt, log_n).map_err(|e| format(e.to_string()))?;
    let der = secretbox_open(&secret, &nonce, &key.ciphertext).ok_or(KeyError::WrongPassword)?;
    SigningKey::from_pkcs8_der(&der).map_err(|e| {
        format(format!(
            "the decrypted key is not a PKCS#8 ECDSA P-256 key (only P-256 is supported): {e}"
        ))
    })
}

/// The public half as cosign writes `cosign.pub`: SPKI DER in a `PUBLIC KEY` PEM.
pub fn public_key_pem(key: &VerifyingKey) -> Result<String> {
    key.to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encoding the public key: {e}"))
}

/// Reads a public key file (`PUBLIC KEY` PEM, as `cosign.pub`).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the public key {}", path.display()))?;
    if text.contains("PRIVATE KEY-----") {
        bail!(
            "{} is a private key: verifying takes the public key (e.g. cosign.pub)",
            path.display()
        );
    }
    VerifyingKey::from_public_key_pem(text.trim()).map_err(|e| {
        anyhow::anyhow!(
            "{}: not an ECDSA P-256 public key in a PUBLIC KEY PEM: {e}",
            path.display()
        )
    })
}

/// How `--key` names a key held in an environment variable instead of a file, as cosign's
/// `--key env://NAME`: a workflow's secret then never touches the disk.
pub const ENV_KEY_PREFIX: &str = "env://";

/// The private key `--key` names, decrypted with the passphrase from `COSIGN_PASSWORD`: a file
/// (relative to `dir`), or `env://NAME`, the PEM text in the variable NAME.
pub fn load_private_key(dir: &Path, key: &Path) -> Result<SigningKey> {
    let Some(name) = key.to_str().and_then(|k| k.strip_prefix(ENV_KEY_PREFIX)) else {
        return read_private_key(&dir.join(key));
    };
    let text = match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => Zeroizing::new(text),
        _ => bail!(
            "--key {ENV_KEY_PREFIX}{name}: {name} is not set or empty (it must hold the private key's PEM text)"
        ),
    };
    let password = password_from_env()?;
    decrypt_private_key(&text, &password).with_context(|| format!("the private key in {name}"))
}

/// Reads and decrypts a private key file with the passphrase from `COSIGN_PASSWORD`.
pub fn read_private_key(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the private key {}", path.display()))?;
    let password = password_from_env()?;
    decrypt_private_key(&text, &password).with_context(|| format!("{}", path.display()))
}

/// ECDSA P-256 with SHA-256 over `message`, DER-encoded (what cosign and DSSE verifiers expect).
pub fn sign(key: &SigningKey, message: &[u8]) -> Vec<u8> {
    let signature: DerSignature = key.sign(message);
    signature.as_bytes().to_vec()
}

/// Whether `signature` (DER) is `key`'s over `message`.
pub fn verify(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    DerSignature::from_bytes(signature).is_ok_and(|s| key.verify(message, &s).is_ok())
}

/// The two files `--generate-key` writes for `prefix`: `PREFIX.key` and `PREFIX.pub`.
pub fn key_pair_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let with = |ext: &str| {
        let mut name = prefix.as_os_str().to_owned();
        name.push(ext);
        PathBuf::from(name)
    };
    (with(".key"), with(".pub"))
}

/// Generates a key pair and writes it as `PREFIX.key` (encrypted, mode 0600) and `PREFIX.pub`.
/// Refuses when either file exists; each file appears whole or not at all.
pub fn write_key_pair(prefix: &Path, password: &[u8]) -> Result<(PathBuf, PathBuf)> {
    let (private, public) = key_pair_paths(prefix);
    for path in [&private, &public] {
        ensure!(
            !path.exists(),
            "{} already exists: not overwriting a key (remove it, or choose another --output)",
            path.display()
        );
    }
    let key = generate();
    let private_pem = encrypt_private_key(&key, password)?;
    let public_pem = public_key_pem(key.verifying_key())?;
    create_new(&private, private_pem.as_bytes(), 0o600)?;
    if let Err(err) = create_new(&public, public_pem.as_bytes(), 0o644) {
        // A private key without its public half is of no use: leave neither.
        let _ = std::fs::remove_file(&private);
        return Err(err);
    }
    Ok((private, public))
}

/// Writes `path` whole with `mode`, failing if it exists: a temporary file with the mode from
/// its creation, then a hard link to the final name (which, unlike rename, never replaces).
fn create_new(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let tmp = crate::tools::temp_beside(path)?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| f.write_all(contents).and_then(|()| f.sync_all()));
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    linked.with_context(|| format!("writing {}", path.display()))
}

fn scrypt_key(password: &[u8], salt: &[u8], log_n: u8) -> Result<Zeroizing<[u8; 32]>> {
    let params = scrypt::Params::new(log_n, 8, 1).context("scrypt parameters")?;
    let mut out = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, salt, &params, out.as_mut()).context("scrypt")?;
    Ok(out)
}

/// XSalsa20 with the Poly1305 key taken from the first 32 bytes of its keystream, and the
/// message encrypted with the rest: NaCl's secretbox, as Go's `secretbox` and PyNaCl do it.
fn secretbox_cipher(key: &[u8; 32], nonce: &[u8; 24]) -> (XSalsa20, Poly1305) {
    let mut cipher = XSalsa20::new(key.into(), nonce.into());
    let mut mac_key = Zeroizing::new([0u8; 32]);
    cipher.apply_keystream(mac_key.as_mut());
    let mac = Poly1305::new((&*mac_key).into());
    (cipher, mac)
}

/// `tag ‖ ciphertext`, the layout of Go's `secretbox.Seal`.
fn secretbox_seal(key: &[u8; 32], nonce: &[u8; 24], plaintext: &[u8]) -> Vec<u8> {
    let (mut cipher, mac) = secretbox_cipher(key, nonce);
    let mut body = plaintext.to_vec();
    cipher.apply_keystream(&mut body);
    let tag = mac.compute_unpadded(&body);
    let mut out = tag.to_vec();
    out.extend_from_slice(&body);
    out
}

/// The plaintext, or `None` when the tag does not match (wrong key, or altered bytes).
fn secretbox_open(key: &[u8; 32], nonce: &[u8; 24], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let (tag, body) = sealed.split_at_checked(16)?;
    let (mut cipher, mac) = secretbox_cipher(key, nonce);
    if !bool::from(mac.compute_unpadded(body).as_slice().ct_eq(tag)) {
        return None;
    }
    let mut plain = Zeroizing::new(body.to_vec());
    cipher.apply_keystream(&mut plain);
    Some(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--key env://NAME` reads the variable, never a file of that name; unset, it says so.
    #[test]
    fn a_key_named_env_is_read_from_that_variable() {
        let dir = tempfile::tempdir().unwrap();
        let name = "XTASK_KEYS_TEST_NEVER_SET";
        let err = load_private_key(dir.path(), Path::new(&format!("env://{name}"))).unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("--key env://{name}: {name} is not set")),
            "{err:#}"
        );
        let err = load_private_key(dir.path(), Path::new("cosign.key")).unwrap_err();
        let file = dir.path().join("cosign.key");
        assert!(
            format!("{err:#}").contains(&format!("reading the private key {}", file.display())),
            "{err:#}"
        );
    }

    /// cosign's own test key (sigstore/cosign pkg/cosign/keys_test.go `pemsigstorekey`,
    /// Apache-2.0), passphrase `hello`: proves we decrypt what cosign encrypted.
    const COSIGN_TEST_KEY: &str = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OCwiciI6
OCwicCI6MX0sInNhbHQiOiI3T3VGd2VsbWZZNXVId2NoaURSc210anNwZ2ZlZjFG
Mk5lOGFDTjVLYVpZPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJQNHk4OGhCb3ZTa09MbXN0bFVBaGJwdDJ0K2xTNUxQSCJ9LCJj
aXBoZXJ0ZXh0IjoiMnB1QzdyZldJOWh3bnJlQ2s4aUZDRlVwQlRrSzRJNlIvbFBF
cnBDekpXUGpJWXl4eGVIL1A2VW52cFJHdVhla1NNb3JMdGhLamdoQ1JlNy82NDVH
QWtoVm1LRC92eEF0S2EvbE1abENSQ3FlekJGUFd1dzNpeFRtZ2xhb2J1ZFVSbUVs
bmNGOGlZbzBTMVl6Y1ZOMVFwY2J2c0dNcUlYRzVlbmdteGp5dCtBcXlyZTF0Q0Y0
V01tU1BlaEljNlBqd2h1Q2xHaVpJUWRvTGc9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----
";
    const COSIGN_TEST_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7z9gA/tqa9iHt/f9F3ulyVi4lwqU
LfHWfhG2mK4eyJ8LDcLstb+VVhxj3pkMjc3fNo+sSfiIY2NLR7c+DG1V4w==
-----END PUBLIC KEY-----
";

    #[test]
    fn cosigns_own_key_decrypts_to_its_public_key() {
        let key = decrypt_private_key(COSIGN_TEST_KEY, b"hello").unwrap();
        assert_eq!(
            public_key_pem(key.verifying_key()).unwrap(),
            COSIGN_TEST_PUB
        );
        assert!(matches!(
            decrypt_private_key(COSIGN_TEST_KEY, b"hello\n"),
            Err(KeyError::WrongPassword)
        ));
    }

    #[test]
    fn our_keys_round_trip_in_cosigns_layout() {
        let key = generate();
        let pem = encrypt_private_key(&key, b"").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n"));
        let (_, body) = pem_rfc7468::decode_vec(pem.as_bytes()).unwrap();
        let json = String::from_utf8(body).unwrap();
        assert!(
            json.starts_with(
                r#"{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":""#
            ),
            "{json}"
        );
        let parsed: EncryptedKey = serde_json::from_str(&json).unwrap();
        assert_eq!((parsed.kdf.salt.len(), parsed.cipher.nonce.len()), (32, 24));
        // PKCS#8 of a P-256 key with its public key: 138 bytes, plus the 16-byte tag.
        assert_eq!(parsed.ciphertext.len(), 138 + 16);
        let back = decrypt_private_key(&pem, b"").unwrap();
        assert_eq!(back.verifying_key(), key.verifying_key());
        assert!(matches!(
            decrypt_private_key(&pem, b"x"),
            Err(KeyError::WrongPassword)
        ));
    }

    #[test]
    fn altered_or_foreign_keys_are_refused_with_the_reason() {
        let key = generate();
        let pem = encrypt_private_key(&key, b"pw").unwrap();
        let (_, body) = pem_rfc7468::decode_vec(pem.as_bytes()).unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        json["kdf"]["params"]["N"] = 1024.into();
        let repem = |j: &serde_json::Value| {
            pem_rfc7468::encode_string(
                PRIVATE_KEY_LABEL,
                pem_rfc7468::LineEnding::LF,
                &serde_json::to_vec(j).unwrap(),
            )
            .unwrap()
        };
        let err = decrypt_private_key(&repem(&json), b"pw").unwrap_err();
        assert!(err.to_string().contains("N=1024"), "{err}");
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        let err = decrypt_private_key(sec1, b"pw").unwrap_err();
        assert!(err.to_string().contains("label `EC PRIVATE KEY`"), "{err}");
    }

    #[test]
    fn secretbox_matches_nacl() {
        // NaCl's tests/secretbox.c and secretbox.out (as RustCrypto's crypto_secretbox tests
        // carry them): the box is the 16-byte tag, then the ciphertext.
        let key: [u8; 32] = hex("1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389");
        let nonce: [u8; 24] = hex("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37");
        let message = hex::<131>(
            "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a\
             1ac728d45e6c61296cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057\
             e2f6556ad6b1318a024a838f21af1fde048977eb48f59ffd4924ca1c60902e52f0a089bc76897040\
             e082f937763848645e0705",
        );
        let sealed = secretbox_seal(&key, &nonce, &message);
        let expected = hex::<147>(
            "f3ffc7703f9400e52a7dfb4b3d3305d98e993b9f48681273c29650ba32fc76ce48332ea7164d96a4\
             476fb8c531a1186ac0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738\
             b48eeee314a7cc8ab932164548e526ae90224368517acfeabd6bb3732bc0e9da99832b61ca01b6de\
             56244a9e88d5f9b37973f622a43d14a6599b1f654cb45a74e355a5",
        );
        assert_eq!(sealed, expected);
        assert_eq!(
            secretbox_open(&key, &nonce, &sealed).unwrap().as_slice(),
            message
        );
        let mut altered = sealed.clone();
        altered[40] ^= 1;
        assert!(secretbox_open(&key, &nonce, &altered).is_none());
    }

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let bytes: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        bytes.try_into().unwrap()
    }

    #[test]
    fn signatures_verify_with_the_public_half_only() {
        let key = generate();
        let other = generate();
        let sig = sign(&key, b"payload");
        assert!(verify(key.verifying_key(), b"payload", &sig));
        assert!(!verify(key.verifying_key(), b"payloaD", &sig));
        assert!(!verify(other.verifying_key(), b"payload", &sig));
        assert!(!verify(key.verifying_key(), b"payload", b"not DER"));
    }

    #[test]
    fn key_pairs_are_written_once_with_a_private_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("release");
        let (private, public) = write_key_pair(&prefix, b"pw").unwrap();
        assert_eq!(private, dir.path().join("release.key"));
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let key = decrypt_private_key(&std::fs::read_to_string(&private).unwrap(), b"pw").unwrap();
        assert_eq!(&read_public_key(&public).unwrap(), key.verifying_key());
        let before = std::fs::read(&private).unwrap();
        let err = write_key_pair(&prefix, b"pw").unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(std::fs::read(&private).unwrap(), before);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "no temporary file is left");
        let err = read_public_key(&private).unwrap_err();
        assert!(err.to_string().contains("is a private key"), "{err}");
    }
}
