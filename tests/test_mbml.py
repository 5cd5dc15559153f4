"""MBML: model adaptation, the model as a batched env, imagined rollouts, learning."""

import metarl.agents.mbml  # noqa: F401  (registers "mbml")
import numpy as np
import torch
from metarl.agents.mbml import ImaginedTasks, ModelEnv

from metarl.config import TrainConfig
from metarl.learn.learner import Timer
from metarl.learn.surrogates import distributions
from metarl.policies.params import per_task
from metarl.registry import get_family
from metarl.rollout.sampler import Sampler
from metarl.run.evaluation import evaluate
from metarl.run.factory import build_learner


def make(**options):
    config = TrainConfig(
        family="navigation2d", algo="mbml", seed=2, meta_batch_size=6, episodes_per_task=10,
        hidden_sizes=(16,), algo_options={"imagined_episodes": 4, **options},
    )
    return build_learner(config, torch.device("cpu"))


def real(learner, tasks, episodes):
    return learner.sampler.sample(tasks, episodes, learner.meta_params(), seed=5)


def reward_error(learner, model_params, data):
    n = data.inputs.shape[0]
    obs, actions = data.inputs[..., :2], data.inputs[..., 2:]
    _, reward, _ = learner.model.predict(model_params, obs, actions)
    errors = ((reward - data.reward.unsqueeze(1)) ** 2).mean(1)
    return float((errors * data.mask).sum() / data.mask.sum()) / n


def test_adapted_model_predicts_held_out_transitions_better():
    torch.manual_seed(0)
    learner = make()
    rng = np.random.default_rng(0)
    for _ in range(8):  # meta-train the model on theta_0's episodes of random tasks
        tasks = learner.family.sample_tasks(6, rng)
        support = real(learner, tasks, 5)
        if not bool(learner.model.fitted):
            learner.model.fit_normaliser(learner.model.transitions(support))
        learner.train_model(support, real(learner, tasks, 10))
    tasks = learner.family.test_tasks(6, seed=1)
    support = learner.model.transitions(real(learner, tasks, 5))
    held_out = learner.model.transitions(
        learner.sampler.sample(tasks, 10, learner.meta_params(), seed=99)
    )
    with torch.no_grad():
        unadapted = per_task(learner.model.parameters_dict(), len(tasks))
    adapted = {k: v.detach() for k, v in learner.adapt_model(support).items()}
    with torch.no_grad():
        loss_before = learner.model.loss(unadapted, held_out).mean()
        loss_after = learner.model.loss(adapted, held_out).mean()
        assert loss_after < 0.8 * loss_before
        assert reward_error(learner, adapted, held_out) < 0.8 * reward_error(
            learner, unadapted, held_out
        )


def model_env(learner, n_tasks=3, episodes=4):
    tasks = learner.family.sample_tasks(n_tasks, np.random.default_rng(1))
    batch = real(learner, tasks, 2)
    adapted = learner.adapt_model(learner.model.transitions(batch))
    params = {key: value.detach() for key, value in adapted.items()}
    starts = batch.observations[0].view(n_tasks, 2, -1)
    env = ModelEnv(learner.model, params, starts, episodes, learner.family.max_episode_steps,
                   learner.observation_space, learner.action_space)
    return env, params, starts


def test_model_env_follows_the_batched_env_contract():
    learner = make()
    env, params, starts = model_env(learner)
    assert env.num_envs == 12
    obs, info = env.reset(seed=3)
    assert obs.shape == (12, 2) and obs.dtype == np.float32 and info == {}
    np.testing.assert_array_equal(env.reset(seed=3)[0], obs)  # seeded reset is reproducible
    actions = np.zeros((12, 2), dtype=np.float32)
    next_obs, reward, terminated, truncated, _ = env.step(actions)
    assert next_obs.shape == (12, 2) and reward.shape == (12,) and reward.dtype == np.float64
    assert terminated.dtype == bool and truncated.dtype == bool
    # column b steps task b // episodes_per_task's model: task 0's columns match a 1-task env
    single = ModelEnv(learner.model, {k: v[:1] for k, v in params.items()}, starts[:1], 4,
                      learner.family.max_episode_steps, learner.observation_space,
                      learner.action_space)
    single._member = env._member[:1].clone()
    single.reset(seed=3)
    single._member = env._member[:1].clone()
    single._obs = torch.as_tensor(obs[:4]).clone()
    np.testing.assert_allclose(single.step(actions[:4])[1], reward[:4], rtol=1e-5)
    # terminated columns stay terminated with reward 0; truncation at the horizon
    last = len(learner.model.biases) - 1
    env.params[f"weights.{last}"][..., -1, :] = 0.0  # the termination logit is its bias:
    env.params[f"biases.{last}"][..., -1] = 50.0  # every step predicts termination
    env.reset(seed=0)
    _, _, terminated, _, _ = env.step(actions)
    assert terminated.all()
    _, reward, terminated, truncated, _ = env.step(actions)
    assert terminated.all() and not truncated.any() and (reward == 0).all()
    env.params[f"biases.{last}"][..., -1] = -50.0  # no step does
    env.reset(seed=0)
    for _ in range(learner.family.max_episode_steps):
        _, _, terminated, truncated, _ = env.step(actions)
    assert truncated.all() and not terminated.any()


def test_sampler_runs_the_model_env_unchanged():
    learner = make()
    _, params, starts = model_env(learner)
    tasks = ImaginedTasks(learner.model, params, starts, learner.family.max_episode_steps,
                          learner.observation_space, learner.action_space)
    batch = Sampler(tasks, learner.policy, learner.device).sample(
        range(3), 4, learner.meta_params(), seed=0
    )
    assert batch.observations.shape == (100, 12, 2) and batch.rewards.shape == (100, 12)
    assert torch.isfinite(batch.rewards).all()


def test_imagined_rollouts_give_finite_losses_and_gradients():
    learner = make()
    tasks = learner.family.sample_tasks(6, learner.rng)
    data = learner.outer_data(learner.collect(tasks, Timer(learner.phases)))
    assert data.inner[0].batch.episodes_per_task == 4
    assert data.rollouts.before.episodes_per_task == 5
    adapted = learner.adapted_params(data.inner, create_graph=True)
    surrogate = learner.outer_surrogate(
        data, distributions(learner.policy, adapted, data.outer.batch)
    )
    grads = torch.autograd.grad(surrogate, list(learner.policy.parameters()))
    assert torch.isfinite(surrogate) and all(torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().max()) > 0 for g in grads)
    metrics = learner.step(tasks)
    assert all(np.isfinite(value) for value in metrics.values())


def test_checkpoint_restores_the_model():
    learner = make()
    learner.step(learner.family.sample_tasks(6, learner.rng))
    state = learner.state_dict()
    fresh = make()
    fresh.load_state_dict(state)
    for (key, value), other in zip(learner.model.state_dict().items(),
                                   fresh.model.state_dict().values(), strict=True):
        torch.testing.assert_close(value, other, msg=key)
    assert bool(fresh.model.fitted)


def test_mbml_improves_after_adaptation_on_held_out_navigation_tasks():
    torch.set_num_threads(1)
    config = TrainConfig(family="navigation2d", algo="mbml", seed=0, meta_batch_size=10,
                         episodes_per_task=10, algo_options={"model_epochs": 10})
    learner = build_learner(config, torch.device("cpu"))
    for _ in range(8):
        learner.step(learner.family.sample_tasks(config.meta_batch_size, learner.rng))
    test = get_family("navigation2d").test_tasks(20, seed=0)
    result = evaluate(learner, test, adapt_steps=1, episodes=5, seed=0)
    print(result.mean_return)
    assert result.mean_return[1] > result.mean_return[0] + 5.0, result.mean_return
