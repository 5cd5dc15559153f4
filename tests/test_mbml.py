"""MBML: the latent model (inference, its use as a batched env), the oracle check, options,
checkpoints and learning."""

import numpy as np
import pytest
import torch

from metarl.agents.mbml import ImaginedTasks, ModelEnv, Transitions
from metarl.config import ConfigError, TrainConfig
from metarl.learn.learner import Timer
from metarl.learn.outer import PostAdaptation
from metarl.learn.surrogates import distributions
from metarl.policies.params import detach_params
from metarl.rollout.sampler import Sampler
from metarl.run.evaluation import evaluate
from metarl.run.factory import build_learner
from metarl.run.training import train


def make(family="navigation2d", **options):
    config = TrainConfig(
        family=family, algo="mbml", seed=2, meta_batch_size=6, episodes_per_task=10,
        hidden_sizes=(16,), algo_options={"imagined_episodes": 4, "model_hidden": (32, 32),
                                          "model_epochs": 2, "model_batch": 64, **options},
    )
    return build_learner(config, torch.device("cpu"))


def real(learner, tasks, episodes, seed=5):
    return learner.sampler.sample(tasks, episodes, learner.meta_params(), seed=seed)


def trained_model(learner, rounds=12):
    """Train the model alone on random tasks (theta_0's episodes as support and query)."""
    rng = np.random.default_rng(0)
    for _ in range(4):
        tasks = learner.family.sample_tasks(6, rng)
        learner.buffer.append((real(learner, tasks, 5), real(learner, tasks, 5, seed=6)))
    for _ in range(rounds):
        learner.train_model()
    return learner


@pytest.fixture(scope="module")
def navigation_model():
    torch.manual_seed(0)
    return trained_model(make(model_epochs=10))


def test_inferring_the_latent_lowers_held_out_error(navigation_model):
    learner = navigation_model
    tasks = learner.family.test_tasks(6, seed=1)
    support = Transitions.of(real(learner, tasks, 5))
    held_out = Transitions.of(real(learner, tasks, 10, seed=99))
    with torch.no_grad():
        inferred = learner.model.infer(support)
    prior = learner.model.prior_latent(len(tasks))
    reward_prior, _ = learner.model.errors(prior, held_out)
    reward, _ = learner.model.errors(inferred, held_out)
    assert reward < 0.5 * reward_prior, (reward, reward_prior)
    with torch.no_grad():
        assert float(learner.model.loss(inferred, held_out).mean()) < float(
            learner.model.loss(prior, held_out).mean())


def test_latents_of_different_tasks_differ(navigation_model):
    learner = navigation_model
    tasks = [learner.family.task_from_json({"goal": [0.4, 0.4]}),
             learner.family.task_from_json({"goal": [-0.4, -0.4]})]
    with torch.no_grad():
        latent = learner.model.infer(Transitions.of(real(learner, tasks, 5)))
        same = learner.model.infer(Transitions.of(real(learner, tasks[:1] * 2, 5, seed=7)))
    apart = float((latent[0] - latent[1]).norm())
    assert apart > 3 * float((same[0] - same[1]).norm()), (latent, same)


def test_inference_is_the_minimiser_of_the_latent_loss(navigation_model):
    """The closed form is where gradient steps on z alone converge: the gradient of the
    (Gaussian) loss plus the prior's vanishes there."""
    learner = navigation_model
    model = learner.model
    data = Transitions.of(real(learner, learner.family.test_tasks(3, seed=2), 5))
    latent = model.infer(data).detach().requires_grad_()
    targets, masks = model._standardised(data)
    mean, _ = model._predict_standardised(data.obs, data.actions, latent)
    precision = torch.exp(-2 * model.noise_log_std)
    objective = (0.5 * (targets - mean) ** 2 * precision * masks).sum() + (
        0.5 * model.prior_log_precision.exp() * (latent - model.latent_init) ** 2).sum()
    (grad,) = torch.autograd.grad(objective, latent)
    shifted = latent.detach() + 0.05
    assert float(grad.abs().max()) < 1e-2 * max(1.0, float(latent.detach().abs().max()))
    mean, _ = model._predict_standardised(data.obs, data.actions, shifted)
    worse = (0.5 * (targets - mean) ** 2 * precision * masks).sum() + (
        0.5 * model.prior_log_precision.exp() * (shifted - model.latent_init) ** 2).sum()
    assert float(worse) > float(objective)


def model_env(learner, n_tasks=3, episodes=4):
    tasks = learner.family.sample_tasks(n_tasks, np.random.default_rng(1))
    batch = real(learner, tasks, 2)
    data = Transitions.of(batch)
    learner.model.fit_normaliser(data)
    with torch.no_grad():
        latent = learner.model.infer(data)
    starts = batch.observations[0].view(n_tasks, 2, -1)
    family = learner.family
    env = ModelEnv(learner.model, latent, starts, episodes, family.max_episode_steps,
                   family.observation_space, family.action_space)
    return env, latent, starts


def test_model_env_follows_the_batched_env_contract():
    learner = make()
    env, latent, starts = model_env(learner)
    family = learner.family
    assert env.num_envs == 12
    obs, info = env.reset(seed=3)
    assert obs.shape == (12, 2) and obs.dtype == np.float32 and info == {}
    actions = np.zeros((12, 2), dtype=np.float32)
    first = env.step(actions)
    env.reset(seed=3)
    np.testing.assert_array_equal(env.step(actions)[0], first[0])  # seeded: reproducible
    next_obs, reward, terminated, truncated, _ = first
    assert next_obs.shape == (12, 2) and reward.shape == (12,) and reward.dtype == np.float64
    assert terminated.dtype == bool and truncated.dtype == bool
    # column b steps task b // episodes_per_task's latent: task 0 alone gives the same means
    single = ModelEnv(learner.model, latent[:1], starts[:1], 4, family.max_episode_steps,
                      family.observation_space, family.action_space, use_mean=True)
    both = ModelEnv(learner.model, latent, starts, 4, family.max_episode_steps,
                    family.observation_space, family.action_space, use_mean=True)
    single.reset(seed=3)
    both.reset(seed=3)
    np.testing.assert_allclose(single.step(actions[:4])[1], both.step(actions)[1][:4],
                               rtol=1e-5, atol=1e-6)
    # terminated columns stay terminated with reward 0; truncation at the horizon
    termination = slice(-(learner.model.latent_size + 1), None)  # its rows and offset
    with torch.no_grad():
        learner.model.head.weight[termination] = 0.0
        learner.model.head.bias[termination] = 0.0
        learner.model.head.bias[-1] = 50.0
    env.reset(seed=0)
    assert env.step(actions)[2].all()
    _, reward, terminated, truncated, _ = env.step(actions)
    assert terminated.all() and not truncated.any() and (reward == 0).all()
    with torch.no_grad():
        learner.model.head.bias[-1] = -50.0
    env.reset(seed=0)
    for _ in range(family.max_episode_steps):
        _, _, terminated, truncated, _ = env.step(actions)
    assert truncated.all() and not terminated.any()


def test_sampler_runs_the_model_env_unchanged():
    learner = make()
    _, latent, starts = model_env(learner)
    family = learner.family
    source = ImaginedTasks(learner.model, latent, starts, family.max_episode_steps,
                           family.observation_space, family.action_space, False)
    batch = Sampler(source, learner.policy, learner.device).sample(
        range(3), 4, learner.meta_params(), seed=0
    )
    assert batch.observations.shape == (100, 12, 2) and batch.rewards.shape == (100, 12)
    assert torch.isfinite(batch.rewards).all()


@pytest.mark.parametrize("family", ["navigation2d", "bandit-10", "maze"])
def test_a_meta_iteration_logs_finite_diagnostics(family):
    learner = make(family)
    tasks = learner.family.sample_tasks(6, learner.rng)
    rollouts = learner.collect(tasks, Timer(learner.phases))
    assert rollouts.inner[0].batch.episodes_per_task == 4
    assert rollouts.before.episodes_per_task == 5
    objective = PostAdaptation(learner.policy, detach_params(rollouts.adapted), rollouts.after)
    adapted = learner.replay(rollouts.inner, create_graph=True)
    surrogate = objective.surrogate(distributions(learner.policy, adapted, rollouts.after.batch))
    grads = torch.autograd.grad(surrogate, list(learner.policy.parameters()))
    assert any(float(g.abs().max()) > 0 for g in grads)
    metrics = learner.step(tasks)
    for key in ("model_reward_error", "model_reward_error_prior", "model_transition_error",
                "model_transition_error_prior", "imagined_gradient_cosine", "model_seconds"):
        assert np.isfinite(metrics[key]), key
    assert all(np.isfinite(value) for value in metrics.values())


def test_checkpoint_restores_the_model_and_its_buffer(tmp_path):
    learner = make()
    learner.step(learner.family.sample_tasks(6, learner.rng))
    state = learner.state_dict()
    torch.save(state, tmp_path / "state.pt")
    loaded = torch.load(tmp_path / "state.pt", weights_only=True)  # no code in the file
    fresh = make()
    fresh.load_state_dict(loaded)
    for (key, value), other in zip(learner.model.state_dict().items(),
                                   fresh.model.state_dict().values(), strict=True):
        torch.testing.assert_close(value, other, msg=key)
    assert len(fresh.buffer) == 1
    torch.testing.assert_close(fresh.buffer[0][1].rewards, learner.buffer[0][1].rewards)


@pytest.mark.parametrize(("options", "message"), [
    ({"latent_size": 0}, "--latent-size must be >= 1"),
    ({"imagined_episodes": 0}, "--imagined-episodes must be >= 1"),
    ({"model_lr": -1.0}, "--model-lr must be > 0"),
    ({"model": "perfect"}, "--model must be one of"),
])
def test_bad_options_name_the_option(options, message):
    with pytest.raises(ConfigError, match=message):
        make(**options)


def train_and_evaluate(tmp_path, algo, episodes, **options):
    config = TrainConfig(family="navigation2d", algo=algo, iterations=15, meta_batch_size=10,
                         episodes_per_task=10, seed=0, device="cpu", algo_options=options)
    learner = train(config, tmp_path / f"{algo}-{options.get('model', '')}", log=None)
    return evaluate(learner, learner.family.test_tasks(20, seed=0), 1, episodes, seed=0)


@pytest.mark.slow
def test_oracle_adapts_like_maml_from_as_many_episodes(tmp_path):
    """With the family's true dynamics in the model's place, MBML's imagined inner step is
    MAML's: 10 true episodes per task after 5 real ones, against MAML from 10."""
    oracle = train_and_evaluate(tmp_path, "mbml", 5, model="oracle", imagined_episodes=10)
    maml = train_and_evaluate(tmp_path, "maml", 10)
    gain_oracle = oracle.mean_return[1] - oracle.mean_return[0]
    gain_maml = maml.mean_return[1] - maml.mean_return[0]
    assert gain_oracle > 5 and gain_maml > 5, (oracle.mean_return, maml.mean_return)
    assert abs(oracle.mean_return[1] - maml.mean_return[1]) < 0.25 * abs(maml.mean_return[1])


def five_episode_returns(config, tmp_path, test_tasks):
    """Train ``config`` and return its held-out evaluation from 5 real episodes per step."""
    learner = train(config, tmp_path / config.algo, log=None)
    return evaluate(learner, learner.family.test_tasks(test_tasks, seed=0), 1, 5, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("family, iterations, inner_lr, model_steps, options", [
    ("navigation2d", 40, 0.1, 1, {}),
    ("bandit-10", 60, 0.5, 3, {"latent_size": 10}),
])
def test_mbml_from_five_real_episodes_beats_maml_from_five(family, iterations, inner_lr,
                                                           model_steps, options, tmp_path):
    """The MBML target in reduced form (the full one is in the README's tables): same
    iterations and seed for both, 5 real episodes per adaptation step (MBML's inner steps all
    in the model), intervals apart."""
    torch.set_num_threads(1)
    common = dict(family=family, iterations=iterations, inner_lr=inner_lr, seed=0,
                  device="cpu")
    mbml = five_episode_returns(TrainConfig(algo="mbml", inner_steps=model_steps,
                                            algo_options=options, **common), tmp_path, 200)
    maml = five_episode_returns(TrainConfig(algo="maml", **common), tmp_path, 200)
    assert mbml.ci95_low[1] > mbml.ci95_high[0], mbml.mean_return  # MBML adapts
    assert mbml.ci95_low[1] > maml.ci95_high[1], (mbml.mean_return, maml.mean_return)
