#!/usr/bin/env bash
# Regenerate the protobuf modules (and their mypy stubs) from src/aiolibp2p/wire/pb/*.proto.
# The generated files are committed, so users never need protoc; run this after editing a .proto.
set -euo pipefail
cd "$(dirname "$0")/../src/aiolibp2p/wire/pb"
python -m grpc_tools.protoc -I. --python_out=. --mypy_out=quiet:. ./*.proto
# protoc writes absolute imports for cross-file imports ("import x_pb2"); make them package-relative.
sed -i -E 's/^import ([a-z_0-9]+_pb2) as /from . import \1 as /' ./*_pb2.py
