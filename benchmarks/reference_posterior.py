"""The reference posterior of the logistic_regression target, computed once and shipped.

Hamiltonian Monte Carlo in the coordinates whitened by the Laplace approximation (MAP and the
inverse Hessian there), where the posterior is close to N(0, I): 16 chains, 1,000 warm-up and
8,000 kept iterations each, 8 leapfrog steps, step size adapted in warm-up to ~80% acceptance.
Writes src/flowforge/targets/breast_cancer_posterior.npz (mean, std, their Monte Carlo errors
from batch means, and 1000 thinned draws) and prints a summary.

    PYTHONPATH=src python benchmarks/reference_posterior.py
"""
from __future__ import annotations

import json
import time

import numpy as np
import torch

from flowforge.targets.logistic import REFERENCE_FILE, logistic_regression

CHAINS, WARMUP, KEEP, LEAPFROG, SEED = 16, 1000, 8000, 8, 0


def laplace(target) -> tuple[torch.Tensor, torch.Tensor]:
    beta = torch.zeros(1, target.features, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([beta], max_iter=500, tolerance_grad=1e-12, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = -target(beta).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    mode = beta.detach()[0]
    hessian = torch.autograd.functional.hessian(lambda b: -target(b[None])[0], mode)
    return mode, torch.linalg.cholesky(torch.linalg.inv(hessian))


def hmc(target, mode, chol) -> np.ndarray:
    generator = torch.Generator().manual_seed(SEED)

    def log_p_and_grad(u):
        u = u.detach().requires_grad_(True)
        value = target(mode + u @ chol.T)
        (grad,) = torch.autograd.grad(value.sum(), u)
        return value.detach(), grad

    u = torch.randn(CHAINS, target.features, dtype=torch.float64, generator=generator)
    log_p, grad = log_p_and_grad(u)
    step, kept = 0.3, []
    for it in range(WARMUP + KEEP):
        p0 = torch.randn(u.shape, dtype=torch.float64, generator=generator)
        q, p, g = u, p0 + 0.5 * step * grad, grad
        for i in range(LEAPFROG):
            q = q + step * p
            lp_new, g = log_p_and_grad(q)
            if i < LEAPFROG - 1:
                p = p + step * g
        p = p + 0.5 * step * g
        log_accept = lp_new - 0.5 * (p ** 2).sum(1) - log_p + 0.5 * (p0 ** 2).sum(1)
        accept = torch.log(torch.rand(CHAINS, dtype=torch.float64, generator=generator)) < log_accept
        u = torch.where(accept[:, None], q, u)
        log_p, grad = torch.where(accept, lp_new, log_p), torch.where(accept[:, None], g, grad)
        if it < WARMUP:  # Robbins-Monro on the log step size towards 80% acceptance
            rate = float(torch.exp(log_accept.clamp(max=0)).mean())
            step *= float(np.exp(0.05 * (rate - 0.8)))
        else:
            kept.append((mode + u @ chol.T).numpy().copy())
        if it % 1000 == 0:
            print(f"iteration {it}, step size {step:.3f}", flush=True)
    print(f"step size {step:.3f}")
    return np.stack(kept, 1)  # (chains, keep, features)


def batch_means_error(draws: np.ndarray, statistic) -> np.ndarray:
    """Monte Carlo standard error of statistic(all draws) from 50 batches per chain."""
    batches = draws.reshape(draws.shape[0] * 50, -1, draws.shape[-1])
    values = np.stack([statistic(b) for b in batches])
    return values.std(0, ddof=1) / np.sqrt(len(values))


def main() -> None:
    torch.set_num_threads(1)
    target = logistic_regression()
    start = time.perf_counter()
    mode, chol = laplace(target)
    draws = hmc(target, mode, chol)
    flat = draws.reshape(-1, draws.shape[-1])
    mean, std = flat.mean(0), flat.std(0)
    mean_error = batch_means_error(draws, lambda b: b.mean(0))
    std_error = batch_means_error(draws, lambda b: b.std(0))
    thin = flat[np.random.default_rng(SEED).choice(len(flat), 1000, replace=False)]
    np.savez_compressed(REFERENCE_FILE, mean=mean, std=std, mean_mcse=mean_error, std_mcse=std_error,
                        draws=thin.astype(np.float32))
    summary = {"draws": len(flat), "seconds": round(time.perf_counter() - start, 1),
               "max mean_mcse / std": float((mean_error / std).max()), "max std_mcse / std": float((std_error / std).max()),
               "laplace mean error / std (max)": float((np.abs(mode.numpy() - mean) / std).max())}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
