#!/usr/bin/env bash
# Regenerates src/api/gen from src/api/proto. Offline: buf and protoc-gen-es come from node_modules.
# `buf build` is the compile check; buf's lint style rules do not fit an upstream-compatible schema.
set -euo pipefail
cd "$(dirname "$0")/.."
node_modules/.bin/buf build
node_modules/.bin/buf generate
echo "generated: $(find src/api/gen -name '*.ts' | wc -l) files in src/api/gen"
