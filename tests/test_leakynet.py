"""LeakyNet: even/odd leaky pairs are exactly linear at init; '1' layers make identical channels."""

import jax
import numpy as np
import pytest

from zerodiverse import models, symmetry
from zerodiverse.errors import ConfigError
from zerodiverse.models import leakynet


def apply(init, x):
  model = leakynet.LeakyNet(num_classes=10, code=init, width=1)
  variables = model.init(jax.random.key(0), x)
  _, state = model.apply(variables, x, mutable=["intermediates"])
  return variables, state["intermediates"]


def test_an_identity_pair_maps_x_to_minus_x():
  x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
  _, acts = apply("i_iiii", x)
  out = np.asarray(acts["layer1"]["output"][0]) * np.sqrt(1 + 1e-5)  # eval-mode BN at its init statistics
  np.testing.assert_allclose(out, -x[..., np.arange(16) % 3], rtol=1e-5, atol=1e-6)
  out = np.asarray(acts["layer3"]["output"][0]) * (1 + 1e-5)  # two pairs, two BNs
  np.testing.assert_allclose(out, x[..., np.arange(16) % 3], rtol=1e-5, atol=1e-6)


def test_averaging_layers_make_identical_channels_and_the_paper_grid_builds():
  x = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype(np.float32)
  variables, acts = apply("1_ii11", x)
  assert symmetry.distinct_slices(acts["stem"]["output"][0], -1) == 1
  assert symmetry.distinct_channels(variables["params"])["layer4/conv"] == 1
  assert len(variables["params"]) == 1 + 4 + 1  # stem, 4 layers, head
  for init in leakynet.PAPER_GRID:
    assert len(leakynet.parse(init)) == 13
  assert "leakynet" in models.NAMES


@pytest.mark.parametrize("bad", ["iiii", "1_iixi", "11_iiii", "1__ii"])
def test_bad_init_strings_name_the_field(bad):
  with pytest.raises(ConfigError, match="config.model.init_string"):
    leakynet.LeakyNet(num_classes=10, code=bad)
