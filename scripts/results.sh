#!/usr/bin/env bash
# Regenerate docs/results/: every table and figure of the README's Results section.
# Runs go to runs/results/ (resumed if interrupted). About four hours on 2 CPU cores; the
# locomotion results are in scripts/locomotion_results.sh. SECTIONS picks some of them (default
# all, in this order): memory navigation2d bandit-10 cartpole-tasks maze tabular-mdp
# maml-reference learning recordings bench; e.g. SECTIONS="navigation2d maze" scripts/results.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
metarl=${METARL:-.venv/bin/metarl}
runs=runs/results
docs=docs/results
all_sections="memory navigation2d bandit-10 cartpole-tasks maze tabular-mdp maml-reference learning
    recordings bench"
sections=${SECTIONS:-$all_sections}
for section in $sections; do
    case " $(echo $all_sections) " in
    *" $section "*) ;;
    *) echo "results.sh: unknown section '$section'; choose from: $(echo $all_sections)" >&2; exit 2 ;;
    esac
done

train() {  # train NAME ARGS...: one resumable run directory under $runs
    local name=$1
    shift
    "$metarl" train --seed 0 --out "$runs/$name" --resume "$@"
}

compare() {  # compare FAMILY TEST_TASKS ALGOS FLAGS...
    local family=$1 test_tasks=$2 algos=$3
    shift 3
    rm -rf "$runs/compare-$family"
    "$metarl" compare --family "$family" --algos "$algos" "$@" --test-tasks "$test_tasks" \
        --adapt-steps 3 --episodes 20 --out "$runs/compare-$family"
    mkdir -p "$docs/$family"
    cp "$runs/compare-$family"/results.{json,md} "$runs/compare-$family"/adaptation.png \
        "$docs/$family/"
}

# VariBAD and RL² at equal env steps (docs/results/memory/); the VariBAD runs join the
# comparisons below as varibad@1: its trials are a few episodes, so it is shown in blocks of
# one episode (k = 0..3: its first four episodes).
section_memory() {
    scripts/memory_results.sh
}

# Navigation2D: the three meta-learners, RL^2 and the baselines, 200 held-out tasks; MAML and
# MBML also from 5 real episodes per step (NAME@5). RL² and VariBAD are the memory section's
# runs (6.1M env steps each).
section_navigation2d() {
    train nav-maml --family navigation2d --algo maml --iterations 100
    train nav-meml --family navigation2d --algo meml --inner-steps 3 --iterations 100
    train nav-mbml --family navigation2d --algo mbml --iterations 100
    "$metarl" plot "$runs/nav-maml" --out "$docs/navigation2d/maml-training.png"
    compare navigation2d 200 maml,maml@5,mbml@5,meml,rl2,varibad@1,ppo-scratch,ppo-finetune,random \
        --pretrain-steps 500000 --run "maml=$runs/nav-maml" --run "meml=$runs/nav-meml" \
        --run "mbml=$runs/nav-mbml" --run "rl2=$runs/nav-rl2-long" --run "varibad=$runs/nav-varibad"
}

# bandit-10: with RL^2 (docs/rl2.md); MBML takes its 3 inner steps in the model.
section_bandit_10() {
    train bandit-10-maml --family bandit-10 --algo maml --iterations 60 --inner-lr 0.5
    train bandit-10-mbml --family bandit-10 --algo mbml --iterations 60 --inner-lr 0.5 \
        --inner-steps 3 --latent-size 10
    train bandit-10-meml --family bandit-10 --algo meml --inner-steps 3 --iterations 40 --inner-lr 1.0
    train bandit-10-rl2 --family bandit-10 --algo rl2 --iterations 250
    compare bandit-10 200 maml,maml@5,mbml@5,meml,rl2,varibad@1,ppo-scratch,ppo-finetune,random \
        --pretrain-steps 20000 --run "maml=$runs/bandit-10-maml" --run "mbml=$runs/bandit-10-mbml" \
        --run "meml=$runs/bandit-10-meml" --run "rl2=$runs/bandit-10-rl2" \
        --run "varibad=$runs/bandit-10-varibad-200"
    "$metarl" evaluate "$runs/bandit-10-rl2" --test-tasks 200 --adapt-steps 9 --episodes 1 \
        --json "docs/results/rl2/bandit-10-rl2-200-tasks-blocks-of-1.json"
}

# cartpole-tasks: the PPO baselines cost about 15 s per task here, so they are left out.
section_cartpole_tasks() {
    train cartpole-tasks-maml --family cartpole-tasks --algo maml --iterations 40
    train cartpole-tasks-mbml --family cartpole-tasks --algo mbml --iterations 40
    train cartpole-tasks-meml --family cartpole-tasks --algo meml --inner-steps 3 --iterations 40 \
        --inner-lr 1.0
    compare cartpole-tasks 200 maml,maml@5,mbml@5,meml,random \
        --run "maml=$runs/cartpole-tasks-maml" --run "mbml=$runs/cartpole-tasks-mbml" \
        --run "meml=$runs/cartpole-tasks-meml"
}

# maze: 40 held-out tasks. RL² and VariBAD: the memory section's runs (2.56M env steps each).
section_maze() {
    train maze-maml --family maze --algo maml --iterations 60
    train maze-meml --family maze --algo meml --inner-steps 3 --iterations 60 --inner-lr 1.0
    train maze-mbml --family maze --algo mbml --iterations 30
    compare maze 40 maml,maml@5,mbml,mbml@5,meml,rl2,varibad@1,ppo-scratch,ppo-finetune,random \
        --pretrain-steps 20000 --run "maml=$runs/maze-maml" --run "meml=$runs/maze-meml" \
        --run "mbml=$runs/maze-mbml" --run "rl2=$runs/maze-rl2-memory" --run "varibad=$runs/maze-varibad-200"
}

# tabular-mdp: 40 held-out tasks. RL² and VariBAD: the memory section's runs (2.56M env steps
# each; RL² variants with gamma 0.9 and more trials per update: docs/rl2.md).
section_tabular_mdp() {
    train tabular-mdp-maml --family tabular-mdp --algo maml --iterations 60 --inner-lr 0.5
    train tabular-mdp-meml --family tabular-mdp --algo meml --inner-steps 3 --iterations 60 \
        --inner-lr 2.0
    train tabular-mdp-mbml --family tabular-mdp --algo mbml --iterations 60 --inner-lr 0.5
    compare tabular-mdp 40 maml,maml@5,mbml,mbml@5,meml,rl2,varibad@1,ppo-scratch,ppo-finetune,random \
        --pretrain-steps 20000 --run "maml=$runs/tabular-mdp-maml" \
        --run "meml=$runs/tabular-mdp-meml" --run "mbml=$runs/tabular-mdp-mbml" \
        --run "rl2=$runs/tabular-mdp-rl2-memory" --run "varibad=$runs/tabular-mdp-varibad-400"
}

# The longer MAML runs of the reference configuration.
section_maml_reference() {
    train nav-maml-300 --family navigation2d --algo maml --iterations 300
    train nav-maml-seed1 --family navigation2d --algo maml --iterations 100 --seed 1
    # The TRPO metric's effect on returns (its effect on time: bench below).
    train nav-maml-fvp-all --family navigation2d --algo maml --iterations 100 --fvp-subsample 1.0
    train nav-maml-fvp-0.1 --family navigation2d --algo maml --iterations 100 --fvp-subsample 0.1
    train nav-maml-identity --family navigation2d --algo maml --iterations 100 --fvp identity
    for run in nav-maml-fvp-all nav-maml-fvp-0.1 nav-maml-identity; do
        "$metarl" evaluate "$runs/$run" --test-tasks 40 --adapt-steps 1 --episodes 20 \
            --json "$docs/navigation2d/$run.json"
    done
    "$metarl" plot "$runs/nav-maml-300" --out "$docs/navigation2d/maml-300-training.png"
    for run in nav-maml-300 nav-maml-seed1; do
        "$metarl" evaluate "$runs/$run" --test-tasks 40 --adapt-steps 3 --episodes 20 \
            --json "$docs/navigation2d/$run.json"
    done
    "$metarl" evaluate "$runs/nav-maml-300" --test-tasks 200 --adapt-steps 1 --episodes 20 \
        --json "$docs/navigation2d/nav-maml-300-200-tasks.json"
}

# Every family: MAML with the budget of its learning test (tests/test_learning.py).
section_learning() {
    while read -r family iterations inner_lr; do
        train "learning-$family" --family "$family" --algo maml --iterations "$iterations" \
            --inner-lr "$inner_lr"
        "$metarl" evaluate "$runs/learning-$family" --test-tasks 40 --adapt-steps 1 --episodes 20 \
            --json "$docs/learning/$family.json"
    done <<'BUDGETS'
bandit-5 40 0.1
bandit-10 40 0.1
tabular-mdp 60 0.5
cartpole-tasks 40 0.1
maze 60 0.1
catch 60 0.5
BUDGETS
}

# The README's recordings of adaptation (headless).
section_recordings() {
    record() {  # record RUN GIF ARGS...
        local run=$1 gif=$2
        shift 2
        rm -rf "$runs/record"
        SDL_VIDEODRIVER=dummy "$metarl" watch "$runs/$run" "$@" --record "$runs/record"
        cp "$runs/record/watch.gif" "docs/media/$gif"
    }
    record nav-maml watch-navigation2d.gif --seed 0 --adapt-steps 2 --deterministic --frames 101 \
        --width 720
    record learning-maze watch-maze.gif --seed 3 --adapt-steps 2 --frames 64 --width 840
}

# Speed: the reference figures, scaling, every family, and cost vs inner steps.
section_bench() {
    "$metarl" bench --scaling --families all --json "$docs/bench.json"
    "$metarl" --threads 2 bench --json "$docs/bench-2-threads.json"
    for algo in meml maml; do
        "$metarl" bench --algo "$algo" --inner-steps 1 3 5 --repeats 2 \
            --json "$docs/bench-inner-steps-$algo.json"
    done
    "$metarl" bench --algo-options '{"fvp_subsample": 1.0}' --repeats 3 --json "$docs/bench-fvp-all.json"
    "$metarl" bench --algo-options '{"fvp_subsample": 0.1}' --repeats 3 --json "$docs/bench-fvp-0.1.json"
    "$metarl" bench --algo-options '{"fvp": "identity"}' --repeats 3 --json "$docs/bench-identity.json"
}

for section in $sections; do
    "section_${section//-/_}"
done
