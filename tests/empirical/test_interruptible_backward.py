"""Ctrl-C during a backward pass: with :func:`interruptible_backward` it stops at the next parameter's gradient;
without it the whole pass runs first (the 26 s wait of a SmolLM2 step the issue measured)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch

from elastic_theory.empirical.trl_compat import interruptible_backward

LAYERS = 24


def _chain():
    torch.manual_seed(0)
    return torch.nn.Sequential(*(torch.nn.Linear(256, 256) for _ in range(LAYERS)))


def _interrupted_backward(model, hooked: bool) -> tuple[int, bool]:
    """SIGINT from another thread 50 ms into the backward pass (about 0.5 s long: 2048 rows through 24 layers of
    256 x 256 on one thread): the number of layers with a weight gradient when the KeyboardInterrupt surfaces, and
    whether it came out of ``backward()`` itself. The sending thread gets the GIL because the engine releases it."""
    x = torch.randn(2048, 256)
    loss = model(x).square().mean()
    started = threading.Event()
    sender = threading.Thread(target=lambda: started.wait(5) and (time.sleep(0.05), os.kill(os.getpid(), signal.SIGINT)))
    sender.start()
    inside = False
    try:
        with interruptible_backward(model) if hooked else _nothing():
            try:
                started.set()
                loss.backward()
            except KeyboardInterrupt:
                inside = True
                raise
            time.sleep(2)  # without the hooks the interrupt arrives here, after the whole pass
    except KeyboardInterrupt:
        pass
    sender.join()
    return sum(layer.weight.grad is not None for layer in model), inside


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_ctrl_c_stops_the_backward_pass_at_the_next_gradient():
    torch.set_num_threads(1)
    done, inside = _interrupted_backward(_chain(), hooked=True)
    assert inside and done < LAYERS, (done, inside)  # stopped part-way: the first layers have no gradient yet
    # (`inside` alone proves nothing: torch's Python wrapper around the engine raises a pending interrupt too)


def test_without_the_hooks_the_whole_pass_runs_first():
    """The control: the same pass without the hooks finishes every gradient before the interrupt (so the test above
    measures the hooks, not a pass too short to interrupt)."""
    done, inside = _interrupted_backward(_chain(), hooked=False)
    assert done == LAYERS


def test_the_hooks_change_no_gradient_and_are_removed():
    model, ref = _chain(), _chain()
    x = torch.randn(8, 256)
    with interruptible_backward(model):
        model(x).square().mean().backward()
    ref(x).square().mean().backward()
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(model.parameters(), ref.parameters()))
    assert all(not p._backward_hooks for p in model.parameters())
