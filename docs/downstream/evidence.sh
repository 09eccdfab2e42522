#!/usr/bin/env bash
# The downstream evidence, rerunnable: the teacher and the distilled student of docs/distillation/
# fine-tuned on every GLUE task in ../shared/data/glue with several seeds, the student with and
# without task-specific distillation from the fine-tuned teacher ("DistilBERT (D)"), printed as the
# paper's Table 1; then SQuAD EM/F1 on the shared excerpt (train article only: expect low numbers).
#
# Needs the models of docs/distillation/evidence.sh (MODELS, default runs/evidence). Settings come from
# the environment:
#   SEEDS (1,2,3)  TASKS (every task folder in ../shared/data/glue)  EPOCHS (3)  LR (5e-5)  BATCH (32)
#   MAX_TRAIN (2000: a seeded subset of larger training sets; 0 = all)  SEQ (128)  BF16 (1)
#   SQUAD_SEQ (SEQ: SQuAD windows; the stride is half of it, questions at most a quarter)
#   OUT (runs/downstream)
# The last lines printed (and OUT/glue.md, OUT/squad.md) are the tables.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
shared="${SHARED:-$here/../shared}"
models="${MODELS:-$here/runs/evidence}"
out="${OUT:-$here/runs/downstream}"
retort="${RETORT:-$here/build/retort}"
seeds="${SEEDS:-1,2,3}" epochs="${EPOCHS:-3}" lr="${LR:-5e-5}" batch="${BATCH:-32}"
max_train="${MAX_TRAIN:-2000}" seq="${SEQ:-128}"
squad_seq="${SQUAD_SEQ:-$seq}"  # the paper's 384 needs a model with that many positions
precision=()
[[ "${BF16:-1}" == 1 ]] && precision=(--bf16)
tasks=()
[[ -n "${TASKS:-}" ]] && tasks=(--tasks "$TASKS")
[[ -x "$retort" ]] || { echo "error: $retort not built (run scripts/setup.sh)" >&2; exit 1; }
for m in teacher distilled; do
  [[ -f "$models/$m/final/config.json" ]] || { echo "error: $models/$m/final missing (run docs/distillation/evidence.sh)" >&2; exit 1; }
done
mkdir -p "$out"
started=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - started ))s] $*"; }

common=(--n-epoch "$epochs" --learning-rate "$lr" --batch-size "$batch" --max-train-examples "$max_train"
        --max-seq-length "$seq" --log-interval 1000 "${precision[@]}")
stamp "GLUE: teacher, distilled student, distilled student + task distillation; seeds $seeds"
"$retort" glue --model "teacher=$models/teacher/final" --model "student=$models/distilled/final" \
  --model "student-D=$models/distilled/final@teacher" "${tasks[@]}" --seeds "$seeds" \
  --data "$shared/data/glue" --out "$out/glue" "${common[@]}" > "$out/glue.md"

stamp "SQuAD v1.1 excerpt: train on its one train article, evaluate on its one dev article"
{
  echo "| model | result |"
  echo "|---|---|"
  for m in teacher distilled; do
    line=$("$retort" finetune --task squad --model "$models/$m/final" --data "$shared/data/squad" --out "$out/squad-$m" \
      --n-epoch "$epochs" --learning-rate "$lr" --batch-size "$batch" --max-seq-length "$squad_seq" \
      --doc-stride "$(( squad_seq / 2 ))" --max-query-length "$(( squad_seq / 4 ))" "${precision[@]}" \
      --log-interval 1000 | tail -1)
    echo "| $m | ${line%%; model in*} |"
  done
} > "$out/squad.md"
cat "$out/glue.md" "$out/squad.md"
stamp "done"
