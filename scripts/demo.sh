#!/usr/bin/env bash
# The main job, end to end on ../shared data, sized to finish in minutes on 2 cores:
#   1. set up (apt + Release build)          4. initialise a 2-layer student from every other teacher layer
#   2. tokenize a corpus into shards         5. distil it (triple loss) and, for comparison, train the same
#   3. pre-train a small 4-layer teacher        student with MLM alone for the same steps
#                                            6. compare teacher / distilled / MLM-only on held-out text
# Everything goes under runs/demo (override with OUT=...). STEPS scales the training length.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${SHARED:-$here/../shared}"
out="${OUT:-$here/runs/demo}"
steps="${STEPS:-100}"
bash "$here/scripts/setup.sh"
retort="$here/build/retort"
vocab="$shared/vocab/bert-base-uncased"
mkdir -p "$out"

echo "== corpus"
"$retort" prepare-corpus "$shared/data/corpus/wikitext-2-valid.tokens" "$shared/data/corpus/brown.txt" \
  --tokenizer "$vocab" --out "$out/corpus" --max-seq-len 128
"$retort" prepare-corpus "$shared/data/corpus/wikitext-2-test.tokens" \
  --tokenizer "$vocab" --out "$out/heldout" --max-seq-len 128

common=(--corpus "$out/corpus" --batch-size 32 --gradient-accumulation-steps 1 --log-interval 25
        --checkpoint-interval 100)
echo "== pre-train the teacher (4 layers, hidden 128)"
"$retort" pretrain "${common[@]}" --tokenizer "$vocab" --out "$out/teacher" \
  --layers 4 --hidden 128 --heads 2 --intermediate 512 --max-positions 128 \
  --max-steps $((steps * 2)) --learning-rate 1e-3

echo "== student: every other teacher layer"
"$retort" init-student "$out/teacher/final" --out "$out/student-init" --strategy every-other

echo "== distil (T 2, alpha_ce 5, alpha_mlm 2, alpha_cos 1) and MLM alone for the same steps"
"$retort" distill "${common[@]}" --teacher "$out/teacher/final" --student "$out/student-init" \
  --out "$out/distilled" --max-steps "$steps"
"$retort" distill "${common[@]}" --teacher "$out/teacher/final" --student "$out/student-init" \
  --out "$out/mlm-only" --max-steps "$steps" --alpha-ce 0 --alpha-cos 0 --alpha-mlm 1

echo "== held-out masked-LM accuracy and perplexity (WikiText-2 test)"
"$retort" eval-mlm "$out/teacher/final" "$out/distilled/final" "$out/mlm-only/final" --corpus "$out/heldout" \
  --max-sequences 1000 | tee "$out/results.md"
"$retort" inspect "$out/teacher/final" | tail -n +1
"$retort" inspect "$out/distilled/final" | tail -n +1
