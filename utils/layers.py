"""Model design tables: torchsummary's layer table, and per layer the receptive field and multiply-adds."""

import copy

import torch
import torchsummary
from torch import nn

INPUT_SHAPE = (1, 28, 28)


def receptive_field(model: nn.Module, input_shape=INPUT_SHAPE) -> list[dict]:
    """Per leaf layer, in forward order: output shape, receptive field, jump (input pixels per output step) and
    multiply-adds for one image (convolutions and linear layers; the rest are cheap by comparison)."""
    rows, hooks = [], []
    rf, jump = 1, 1

    def hook(module, inputs, output):
        nonlocal rf, jump
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s, d = (module.kernel_size, module.stride, module.dilation if hasattr(module, "dilation") else 1)
            k, s, d = (v[0] if isinstance(v, tuple) else v for v in (k, s, d))
            rf, jump = rf + (k - 1) * d * jump, jump * s
        elif isinstance(module, nn.AdaptiveAvgPool2d):  # global pooling sees the whole input feature map
            rf = rf + (inputs[0].shape[-1] - 1) * jump
        macs = 0
        if isinstance(module, nn.Conv2d):
            macs = output[0].numel() * module.weight[0].numel()  # each output value: one filter over its window
        elif isinstance(module, nn.Linear):
            macs = module.weight.numel()
        rows.append(dict(layer=type(module).__name__, output=tuple(output.shape[1:]), rf=rf, jump=jump, macs=macs))

    for m in model.modules():
        if not list(m.children()):
            hooks.append(m.register_forward_hook(hook))
    try:
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    return rows


def layer_tables(model: nn.Module, input_shape=INPUT_SHAPE) -> None:
    """Print torchsummary's table (run on a CPU/CUDA copy so BatchNorm statistics stay untouched) and the RF table."""
    device = next(model.parameters()).device
    run_on = "cuda" if device.type == "cuda" else "cpu"  # torchsummary knows only these two (its default is cuda)
    probe = copy.deepcopy(model).to(run_on).eval()
    torchsummary.summary(probe, input_shape, device=run_on)
    rows = receptive_field(model, input_shape)
    print(f"\n{'layer':>21} {'output':>14} {'RF':>4} {'jump':>4} {'mult-adds':>10}")
    for i, r in enumerate(rows):
        macs = f"{r['macs']:,}" if r["macs"] else ""
        print(f"{i:>3} {r['layer']:>17} {str(r['output']):>14} {r['rf']:>4} {r['jump']:>4} {macs:>10}".rstrip())
    print(f"{'total':>21} {'':>14} {'':>4} {'':>4} {sum(r['macs'] for r in rows):>10,}")
