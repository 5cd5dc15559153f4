#!/usr/bin/env bash
# Checks the CUDA path on a machine with a GPU and compares it with the CPU.
#   scripts/cuda_check.sh [OUT_DIR]
# Runs the CPU-vs-CUDA agreement tests, a short train + evaluate on CUDA, `metarl bench` with
# its scaling tables on both devices, a 200-task meta-iteration on both, and a profile of
# one CUDA meta-iteration. JSON and logs go to OUT_DIR (default: runs/cuda-check), which must
# not exist yet. Run it with the project installed (e.g. after `. .venv/bin/activate`).
set -euo pipefail
out=${1:-runs/cuda-check}
if [ -e "$out" ]; then echo "cuda_check: $out already exists; choose a new OUT_DIR" >&2; exit 2; fi
mkdir -p "$out"
metarl() { python3 -m metarl "$@"; }
export PYTHONUNBUFFERED=1 SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy PYGAME_HIDE_SUPPORT_PROMPT=1
cores=$(nproc)

python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python3 -m pytest -q tests/test_device.py

metarl train --family navigation2d --iterations 3 --seed 0 --device cuda --out "$out/train-cuda"
metarl evaluate "$out/train-cuda" --device cuda --test-tasks 10 --adapt-steps 1 --episodes 10 \
    --json "$out/eval-cuda.json"

metarl bench --device cuda --scaling --repeats 6 --json "$out/bench-cuda.json"
metarl bench --device cpu --scaling --repeats 6 --json "$out/bench-cpu-1-thread.json"
metarl --threads "$cores" bench --device cpu --repeats 6 --json "$out/bench-cpu-$cores-threads.json"

# A large meta-batch, where the GPU's width pays: 200 tasks x 20 episodes per iteration.
for setting in "cuda 1" "cpu $cores"; do
    set -- $setting
    metarl --threads "$2" train --family navigation2d --iterations 3 --meta-batch-size 200 \
        --seed 0 --device "$1" --out "$out/train-200-tasks-$1"
done

python3 - "$out" <<'EOF'
"""Profile of one reference meta-iteration on CUDA: the ten costliest operators."""
import sys
import torch
from torch.profiler import ProfilerActivity, profile
from metarl.run.factory import build_learner
from metarl.config import TrainConfig

learner = build_learner(TrainConfig(device="cuda"), torch.device("cuda"))
learner.step(learner.family.sample_tasks(20, learner.rng))  # warm-up
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    learner.step(learner.family.sample_tasks(20, learner.rng))
table = prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=10)
open(f"{sys.argv[1]}/profile-cuda.txt", "w").write(table)
print(table)
EOF

python3 - "$out" <<'EOF'
"""Summary table: seconds per meta-iteration and sampler steps per second, CPU vs CUDA."""
import csv, glob, json, statistics, sys
out = sys.argv[1]
for path in sorted(glob.glob(f"{out}/bench-*.json")):
    b = json.load(open(path))
    print(f"{path.split('/')[-1]:28s} {b['seconds_per_iteration']:.3f} s/it "
          f"(sample {b['sampling_seconds']:.3f} inner {b['inner_seconds']:.3f} "
          f"outer {b['outer_seconds']:.3f})  {b['env_steps_per_second'] / 1e6:.2f} M steps/s  "
          f"host peak {b['peak_memory_mib']:.0f} MiB, GPU peak {b.get('cuda_peak_memory_mib', 0):.0f} MiB")
    for row in b.get("sampler_scaling", []):
        print(f"    sampler {row['tasks']}x{row['episodes_per_task']}: "
              f"{row['env_steps_per_second'] / 1e6:.2f} M steps/s")
    for row in b.get("iteration_scaling", []):
        print(f"    {row['tasks']} tasks: {row['seconds_per_iteration']:.3f} s/it")
for path in sorted(glob.glob(f"{out}/train-200-tasks-*/metrics.csv")):
    rows = list(csv.DictReader(open(path)))[1:]
    keys = [k for k in rows[0] if k.endswith("_seconds")]
    print(path.split("/")[-2], {k: round(statistics.median(float(r[k]) for r in rows), 3)
                                for k in keys})
EOF
