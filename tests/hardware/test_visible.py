"""CUDA_VISIBLE_DEVICES as CUDA reads it: what a run on this box will actually see."""

from __future__ import annotations

import pytest

from trainwiz.hardware import parse_simulate, visible_gpus


@pytest.fixture
def box():
    return parse_simulate("4xH100-80GB")


def idx(gpus):
    return [g.index for g in gpus]


def test_unset_means_all_and_empty_means_none(box):
    assert idx(visible_gpus(box, None)) == [0, 1, 2, 3]
    assert visible_gpus(box, "") == []


def test_indices_in_the_order_given(box):
    assert idx(visible_gpus(box, "2,0")) == [2, 0]
    assert idx(visible_gpus(box, " 3 , 1 ")) == [3, 1]


def test_cuda_stops_at_the_first_invalid_entry(box):
    assert idx(visible_gpus(box, "1,7,2")) == [1]
    assert idx(visible_gpus(box, "-1")) == []
    assert idx(visible_gpus(box, "0,bogus,1")) == [0]
    assert idx(visible_gpus(box, "1,1,2")) == [1]  # a repeated device ends the list


def test_uuids_full_prefixed_or_unique_prefix(box):
    u2, u3 = box[2].uuid, box[3].uuid
    assert idx(visible_gpus(box, f"{u3},{u2}")) == [3, 2]
    assert idx(visible_gpus(box, u3[4:])) == [3]  # without the GPU- prefix
    assert idx(visible_gpus(box, u3.upper().replace("GPU-", "GPU-", 1))) == [3]
    assert idx(visible_gpus(box, u3[:16])) == [3]  # a unique prefix is enough
    assert idx(visible_gpus(box, "GPU-")) == []  # ambiguous / empty prefix resolves nothing


def test_mixed_box_order_follows_cuda_device_order():
    box = parse_simulate("1xT4+1xH100")  # PCI order: T4 first
    assert [g.name for g in visible_gpus(box, "0", device_order="PCI_BUS_ID")] == ["Tesla T4"]
    # CUDA's default numbers the fastest first: cuda:0 is the H100
    assert [g.name for g in visible_gpus(box, "0", device_order="FASTEST_FIRST")] == [
        "NVIDIA H100 80GB HBM3"]
    assert idx(visible_gpus(box, None, device_order="PCI_BUS_ID")) == [0, 1]
