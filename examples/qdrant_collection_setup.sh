#!/usr/bin/env bash
# Create a Qdrant collection for a trained adaptor and load SciFact's MiniLM embeddings into it.
# Against a server:   QDRANT="--url http://localhost:6333"   bash examples/qdrant_collection_setup.sh
# Without one (default): qdrant-client's local mode in $OUT/qdrant_store, or QDRANT="--edge-path DIR".
# $OUT (the adaptor and the local store) is a new temporary folder unless you name one.
set -euo pipefail
DATA=${DATA:-../shared/data/scifact}
EMB=$DATA/embeddings/all-MiniLM-L6-v2
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/matry_qdrant_example.XXXXXX")}
echo "writing under $OUT"
QDRANT=${QDRANT:---path $OUT/qdrant_store}
# the CLI of the README's virtualenv when there is one (no need to activate it), else the one on PATH
HERE=$(cd "$(dirname "$0")/.." && pwd)
if [ -x "$HERE/.venv/bin/matry-index" ]; then MATRY=${MATRY:-$HERE/.venv/bin/matry-index}; else MATRY=${MATRY:-matry-index}; fi
mkdir -p "$OUT"
[ -d "$OUT/adaptor" ] || "$MATRY" train --data "$DATA" --out "$OUT/adaptor"
# shellcheck disable=SC2086
"$MATRY" qdrant-setup $QDRANT --collection scifact --adaptor "$OUT/adaptor" \
  --embeddings "$EMB/corpus.npy" --ids "$EMB/corpus.ids"
# running it again validates the collection (schema + adaptor hash) and upserts: idempotent
# shellcheck disable=SC2086
"$MATRY" qdrant-setup $QDRANT --collection scifact --adaptor "$OUT/adaptor"
