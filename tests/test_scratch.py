"""Per-thread scratch buffers (equinet._scratch)."""
import threading

import torch

from equinet import _scratch
from equinet._scratch import clear_scratch, scratch

CPU = torch.device("cpu")


def test_views_have_the_shapes_and_do_not_overlap():
    a, b, c = scratch("test", [(3, 5), (7,), (2, 2, 2)], torch.float32, CPU)
    assert (a.shape, b.shape, c.shape) == ((3, 5), (7,), (2, 2, 2))
    a.fill_(1), b.fill_(2), c.fill_(3)
    assert a.eq(1).all() and b.eq(2).all() and c.eq(3).all()


def test_reused_per_tag_and_dtype():
    (a,) = scratch("test_reuse", [(10,)], torch.float32, CPU)
    (b,) = scratch("test_reuse", [(4,)], torch.float32, CPU)
    (c,) = scratch("test_other", [(10,)], torch.float32, CPU)
    (d,) = scratch("test_reuse", [(10,)], torch.float64, CPU)
    assert a.data_ptr() == b.data_ptr()
    assert c.data_ptr() != a.data_ptr() and d.data_ptr() != a.data_ptr()
    (e,) = scratch("test_reuse", [(1000,)], torch.float32, CPU)  # grows
    assert e.numel() == 1000
    clear_scratch()
    (f,) = scratch("test_reuse", [(10,)], torch.float32, CPU)
    assert f.numel() == 10


def test_large_requests_and_other_threads_get_their_own_memory(monkeypatch):
    monkeypatch.setattr(_scratch, "MAX_SCRATCH_BYTES", 64)
    (a,) = scratch("test_big", [(100,)], torch.float32, CPU)
    (b,) = scratch("test_big", [(100,)], torch.float32, CPU)
    assert a.data_ptr() != b.data_ptr()
    monkeypatch.undo()
    (mine,) = scratch("test_thread", [(8,)], torch.float32, CPU)
    theirs = []
    thread = threading.Thread(target=lambda: theirs.extend(
        scratch("test_thread", [(8,)], torch.float32, CPU)))
    thread.start()
    thread.join()
    assert theirs[0].data_ptr() != mine.data_ptr()


def test_first_use_under_inference_mode_does_not_poison_later_calls():
    with torch.inference_mode():
        (a,) = scratch("test_inference", [(5,)], torch.float32, CPU)
        a.fill_(1.0)
    with torch.no_grad():
        (b,) = scratch("test_inference", [(5,)], torch.float32, CPU)
        b.fill_(2.0)  # an inference tensor would refuse this in-place write
    (c,) = scratch("test_inference", [(5,)], torch.float32, CPU)
    c.add_(1.0)
    assert c.eq(3.0).all()
