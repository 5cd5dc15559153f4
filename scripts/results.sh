#!/usr/bin/env bash
# Regenerate docs/results/: every table and figure of the README's Results section.
# Runs go to runs/results/ (resumed if interrupted). About an hour on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
metarl=${METARL:-.venv/bin/metarl}
runs=runs/results
docs=docs/results

train() {  # train NAME ARGS...: one resumable run directory under $runs
    local name=$1
    shift
    "$metarl" train --seed 0 --out "$runs/$name" --resume "$@"
}

compare() {  # compare FAMILY ALGOS PRETRAIN_STEPS RUN_FLAGS...
    local family=$1 algos=$2 pretrain=$3
    shift 3
    rm -rf "$runs/compare-$family"
    "$metarl" compare --family "$family" --algos "$algos" "$@" --test-tasks 40 \
        --adapt-steps 3 --episodes 20 --pretrain-steps "$pretrain" --out "$runs/compare-$family"
    mkdir -p "$docs/$family"
    cp "$runs/compare-$family"/results.{json,md} "$runs/compare-$family"/adaptation.png \
        "$docs/$family/"
}

# Navigation2D: the three meta-learners and the baselines.
train nav-maml --family navigation2d --algo maml --iterations 100
train nav-meml --family navigation2d --algo meml --inner-steps 3 --iterations 100
train nav-mbml --family navigation2d --algo mbml --iterations 50
"$metarl" plot "$runs/nav-maml" --out "$docs/navigation2d/maml-training.png"
compare navigation2d maml,meml,mbml,ppo-scratch,ppo-finetune,random 500000 \
    --run "maml=$runs/nav-maml" --run "meml=$runs/nav-meml" --run "mbml=$runs/nav-mbml"
for episodes in 5 20; do  # MBML's point: adaptation from fewer real episodes
    for algo in maml mbml; do
        "$metarl" evaluate "$runs/nav-$algo" --test-tasks 40 --adapt-steps 1 \
            --episodes "$episodes" --json "$docs/navigation2d/$algo-$episodes-episodes.json"
    done
done

# Two discrete families.
for family in bandit-10 maze; do
    train "$family-maml" --family "$family" --algo maml --iterations 60
    train "$family-meml" --family "$family" --algo meml --inner-steps 3 --iterations 60
    compare "$family" maml,meml,ppo-scratch,ppo-finetune,random 20000 \
        --run "maml=$runs/$family-maml" --run "meml=$runs/$family-meml"
done
