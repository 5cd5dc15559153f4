"""The family checker: every contract of a task family, each failure explained.

``check_family(family)`` returns a list of problems (empty when the family is sound), each one
line naming the function at fault, what was expected and the fix; an error raised in the
family's own code carries the file and line it came from. :func:`run_checks` gives every
check with its result (``metarl check -v``); ``assert_family_ok(family)`` raises
:class:`FamilyContractError` listing the problems.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from collections.abc import Callable
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

from metarl.family.array import ArrayFamily
from metarl.family.base import TaskFamily
from metarl.family.oracle import has_oracle
from metarl.family.rng import BatchRNG
from metarl.family.tracebacks import describe

N_TASKS = 3
EPISODES_PER_TASK = 2
SEED = 123


class FamilyContractError(ValueError):
    """A family breaks the task-family contract; the message lists every problem."""


def assert_family_ok(family: TaskFamily) -> None:
    problems = check_family(family)
    if problems:
        listing = "\n".join(f"  - {problem}" for problem in problems)
        raise FamilyContractError(f"family {_name(family)} breaks the contract:\n{listing}")


@dataclasses.dataclass
class CheckResult:
    """One check: its name, what it checks, and its problems (``None`` when it was skipped
    because a check it depends on failed); ``applies`` is False for an optional part of the
    contract the family does not have (an oracle)."""

    name: str
    description: str
    problems: list[str] | None
    applies: bool = True

    @property
    def status(self) -> str:
        if self.problems is None:
            return "skipped"
        return "FAIL" if self.problems else "ok" if self.applies else "n/a"


def run_checks(family: TaskFamily) -> list[CheckResult]:
    """Every contract check with its result; a check whose prerequisite failed is skipped."""
    results: list[CheckResult] = []
    failed = False
    for check in _CHECKS:
        name = check.__name__.removeprefix("_check_")
        description = (check.__doc__ or "").strip().splitlines()[0]
        if failed:
            results.append(CheckResult(name, description, None))
            continue
        try:
            problems = check(family)
        except _FamilyRaised as error:
            problems = [str(error)]
        except Exception as error:  # a crash inside the family is itself the finding
            problems = [f"{name}: the family raised {describe(error)}"]
        applies = check not in _OPTIONAL or _OPTIONAL[check](family)
        results.append(CheckResult(name, description, problems, applies))
        failed = bool(problems) and check in _PREREQUISITES
    return results


def check_family(family: TaskFamily) -> list[str]:
    """Run every contract check; a problem found early can hide later ones that depend on it."""
    return [problem for result in run_checks(family) for problem in result.problems or []]


def _name(family: Any) -> str:
    return repr(getattr(family, "name", type(family).__name__))


def _check_attributes(family: TaskFamily) -> list[str]:
    """class attributes: name, env_id, a frozen task dataclass, horizon, spaces, splits"""
    problems = []
    for attribute in ("name", "env_id", "task_type", "max_episode_steps", "observation_space",
                      "action_space"):
        if not hasattr(family, attribute):
            problems.append(f"class attribute {attribute!r} is missing: set it on the family class")
    if problems:
        return problems
    task_type = family.task_type
    params = getattr(task_type, "__dataclass_params__", None)
    if not (dataclasses.is_dataclass(task_type) and params is not None and params.frozen):
        problems.append(
            f"task_type {family.task_type!r} is not a frozen dataclass: "
            "declare it with @dataclass(frozen=True)"
        )
    if not isinstance(family.max_episode_steps, int) or family.max_episode_steps < 1:
        problems.append(
            f"max_episode_steps must be a positive int, got {family.max_episode_steps!r}"
        )
    if "test" not in family.splits:
        problems.append(f"splits {family.splits!r} must include 'test'")
    has_ood = type(family).sample_ood_tasks is not TaskFamily.sample_ood_tasks
    if "ood" in family.splits and not has_ood:
        problems.append("splits lists 'ood' but the family has no sample_ood_tasks(n, rng): "
                        "implement it, or drop 'ood' from splits")
    if has_ood and "ood" not in family.splits:
        problems.append("sample_ood_tasks(n, rng) is implemented but splits does not list "
                        "'ood': add it, e.g. splits = ('test', 'ood')")
    return problems


SPREAD_TASKS = 20
"""Tasks drawn to compare how varied the held-out splits are with the training draws."""


def _check_tasks(family: TaskFamily) -> list[str]:
    """tasks: sample_tasks and test_tasks reproducible, JSON round trip"""
    problems = []
    tasks = family.sample_tasks(N_TASKS, np.random.default_rng(0))
    if len(tasks) != N_TASKS or not all(isinstance(t, family.task_type) for t in tasks):
        problems.append(
            f"sample_tasks({N_TASKS}, rng) must return {N_TASKS} {family.task_type.__name__} "
            f"objects, got {tasks!r}"
        )
        return problems
    for task in tasks:
        try:
            text = json.dumps(family.task_to_json(task))
        except TypeError as error:
            problems.append(
                f"task {task!r} is not JSON-serialisable ({error}): store plain floats, ints, "
                "strings, bools and tuples of them (convert numpy values with float()/int())"
            )
            continue
        if family.task_from_json(json.loads(text)) != task:
            problems.append(
                f"task {task!r} does not round-trip through JSON: task_from_json(task_to_json(t)) "
                "must equal t"
            )
    if problems:
        return problems
    if tasks != family.sample_tasks(N_TASKS, np.random.default_rng(0)):
        problems.append("sample_tasks(n, rng) is not reproducible: draw only from the rng it "
                        "is given (rng.uniform(...)), never from np.random or random")
    for split in family.splits:
        split_tasks = family.test_tasks(N_TASKS, seed=0, split=split)
        if split_tasks != family.test_tasks(N_TASKS, seed=0, split=split):
            problems.append(f"test_tasks(split={split!r}) is not reproducible for a fixed seed")
        if len(split_tasks) != N_TASKS:
            problems.append(f"test_tasks({N_TASKS}, split={split!r}) returned {len(split_tasks)}")
    drawn = len(set(family.sample_tasks(SPREAD_TASKS, np.random.default_rng(1))))
    for split in family.splits:
        held_out = len(set(family.test_tasks(SPREAD_TASKS, seed=0, split=split)))
        if drawn > 2 and held_out < drawn / 2:
            problems.append(f"test_tasks({SPREAD_TASKS}, split={split!r}) holds only {held_out} "
                            f"distinct tasks where sample_tasks draws {drawn}: held-out tasks "
                            "must be drawn like training ones, not repeated")
    return problems


def _check_arrays(family: TaskFamily) -> list[str]:
    """array functions: shapes and dtypes of task_params, initial_state, transition, observe"""
    if not isinstance(family, ArrayFamily):
        return []
    tasks = family.test_tasks(N_TASKS)
    batch = N_TASKS * EPISODES_PER_TASK
    params = _call(family.task_params, "task_params(tasks)", tasks)
    problems = _arrays("task_params(tasks)", params, N_TASKS, "len(tasks)")
    if problems:
        return problems
    params = {key: np.repeat(value, EPISODES_PER_TASK, axis=0) for key, value in params.items()}
    rng = BatchRNG.from_seed(SEED, batch)
    state = _call(family.initial_state, "initial_state(params, rng)", params, rng)
    problems = _arrays("initial_state(params, rng)", state, batch, "rng.batch_size")
    if problems:
        return problems
    space = copy.deepcopy(family.action_space)
    space.seed(SEED)
    actions = np.stack([space.sample() for _ in range(batch)])
    result = _call(family.transition, "transition(state, action, params, rng)", state, actions,
                   params, rng)
    if not (isinstance(result, tuple) and len(result) == 3):
        return [f"transition(state, action, params, rng) must return (state, reward, "
                f"terminated), got {type(result).__name__}"]
    next_state, reward, terminated = result
    problems = _arrays("transition(...)'s state", next_state, batch, "the batch")
    if set(next_state) != set(state):
        problems.append(f"transition(...) must return a state with the keys of "
                        f"initial_state {sorted(state)}, got {sorted(next_state)}")
    reward = np.asarray(reward)
    if reward.shape != (batch,) or not np.issubdtype(reward.dtype, np.number):
        problems.append(f"transition(...) must return reward as numbers of shape [B] = "
                        f"{(batch,)}, got {reward.dtype} {reward.shape}: one reward per batch "
                        "entry (e.g. reward.reshape(-1))")
    terminated = np.asarray(terminated)
    if terminated.shape != (batch,) or terminated.dtype != np.bool_:
        problems.append(f"transition(...) must return terminated as a bool array of shape [B] "
                        f"= {(batch,)}, got {terminated.dtype} {terminated.shape}: return a "
                        "comparison (distance < radius) or np.zeros(B, dtype=bool)")
    obs = np.asarray(_call(family.observe, "observe(state, params)", next_state, params))
    expected = (batch, *(family.observation_space.shape or ()))
    dtype = family.observation_space.dtype
    if obs.shape != expected:
        problems.append(f"observe(state, params) must return [B, *observation shape] = "
                        f"{expected}, got {obs.shape}")
    elif dtype is not None and not np.can_cast(obs.dtype, dtype, casting="same_kind"):
        problems.append(f"observe(state, params) must return numbers castable to "
                        f"{family.observation_space.dtype}, got {obs.dtype}")
    return problems


def _check_randomness(family: TaskFamily) -> list[str]:
    """randomness: dynamics draw only from the BatchRNG they are given"""
    if not isinstance(family, ArrayFamily):
        return []
    tasks = family.test_tasks(N_TASKS)
    params = family.task_params(tasks)
    global_state = cast(tuple[Any, ...], np.random.get_state())
    rng = BatchRNG.from_seed(SEED, N_TASKS)
    state = family.initial_state(params, rng)
    space = copy.deepcopy(family.action_space)
    space.seed(SEED)
    actions = np.stack([space.sample() for _ in range(N_TASKS)])
    family.transition(state, actions, params, rng)
    after = cast(tuple[Any, ...], np.random.get_state())
    used = not np.array_equal(global_state[1], after[1]) or global_state[2] != after[2]
    np.random.set_state(global_state)
    if used:
        return ["initial_state or transition draws from numpy's global random numbers "
                "(np.random.*): draw only from the BatchRNG they are given, e.g. "
                "rng.uniform(low, high, size=(2,)) or rng.normal(size=(2,))"]
    return []


def _call(function: Callable[..., Any], signature: str, *args: Any) -> Any:
    """``function(*args)``; an error from the family's code becomes a finding that says
    which function raised it, and where."""
    try:
        return function(*args)
    except Exception as error:
        raise _FamilyRaised(f"{signature} raised {describe(error)}") from None


class _FamilyRaised(Exception):
    """A family function raised; the message names it (see :func:`_call`)."""


def _arrays(signature: str, arrays: Any, leading: int, what: str) -> list[str]:
    if not isinstance(arrays, dict) or not all(isinstance(key, str) for key in arrays):
        return [f"{signature} must return a dict of named numpy arrays, got "
                f"{type(arrays).__name__}"]
    problems = []
    for key, value in arrays.items():
        shape = np.shape(value)
        if not isinstance(value, np.ndarray) or not shape or shape[0] != leading:
            problems.append(f"{signature} must return arrays with leading dimension {what} = "
                            f"{leading}; {key!r} is {type(value).__name__} of shape {shape}: "
                            f"give every array the batch first, e.g. "
                            f"np.zeros(({leading}, ...))")
    return problems


def _check_gymnasium(family: TaskFamily) -> list[str]:
    """gymnasium: check_env, registration, spaces, task switching by reset options"""
    problems = []
    task = family.test_tasks(1)[0]
    env = family.make_env(task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            check_env(env.unwrapped, skip_render_check=True)
        except Exception as error:
            problems.append(f"gymnasium's check_env failed: {error}")
    for space in ("observation_space", "action_space"):
        if getattr(env, space) != getattr(family, space):
            problems.append(
                f"the env's {space} {getattr(env, space)} differs from the family's "
                f"{getattr(family, space)}: give the env the family's spaces"
            )
    if family.env_id not in gym.registry:
        problems.append(
            f"{family.env_id!r} is not registered with gymnasium: call register_family(...)"
        )
    else:
        made = gym.make(family.env_id, task=family.task_to_json(task))
        registered = made.spec.max_episode_steps if made.spec is not None else None
        if registered != family.max_episode_steps:
            problems.append(
                f"gymnasium registration has max_episode_steps={registered}, "
                f"the family says {family.max_episode_steps}"
            )
        made.close()
    other = family.test_tasks(2)[1]
    env.reset(seed=0, options={"task": other})
    if getattr(env.unwrapped, "task", other) != other:
        problems.append("reset(options={'task': t}) does not switch the env's task to t")
    env.close()
    return problems


def _rollout(env: gym.Env, actions: list[Any]) -> list[tuple[Any, ...]]:
    steps: list[tuple[Any, ...]] = [env.reset(seed=SEED)[0]]
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        steps.append((obs, reward, terminated))
        if terminated or truncated:
            break
    return steps


def _check_episodes(family: TaskFamily) -> list[str]:
    """episodes: deterministic under a seed, finite rewards, observations in their space"""
    problems = []
    task = family.test_tasks(1)[0]
    space = copy.deepcopy(family.action_space)  # seeding must not touch the family's own
    space.seed(SEED)
    actions = [space.sample() for _ in range(family.max_episode_steps)]
    first = _rollout(family.make_env(task), actions)
    second = _rollout(family.make_env(task), actions)
    if not _same(first, second):
        problems.append(
            "not deterministic under a seed: two envs reset with the same seed and given the "
            "same actions diverged; draw randomness only from the seeded generator"
        )
    for obs, reward, _ in first[1:]:
        if not np.isfinite(reward):
            problems.append(f"reward {reward!r} is not finite: rewards must be real numbers")
            break
        if not family.observation_space.contains(obs):
            problems.append(
                f"observation {obs!r} is outside observation_space {family.observation_space}"
            )
            break
    return problems


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _check_batched(family: TaskFamily) -> list[str]:
    """batched env: agrees exactly with the generic fallback over single envs"""
    problems = []
    tasks = family.test_tasks(N_TASKS)
    native = family.make_vector_env(tasks, EPISODES_PER_TASK)
    fallback = TaskFamily.make_vector_env(family, tasks, EPISODES_PER_TASK)  # the generic one
    n = N_TASKS * EPISODES_PER_TASK
    if native.num_envs != n:
        return [f"make_vector_env({N_TASKS} tasks, {EPISODES_PER_TASK}) has {native.num_envs} envs"]
    native.action_space.seed(SEED)
    obs_native, _ = native.reset(seed=SEED)
    obs_fallback, _ = fallback.reset(seed=SEED)
    alive = np.ones(n, dtype=bool)
    if not np.array_equal(obs_native, obs_fallback):
        problems.append(_disagree(family, "reset observations", 0))
    for t in range(family.max_episode_steps):
        actions = native.action_space.sample()
        step_native = native.step(actions)
        step_fallback = fallback.step(actions)
        for index, what in ((0, "observations"), (1, "rewards"), (2, "terminated")):
            a = np.asarray(step_native[index])[alive]
            b = np.asarray(step_fallback[index])[alive]
            if not np.array_equal(a, b):
                problems.append(_disagree(family, what, t + 1))
        if problems:
            break
        if not np.all(np.isfinite(step_native[1])):
            problems.append(f"batched env returned non-finite rewards at step {t + 1}")
            break
        alive &= ~step_native[2]
    return problems


def _disagree(family: TaskFamily, what: str, step: int) -> str:
    if isinstance(family, ArrayFamily):
        fix = ("the array functions give a batch of many other results than batches of one: "
               "no function may mix values across the batch (e.g. a sum or max over axis 0), "
               "and every draw must come from the BatchRNG")
    else:
        fix = ("write the dynamics once (ArrayFamily) and seed column i like a single env "
               "reset with seed + i")
    return (f"batched and single env disagree on {what} at step {step} for the same seed "
            f"and actions: {fix}")


def _check_render(family: TaskFamily) -> list[str]:
    """rendering: rgb_array frames of shape [H, W, 3], uint8, not blank"""
    env = family.make_env(family.test_tasks(1)[0], render_mode="rgb_array")
    if "rgb_array" not in env.metadata.get("render_modes", []):
        return []
    env.reset(seed=SEED)
    frame = _call(env.render, "render() (the env's draw(canvas))")
    env.close()
    if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3):
        return [f"render() in 'rgb_array' mode must return an [H, W, 3] array, got {frame!r:.80}"]
    if frame.dtype != np.uint8 or frame.min() == frame.max():
        return ["render() in 'rgb_array' mode returned a blank or non-uint8 frame"]
    return []


ORACLE_STEPS = 10
"""Steps of an episode the oracle check plays."""


def _check_oracle(family: TaskFamily) -> list[str]:
    """oracle (optional): oracle_action gives actions in the action space for a batch"""
    if not has_oracle(family):
        return []
    assert isinstance(family, ArrayFamily)
    tasks = family.test_tasks(N_TASKS)
    env = family.make_vector_env(tasks, EPISODES_PER_TASK)
    env.reset(seed=SEED)
    batch = env.num_envs
    space = family.action_space
    expected = (batch, *(space.shape or ()))
    for t in range(min(ORACLE_STEPS, family.max_episode_steps)):
        actions = _call(family.oracle_action, "oracle_action(state, params)", env.state,
                        env.params)
        shape = np.shape(actions)
        if not isinstance(actions, np.ndarray) or shape != expected:
            return [f"oracle_action(state, params) must return a numpy array of actions "
                    f"[B, *action shape] = {expected}, got {type(actions).__name__} of shape "
                    f"{shape} at step {t}: one action per batch column"]
        outside = [i for i in range(batch) if not space.contains(actions[i])]
        if outside:
            i = outside[0]
            return [f"oracle_action(state, params) returned {actions[i]!r} ({actions.dtype}) "
                    f"for column {i} at step {t}, outside the action space {space}: return "
                    f"actions of the space's dtype within its bounds (e.g. .astype("
                    f"{np.dtype(space.dtype).name}))"]
        _, _, terminated, _, _ = env.step(actions)
        if terminated.all():
            break
    return []


def _check_success(family: TaskFamily) -> list[str]:
    """success: families with a success_key report it per step, single and batched"""
    key = getattr(family, "success_key", None)
    if key is None:
        return []
    if not isinstance(key, str) or not key:
        return [f"success_key must be an info key (a non-empty str) or None, got {key!r}"]
    tasks = family.test_tasks(N_TASKS)
    env = family.make_env(tasks[0])
    env.reset(seed=SEED)
    space = copy.deepcopy(family.action_space)
    space.seed(SEED)
    info = env.step(space.sample())[4]
    env.close()
    problems = []
    value = info.get(key)
    if not isinstance(value, bool | np.bool_):
        problems.append(f"the env's step info[{key!r}] must be a bool (success_key is "
                        f"{key!r}), got {value!r}: set info[{key!r}] = bool(...) at every step")
    batched = family.make_vector_env(tasks, EPISODES_PER_TASK)
    batched.reset(seed=SEED)
    batched.action_space.seed(SEED)
    flags = batched.step(batched.action_space.sample())[4].get(key)
    batched.close()
    n = N_TASKS * EPISODES_PER_TASK
    if not (isinstance(flags, np.ndarray) and flags.shape == (n,) and flags.dtype == np.bool_):
        problems.append(f"the batched env's step info[{key!r}] must be a [B] = ({n},) bool "
                        f"array, got {flags!r:.80}: build it with "
                        f"SyncBatchedEnv(envs, flags=family.success_flags) or gather the "
                        "flags the same way")
    return problems


_CHECKS: list[Callable[[TaskFamily], list[str]]] = [
    _check_attributes,
    _check_tasks,
    _check_arrays,
    _check_randomness,
    _check_gymnasium,
    _check_episodes,
    _check_batched,
    _check_oracle,


    _check_success,
    _check_render,
]
_PREREQUISITES = {_check_attributes, _check_tasks, _check_arrays}
_OPTIONAL: dict[Callable[[TaskFamily], list[str]], Callable[[TaskFamily], bool]] = {
    _check_oracle: has_oracle,
}
"""Checks of optional parts, with whether the family has the part."""
