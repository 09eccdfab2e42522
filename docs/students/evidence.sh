#!/usr/bin/env bash
# The three students side by side, rerunnable: on the teacher, corpus and fine-tuned teachers of the
# DistilBERT experiment (docs/distillation/evidence.sh, docs/downstream/evidence.sh):
#   - TinyBERT-style (narrower and shallower, randomly initialised): general distillation on attention
#     scores, hidden states and embeddings (uniform layer map, one shared projection), then per task
#       plain: fine-tuned like the other students;
#       -D:    TinyBERT's two stages on augmented data (intermediate terms, then soft cross-entropy on
#              the fine-tuned teacher's logits);
#   - MobileBERT-style (the teacher's depth and width between blocks, bottlenecks inside, randomly
#     initialised): progressive transfer layer by layer (feature maps, attention KL, embeddings with
#     layer 0), then joint distillation with the DistilBERT student's triple loss; fine-tuned per task.
# The GLUE dev scores are printed beside the teacher, the DistilBERT-style student and student-D (seed-1
# runs of docs/downstream), with parameters, and `retort bench` compares the speed of all of them.
#
# Settings (environment): LAYERS HIDDEN INTERMEDIATE (3 / 128 / 512: the TinyBERT student), STEPS (250
# general distillation steps, as the DistilBERT student), MB_HIDDEN MB_EMB MB_BOTTLENECK MB_INTER MB_FFNS
# (256 / 64 / 64 / 256 / 4: the MobileBERT student, as many layers as the teacher), MB_STEPS_PER_LAYER (40),
# BATCH SEQ (32 / 128), COPIES (4 augmented copies per example; TinyBERT used 20-30), MAX_TRAIN (2000 rows
# per task, as docs/downstream), EPOCHS (3), LR (5e-5), TASKS (sst2,mrpc), MODELS (runs/evidence),
# DOWNSTREAM (runs/downstream), OUT (runs/students). The last lines printed (and OUT/results.md) are the table.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
shared="${SHARED:-$here/../shared}"
models="${MODELS:-$here/runs/evidence}"
downstream="${DOWNSTREAM:-$here/runs/downstream}"
out="${OUT:-$here/runs/students}"
retort="${RETORT:-$here/build/retort}"
layers="${LAYERS:-3}" hidden="${HIDDEN:-128}" inter="${INTERMEDIATE:-512}"
steps="${STEPS:-250}" batch="${BATCH:-32}" seq="${SEQ:-128}" copies="${COPIES:-4}"
max_train="${MAX_TRAIN:-2000}" epochs="${EPOCHS:-3}" lr="${LR:-5e-5}"
mb_hidden="${MB_HIDDEN:-256}" mb_emb="${MB_EMB:-64}" mb_bottleneck="${MB_BOTTLENECK:-64}" mb_inter="${MB_INTER:-256}"
mb_ffns="${MB_FFNS:-4}" mb_steps="${MB_STEPS_PER_LAYER:-40}"
IFS=, read -r -a tasks <<< "${TASKS:-sst2,mrpc}"
[[ -x "$retort" ]] || { echo "error: $retort not built (run scripts/setup.sh)" >&2; exit 1; }
[[ -f "$models/teacher/final/config.json" ]] || { echo "error: run docs/distillation/evidence.sh first" >&2; exit 1; }
tb="$out/tinybert" mb="$out/mobilebert"
mkdir -p "$tb" "$mb"
started=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - started ))s] $*"; }
display() { case "$1" in sst2) echo SST-2;; mrpc) echo MRPC;; rte) echo RTE;; stsb) echo STS-B;; cola) echo CoLA;;
                          wnli) echo WNLI;; *) echo "$1";; esac; }

if [[ ! -f "$tb/general/final/config.json" ]]; then
  stamp "TinyBERT-style student: $layers layers x $hidden (FFN $inter), random init; general distillation, $steps steps"
  "$retort" init-student "$models/teacher/final" --out "$tb/student-init" --random-init --format bert \
    --n-layers "$layers" --hidden-size "$hidden" --intermediate-size "$inter"
  "$retort" distill --corpus "$models/corpus" --teacher "$models/teacher/final" --student "$tb/student-init" \
    --out "$tb/general" --alpha-ce 0 --alpha-mlm 0 --alpha-cos 0 --alpha-att 1 --alpha-hidden 1 --alpha-emb 1 \
    --layer-map uniform --projection shared --max-steps "$steps" --batch-size "$batch" \
    --gradient-accumulation-steps 1 --learning-rate 5e-4 --log-interval 50 --checkpoint-interval 0 --bf16
fi

teacher_layers=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['num_hidden_layers'])" "$models/teacher/final/config.json")
if [[ ! -f "$mb/distilled/final/config.json" ]]; then
  stamp "MobileBERT-style student: $teacher_layers layers x $mb_hidden (embedding $mb_emb, bottleneck $mb_bottleneck, $mb_ffns FFNs of $mb_inter)"
  "$retort" init-student "$models/teacher/final" --out "$mb/student-init" --random-init --format mobilebert \
    --n-layers "$teacher_layers" --hidden-size "$mb_hidden" --embedding-size "$mb_emb" --bottleneck-size "$mb_bottleneck" \
    --intermediate-size "$mb_inter" --ffns "$mb_ffns"
  stamp "progressive transfer ($mb_steps steps per layer), then $steps joint steps of the triple loss"
  "$retort" distill --corpus "$models/corpus" --teacher "$models/teacher/final" --student "$mb/student-init" \
    --out "$mb/distilled" --alpha-att 1 --alpha-hidden 1 --alpha-emb 1 --attention-loss kl --projection none \
    --progressive-steps-per-layer "$mb_steps" --max-steps "$steps" --batch-size "$batch" \
    --gradient-accumulation-steps 1 --learning-rate 5e-4 --log-interval 50 --checkpoint-interval 0 --bf16 $( [[ -f "$mb/distilled/checkpoint-last" ]] && echo --resume )
fi

common=(--n-epoch "$epochs" --learning-rate "$lr" --batch-size "$batch" --max-seq-length "$seq" --log-interval 1000 --bf16)
# TinyBERT's two task stages on the augmented data: task, fine-tuned teacher, run suffix, fine-tuning flags.
tiny_d() {
  local t=$1 teacher=$2 suffix=$3
  shift 3
  "$retort" finetune --task "$t" --model "$tb/general/final" --teacher "$teacher" --data "$tb/aug" \
    --out "$tb/$t/stage1$suffix" --alpha-task 0 --alpha-ce 0 --alpha-att 1 --alpha-hidden 1 --alpha-emb 1 \
    --layer-map uniform --projection shared --seed 1 "$@" | tail -1
  "$retort" finetune --task "$t" --model "$tb/$t/stage1$suffix/best" --teacher "$teacher" --data "$tb/aug" \
    --out "$tb/$t/stage2$suffix" --alpha-task 0 --alpha-ce 1 --prediction-loss soft_ce --temperature 1 --seed 1 \
    "$@" | tail -1
}
for t in "${tasks[@]}"; do
  d=$(display "$t")
  teacher="$downstream/glue/teacher/$t/seed-1/best"
  [[ -f "$teacher/config.json" ]] || { echo "error: $teacher missing (run docs/downstream/evidence.sh)" >&2; exit 1; }
  if [[ ! -f "$tb/$t/plain/eval_results.json" ]]; then
    stamp "$d: plain fine-tuning"
    "$retort" finetune --task "$t" --model "$tb/general/final" --data "$shared/data/glue" --out "$tb/$t/plain" \
      --max-train-examples "$max_train" --seed 1 "${common[@]}" | tail -1
  fi
  if [[ ! -f "$mb/$t/plain/eval_results.json" ]]; then
    stamp "$d: MobileBERT-style student, fine-tuning"
    "$retort" finetune --task "$t" --model "$mb/distilled/final" --data "$shared/data/glue" --out "$mb/$t/plain" \
      --max-train-examples "$max_train" --seed 1 "${common[@]}" | tail -1
  fi
  if [[ ! -f "$tb/$t/stage2/eval_results.json" ]]; then
    stamp "$d: augmentation ($copies copies of the first $max_train rows) and two-stage task distillation"
    "$retort" augment --task "$t" --data "$shared/data/glue" --model "$models/teacher/final" --out "$tb/aug" \
      --copies "$copies" --max-examples "$max_train" --seed 1 | tail -1
    tiny_d "$t" "$teacher" "" "${common[@]}"
  fi
done

# The plain fine-tunings again at a second rate (RERUN_LR, default 3e-4: BERT's 5e-5 leaves the small
# random-init students on the majority class), and tinybert-D from the teacher fine-tuned at that rate on
# RERUN_D_TASKS (default sst2: MRPC's 18k augmented pairs take ~20 minutes per stage here).
lr2="${RERUN_LR:-3e-4}"
IFS=, read -r -a d_tasks <<< "${RERUN_D_TASKS:-sst2}"
common2=(--n-epoch "$epochs" --learning-rate "$lr2" --batch-size "$batch" --max-seq-length "$seq" --log-interval 1000 --bf16)
ft() {  # model dir, task, run dir
  [[ -f "$3/eval_results.json" ]] && return
  stamp "$(display "$2"): fine-tuning $1 at lr $lr2"
  "$retort" finetune --task "$2" --model "$1" --data "$shared/data/glue" --out "$3" --max-train-examples "$max_train" \
    --seed 1 "${common2[@]}" | tail -1
}
for t in "${tasks[@]}"; do
  ft "$models/teacher/final" "$t" "$out/lr$lr2/teacher/$t"
  ft "$models/distilled/final" "$t" "$out/lr$lr2/distilled/$t"
  ft "$tb/general/final" "$t" "$tb/$t/plain-lr$lr2"
  ft "$mb/distilled/final" "$t" "$mb/$t/plain-lr$lr2"
done
for t in "${d_tasks[@]}"; do
  [[ -f "$tb/$t/stage2-lr$lr2/eval_results.json" ]] && continue
  stamp "$(display "$t"): tinybert-D at lr $lr2 from the teacher fine-tuned at that rate"
  tiny_d "$t" "$out/lr$lr2/teacher/$t/best" "-lr$lr2" "${common2[@]}"
done

stamp "speed: teacher and the three students in one bench run (kept when OUT/bench.md exists)"
[[ -f "$out/bench.md" ]] || "$retort" bench "$models/teacher/final" "$models/distilled/final" "$tb/general/final" "$mb/distilled/final" \
  --seq-lens "$seq" --batch 32 --precisions fp32 bf16 --no-onnxruntime > "$out/bench.md"

python3 - "$out" "$downstream" "$lr2" "${tasks[@]}" <<'PY' | tee "$out/results.md"
import json, sys, os
out, downstream, lr2, tasks = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
tb, mb = os.path.join(out, "tinybert"), os.path.join(out, "mobilebert")
names = {"sst2": "SST-2", "mrpc": "MRPC", "rte": "RTE", "stsb": "STS-B", "cola": "CoLA", "wnli": "WNLI"}
glue = json.load(open(os.path.join(downstream, "glue", "glue.json")))
rows = []
for m in glue["models"]:
    if m["name"] not in ("teacher", "student", "student-D"):
        continue
    scores = {t: m["tasks"][names[t]]["scores"][0] for t in tasks if names[t] in m["tasks"]}
    rows.append((m["name"] + (" (DistilBERT-style)" if m["name"].startswith("student") else ""), m["parameters"], scores))
for base, run, label in ((tb, "plain", "tinybert (TinyBERT-style, general distillation only)"),
                         (tb, "stage2", "tinybert-D (+ task distillation, augmented)"),
                         (mb, "plain", "mobilebert (MobileBERT-style, progressive + joint)")):
    scores, params = {}, None
    for t in tasks:
        p = os.path.join(base, t, run, "eval_results.json")
        if os.path.exists(p):
            e = json.load(open(p))
            scores[t] = e["best_score"]
            params = e.get("parameters", params)
    rows.append((label, params, scores))
for path, label in ((os.path.join(out, f"lr{lr2}", "teacher", "{t}"), "teacher"),
                    (os.path.join(out, f"lr{lr2}", "distilled", "{t}"), "student (DistilBERT-style)"),
                    (os.path.join(tb, "{t}", f"plain-lr{lr2}"), "tinybert"),
                    (os.path.join(tb, "{t}", f"stage2-lr{lr2}"), "tinybert-D"),
                    (os.path.join(mb, "{t}", f"plain-lr{lr2}"), "mobilebert")):
    scores, params = {}, None
    for t in tasks:
        p = os.path.join(path.format(t=t), "eval_results.json")
        if os.path.exists(p):
            e = json.load(open(p))
            scores[t] = e["best_score"]
            params = e.get("parameters", params)
    rows.append((f"{label}, fine-tuned at lr {lr2}", params, scores))
print("| model | params | " + " | ".join(names[t] for t in tasks) + " | macro |")
print("|---|---:|" + "---:|" * (len(tasks) + 1))
for name, params, scores in rows:
    cells = [f"{100 * scores[t]:.1f}" if t in scores else "" for t in tasks]
    macro = f"{100 * sum(scores.values()) / len(scores):.1f}" if len(scores) == len(tasks) else ""
    p = f"{params / 1e6:.2f}M" if params else ""
    print(f"| {name} | {p} | " + " | ".join(cells) + f" | {macro} |")
PY
cat "$out/bench.md"
stamp "done"
