#!/usr/bin/env bash
# The complete image's ComfyUI-Manager, picked by the ComfyUI release the image holds:
#
# - the release has manager_requirements.txt (ComfyUI-Manager 4): pip install -r it, so the
#   comfyui_manager package is exactly the release's pin; ComfyUI starts it when given
#   --enable-manager, which comfy-init passes (COMFY_MANAGER=auto finds the package). Nothing else.
# - an older release: the custom-node Manager (COMFYUI_MANAGER_REF), outside every instance in
#   $EXTRAS/custom_nodes, added to ComfyUI's custom_nodes folders by the extra paths file next to
#   main.py: extra_paths.yaml when the release reads that name, else extra_model_paths.yaml.
#
#   install-manager.sh SOURCE_DIR YAML     (in the image: /tmp/comfyui-manager-source, the yaml)
#
# Environment: COMFYUI_DIR (/opt/comfyui), EXTRAS (/opt/comfy-extras), PIP (pip),
# COMFYUI_MANAGER_REF and COMFYUI_MANAGER_REPOSITORY (a git clone when SOURCE_DIR has no __init__.py).
set -euo pipefail

source_dir="$1"
yaml="$2"
comfyui="${COMFYUI_DIR:-/opt/comfyui}"
extras="${EXTRAS:-/opt/comfy-extras}"
read -r -a pip <<<"${PIP:-pip}"

if [[ -f "$comfyui/manager_requirements.txt" ]]; then
    echo "install-manager: ComfyUI-Manager 4 from $comfyui/manager_requirements.txt:" \
         "$(grep -v '^#' "$comfyui/manager_requirements.txt" | tr '\n' ' ')"
    "${pip[@]}" install -r "$comfyui/manager_requirements.txt"
    rm -rf "$source_dir"
    exit 0
fi

mkdir -p "$extras/custom_nodes"
if [[ -f "$source_dir/__init__.py" ]]; then
    mv "$source_dir" "$extras/custom_nodes/ComfyUI-Manager"
else
    rm -rf "$source_dir"
    git clone --depth 1 --branch "${COMFYUI_MANAGER_REF:?}" "${COMFYUI_MANAGER_REPOSITORY:?}" \
        "$extras/custom_nodes/ComfyUI-Manager"
fi
"${pip[@]}" install -r "$extras/custom_nodes/ComfyUI-Manager/requirements.txt"

# Which name the release reads: a release that knows extra_paths.yaml names it in its sources (it
# then prefers that file to extra_model_paths.yaml). One file only, so the release never has to
# pick between two (and warn about it).
name=extra_model_paths.yaml
if grep -qs 'extra_paths\.yaml' "$comfyui/main.py" "$comfyui/folder_paths.py" "$comfyui/utils/extra_config.py"; then
    name=extra_paths.yaml
fi
install -m 0644 "$yaml" "$comfyui/$name"
echo "install-manager: the custom-node ComfyUI-Manager in $extras/custom_nodes, wired by $comfyui/$name"
