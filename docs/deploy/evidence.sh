#!/usr/bin/env bash
# Deployment evidence (issue 5): the speed/size table at BERT-base width, and reduced-precision accuracy
# on real fine-tuned models. Writes runs/deploy/ (OUT=... to change).
#  1. A 12-layer/768 BERT (one pre-training step on the evidence corpus: the weights do not matter for
#     speed) and the 6-layer DistilBERT student initialised from every other layer, both given a
#     2-label classification head, timed with `retort bench` at fp32, bf16, int8 and in ONNX Runtime.
#  2. SST-2 dev accuracy of the fine-tuned teacher and student of docs/downstream at fp32, bf16, int8.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
retort="$here/build/retort"
out="${OUT:-$here/runs/deploy}"
corpus="${CORPUS:-$here/runs/evidence/corpus}"         # made by docs/distillation/evidence.sh
downstream="${DOWNSTREAM:-$here/runs/downstream/glue}"  # made by docs/downstream/evidence.sh
vocab="$here/../shared/vocab/bert-base-uncased"
mkdir -p "$out"

classifier() {  # $1 MLM directory -> $2 the same weights with a fresh 2-label classification head
  rm -rf "$2" && cp -r "$1" "$2"
  python3 - "$2/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["architectures"] = [("DistilBert" if c["model_type"] == "distilbert" else "Bert") + "ForSequenceClassification"]
c["id2label"] = {"0": "negative", "1": "positive"}; c["label2id"] = {"negative": 0, "positive": 1}
json.dump(c, open(p, "w"), indent=2)
PY
}

if [ ! -d "$out/bert-768-cls" ]; then
  "$retort" pretrain --corpus "$corpus" --tokenizer "$vocab" --out "$out/bert-768" --layers 12 --hidden 768 \
    --heads 12 --intermediate 3072 --max-positions 512 --max-steps 1 --batch-size 2
  "$retort" init-student "$out/bert-768/final" --out "$out/distil-768"
  classifier "$out/bert-768/final" "$out/bert-768-cls"
  classifier "$out/distil-768" "$out/distil-768-cls"
fi
"$retort" bench "$out/bert-768-cls" "$out/distil-768-cls" --seq-lens 32,128,512 --batch 32 --reps 20 \
  --json "$out/bench-768.json" | tee "$out/bench-768.md"

if [ -d "$downstream/teacher/sst2/seed-1/best" ]; then
  for m in teacher student-D; do
    for p in fp32 bf16 int8; do
      acc=$("$retort" evaluate --model "$downstream/$m/sst2/seed-1/best" --data "$here/../shared/data/glue" \
        --precision "$p" | python3 -c 'import json,sys; print("%.2f" % (100 * json.load(sys.stdin)["dev"]["metrics"]["accuracy"]))')
      echo "| $m | $p | $acc |"
    done
  done | tee "$out/sst2-precision.md"
fi
