"""Streaming statistics collectors: per-layer statistics as bounded tables.

A :class:`Recorder` attaches to a model through hooks only, and at every
``every``-th training step folds what it sees into scalars and fixed-size
histograms. Full tensors are kept only at steps named in ``keep_steps``,
within a byte budget. Nothing here depends on a training loop: the step and
the epoch come from ``model.state``, and a loop calls
:meth:`Recorder.end_epoch` for epoch-level quantities.

>>> recorder = Recorder(model, every=1, stats="default")  # doctest: +SKIP
>>> with recorder:  # doctest: +SKIP
...     for x, y in batches:
...         out = model.forward(x)
...         value, grad = model.loss(loss, out, y)
...         model.backward(grad)
...         optimizer.step()
...     recorder.end_epoch()
>>> recorder.to_dataframe()  # doctest: +SKIP

The tables (the contract with figures, report and run directory)
-----------------------------------------------------------------

**Statistics** (:meth:`Recorder.to_dataframe`), long, one scalar per row:
``step`` (int), ``epoch`` (int), ``variant`` (str, "" for one run), ``layer``
(str: a layer name such as ``dense_0``, or ``model``), ``stage`` (str),
``quantity`` (str), ``value`` (float).

``step`` is ``model.state.step`` while the batch runs: the optimizer steps
taken before it (0 for the first batch). Epoch-level rows carry the step of
the epoch's last batch; spectra at an epoch's end carry the next step, the
first to use those weights.

Which steps have which rows (``stats="default"``): statistics of activations
and back-propagated gradients at every recorded step (``step % every ==
0``); parameter-level statistics (of ``param:*``, ``gradient:*``,
``update:*`` and ``grad_norm``) at every ``parameter_every``-th recorded step
(default 10) and at the first recorded step of each epoch; histograms and
their quantiles at the first recorded step of each epoch; spectra on the
initial weights and at each epoch's end; ``dead_epoch_fraction`` and
``drift`` at each epoch's end. By default ``grad_output`` is summarised only
at layers without a ``delta`` stage, and parameters, gradients and updates
only by ``l2`` and ``rms``; ``stats="all"`` with ``parameter_every=1`` gives
every quantity at every stage and step. Recording every step, the default
adds about a quarter to a training step of a 784-512-512-10 float32 network
at batch 128, and more on narrow layers, where Python work per observed array
dominates; ``every=10`` adds a tenth to a sixth of that (``make bench``
measures it; see benchmarks/RESULTS.md and the Recorder).

``stage`` values:

==========================  ==================================================
``input``                   a layer's input ``x`` (``forward_pre``)
``pre_activation``          ``z``
``post_activation``         ``a``
``output``                  the output of a layer without an activation stage
``grad_output``             dL/d output (``backward_pre``), also dL/da
``delta``                   dL/dz (``pre_activation_grad``)
``grad_input``              dL/d input
``param:W``, ``param:b``    a parameter's values, as the step's forward used
``gradient:W`` ...          a parameter's final gradient
``update:W`` ...            the update the optimizer proposes
``model``                   whole-model quantities
==========================  ==================================================

``quantity`` values, with the collector that writes them:

=========================  ========================  ==========================
quantity                   stages                    collector
=========================  ========================  ==========================
``mean std var min max``   all but ``model``         :class:`Summary`
``l2 rms mean_abs``
``q01 q05 q25 q50 q75``    as histogrammed           :class:`Histograms`
``q95 q99``
``dead_fraction``          ``post_activation``       :class:`DeadUnits`
``dead_epoch_fraction``    ``post_activation``       :class:`DeadUnits`
``saturated_fraction``     ``pre_activation``        :class:`Saturation`
``drift drift_relative``   ``pre_activation``        :class:`Drift`
``update_ratio``           ``update:<p>``            :class:`UpdateRatio`
``grad_cosine``            ``gradient:<p>``          :class:`GradCosine`
``grad_noise``             ``gradient:W`` ``:b``     :class:`GradNoise`
``sv_max sv_min``          ``param:<p>`` (2-D)       :class:`Spectra`
``effective_rank``
``loss``                   ``model``                 :class:`LossValue`
``grad_norm``              ``model``                 :class:`GradNorm`
=========================  ========================  ==========================

``var`` and ``std`` are population statistics (divided by n). ``accuracy`` and
other per-step values may be added with :meth:`Recorder.log`. Each
collector's docstring gives its exact definition.

Extensions of the shared schema made here: the quantities ``drift_relative``
and ``grad_norm``, the stage ``output``, and ``frame.attrs["layer_order"]``.

**Histograms** (:meth:`Recorder.histograms`): ``step, epoch, variant, layer,
stage, bin_lo, bin_hi, count``; each histogram has a fixed number of
equal-width bins (64 by default) spanning that step's ``[min, max]``.

**Spectra** (:meth:`Recorder.spectra`): ``step, epoch, variant, layer, param,
index, value``: the singular values of each 2-D parameter, largest first.
"""

from annlens.analysis.collectors.base import Collector, Observation, available_stages
from annlens.analysis.collectors.catalog import COLLECTORS, PRESETS, resolve_stats
from annlens.analysis.collectors.recorder import Recorder
from annlens.analysis.collectors.reductions import (
    QUANTILES,
    Reductions,
    histogram_counts,
    histogram_quantiles,
)
from annlens.analysis.collectors.signals import GradCosine, GradNoise, UpdateRatio
from annlens.analysis.collectors.snapshots import KeepTensors
from annlens.analysis.collectors.spectra import Spectra, effective_rank
from annlens.analysis.collectors.summary import (
    ALL_STAGES,
    DEFAULT_STAGES,
    Histograms,
    Summary,
)
from annlens.analysis.collectors.tables import (
    HISTOGRAM_COLUMNS,
    SPECTRA_COLUMNS,
    STATS_COLUMNS,
)
from annlens.analysis.collectors.totals import GradNorm, LossValue
from annlens.analysis.collectors.units import (
    DeadUnits,
    Drift,
    Saturation,
    saturation_bounds,
)

__all__ = [
    "ALL_STAGES",
    "COLLECTORS",
    "DEFAULT_STAGES",
    "HISTOGRAM_COLUMNS",
    "PRESETS",
    "QUANTILES",
    "SPECTRA_COLUMNS",
    "STATS_COLUMNS",
    "Collector",
    "DeadUnits",
    "Drift",
    "GradCosine",
    "GradNoise",
    "GradNorm",
    "Histograms",
    "KeepTensors",
    "LossValue",
    "Observation",
    "Recorder",
    "Reductions",
    "Saturation",
    "Spectra",
    "Summary",
    "UpdateRatio",
    "available_stages",
    "effective_rank",
    "histogram_counts",
    "histogram_quantiles",
    "resolve_stats",
    "saturation_bounds",
]
