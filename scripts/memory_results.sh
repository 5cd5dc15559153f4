#!/usr/bin/env bash
# The in-memory learners side by side (docs/results/memory/): VariBAD and RL² at equal env
# steps on Navigation2D, bandit-10, tabular-mdp and maze, evaluated in blocks of one episode
# of one trial per held-out task (the belief or memory kept throughout), beside the oracle and
# random rows; and RL² at VariBAD's wall time on Navigation2D. Runs go to runs/results/
# (resumed if interrupted). About two hours on one core.
set -euo pipefail
cd "$(dirname "$0")/.."
metarl=${METARL:-.venv/bin/metarl}
python=${PYTHON:-.venv/bin/python}
runs=runs/results
docs=docs/results/memory
mkdir -p "$docs"

train() {  # train NAME ARGS...: one resumable run directory under $runs
    local name=$1
    shift
    "$metarl" train --seed 0 --out "$runs/$name" --resume "$@"
}

compare() {  # compare FAMILY TEST_TASKS EPISODES VARIBAD_RUN RL2_RUN: blocks of one episode
    local family=$1 test_tasks=$2 episodes=$3 varibad=$4 rl2=$5
    local out=$runs/compare-memory-$family
    rm -rf "$out"
    "$metarl" compare --family "$family" --algos varibad,rl2,random --test-tasks "$test_tasks" \
        --adapt-steps $((episodes - 1)) --episodes 1 --out "$out" \
        --run "varibad=$runs/$varibad" --run "rl2=$runs/$rl2"
    mkdir -p "$docs/$family"
    cp "$out"/results.{json,md} "$out"/adaptation.png "$docs/$family/"
    "$metarl" plot "$runs/$varibad" "$runs/$rl2" --x env_steps \
        --out "$docs/$family/training.png"
    "$metarl" plot "$runs/$varibad" "$runs/$rl2" --x seconds \
        --out "$docs/$family/training-seconds.png"
}

# Navigation2D: 6.1M env steps each (VariBAD: 80 iterations of 256 trials of 3 episodes; RL²:
# 610 updates of 20 trials of 5 episodes), and RL² for VariBAD's 306 s of training (96
# updates at about 3.2 s).
train nav-varibad --family navigation2d --algo varibad
train nav-rl2-long --family navigation2d --algo rl2 --trial-episodes 5 --learning-rate 1e-3 \
    --iterations 610
train nav-rl2-wallclock --family navigation2d --algo rl2 --trial-episodes 5 \
    --learning-rate 1e-3 --iterations 96
compare navigation2d 200 4 nav-varibad nav-rl2-long
"$metarl" evaluate "$runs/nav-rl2-wallclock" --test-tasks 200 --adapt-steps 3 --episodes 1 \
    --json "$docs/navigation2d/rl2-wallclock.json"
# each learner's prior (every step as at a trial's start) beside its first episode
for run in nav-varibad nav-rl2-wallclock; do
    "$python" scripts/evaluate_prior.py "$runs/$run" --test-tasks 200 --episodes 1 \
        --json "$docs/navigation2d/${run#nav-}-prior.json"
done

# The discrete families, equal env steps for both: bandit-10 (10-step episodes, trials of 10)
# 1.28M each; tabular-mdp (10-step episodes, trials of 10) and maze (40-step episodes, trials
# of 5) 2.56M each, where RL² had not levelled off at 1.28M. A tabular MDP's 50 mean rewards
# need a larger task latent than a bandit's 10 arms (5).
while read -r family trial latent varibad_iterations rl2_iterations; do
    train "$family-varibad-$varibad_iterations" --family "$family" --algo varibad \
        --meta-batch-size 64 --trial-episodes "$trial" --iterations "$varibad_iterations" \
        --latent-size "$latent"
    train "$family-rl2-memory" --family "$family" --algo rl2 --trial-episodes "$trial" \
        --iterations "$rl2_iterations"
    compare "$family" 200 "$trial" "$family-varibad-$varibad_iterations" "$family-rl2-memory"
done <<'BUDGETS'
bandit-10 10 5 200 640
tabular-mdp 10 16 400 1280
maze 5 5 200 640
BUDGETS
