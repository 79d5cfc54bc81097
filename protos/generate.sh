#!/usr/bin/env sh
# Regenerates the Python code of our protos; run from anywhere, commit the result.
set -eu
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. protos/switchboard/v1/*.proto
