#!/bin/sh
# Builds the Krew release archive of kubectl-mlbackup for linux/amd64 and renders its manifest.
#
#   krew/package.sh [--debug] [--out DIR] [--version vX.Y.Z] [--uri-base URL] [--write-manifests]
#
# Makes, from a clean checkout:
#   DIR/kubectl-mlbackup_<version>_linux_amd64.tar.gz   kubectl-mlbackup, kubectl_complete-mlbackup,
#                                                        helpers/linux-amd64/mlbackup-helper (static),
#                                                        LICENSE, README.md
#   DIR/mlbackup.yaml                                    krew/.krew.yaml rendered with its sha256
#   DIR/index/plugins/mlbackup.yaml                      the same, laid out as a Krew custom index
#   DIR/image/Dockerfile, DIR/image/kubectl-mlbackup     the context of the scheduled backups
#                                                        image: the Dockerfile and the plugin
#                                                        linked statically (`docker build DIR/image`)
# DIR defaults to dist/. --write-manifests also updates the committed krew/mlbackup.yaml and
# krew/index/plugins/mlbackup.yaml (do it when cutting a release).
#
# Release builds (the default) take the plugin from `cargo build --release` and the helper from
# the size profile `helper` (opt-level z, LTO, panic abort, strip), linked statically
# (+crt-static) for x86_64-unknown-linux-gnu. --debug packages dev-profile builds instead (the
# helper still static): the same layout and manifest, minutes faster, for the install test in CI.
# The image's plugin is built like the helper (+crt-static, x86_64-unknown-linux-gnu), in the
# plugin's profile (release, or dev with --debug).
# The archive is reproducible: entries sorted, owner 0:0, mtime SOURCE_DATE_EPOCH (default: the
# last commit's time), gzip without a timestamp. Needs cargo, GNU tar, gzip, sha256sum, ldd.
set -eu

die() { printf 'package.sh: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'package.sh: %s (see --help)\n' "$*" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

profile=release
out=dist
version=
uri_base=https://github.com/mlbackup/kubectl-mlbackup/releases/download
write_manifests=false
while [ $# -gt 0 ]; do
    case $1 in
        --debug) profile=debug ;;
        --out) [ $# -ge 2 ] || usage_error "--out needs a directory"; out=$2; shift ;;
        --out=*) out=${1#--out=} ;;
        --version) [ $# -ge 2 ] || usage_error "--version needs a value"; version=$2; shift ;;
        --version=*) version=${1#--version=} ;;
        --uri-base) [ $# -ge 2 ] || usage_error "--uri-base needs a URL"; uri_base=$2; shift ;;
        --uri-base=*) uri_base=${1#--uri-base=} ;;
        --write-manifests) write_manifests=true ;;
        -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) usage_error "unknown argument: $1" ;;
    esac
    shift
done

if [ -z "$version" ]; then
    # The workspace version, the one `kubectl mlbackup version` prints.
    version=v$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
fi
case $version in
    v[0-9]*.[0-9]*.[0-9]*) ;;
    *) usage_error "version $version is not semver with a leading v (like v1.2.3)" ;;
esac

target_dir=${CARGO_TARGET_DIR:-$root/target}
triple=x86_64-unknown-linux-gnu
if [ "$profile" = release ]; then
    plugin_flags=--release
    plugin_dir=$target_dir/release
    helper_profile=helper
else
    plugin_flags=
    plugin_dir=$target_dir/debug
    helper_profile=dev
fi
[ "$helper_profile" = dev ] && helper_dir=$target_dir/$triple/debug || helper_dir=$target_dir/$triple/$helper_profile

echo "==> building the plugin ($profile)" >&2
# shellcheck disable=SC2086 # plugin_flags is one flag or none
cargo build --locked $plugin_flags -p kubectl-mlbackup --bin kubectl-mlbackup --bin kubectl_complete-mlbackup

echo "==> building the static helper (profile $helper_profile, $triple)" >&2
# With --target, RUSTFLAGS reach only the target's crates, not build scripts or proc macros
# (which must stay dynamic). CARGO_ENCODED_RUSTFLAGS would override RUSTFLAGS: clear it.
env -u CARGO_ENCODED_RUSTFLAGS RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --locked --profile "$helper_profile" --target "$triple" -p mlbackup-helper --bin mlbackup-helper

echo "==> building the static plugin for the image ($profile, $triple)" >&2
# shellcheck disable=SC2086 # plugin_flags is one flag or none
env -u CARGO_ENCODED_RUSTFLAGS RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --locked $plugin_flags --target "$triple" -p kubectl-mlbackup --bin kubectl-mlbackup

is_static() {
    case $(LC_ALL=C ldd "$1" 2>&1 || true) in
        *"not a dynamic executable"*|*"statically linked"*) ;;
        *) die "$1 is not statically linked: $(ldd "$1" 2>&1)" ;;
    esac
}
helper=$helper_dir/mlbackup-helper
is_static "$helper"
static_plugin=$target_dir/$triple/$profile/kubectl-mlbackup
is_static "$static_plugin"
helper_bytes=$(wc -c < "$helper" | tr -d ' ')
if [ "$profile" = release ] && [ "$helper_bytes" -gt $((6 * 1024 * 1024)) ]; then
    die "the static helper is $helper_bytes bytes, over the 6 MiB budget"
fi

archive_name=kubectl-mlbackup_${version}_linux_amd64.tar.gz
mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d "${TMPDIR:-/tmp}/mlbackup-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM
mkdir -p "$stage/helpers/linux-amd64"
chmod 0755 "$stage/helpers" "$stage/helpers/linux-amd64"
install -m 0755 "$plugin_dir/kubectl-mlbackup" "$stage/kubectl-mlbackup"
install -m 0755 "$plugin_dir/kubectl_complete-mlbackup" "$stage/kubectl_complete-mlbackup"
install -m 0755 "$helper" "$stage/helpers/linux-amd64/mlbackup-helper"
install -m 0644 LICENSE "$stage/LICENSE"
install -m 0644 README.md "$stage/README.md"

epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
tar --sort=name --format=gnu --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
    -C "$stage" -cf - kubectl-mlbackup kubectl_complete-mlbackup helpers LICENSE README.md \
    | gzip -9 -n > "$out/$archive_name.tmp"
mv "$out/$archive_name.tmp" "$out/$archive_name"
sha256=$(sha256sum "$out/$archive_name" | cut -d' ' -f1)

# The image's context: nothing but what the Dockerfile copies.
rm -rf "$out/image"
mkdir -p "$out/image"
install -m 0644 Dockerfile "$out/image/Dockerfile"
install -m 0755 "$static_plugin" "$out/image/kubectl-mlbackup"

# Render the template the way the krew-release-bot does.
render() {
    sed -e "s|^\( *\){{ *addURIAndSha \"\([^\"]*\)\" *\.TagName *}}|\1uri: \2\n\1sha256: $sha256|" \
        -e "s|{{ *\.TagName *}}|$version|g" \
        -e "s|https://github.com/mlbackup/kubectl-mlbackup/releases/download|$uri_base|" \
        krew/.krew.yaml | sed '1,/^apiVersion:/{/^#/d}'
}
render > "$out/mlbackup.yaml"
mkdir -p "$out/index/plugins"
cp "$out/mlbackup.yaml" "$out/index/plugins/mlbackup.yaml"
grep -q '{{' "$out/mlbackup.yaml" && die "unrendered template left in $out/mlbackup.yaml"
if [ "$write_manifests" = true ]; then
    cp "$out/mlbackup.yaml" krew/mlbackup.yaml
    cp "$out/mlbackup.yaml" krew/index/plugins/mlbackup.yaml
fi

echo "==> $out/$archive_name" >&2
echo "    sha256 $sha256" >&2
echo "    static helper: $helper_bytes bytes" >&2
echo "    image context: $out/image (static plugin: $(wc -c < "$out/image/kubectl-mlbackup" | tr -d ' ') bytes)" >&2
echo "    manifest: $out/mlbackup.yaml (index layout: $out/index)" >&2
