//! What `manifest.json` records about encryption: the scheme and recipients of the backup, and
//! per item the sha256 of the file (the ciphertext, which `verify` checks without a key) and
//! of the YAML inside it (which `diff` and `verify --identity` compare).

use serde::{Deserialize, Serialize};

/// How the item files are encrypted.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// age v1 (<https://age-encryption.org/v1>), binary form, X25519 recipients: what
    /// `age -r` writes and `age -d` reads.
    #[serde(rename = "age-encryption.org/v1")]
    AgeV1,
}

/// The manifest's `encryption` object: `{"scheme": "age-encryption.org/v1", "recipients":
/// ["age1..."]}`. Absent from the manifest of an unencrypted backup.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionRecord {
    pub scheme: Scheme,
    /// The public keys every item is encrypted to, `age1...`, in the order given.
    pub recipients: Vec<String>,
}

/// The two hashes of one encrypted item, hex sha256, as its manifest entry carries them
/// (`sha256` is the entry's existing field: the hash of the file's bytes, here the ciphertext).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ItemHashes {
    /// Of the file: the age ciphertext.
    pub sha256: String,
    /// Of the YAML the file decrypts to.
    pub plaintext_sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_manifest_names_are_camel_case() {
        let record = EncryptionRecord {
            scheme: Scheme::AgeV1,
            recipients: vec!["age1abc".into()],
        };
        let value = serde_json::to_value(&record).unwrap();
        assert_eq!(
            value,
            json!({"scheme": "age-encryption.org/v1", "recipients": ["age1abc"]})
        );
        assert_eq!(
            serde_json::from_value::<EncryptionRecord>(value).unwrap(),
            record
        );
        let hashes = ItemHashes {
            sha256: "aa".into(),
            plaintext_sha256: "bb".into(),
        };
        assert_eq!(
            serde_json::to_value(&hashes).unwrap(),
            json!({"sha256": "aa", "plaintextSha256": "bb"})
        );
    }

    #[test]
    fn an_unknown_scheme_is_refused_by_name() {
        let err = serde_json::from_value::<EncryptionRecord>(
            json!({"scheme": "age-encryption.org/v2", "recipients": []}),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown variant `age-encryption.org/v2`"),
            "{err}"
        );
    }
}
