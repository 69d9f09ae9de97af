"""load_chunk reads column chunks of a memmap with pread (written from the mutation run of encoding/ridge.py,
benchmarks/README.md): every layout it handles, and the ones it hands back to the mapping, equal numpy's columns."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.encoding.ridge import _pread_memmap_columns, load_chunk


@pytest.fixture()
def data():
    return np.random.default_rng(0).standard_normal((7, 11))


def _memmap(tmp_path, arr, order="C", offset=0, dtype=np.float64):
    path = tmp_path / f"y_{order}_{offset}.bin"
    with open(path, "wb") as fh:
        fh.write(b"\0" * offset)
    m = np.memmap(path, dtype=dtype, mode="r+", shape=arr.shape, order=order, offset=offset)
    m[:] = arr
    m.flush()
    return np.memmap(path, dtype=dtype, mode="r", shape=arr.shape, order=order, offset=offset)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("offset", [0, 24])
@pytest.mark.parametrize("bounds", [(0, 11), (3, 7), (10, 11)])
def test_pread_equals_the_mapped_columns(tmp_path, data, order, offset, bounds):
    m = _memmap(tmp_path, data, order, offset)
    start, stop = bounds
    got = _pread_memmap_columns(m, start, stop)
    assert got is not None and got.dtype == np.float64 and got.shape == (7, stop - start)
    np.testing.assert_array_equal(got, data[:, start:stop])
    chunk = load_chunk(m, start, stop)
    assert chunk.dtype == np.float32 and chunk.flags.c_contiguous
    np.testing.assert_array_equal(chunk, data[:, start:stop].astype(np.float32))


@pytest.mark.parametrize("order", ["C", "F"])
def test_views_of_a_memmap_are_read_from_their_own_offset(tmp_path, data, order):
    m = _memmap(tmp_path, data, order, offset=16)
    rows = m[2:6]  # a view: its data start inside the mapping
    np.testing.assert_array_equal(_pread_memmap_columns(rows, 1, 5), data[2:6, 1:5])
    cols = m[:, 4:]
    np.testing.assert_array_equal(load_chunk(cols, 2, 5), data[:, 6:9].astype(np.float32))


def test_layouts_it_does_not_handle_fall_back_to_the_mapping(tmp_path, data):
    m = _memmap(tmp_path, data)
    strided = m[::2, ::3]  # neither rows nor columns contiguous
    assert _pread_memmap_columns(strided, 0, 2) is None
    np.testing.assert_array_equal(load_chunk(strided, 0, 2), data[::2, ::3][:, 0:2].astype(np.float32))
    assert _pread_memmap_columns(np.asarray(data), 0, 2) is None  # not a memmap
    flat = _memmap(tmp_path, data[0])  # 1-D
    assert _pread_memmap_columns(flat, 0, 2) is None


@pytest.mark.parametrize("order", ["C", "F"])
def test_float32_memmap_is_read_with_its_own_item_size(tmp_path, data, order):
    m = _memmap(tmp_path, data.astype(np.float32), order, offset=8, dtype=np.float32)
    got = _pread_memmap_columns(m, 2, 9)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, data[:, 2:9].astype(np.float32))
