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


def _interrupted_backward(model, hooked: bool) -> tuple[int, bool, bool]:
    """SIGINT from another thread 50 ms into the backward pass (about 0.5 s long: 2048 rows through 24 layers of
    256 x 256 on one thread): the number of layers with a weight gradient when the KeyboardInterrupt surfaces,
    whether it came out of ``backward()`` itself, and whether the signal was sent while the pass was still running
    (on a loaded machine the sending thread may get no CPU until the pass is over: then the run shows nothing about
    the hooks). The sending thread gets the GIL because the engine releases it."""
    x = torch.randn(2048, 256)
    loss = model(x).square().mean()
    started = threading.Event()
    sent_at, ended_at = [], []

    def send():
        if started.wait(5):
            time.sleep(0.05)
            sent_at.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=send)
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
            finally:
                ended_at.append(time.perf_counter())
            time.sleep(2)  # without the hooks the interrupt arrives here, after the whole pass
    except KeyboardInterrupt:
        pass
    sender.join()
    during = bool(sent_at) and sent_at[0] < ended_at[0]
    return sum(layer.weight.grad is not None for layer in model), inside, during


@pytest.fixture(autouse=True)
def python_sigint_handler():
    """Python's own SIGINT handler (KeyboardInterrupt) for the test: pytest-xdist's workers ignore SIGINT (their
    controller handles Ctrl-C), so there a signal sent to the process would do nothing and the hooks would have
    nothing to deliver. Restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can be set in the main thread only")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _timely(hooked: bool, attempts: int = 5) -> tuple[int, bool]:
    """The first run whose signal was sent during the pass (a late signal is the scheduler's, not the hooks' doing:
    it is retried, never counted as a pass or a failure); fails when no attempt got the signal in time."""
    for _ in range(attempts):
        done, inside, during = _interrupted_backward(_chain(), hooked=hooked)
        if during:
            return done, inside
    pytest.fail(f"the signal never arrived during the pass in {attempts} attempts (machine too loaded to test)")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_ctrl_c_stops_the_backward_pass_at_the_next_gradient():
    torch.set_num_threads(1)
    done, inside = _timely(hooked=True)
    assert inside and done < LAYERS, (done, inside)  # stopped part-way: the first layers have no gradient yet
    # (`inside` alone proves nothing: torch's Python wrapper around the engine raises a pending interrupt too)


def test_without_the_hooks_the_whole_pass_runs_first():
    """The control: the same pass without the hooks finishes every gradient before the interrupt (so the test above
    measures the hooks, not a pass too short to interrupt)."""
    done, inside = _timely(hooked=False)
    assert done == LAYERS  # every gradient made: the interrupt waited for the pass (it may surface from backward()'s wrapper)


def test_the_hooks_change_no_gradient_and_are_removed():
    model, ref = _chain(), _chain()
    x = torch.randn(8, 256)
    with interruptible_backward(model):
        model(x).square().mean().backward()
    ref(x).square().mean().backward()
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(model.parameters(), ref.parameters()))
    assert all(not p._backward_hooks for p in model.parameters())
