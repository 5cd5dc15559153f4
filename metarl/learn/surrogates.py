"""Policy-gradient building blocks shared by the meta-learners: the policy's log-probabilities
on a batch, per-task means, the inner (LVC) surrogate and step, the outer surrogates and KL.

All functions work on a whole :class:`~metarl.rollout.episodes.EpisodeBatch` (every task at
once) and per-task parameters (leading ``n_tasks`` dimension, see
:mod:`metarl.policies.params`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution, Independent, Normal, kl_divergence

from metarl.learn.optim import hessian_vector_product
from metarl.policies.mlp import MLPPolicy
from metarl.policies.params import Params, flat, is_per_task, per_task, unflat
from metarl.rollout.episodes import EpisodeBatch


def log_probs(policy: MLPPolicy, params: Params, episodes: EpisodeBatch) -> Tensor:
    """``log pi(a_t | s_t)`` of every step, ``[T, B]``, under shared or per-task ``params``."""
    if not is_per_task(params):
        return policy.distribution(episodes.observations, params).log_prob(episodes.actions)
    return log_probs_under(distributions(policy, params, episodes), episodes)


def distributions(policy: MLPPolicy, params: Params, episodes: EpisodeBatch) -> Distribution:
    """The policy's distributions over the grouped observations (per-task ``params``)."""
    return policy.distribution(episodes.group(episodes.observations), params)


def log_probs_under(dist: Distribution, episodes: EpisodeBatch) -> Tensor:
    """``[T, B]`` log-probabilities of the actions under grouped distributions ``dist``."""
    return episodes.ungroup(dist.log_prob(episodes.group(episodes.actions)))


def episode_mean(x: Tensor, episodes: EpisodeBatch) -> Tensor:
    """Per task, ``[n_tasks]``: mean over its episodes of each episode's sum over valid steps,
    divided by the horizon.

    Every step weighs the same, as in the policy gradient ``E[sum_t grad log pi A_t]`` (the
    constant ``1 / horizon`` keeps step sizes comparable across families). Dividing each
    episode by its own length instead would multiply the weight of the steps of episodes that
    end early, which biases the estimate towards them.
    """
    per_episode = (x * episodes.mask).sum(dim=0) / episodes.horizon
    return per_episode.view(episodes.n_tasks, episodes.episodes_per_task).mean(dim=1)


def step_mean(x: Tensor, episodes: EpisodeBatch) -> Tensor:
    """Per task, ``[n_tasks]``: mean over the valid steps of its episodes."""
    grouped, mask = episodes.group(x), episodes.group(episodes.mask)
    return (grouped * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def magic_box(x: Tensor) -> Tensor:
    """DiCE's operator: evaluates to 1, its gradient is ``magic_box(x) * grad x``."""
    return torch.exp(x - x.detach())


def inner_surrogate(
    policy: MLPPolicy, params: Params, episodes: EpisodeBatch, advantages: Tensor
) -> Tensor:
    """Per-task low-variance-curvature (LVC) objective, ``[n_tasks]``.

    ``E[magic_box(log pi(a_t|s_t)) A_t]``: its gradient is the REINFORCE policy gradient, and
    its Hessian adds the per-step score outer products ``grad log pi grad log pi^T A_t`` that
    come from sampling the inner episodes with the parameters being differentiated (the
    term plain REINFORCE losses drop). Maximise it.
    """
    return episode_mean(magic_box(log_probs(policy, params, episodes)) * advantages, episodes)


def policy_gradient_step(
    policy: MLPPolicy,
    params: Params,
    episodes: EpisodeBatch,
    advantages: Tensor,
    lr: float,
    create_graph: bool,
) -> Params:
    """One inner step ``theta_t = theta + lr * grad J_t(theta)`` for every task at once.

    ``params`` may be shared (expanded to one copy per task) or per task; the result is per
    task. With ``create_graph`` the step stays differentiable (second-order meta-gradients).
    """
    if not is_per_task(params):
        params = per_task(params, episodes.n_tasks)
    if not any(value.requires_grad for value in params.values()):  # adapting detached params
        params = {key: value.clone().requires_grad_() for key, value in params.items()}
    grads = inner_gradient(policy, params, episodes, advantages, create_graph)
    return {key: value + lr * grad for (key, value), grad in zip(params.items(), grads)}


def inner_gradient(
    policy: MLPPolicy, params: Params, episodes: EpisodeBatch, advantages: Tensor,
    create_graph: bool,
) -> list[Tensor]:
    """``grad J_t`` of every task with respect to its own (per-task) ``params``, in dict order."""
    objective = inner_surrogate(policy, params, episodes, advantages).sum()
    return list(torch.autograd.grad(objective, list(params.values()), create_graph=create_graph))


def clipped_surrogate(
    log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, episodes: EpisodeBatch,
    clip: float | None = None,
) -> Tensor:
    """Importance-weighted surrogate per task, ``[n_tasks]``; PPO-clipped when ``clip`` is set."""
    ratio = torch.exp(log_probs - old_log_probs)
    objective = ratio * advantages
    if clip is not None:
        objective = torch.min(objective, ratio.clamp(1 - clip, 1 + clip) * advantages)
    return episode_mean(objective, episodes)


def mean_kl(old: Distribution, new: Distribution, episodes: EpisodeBatch) -> Tensor:
    """Mean over tasks of the mean ``KL(old || new)`` over the steps taken (grouped
    distributions)."""
    kl = episodes.ungroup(kl_divergence(old, new))
    return step_mean(kl, episodes).mean()


def detach_distribution(dist: Distribution) -> Distribution:
    """A copy of ``dist`` that carries no gradient (the 'old' policy of a trust region)."""
    if isinstance(dist, Independent):
        return Independent(
            detach_distribution(dist.base_dist), dist.reinterpreted_batch_ndims,
            validate_args=False,
        )
    if isinstance(dist, Normal):
        return Normal(dist.loc.detach(), dist.scale.detach(), validate_args=False)
    if isinstance(dist, Categorical):
        return Categorical(logits=dist.logits.detach(), validate_args=False)
    raise TypeError(f"cannot detach a {type(dist).__name__}")


def kl_hessian_product(
    policy: MLPPolicy, episodes: EpisodeBatch, params: Params
) -> Callable[[list[Tensor]], list[Tensor]]:
    """Products with the Hessian of the mean KL with respect to per-task ``params`` (each
    task's Fisher over the number of tasks), on per-task directions."""
    phi = {key: value.detach().requires_grad_() for key, value in params.items()}
    dist = distributions(policy, phi, episodes)
    kl = mean_kl(detach_distribution(dist), dist, episodes)
    leaves = list(phi.values())
    grad_kl = torch.autograd.grad(kl, leaves, create_graph=True)
    return lambda directions: hessian_vector_product(grad_kl, leaves, directions)


def identity_jacobian_fisher(
    policy: MLPPolicy, episodes: EpisodeBatch, params: Params
) -> Callable[[Tensor], Tensor]:
    """Flat ``v -> F v`` for a shared (theta_0-shaped) ``v``: the mean over tasks of each
    adapted policy's Fisher, as if the adapted per-task ``params`` moved with theta_0 one for
    one (the inner steps' Jacobian taken as the identity)."""
    fisher = kl_hessian_product(policy, episodes, params)
    like = [value[0] for value in params.values()]

    def product(v: Tensor) -> Tensor:
        directions = [d.expand_as(p) for d, p in zip(unflat(v, like), params.values())]
        return flat([h.sum(dim=0) for h in fisher(directions)])

    return product
