//! Cell keys: blake3 over a canonical, length-prefixed encoding of everything a cell's result
//! depends on (cache-format/v3.md, "Cell key").
//!
//! **Invariant:** a key is made of values, not of history: the format version, the environment
//! fingerprint, the normalized code, and the artifact hashes of the values read. An upstream
//! cell that re-ran and produced the same value leaves its readers' keys unchanged (early
//! cutoff).

use crate::hash::ContentHash;

pub use crate::store::FORMAT_VERSION;

/// The key of a cell: `inputs` are `(name, artifact hash)` pairs of the values it reads, `files`
/// `(path, content hash)` pairs of the files it read (any order; both are sorted here). With no
/// files, this is the cell's *first-step* key, under which the store keeps the lists of files
/// its runs read (cache-format "Cell key").
pub fn cell_key(
    env: &ContentHash,
    code: &ContentHash,
    inputs: &[(&str, ContentHash)],
    files: &[(&str, ContentHash)],
) -> ContentHash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&FORMAT_VERSION.to_le_bytes());
    hasher.update(&env.0);
    hasher.update(&code.0);
    for pairs in [inputs, files] {
        let mut sorted: Vec<&(&str, ContentHash)> = pairs.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        hasher.update(&(sorted.len() as u64).to_le_bytes());
        for (name, hash) in sorted {
            hasher.update(&(name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update(&hash.0);
        }
    }
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
        let a = cell_key(&h(1), &h(2), &[("x", h(3)), ("y", h(4))], &[]);
        let b = cell_key(&h(1), &h(2), &[("y", h(4)), ("x", h(3))], &[]);
        assert_eq!(a, b);
    }

    #[test]
    fn every_input_changes_the_key() {
        let base = cell_key(&h(1), &h(2), &[("x", h(3))], &[]);
        assert_ne!(
            base,
            cell_key(&h(9), &h(2), &[("x", h(3))], &[]),
            "environment"
        );
        assert_ne!(base, cell_key(&h(1), &h(9), &[("x", h(3))], &[]), "code");
        assert_ne!(base, cell_key(&h(1), &h(2), &[("x", h(9))], &[]), "value");
        assert_ne!(base, cell_key(&h(1), &h(2), &[("z", h(3))], &[]), "name");
        assert_ne!(base, cell_key(&h(1), &h(2), &[], &[]), "one input fewer");
        assert_ne!(
            base,
            cell_key(&h(1), &h(2), &[("x", h(3))], &[("x", h(3))]),
            "a file"
        );
        let file = cell_key(&h(1), &h(2), &[("x", h(3))], &[("data.csv", h(4))]);
        assert_ne!(
            file,
            cell_key(&h(1), &h(2), &[("x", h(3))], &[("data.csv", h(5))]),
            "file content"
        );
    }

    #[test]
    fn names_are_length_prefixed() {
        // Without prefixes, ("ab", h) + ("c", h) and ("a", h) + ("bc", h) could collide.
        let a = cell_key(&h(1), &h(2), &[("ab", h(3)), ("c", h(3))], &[]);
        let b = cell_key(&h(1), &h(2), &[("a", h(3)), ("bc", h(3))], &[]);
        assert_ne!(a, b);
    }

    #[test]
    fn golden_key_of_a_fixed_fixture() {
        // If this changes, bump FORMAT_VERSION and add a cache-format/CHANGELOG.md entry.
        let key = cell_key(&h(1), &h(2), &[("x", h(3))], &[]);
        insta::assert_snapshot!(key.to_string(), @"79a8baddf5fea1e9511c28e3c58011dc6afc9cc5e9172c595fa6791404e4f78a");
    }
}
