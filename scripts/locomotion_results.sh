#!/usr/bin/env bash
# The locomotion results of the README (docs/results/locomotion/): MAML on the half-cheetah
# families within about an hour of training each on one core, MAML's adaptation on 200
# held-out tasks, MAML against PPO fine-tuned with the same episodes on 40, the half-cheetah
# recording, and an hour each of MAML on the two ant families. Needs the [mujoco] extra.
# Runs go to runs/loco/ (resumed if interrupted).
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

# The ant: an hour each alone on one core (about 7.7 s per iteration) of 10 tasks x 10
# episodes per iteration: the iterations that hour gave. The policy starts with action spread
# 0.3 and near-zero mean torques: from the default start (spread 1, Xavier output layer) the
# control cost exceeds Ant-v5's healthy reward, and the young ants learn to fall early.
while read -r family iterations; do
    train "$family-maml" --family "$family" --algo maml --iterations "$iterations" \
        --meta-batch-size 10 --episodes-per-task 10 --init-std 0.3 --init-output-scale 0.01
done <<'ANT_RUNS'
ant-dir 463
ant-goal 453
ANT_RUNS

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

# MAML against PPO fine-tuned from the training mixture with the same episodes per step.
while read -r family episodes; do
    rm -rf "$runs/compare-$family"
    "$metarl" compare --family "$family" --algos maml,ppo-finetune,random \
        --run "maml=$runs/$family-maml" --test-tasks 40 --adapt-steps 1 --episodes "$episodes" \
        --pretrain-steps 200000 --out "$runs/compare-$family"
    mkdir -p "$docs/$family"
    cp "$runs/compare-$family"/results.{json,md} "$runs/compare-$family"/adaptation.png \
        "$docs/$family/"
done <<'COMPARISONS'
halfcheetah-vel 20
halfcheetah-dir 20
ant-dir 10
ant-goal 10
COMPARISONS

rm -rf "$runs/record"
SDL_VIDEODRIVER=dummy "$metarl" watch "$runs/halfcheetah-vel-maml" --task '{"velocity": 1.5}' \
    --adapt-steps 1 --deterministic --frames 200 --width 960 --record "$runs/record"
cp "$runs/record/watch.gif" docs/media/watch-halfcheetah-vel.gif

rm -rf "$runs/record-ant"
SDL_VIDEODRIVER=dummy "$metarl" watch "$runs/ant-dir-maml" --task '{"direction": 1}' \
    --adapt-steps 1 --episodes 10 --deterministic --frames 200 --width 960 \
    --record "$runs/record-ant"
cp "$runs/record-ant/frame_0199.png" docs/media/watch-ant-dir.png
