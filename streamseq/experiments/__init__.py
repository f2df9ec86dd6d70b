"""Experiments on the recurrent cells (issue #14): ``streamseq experiment {gradients,clipping,cells,all}``.

Every experiment trains with the shared training core (:class:`~streamseq.training.trainer.Trainer`)
on a small cached VAD corpus, then writes Markdown tables, PNG plots and a JSON of its numbers:

* :mod:`~streamseq.experiments.gradients`: how the gradient of one frame's loss fades with the
  distance to the input frame, per cell, at initialisation and after training;
* :mod:`~streamseq.experiments.clipping`: the same training with gradient clipping off and on;
* :mod:`~streamseq.experiments.cells`: GRU, LSTM and tanh RNN at equal parameter count: accuracy
  per SNR band, speed, and how long a speech or silence stretch each one bridges.

:mod:`~streamseq.experiments.common` holds what they share: sizes, the corpus, cached training
runs (trained in parallel processes, reused across experiments), tables and figures.
"""
