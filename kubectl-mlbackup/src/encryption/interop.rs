//! Interop with the `age` command-line tool (Debian's `age` package, the Go reference
//! implementation, which `.ci/run` installs): it opens what this layer writes, this layer opens
//! what it writes, and the key files `age-keygen` writes are read. Without `age` on the PATH
//! the tests skip with the reason printed, except under CI (`CI` set), where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{Identities, Recipients, decrypt, encrypt, rekey};

/// Whether the `age` tools can run; `false` (after printing why) when they are missing outside
/// CI. Under CI a missing tool fails the test: the interop must really be checked there.
fn age_tools_present(test: &str) -> bool {
    let why = format!("Debian package `age`, needed by {test}; .ci/run installs it");
    ["age", "age-keygen"]
        .into_iter()
        .all(|tool| mlbackup_testkit::tools::optional(tool, &why).is_some())
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("the age tool runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A new identity file from `age-keygen -o`, and its public key as `age-keygen -y` prints it.
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    run(Command::new("age-keygen").arg("-o").arg(&path));
    let public = run(Command::new("age-keygen").arg("-y").arg(&path)).stdout;
    let public = String::from_utf8(public).unwrap().trim().to_string();
    assert!(public.starts_with("age1"), "{public}");
    (path, public)
}

fn recipients(keys: &[&str]) -> Recipients {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    Recipients::from_keys_and_files(&keys, &[])
        .unwrap()
        .unwrap()
}

const YAML: &[u8] = b"apiVersion: datarobot.com/v1\nkind: LongRunningService\nmetadata:\n  \
    name: scorer\n  namespace: ml\nspec:\n  env:\n  - name: DB_PASSWORD\n    value: s3cr3t\n";

#[test]
fn age_keygen_identity_files_are_read_without_warning() {
    if !age_tools_present("age_keygen_identity_files_are_read_without_warning") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (alice, alice_public) = keygen(dir.path(), "alice.txt");
    let (bob, bob_public) = keygen(dir.path(), "bob.txt");
    let (identities, warnings) = Identities::read_files(&[alice, bob]).unwrap();
    assert_eq!(identities.public_keys(), [alice_public, bob_public]);
    // age-keygen -o makes the file readable by its owner only.
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn age_decrypts_what_this_layer_encrypts() {
    if !age_tools_present("age_decrypts_what_this_layer_encrypts") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (alice, alice_public) = keygen(dir.path(), "alice.txt");
    let (bob, bob_public) = keygen(dir.path(), "bob.txt");
    let sealed = encrypt(YAML, &recipients(&[&alice_public, &bob_public])).unwrap();
    let file = dir.path().join("scorer.yaml.age");
    std::fs::write(&file, &sealed.ciphertext).unwrap();
    for key in [&alice, &bob] {
        let out = run(Command::new("age").arg("-d").arg("-i").arg(key).arg(&file)).stdout;
        assert_eq!(out, YAML);
    }
    let (carol, _) = keygen(dir.path(), "carol.txt");
    let refused = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&carol)
        .arg(&file)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "a third key must not open it");

    // A rekeyed file opens with the new key only.
    let (identities, _) = Identities::read_files(std::slice::from_ref(&alice)).unwrap();
    let carol_public = Identities::read_files(std::slice::from_ref(&carol))
        .unwrap()
        .0
        .public_keys();
    let rekeyed = rekey(
        &sealed.ciphertext,
        &identities,
        &[alice_public, bob_public],
        &sealed.hashes.plaintext_sha256,
        &recipients(&[&carol_public[0]]),
    )
    .unwrap();
    std::fs::write(&file, &rekeyed.ciphertext).unwrap();
    let out = run(Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&carol)
        .arg(&file))
    .stdout;
    assert_eq!(out, YAML);
    let refused = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&alice)
        .arg(&file)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "the old key must not open it");
}

#[test]
fn this_layer_decrypts_what_age_encrypts() {
    if !age_tools_present("this_layer_decrypts_what_age_encrypts") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (alice, alice_public) = keygen(dir.path(), "alice.txt");
    let (bob, bob_public) = keygen(dir.path(), "bob.txt");
    let plain = dir.path().join("scorer.yaml");
    std::fs::write(&plain, YAML).unwrap();

    // age -r, one recipient.
    let one = dir.path().join("one.age");
    run(Command::new("age")
        .arg("-r")
        .arg(&alice_public)
        .arg("-o")
        .arg(&one)
        .arg(&plain));
    let (identities, _) = Identities::read_files(std::slice::from_ref(&alice)).unwrap();
    let ciphertext = std::fs::read(&one).unwrap();
    assert_eq!(
        decrypt(
            &ciphertext,
            &identities,
            std::slice::from_ref(&alice_public)
        )
        .unwrap(),
        YAML
    );

    // age -R with a recipients file as a team keeps it; this layer reads the same file.
    let team = dir.path().join("recipients.txt");
    std::fs::write(
        &team,
        format!("# backup readers\n\n# alice (on-call)\n{alice_public}\n# bob\n{bob_public}\n"),
    )
    .unwrap();
    let both = dir.path().join("both.age");
    run(Command::new("age")
        .arg("-R")
        .arg(&team)
        .arg("-o")
        .arg(&both)
        .arg(&plain));
    let listed = Recipients::from_keys_and_files(&[], std::slice::from_ref(&team))
        .unwrap()
        .unwrap()
        .keys();
    assert_eq!(listed, [alice_public.clone(), bob_public.clone()]);
    let ciphertext = std::fs::read(&both).unwrap();
    let (bob_identities, _) = Identities::read_files(std::slice::from_ref(&bob)).unwrap();
    assert_eq!(
        decrypt(&ciphertext, &bob_identities, &listed).unwrap(),
        YAML
    );

    // A key age did not encrypt to is refused, naming the recipients the manifest lists.
    let (carol, _) = keygen(dir.path(), "carol.txt");
    let (carol, _) = Identities::read_files(std::slice::from_ref(&carol)).unwrap();
    let err = decrypt(&ciphertext, &carol, &listed).unwrap_err();
    assert!(
        err.to_string().contains(&alice_public) && err.to_string().contains(&bob_public),
        "{err}"
    );
}
