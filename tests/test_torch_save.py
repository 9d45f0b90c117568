"""torch.save files (zip and legacy formats) read without torch and without running their code."""

import zipfile

import numpy as np
import pytest

from stylejax.errors import NetworkFileError
from stylejax.official.torch_save import read_torch_file, state_dict
from tests import official_files as of


def _tensors():
    rng = np.random.default_rng(0)
    return {"features.0.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
            "features.0.bias": rng.normal(size=(4,)).astype(np.float32),
            "lin0.model.1.weight": rng.normal(size=(1, 4, 1, 1)).astype(np.float32),
            "steps": np.arange(3, dtype=np.int64)}


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_a_state_dict_reads_back_exactly(tmp_path, zip_format):
    path = tmp_path / "weights.pth"
    tensors = _tensors()
    of.write_state_dict(path, tensors, zip_format=zip_format)
    assert zipfile.is_zipfile(path) == zip_format
    read = read_torch_file(str(path))
    assert list(read) == list(tensors)
    for name, array in tensors.items():
        assert read[name].dtype == array.dtype and read[name].shape == array.shape
        np.testing.assert_array_equal(read[name], array)
    assert state_dict(str(path))["features.0.weight"].dtype == np.float32


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_views_of_one_storage_keep_their_offsets_and_strides(tmp_path, zip_format):
    """A transpose and a slice of one storage, as torch.save writes views: one storage, read
    back once, each tensor with its own offset and strides."""
    path = tmp_path / "t.pth"
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    of.write_state_dict(path, {"t": base.T, "row": base[1], "col": base[:, 2]}, zip_format)
    if zip_format:
        with zipfile.ZipFile(path) as z:
            assert len([n for n in z.namelist() if "/data/" in n]) == 1
    read = read_torch_file(str(path))
    np.testing.assert_array_equal(read["t"], base.T)
    np.testing.assert_array_equal(read["row"], base[1])
    np.testing.assert_array_equal(read["col"], base[:, 2])


def test_a_global_off_the_allow_list_is_refused_unrun(tmp_path):
    path = tmp_path / "evil.pth"
    of.write(path, of.Call(of.Global("os", "system"), ("touch pwned",)), protocol=2)
    legacy = b"".join(of.dumps(p, protocol=2) for p in (of.LEGACY_MAGIC, 1001, {"little_endian": True}))
    path.write_bytes(legacy + path.read_bytes())
    with pytest.raises(NetworkFileError, match="refused: it names the global os.system"):
        read_torch_file(str(path))
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_a_truncated_file_is_refused_in_one_line(tmp_path, cut):
    path = tmp_path / "cut.pth"
    of.write_state_dict(path, _tensors(), zip_format=False)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * cut)])
    with pytest.raises(NetworkFileError, match=r"cut\.pth") as error:
        read_torch_file(str(path))
    assert "\n" not in str(error.value)


def test_a_torchscript_archive_is_refused(tmp_path):
    """NVIDIA's metrics vgg16.pt is torch.jit.save output: compiled code, not a state dict."""
    path = tmp_path / "vgg16.pt"
    of.write_state_dict(path, _tensors())
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("archive/constants.pkl", of.dumps((), protocol=2))
        z.writestr("archive/code/__torch__/vgg.py", "def forward(self, x): ...\n")
    with pytest.raises(NetworkFileError, match="TorchScript archive"):
        read_torch_file(str(path))


def test_not_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    of.write(path, [1, 2], protocol=2)
    path.write_bytes(b"".join(of.dumps(p, protocol=2) for p in (
        of.LEGACY_MAGIC, 1001, {"little_endian": True})) + path.read_bytes() + of.dumps([], 2))
    with pytest.raises(NetworkFileError, match="not a state dict"):
        state_dict(str(path))
