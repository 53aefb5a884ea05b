"""The one-exp Mish (methods/common/mish.py) against ATen's: values, gradients, both paths, edge values."""
import torch
import torch.nn.functional as F

from methods.common.mish import SMALL, Mish, mish


def _sweep() -> torch.Tensor:
    return torch.cat([torch.linspace(-120.0, 120.0, 400_001), torch.tensor([0.0, -0.0, 20.0, 19.999, 20.001])])


def test_values_and_gradients_agree_with_aten_to_a_few_ulps():
    x = _sweep()
    assert x.numel() >= SMALL  # the formula's path, not ATen's
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = F.mish(a), mish(b)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(yb, ya, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-6, atol=1e-6)
    with torch.no_grad():  # the inference path computes the same values
        torch.testing.assert_close(mish(x), ya.detach(), rtol=1e-6, atol=1e-6)


def test_large_inputs_pass_through_and_nan_propagates():
    x = torch.full((SMALL,), 1e30)
    x[0], x[1] = float("nan"), float("inf")
    y = mish(x)
    assert torch.isnan(y[0]) and y[1] == float("inf") and (y[2:] == 1e30).all()


def test_small_tensors_and_the_module_use_aten_bit_for_bit():
    x = torch.randn(10, 256)
    assert torch.equal(Mish()(x), F.mish(x))


def test_a_gradient_check_in_double():
    x = torch.randn(64, 128, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(mish, (x,), fast_mode=True)
