#!/usr/bin/env bash
# The locomotion results of the README (docs/results/locomotion/): MAML on the half-cheetah
# families within about an hour of training each on one core, MAML's adaptation on 200
# held-out tasks, MAML against PPO fine-tuned with the same episodes on 40, and the
# half-cheetah recording; and what 120 short iterations give on the two ant families. Needs the [mujoco] extra. Runs go to runs/loco/ (resumed if
# interrupted).
set -euo pipefail
cd "$(dirname "$0")/.."
metarl=${METARL:-.venv/bin/metarl}
runs=runs/loco
docs=docs/results/locomotion
mkdir -p "$docs"

train() {  # train NAME ARGS...: one resumable run directory under $runs
    local name=$1
    shift
    "$metarl" train --seed 0 --out "$runs/$name" --resume --hidden-sizes 100 100 "$@"
}

# The half-cheetah: 200 iterations of 20 tasks x 20 episodes of 200 steps (the MAML paper:
# 500 iterations of 40 tasks; rllab's physics, see the envs' docstrings).
train halfcheetah-vel-maml --family halfcheetah-vel --algo maml --iterations 200
train halfcheetah-dir-maml --family halfcheetah-dir --algo maml --iterations 200

# The ant: 120 iterations of 10 tasks x 10 episodes (about 10 s per iteration: under the
# young policies the ant falls, ending its episodes, within about 40 steps).
train ant-dir-maml --family ant-dir --algo maml --iterations 120 --meta-batch-size 10 \
    --episodes-per-task 10
train ant-goal-maml --family ant-goal --algo maml --iterations 120 --meta-batch-size 10 \
    --episodes-per-task 10

while read -r family episodes; do
    "$metarl" plot "$runs/$family-maml" --out "$docs/$family-maml-training.png"
    "$metarl" evaluate "$runs/$family-maml" --test-tasks 200 --adapt-steps 1 \
        --episodes "$episodes" --json "$docs/$family-maml-200-tasks.json"
done <<'EVALUATIONS'
halfcheetah-vel 20
halfcheetah-dir 20
ant-dir 10
ant-goal 10
EVALUATIONS

# MAML against PPO fine-tuned from the training mixture with the same 20 episodes per step.
for family in halfcheetah-vel halfcheetah-dir; do
    rm -rf "$runs/compare-$family"
    "$metarl" compare --family "$family" --algos maml,ppo-finetune,random \
        --run "maml=$runs/$family-maml" --test-tasks 40 --adapt-steps 1 --episodes 20 \
        --pretrain-steps 200000 --out "$runs/compare-$family"
    mkdir -p "$docs/$family"
    cp "$runs/compare-$family"/results.{json,md} "$runs/compare-$family"/adaptation.png \
        "$docs/$family/"
done

rm -rf "$runs/record"
SDL_VIDEODRIVER=dummy "$metarl" watch "$runs/halfcheetah-vel-maml" --task '{"velocity": 1.5}' \
    --adapt-steps 1 --deterministic --frames 200 --width 960 --record "$runs/record"
cp "$runs/record/watch.gif" docs/media/watch-halfcheetah-vel.gif
