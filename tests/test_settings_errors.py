"""A misspelt setting of a named activation, initialiser or loss is refused
with the allowed settings and the closest one."""

import pytest

from annlens.activations import get_activation
from annlens.errors import ConfigError
from annlens.layers import get_initializer
from annlens.losses import get_loss


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: get_initializer("normal", sd=1.0), ["'sd'", "'std'", "mean"]),
        (lambda: get_initializer("he_normal", mod="fan_in"), ["'mod'", "'mode'"]),
        (lambda: get_initializer("lecun_normal", gain=2.0), ["'gain'", "none"]),
        (
            lambda: get_loss("softmax_cross_entropy", label_smooth=0.1),
            ["'label_smooth'", "'label_smoothing'", "reduction"],
        ),
        (lambda: get_activation("leaky_relu", alpa=0.1), ["'alpa'", "'alpha'"]),
    ],
)
def test_an_unknown_setting_names_itself_and_the_allowed_ones(make, words):
    with pytest.raises(ConfigError) as caught:
        make()
    for word in words:
        assert word in str(caught.value)


def test_known_settings_still_build():
    assert get_initializer("he_normal", mode="fan_out").mode == "fan_out"
    assert get_activation("leaky_relu", alpha=0.2).alpha == 0.2
