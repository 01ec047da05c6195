#!/usr/bin/env bash
# Build the images offline, the way the tests do: the shipped Dockerfiles, with build arguments that
# replace everything a build would download (docs/docker.md, "Offline builds").
#
#   docker/build-test-images.sh [cpu|core|complete|manager4 ...]    (default: cpu core complete)
#
# - BASE_IMAGE: the debootstrap image of docker/build-test-base.sh instead of CUDA/Ubuntu;
# - COMFYUI_SOURCE_DIR: the stand-in ComfyUI (tests/standin_comfyui) instead of GitHub;
# - TORCH_PACKAGES empty: the stand-in needs no torch;
# - WHEELHOUSE_DIR + PIP_NO_INDEX: comfy-init's dependencies as wheels built here on the host, because
#   PyPI from inside a build lacks the host's CA bundle;
# - complete: built FROM the core image built just before it (CORE_IMAGE; asking for complete builds
#   core first), with a stand-in ComfyUI-Manager, a one-package curated list, and only git from apt.
#   The stand-in ComfyUI has no manager_requirements.txt: complete gets the custom-node Manager.
# - manager4 (only when asked for): the complete image's ComfyUI-Manager 4 path, for real. A core
#   image (<repository>/core-manager4) whose stand-in ComfyUI looks like a release with Manager 4
#   (tests/docker/fixtures/manager_requirements.txt, the pin of the REAL comfyui-manager package, and
#   aiohttp in its requirements.txt, as ComfyUI has), and complete FROM it
#   (<repository>/complete-manager4); the package and its dependencies come from the wheelhouse.
#
# Environment: TEST_BASE_IMAGE (comfy-init-test-base:bookworm), TEST_IMAGE_TAG (ci),
# TEST_IMAGE_REPOSITORY (comfy-init-test: images are <repository>/<variant>:<tag>),
# PYTHON (python3: the interpreter whose pip builds the wheelhouse).
#
# A real ComfyUI instead of the stand-in (cpu and core only; `./comfy-stack up --offline` uses this):
#   COMFYUI_SOURCE_DIR=/path/to/ComfyUI   a checkout anywhere (main.py, requirements.txt); copied into
#                                         the build context (docker/comfyui-source/, git-ignored)
#   TORCH_PACKAGES                        default "torch torchvision torchaudio" in that case
# The wheelhouse then also holds torch and ComfyUI's requirements, fetched by the host's pip as it is
# configured (PIP_FIND_LINKS=/dir/of/wheels, PIP_INDEX_URL=<a mirror>, ...).
set -euo pipefail

cd "$(dirname "$0")/.."

base="${TEST_BASE_IMAGE:-comfy-init-test-base:bookworm}"
repository="${TEST_IMAGE_REPOSITORY:-comfy-init-test}"
tag="${TEST_IMAGE_TAG:-ci}"
python="${PYTHON:-python3}"
wheelhouse=docker/wheelhouse

requested=("$@")
if [[ ${#requested[@]} -eq 0 ]]; then
    requested=(cpu core complete)
fi
# complete is built FROM core: core goes first whenever complete is asked for.
variants=()
for variant in "${requested[@]}"; do
    case "$variant" in
        cpu|core|complete|manager4) ;;
        *) echo "build-test-images: unknown variant '$variant' (cpu, core, complete, manager4)" >&2; exit 64 ;;
    esac
    if [[ "$variant" == complete && " ${variants[*]} " != *" core "* ]]; then
        variants+=(core)
    fi
    [[ " ${variants[*]} " == *" $variant "* ]] || variants+=("$variant")
done

# The ComfyUI to install: the stand-in, or a real checkout copied into the build context.
comfyui_dir=tests/standin_comfyui
torch_packages=""
if [[ -n "${COMFYUI_SOURCE_DIR:-}" ]]; then
    if [[ ! -f "$COMFYUI_SOURCE_DIR/main.py" || ! -f "$COMFYUI_SOURCE_DIR/requirements.txt" ]]; then
        echo "build-test-images: COMFYUI_SOURCE_DIR=$COMFYUI_SOURCE_DIR is not a ComfyUI checkout" \
             "(it needs main.py and requirements.txt)" >&2
        exit 66
    fi
    if [[ " ${variants[*]} " == *" complete "* || " ${variants[*]} " == *" manager4 "* ]]; then
        echo "build-test-images: a real ComfyUI offline is built for cpu and core only; complete would" \
             "also need a ComfyUI-Manager checkout and every wheel of docker/complete-requirements.txt" >&2
        exit 64
    fi
    comfyui_dir=docker/comfyui-source
    torch_packages="${TORCH_PACKAGES-torch torchvision torchaudio}"
    echo "build-test-images: ComfyUI from $COMFYUI_SOURCE_DIR (copied to $comfyui_dir), torch: ${torch_packages:-none}"
    rm -rf "$comfyui_dir"
    mkdir -p "$comfyui_dir"
    tar -C "$COMFYUI_SOURCE_DIR" --exclude=.git --exclude=__pycache__ -cf - . | tar -C "$comfyui_dir" -xf -
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
if [[ "$comfyui_dir" != tests/standin_comfyui ]]; then
    # A blank-separated list of requirement specifiers, as the Dockerfiles' TORCH_PACKAGES.
    read -r -a torch_list <<<"$torch_packages"
    requirements+=("${torch_list[@]}" -r "$comfyui_dir/requirements.txt")
fi
manager4_dir=docker/standin-manager4
if [[ " ${variants[*]} " == *" manager4 "* ]]; then
    requirements+=(-r tests/docker/fixtures/manager_requirements.txt aiohttp)
    rm -rf "$manager4_dir"
    mkdir -p "$manager4_dir"
    tar -C tests/standin_comfyui --exclude=__pycache__ -cf - . | tar -C "$manager4_dir" -xf -
    cp tests/docker/fixtures/manager_requirements.txt "$manager4_dir/manager_requirements.txt"
    echo "aiohttp" >"$manager4_dir/requirements.txt"
fi
echo "build-test-images: wheelhouse ($wheelhouse): ${requirements[*]}"
mkdir -p "$wheelhouse"
find "$wheelhouse" -maxdepth 1 -name '*.whl' -delete
if ! "$python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$wheelhouse" "${requirements[@]}"; then
    echo "build-test-images: the host's pip could not get every wheel above. For torch, point pip at" \
         "wheels you have (PIP_FIND_LINKS=/dir) or at an index it reaches (PIP_INDEX_URL=...)" >&2
    exit 1
fi

common_args=(
    --build-arg "WHEELHOUSE_DIR=$wheelhouse"
    --build-arg "PIP_NO_INDEX=1"
)
# cpu and core: the base image, ComfyUI and torch.
base_args=(
    --build-arg "BASE_IMAGE=$base"
    --build-arg "COMFYUI_SOURCE_DIR=$comfyui_dir"
    --build-arg "TORCH_PACKAGES=$torch_packages"
)
# complete: FROM the core image built above, plus its extras.
complete_args=(
    --build-arg "CORE_IMAGE=$repository/core:$tag"
    --build-arg "COMFYUI_MANAGER_SOURCE_DIR=tests/docker/fixtures/comfyui-manager"
    --build-arg "COMPLETE_REQUIREMENTS=tests/docker/fixtures/complete-requirements.txt"
    --build-arg "EXTRA_APT_PACKAGES=git"
)

build() {  # build <Dockerfile variant> <image> <build args...>
    local dockerfile="$1" image="$2" start=$SECONDS log
    shift 2
    echo "build-test-images: building $image from docker/Dockerfile.$dockerfile"
    log="$(mktemp)"
    if ! docker build --file "docker/Dockerfile.$dockerfile" --tag "$image" "$@" . >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        rm -f "$log"
        echo "build-test-images: building $image failed" >&2
        exit 1
    fi
    rm -f "$log"
    echo "build-test-images: built $image in $((SECONDS - start)) s" \
         "($(docker image inspect -f '{{.Size}}' "$image") bytes)"
}

for variant in "${variants[@]}"; do
    case "$variant" in
        cpu|core) build "$variant" "$repository/$variant:$tag" "${common_args[@]}" "${base_args[@]}" ;;
        complete) build complete "$repository/complete:$tag" "${common_args[@]}" "${complete_args[@]}" ;;
        manager4)
            build core "$repository/core-manager4:$tag" "${common_args[@]}" "${base_args[@]}" \
                --build-arg "COMFYUI_SOURCE_DIR=$manager4_dir"
            build complete "$repository/complete-manager4:$tag" "${common_args[@]}" "${complete_args[@]}" \
                --build-arg "CORE_IMAGE=$repository/core-manager4:$tag" ;;
    esac
done

# Earlier builds of these images, untagged by the ones above: only ours (by label), only dangling.
docker image prune --force --filter "label=io.comfy-init.variant" >/dev/null
