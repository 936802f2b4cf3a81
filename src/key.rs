//! Cell keys: blake3 over a canonical, length-prefixed encoding of everything a cell's result
//! depends on (cache-format/v1.md, "Cell key").
//!
//! **Invariant:** a key is made of values, not of history: the format version, the environment
//! fingerprint, the normalized code, and the artifact hashes of the values read. An upstream
//! cell that re-ran and produced the same value leaves its readers' keys unchanged (early
//! cutoff).

use crate::hash::ContentHash;

pub use crate::store::FORMAT_VERSION;

/// The key of a cell: `inputs` are `(name, artifact hash)` pairs of the values it reads (any
/// order; they are sorted here).
pub fn cell_key(
    env: &ContentHash,
    code: &ContentHash,
    inputs: &[(&str, ContentHash)],
) -> ContentHash {
    let mut sorted: Vec<&(&str, ContentHash)> = inputs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut hasher = blake3::Hasher::new();
    hasher.update(&FORMAT_VERSION.to_le_bytes());
    hasher.update(&env.0);
    hasher.update(&code.0);
    hasher.update(&(sorted.len() as u64).to_le_bytes());
    for (name, artifact) in sorted {
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(&artifact.0);
    }
    // Files read: reserved, empty until file tracking lands.
    hasher.update(&0u64.to_le_bytes());
    hasher.finalize().into()
}

/// The stand-in artifact hash of a value that could not be pickled: it is determined by the
/// key of the cell that produced it (same inputs and code, same value) and the name.
pub fn resident_hash(producer_key: &ContentHash, name: &str) -> ContentHash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"nbmemo resident value\n");
    hasher.update(&producer_key.0);
    hasher.update(name.as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(byte: u8) -> ContentHash {
        ContentHash([byte; 32])
    }

    #[test]
    fn input_order_does_not_matter() {
        let a = cell_key(&h(1), &h(2), &[("x", h(3)), ("y", h(4))]);
        let b = cell_key(&h(1), &h(2), &[("y", h(4)), ("x", h(3))]);
        assert_eq!(a, b);
    }

    #[test]
    fn every_input_changes_the_key() {
        let base = cell_key(&h(1), &h(2), &[("x", h(3))]);
        assert_ne!(base, cell_key(&h(9), &h(2), &[("x", h(3))]), "environment");
        assert_ne!(base, cell_key(&h(1), &h(9), &[("x", h(3))]), "code");
        assert_ne!(base, cell_key(&h(1), &h(2), &[("x", h(9))]), "value");
        assert_ne!(base, cell_key(&h(1), &h(2), &[("z", h(3))]), "name");
        assert_ne!(base, cell_key(&h(1), &h(2), &[]), "one input fewer");
    }

    #[test]
    fn names_are_length_prefixed() {
        // Without prefixes, ("ab", h) + ("c", h) and ("a", h) + ("bc", h) could collide.
        let a = cell_key(&h(1), &h(2), &[("ab", h(3)), ("c", h(3))]);
        let b = cell_key(&h(1), &h(2), &[("a", h(3)), ("bc", h(3))]);
        assert_ne!(a, b);
    }

    #[test]
    fn golden_key_of_a_fixed_fixture() {
        // If this changes, bump FORMAT_VERSION and add a cache-format/CHANGELOG.md entry.
        let key = cell_key(&h(1), &h(2), &[("x", h(3))]);
        insta::assert_snapshot!(key.to_string(), @"62dd4d136a15ba5215eff0e8b930620d520b744385e9d2ece0ca12435bb43d23");
    }
}
