#!/usr/bin/env bash
# Builds .gpu/ (ignored by git): what tools/gpu/run.sh needs on a GPU machine that has no Node and
# no network (docs/verification.md): Node itself, the production node_modules pruned to linux-x64,
# and Debian's Vulkan loader with the GLX/X11 libraries the NVIDIA Vulkan driver loads.
# Then carry `.gpu` and run `bash tools/gpu/run.sh` there.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu/debs
[ -f .gpu/node.xz ] || xz -6 -T0 -c "$(command -v node)" > .gpu/node.xz
if [ ! -f .gpu/modules.tar.xz ] || [ package-lock.json -nt .gpu/modules.tar.xz ]; then
  python3 tools/gpu/pack_modules.py .gpu/modules.tar.xz
fi
DEBS=(libvulkan1 libglvnd0 libglx0 libgl1 libegl1 libx11-6 libx11-data libxext6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0)
if [ "$(ls .gpu/debs/*.deb 2>/dev/null | wc -l)" -lt "${#DEBS[@]}" ]; then
  (cd .gpu/debs && apt-get download "${DEBS[@]}") || { apt-get update -qq && (cd .gpu/debs && apt-get download "${DEBS[@]}"); }
fi
du -sh .gpu
