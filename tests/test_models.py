"""Models, optimisers and checkpoints: plain PyTorch, no cluster."""

from __future__ import annotations

import copy

import pytest
import torch

from seisfacies.models import create_model, list_models, model_entry
from seisfacies.models.checkpoint import build_model, checkpoint_bytes, load_checkpoint
from seisfacies.models.optim import create_optimizer

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
    (tmp_path / "m.pt").write_bytes(
        checkpoint_bytes(
            model,
            "cnn2d",
            class_names=["a", "b", "c"],
            epoch=2,
            normalisation={"mean": 0.5, "std": 2.0},
            patch={"kind": "section", "size": 16},
        )
    )
    payload = load_checkpoint(tmp_path / "m.pt")
    rebuilt = build_model(payload).eval()
    x = torch.randn(1, 1, 16, 16)
    torch.testing.assert_close(rebuilt(x), copy.deepcopy(model).eval()(x))
    assert (
        payload["class_names"] == ["a", "b", "c"] and payload["epoch"] == 2 and payload["seisfacies_version"]
    )


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


# ---------------------------------------------------------------- training and inference on plain tensors


def _separable_traces(n=240, samples=16, seed=0):
    """Three classes told apart by the sign pattern of a trace window."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, samples, generator=generator) * 0.3
    x[y == 1, : samples // 2] += 1.5
    x[y == 2, samples // 2 :] -= 1.5
    return x, y


def test_fit_learns_a_separable_problem_and_reports_every_epoch():
    from seisfacies.models.calibration import fit_sample, held_out_logits
    from seisfacies.models.registry import create_model_for_patches
    from seisfacies.models.training import FitOptions, class_weights, fit, local_batch

    x, y = _separable_traces()
    torch.manual_seed(0)
    model = create_model_for_patches("mlp", 3, 16)
    options = FitOptions(epochs=6, lr=0.01, batch_size=32, schedule="constant")
    seen, kept = [], []
    history = fit(
        model,
        {0: (x[:200], y[:200])},
        (x[200:], y[200:]),
        class_weights([y[:200].numpy()], 3, "balanced"),
        local_batch("adam", 32, 200, 1),
        options,
        torch.device("cpu"),
        on_epoch=lambda history, model, optimizer: seen.append(len(history)),
        held_out=kept,
    )
    assert seen == [1, 2, 3, 4, 5, 6]
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 2
    assert history[-1]["val_accuracy"] > 0.9  # chance is 1/3
    # the last validation pass is the trained model's held-out logits: the temperature's, without a pass
    kept_logits, kept_classes = fit_sample(kept)
    logits, classes = held_out_logits(model, (x[200:], y[200:]))
    assert torch.equal(kept_logits, logits) and torch.equal(kept_classes, classes) and len(classes) == 40
    # in bf16 the temperature keeps its fp32 pass: nothing is kept
    kept = []
    bf16 = FitOptions(epochs=1, lr=0.01, batch_size=32, precision="bf16")
    fit(model, {0: (x[:200], y[:200])}, (x[200:], y[200:]), torch.ones(3), (32, 6), bf16, torch.device("cpu"),
        held_out=kept)  # fmt: skip
    assert kept == []


class _Interrupted(Exception):
    pass


def test_fit_resumes_where_the_state_says():
    """Stopped after 2 of 4 epochs and resumed from the saved state: the same as 4 epochs in one go."""
    from seisfacies.models.registry import create_model_for_patches
    from seisfacies.models.training import FitOptions, fit

    x, y = _separable_traces(60)
    options, cpu = FitOptions(epochs=4, optimizer="adam", lr=0.01), torch.device("cpu")

    def fresh():
        torch.manual_seed(0)
        return create_model_for_patches("mlp", 3, 16)

    whole = fresh()
    straight = fit(whole, {0: (x, y)}, None, torch.ones(3), (20, 3), options, cpu)
    saved = {}

    def stop_after_two(history, model, optimizer):
        if history[-1]["epoch"] == 2:
            saved.update(
                state_dict=copy.deepcopy(model.state_dict()),
                optimizer_state=copy.deepcopy(optimizer.state_dict()),
                epoch=2,
                history=list(history),
            )
            raise _Interrupted

    with pytest.raises(_Interrupted):
        fit(fresh(), {0: (x, y)}, None, torch.ones(3), (20, 3), options, cpu, on_epoch=stop_after_two)
    resumed = fresh()
    resumed.load_state_dict(saved.pop("state_dict"))
    history = fit(resumed, {0: (x, y)}, None, torch.ones(3), (20, 3), options, cpu, state=saved)
    assert [record["epoch"] for record in history] == [1, 2, 3, 4]
    # the resumed epochs' losses and the final weights are those of the uninterrupted run:
    # they differ if the weights or Adam's moments were not restored
    assert [r["train_loss"] for r in history[2:]] == [r["train_loss"] for r in straight[2:]]
    for key, value in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value)


def test_train_loss_is_the_same_measure_as_val_loss_whatever_the_class_weights():
    """Weights shape the gradients only: the reported loss is the plain mean cross-entropy per label."""
    import torch.nn.functional as F

    from seisfacies.models.registry import create_model_for_patches
    from seisfacies.models.training import FitOptions, fit

    x, y = _separable_traces(60)
    torch.manual_seed(0)
    model = create_model_for_patches("mlp", 3, 16)
    with torch.no_grad():
        expected = F.cross_entropy(model(x), y).item()
    # lr 1e-30: the one full-batch step leaves the weights as they were, so the epoch's loss is known
    options = FitOptions(epochs=1, optimizer="gd", lr=1e-30)
    weights = torch.tensor([0.2, 1.0, 5.0])  # far from uniform: a weighted loss would differ a lot
    record = fit(model, {0: (x, y)}, (x, y), weights, (60, 1), options, torch.device("cpu"))[0]
    assert record["train_loss"] == pytest.approx(expected, abs=1e-4)
    assert record["val_loss"] == pytest.approx(record["train_loss"], abs=1e-4)


def test_a_blown_up_loss_stops_training_with_its_step():
    from seisfacies.models.registry import create_model_for_patches
    from seisfacies.models.training import FitOptions, NonFiniteLoss, fit

    x, y = _separable_traces(60)
    x[5] = float("nan")
    model = create_model_for_patches("mlp", 3, 16)
    with pytest.raises(NonFiniteLoss, match=r"epoch 1, step \d+ of 3; lower --lr"):
        fit(model, {0: (x, y)}, None, torch.ones(3), (20, 3), FitOptions(epochs=1), torch.device("cpu"))


def test_to_tensors_normalises_and_turns_centre_labels_into_dense_targets():
    import numpy as np

    from seisfacies.models.training import to_tensors

    x = np.full((2, 3, 3), 5.0)
    x[0, 0, 0] = np.nan
    inputs, targets = to_tensors(x, np.array([4, 1]), "cnn2d", 3.0, 2.0)
    assert inputs.shape == (2, 1, 3, 3) and inputs[0, 0, 0, 0] == 0 and inputs[1, 0, 1, 1] == 1.0
    assert (
        targets[:, 1, 1].tolist() == [4, 1]
        and (targets.flatten(1).sum(1) == torch.tensor([4 - 8, 1 - 8])).all()
    )


@pytest.mark.parametrize("orientation", ["inline", "crossline"])
def test_classify_block_equals_the_model_on_whole_sections(orientation):
    import numpy as np

    from seisfacies.models.inference import InferenceOptions, classify_block

    torch.manual_seed(0)
    model = create_model("cnn2d", n_classes=4, base=4, depth=2).eval()
    block = np.random.default_rng(0).normal(size=(6, 8, 12)).astype(np.float32)
    payload = {
        "patch": {"kind": "section", "size": 8, "orientations": [orientation]},
        "model_name": "cnn2d",
        "class_names": ["a", "b", "c", "d"],
    }
    keep = (slice(1, 5), slice(0, 8), slice(0, 12))
    output = classify_block(model, payload, block, keep, InferenceOptions(batch_size=3, probabilities=True))
    sections = torch.from_numpy(block if orientation == "inline" else block.transpose(1, 0, 2))[:, None]
    with torch.no_grad():
        logits = model(sections)  # (section, C, across, T)
    if orientation == "crossline":
        logits = logits.permute(2, 1, 0, 3)  # back to (inline, C, crossline, T)
    expected = logits.argmax(1).numpy()[keep]
    assert (output.facies == expected).all()
    assert np.allclose(output.probability.astype(np.float32).sum(0), 1.0, atol=5e-3)


def test_depth_order_is_the_most_likely_sequence_that_never_goes_back_up():
    import itertools

    import numpy as np

    from seisfacies.models.inference import (
        LOG_PROBABILITY_FLOOR,
        DepthOrderDecoder,
        InferenceOptions,
        classes_in_depth_order,
        classify_block,
    )

    rng = np.random.default_rng(1)
    log_probability = np.log(rng.dirichlet(np.full(3, 0.4), size=(40, 6)).transpose(2, 0, 1))  # (C, trace, T)
    decoded = classes_in_depth_order(log_probability)
    sequences = np.array([s for s in itertools.product(range(3), repeat=6) if list(s) == sorted(s)])
    for trace in range(40):  # every non-decreasing sequence, scored by hand
        totals = log_probability[sequences, trace, np.arange(6)].sum(1)
        assert np.isclose(log_probability[decoded[trace], trace, np.arange(6)].sum(), totals.max())
    assert (np.diff(decoded, axis=-1) >= 0).all() and (np.diff(log_probability.argmax(0), axis=-1) < 0).any()
    decoder = DepthOrderDecoder(3, (40,), 6)  # the same traces, two samples at a time
    for start in range(0, 6, 2):
        decoder.add(log_probability[..., start : start + 2])
    assert (decoder.classes() == decoded).all()

    torch.manual_seed(0)
    model = create_model("cnn2d", n_classes=4, base=4, depth=2).eval()
    for weights in model.parameters():  # far from the initial near-constant answer
        weights.data.normal_()
    block = rng.normal(size=(3, 8, 12)).astype(np.float32)
    payload = {"patch": {"kind": "section", "size": 8, "orientations": ["inline"]}, "model_name": "cnn2d",
               "class_names": list("abcd"), "temperature": 1.5}  # fmt: skip
    keep = (slice(0, 3), slice(0, 8), slice(0, 12))
    output = classify_block(model, payload, block, keep, InferenceOptions(depth_order=True))
    with torch.no_grad():
        logits = model(torch.from_numpy(block)[:, None]) / 1.5  # (inline, C, crossline, T)
    log_softmax = torch.log_softmax(logits, 1).clamp_min(LOG_PROBABILITY_FLOOR).numpy().transpose(1, 0, 2, 3)
    expected = classes_in_depth_order(log_softmax.astype(np.float16))  # as the block keeps them
    assert (output.facies == expected).all() and (expected != logits.argmax(1).numpy()).any()


def test_block_geometry_covers_each_dim_a_model_looks_along():
    from seisfacies.models.inference import BlockGeometry

    dims = ["inline", "crossline", "depth"]
    trace = {"kind": "trace", "size": 24, "orientations": [], "volume_dims": dims}
    cube = {"kind": "cube", "size": 8, "orientations": [], "volume_dims": dims}
    mlp = BlockGeometry.of({"patch": trace, "model_name": "mlp", "model_config": {}})
    assert (mlp.halo, mlp.grid, mlp.pad_edges) == ({"depth": 12}, {"depth": 1}, True)
    cnn3d = BlockGeometry.of({"patch": cube, "model_name": "cnn3d", "model_config": {"depth": 1}})
    assert set(cnn3d.halo) == set(dims) and set(cnn3d.grid.values()) == {2} and not cnn3d.pad_edges
    assert min(cnn3d.halo.values()) > 4  # the receptive field, not 8 // 2


# ---------------------------------------------------------------- a block's geometry: one object, the same rule at each edge

GEOMETRIES = {
    "cnn2d with neighbours, smoothing": (
        {"kind": "section", "size": 16, "orientations": ["inline"], "neighbours": 2},
        "cnn2d",
        {"depth": 2},
        1,
    ),
    "cnn3d": ({"kind": "cube", "size": 8, "orientations": ["inline"]}, "cnn3d", {"depth": 1}, 0),
    "mlp": ({"kind": "trace", "size": 12, "orientations": []}, "mlp", {}, 0),
}


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_block_geometry_reads_the_halo_on_the_grid_and_treats_both_edges_alike(name):
    """Every block of a volume, in every dim: read and padded the way one rule says.

    Its padded block starts on the grid and holds the block plus the halo (up
    to the grid at the volume's edges for a fully convolutional model), and
    the mirrored block of the mirrored volume is padded the mirrored way: no
    edge of the volume is special.
    """
    from seisfacies.models.inference import BlockGeometry
    from seisfacies.pipeline.blocks import aligned_halo_block

    patch, model, config, smooth = GEOMETRIES[name]
    sizes = {"inline": 23, "crossline": 19, "time": 37}
    patch = {**patch, "volume_dims": list(sizes)}
    geometry = BlockGeometry.of({"patch": patch, "model_name": model, "model_config": config}, smooth)
    for dim, halo in geometry.halo.items():
        grid, size = geometry.grid[dim], sizes[dim]
        for start in range(size):
            for stop in range(start + 1, size + 1):
                read, pads, keep = aligned_halo_block({dim: slice(start, stop)}, geometry.halo, sizes, geometry.grid,
                                                      pad_edges=geometry.pad_edges)  # fmt: skip
                first = read[dim].start - pads[dim][0]
                last = read[dim].stop + pads[dim][1]
                assert first % grid == 0 and first + keep[dim].start == start, (dim, start, stop)
                assert keep[dim].stop - keep[dim].start == stop - start
                if geometry.pad_edges or 0 < start - halo:
                    assert first <= start - halo
                if geometry.pad_edges or stop + halo < size:
                    assert last >= stop + halo
                if grid == 1:  # the mirrored block of the mirrored volume: mirrored padding
                    mirrored = aligned_halo_block({dim: slice(size - stop, size - start)}, geometry.halo, sizes,
                                                  geometry.grid, pad_edges=geometry.pad_edges)  # fmt: skip
                    assert mirrored[1][dim] == pads[dim][::-1]
