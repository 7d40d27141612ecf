"""Each recipe loss term against a value worked out by hand on a tiny tensor."""

import pytest

torch = pytest.importorskip("torch")

from netc.runtime.recipes import losses  # noqa: E402


def t(values):
    return torch.tensor(values, dtype=torch.float32)


def test_content_is_half_the_squared_error():
    # ½ ((1-0)² + (2-2)² + (3-5)²) = ½ (1 + 0 + 4) = 2.5
    assert float(losses.content(t([1, 2, 3]), t([0, 2, 5]))) == 2.5


def test_gram_is_f_f_transpose_over_positions():
    f = t([[[[1, 2]], [[0, 1]]]])  # N=2 channels, M=1x2 positions
    assert losses.gram(f).tolist() == [[5.0, 2.0], [2.0, 1.0]]


def test_style_layer_has_the_1_over_4_n2_m2_normalisation():
    g = t([[5, 2], [2, 1]])
    # Σ G² = 25 + 4 + 4 + 1 = 34; N = 2, M = 2: 34 / (4 · 4 · 4) = 0.53125
    assert float(losses.style_layer(g, torch.zeros(2, 2), n=2, m=2)) == pytest.approx(0.53125)


def test_style_sums_weighted_layers_against_gram_targets():
    f1 = t([[[[1, 2]], [[0, 1]]]])  # G = [[5,2],[2,1]], N=2, M=2
    f2 = t([[[[2]]]])  # G = [[4]], N=1, M=1
    a1 = t([[5, 2], [2, 0]])  # differs from G by 1 in one entry: E = 1/64
    a2 = t([[1]])  # (4-1)² / (4·1·1) = 9/4
    value = losses.style([f1, f2], [a1, a2], [0.5, 2.0])
    assert float(value) == pytest.approx(0.5 / 64 + 2.0 * 9 / 4)


def test_code_loss_is_normalised_by_the_target_norm():
    # ‖(1,2) − (1,0)‖² / ‖(1,0)‖² = 4 / 1
    assert float(losses.code(t([1, 2]), t([1, 0]))) == 4.0
    # ‖(0,0) − (3,4)‖² / ‖(3,4)‖² = 25 / 25
    assert float(losses.code(t([0, 0]), t([3, 4]))) == 1.0
    # the same relative error at ten times the scale gives the same loss
    assert float(losses.code(t([10, 20]), t([10, 0]))) == 4.0


def test_activation_is_half_the_squared_norm_optionally_one_channel():
    a = t([[[[1, 2]], [[3, 4]]]])  # channels 0: (1,2), 1: (3,4)
    assert float(losses.activation(a)) == 15.0  # ½ (1 + 4 + 9 + 16)
    assert float(losses.activation(a, channel=1)) == 12.5  # ½ (9 + 16)


def test_alpha_norm_averages_pixel_norms_over_the_bound():
    # pixel 1 has norm 80 = B: (80/80)^6 = 1; pixel 2 has norm 160: 2^6 = 64; mean 32.5
    x = t([[[[80, 0]], [[0, 0]], [[0, 160]]]])
    assert float(losses.alpha_norm(x, alpha=6, bound=80)) == pytest.approx(32.5)
    assert float(losses.alpha_norm(x, alpha=2, bound=80)) == pytest.approx(2.5)


def test_tv_uses_forward_differences_zero_at_the_border():
    x = t([[[[0, 13], [0, 0]]]])  # one channel, 2x2
    v2 = (80 / 6.5) ** 2
    # d1 = [[13, 0], [0, 0]], d2 = [[0, -13], [0, 0]]: squared sums 169, 169, 0, 0 over 4 pixels
    assert float(losses.tv(x, beta=2, bound=80)) == pytest.approx(338 / (4 * v2))
    # β = 1: mean of (13/V, 13/V, 0, 0)
    assert float(losses.tv(x, beta=1, bound=80)) == pytest.approx(26 / (4 * v2 ** 0.5))


def test_tv_of_a_constant_image_is_zero():
    assert float(losses.tv(torch.full((1, 3, 4, 5), 7.0))) == 0.0


def test_preprocess_follows_the_input_spec_caffe_and_torchvision():
    from netc.compiler.ir import InputSpec
    from netc.runtime.recipes.objective import Preprocess

    pixel = t([1.0, 0.5, 0.0]).view(1, 3, 1, 1)  # RGB in [0, 1]
    caffe = Preprocess(InputSpec("image", (3, 4, 4), mean=(104, 117, 123), scale=255,
                                 layout="bgr"))
    # ×255 -> (255, 127.5, 0); BGR -> (0, 127.5, 255); minus the BGR mean
    assert caffe(pixel).flatten().tolist() == [-104.0, 10.5, 132.0]
    # the mean pixel in RGB [0, 1] units, where the regularisers centre the image
    assert caffe.mean_pixel.flatten().tolist() == pytest.approx([123 / 255, 117 / 255,
                                                                 104 / 255])
    tv_spec = InputSpec("image", (3, 4, 4), mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    assert Preprocess(tv_spec)(pixel).flatten().tolist() == [2.0, 0.0, -0.5]
    gray = Preprocess(InputSpec("image", (1, 4, 4), layout="gray"))
    assert gray(pixel).flatten().tolist() == [0.5]
