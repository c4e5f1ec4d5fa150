//! One item's bytes sealed to every recipient as an age v1 file, opened with an identity, and
//! re-sealed to new recipients (rekey); a batch of items sealed on every core.

use std::fmt;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::digest::sha256_hex;

use super::{EncryptionError, Identities, ItemHashes, Recipients};

/// One item encrypted: the bytes of its `.age` file and the hashes its manifest entry records.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub hashes: ItemHashes,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("ciphertext_bytes", &self.ciphertext.len())
            .field("hashes", &self.hashes)
            .finish()
    }
}

/// Encrypts `plaintext` to every recipient: a fresh file key, wrapped once per recipient (an
/// X25519 exchange each), as `age -r A -r B` does.
pub fn encrypt(plaintext: &[u8], recipients: &Recipients) -> Result<Sealed, EncryptionError> {
    let failed = |reason: String| EncryptionError::Encrypt { reason };
    let encryptor = age::Encryptor::with_recipients(recipients.as_age())
        .map_err(|err| failed(err.to_string()))?;
    // The header is ~100 bytes per recipient; the payload grows by 16 bytes per 64 KiB chunk.
    let mut ciphertext =
        Vec::with_capacity(plaintext.len() + plaintext.len() / 4096 + 64 + 128 * recipients.len());
    let mut writer = encryptor
        .wrap_output(&mut ciphertext)
        .map_err(|err| failed(err.to_string()))?;
    writer
        .write_all(plaintext)
        .and_then(|()| writer.finish().map(drop))
        .map_err(|err| failed(err.to_string()))?;
    Ok(Sealed {
        hashes: ItemHashes {
            sha256: sha256_hex(&ciphertext),
            plaintext_sha256: sha256_hex(plaintext),
        },
        ciphertext,
    })
}

/// [`encrypt`] for each of `plaintexts`, results in the same order, on as many threads as the
/// machine has cores. Each item gets its own file key, as age requires (a file key is never
/// shared between files); the threads only spread the X25519 work, which dominates for small
/// items. Memory is what the caller holds plus the ciphertexts: pass a bounded batch (a page
/// of objects), not a whole backup.
pub fn encrypt_batch<P: AsRef<[u8]> + Sync>(
    plaintexts: &[P],
    recipients: &Recipients,
) -> Result<Vec<Sealed>, EncryptionError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(plaintexts.len());
    if threads <= 1 {
        return plaintexts
            .iter()
            .map(|p| encrypt(p.as_ref(), recipients))
            .collect();
    }
    // Each thread takes the next item not yet taken, so large and small items even out.
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, Result<Sealed, EncryptionError>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut sealed = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(plaintext) = plaintexts.get(index) else {
                            return sealed;
                        };
                        let result = encrypt(plaintext.as_ref(), recipients);
                        let failed = result.is_err();
                        sealed.push((index, result));
                        if failed {
                            // Stop the others early: the batch fails as a whole.
                            next.store(plaintexts.len(), Ordering::Relaxed);
                            return sealed;
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| match worker.join() {
                Ok(sealed) => sealed,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    done.sort_unstable_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, result)| result).collect()
}

/// Decrypts an item encrypted to `recipients` (the public keys its manifest records, named in
/// the error when no identity fits). A changed byte anywhere fails: age authenticates the
/// header and every chunk of the payload.
pub fn decrypt(
    ciphertext: &[u8],
    identities: &Identities,
    recipients: &[String],
) -> Result<Vec<u8>, EncryptionError> {
    // The manifest's list is only a record: the file itself decides, so every identity given
    // is tried, whether the list names it or not.
    if identities.is_empty() {
        return Err(EncryptionError::NoIdentity {
            recipients: recipients.to_vec(),
        });
    }
    if !ciphertext.starts_with(b"age-encryption.org/") {
        return Err(EncryptionError::NotAge);
    }
    let decryptor = age::Decryptor::new_buffered(ciphertext).map_err(header_error)?;
    if decryptor.is_scrypt() {
        return Err(EncryptionError::Passphrase);
    }
    let mut reader = decryptor
        .decrypt(identities.as_age())
        .map_err(|err| match err {
            age::DecryptError::NoMatchingKeys if identities.opens(recipients) => {
                // An identity for a listed recipient found no stanza it opens: the stanza
                // was changed, or the list does not belong to this file.
                damaged(format!(
                    "no recipient stanza opens with the identity for {}, which it is recorded \
                     to be encrypted to",
                    identities.public_keys().join(", ")
                ))
            }
            age::DecryptError::NoMatchingKeys => EncryptionError::NoMatchingIdentity {
                recipients: recipients.to_vec(),
                identities: identities.public_keys(),
            },
            other => header_error(other),
        })?;
    let mut plaintext = Vec::with_capacity(ciphertext.len());
    reader.read_to_end(&mut plaintext).map_err(|err| {
        if err.kind() == std::io::ErrorKind::UnexpectedEof {
            damaged("the file is cut short".into())
        } else {
            damaged("the payload fails authentication".into())
        }
    })?;
    Ok(plaintext)
}

/// Re-encrypts one item to `new` recipients (key rotation): decrypts it with `identities`,
/// checks the plaintext against the hash its manifest records, and encrypts it again with a
/// fresh file key. When one of `identities` is also a new recipient, the new file is decrypted
/// back and compared too.
pub fn rekey(
    ciphertext: &[u8],
    identities: &Identities,
    old: &[String],
    expected_plaintext_sha256: &str,
    new: &Recipients,
) -> Result<Sealed, EncryptionError> {
    let plaintext = decrypt(ciphertext, identities, old)?;
    check_plaintext(&plaintext, expected_plaintext_sha256)?;
    let sealed = encrypt(&plaintext, new)?;
    if identities.opens(&new.keys()) {
        let back = decrypt(&sealed.ciphertext, identities, &new.keys())?;
        check_plaintext(&back, expected_plaintext_sha256)?;
    }
    Ok(sealed)
}

/// Whether `plaintext` is what the manifest says was encrypted.
fn check_plaintext(plaintext: &[u8], expected: &str) -> Result<(), EncryptionError> {
    let actual = sha256_hex(plaintext);
    if actual == expected {
        Ok(())
    } else {
        Err(EncryptionError::PlaintextMismatch {
            expected: expected.to_string(),
            actual,
        })
    }
}

fn damaged(reason: String) -> EncryptionError {
    EncryptionError::Damaged { reason }
}

/// The error for a header that cannot be read or does not authenticate.
fn header_error(err: age::DecryptError) -> EncryptionError {
    match err {
        age::DecryptError::UnknownFormat => {
            damaged("it is in an age format version this tool does not know".into())
        }
        age::DecryptError::InvalidHeader => damaged("its header cannot be read".into()),
        age::DecryptError::InvalidMac => damaged("its header fails authentication".into()),
        age::DecryptError::Io(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            damaged("the file is cut short".into())
        }
        other => damaged(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;
    use age::x25519;

    fn keys() -> (x25519::Identity, Recipients) {
        let identity = x25519::Identity::generate();
        let recipients = Recipients::from_keys_and_files(&[identity.to_public().to_string()], &[])
            .unwrap()
            .unwrap();
        (identity, recipients)
    }

    const YAML: &[u8] = b"apiVersion: datarobot.com/v1\nkind: LRS\nspec:\n  password: hunter2\n";

    #[test]
    fn an_item_round_trips_and_its_hashes_are_of_the_file_and_of_the_yaml() {
        let (alice, to_alice) = keys();
        let (bob, to_bob) = keys();
        let both = Recipients::from_keys_and_files(&[to_alice.keys(), to_bob.keys()].concat(), &[])
            .unwrap()
            .unwrap();
        let sealed = encrypt(YAML, &both).unwrap();
        assert!(
            sealed
                .ciphertext
                .starts_with(b"age-encryption.org/v1\n-> X25519 ")
        );
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(sealed.hashes.sha256, sha256_hex(&sealed.ciphertext));
        assert_eq!(sealed.hashes.plaintext_sha256, sha256_hex(YAML));
        for identity in [alice, bob] {
            let opened = decrypt(
                &sealed.ciphertext,
                &Identities::from_keys(&[identity]),
                &both.keys(),
            )
            .unwrap();
            assert_eq!(opened, YAML);
        }
        // A fresh file key each time: the same YAML never gives the same file.
        assert_ne!(encrypt(YAML, &both).unwrap().ciphertext, sealed.ciphertext);
    }

    #[test]
    fn an_item_of_300_kb_round_trips() {
        let (alice, recipients) = keys();
        // Several 64 KiB chunks of age's payload, the last one partial.
        let big: Vec<u8> = (0..300 * 1024).map(|i| b"abcdefghij\n"[i % 11]).collect();
        let sealed = encrypt(&big, &recipients).unwrap();
        let opened = decrypt(
            &sealed.ciphertext,
            &Identities::from_keys(&[alice]),
            &recipients.keys(),
        )
        .unwrap();
        assert_eq!(opened, big);
    }

    #[test]
    fn a_wrong_identity_is_refused_naming_the_recipients() {
        let (_, recipients) = keys();
        let (mallory, _) = keys();
        let sealed = encrypt(YAML, &recipients).unwrap();
        let identities = Identities::from_keys(std::slice::from_ref(&mallory));
        let err = decrypt(&sealed.ciphertext, &identities, &recipients.keys()).unwrap_err();
        match &err {
            EncryptionError::NoMatchingIdentity {
                recipients: named,
                identities,
            } => {
                assert_eq!(*named, recipients.keys());
                assert_eq!(*identities, [mallory.to_public().to_string()]);
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains(&recipients.keys()[0]), "{err}");
        let err = decrypt(
            &sealed.ciphertext,
            &Identities::default(),
            &recipients.keys(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, EncryptionError::NoIdentity { recipients: named } if *named == recipients.keys()),
            "{err:?}"
        );
    }

    #[test]
    fn a_changed_byte_anywhere_is_refused_as_damage() {
        let (alice, recipients) = keys();
        let identities = Identities::from_keys(&[alice]);
        let sealed = encrypt(YAML, &recipients).unwrap();
        let header_end = sealed
            .ciphertext
            .windows(4)
            .position(|w| w == b"\n---")
            .unwrap();
        // The body of the X25519 stanza: the line after `-> X25519 <share>` (age adds a
        // random "grease" stanza too, which no identity reads).
        let x25519 = sealed
            .ciphertext
            .windows(10)
            .position(|w| w == b"-> X25519 ")
            .unwrap();
        let stanza_body = x25519
            + sealed.ciphertext[x25519..]
                .iter()
                .position(|&b| b == b'\n')
                .unwrap()
            + 2;
        for (at, reason) in [
            (stanza_body, "no recipient stanza opens with the identity"),
            (header_end + 6, "its header fails authentication"),
            (
                sealed.ciphertext.len() - 1,
                "the payload fails authentication",
            ),
            (
                sealed.ciphertext.len() - 20,
                "the payload fails authentication",
            ),
        ] {
            let mut tampered = sealed.ciphertext.clone();
            // Keep base64 characters base64, so the change is in meaning, not just syntax.
            tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
            let err = decrypt(&tampered, &identities, &recipients.keys()).unwrap_err();
            assert!(
                matches!(err, EncryptionError::Damaged { .. }) && err.to_string().contains(reason),
                "byte {at}: {err:?}"
            );
        }
        let err = decrypt(
            &sealed.ciphertext[..sealed.ciphertext.len() - 10],
            &identities,
            &recipients.keys(),
        )
        .unwrap_err();
        assert!(matches!(err, EncryptionError::Damaged { .. }), "{err:?}");
        assert!(matches!(
            decrypt(YAML, &identities, &recipients.keys()).unwrap_err(),
            EncryptionError::NotAge
        ));
    }

    #[test]
    fn rekey_re_encrypts_to_the_new_recipients_only() {
        let (alice, to_alice) = keys();
        let (bob, to_bob) = keys();
        let sealed = encrypt(YAML, &to_alice).unwrap();
        let alice = Identities::from_keys(&[alice]);
        let bob = Identities::from_keys(&[bob]);
        let rekeyed = rekey(
            &sealed.ciphertext,
            &alice,
            &to_alice.keys(),
            &sealed.hashes.plaintext_sha256,
            &to_bob,
        )
        .unwrap();
        assert_eq!(
            rekeyed.hashes.plaintext_sha256,
            sealed.hashes.plaintext_sha256
        );
        assert_eq!(rekeyed.hashes.sha256, sha256_hex(&rekeyed.ciphertext));
        assert_eq!(
            decrypt(&rekeyed.ciphertext, &bob, &to_bob.keys()).unwrap(),
            YAML
        );
        assert!(matches!(
            decrypt(&rekeyed.ciphertext, &alice, &to_bob.keys()).unwrap_err(),
            EncryptionError::NoMatchingIdentity { .. }
        ));
        // What the manifest records must be what is inside.
        let err = rekey(
            &sealed.ciphertext,
            &alice,
            &to_alice.keys(),
            &sha256_hex(b"something else"),
            &to_bob,
        )
        .unwrap_err();
        assert!(
            matches!(err, EncryptionError::PlaintextMismatch { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_batch_is_sealed_in_order_each_with_its_own_key() {
        let (alice, recipients) = keys();
        let identities = Identities::from_keys(&[alice]);
        let items: Vec<Vec<u8>> = (0..40)
            .map(|i| format!("item {i}\n").repeat(i * 50).into_bytes())
            .collect();
        let sealed = encrypt_batch(&items, &recipients).unwrap();
        assert_eq!(sealed.len(), items.len());
        for (item, sealed) in items.iter().zip(&sealed) {
            assert_eq!(
                decrypt(&sealed.ciphertext, &identities, &recipients.keys()).unwrap(),
                *item
            );
        }
        let headers: std::collections::HashSet<_> =
            sealed.iter().map(|s| s.ciphertext[..80].to_vec()).collect();
        assert_eq!(headers.len(), items.len());
        assert!(
            encrypt_batch::<Vec<u8>>(&[], &recipients)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn no_output_shows_a_secret_key() {
        let (alice, recipients) = keys();
        let secret = alice.to_string().expose_secret().to_string();
        let identities = Identities::from_keys(&[alice]);
        let sealed = encrypt(YAML, &recipients).unwrap();
        let (mallory, _) = keys();
        let mallory_secret = mallory.to_string().expose_secret().to_string();
        let mallory = Identities::from_keys(&[mallory]);
        let mut tampered = sealed.ciphertext.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let errors = [
            decrypt(&sealed.ciphertext, &mallory, &recipients.keys()).unwrap_err(),
            decrypt(&tampered, &identities, &recipients.keys()).unwrap_err(),
            decrypt(
                &sealed.ciphertext,
                &Identities::default(),
                &recipients.keys(),
            )
            .unwrap_err(),
            rekey(
                &sealed.ciphertext,
                &identities,
                &recipients.keys(),
                "0",
                &recipients,
            )
            .unwrap_err(),
        ];
        let mut shown = vec![
            format!("{identities:?}"),
            format!("{mallory:#?}"),
            format!("{recipients:?}"),
            format!("{sealed:?}"),
        ];
        for err in &errors {
            shown.push(err.to_string());
            shown.push(format!("{err:?}"));
            shown.extend(err.hint());
        }
        for text in shown {
            for secret in [&secret, &mallory_secret] {
                assert!(!text.contains(secret.as_str()), "{text}");
            }
            assert!(!text.contains("AGE-SECRET-KEY-"), "{text}");
        }
    }
}
