#!/usr/bin/env bash
# The main job, end to end on ../shared data, sized to finish in minutes on 2 cores: set up (apt +
# Release build), then the distillation evidence (docs/distillation/evidence.sh) at a small size:
# tokenize the corpus, pre-train a 4-layer teacher, initialise a 2-layer student from every other
# teacher layer, distil it with the triple loss and, for comparison, train the same student with MLM
# alone for the same steps; compare all three on held-out WikiText-2 (masked-LM accuracy, perplexity).
# Everything goes under runs/demo (OUT=...). TEACHER_STEPS / STEPS scale the training length;
# ABLATIONS=1 adds the paper's ablations. The full-size run is docs/distillation/evidence.sh itself.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh"
export OUT="${OUT:-$here/runs/demo}"
export LAYERS="${LAYERS:-4}" HIDDEN="${HIDDEN:-128}" HEADS="${HEADS:-2}" INTERMEDIATE="${INTERMEDIATE:-512}"
export TEACHER_STEPS="${TEACHER_STEPS:-300}" STEPS="${STEPS:-100}" ABLATIONS="${ABLATIONS:-0}"
bash "$here/docs/distillation/evidence.sh"
"$here/build/retort" inspect "$OUT/distilled/final"
