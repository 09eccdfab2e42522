#!/usr/bin/env bash
# Data-parallel distillation throughput: 1 process against 2 local processes (1 thread each), the
# 2-process runs with the gradient all-reduce overlapped with backward, after it, and overlapped with
# fp16 gradients on the wire. The three are
# interleaved ROUNDS times, since this machine is shared and noisy; each run prints the median of its
# per-step tokens/s (steps 3 onward; logged over all ranks) and rank 0's wait for the gradient
# all-reduce after backward (metrics.jsonl's allreduce_ms), and the script the ratios of the medians.
#
#   docs/distillation/dp_bench.sh [TEACHER STUDENT CORPUS]
# Defaults: the teacher, initial student and corpus docs/distillation/evidence.sh leaves in runs/evidence.
set -euo pipefail
cd "$(dirname "$0")/../.."
retort=${RETORT:-build/retort}
teacher=${1:-runs/evidence/teacher/final}
student=${2:-runs/evidence/student-init}
corpus=${3:-runs/evidence/corpus}
out=${OUT:-runs/dp-bench}
steps=${STEPS:-14}
batch=${BATCH:-16}
rounds=${ROUNDS:-3}
mkdir -p "$out"

median_of() {  # metrics.jsonl, key -> median of that key over steps >= 3
  python3 - "$1" "$2" <<'EOF'
import json, statistics, sys
v = [j[sys.argv[2]] for j in map(json.loads, open(sys.argv[1])) if j["step"] >= 3]
print(f"{statistics.median(v):.0f}")
EOF
}

args=(distill --teacher "$teacher" --student "$student" --corpus "$corpus" --batch-size "$batch"
      --gradient-accumulation-steps 1 --log-interval 1 --checkpoint-interval 0)
declare -A runs
for r in $(seq 1 "$rounds"); do
  rm -rf "$out"/one "$out"/overlap "$out"/after "$out"/fp16
  OMP_NUM_THREADS=1 "$retort" --threads 1 "${args[@]}" --max-steps "$steps" --out "$out/one" > /dev/null
  "$retort" launch --nproc 2 -- "$retort" "${args[@]}" --max-steps "$steps" --out "$out/overlap" > /dev/null
  "$retort" launch --nproc 2 -- "$retort" "${args[@]}" --max-steps "$steps" --out "$out/after" \
    --no-allreduce-overlap > /dev/null
  "$retort" launch --nproc 2 -- "$retort" "${args[@]}" --max-steps "$steps" --out "$out/fp16" \
    --allreduce-dtype fp16 > /dev/null
  one=$(median_of "$out/one/metrics.jsonl" tokens_per_s)
  overlap=$(median_of "$out/overlap/metrics.jsonl" tokens_per_s)
  after=$(median_of "$out/after/metrics.jsonl" tokens_per_s)
  wait_overlap=$(median_of "$out/overlap/metrics.jsonl" allreduce_ms)
  wait_after=$(median_of "$out/after/metrics.jsonl" allreduce_ms)
  fp16=$(median_of "$out/fp16/metrics.jsonl" tokens_per_s)
  wait_fp16=$(median_of "$out/fp16/metrics.jsonl" allreduce_ms)
  runs[$r]="$one $overlap $after $wait_overlap $wait_after $fp16 $wait_fp16"
  echo "round $r: tokens/s 1 process $one | 2 processes, overlapped $overlap (waits $wait_overlap ms a step" \
       "for the all-reduce after backward) | 2 processes, after backward $after (waits $wait_after ms)" \
       "| 2 processes, overlapped, fp16 on the wire $fp16 (waits $wait_fp16 ms)"
done
python3 - "${runs[@]}" <<'EOF'
import statistics, sys
rows = [list(map(float, r.split())) for r in sys.argv[1:]]
one, ov, af, wov, waf, h, wh = (statistics.median(c) for c in zip(*rows))
print(f"median over rounds: 1 process {one:.0f}, 2 overlapped {ov:.0f} ({ov/one:.2f}x, "
      f"{100*ov/one/2:.0f}% efficiency), 2 after backward {af:.0f} ({af/one:.2f}x, {100*af/one/2:.0f}%); "
      f"overlap/after {ov/af:.2f}x; all-reduce wait after backward {wov:.0f} ms overlapped, {waf:.0f} ms not; "
      f"fp16 on the wire {h:.0f} ({h/one:.2f}x), wait {wh:.0f} ms")
EOF
