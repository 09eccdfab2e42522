#!/usr/bin/env bash
# The distillation evidence, rerunnable: pre-train a teacher on ../shared/data/corpus, make a 3-layer
# student from every other teacher layer, distil it with DistilBERT's triple loss, and compare on held-out
# text (WikiText-2 test) with the same student trained by masked-LM alone for the same steps, plus the
# paper's ablations (no L_ce, no L_cos, no L_mlm, random initialisation instead of teacher layers).
#
# Sizes come from the environment (defaults: the run written up in docs/distillation/README.md):
#   LAYERS HIDDEN HEADS INTERMEDIATE  teacher shape (6 / 256 / 4 / 1024)
#   TEACHER_STEPS STEPS               optimizer steps of pre-training and of each student run (1500 / 250)
#   BATCH SEQ                         sequences per step, max sequence length (32 / 128)
#   ABLATIONS=0                       skip the four ablation runs
#   BF16=0                            fp32 instead of bf16 autocast (bf16: 2.3x faster here, see README)
#   OUT                               output directory (runs/evidence)
# The last lines printed (and OUT/results.md) are the comparison table.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
shared="${SHARED:-$here/../shared}"
out="${OUT:-$here/runs/evidence}"
retort="${RETORT:-$here/build/retort}"
layers="${LAYERS:-6}" hidden="${HIDDEN:-256}" heads="${HEADS:-4}" inter="${INTERMEDIATE:-1024}"
teacher_steps="${TEACHER_STEPS:-1500}" steps="${STEPS:-250}" batch="${BATCH:-32}" seq="${SEQ:-128}"
ablations="${ABLATIONS:-1}"
vocab="$shared/vocab/bert-base-uncased"
corpus_dir="$shared/data/corpus"
precision=()
[[ "${BF16:-1}" == 1 ]] && precision=(--bf16)
[[ -x "$retort" ]] || { echo "error: $retort not built (run scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$out"
started=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - started ))s] $*"; }

if [[ ! -f "$out/corpus/corpus.json" ]]; then
  stamp "corpus: Brown + WikiText-2 valid + WordNet glosses (train), WikiText-2 test (held out)"
  "$retort" prepare-corpus "$corpus_dir/brown.txt" "$corpus_dir/wikitext-2-valid.tokens" \
    "$corpus_dir/wordnet-glosses.txt" --tokenizer "$vocab" --out "$out/corpus" --max-seq-len "$seq"
  "$retort" prepare-corpus "$corpus_dir/wikitext-2-test.tokens" --tokenizer "$vocab" --out "$out/heldout" \
    --max-seq-len "$seq"
fi

common=(--corpus "$out/corpus" --batch-size "$batch" --gradient-accumulation-steps 1 --log-interval 50
        --checkpoint-interval 0 "${precision[@]}")
if [[ ! -f "$out/teacher/final/config.json" ]]; then
  stamp "pre-train the teacher: $layers layers, hidden $hidden, $teacher_steps steps"
  "$retort" pretrain "${common[@]}" --tokenizer "$vocab" --out "$out/teacher" --layers "$layers" \
    --hidden "$hidden" --heads "$heads" --intermediate "$inter" --max-positions "$seq" \
    --max-steps "$teacher_steps" --learning-rate 1e-3 --warmup-prop 0.05
fi

stamp "students: every other teacher layer (DistilBERT init), and a random init of the same shape"
n_student=$(( (layers + 1) / 2 ))
"$retort" init-student "$out/teacher/final" --out "$out/student-init" --strategy every-other
"$retort" init-student "$out/teacher/final" --out "$out/student-random" --random-init --n-layers "$n_student"

# name | initial student | extra flags (the HF example's T 2, alpha_ce 5, alpha_mlm 2, alpha_cos 1 otherwise)
runs=("distilled|student-init|"
      "mlm-only|student-init|--alpha-ce 0 --alpha-cos 0 --alpha-mlm 1")
if [[ "$ablations" == 1 ]]; then
  runs+=("no-ce|student-init|--alpha-ce 0"
         "no-cos|student-init|--alpha-cos 0"
         "no-mlm|student-init|--alpha-mlm 0"
         "random-init|student-random|")
fi
models=("$out/teacher/final")
for r in "${runs[@]}"; do
  IFS='|' read -r name init flags <<<"$r"
  models+=("$out/$name/final")
  [[ -f "$out/$name/final/config.json" ]] && continue
  stamp "student run '$name': $steps steps ${flags:-(triple loss)}"
  # shellcheck disable=SC2086
  "$retort" distill "${common[@]}" --teacher "$out/teacher/final" --student "$out/$init" --out "$out/$name" \
    --max-steps "$steps" $flags
done

stamp "held-out masked-LM accuracy and perplexity (WikiText-2 test, the same masks for every model)"
"$retort" eval-mlm "${models[@]}" --corpus "$out/heldout" | sed "s|$out/||g; s|/final||g" | tee "$out/results.md"
stamp "done"
