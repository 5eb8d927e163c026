//! Masking keys: parsing, the key ring (one active key, older ones kept for reveal), generation.
//!
//! Format, in `LOGIN_ETL_MASK_KEY` (entries separated by commas or newlines) or a key file (one entry
//! per line, `#` comments allowed):
//!
//! ```text
//! k2:<hex, at least 32 bytes>       <- the first entry is the active key: it masks new rows
//! k1:<hex>                          <- older keys: kept so their aes-siv masks stay revealable
//! k3:kms:<base64 KMS ciphertext>    <- a data key encrypted under AWS KMS (envelope encryption)
//! ```
//!
//! A bare hex key without an id is read as `k1` (the v1 format). Key material lives in memory that
//! is zeroed on drop and is never printed: errors name the key id, never the key.

use std::fmt;
use std::path::Path;

use base64::Engine;
use zeroize::Zeroizing;

/// Shortest key accepted: 256 bits.
pub(crate) const MIN_KEY_BYTES: usize = 32;
/// Length of generated keys: 512 bits, enough for AES-256-SIV's two keys without stretching.
pub(crate) const GENERATED_KEY_BYTES: usize = 64;
/// Id given to a bare key without one.
pub(crate) const DEFAULT_KEY_ID: &str = "k1";

/// Why keys can't be used. Messages say what to fix and never echo key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Neither the env var nor a key file was given.
    #[error(
        "no masking key: set LOGIN_ETL_MASK_KEY or pass --mask-key-file \
         (generate one with `login-etl keygen`)"
    )]
    Missing,
    /// A key is not hexadecimal.
    #[error("masking key `{0}` is not hexadecimal (format: <id>:<hex>, see `login-etl keygen`)")]
    NotHex(String),
    /// A key is too short to be safe.
    #[error("masking key `{id}` is {len} bytes, at least {MIN_KEY_BYTES} are required")]
    TooShort {
        /// Key id.
        id: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A key id has characters we don't allow (it ends up in every mask).
    #[error("a masking key id must be 1 to 16 letters, digits, `-` or `_`")]
    BadId,
    /// Two keys share an id.
    #[error("masking key id `{0}` appears twice")]
    DuplicateId(String),
    /// A KMS entry's ciphertext is not base64.
    #[error("masking key `{0}`: the KMS ciphertext is not base64")]
    BadKmsCiphertext(String),
    /// A KMS entry could not be decrypted.
    #[error("masking key `{id}`: KMS could not decrypt it: {message}")]
    Kms {
        /// Key id.
        id: String,
        /// What KMS said.
        message: String,
    },
    /// A key can't be used for a derived purpose (the message says why, never the key).
    #[error("masking key: {0}")]
    Invalid(String),
    /// The key file can be read by others than its owner (as ssh refuses private keys).
    #[error(
        "masking key file {path} is open to group or others (mode {mode:04o}); \
         run `chmod 600 {path}`"
    )]
    FileMode {
        /// The path as given.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file belongs to another user (not root, not the one running login-etl).
    #[error(
        "masking key file {path} is owned by uid {owner}, not by the user running login-etl \
         (uid {me}) or root; run `chown {me} {path}`"
    )]
    FileOwner {
        /// The path as given.
        path: String,
        /// The file's owner.
        owner: u32,
        /// Who runs login-etl.
        me: u32,
    },
    /// The key file could not be read.
    #[error("cannot read masking key file {path}: {source}")]
    File {
        /// The path as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Secret key bytes, zeroed when dropped and never printed.
#[derive(Clone)]
pub(crate) struct MaskKey(Zeroizing<Vec<u8>>);

impl fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MaskKey(<redacted>)")
    }
}

impl MaskKey {
    /// Wrap raw bytes (at least [`MIN_KEY_BYTES`]).
    pub(crate) fn from_bytes(id: &str, bytes: Zeroizing<Vec<u8>>) -> Result<Self, KeyError> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort {
                id: id.to_string(),
                len: bytes.len(),
            });
        }
        Ok(Self(bytes))
    }

    /// The key bytes, for the strategies.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// One entry of a key list, before KMS entries are decrypted.
#[derive(Debug)]
pub(crate) enum KeyEntry {
    /// Key material given directly.
    Plain(String, MaskKey),
    /// A data key encrypted under KMS, to be decrypted with `kms:Decrypt` at start.
    Kms(String, Vec<u8>),
}

impl KeyEntry {
    /// The key id.
    pub(crate) fn id(&self) -> &str {
        match self {
            KeyEntry::Plain(id, _) | KeyEntry::Kms(id, _) => id,
        }
    }
}

fn valid_id(id: &str) -> bool {
    (1..=16).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parse a key list (see the module docs).
pub(crate) fn parse_entries(text: &str) -> Result<Vec<KeyEntry>, KeyError> {
    let mut entries = Vec::new();
    for raw in text.split(['\n', ',']) {
        let entry = raw.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let (id, material) = entry.split_once(':').unwrap_or((DEFAULT_KEY_ID, entry));
        if !valid_id(id) {
            return Err(KeyError::BadId);
        }
        if entries.iter().any(|e: &KeyEntry| e.id() == id) {
            return Err(KeyError::DuplicateId(id.to_string()));
        }
        let entry = match material.strip_prefix("kms:") {
            Some(blob) => KeyEntry::Kms(
                id.to_string(),
                base64::engine::general_purpose::STANDARD
                    .decode(blob.trim())
                    .map_err(|_| KeyError::BadKmsCiphertext(id.to_string()))?,
            ),
            None => {
                let bytes = Zeroizing::new(
                    hex::decode(material.trim()).map_err(|_| KeyError::NotHex(id.to_string()))?,
                );
                KeyEntry::Plain(id.to_string(), MaskKey::from_bytes(id, bytes)?)
            }
        };
        entries.push(entry);
    }
    if entries.is_empty() {
        return Err(KeyError::Missing);
    }
    Ok(entries)
}

/// Refuse a key file that others can read or that belongs to someone else.
pub(crate) fn check_file(path: &Path) -> Result<(), KeyError> {
    let file_error = |source| KeyError::File {
        path: path.display().to_string(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).map_err(file_error)?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::FileMode {
                path: path.display().to_string(),
                mode,
            });
        }
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me && meta.uid() != 0 {
            return Err(KeyError::FileOwner {
                path: path.display().to_string(),
                owner: meta.uid(),
                me,
            });
        }
    }
    #[cfg(not(unix))]
    std::fs::metadata(path).map_err(file_error)?;
    Ok(())
}

/// Read a key file's text (kept in zeroed memory), after [`check_file`].
pub(crate) fn read_file(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    check_file(path)?;
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|source| KeyError::File {
            path: path.display().to_string(),
            source,
        })
}

/// The usable keys: the first one is active (it masks), all of them can reveal.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<(String, MaskKey)>,
}

impl KeyRing {
    /// From decrypted keys, active first.
    pub(crate) fn new(keys: Vec<(String, MaskKey)>) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Missing);
        }
        Ok(Self { keys })
    }

    /// Parse a key list that holds no KMS entries (tests, plain key files).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let keys = parse_entries(text)?
            .into_iter()
            .map(|entry| match entry {
                KeyEntry::Plain(id, key) => Ok((id, key)),
                KeyEntry::Kms(id, _) => Err(KeyError::Kms {
                    id,
                    message: "KMS-encrypted keys need the KMS client (use `login-etl run`)".into(),
                }),
            })
            .collect::<Result<_, _>>()?;
        Self::new(keys)
    }

    /// The key new masks are made with.
    pub(crate) fn active(&self) -> (&str, &MaskKey) {
        let (id, key) = &self.keys[0];
        (id, key)
    }

    /// The same keys with `id` made active (first), e.g. the target of a re-keying.
    pub fn with_active(&self, id: &str) -> Result<KeyRing, KeyError> {
        let position = self
            .keys
            .iter()
            .position(|(key_id, _)| key_id == id)
            .ok_or_else(|| KeyError::Invalid(format!("no key `{id}` in the key ring")))?;
        let mut keys = self.keys.clone();
        let chosen = keys.remove(position);
        keys.insert(0, chosen);
        Self::new(keys)
    }

    /// The id of the key new masks are made with.
    pub fn active_id(&self) -> &str {
        &self.keys[0].0
    }

    /// Every key, active first.
    pub(crate) fn all(&self) -> impl Iterator<Item = (&str, &MaskKey)> {
        self.keys.iter().map(|(id, key)| (id.as_str(), key))
    }
}

/// A fresh random key entry `<id>:<hex>` in the format the tool reads.
pub fn generate(id: &str) -> Result<Zeroizing<String>, KeyError> {
    if !valid_id(id) {
        return Err(KeyError::BadId);
    }
    let mut bytes = Zeroizing::new([0u8; GENERATED_KEY_BYTES]);
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut bytes[..]);
    Ok(Zeroizing::new(format!("{id}:{}", hex::encode(&bytes[..]))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_the_active_key_comments_and_bare_v1_keys() {
        let ring = KeyRing::parse(&format!(
            "# comment\nk2:{}\n\nk1:{}\n",
            "22".repeat(64),
            "11".repeat(32)
        ))
        .unwrap();
        assert_eq!(ring.active().0, "k2");
        assert_eq!(
            ring.all().map(|(id, _)| id).collect::<Vec<_>>(),
            ["k2", "k1"]
        );
        let bare = KeyRing::parse(&"ab".repeat(32)).unwrap();
        assert_eq!(bare.active().0, DEFAULT_KEY_ID);
        let commas =
            KeyRing::parse(&format!("a:{},b:{}", "11".repeat(32), "22".repeat(32))).unwrap();
        assert_eq!(commas.all().count(), 2);
    }

    #[test]
    fn bad_entries_are_refused_without_echoing_key_material() {
        let secret = "zz".repeat(40);
        let err = KeyRing::parse(&format!("k1:{secret}")).unwrap_err();
        assert!(matches!(err, KeyError::NotHex(_)));
        assert!(!err.to_string().contains(&secret));
        assert!(matches!(
            KeyRing::parse("k1:abcd"),
            Err(KeyError::TooShort { len: 2, .. })
        ));
        assert!(matches!(
            KeyRing::parse(&format!("bad id!:{}", "11".repeat(32))),
            Err(KeyError::BadId)
        ));
        assert!(matches!(
            KeyRing::parse(&format!("k1:{0},k1:{0}", "11".repeat(32))),
            Err(KeyError::DuplicateId(_))
        ));
        assert!(matches!(
            KeyRing::parse("# only a comment"),
            Err(KeyError::Missing)
        ));
        assert!(matches!(
            parse_entries("k9:kms:%%%"),
            Err(KeyError::BadKmsCiphertext(_))
        ));
        assert!(matches!(
            parse_entries("k9:kms:AQID").unwrap()[0],
            KeyEntry::Kms(_, _)
        ));
    }

    #[test]
    fn generated_keys_parse_and_differ() {
        let a = generate("k7").unwrap();
        let ring = KeyRing::parse(&a).unwrap();
        assert_eq!(ring.active().0, "k7");
        assert_eq!(ring.active().1.bytes().len(), GENERATED_KEY_BYTES);
        assert_ne!(*a, *generate("k7").unwrap());
        assert_eq!(format!("{:?}", ring.active().1), "MaskKey(<redacted>)");
    }
}
