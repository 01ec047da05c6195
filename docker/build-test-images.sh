#!/usr/bin/env bash
# Build the images offline, the way the tests do: the shipped Dockerfiles, with build arguments that
# replace everything a build would download (docs/docker.md, "Offline builds").
#
#   docker/build-test-images.sh [cpu|core|complete ...]      (default: all three)
#
# - BASE_IMAGE: the debootstrap image of docker/build-test-base.sh instead of CUDA/Ubuntu;
# - COMFYUI_SOURCE_DIR: the stand-in ComfyUI (tests/standin_comfyui) instead of GitHub;
# - TORCH_PACKAGES empty: the stand-in needs no torch;
# - WHEELHOUSE_DIR + PIP_NO_INDEX: comfy-init's dependencies as wheels built here on the host, because
#   PyPI from inside a build lacks the host's CA bundle;
# - complete only: a stand-in ComfyUI-Manager, a one-package curated list, and only git from apt.
#
# Environment: TEST_BASE_IMAGE (comfy-init-test-base:bookworm), TEST_IMAGE_TAG (ci),
# TEST_IMAGE_REPOSITORY (comfy-init-test: images are <repository>/<variant>:<tag>),
# PYTHON (python3: the interpreter whose pip builds the wheelhouse).
set -euo pipefail

cd "$(dirname "$0")/.."

base="${TEST_BASE_IMAGE:-comfy-init-test-base:bookworm}"
repository="${TEST_IMAGE_REPOSITORY:-comfy-init-test}"
tag="${TEST_IMAGE_TAG:-ci}"
python="${PYTHON:-python3}"
wheelhouse=docker/wheelhouse

variants=("$@")
if [[ ${#variants[@]} -eq 0 ]]; then
    variants=(cpu core complete)
fi

if ! docker image inspect "$base" >/dev/null 2>&1; then
    echo "build-test-images: base image $base is missing: run docker/build-test-base.sh" >&2
    exit 1
fi

# The wheels are built for the host's Python, so it must be the base image's Python (both Debian 12).
host_python="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
image_python="$(docker run --rm --entrypoint python3 "$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "$host_python" != "$image_python" ]]; then
    echo "build-test-images: $python is Python $host_python but $base has $image_python;" \
         "the wheelhouse would not fit. Set PYTHON to a Python $image_python interpreter." >&2
    exit 1
fi

# comfy-init's runtime dependencies and build backend, read from pyproject.toml, plus PyYAML for the
# tests' curated list. Not comfy-init itself: the Dockerfiles install it from source.
mapfile -t requirements < <("$python" - <<'EOF'
import tomllib
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)
for requirement in project["project"]["dependencies"] + project["build-system"]["requires"]:
    print(requirement)
print("wheel")
print("PyYAML")
EOF
)
echo "build-test-images: wheelhouse ($wheelhouse): ${requirements[*]}"
mkdir -p "$wheelhouse"
find "$wheelhouse" -maxdepth 1 -name '*.whl' -delete
"$python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$wheelhouse" "${requirements[@]}"

common_args=(
    --build-arg "BASE_IMAGE=$base"
    --build-arg "COMFYUI_SOURCE_DIR=tests/standin_comfyui"
    --build-arg "TORCH_PACKAGES="
    --build-arg "WHEELHOUSE_DIR=$wheelhouse"
    --build-arg "PIP_NO_INDEX=1"
)
complete_args=(
    --build-arg "COMFYUI_MANAGER_SOURCE_DIR=tests/docker/fixtures/comfyui-manager"
    --build-arg "COMPLETE_REQUIREMENTS=tests/docker/fixtures/complete-requirements.txt"
    --build-arg "EXTRA_APT_PACKAGES=git"
)

for variant in "${variants[@]}"; do
    case "$variant" in
        cpu|core) args=("${common_args[@]}") ;;
        complete) args=("${common_args[@]}" "${complete_args[@]}") ;;
        *) echo "build-test-images: unknown variant '$variant' (cpu, core, complete)" >&2; exit 64 ;;
    esac
    image="$repository/$variant:$tag"
    echo "build-test-images: building $image from docker/Dockerfile.$variant"
    start=$SECONDS
    log="$(mktemp)"
    if ! docker build --file "docker/Dockerfile.$variant" --tag "$image" "${args[@]}" . >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        rm -f "$log"
        echo "build-test-images: building $image failed" >&2
        exit 1
    fi
    rm -f "$log"
    echo "build-test-images: built $image in $((SECONDS - start)) s" \
         "($(docker image inspect -f '{{.Size}}' "$image") bytes)"
done

# Earlier builds of these images, untagged by the ones above: only ours (by label), only dangling.
docker image prune --force --filter "label=io.comfy-init.variant" >/dev/null
