#!/usr/bin/env bash
# The RL^2 results of docs/rl2.md: RL^2 and MAML runs, their evaluations and the compare
# tables (maml, rl2, the PPO baselines and random on the same 40 held-out tasks).
# bandit-10 and tabular-mdp were run as written here; the maze and navigation2d lines give
# budgets that were not run to the end (docs/rl2.md, "Left to do").
# Runs go to runs/rl2-results/ (resumed if interrupted); tables to docs/results/rl2/.
set -euo pipefail
cd "$(dirname "$0")/.."
metarl=${METARL:-.venv/bin/metarl}
runs=runs/rl2-results
docs=docs/results/rl2
mkdir -p "$docs"

train() {  # train NAME ARGS...: one resumable run directory under $runs
    local name=$1
    shift
    "$metarl" train --seed 0 --out "$runs/$name" --resume "$@"
}

# RL^2: 4 to 10 minutes each on 2 shared cores.
train bandit-10-rl2 --family bandit-10 --algo rl2 --iterations 250
train tabular-mdp-rl2 --family tabular-mdp --algo rl2 --iterations 120
# tabular-mdp with gamma 0.9 (docs/rl2.md, "Improvement over the first block"): 400 updates.
train tabular-mdp-rl2-gamma0.9 --family tabular-mdp --algo rl2 --gamma 0.9 --iterations 400
for blocks in "4 2" "9 1"; do
    set -- $blocks
    "$metarl" evaluate "$runs/tabular-mdp-rl2-gamma0.9" --test-tasks 200 --adapt-steps "$1" \
        --episodes "$2" --json "$docs/tabular-mdp-rl2-gamma0.9-blocks-of-$2.json"
done
train maze-rl2 --family maze --algo rl2 --trial-episodes 5 --iterations 20
train navigation2d-rl2 --family navigation2d --algo rl2 --trial-episodes 5 --iterations 12
for family in bandit-10 tabular-mdp; do
    "$metarl" evaluate "$runs/$family-rl2" --test-tasks 40 --adapt-steps 3 --episodes 20 \
        --json "$docs/$family-rl2.json"
done

# MAML with the budgets of tests/test_learning.py (BUDGETS).
while read -r family iterations tasks episodes inner_lr; do
    train "$family-maml" --family "$family" --algo maml --iterations "$iterations" \
        --meta-batch-size "$tasks" --episodes-per-task "$episodes" --inner-lr "$inner_lr"
done <<'BUDGETS'
navigation2d 20 10 10 0.1
bandit-10 40 20 20 0.1
tabular-mdp 60 20 20 0.5
maze 60 20 20 0.1
BUDGETS

# The tables.
while read -r family pretrain; do
    rm -rf "$runs/compare-$family"
    "$metarl" compare --family "$family" --algos maml,rl2,ppo-scratch,ppo-finetune,random \
        --run "maml=$runs/$family-maml" --run "rl2=$runs/$family-rl2" --test-tasks 40 \
        --adapt-steps 3 --episodes 20 --pretrain-steps "$pretrain" --out "$runs/compare-$family"
    mkdir -p "$docs/$family"
    cp "$runs/compare-$family"/results.{json,md} "$runs/compare-$family"/adaptation.png \
        "$docs/$family/"
done <<'PRETRAIN'
bandit-10 20000
tabular-mdp 20000
maze 20000
navigation2d 100000
PRETRAIN
