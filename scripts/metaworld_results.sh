#!/usr/bin/env bash
# The Meta-World results of the README (docs/results/metaworld/): MAML and RL² on ML1 reach,
# push and pick-place at about 2M env steps each, evaluated on the held-out goals with
# Meta-World's protocol (10 adaptation episodes, then 3 evaluation episodes per goal). Runs in
# .venv-mw (Meta-World pins MuJoCo 3.3.0; `make test` builds it).
# Runs go to runs/metaworld/ (resumed if interrupted). FAMILIES (ml1-<env>, ml10, ml45) and ALGOS
# restrict it (ALGOS from maml rl2 varibad); MAML_ITERATIONS, RL2_ITERATIONS and
# VARIBAD_ITERATIONS change the budget (a larger one resumes a finished run), e.g.
# FAMILIES=ml10 ALGOS=maml MAML_ITERATIONS=50 scripts/metaworld_results.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
metarl=${METARL:-.venv-mw/bin/metarl}
python=${PYTHON:-.venv-mw/bin/python}
runs=runs/metaworld
docs=docs/results/metaworld
families=${FAMILIES:-ml1-reach ml1-push ml1-pick-place}
algos=${ALGOS:-maml rl2}
maml_iterations=${MAML_ITERATIONS:-20}
rl2_iterations=${RL2_ITERATIONS:-40}
varibad_iterations=${VARIBAD_ITERATIONS:-67}
mkdir -p "$docs"

for family in $families; do
    for algo in $algos; do
        case $algo in
        # MAML-TRPO as Meta-World+ runs it: 10 tasks x 10 episodes of 500 steps per sampling
        # round, a [512, 512] tanh policy, inner step 0.1, max KL 0.01; each iteration samples
        # 100,000 env steps (before and after adaptation): 20 iterations, 2M.
        maml) options=(--iterations "$maml_iterations" --meta-batch-size 10 --episodes-per-task 10
            --hidden-sizes 512 512 --inner-lr 0.1) ;;
        # RL²: 10 tasks x one trial of 10 episodes per update (50,000 env steps); 40 updates, 2M.
        # Rewards scaled by the running spread of the return (Meta-World's are 0-10 a step),
        # no entropy bonus and GAE lambda 0.95: with RL²'s defaults it did not learn on reach.
        rl2) options=(--iterations "$rl2_iterations" --meta-batch-size 10 --trial-episodes 10
            --hidden-size 256 --learning-rate 5e-4 --minibatches 10 --normalize-reward
            --ent-coef 0 --ppo-gae-lambda 0.95) ;;
        # VariBAD: 20 tasks x one trial of 3 episodes per iteration (30,000 env steps); 67
        # iterations, 2M. Its reward decoder reads the state a step reached (hand and object
        # positions), from which a goal's reward follows. 20 VAE steps an iteration (its default
        # 3 left the belief behind the policy) and a [256, 256] policy.
        varibad) options=(--iterations "$varibad_iterations" --meta-batch-size 20
            --trial-episodes 3 --vae-updates 20 --hidden-sizes 256 256) ;;
        *) echo "metaworld_results.sh: unknown algo '$algo'; choose from: maml rl2 varibad" >&2
            exit 2 ;;
        esac
        "$metarl" train --family "$family" --algo "$algo" --seed 0 \
            --out "$runs/$family-$algo" --resume "${options[@]}"
        "$metarl" plot "$runs/$family-$algo" --out "$docs/$family-$algo-training.png"
        "$metarl" evaluate "$runs/$family-$algo" --test-tasks 50 --adapt-steps 1 \
            --episodes 10 --protocol metaworld --eval-episodes 3 \
            --json "$docs/$family-$algo-protocol.json"
        if [ "$algo" = varibad ] || [ "$algo" = rl2 ]; then
            # they adapt within a trial: their first episodes one by one, and their prior (every
            # step as at a trial's start) beside their first 3 episodes
            "$metarl" evaluate "$runs/$family-$algo" --test-tasks 50 --adapt-steps 3 \
                --episodes 1 --json "$docs/$family-$algo-episodes.json"
            "$python" scripts/evaluate_prior.py "$runs/$family-$algo" --test-tasks 50 \
                --episodes 3 --json "$docs/$family-$algo-prior.json"
            # the protocol's evaluation episodes over the prior, paired over goals
            "$python" scripts/paired_gain.py "$docs/$family-$algo-prior.json" \
                "$docs/$family-$algo-protocol.json"
        fi
    done
done
