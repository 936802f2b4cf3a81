//! Content hashes: blake3 digests as a newtype with a hex `Display`.
//!
//! Every hash nbmemo computes (normalized code, artifacts, cell keys) is a [`ContentHash`], so
//! one type formats, compares and orders them the same way everywhere.

use std::fmt;

/// A 32-byte blake3 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// Hashes `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        ContentHash(*blake3::hash(bytes).as_bytes())
    }

    /// The first `len` hex digits, for display.
    pub fn short(&self, len: usize) -> String {
        let mut hex = self.to_string();
        hex.truncate(len);
        hex
    }
}

impl From<blake3::Hash> for ContentHash {
    fn from(hash: blake3::Hash) -> Self {
        ContentHash(*hash.as_bytes())
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.short(12))
    }
}

impl std::str::FromStr for ContentHash {
    type Err = String;

    /// Parses 64 hex digits.
    fn from_str(hex: &str) -> Result<Self, Self::Err> {
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(format!("expected 64 hex digits, found `{hex}`"));
        }
        let mut bytes = [0u8; 32];
        for (idx, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[idx * 2..idx * 2 + 2], 16)
                .map_err(|err| err.to_string())?;
        }
        Ok(ContentHash(bytes))
    }
}

/// Hashes serialize as their hex text (in the store's records and in reports).
impl serde::Serialize for ContentHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for ContentHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(deserializer)?;
        hex.parse().map_err(serde::de::Error::custom)
    }
}
