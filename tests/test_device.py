"""CPU and CUDA agree: the same episodes give the same advantages, adapted parameters and
meta-gradient on both devices. Skipped where torch sees no CUDA device."""

import numpy as np
import pytest
import torch

from metarl.config import TrainConfig
from metarl.learn.surrogates import log_probs
from metarl.run.factory import build_learner

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def learner_on(device: str):
    config = TrainConfig(meta_batch_size=4, episodes_per_task=5, seed=0, device=device)
    return build_learner(config, torch.device(device))


def test_adaptation_and_meta_gradient_agree():
    cpu, gpu = learner_on("cpu"), learner_on("cuda")
    gpu.policy.load_state_dict(cpu.policy.state_dict())
    tasks = cpu.family.sample_tasks(4, np.random.default_rng(0))
    episodes = cpu.sampler.sample(tasks, 5, cpu.meta_params(), seed=0)
    results = []
    for learner, batch in ((cpu, episodes), (gpu, episodes.to("cuda"))):
        adapted = learner.adapt_params(learner.policy.parameters_dict(), batch, create_graph=True)
        objective = log_probs(learner.policy, adapted, batch).mean()
        grads = torch.autograd.grad(objective, list(learner.policy.parameters()))
        results.append(([p.detach().cpu() for p in adapted.values()], [g.cpu() for g in grads]))
    for a, b in zip(*[r[0] + r[1] for r in results]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def test_training_step_runs_on_cuda():
    gpu = learner_on("cuda")
    metrics = gpu.step(gpu.family.sample_tasks(4, gpu.rng))
    assert np.isfinite(metrics["return_after"]) and metrics["step_accepted"] in (0.0, 1.0)
    assert next(gpu.policy.parameters()).is_cuda
