#!/usr/bin/env bash
# The main job, end to end on ../shared data, sized to finish in minutes on 2 cores: set up (apt +
# Release build), then the distillation evidence (docs/distillation/evidence.sh) at a small size:
# tokenize the corpus, pre-train a 4-layer teacher, initialise a 2-layer student from every other
# teacher layer, distil it with the triple loss and, for comparison, train the same student with MLM
# alone for the same steps; compare all three on held-out WikiText-2 (masked-LM accuracy, perplexity).
# Everything goes under runs/demo (OUT=...). TEACHER_STEPS / STEPS scale the training length;
# ABLATIONS=1 adds the paper's ablations. The full-size run is docs/distillation/evidence.sh itself.
# Then the downstream comparison (docs/downstream/evidence.sh) at a small size: teacher and student
# fine-tuned on SST-2, STS-B and RTE (2,000 training rows, 1 epoch, 1 seed; TASKS / SEEDS / EPOCHS /
# MAX_TRAIN to change), with and without task-specific distillation, as the paper's Table 1, and SQuAD
# on the shared excerpt. DOWNSTREAM=0 skips it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh"
export OUT="${OUT:-$here/runs/demo}"
export LAYERS="${LAYERS:-4}" HIDDEN="${HIDDEN:-128}" HEADS="${HEADS:-2}" INTERMEDIATE="${INTERMEDIATE:-512}"
export TEACHER_STEPS="${TEACHER_STEPS:-300}" STEPS="${STEPS:-100}" ABLATIONS="${ABLATIONS:-0}"
bash "$here/docs/distillation/evidence.sh"
"$here/build/retort" inspect "$OUT/distilled/final"
if [[ "${DOWNSTREAM:-1}" == 1 ]]; then
  MODELS="$OUT" OUT="$OUT/downstream" TASKS="${TASKS:-sst2,stsb,rte}" SEEDS="${SEEDS:-1}" EPOCHS="${EPOCHS:-1}" \
    MAX_TRAIN="${MAX_TRAIN:-2000}" bash "$here/docs/downstream/evidence.sh"
fi
