"""The small data sets bundled with scikit-learn: nothing is downloaded.

digits, iris, wine and breast_cancer are classification sets; diabetes is a
regression set, loaded unscaled (``scaled=False``) because scikit-learn's
scaled copy was fitted on all 442 samples, test part included, while annlens
standardises with the training part only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from annlens.data.dataset import RawData

DESCRIPTIONS = {
    "digits": "8x8 images of handwritten digits 0-9, pixel intensities 0-16 "
    "(UCI optical digits, bundled with scikit-learn).",
    "iris": "Four measurements of 150 iris flowers of three species "
    "(Fisher 1936, bundled with scikit-learn).",
    "wine": "Thirteen chemical measurements of wines from three cultivars "
    "(UCI wine, bundled with scikit-learn).",
    "breast_cancer": "Thirty features of cell nuclei from breast-mass images, "
    "malignant or benign (Wisconsin diagnostic, bundled with scikit-learn).",
    "diabetes": "Ten baseline variables of 442 diabetes patients and a measure "
    "of disease progression one year later (bundled with scikit-learn).",
}


def load_bundled(name: str) -> RawData:
    """Load one of scikit-learn's bundled sets as :class:`RawData`."""
    from sklearn import datasets

    loaders: dict[str, Any] = {
        "digits": datasets.load_digits,
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
    }
    if name == "diabetes":
        bunch = datasets.load_diabetes(scaled=False)
        return RawData(
            name=name,
            x=np.asarray(bunch.data, dtype=np.float64),
            y=np.asarray(bunch.target, dtype=np.float64),
            feature_names=tuple(str(f) for f in bunch.feature_names),
            target_name="progression",
            task="regression",
            description=DESCRIPTIONS[name],
        )

    bunch = loaders[name]()
    return RawData(
        name=name,
        x=np.asarray(bunch.data, dtype=np.float64),
        y=np.asarray(bunch.target, dtype=np.int64),
        feature_names=tuple(str(f) for f in bunch.feature_names),
        target_name="class",
        task="classification",
        class_names=tuple(str(c) for c in bunch.target_names),
        description=DESCRIPTIONS[name],
    )
