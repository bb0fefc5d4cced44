"""Model registry: parameter counts from the paper, seeded initialization."""

import numpy as np
import pytest

from tf_lottery.errors import ConfigError
from tf_lottery.models import registry


def test_lenet_300_100_has_266610_parameters():
    model = registry.build_model("lenet_300_100", 10, (28, 28, 1), init_seed=0)
    assert registry.count_params(model) == 266_610
    assert model.output_shape == (None, 10)


def test_init_is_a_function_of_the_seed():
    a = registry.build_model("lenet_300_100", 10, (28, 28, 1), init_seed=3)
    b = registry.build_model("lenet_300_100", 10, (28, 28, 1), init_seed=3)
    c = registry.build_model("lenet_300_100", 10, (28, 28, 1), init_seed=4)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_unknown_model_lists_known_names():
    with pytest.raises(ConfigError, match="lenet_300_100"):
        registry.build_model("nope", 10, (28, 28, 1), init_seed=0)
