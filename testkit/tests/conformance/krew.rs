//! Krew packaging, end to end: `krew/package.sh --debug` makes the archive and renders the
//! manifest; the manifest passes Krew's validation rules (those of `krew install` and of the
//! krew-index checks); the archive is installed the way `kubectl krew install --manifest
//! --archive` does it (sha256 check, extract, the `files` moves into `store/<name>/<version>`,
//! a link `bin/kubectl-mlbackup`); then the real kubectl lists the plugin, runs it against the
//! sandbox, completes it through `kubectl_complete-mlbackup`, and the plugin finds its helper
//! in the installed layout. The static helper of the archive runs in an empty root, and so does
//! the image's static plugin, in the root its Dockerfile makes, as in a pod.
//!
//! The test packages dev-profile builds (`--debug`): the release profile of the plugin and the
//! LTO size profile of the helper take minutes on CI's two cores and add nothing the layout,
//! the manifest or the install could show; `krew/package.sh` without `--debug` is the release
//! path, run when cutting a release (its figures are in the README).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use mlbackup_testkit::sandbox::SandboxProcess;
use serde_yaml::Value;
use sha2::{Digest, Sha256};

use mlbackup_testkit::tools::kubectl;

const PLUGIN: &str = "mlbackup";
const API_VERSION: &str = "krew.googlecontainertools.github.com/v1alpha2";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds the tests package")
        .to_path_buf()
}

/// What `krew/package.sh --debug` made, once per test run.
struct Package {
    archive: PathBuf,
    manifest: PathBuf,
    index_manifest: PathBuf,
    /// The image's build context: the Dockerfile and the static plugin.
    image: PathBuf,
}

fn package() -> &'static Package {
    static PACKAGE: OnceLock<Package> = OnceLock::new();
    PACKAGE.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("krew-package");
        let _ = std::fs::remove_dir_all(&out);
        let cargo_dir = Path::new(env!("CARGO")).parent().unwrap().to_path_buf();
        let path = std::env::join_paths(std::iter::once(cargo_dir).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .unwrap();
        let output = Command::new("sh")
            .arg(workspace_root().join("krew/package.sh"))
            .args(["--debug", "--out"])
            .arg(&out)
            .env("PATH", path)
            .stdin(Stdio::null())
            .output()
            .expect("run krew/package.sh");
        assert!(
            output.status.success(),
            "krew/package.sh --debug failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let version = format!("v{}", env!("CARGO_PKG_VERSION"));
        Package {
            archive: out.join(format!("kubectl-mlbackup_{version}_linux_amd64.tar.gz")),
            manifest: out.join("mlbackup.yaml"),
            index_manifest: out.join("index/plugins/mlbackup.yaml"),
            image: out.join("image"),
        }
    })
}

fn read_yaml(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Krew's validation rules

/// Every rule of Krew (`ValidatePlugin`, `validatePlatform`, `validateSelector`, semver with a
/// leading `v`) and of the krew-index checks (selectors that do not overlap, a LICENSE file
/// installed), plus this project's own (a short description of at most 50 characters, a
/// description wrapped at 80 columns without usage examples, the caveats users need). Returns
/// every violation.
fn krew_violations(manifest: &Value, file_name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, problem: String| {
        if !ok {
            problems.push(problem);
        }
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    check(
        text(&manifest["apiVersion"]) == API_VERSION,
        format!("apiVersion is {:?}", manifest["apiVersion"]),
    );
    check(
        text(&manifest["kind"]) == "Plugin",
        format!("kind is {:?}", manifest["kind"]),
    );
    let name = text(&manifest["metadata"]["name"]);
    check(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        format!("name {name:?} must match ^[\\w-]+$"),
    );
    check(
        file_name == format!("{name}.yaml"),
        format!("the file {file_name} must be named after the plugin {name:?}"),
    );
    let spec = &manifest["spec"];
    let version = text(&spec["version"]);
    check(
        is_semver_with_v(&version),
        format!("version {version:?} is not semver with a leading v"),
    );
    check(
        text(&spec["homepage"]).starts_with("https://"),
        "homepage must be an https URL".into(),
    );
    let short = text(&spec["shortDescription"]);
    check(
        !short.is_empty() && !short.contains(['\r', '\n']) && short.chars().count() <= 50,
        format!("shortDescription {short:?} must be one line of 1 to 50 characters"),
    );
    let description = text(&spec["description"]);
    check(!description.trim().is_empty(), "no description".into());
    for line in description.lines() {
        check(
            line.chars().count() <= 80,
            format!("description line over 80 columns: {line:?}"),
        );
        check(
            !line.contains("kubectl mlbackup") && !line.trim_start().starts_with('$'),
            format!("description has a usage example: {line:?}"),
        );
    }
    let caveats = text(&spec["caveats"]);
    check(
        caveats.contains("MLOps admin"),
        "caveats must name the token's MLOps admin role".into(),
    );
    check(
        caveats.contains("--helper") && caveats.contains("MLBACKUP_HELPER"),
        "caveats must say how to use helpers for other architectures".into(),
    );

    let platforms = spec["platforms"].as_sequence().cloned().unwrap_or_default();
    check(!platforms.is_empty(), "no platforms".into());
    for platform in &platforms {
        let uri = text(&platform["uri"]);
        check(
            uri.starts_with("https://"),
            format!("uri {uri:?} must be https"),
        );
        let sha = text(&platform["sha256"]);
        check(
            sha.len() == 64 && sha.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
            format!("sha256 {sha:?} must match ^[a-f0-9]{{64}}$"),
        );
        check(!text(&platform["bin"]).is_empty(), "bin must be set".into());
        let files = platform["files"].as_sequence().cloned().unwrap_or_default();
        check(!files.is_empty(), "files must be non-empty".into());
        for file in &files {
            check(
                !text(&file["from"]).is_empty() && !text(&file["to"]).is_empty(),
                format!("file operation {file:?} needs from and to"),
            );
        }
        check(
            files
                .iter()
                .any(|f| text(&f["from"]).rsplit('/').next() == Some("LICENSE")),
            "LICENSE must be among the installed files".into(),
        );
        let selector = &platform["selector"];
        let labels = selector["matchLabels"].as_mapping();
        let expressions = selector["matchExpressions"].as_sequence();
        check(
            labels.is_some_and(|l| !l.is_empty()) || expressions.is_some_and(|e| !e.is_empty()),
            "a selector must not be empty".into(),
        );
        let keys = labels.into_iter().flat_map(|l| l.keys().map(text)).chain(
            expressions
                .into_iter()
                .flatten()
                .map(|expression| text(&expression["key"])),
        );
        for key in keys {
            check(
                key == "os" || key == "arch",
                format!("selector key {key:?} is not os or arch"),
            );
        }
    }
    for os in ["linux", "darwin", "windows"] {
        for arch in ["amd64", "arm64", "386", "arm", "ppc64le", "s390x"] {
            let matching = platforms
                .iter()
                .filter(|p| selector_matches(&p["selector"], os, arch))
                .count();
            check(
                matching <= 1,
                format!("{matching} platforms overlap on {os}/{arch}"),
            );
        }
    }
    problems
}

/// Krew's semver: `v` then MAJOR.MINOR.PATCH without leading zeros, optional `-pre`, `+build`.
fn is_semver_with_v(version: &str) -> bool {
    let Some(rest) = version.strip_prefix('v') else {
        return false;
    };
    let core = rest.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        })
}

/// A Kubernetes label selector (matchLabels and matchExpressions) applied to os/arch labels.
fn selector_matches(selector: &Value, os: &str, arch: &str) -> bool {
    let label = |key: &str| match key {
        "os" => Some(os),
        "arch" => Some(arch),
        _ => None,
    };
    let labels_match = selector["matchLabels"].as_mapping().is_none_or(|labels| {
        labels
            .iter()
            .all(|(k, v)| label(k.as_str().unwrap_or_default()) == v.as_str())
    });
    let expressions_match = selector["matchExpressions"]
        .as_sequence()
        .is_none_or(|expressions| {
            expressions.iter().all(|e| {
                let value = label(e["key"].as_str().unwrap_or_default());
                let values: Vec<&str> = e["values"]
                    .as_sequence()
                    .map(|v| v.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                match e["operator"].as_str().unwrap_or_default() {
                    "In" => value.is_some_and(|v| values.contains(&v)),
                    "NotIn" => value.is_none_or(|v| !values.contains(&v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
        });
    labels_match && expressions_match
}

#[test]
fn the_validator_catches_what_krew_rejects() {
    let good: Value = read_yaml(&workspace_root().join("krew/mlbackup.yaml"));
    assert_eq!(
        krew_violations(&good, "mlbackup.yaml"),
        Vec::<String>::new()
    );
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut manifest = good.clone();
        edit(&mut manifest);
        krew_violations(&manifest, "mlbackup.yaml")
    };
    assert_eq!(krew_violations(&good, "other.yaml").len(), 1);
    assert_eq!(
        broken(&|m| m["spec"]["version"] = "0.1.0".into()).len(),
        1,
        "no v"
    );
    assert_eq!(
        broken(&|m| m["spec"]["version"] = "v1.02.0".into()).len(),
        1
    );
    assert_eq!(
        broken(&|m| m["spec"]["shortDescription"] = "x".repeat(51).into()).len(),
        1
    );
    assert_eq!(
        broken(&|m| m["spec"]["platforms"][0]["sha256"] = "ABC".into()).len(),
        1
    );
    assert_eq!(broken(&|m| m["kind"] = "Plugins".into()).len(), 1);
    // A second platform for every linux arch overlaps linux/amd64.
    let overlapping = broken(&|m| {
        let mut second = m["spec"]["platforms"][0].clone();
        second["selector"] =
            serde_yaml::from_str("matchExpressions: [{key: os, operator: In, values: [linux]}]")
                .unwrap();
        m["spec"]["platforms"]
            .as_sequence_mut()
            .unwrap()
            .push(second);
    });
    assert_eq!(overlapping, ["2 platforms overlap on linux/amd64"]);
    // The selectors the template announces for further platforms do not overlap it.
    let extended = broken(&|m| {
        for (os, arch) in [("linux", "arm64"), ("darwin", "amd64"), ("darwin", "arm64")] {
            let mut other = m["spec"]["platforms"][0].clone();
            other["selector"]["matchLabels"]["os"] = os.into();
            other["selector"]["matchLabels"]["arch"] = arch.into();
            m["spec"]["platforms"]
                .as_sequence_mut()
                .unwrap()
                .push(other);
        }
    });
    assert!(extended.is_empty(), "{extended:?}");
    assert_eq!(
        broken(&|m| m["spec"]["platforms"][0]["files"]
            .as_sequence_mut()
            .unwrap()
            .retain(|f| f["from"] != "LICENSE"))
        .len(),
        1
    );
}

#[test]
fn the_committed_manifests_follow_krews_rules_and_the_workspace_version() {
    let root = workspace_root();
    let manifest = read_yaml(&root.join("krew/mlbackup.yaml"));
    assert_eq!(
        krew_violations(&manifest, "mlbackup.yaml"),
        Vec::<String>::new()
    );
    assert_eq!(
        manifest["spec"]["version"],
        format!("v{}", env!("CARGO_PKG_VERSION")),
        "krew/mlbackup.yaml is for this version: re-run `krew/package.sh --write-manifests`"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("krew/index/plugins/mlbackup.yaml")).unwrap(),
        std::fs::read_to_string(root.join("krew/mlbackup.yaml")).unwrap(),
        "the custom index carries the same manifest"
    );
}

// ---------------------------------------------------------------------------------------------
// Installing like Krew

/// `kubectl krew install --manifest M --archive A` for linux/amd64 into the Krew root `root`:
/// returns the install directory `store/<name>/<version>`.
fn krew_install(manifest_path: &Path, archive: &Path, root: &Path) -> PathBuf {
    let manifest = read_yaml(manifest_path);
    let platform = manifest["spec"]["platforms"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| selector_matches(&p["selector"], "linux", "amd64"))
        .expect("a platform for linux/amd64")
        .clone();
    assert_eq!(
        sha256_hex(archive),
        platform["sha256"].as_str().unwrap(),
        "Krew refuses an archive whose sha256 differs from the manifest's"
    );
    let extracted = root.join("tmp/extract");
    std::fs::create_dir_all(&extracted).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(&extracted),
    );
    // Krew moves into a fresh temp dir, then renames it to the install dir.
    let staging = root.join("tmp/move");
    std::fs::create_dir_all(&staging).unwrap();
    for operation in platform["files"].as_sequence().unwrap() {
        let from = operation["from"].as_str().unwrap();
        let to = operation["to"].as_str().unwrap();
        assert!(
            !from.contains(['*', '?', '[']),
            "this installer takes literal `from` paths; {from} is a glob"
        );
        let source = extracted.join(from);
        assert!(source.exists(), "{from} is not in the archive");
        // A direct move: `to: .` keeps the file name, otherwise `to` is the target directory
        // when it names one the file goes into (as the glob move of Krew places it there).
        let target = if to == "." {
            staging.join(source.file_name().unwrap())
        } else {
            staging.join(to).join(source.file_name().unwrap())
        };
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::rename(&source, &target).unwrap();
    }
    let version = manifest["spec"]["version"].as_str().unwrap();
    let install_dir = root.join("store").join(PLUGIN).join(version);
    std::fs::create_dir_all(install_dir.parent().unwrap()).unwrap();
    std::fs::rename(&staging, &install_dir).unwrap();
    let bin = install_dir.join(platform["bin"].as_str().unwrap());
    assert!(bin.is_file(), "bin {} is not installed", bin.display());
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::os::unix::fs::symlink(&bin, root.join("bin/kubectl-mlbackup")).unwrap();
    install_dir
}

fn run_ok(command: &mut Command) -> Output {
    let output = command.output().expect("command runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

/// The PATH of a user who installed with Krew: `~/.krew/bin` first, then the system's, minus
/// any folder that holds another build of the plugin (it would shadow the installed one).
fn krew_path(krew_root: &Path) -> std::ffi::OsString {
    let system = std::env::var_os("PATH").unwrap_or_default();
    let kubectl_dir = kubectl().parent().unwrap().to_path_buf();
    let others = std::env::split_paths(&system)
        .chain(std::iter::once(kubectl_dir))
        .filter(|dir| !dir.join("kubectl-mlbackup").exists());
    std::env::join_paths(std::iter::once(krew_root.join("bin")).chain(others)).unwrap()
}

#[test]
fn the_archive_installs_like_krew_and_runs_through_the_real_kubectl() {
    let package = package();
    let manifest = read_yaml(&package.manifest);
    assert_eq!(
        krew_violations(&manifest, "mlbackup.yaml"),
        Vec::<String>::new()
    );
    assert_eq!(
        std::fs::read(&package.index_manifest).unwrap(),
        std::fs::read(&package.manifest).unwrap(),
        "the index layout carries the rendered manifest"
    );
    // The rendered manifest is the committed template's, with the archive's uri and sha256.
    let committed = read_yaml(&workspace_root().join("krew/mlbackup.yaml"));
    let without_sha = |mut m: Value| {
        m["spec"]["platforms"][0]["sha256"] = Value::Null;
        m
    };
    assert_eq!(without_sha(manifest.clone()), without_sha(committed));
    assert!(
        manifest["spec"]["platforms"][0]["uri"]
            .as_str()
            .unwrap()
            .ends_with(package.archive.file_name().unwrap().to_str().unwrap())
    );

    let home = tempfile::tempdir().unwrap();
    let krew_root = home.path().join(".krew");
    let install_dir = krew_install(&package.manifest, &package.archive, &krew_root);
    let installed: BTreeSet<String> = walk(&install_dir);
    assert_eq!(
        installed,
        [
            "LICENSE",
            "README.md",
            "helpers/linux-amd64/mlbackup-helper",
            "kubectl-mlbackup",
            "kubectl_complete-mlbackup",
        ]
        .into_iter()
        .map(String::from)
        .collect()
    );
    // What the README tells users to do for completion.
    std::os::unix::fs::symlink(
        install_dir.join("kubectl_complete-mlbackup"),
        krew_root.join("bin/kubectl_complete-mlbackup"),
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_mlbackup-sandbox")),
        dir.path(),
        &["--lrs", "5", "--spark", "2", "--namespaces", "2"],
    )
    .unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let kubectl = |args: &[&str]| {
        Command::new(kubectl())
            .args(args)
            .env_clear()
            .env("PATH", krew_path(&krew_root))
            .env("HOME", home.path())
            .env("KUBECONFIG", &sandbox.ready.kubeconfig)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("kubectl runs")
    };
    let ok = |args: &[&str]| {
        let output = kubectl(args);
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8(output.stdout).unwrap()
    };

    let list = ok(&["plugin", "list"]);
    assert!(
        list.contains(&format!(
            "{}",
            krew_root.join("bin/kubectl-mlbackup").display()
        )),
        "{list}"
    );

    let version: serde_json::Value =
        serde_json::from_str(&ok(&["mlbackup", "version", "--client", "-o", "json"])).unwrap();
    assert_eq!(
        version["clientVersion"]["version"],
        env!("CARGO_PKG_VERSION")
    );
    let helper =
        std::fs::canonicalize(install_dir.join("helpers/linux-amd64/mlbackup-helper")).unwrap();
    assert_eq!(
        version["helper"]["path"],
        helper.to_str().unwrap(),
        "the plugin, run through Krew's link, finds the helper in its store folder"
    );
    assert!(
        version["helper"]["version"]
            .as_str()
            .unwrap()
            .starts_with(&format!("mlbackup-helper {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let server = ok(&["mlbackup", "version"]);
    assert!(server.contains("Context: sandbox"), "{server}");

    let backup: serde_json::Value = serde_json::from_str(&ok(&[
        "mlbackup",
        "backup",
        "--dir",
        backups.to_str().unwrap(),
        "--name",
        "through-krew",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(backup["status"], "complete", "{backup}");
    assert_eq!(backup["objects"], 5, "{backup}");
    assert!(backups.join("through-krew/manifest.json").is_file());

    // `kubectl mlbackup <TAB>`: kubectl asks kubectl_complete-mlbackup on the PATH.
    let completions = ok(&["__complete", "mlbackup", "ve"]);
    assert!(
        completions.starts_with("version\tPrint the plugin version"),
        "{completions}"
    );
    assert!(completions.contains("\nverify\t"), "{completions}");
    let completions = ok(&[
        "__complete",
        "mlbackup",
        "show",
        "--dir",
        backups.to_str().unwrap(),
        "",
    ]);
    assert!(
        completions.starts_with("through-krew\tcomplete, "),
        "{completions}"
    );
    assert!(completions.contains("\n:4\n"), "{completions}");
}

fn walk(root: &Path) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                files.insert(relative.to_string_lossy().into_owned());
            }
        }
    }
    files
}

// ---------------------------------------------------------------------------------------------
// The static helper

#[test]
fn the_packaged_helper_is_static_and_runs_in_an_empty_root() {
    let package = package();
    let unpacked = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(&package.archive)
            .arg("-C")
            .arg(unpacked.path())
            .arg("helpers/linux-amd64/mlbackup-helper"),
    );
    let helper = unpacked.path().join("helpers/linux-amd64/mlbackup-helper");

    let ldd = Command::new("ldd")
        .arg(&helper)
        .env("LC_ALL", "C")
        .output()
        .expect("ldd runs");
    let says = String::from_utf8_lossy(&ldd.stdout) + String::from_utf8_lossy(&ldd.stderr);
    assert!(
        says.contains("not a dynamic executable") || says.contains("statically linked"),
        "ldd: {says}"
    );

    // No environment, an empty working directory.
    let empty = tempfile::tempdir().unwrap();
    let output = run_ok(
        Command::new(&helper)
            .arg("--version")
            .env_clear()
            .current_dir(empty.path()),
    );
    let expected = format!("mlbackup-helper {}", env!("CARGO_PKG_VERSION"));
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with(&expected),
        "{output:?}"
    );

    // An empty root file system: no libc, no /etc, no CA files; only the helper. chroot needs
    // root (or a user namespace); where neither is allowed, the checks above stand alone.
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(&helper, root.path().join("mlbackup-helper")).unwrap();
    let attempts: [&[&str]; 2] = [
        &["chroot"],
        &["unshare", "--user", "--map-root-user", "chroot"],
    ];
    let mut ran = false;
    for prefix in attempts {
        let Ok(output) = Command::new(prefix[0])
            .args(&prefix[1..])
            .arg(root.path())
            .args(["/mlbackup-helper", "--version"])
            .env_clear()
            // Only for finding chroot and unshare; the helper inherits nothing else.
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .output()
        else {
            continue;
        };
        if output.status.success() {
            assert!(
                String::from_utf8_lossy(&output.stdout).starts_with(&expected),
                "{output:?}"
            );
            ran = true;
            break;
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("Operation not permitted") || stderr.contains("not permitted"),
            "the helper failed in an empty root with something else than a refused chroot: {output:?}"
        );
    }
    if !ran {
        eprintln!("note: chroot is not permitted here; the empty-root run was skipped");
    }
}

// ---------------------------------------------------------------------------------------------
// The image of scheduled backups

/// What a `FROM scratch` Dockerfile makes: the files it copies (context path, image path), its
/// user and its entrypoint. Any other instruction fails the test, so that the root built from
/// it below is exactly the image's.
#[derive(Debug, Default)]
struct Image {
    copies: Vec<(String, String)>,
    user: Option<String>,
    entrypoint: Vec<String>,
}

fn read_dockerfile(text: &str) -> Image {
    let mut image = Image::default();
    let mut from_scratch = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (instruction, rest) = line.split_once(' ').unwrap_or((line, ""));
        match instruction {
            "FROM" => from_scratch = rest.trim() == "scratch",
            "COPY" => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                assert_eq!(parts.len(), 2, "COPY SRC DEST, without flags: {line}");
                image.copies.push((parts[0].into(), parts[1].into()));
            }
            "USER" => image.user = Some(rest.trim().to_string()),
            "ENTRYPOINT" => image.entrypoint = serde_json::from_str(rest).expect("exec form"),
            other => panic!("an instruction this test does not reproduce: {other}"),
        }
    }
    assert!(from_scratch, "FROM scratch");
    image
}

#[test]
fn the_image_runs_the_static_plugin_in_an_empty_root_as_a_pod() {
    let package = package();
    let context: BTreeSet<String> = walk(&package.image);
    assert_eq!(
        context,
        ["Dockerfile", "kubectl-mlbackup"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    let dockerfile = std::fs::read_to_string(package.image.join("Dockerfile")).unwrap();
    assert_eq!(
        dockerfile,
        std::fs::read_to_string(workspace_root().join("Dockerfile")).unwrap(),
        "the committed Dockerfile"
    );
    let image = read_dockerfile(&dockerfile);
    assert_eq!(image.user.as_deref(), Some("65532:65532"), "not root");
    assert_eq!(image.entrypoint, ["/kubectl-mlbackup"]);

    // The image's root, as docker would make it.
    let root = tempfile::tempdir().unwrap();
    for (source, target) in &image.copies {
        let target = root.path().join(target.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(package.image.join(source), &target).unwrap();
    }
    let plugin = root.path().join("kubectl-mlbackup");
    let ldd = Command::new("ldd")
        .arg(&plugin)
        .env("LC_ALL", "C")
        .output()
        .expect("ldd runs");
    let says = String::from_utf8_lossy(&ldd.stdout) + String::from_utf8_lossy(&ldd.stderr);
    assert!(
        says.contains("not a dynamic executable") || says.contains("statically linked"),
        "ldd: {says}"
    );

    // What the kubelet adds in a pod: the service account (token and CA of the sandbox's
    // cluster, the namespace) and the API server's address; and the CronJob's emptyDir.
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_mlbackup-sandbox")),
        dir.path(),
        &["--lrs", "4", "--namespaces", "2"],
    )
    .unwrap();
    let kubeconfig = read_yaml(&sandbox.ready.kubeconfig);
    let server = kubeconfig["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap()
        .to_string();
    let ca = kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .unwrap();
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(ca)
        .unwrap();
    let token = kubeconfig["users"][0]["user"]["token"].as_str().unwrap();
    let account = root
        .path()
        .join("var/run/secrets/kubernetes.io/serviceaccount");
    std::fs::create_dir_all(&account).unwrap();
    std::fs::write(account.join("token"), token).unwrap();
    std::fs::write(account.join("ca.crt"), ca).unwrap();
    std::fs::write(account.join("namespace"), "mlbackup").unwrap();
    let backups = root.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let (host, port) = server
        .trim_start_matches("https://")
        .rsplit_once(':')
        .unwrap();

    // chroot needs root (or a user namespace, where only root is mapped and the image's user
    // cannot be taken); where neither is allowed, the static check above stands alone.
    let user = image.user.clone().unwrap();
    let (uid, gid) = user.split_once(':').unwrap();
    let as_user = std::os::unix::fs::chown(
        &backups,
        Some(uid.parse().unwrap()),
        Some(gid.parse().unwrap()),
    )
    .is_ok();
    let userspec = format!("--userspec={user}");
    let attempts: Vec<Vec<&str>> = if as_user {
        vec![
            vec!["chroot", userspec.as_str()],
            vec!["unshare", "--user", "--map-root-user", "chroot"],
        ]
    } else {
        vec![vec!["unshare", "--user", "--map-root-user", "chroot"]]
    };
    let run_in_image = |prefix: &[&str], args: &[&str]| {
        Command::new(prefix[0])
            .args(&prefix[1..])
            .arg(root.path())
            .args(&image.entrypoint)
            .args(args)
            .env_clear()
            // Only for finding chroot and unshare; the plugin gets the pod's variables alone.
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBERNETES_SERVICE_HOST", host)
            .env("KUBERNETES_SERVICE_PORT", port)
            .current_dir(root.path())
            .stdin(Stdio::null())
            .output()
            .expect("chroot runs")
    };
    let Some(prefix) = attempts.iter().find(|prefix| {
        let output = run_in_image(prefix, &["version", "--client"]);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.contains("not permitted"),
                "the plugin failed in the image's root with something else than a refused \
                 chroot: {output:?}"
            );
        }
        output.status.success()
    }) else {
        eprintln!("note: chroot is not permitted here; the empty-root run was skipped");
        return;
    };
    let ok = |args: &[&str]| {
        let output = run_in_image(prefix, args);
        assert!(
            output.status.success(),
            "kubectl-mlbackup {args:?} in the image's root: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8(output.stdout).unwrap()
    };

    // The API server, reached with the service account alone (no kubeconfig, no CA files).
    let version: serde_json::Value = serde_json::from_str(&ok(&["version", "-o", "json"])).unwrap();
    assert!(
        version["serverVersion"]["gitVersion"].is_string(),
        "{version}"
    );
    let backup: serde_json::Value = serde_json::from_str(&ok(&[
        "backup",
        "--all-types",
        "--dir",
        "/backups",
        "-o",
        "json",
    ]))
    .unwrap();
    let name = backup["name"].as_str().unwrap().to_string();
    let list: serde_json::Value =
        serde_json::from_str(&ok(&["list", "--dir", "/backups", "-o", "json"])).unwrap();
    assert_eq!(list["backups"][0]["name"], name.as_str());
    assert_eq!(list["backups"][0]["status"], "complete");
    assert!(backup["objects"].as_u64().unwrap() > 0, "{backup}");
    assert_eq!(list["backups"][0]["lrsCount"], backup["objects"]);
    ok(&["verify", &name, "--dir", "/backups"]);
    // The time zone database is compiled in: the root has no /usr/share/zoneinfo.
    let prune: serde_json::Value = serde_json::from_str(&ok(&[
        "prune",
        "--dir",
        "/backups",
        "--keep-daily",
        "1",
        "--time-zone",
        "Europe/Berlin",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(prune["timeZone"], "Europe/Berlin");
    assert_eq!(prune["keep"][0]["name"], name.as_str());
    let day = prune["keep"][0]["reason"].as_str().unwrap();
    assert!(day.contains("keep-daily 20"), "{day}");
    if as_user && prefix[0] == "chroot" {
        let owner =
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(backups.join(&name)).unwrap());
        assert_eq!(owner, 65532, "written as the image's user");
    }
}
