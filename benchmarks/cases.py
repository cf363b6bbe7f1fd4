"""The benchmark cases: network shapes, batch sizes and how long to time them.

Every case is a stack of Dense layers with ReLU between them and no
activation on the last, trained with softmax cross-entropy and plain SGD, the
same in annlens and PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    """One network and batch.

    Attributes
    ----------
    name : str
        Short name used in tables.
    sizes : tuple of int
        Layer widths, input first: ``(784, 512, 10)`` is two Dense layers.
    batch : int
        Samples per step.
    target : float
        The annlens/PyTorch time ratio aimed for in float32 (training step).
    """

    name: str
    sizes: tuple[int, ...]
    batch: int
    target: float

    @property
    def layers(self) -> list[tuple[int, int]]:
        """``(in_features, out_features)`` of each Dense layer."""
        return list(zip(self.sizes[:-1], self.sizes[1:], strict=True))

    @property
    def classes(self) -> int:
        return self.sizes[-1]

    def matmul_flops(self) -> int:
        """Floating-point operations of one forward pass's matrix products."""
        return sum(2 * self.batch * n_in * n_out for n_in, n_out in self.layers)

    def describe(self) -> str:
        if len(set(self.sizes[1:-1])) == 1 and len(self.sizes) > 6:
            hidden = len(self.sizes) - 2
            return (
                f"{self.sizes[0]}-({self.sizes[1]}×{hidden})-{self.sizes[-1]}, "
                f"batch {self.batch}"
            )
        return f"{'-'.join(map(str, self.sizes))}, batch {self.batch}"


CASES: tuple[Case, ...] = (
    Case("tiny", (64, 32, 10), 32, 0.3),
    Case("small", (40, 256, 256, 10), 128, 0.85),
    Case("medium", (784, 512, 512, 10), 128, 1.0),
    Case("large", (784, 2048, 2048, 10), 512, 1.05),
    Case("deep", (64,) * 21 + (10,), 64, 0.5),
)


def get_case(name: str) -> Case:
    for case in CASES:
        if case.name == name:
            return case
    known = ", ".join(case.name for case in CASES)
    raise KeyError(f"no benchmark case {name!r}; cases: {known}")
