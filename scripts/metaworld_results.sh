#!/usr/bin/env bash
# The Meta-World results of the README (docs/results/metaworld/): MAML and RL² on ML1 reach,
# push and pick-place at about 2M env steps each, evaluated on the held-out goals with
# Meta-World's protocol (10 adaptation episodes, then 3 evaluation episodes per goal) and with
# the block protocol. Runs in .venv-mw (Meta-World pins MuJoCo 3.3.0; `make test` builds it).
# Runs go to runs/metaworld/ (resumed if interrupted). FAMILIES=ml1-reach restricts it.
set -euo pipefail
cd "$(dirname "$0")/.."
metarl=${METARL:-.venv-mw/bin/metarl}
runs=runs/metaworld
docs=docs/results/metaworld
families=${FAMILIES:-ml1-reach ml1-push ml1-pick-place}
mkdir -p "$docs"

for family in $families; do
    # MAML-TRPO as Meta-World+ runs it: 10 tasks x 10 episodes of 500 steps per sampling
    # round, a [512, 512] tanh policy, inner step 0.1, max KL 0.01; 20 iterations sample
    # 2,000,000 env steps (before and after adaptation).
    "$metarl" train --family "$family" --algo maml --seed 0 --out "$runs/$family-maml" \
        --resume --iterations 20 --meta-batch-size 10 --episodes-per-task 10 \
        --hidden-sizes 512 512 --inner-lr 0.1
    # RL²: 10 tasks x one trial of 10 episodes per update (50,000 env steps); 40 updates.
    "$metarl" train --family "$family" --algo rl2 --seed 0 --out "$runs/$family-rl2" \
        --resume --iterations 40 --meta-batch-size 10 --trial-episodes 10 \
        --hidden-size 256 --learning-rate 5e-4 --minibatches 10
    for algo in maml rl2; do
        "$metarl" plot "$runs/$family-$algo" --out "$docs/$family-$algo-training.png"
        "$metarl" evaluate "$runs/$family-$algo" --test-tasks 50 --adapt-steps 1 \
            --episodes 10 --protocol metaworld --eval-episodes 3 \
            --json "$docs/$family-$algo-protocol.json"
    done
done
