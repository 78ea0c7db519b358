#!/usr/bin/env bash
# Regenerate Sources/AidgeONNX/Generated/onnx.pb.swift, the swift-protobuf
# code for ONNX's onnx.proto (proto2, package `onnx`).
#
# Steps:
#   1. download the onnx wheel (no dependencies) with pip and take
#      onnx/onnx.proto out of it;
#   2. build protoc-gen-swift from swift-protobuf (same version as the
#      SwiftProtobuf runtime the package depends on);
#   3. run protoc --swift_out=. --swift_opt=Visibility=Public onnx.proto;
#   4. add a provenance comment and write the result into the source tree.
#
# Requires: protoc (e.g. `apt-get install protobuf-compiler`), git, swift,
# python3 with pip.
#
# Usage: bash scripts/generate_onnx_proto.sh
# Env:   ONNX_VERSION            onnx release to take onnx.proto from (default 1.23.2)
#        SWIFT_PROTOBUF_VERSION  swift-protobuf tag for the plugin (default 1.39.0)
#        PROTOC                  protoc binary (default: protoc on PATH)
#        PYTHON                  python interpreter running pip (default: python3)
#        PROTOC_GEN_SWIFT        an already-built protoc-gen-swift; skips step 2
#        WORK_DIR                scratch directory (default: a fresh mktemp dir,
#                                removed on exit)
set -euo pipefail

onnx_version="${ONNX_VERSION:-1.23.2}"
swift_protobuf_version="${SWIFT_PROTOBUF_VERSION:-1.39.0}"
protoc="${PROTOC:-protoc}"
python="${PYTHON:-python3}"

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${script_dir}/.." && pwd)"
dest="${repo_root}/Sources/AidgeONNX/Generated/onnx.pb.swift"

if [[ -n "${WORK_DIR:-}" ]]; then
    work="${WORK_DIR}"
    mkdir -p "${work}"
else
    work="$(mktemp -d)"
    trap 'rm -rf "${work}"' EXIT
fi

command -v "${protoc}" >/dev/null || {
    echo "generate_onnx_proto: protoc not found (apt-get install protobuf-compiler)" >&2
    exit 1
}
protoc_version="$("${protoc}" --version | awk '{print $NF}')"

# 1. onnx.proto from the onnx wheel.
echo "generate_onnx_proto: downloading onnx ${onnx_version}" >&2
rm -rf "${work}/wheel" "${work}/proto"
mkdir -p "${work}/wheel" "${work}/proto"
"${python}" -m pip download --quiet --no-deps "onnx==${onnx_version}" -d "${work}/wheel"
wheel="$(ls "${work}"/wheel/onnx-"${onnx_version}"-*.whl | head -n 1)"
"${python}" - "${wheel}" "${work}/proto/onnx.proto" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    data = z.read("onnx/onnx.proto")
with open(sys.argv[2], "wb") as f:
    f.write(data)
PY
grep -q '^syntax = "proto2";' "${work}/proto/onnx.proto"
grep -q '^package onnx;' "${work}/proto/onnx.proto"

# 2. protoc-gen-swift.
if [[ -n "${PROTOC_GEN_SWIFT:-}" ]]; then
    plugin="${PROTOC_GEN_SWIFT}"
else
    echo "generate_onnx_proto: building protoc-gen-swift ${swift_protobuf_version}" >&2
    rm -rf "${work}/swift-protobuf"
    git clone --quiet --branch "${swift_protobuf_version}" --depth 1 \
        https://github.com/apple/swift-protobuf.git "${work}/swift-protobuf" 2>/dev/null ||
        { git clone --quiet https://github.com/apple/swift-protobuf.git "${work}/swift-protobuf" &&
          git -C "${work}/swift-protobuf" checkout --quiet "${swift_protobuf_version}"; }
    (cd "${work}/swift-protobuf" && swift build -c release --product protoc-gen-swift)
    plugin="${work}/swift-protobuf/.build/release/protoc-gen-swift"
fi
plugin_version="$("${plugin}" --version | awk '{print $NF}')"
if [[ "${plugin_version}" != "${swift_protobuf_version}" ]]; then
    echo "generate_onnx_proto: warning: protoc-gen-swift is ${plugin_version}, expected ${swift_protobuf_version}" >&2
fi

# 3. Generate.
rm -rf "${work}/out"
mkdir -p "${work}/out"
(cd "${work}/proto" &&
    "${protoc}" --plugin=protoc-gen-swift="${plugin}" \
        --swift_out="${work}/out" --swift_opt=Visibility=Public onnx.proto)

# 4. Provenance comment after the generator's header, then install.
note="// Generated from onnx.proto of onnx ${onnx_version} with protoc ${protoc_version} and protoc-gen-swift ${plugin_version}: protoc --swift_out=. --swift_opt=Visibility=Public onnx.proto
// Regenerate with: bash scripts/generate_onnx_proto.sh"
awk -v note="${note}" '
    { print }
    !done && /^\/\/   https:\/\/github.com\/apple\/swift-protobuf\/$/ { print "//"; print note; done = 1 }
    END { if (!done) exit 1 }
' "${work}/out/onnx.pb.swift" > "${work}/out/onnx.pb.swift.tmp"
mkdir -p "$(dirname "${dest}")"
mv "${work}/out/onnx.pb.swift.tmp" "${dest}"
echo "generate_onnx_proto: wrote ${dest#"${repo_root}"/}" >&2
