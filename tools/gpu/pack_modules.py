"""Packs the project's production node_modules, pruned to what runs on linux-x64, into one
tar.xz for the GPU machine (no network there, and the carry is limited to 64 MiB).

    python3 tools/gpu/pack_modules.py .gpu/modules.tar.xz

The package list is npm's own (`npm ls --omit=dev --all --parseable`); from each package it
drops what a Node process on linux-x64 never loads: other platforms' native builds (webgpu's
Dawn, sodium-native's prebuilds), better-sqlite3's C sources, tfjs' browser and ESM builds (Node
loads each tfjs package's `dist/*.node.js` and the wasm backend's `.wasm`), source maps,
TypeScript declarations and docs.
"""
import json
import os
import subprocess
import sys
import tarfile

out = sys.argv[1]
root = os.getcwd()
listing = subprocess.run(["npm", "ls", "--omit=dev", "--all", "--parseable"], capture_output=True, text=True, check=False).stdout
packages = sorted({os.path.relpath(p, root) for p in listing.split() if "node_modules" in p})
# tsx runs the TypeScript sources there too: its esbuild binary for this platform.
for extra in ("node_modules/@esbuild/linux-x64",):
    if os.path.isdir(extra):
        packages.append(extra)

SKIP_SUFFIXES = (".map", ".d.ts", ".d.mts", ".d.cts", ".md", ".markdown", ".ts.map")


def keep(pkg: str, rel: str) -> bool:
    name = pkg.split("node_modules/")[-1]
    if rel.endswith(SKIP_SUFFIXES) or "/test/" in f"/{rel}" or rel.startswith(("docs/", "example", "benchmark")):
        return False
    if name == "webgpu":
        return rel in ("package.json", "index.js", "LICENSE.md") or rel.startswith("dist/linux-x64/") or rel.startswith("node_modules/")
    if name == "sodium-native" and rel.startswith("prebuilds/"):
        return rel.startswith("prebuilds/linux-x64/")
    if name == "better-sqlite3":
        return rel == "package.json" or rel.startswith("lib/") or rel == "build/Release/better_sqlite3.node"
    if name.startswith("@tensorflow/"):
        if rel == "package.json":
            return True
        if not rel.startswith("dist/") or "/" in rel[len("dist/"):]:
            return False
        base = rel[len("dist/"):]
        return base.endswith(".node.js") or base.endswith(".wasm") or base.endswith(".worker.js")
    return True


files = 0
size = 0
with tarfile.open(out, "w:xz", preset=6) as tar:
    for pkg in packages:
        for dirpath, dirnames, filenames in os.walk(pkg):
            # nested node_modules are packages of their own in npm's list
            if dirpath != pkg and os.path.basename(dirpath) == "node_modules" and not pkg.endswith("webgpu"):
                dirnames[:] = []
                continue
            for f in filenames:
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, pkg)
                if os.path.islink(path) or not keep(pkg, rel):
                    continue
                tar.add(path, arcname=path)
                files += 1
                size += os.path.getsize(path)
        # npm's .bin links (tsx, esbuild) are not needed: run.sh calls node on the entry files.
print(json.dumps({"packages": len(packages), "files": files, "bytes": size, "archive_bytes": os.path.getsize(out)}))
