"""Models, optimisers and checkpoints: plain PyTorch, no cluster."""

from __future__ import annotations

import copy

import pytest
import torch

from models import create_model, list_models, model_entry
from models.checkpoint import build_model, load_checkpoint, save_checkpoint
from models.optim import create_optimizer

INPUTS = {"trace": (3, 40), "section": (2, 1, 36, 20), "cube": (1, 1, 12, 10, 14)}


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu", "elu"])
def test_every_model_forward_shape_and_finite(name, activation):
    kind = model_entry(name).patch_kinds[0]
    options = {"n_classes": 5, "activation": activation}
    if name == "mlp":
        options["in_samples"] = 40
    model = create_model(name, **options).eval()
    x = torch.randn(*INPUTS[kind])
    logits = model(x)
    spatial = tuple(x.shape[2:]) if model_entry(name).dense else ()
    assert tuple(logits.shape) == (x.shape[0], 5, *spatial)
    assert torch.isfinite(logits).all()


def test_unknown_names_list_the_allowed_values():
    with pytest.raises(ValueError, match="cnn2d, cnn2d_patch, cnn3d, mlp"):
        create_model("resnet")
    with pytest.raises(ValueError, match="sigmoid, tanh, relu"):
        create_model("mlp", activation="swish")
    with pytest.raises(ValueError, match="no option 'depth'"):
        create_model("mlp", depth=3)
    with pytest.raises(ValueError, match="gd, sgd, momentum, rmsprop, adam"):
        create_optimizer("lbfgs", [torch.zeros(1, requires_grad=True)], 0.1)


def _one_step(name: str, steps: int = 2, **options):
    weight = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    optimizer = create_optimizer(name, [weight], lr=0.1, **options)
    grads = []
    for step in range(steps):
        optimizer.zero_grad()
        loss = ((weight * torch.tensor([1.0, 2.0, 3.0])) ** 2).sum() * (step + 1)
        loss.backward()
        grads.append(weight.grad.clone())
        optimizer.step()
    return weight.detach(), grads


def test_gradient_descent_and_sgd_follow_w_minus_alpha_dw():
    for name in ("gd", "sgd"):
        weight, grads = _one_step(name, steps=1)
        torch.testing.assert_close(weight, torch.tensor([1.0, -2.0, 0.5]) - 0.1 * grads[0])


def test_momentum_is_the_course_exponential_average():
    weight, grads = _one_step("momentum", beta=0.9)
    w = torch.tensor([1.0, -2.0, 0.5])
    velocity = torch.zeros(3)
    for grad in grads:
        velocity = 0.9 * velocity + 0.1 * grad
        w = w - 0.1 * velocity
    torch.testing.assert_close(weight, w)


def test_rmsprop_matches_the_course_formula():
    weight, grads = _one_step("rmsprop", beta=0.9, eps=1e-8)
    w, square = torch.tensor([1.0, -2.0, 0.5]), torch.zeros(3)
    for grad in grads:
        square = 0.9 * square + 0.1 * grad**2
        w = w - 0.1 * grad / (square.sqrt() + 1e-8)
    torch.testing.assert_close(weight, w)


def test_adam_matches_the_course_formula_with_bias_correction():
    weight, grads = _one_step("adam", beta=0.9, beta2=0.999, eps=1e-8)
    w, v, s = torch.tensor([1.0, -2.0, 0.5]), torch.zeros(3), torch.zeros(3)
    for t, grad in enumerate(grads, start=1):
        v = 0.9 * v + 0.1 * grad
        s = 0.999 * s + 0.001 * grad**2
        w = w - 0.1 * (v / (1 - 0.9**t)) / ((s / (1 - 0.999**t)).sqrt() + 1e-8)
    torch.testing.assert_close(weight, w)


def test_checkpoint_round_trip_is_safe_and_complete(tmp_path):
    model = create_model("cnn2d", n_classes=3, base=4, depth=1)
    save_checkpoint(
        tmp_path / "m.pt",
        model,
        "cnn2d",
        class_names=["a", "b", "c"],
        epoch=2,
        normalisation={"mean": 0.5, "std": 2.0},
        patch={"kind": "section", "size": 16},
    )
    payload = load_checkpoint(tmp_path / "m.pt")
    rebuilt = build_model(payload).eval()
    x = torch.randn(1, 1, 16, 16)
    torch.testing.assert_close(rebuilt(x), copy.deepcopy(model).eval()(x))
    assert (
        payload["class_names"] == ["a", "b", "c"] and payload["epoch"] == 2 and payload["seisfacies_version"]
    )
    assert not list(tmp_path.glob(".*partial*"))


def test_checkpoint_refuses_arbitrary_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "seisfacies-checkpoint-1", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a loadable"):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a loadable"):
        load_checkpoint(tmp_path / "junk.pt")
