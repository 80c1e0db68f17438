"""The inference benchmark times trained weights where the package ships them (the int8 parity check depends
on the weights), and seeded untrained ones otherwise."""
import torch

from xdrcdepth_core.bench import bench_model, packaged_checkpoints
from xdrcdepth_core.checkpoint import load_checkpoint
from xdrcdepth_core.infer import SHIPPED_CHECKPOINT
from xdrcdepth_core.models import build_model


def test_the_student_is_timed_with_the_shipped_weights():
    checkpoints = packaged_checkpoints()
    assert checkpoints["xdrcdepth"] == SHIPPED_CHECKPOINT
    model, words = bench_model("xdrcdepth", checkpoints)
    assert words == "trained (xdrcdepth_student.pt)"
    shipped = load_checkpoint(SHIPPED_CHECKPOINT)["state_dict"]
    state = model.state_dict()
    assert state.keys() == shipped.keys()
    for key, value in shipped.items():
        expected = value.float() if value.is_floating_point() else value
        torch.testing.assert_close(state[key], expected, rtol=0, atol=0, msg=key)


def test_a_model_without_packaged_weights_is_the_seeded_untrained_one():
    model, words = bench_model("lircdepth", {})
    assert words == "untrained (seed 0)"
    torch.manual_seed(0)
    reference = build_model("lircdepth")
    for (key, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
